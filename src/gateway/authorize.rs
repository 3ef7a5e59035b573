//! The second gateway layer: the token's consent must allow this request.
//!
//! First the token's client must be within its gateway rate limit ([`super::rate_limit`]), so
//! a client over its limit costs no consent or KYC lookup.
//!
//! Then, the checks: the consent belongs to the token's client, is `Authorised`, not deleted or expired, and
//! its customer's KYC status is `passed` (the checks of [`crate::consent::check_access`], on
//! the copies in [`super::cache`]); its permissions
//! cover the route ([`super::route_map`]); the `AccountId` in the path is one it covers. Any
//! failure is `403` with an `OBErrorResponse1` naming the check. Every decision, allowed or
//! not, is an audit row with the client, consent and route ([`super::access_log`]). A route obgate does not know is `404`. What passed travels on
//! as a [`Grant`] extension, which the proxy uses to shape the response.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use super::access_log::Decision;
use super::authenticate::{BoxFuture, Principal};
use super::route_map::{self, Matched};
use crate::clock::Timestamp;
use crate::consent::Denial;
use crate::error::{ApiError, ObError};
use crate::state::AppState;

/// What the consent grants this request.
#[derive(Clone, Debug)]
pub struct Grant {
    /// The verified token's claims: whose data (`sub`), which TPP (`client_id`), under which
    /// consent (`consent_id`, always set on a gateway token). Shared with the token cache
    /// rather than copied out of it on every request; read them through [`Grant::client_id`],
    /// [`Grant::consent_id`] and [`Grant::customer_id`].
    pub claims: std::sync::Arc<crate::oauth::jwt::AccessClaims>,
    /// The consented accounts, space-separated (shared with the consent cache).
    pub account_ids: std::sync::Arc<str>,
    /// The consented permission codes, space-separated (likewise).
    pub permissions: std::sync::Arc<str>,
    /// `TransactionFromDateTime`.
    pub from: Option<Timestamp>,
    /// `TransactionToDateTime`.
    pub to: Option<Timestamp>,
    /// The route and its path parameters.
    pub matched: Matched,
}

impl Grant {
    /// The TPP.
    pub fn client_id(&self) -> &str {
        &self.claims.client_id
    }

    /// The consent.
    pub fn consent_id(&self) -> &str {
        self.claims.consent_id.as_deref().unwrap_or("")
    }

    /// Whose data.
    pub fn customer_id(&self) -> &str {
        &self.claims.sub
    }

    /// Whether the consent includes `code` (Detail implies Basic).
    pub fn has(&self, code: &str) -> bool {
        self.permissions
            .split_whitespace()
            .any(|g| crate::consent::permissions::implies(g, code))
    }

    /// Whether the consent covers account `id`. The list is joined with single spaces when
    /// the customer authorises (`consent::authorise`); split on that byte, not on Unicode
    /// whitespace, and as bytes (a `char` pattern's searcher was a twentieth of the response
    /// filter), as this runs for every item of every response.
    pub fn covers(&self, id: &str) -> bool {
        let id = id.as_bytes();
        !id.is_empty()
            && self
                .account_ids
                .as_bytes()
                .split(|&b| b == b' ')
                .any(|a| a == id)
    }
}

/// [`tower::Layer`] that authorizes gateway requests (after [`super::AuthenticateLayer`]).
#[derive(Clone, Debug)]
pub struct AuthorizeLayer {
    state: AppState,
}

