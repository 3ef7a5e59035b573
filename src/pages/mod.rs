//! The customer's own pages: a hosted consent screen and an access dashboard.
//!
//! Under PSD2 and the UK Open Banking rules the bank shows the customer what a TPP asks for
//! before they approve, and lets them see and end every access they granted. A bank can build
//! those screens on the consent API (`/api/v0/authorization-requests/…`); these pages are the
//! ready-made, brandable alternative, and `consents.ui_url` points at them by default.
//!
//! - **Sign-in** (`signin`): obgate never holds customer passwords. The bank's login hands
//!   the customer over with a short, single-use JWT it signs ([`assertion`]), to `GET` or
//!   `POST /login`; in sandbox mode a page lists the demo customers instead. Either starts a
//!   page session ([`session`]).
//! - **The consent screen** (`/consent?challenge=…`, `consent_screen`): the TPP's name, the
//!   requested permissions in plain words grouped as the OB consent guidelines group them, the
//!   dates, and the customer's accounts to choose from. Approving goes through exactly the
//!   bank API's path ([`crate::consent::flow::accept_request`]), KYC gate included, and the
//!   browser is sent back to the TPP.
//! - **The dashboard** (`/dashboard`, `dashboard`): every consent of the customer, current
//!   and ended apart, and a two-step revoke that ends access at once.
//!
//! Pages are server-rendered from askama templates (`templates/pages/`), need no JavaScript,
//! carry a CSRF token on every form, and send a strict CSP (`render`).

pub mod assertion;
mod consent_screen;
mod dashboard;
mod form;
mod render;
pub mod session;
mod signin;
mod views;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;

use crate::http::Routes;
use crate::state::AppState;

/// The stylesheet every page links (no inline styles: the CSP forbids them).
const STYLESHEET: &str = include_str!("../../assets/obgate.css");

/// The pages' routes. They sit outside `/api`, have no admin key, and answer HTML.
pub fn routes() -> Routes<AppState> {
    Routes::new()
        .get("/login", signin::show)
        .post("/login", signin::with_assertion_form)
        .post("/login/sandbox", signin::sandbox)
        .post("/logout", signin::logout)
        .get("/consent", consent_screen::show)
        .post("/consent", consent_screen::decide)
        .get("/dashboard", dashboard::show)
        .get(
            "/dashboard/consents/{consent_id}/revoke",
            dashboard::confirm_revoke,
        )
        .post("/dashboard/consents/{consent_id}/revoke", dashboard::revoke)
        .get("/pages/assets/obgate.css", stylesheet)
        .get("/pages/assets/theme.css", theme)
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}

/// The bank's colour as a CSS variable, so branding needs no inline style.
async fn theme(State(state): State<AppState>) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        format!(
            ":root {{ --primary: {}; }}\n",
            state.config.pages.primary_color
        ),
    )
}

/// The signed-in customer, or the response that sends the browser to sign in and then back
/// to `return_to` (or shows the failure).
async fn signed_in(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    return_to: &str,
) -> Result<session::Session, axum::response::Response> {
    match session::current(state, headers).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(render::see_other(&signin::login_for(return_to), Vec::new())),
        Err(e) => Err(failed(state, e)),
    }
}

/// A page for an unexpected failure: the status it deserves and, for a 5xx, only the error
/// id (the detail is in the log under it).
fn failed(state: &AppState, e: crate::error::ApiError) -> axum::response::Response {
    use crate::error::ApiError;
    let status = e.status();
    let text = match &e {
        ApiError::Internal { id } | ApiError::Unavailable { id } => {
            format!(
                "Something went wrong on our side. If it keeps happening, quote reference {id}."
            )
        }
        ApiError::BadGateway | ApiError::GatewayTimeout => {
            "Your accounts could not be loaded from the bank just now.".to_owned()
        }
        other => other.to_string(),
    };
    render::message(
        state,
        status,
        None,
        "This page could not be shown",
        &text,
        Some("Please try again in a moment."),
    )
}

/// 415 for a POST that is not an HTML form.
fn not_a_form(state: &AppState) -> axum::response::Response {
    render::message(
        state,
        axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        None,
        "This form could not be read",
        "Send it as application/x-www-form-urlencoded, as a browser does.",
        None,
    )
}

/// 403 for a form whose CSRF token is missing or not the session's.
fn expired_form(state: &AppState, s: Option<session::Session>) -> axum::response::Response {
    render::message(
        state,
        axum::http::StatusCode::FORBIDDEN,
        s.map(|s| views::Nav { csrf: s.csrf }),
        "This form has expired",
        "For your security, forms only work from the page that showed them, while you are signed in.",
        Some("Go back, reload the page and try again."),
    )
}
