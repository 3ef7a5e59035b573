//! The request-wide layers: interaction id, error rendering, cache headers, metrics.

use std::borrow::Cow;
use std::convert::Infallible;
use std::ops::ControlFlow;
use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};

use super::wrap::Around;
use crate::error::{ApiError, Family};
use crate::state::AppState;

/// The Open Banking correlation header, echoed on every response.
pub static INTERACTION_ID: HeaderName = HeaderName::from_static("x-fapi-interaction-id");

/// The request's correlation id: the client's `x-fapi-interaction-id` when it sent a usable
/// one (1–128 characters of `A-Za-z0-9._:-`), otherwise a new UUID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InteractionId(pub String);

impl InteractionId {
    fn from_header(value: Option<&HeaderValue>) -> Self {
        let usable = value.and_then(|v| v.to_str().ok()).filter(|s| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        });
        match usable {
            Some(s) => Self(s.to_owned()),
            // Time-ordered, like the audit row ids, so the audit index on interaction ids
            // grows at its end rather than at a random page per request.
            None => Self(uuid::Uuid::now_v7().to_string()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for InteractionId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(match parts.extensions.get::<InteractionId>() {
            Some(id) => id.clone(),
            None => InteractionId::from_header(parts.headers.get(&INTERACTION_ID)),
        })
    }
}

/// Outermost layer: fixes the interaction id for the request and echoes it on the response.
#[derive(Clone, Copy, Debug)]
pub struct EchoInteractionId;

impl Around for EchoInteractionId {
    type Ctx = Option<HeaderValue>;

    fn before(&self, req: &mut Request) -> ControlFlow<Response, Self::Ctx> {
        let id = InteractionId::from_header(req.headers().get(&INTERACTION_ID));
        let header = HeaderValue::from_str(&id.0).ok();
        req.extensions_mut().insert(id);
        ControlFlow::Continue(header)
    }

    fn after(&self, header: Self::Ctx, mut res: Response) -> Response {
        if let Some(h) = header {
            res.headers_mut().insert(INTERACTION_ID.clone(), h);
        }
        res
    }
}

/// Renders errors in the family of the request path, and turns any framework default error
/// (axum's plain-text rejections, 405, the body limit's 413, the timeout's 408, a panic) into
/// the same bodies. Also marks `/oauth2` and `/api` responses as not cacheable.
#[derive(Clone, Copy, Debug)]
pub struct RenderErrors;

impl Around for RenderErrors {
    type Ctx = Family;

    fn before(&self, req: &mut Request) -> ControlFlow<Response, Family> {
        ControlFlow::Continue(Family::of(req.uri().path()))
    }

    fn after(&self, family: Family, mut res: Response) -> Response {
        let error = match res.extensions_mut().remove::<ApiError>() {
            Some(e) => Some(e),
            None if is_framework_error(&res) => Some(ApiError::from_status(res.status())),
            None => None,
        };
        if let Some(error) = error {
            let mut rendered = error.render(family);
            for (name, value) in res.headers() {
                if name != CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
                    rendered.headers_mut().insert(name.clone(), value.clone());
                }
            }
            res = rendered;
        }
        if matches!(family, Family::OAuth | Family::Admin) {
            let h = res.headers_mut();
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        }
        res
    }
}

/// Marks a response whose error body is deliberate (an HTML page for a browser), so
/// [`RenderErrors`] leaves it as it is.
#[derive(Clone, Copy, Debug)]
pub struct DeliberatePage;

fn is_framework_error(res: &Response) -> bool {
    if res.extensions().get::<DeliberatePage>().is_some() {
        return false;
    }
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return false;
    }
    let ct = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    !ct.contains("json")
}

