//! The gateway's per-client rate limit, between authentication and authorization: the
//! client is known (from a verified token, so nobody can spend another client's budget),
//! and a client over its limit costs no consent or KYC lookup.
//!
//! Over the limit: `429` with `Retry-After` and no body (the UK OB file defines none), counted
//! in `obgate_gateway_decisions{outcome="denied",reason="rate_limited"}` and audited through
//! the batched [`super::access_log`], so a flooding client costs one row per refusal in a
//! shared transaction, not a transaction each.

use axum::response::{IntoResponse, Response};

use super::Principal;
use crate::limits::Scope;
use crate::state::AppState;

/// Takes one request from the token's client's gateway bucket; over the limit, audits the
/// refusal and returns the `429` to answer with. Called by [`super::AuthorizeLayer`] before
/// anything else it does, rather than as a layer of its own: a layer here cost a clone and two
/// boxes per request, limited or not.
pub async fn over_limit(
    state: &AppState,
    principal: &Principal,
    path: &str,
    interaction: Option<&str>,
) -> Option<Response> {
    let claims = &principal.claims;
    let started = std::time::Instant::now();
    let limited = state
        .limits
        .take(&claims.client_id, Scope::Gateway)
        .await
        .err()?;
    // A denial goes out whether or not it could be recorded.
    let _ = state
        .access_log
        .decided(
            state,
            started,
            super::access_log::Decision {
                client_id: Some(&claims.client_id),
                consent_id: claims.consent_id.as_deref(),
                reason: "rate_limited",
                allowed: false,
                path,
                interaction,
            },
        )
        .await;
    Some(limited.into_response())
}
