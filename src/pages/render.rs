//! Turning a page template into a response with the pages' security headers.
//!
//! Every page is server-rendered HTML that works without JavaScript. The headers forbid
//! scripts, inline styles, framing and third-party loads: `default-src 'none'`, styles and
//! images from obgate only (plus the bank's logo origin), forms posting to obgate only (plus,
//! on the consent screen, the TPP's redirect origin, because Chromium checks `form-action`
//! against the redirect that follows a form), `frame-ancestors 'none'` and
//! `X-Frame-Options: DENY`.

use askama::Template;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::views::{Brand, Message, Nav};
use crate::http::middleware::DeliberatePage;
use crate::state::AppState;

/// The origin (`scheme://host[:port]`) of a URL, for a CSP source list.
pub fn origin(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    match u.origin() {
        o @ url::Origin::Tuple(..) => Some(o.ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

/// The pages' Content-Security-Policy; `form_to` adds an origin forms may lead to.
pub fn csp(state: &AppState, form_to: Option<&str>) -> String {
    let logo = state
        .config
        .pages
        .logo_url
        .as_ref()
        .and_then(|u| origin(u.as_str()))
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    let form = form_to.map(|o| format!(" {o}")).unwrap_or_default();
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self'{logo}; form-action 'self'{form}; \
         frame-ancestors 'none'; base-uri 'none'"
    )
}

/// Headers every page carries.
fn secure(res: &mut Response, csp: &str) {
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::try_from(csp) {
        h.insert(CONTENT_SECURITY_POLICY, v);
    }
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.extensions_mut().insert(DeliberatePage);
}

/// A rendered page with `status`, extra headers (cookies) and a CSP allowing forms to lead
/// to `form_to`.
pub fn page<T: Template>(
    state: &AppState,
    status: StatusCode,
    template: &T,
    headers: Vec<(HeaderName, HeaderValue)>,
    form_to: Option<&str>,
) -> Response {
    let html = match template.render() {
        Ok(html) => html,
        Err(e) => {
            return crate::error::ApiError::internal(format!("page template: {e}")).into_response()
        }
    };
    let mut res = (status, html).into_response();
    secure(&mut res, &csp(state, form_to));
    for (k, v) in headers {
        res.headers_mut().append(k, v);
    }
    res
}

/// A page that only says something: an error, an ended session, a finished action.
pub fn message(
    state: &AppState,
    status: StatusCode,
    session: Option<Nav>,
    title: &str,
    text: &str,
    next_step: Option<&str>,
) -> Response {
    let brand = Brand::of(state);
    page(
        state,
        status,
        &Message {
            brand: &brand,
            session,
            title,
            message: text,
            next_step,
        },
        Vec::new(),
        None,
    )
}

/// A `303 See Other` to `to` (a page path or the TPP's redirect URI) with extra headers.
pub fn see_other(to: &str, headers: Vec<(HeaderName, HeaderValue)>) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::try_from(to) {
        res.headers_mut().insert(LOCATION, v);
    }
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (k, v) in headers {
        res.headers_mut().append(k, v);
    }
    res.extensions_mut().insert(DeliberatePage);
    res
}
