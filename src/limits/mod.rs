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

/// The address a request came from, for the lockout: the last value of
/// `http.client_ip_header` when one is configured (the load balancer's header; the last entry
/// is the one it added), else the TCP peer when it is a public address. A private, loopback or
/// link-local peer is most likely a load balancer or proxy that every caller shares, and
/// locking it would lock everyone out, so it is not counted (`None`): behind a proxy, set
/// `http.client_ip_header` to count callers by address.
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
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .filter(|ip| is_public(*ip));
        Ok(ClientAddr(peer))
    }
}

/// Whether an address is on the public internet (not private, loopback, link-local, CGNAT or
/// unique-local).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || (o[0] == 100 && (64..128).contains(&o[1])))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || first & 0xffc0 == 0xfe80
                    || first & 0xfe00 == 0xfc00)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::is_public;

    #[test]
    fn only_public_peers_count_as_caller_addresses() {
        for public in ["203.0.113.9", "8.8.8.8", "2001:db8::1", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        for shared in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(shared.parse().unwrap()), "{shared}");
        }
    }
}
