//! The gateway's per-client rate limit, between authentication and authorization: the
//! client is known (from a verified token, so nobody can spend another client's budget),
//! and a client over its limit costs no consent or KYC lookup.
//!
//! Over the limit: `429` with `Retry-After` and no body (the UK OB file defines none), counted
//! in `obgate_gateway_decisions{outcome="denied",reason="rate_limited"}`. Refusals are not
//! written to the audit log one by one: a client flooding the gateway must not turn into a
//! flood of database writes.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Principal;
use crate::limits::Scope;
use crate::state::AppState;

/// Takes one request from the token's client's gateway bucket, or answers `429`.
pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(client_id) = req
        .extensions()
        .get::<Principal>()
        .map(|p| p.claims.client_id.clone())
    else {
        // Only reachable if the layer is mounted without AuthenticateLayer before it.
        return crate::error::ApiError::internal("gateway rate limit without a principal")
            .into_response();
    };
    let started = std::time::Instant::now();
    match state.limits.take(&client_id, Scope::Gateway).await {
        Ok(()) => next.run(req).await,
        Err(limited) => {
            state
                .metrics
                .gateway_decision("denied", "rate_limited", started.elapsed());
            limited.into_response()
        }
    }
}
