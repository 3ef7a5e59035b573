//! Signing a customer in to the pages: the bank's assertion (`GET`/`POST /login`), the
//! sandbox's demo-customer list (`POST /login/sandbox`), and signing out.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::form::Form;
use super::render::{message, page, see_other};
use super::session;
use super::views::{Brand, DemoCustomer, SignIn};
use crate::config::Mode;
use crate::http::middleware::InteractionId;
use crate::limits::lockout::Subject;
use crate::limits::ClientAddr;
use crate::oauth::client_auth::{count_failure, Failure};
use crate::state::AppState;

/// Where a customer goes after signing in when nothing else was asked.
const HOME: &str = "/dashboard";

/// A local page to return to after sign-in: only the consent screen or the dashboard, so the
/// parameter cannot send a signed-in customer anywhere else (no open redirect).
pub(super) fn safe_return(raw: Option<&str>) -> String {
    raw.filter(|r| {
        (r.starts_with("/consent?") || *r == "/consent" || r.starts_with("/dashboard"))
            && r.len() <= 1024
            && !r.contains("//")
            && !r.contains('\\')
            && r.bytes().all(|b| (0x21..0x7f).contains(&b))
    })
    .unwrap_or(HOME)
    .to_owned()
}

/// `/login?return_to=…` for a page the customer must sign in to see.
pub(super) fn login_for(return_to: &str) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", return_to)
        .finish();
    format!("/login?{q}")
}

