//! The gateway's per-client rate limit, between authentication and authorization: the
//! client is known (from a verified token, so nobody can spend another client's budget),
//! and a client over its limit costs no consent or KYC lookup.
//!
//! Over the limit: `429` with `Retry-After` and no body (the UK OB file defines none), counted
//! in `obgate_gateway_decisions{outcome="denied",reason="rate_limited"}` and audited through
//! the batched [`super::access_log`], so a flooding client costs one row per refusal in a
//! shared transaction, not a transaction each.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Principal;
use crate::limits::Scope;
use crate::state::AppState;

/// Takes one request from the token's client's gateway bucket, or answers `429`.
pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(claims) = req
        .extensions()
        .get::<Principal>()
        .map(|p| p.claims.clone())
    else {
        // Only reachable if the layer is mounted without AuthenticateLayer before it.
        return crate::error::ApiError::internal("gateway rate limit without a principal")
            .into_response();
    };
    let started = std::time::Instant::now();
    match state.limits.take(&claims.client_id, Scope::Gateway).await {
        Ok(()) => next.run(req).await,
        Err(limited) => {
            let interaction = super::access_log::interaction_of(&req);
            state
                .access_log
                .decided(
                    &state,
                    started,
                    super::access_log::Decision {
                        client_id: Some(&claims.client_id),
                        consent_id: claims.consent_id.as_deref(),
                        reason: "rate_limited",
                        allowed: false,
                        path: req.uri().path(),
                        interaction: interaction.as_deref(),
                    },
                )
                .await;
            limited.into_response()
        }
    }
}