impl AuthorizeLayer {
    /// Checks consents, KYC and permissions with this app's storage.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorize {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service [`AuthorizeLayer`] wraps around the proxy.
#[derive(Clone, Debug)]
pub struct Authorize<S> {
    inner: S,
    state: AppState,
}

/// A refusal: the OB error code, what failed, and the audit reason.
struct Refusal {
    code: &'static str,
    message: String,
    reason: &'static str,
}

fn refusal(code: &'static str, reason: &'static str, message: String) -> Refusal {
    Refusal {
        code,
        message,
        reason,
    }
}

async fn decide(
    state: &AppState,
    path: &str,
    principal: &Principal,
) -> Result<Grant, Result<Refusal, Response>> {
    let claims = &principal.claims;
    let consent_id = claims.consent_id.as_deref().unwrap_or("");
    let Some(matched) = route_map::lookup(path) else {
        return Err(Err(ApiError::NotFound {
            message: "no such account-information route".into(),
        }
        .into_response()));
    };
    let deny = |denial: Denial| {
        let code = match denial {
            Denial::NotFound => "UK.OBIE.Resource.ConsentMismatch",
            _ => "UK.OBIE.Resource.InvalidConsentStatus",
        };
        refusal(code, denial.code(), denial.describe(consent_id))
    };
    let cache = &state.decisions;
    let consent = match cache.consent(state, consent_id).await {
        Ok(c) => c,
        Err(e) => return Err(Err(ApiError::from(e).into_response())),
    };
    if let Err(denial) = crate::consent::usable(
        consent
            .as_deref()
            .map(super::cache::GatewayConsent::standing),
        &claims.client_id,
        state.clock.now(),
    ) {
        return Err(Ok(deny(denial)));
    }
    let Some(consent) = consent else {
        return Err(Ok(deny(Denial::NotFound)));
    };
    let customer = consent.customer_id.as_deref().unwrap_or("");
    let kyc = match cache.kyc(state, customer).await {
        Ok(k) => k,
        Err(e) => return Err(Err(ApiError::from(e).into_response())),
    };
    if let Err(denial) = crate::consent::kyc_allows(kyc) {
        return Err(Ok(deny(denial)));
    }
    if consent.customer_id.as_deref() != Some(claims.sub.as_str()) {
        return Err(Ok(refusal(
            "UK.OBIE.Resource.ConsentMismatch",
            "customer_mismatch",
            "the token's subject is not the consent's customer".into(),
        )));
    }
    let grant = Grant {
        claims: claims.clone(),
        account_ids: consent.account_ids.clone(),
        permissions: consent.permissions.clone(),
        from: consent.from,
        to: consent.to,
        matched,
    };
    if let Err(missing) = route_map::permits_by(|code| grant.has(code), grant.matched.route.need) {
        return Err(Ok(refusal(
            "UK.OBIE.Resource.ConsentMismatch",
            "permission_missing",
            format!(
                "consent {} does not grant {missing}, which {} needs",
                grant.consent_id(),
                grant.matched.route.template
            ),
        )));
    }
    if let Some(account) = &grant.matched.account_id {
        if !grant.covers(account) {
            return Err(Ok(refusal(
                "UK.OBIE.Resource.ConsentMismatch",
                "account_not_consented",
                format!(
                    "account {account} is not covered by consent {}",
                    grant.consent_id()
                ),
            )));
        }
    }
    Ok(grant)
}

impl<S> Service<Request> for Authorize<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            let Some(principal) = req.extensions().get::<Principal>().cloned() else {
                // Mounted without AuthenticateLayer in front: refuse rather than guess.
                return Ok(ApiError::Unauthorized {
                    message: "no authenticated principal".into(),
                    challenge: Some("Bearer error=\"invalid_token\""),
                }
                .into_response());
            };
            let path = req.uri().path();
            let interaction = super::access_log::interaction_of(&req);
            if let Some(limited) =
                super::rate_limit::over_limit(&state, &principal, path, interaction).await
            {
                return Ok(limited);
            }
            let started = std::time::Instant::now();
            let decision = decide(&state, path, &principal).await;
            let reason = match &decision {
                Ok(_) => "ok",
                Err(Ok(r)) => r.reason,
                Err(Err(_)) => "unknown_route_or_error",
            };
            let audited = state
                .access_log
                .decided(
                    &state,
                    started,
                    Decision {
                        client_id: Some(&principal.claims.client_id),
                        consent_id: principal.claims.consent_id.as_deref(),
                        reason,
                        allowed: decision.is_ok(),
                        path,
                        interaction,
                    },
                )
                .await;
            match decision {
                // The node is stopping and its access log with it: an access nothing would
                // record does not happen (the TPP retries on another node).
                Ok(_) if !audited => Ok(ApiError::unavailable().into_response()),
                Ok(grant) => {
                    req.extensions_mut().insert(grant);
                    inner.call(req).await
                }
                Err(Err(response)) => Ok(response),
                Err(Ok(r)) => Ok(ApiError::OpenBanking {
                    status: StatusCode::FORBIDDEN,
                    errors: vec![ObError {
                        code: r.code,
                        message: r.message,
                        path: None,
                    }],
                }
                .into_response()),
            }
        })
    }
}

/// A grant for unit tests: client `cl_1`, consent `aac-1`, customer `cus_1`, account `a1`,
/// transactions from 2026-01-01 to 2026-06-30, on `path`'s route.
#[cfg(test)]
pub(crate) fn test_grant(path: &str, permissions: &[&str]) -> Grant {
    Grant {
        claims: std::sync::Arc::new(crate::oauth::jwt::AccessClaims {
            iss: "https://obgate.example".into(),
            sub: "cus_1".into(),
            aud: "https://obgate.example".into(),
            exp: 0,
            iat: 0,
            nbf: 0,
            jti: "jti".into(),
            client_id: "cl_1".into(),
            scope: "accounts".into(),
            consent_id: Some("aac-1".into()),
        }),
        account_ids: "a1".into(),
        permissions: permissions.join(" ").into(),
        from: crate::consent::parse_date_time("2026-01-01T00:00:00+00:00"),
        to: crate::consent::parse_date_time("2026-06-30T23:59:59+00:00"),
        matched: route_map::lookup(path).expect("a known route"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::permissions::PERMISSIONS;
    use crate::gateway::route_map::{permits, ROUTES};
    use proptest::prelude::*;

    fn grant(permissions: &[&str]) -> Grant {
        test_grant("/open-banking/v3.1/aisp/accounts", permissions)
    }

    #[test]
    fn the_grant_names_the_tokens_client_consent_and_customer() {
        let g = grant(&["ReadAccountsBasic"]);
        assert_eq!(
            (g.client_id(), g.consent_id(), g.customer_id()),
            ("cl_1", "aac-1", "cus_1")
        );
    }

    proptest! {
        /// The gateway asks the grant itself (`permits_by` with `Grant::has`) what the
        /// permission rules answer for its list, on every route.
        #[test]
        fn a_grant_permits_what_its_permission_list_permits(
            granted in proptest::sample::subsequence(
                PERMISSIONS.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
                0..=PERMISSIONS.len(),
            )
        ) {
            let g = grant(&granted);
            for r in ROUTES.iter() {
                prop_assert_eq!(
                    route_map::permits_by(|code| g.has(code), r.need),
                    permits(&granted, r.need),
                    "{}", r.template
                );
            }
        }
    }
}
