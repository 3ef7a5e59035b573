//! Limits on what one client or one address may do: per-client rate limits on the token
//! endpoint and the gateway ([`rate`]), and the lockout after repeated client-authentication
//! failures ([`lockout`]), both shared across nodes through Redis when `redis.url` is set
//! ([`shared`]).
//!
//! Both answer `429 Too Many Requests` with `Retry-After`, in the error family of the path
//! (an RFC 6749 body on `/oauth2/*`, no body on `/open-banking/*` as the UK OB file defines).

pub mod lockout;
pub mod rate;
pub mod shared;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

pub use lockout::{Lockout, LockoutConfig, Subject};
pub use rate::{Limited, Rate, RateConfig, RateLimits, Scope};
pub use shared::SharedRedis;

use crate::error::ApiError;

/// Every limit of one app.
#[derive(Debug)]
pub struct Limits {
    /// Per-client buckets.
    pub rates: RateLimits,
    /// Authentication-failure counters.
    pub lockout: Lockout,
    /// The Redis connection, when limits are shared.
    pub shared: Option<Arc<SharedRedis>>,
}

impl Limits {
    /// Takes one request from `client_id`'s `scope` bucket, or the `429` to answer.
    pub async fn take(&self, client_id: &str, scope: Scope) -> Result<(), ApiError> {
        self.rates
            .check(client_id, scope)
            .await
            .map_err(|l| ApiError::TooManyRequests {
                code: "rate_limited",
                message: format!(
                    "this client's {} rate limit is used up; retry after the Retry-After seconds",
                    scope.as_str()
                ),
                retry_after: l.retry_after,
            })
    }
}

/// The `429` for a locked client id or address.
pub fn locked_out(retry_after: Duration) -> ApiError {
    ApiError::TooManyRequests {
        code: "temporarily_locked",
        message: "too many failed client authentications; retry after the Retry-After seconds"
            .into(),
        retry_after,
    }
}

/// The address a request came from: the last value of `http.client_ip_header` when one is
/// configured (the load balancer's header; the last entry is the one it added), else the TCP
/// peer. `None` when neither is known (an embedding that serves without connect info).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<crate::state::AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::state::AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(name) = &state.config.http.client_ip_header {
            let from_header = parts
                .headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .last()
                .and_then(|v| v.trim().parse::<IpAddr>().ok());
            if from_header.is_some() {
                return Ok(ClientAddr(from_header));
            }
        }
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}
