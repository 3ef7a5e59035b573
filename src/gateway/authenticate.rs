//! The first gateway layer: a customer-bound bearer token, from the `Authorization` header
//! only, verified as the OAuth2 part verifies every access token (signature by `kid`, ES256/
//! PS256 only, `typ: at+jwt`, `iss`, `aud`, `exp`/`nbf`, the revocation list), kept verified
//! in [`super::cache`] by a hash of the token.
//!
//! Anything else — no token, a bad one, a token in the query string, a client-level token
//! (no consent), a token whose client has since been disabled — is `401` with
//! `WWW-Authenticate: Bearer error="invalid_token"` and no body, as the UK OB profile defines
//! it, and audited ([`super::access_log`]). A verified token travels on as a [`Principal`]
//! extension.
//!
//! The client is read from the decision caches ([`super::cache::DecisionCache::client`]),
//! which a disable clears on this node as it commits and on the others by `NOTIFY`: disabling
//! a client stops its live tokens at the next request, as it stops its token requests, not
//! when they expire.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::error::ApiError;
use crate::oauth::jwt::AccessClaims;
use crate::state::AppState;

/// The verified token of a gateway request.
#[derive(Clone, Debug)]
pub struct Principal {
    /// Its claims; `consent_id` is always set.
    pub claims: std::sync::Arc<AccessClaims>,
}

/// The boxed future the gateway services return.
pub type BoxFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// [`tower::Layer`] that authenticates gateway requests.
#[derive(Clone, Debug)]
pub struct AuthenticateLayer {
    state: AppState,
}

impl AuthenticateLayer {
    /// Verifies tokens with this app's keys, issuer, audience and revocation list.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for AuthenticateLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service [`AuthenticateLayer`] wraps around the rest of the stack.
#[derive(Clone, Debug)]
pub struct Authenticate<S> {
    inner: S,
    state: AppState,
}

fn refuse(message: &str) -> Response {
    ApiError::Unauthorized {
        message: message.to_owned(),
        challenge: Some("Bearer error=\"invalid_token\""),
    }
    .into_response()
}

/// Records a refusal of `req` in the access log. Only a denial is recorded here (Authorize
/// records the allow), so nothing is taken from the request for the record until one is.
fn denied<'a>(
    state: &'a AppState,
    started: std::time::Instant,
    req: &'a Request,
    reason: &'static str,
    client_id: Option<&'a str>,
    consent_id: Option<&'a str>,
) -> impl Future<Output = ()> + Send + 'a {
    // Borrow the parts, not the request: its body is not `Sync`, so a future holding
    // `&Request` could not be sent between threads.
    let decision = super::access_log::Decision {
        client_id,
        consent_id,
        reason,
        allowed: false,
        path: req.uri().path(),
        interaction: super::access_log::interaction_of(req),
    };
    // A denial goes out whether or not it could be recorded.
    let decided = state.access_log.decided(state, started, decision);
    async move {
        let _ = decided.await;
    }
}

/// The token of a request, or why there is none to accept.
pub fn bearer(req: &Request) -> Result<&str, &'static str> {
    let in_query = req
        .uri()
        .query()
        .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "access_token"));
    if in_query {
        return Err("a token in the query string is refused; send Authorization: Bearer");
    }
    bearer_header(req.headers()).ok_or("send Authorization: Bearer <access token>")
}

/// The token of an `Authorization: Bearer` header, if there is one (borrowed: the gateway
/// reads it on every request and needs no copy).
pub fn bearer_header(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, t)| scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty())
        .map(|(_, t)| t.trim())
}

impl<S> Service<Request> for Authenticate<S>
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
        // The clone that was polled ready is the one that serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            let started = std::time::Instant::now();
            let verified = match bearer(&req) {
                Ok(token) => state.decisions.token(&state, token).await,
                Err(why) => {
                    denied(&state, started, &req, "no_bearer_token", None, None).await;
                    return Ok(refuse(why));
                }
            };
            let claims = match verified {
                Ok(c) => c,
                Err(crate::oauth::jwt::TokenError::Unavailable) => {
                    // The database is away: retry later, the token may well be fine.
                    denied(&state, started, &req, "unavailable", None, None).await;
                    return Ok(crate::error::ApiError::unavailable().into_response());
                }
                Err(_) => {
                    denied(&state, started, &req, "invalid_token", None, None).await;
                    return Ok(refuse("the access token is not valid"));
                }
            };
            if claims.consent_id.is_none() {
                denied(
                    &state,
                    started,
                    &req,
                    "client_level_token",
                    Some(&claims.client_id),
                    None,
                )
                .await;
                return Ok(refuse(
                    "account data needs a customer-bound token (authorization_code, or client_credentials with authorization_details)",
                ));
            }
            match state.decisions.client(&state, &claims.client_id).await {
                Ok(Some(client)) if client.disabled_at.is_none() => {}
                Ok(_) => {
                    let consent = claims.consent_id.as_deref();
                    let client = Some(claims.client_id.as_str());
                    denied(&state, started, &req, "client_disabled", client, consent).await;
                    return Ok(refuse("the token's client is disabled"));
                }
                Err(_) => {
                    denied(&state, started, &req, "unavailable", None, None).await;
                    return Ok(crate::error::ApiError::unavailable().into_response());
                }
            }
            req.extensions_mut().insert(Principal { claims });
            inner.call(req).await
        })
    }
}