/// The route template of a request the server hands to the gateway directly (see
/// [`super::dispatch`]): axum's router, which would set [`MatchedPath`], is not on that path.
#[derive(Clone, Copy, Debug)]
pub struct DirectRoute(pub &'static str);

/// The route a request was matched to, for its span and its metrics: the template, never the
/// raw path (which would explode the label set).
#[derive(Clone, Debug)]
pub enum RouteName {
    /// Matched by axum's router.
    Matched(MatchedPath),
    /// A gateway route, dispatched without the router.
    Direct(&'static str),
    /// No route (a 404).
    Unmatched,
}

impl RouteName {
    /// The route `req` was matched to, by the router or by the dispatcher.
    pub fn of(req: &Request) -> Self {
        if let Some(m) = req.extensions().get::<MatchedPath>() {
            return Self::Matched(m.clone());
        }
        match req.extensions().get::<DirectRoute>() {
            Some(d) => Self::Direct(d.0),
            None => Self::Unmatched,
        }
    }

    /// The template as a metric label: borrowed where it is static (a gateway route on the
    /// direct path, `unmatched`), so counting it allocates nothing.
    pub fn label(&self) -> Cow<'static, str> {
        match self {
            Self::Matched(m) => Cow::Owned(m.as_str().to_owned()),
            Self::Direct(t) => Cow::Borrowed(t),
            Self::Unmatched => Cow::Borrowed("unmatched"),
        }
    }

    /// The template, or `unmatched`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Matched(m) => m.as_str(),
            Self::Direct(t) => t,
            Self::Unmatched => "unmatched",
        }
    }
}

/// A method as a metric label: the standard ones by name, any other as `other`. Clients choose
/// the method, and HTTP accepts any token as one: a label per made-up method would let anyone
/// grow the metric set (and `/metrics`) without bound.
fn method_label(method: &Method) -> Cow<'static, str> {
    const COMMON: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
    ];
    Cow::Borrowed(
        COMMON
            .iter()
            .find(|m| **m == method.as_str())
            .copied()
            .unwrap_or("other"),
    )
}

/// Counts requests and observes latency per matched route (never the raw path, which would
/// explode the label set).
#[derive(Clone, Debug)]
pub struct RecordMetrics(pub AppState);

impl Around for RecordMetrics {
    type Ctx = (Method, RouteName, Instant);

    fn before(&self, req: &mut Request) -> ControlFlow<Response, Self::Ctx> {
        // Both are cheap to keep: the matched path is shared, a standard method is a constant.
        ControlFlow::Continue((req.method().clone(), RouteName::of(req), Instant::now()))
    }

    fn after(&self, (method, route, start): Self::Ctx, res: Response) -> Response {
        self.0.metrics.observe_http(
            method_label(&method),
            route.label(),
            res.status().as_u16(),
            start.elapsed(),
        );
        res
    }
}

/// Unknown routes: a 404 in the family of the path.
pub async fn not_found() -> Response {
    ApiError::NotFound {
        message: "no such route; see /openapi.yaml for the API".into(),
    }
    .into_response()
}

/// Panics become an opaque 500 whose detail is logged under the error id.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("panic");
    ApiError::internal(format!("handler panicked: {detail}")).into_response()
}

/// Caps every request body at `http.body_limit` while it streams (a `Content-Length` over the
/// cap is refused before reading), except KYC document uploads, which may carry base64 images
/// up to `kyc.document_max_bytes` each.
#[derive(Clone, Copy, Debug)]
pub struct LimitBody {
    /// Every other request's cap.
    pub body_limit: usize,
    /// A KYC document upload's cap.
    pub document_limit: usize,
}

impl LimitBody {
    /// The caps `config` sets.
    pub fn new(config: &crate::config::Config) -> Self {
        Self {
            body_limit: config.http.body_limit,
            document_limit: config.kyc.document_max_bytes.saturating_mul(8) + 64 * 1024,
        }
    }
}

impl Around for LimitBody {
    type Ctx = ();

    fn before(&self, req: &mut Request) -> ControlFlow<Response> {
        let limit = if req.uri().path().ends_with("/verification-kyc/documents") {
            self.document_limit
        } else {
            self.body_limit
        };
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return ControlFlow::Break(ApiError::PayloadTooLarge.into_response());
        }
        let body = std::mem::take(req.body_mut());
        *req.body_mut() = axum::body::Body::new(http_body_util::Limited::new(body, limit));
        ControlFlow::Continue(())
    }
}