fn query(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// `GET /login`: signs in with `assertion` when the bank redirects here with one; otherwise
/// shows the sandbox's demo customers, or sends the customer to the bank's login.
pub async fn show(
    State(state): State<AppState>,
    interaction: InteractionId,
    addr: ClientAddr,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = query(raw.as_deref());
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let return_to = safe_return(get("return_to"));
    if let Some(assertion) = get("assertion") {
        return sign_in_with(&state, addr, assertion, &return_to, &interaction.0).await;
    }
    match session::current(&state, &headers).await {
        Ok(Some(_)) => return see_other(&return_to, Vec::new()),
        Ok(None) => {}
        Err(e) => return super::failed(&state, e),
    }
    if state.config.mode == Mode::Production {
        if let Some(login) = &state.config.pages.login_url {
            let mut u = login.clone();
            let back = format!("{}{return_to}", state.config.public_base());
            u.query_pairs_mut().append_pair("return_to", &back);
            return see_other(u.as_str(), Vec::new());
        }
    }
    sign_in_page(&state, &headers, &return_to, StatusCode::OK, None).await
}

async fn sign_in_page(
    state: &AppState,
    headers: &HeaderMap,
    return_to: &str,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let sandbox = state.config.mode == Mode::Sandbox;
    let mut customers = Vec::new();
    if sandbox {
        let rows = match state.store.list_customers(None, 20).await {
            Ok(rows) => rows,
            Err(e) => return super::failed(state, e.into()),
        };
        for row in rows {
            let (id, kyc) = (row.customer_id.clone(), row.kyc_status.clone());
            if let Ok(open) = crate::kyc::customers::open_row(&state.config.pii_key, row) {
                let p = &open.profile;
                let name = [Some(p.first_name.as_str()), p.last_name.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                customers.push(DemoCustomer {
                    customer_id: id,
                    name,
                    kyc_status: kyc.replace('_', " "),
                });
            }
        }
    }
    let (csrf, cookie) = session::login_token(headers);
    let brand = Brand::of(state);
    page(
        state,
        status,
        &SignIn {
            brand: &brand,
            session: None,
            sandbox,
            customers,
            csrf,
            return_to: return_to.to_owned(),
            login_url: state.config.pages.login_url.as_ref().map(|u| u.to_string()),
            error,
        },
        cookie.into_iter().collect(),
        None,
    )
}

/// The address a sign-in attempt is counted against (none when it cannot be told; see
/// [`ClientAddr`]).
fn subjects(addr: ClientAddr) -> Vec<Subject> {
    addr.0.map(Subject::Address).into_iter().collect()
}

/// 429 for an address locked after repeated refused sign-ins (or failed client or admin-key
/// authentications: the lockout is one per address), before anything is checked or written.
async fn locked(state: &AppState, addr: ClientAddr) -> Option<Response> {
    let wait = state.limits.lockout.locked(&subjects(addr)).await?;
    let mut res = message(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        None,
        "Too many attempts",
        "Sign-in from your network is paused after repeated failed attempts.",
        Some("Wait a few minutes, then sign in again from online banking."),
    );
    let secs = crate::error::retry_after_secs(wait);
    res.headers_mut()
        .insert(axum::http::header::RETRY_AFTER, secs.into());
    Some(res)
}

/// Records a refused sign-in and counts it against the address, as a failed client
/// authentication is: each refusal is an audit write, so an address that keeps failing is
/// locked out ([`locked`]) rather than writing to the audit chain for as long as it likes.
async fn refuse(
    state: &AppState,
    addr: ClientAddr,
    reason: &str,
    interaction: &str,
) -> Result<(), crate::error::ApiError> {
    session::refused(state, reason, interaction).await?;
    count_failure(state, &subjects(addr), Failure::SignIn, Some(interaction)).await
}

/// Verifies the bank's assertion and starts the session.
async fn sign_in_with(
    state: &AppState,
    addr: ClientAddr,
    assertion: &str,
    return_to: &str,
    interaction: &str,
) -> Response {
    if let Some(res) = locked(state, addr).await {
        return res;
    }
    let customer = match super::assertion::verify(state, assertion).await {
        Ok(c) => c,
        Err(refusal) => {
            tracing::info!(reason = refusal.code(), "customer assertion refused");
            if let Err(e) = refuse(state, addr, refusal.code(), interaction).await {
                return super::failed(state, e);
            }
            return message(
                state,
                StatusCode::UNAUTHORIZED,
                None,
                "We could not sign you in",
                "The sign-in link from online banking has expired, was already used, or is not valid.",
                Some("Go back to online banking and try again."),
            );
        }
    };
    start(
        state,
        addr,
        &customer,
        "bank_assertion",
        return_to,
        interaction,
    )
    .await
}

async fn start(
    state: &AppState,
    addr: ClientAddr,
    customer_id: &str,
    how: &str,
    return_to: &str,
    interaction: &str,
) -> Response {
    let live = match state.store.get_customer(customer_id).await {
        Ok(c) => c.is_some_and(|c| c.erased_at.is_none()),
        Err(e) => return super::failed(state, e.into()),
    };
    if !live {
        if let Err(e) = refuse(state, addr, "unknown_customer", interaction).await {
            return super::failed(state, e);
        }
        return message(
            state,
            StatusCode::UNAUTHORIZED,
            None,
            "We could not sign you in",
            "Online banking signed in a customer this service does not know.",
            Some("Contact the bank if this keeps happening."),
        );
    }
    match session::start(state, customer_id, how, interaction).await {
        Ok(cookie) => see_other(
            return_to,
            vec![cookie, session::clear(session::LOGIN_COOKIE)],
        ),
        Err(e) => super::failed(state, e),
    }
}

/// `POST /login`: the bank's login posts the assertion as a form (`assertion`, optional
/// `return_to`), which keeps it out of URLs and access logs.
pub async fn with_assertion_form(
    State(state): State<AppState>,
    interaction: InteractionId,
    addr: ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(form) = Form::parse(&headers, &body) else {
        return super::not_a_form(&state);
    };
    let return_to = safe_return(form.one("return_to"));
    match form.one("assertion") {
        Some(a) => sign_in_with(&state, addr, a, &return_to, &interaction.0).await,
        None => message(
            &state,
            StatusCode::BAD_REQUEST,
            None,
            "We could not sign you in",
            "The request from online banking carried no sign-in assertion (form field `assertion`).",
            None,
        ),
    }
}

/// `POST /login/sandbox`: sandbox mode only, signs in the chosen demo customer.
pub async fn sandbox(
    State(state): State<AppState>,
    interaction: InteractionId,
    addr: ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if state.config.mode != Mode::Sandbox {
        return message(
            &state,
            StatusCode::NOT_FOUND,
            None,
            "Page not found",
            "Demo sign-in exists only in sandbox mode.",
            None,
        );
    }
    let Some(form) = Form::parse(&headers, &body) else {
        return super::not_a_form(&state);
    };
    let return_to = safe_return(form.one("return_to"));
    if let Some(res) = locked(&state, addr).await {
        return res;
    }
    if !session::login_token_ok(&headers, form.one("csrf_token")) {
        if let Err(e) = refuse(&state, addr, "csrf", &interaction.0).await {
            return super::failed(&state, e);
        }
        return super::expired_form(&state, None);
    }
    match form.one("customer_id") {
        Some(c) if crate::consent::flow::CUSTOMER_ID.matches(c) => {
            start(
                &state,
                addr,
                c,
                "sandbox_sign_in",
                &return_to,
                &interaction.0,
            )
            .await
        }
        _ => {
            sign_in_page(
                &state,
                &headers,
                &return_to,
                StatusCode::BAD_REQUEST,
                Some("Choose one of the demo customers.".into()),
            )
            .await
        }
    }
}

/// `POST /logout`: ends the session.
pub async fn logout(
    State(state): State<AppState>,
    interaction: InteractionId,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(form) = Form::parse(&headers, &body) else {
        return super::not_a_form(&state);
    };
    if form.one("csrf_token").is_none_or(str::is_empty) {
        return super::expired_form(&state, None);
    }
    let current = match session::current(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return super::failed(&state, e),
    };
    if let Some(s) = current {
        if !s.csrf_ok(form.one("csrf_token")) {
            return super::expired_form(&state, Some(s));
        }
        if let Err(e) = session::end(&state, &s, &interaction.0).await {
            return super::failed(&state, e);
        }
    }
    let mut res = message(
        &state,
        StatusCode::OK,
        None,
        "You have signed out",
        "You can close this window.",
        None,
    );
    // Only a request that carried the session cookie may remove it: a cross-site form post
    // comes without it (`SameSite=Lax`), and must not be able to sign the customer out (for
    // instance in the middle of a consent) by its answer's `Set-Cookie` alone. A cookie of a
    // session that has ended or expired is removed.
    if session::cookie(&headers, session::SESSION_COOKIE).is_some() {
        let (k, v) = session::clear(session::SESSION_COOKIE);
        res.headers_mut().append(k, v);
    }
    res
}
