//! Page sessions and CSRF protection for the hosted pages.
//!
//! A signed-in customer holds `__Host-obgate-session`: a random 256-bit id, `Secure`,
//! `HttpOnly`, `SameSite=Lax`, `Path=/`, living `pages.session_ttl`. The store keeps only its
//! SHA-256 (see [`crate::store::pages`]), with the CSRF token every form of the session must
//! echo in `csrf_token`. Before sign-in, the sandbox sign-in form is protected the same way
//! by a double-submit cookie, `__Host-obgate-login`.
//!
//! Browsers accept `Secure` cookies from `http://localhost` and `127.0.0.1`, so the sandbox
//! works over plain HTTP on loopback; anywhere else the public URL must be https.

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use subtle::ConstantTimeEq;

use crate::audit::{Actor, ActorType, AuditEvent, Outcome};
use crate::consent::flow::{hash, random_token};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::pages::PageSessionRow;

/// The session cookie.
pub const SESSION_COOKIE: &str = "__Host-obgate-session";
/// The sign-in form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "__Host-obgate-login";
/// How long the sign-in form's CSRF cookie lives.
const LOGIN_COOKIE_TTL_SECS: u64 = 1800;

/// A signed-in customer.
#[derive(Clone, Debug)]
pub struct Session {
    /// Who.
    pub customer_id: String,
    /// The token this session's forms carry.
    pub csrf: String,
    id_hash: String,
}

impl Session {
    /// Whether a submitted form token is this session's (constant time).
    pub fn csrf_ok(&self, submitted: Option<&str>) -> bool {
        submitted.is_some_and(|s| same(s, &self.csrf))
    }

    /// The customer, as the actor of what they decide on the pages.
    pub fn actor(&self, interaction: &str) -> Actor {
        Actor {
            kind: ActorType::Customer,
            id: self.customer_id.clone(),
            interaction_id: Some(interaction.to_owned()),
        }
    }
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The value of cookie `name` in the request, if sent once.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(name: &str, value: &str, max_age: u64) -> HeaderValue {
    let v = format!("{name}={value}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Lax");
    HeaderValue::try_from(v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A `Set-Cookie` that removes cookie `name`.
pub fn clear(name: &str) -> (axum::http::HeaderName, HeaderValue) {
    (SET_COOKIE, set_cookie(name, "", 0))
}

/// The signed-in customer, if the request carries a live session of a customer who still
/// exists (not erased).
pub async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, ApiError> {
    let Some(id) = cookie(headers, SESSION_COOKIE).filter(|v| v.len() == 43) else {
        return Ok(None);
    };
    let id_hash = hash(id);
    let Some(row) = state.store.get_page_session(&id_hash).await? else {
        return Ok(None);
    };
    if row.expires_at <= state.clock.now() {
        return Ok(None);
    }
    let live = state
        .store
        .get_customer(&row.customer_id)
        .await?
        .is_some_and(|c| c.erased_at.is_none());
    Ok(live.then_some(Session {
        customer_id: row.customer_id,
        csrf: row.csrf_token,
        id_hash,
    }))
}

/// Signs `customer_id` in: stores the session (audited with `how`, e.g. `bank_assertion`) and
/// answers the `Set-Cookie` that carries it.
pub async fn start(
    state: &AppState,
    customer_id: &str,
    how: &str,
    interaction: &str,
) -> Result<(axum::http::HeaderName, HeaderValue), ApiError> {
    let id = random_token();
    let now = state.clock.now();
    let ttl = state.config.pages.session_ttl;
    let row = PageSessionRow {
        id_hash: hash(&id),
        customer_id: customer_id.to_owned(),
        csrf_token: random_token(),
        created_at: now,
        expires_at: now.plus(ttl),
    };
    let mut audit = AuditEvent::new(now, ActorType::Customer, customer_id, "pages.sign_in")
        .interaction(Some(interaction));
    audit.reason = Some(how.to_owned());
    state.store.start_page_session(&row, &audit).await?;
    Ok((SET_COOKIE, set_cookie(SESSION_COOKIE, &id, ttl.as_secs())))
}

/// Ends the session (sign-out), audited in the same transaction.
pub async fn end(state: &AppState, s: &Session, interaction: &str) -> Result<(), ApiError> {
    let audit = AuditEvent::new(
        state.clock.now(),
        ActorType::Customer,
        &s.customer_id,
        "pages.sign_out",
    )
    .interaction(Some(interaction));
    state.store.end_page_session(&s.id_hash, &audit).await?;
    Ok(())
}

/// Records a refused sign-in (bad assertion, bad form token) without naming a customer.
pub async fn refused(state: &AppState, reason: &str, interaction: &str) -> Result<(), ApiError> {
    let audit = AuditEvent::new(
        state.clock.now(),
        ActorType::Anonymous,
        "-",
        "pages.sign_in",
    )
    .outcome(Outcome::Denied, reason)
    .interaction(Some(interaction));
    state.store.append_audit(&audit).await?;
    Ok(())
}

/// The sign-in form's CSRF token: the one the browser already holds, or a new one with the
/// `Set-Cookie` that gives it.
pub fn login_token(headers: &HeaderMap) -> (String, Option<(axum::http::HeaderName, HeaderValue)>) {
    match cookie(headers, LOGIN_COOKIE).filter(|v| v.len() == 43) {
        Some(v) => (v.to_owned(), None),
        None => {
            let t = random_token();
            let set = set_cookie(LOGIN_COOKIE, &t, LOGIN_COOKIE_TTL_SECS);
            (t, Some((SET_COOKIE, set)))
        }
    }
}

/// Whether the sign-in form's token matches its cookie.
pub fn login_token_ok(headers: &HeaderMap, submitted: Option<&str>) -> bool {
    match (cookie(headers, LOGIN_COOKIE), submitted) {
        (Some(c), Some(s)) => c.len() == 43 && same(c, s),
        _ => false,
    }
}
