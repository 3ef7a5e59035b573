//! The last gateway step: the request goes to the bank's account API, and the answer comes
//! back shaped by the consent.
//!
//! - hyper's pooled client (hyper-util) for an `upstream.url`; in sandbox mode with no URL,
//!   the built-in [`crate::sandbox_bank`] answers in-process through the same code path.
//! - Outgoing headers: `Authorization`, `Cookie`, hop-by-hop headers and anything the client
//!   sent as `x-obgate-*` or `x-forwarded-*` are dropped; obgate adds `x-obgate-customer-id`,
//!   `x-obgate-consent-id`, `x-obgate-client-id`, `x-fapi-interaction-id`,
//!   `x-forwarded-proto`, `x-forwarded-for` (the connecting peer, never the client's own
//!   claim) and the configured upstream credential: a static header (`upstream.credential`)
//!   and/or a TLS client certificate (`upstream.client_cert`, mTLS).
//! - `fromBookingDateTime`/`toBookingDateTime` are clamped to the consent's transaction window.
//! - JSON answers are read (at most `upstream.max_body`), filtered ([`super::filter`]) and their
//!   links rewritten; other bodies (statement files) stream through.
//! - Unreachable → `502`, too slow → `504`, an upstream 4xx/5xx keeps its status with obgate's
//!   own error body (nothing of the upstream's internals reaches the TPP).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::ServiceExt;

use super::authorize::Grant;
use super::route_map::Shape;
use crate::config::UpstreamConfig;
use crate::error::{ApiError, ObError};
use crate::http::middleware::{InteractionId, INTERACTION_ID};
use crate::state::AppState;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// Where account data comes from.
pub enum Upstream {
    /// The bank's API over HTTP(S).
    Http(Box<HttpUpstream>),
    /// The built-in sandbox bank, called in-process.
    Sandbox(Router),
}

/// The bank's API over HTTP(S).
pub struct HttpUpstream {
    /// Pooled client.
    client: HttpsClient,
    /// Base URL (scheme, authority, optional path prefix).
    base: url::Url,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::Http(h) => write!(f, "Upstream::Http({})", h.base),
            Upstream::Sandbox(_) => f.write_str("Upstream::Sandbox"),
        }
    }
}

/// The proxy: the upstream and the limits it is called with.
#[derive(Debug)]
pub struct Proxy {
    upstream: Upstream,
    timeout: Duration,
    max_body: usize,
    credential: Option<(HeaderName, HeaderValue)>,
}

impl Proxy {
    /// Builds the proxy from config (the sandbox bank when no upstream URL is set).
    pub fn new(config: &UpstreamConfig, clock: std::sync::Arc<dyn crate::clock::Clock>) -> Self {
        let upstream = match &config.url {
            Some(base) => {
                let mut http = HttpConnector::new();
                http.set_connect_timeout(Some(config.connect_timeout));
                http.enforce_http(false);
                let tls = hyper_rustls::HttpsConnectorBuilder::new();
                let tls = match &config.tls {
                    Some(c) => tls.with_tls_config(rustls::ClientConfig::clone(c)),
                    None => tls.with_webpki_roots(),
                };
                let https = tls.https_or_http().enable_http1().wrap_connector(http);
                let client = Client::builder(TokioExecutor::new())
                    .pool_max_idle_per_host(config.pool_size)
                    .build(https);
                Upstream::Http(Box::new(HttpUpstream {
                    client,
                    base: base.clone(),
                }))
            }
            None => Upstream::Sandbox(crate::sandbox_bank::router(clock)),
        };
        let credential = config.credential.as_ref().and_then(|c| {
            let (name, value) = c.expose().split_once(':')?;
            Some((
                HeaderName::try_from(name.trim()).ok()?,
                HeaderValue::try_from(value.trim()).ok()?,
            ))
        });
        Self {
            upstream,
            timeout: config.timeout,
            max_body: config.max_body,
            credential,
        }
    }
}

/// Why the upstream gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// Connection refused, reset, DNS, TLS: a 502.
    Unreachable,
    /// No answer within `upstream.timeout`: a 504.
    Timeout,
}

impl Proxy {
    /// One GET to the upstream with these headers, within the timeout.
    pub async fn call(
        &self,
        path_and_query: &str,
        headers: HeaderMap,
    ) -> Result<Response, UpstreamError> {
        let request = |uri: Result<Uri, _>| -> Result<axum::http::Request<Body>, UpstreamError> {
            let uri: Uri =
                uri.map_err(|_: axum::http::uri::InvalidUri| UpstreamError::Unreachable)?;
            let mut out = axum::http::Request::get(uri)
                .body(Body::empty())
                .map_err(|_| UpstreamError::Unreachable)?;
            *out.headers_mut() = headers;
            Ok(out)
        };
        let call = async {
            match &self.upstream {
                Upstream::Http(h) => {
                    let uri = format!("{}{path_and_query}", h.base.as_str().trim_end_matches('/'));
                    // From the String itself: parsing a `&str` would copy it again.
                    h.client
                        .request(request(Uri::try_from(uri))?)
                        .await
                        .map(|r| r.map(Body::new))
                        .map_err(|e| {
                            tracing::warn!(error = %e, "upstream unreachable");
                            UpstreamError::Unreachable
                        })
                }
                Upstream::Sandbox(router) => router
                    .clone()
                    .oneshot(request(Uri::try_from(path_and_query))?)
                    .await
                    .map_err(|_| UpstreamError::Unreachable),
            }
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or(Err(UpstreamError::Timeout))
    }

    /// A customer's accounts as the upstream lists them (for the bank's consent UI).
    pub async fn accounts_of(
        &self,
        customer_id: &str,
        interaction: &str,
    ) -> Result<Vec<serde_json::Value>, UpstreamError> {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::try_from(customer_id) {
            headers.insert(CUSTOMER_ID.clone(), v);
        }
        if let Ok(v) = HeaderValue::try_from(interaction) {
            headers.insert(INTERACTION_ID.clone(), v);
        }
        if let Some((name, value)) = &self.credential {
            headers.insert(name.clone(), value.clone());
        }
        let res = self
            .call(&format!("{}/accounts", super::route_map::PREFIX), headers)
            .await?;
        if !res.status().is_success() {
            return Err(UpstreamError::Unreachable);
        }
        let bytes = http_body_util::Limited::new(res.into_body(), self.max_body)
            .collect()
            .await
            .map_err(|_| UpstreamError::Unreachable)?
            .to_bytes();
        let body: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|_| UpstreamError::Unreachable)?;
        Ok(body["Data"]["Account"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

/// The headers obgate adds to every upstream request. Built once: a header name given as a
/// `&str` is parsed and checked again at every insert, six times a request (about 2 % of a
/// gateway request's instructions under callgrind; BENCHMARKS.md, tenth pass).
static CUSTOMER_ID: HeaderName = HeaderName::from_static("x-obgate-customer-id");
static CONSENT_ID: HeaderName = HeaderName::from_static("x-obgate-consent-id");
static CLIENT_ID: HeaderName = HeaderName::from_static("x-obgate-client-id");
static FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Request headers never passed to the bank: hop-by-hop ones, the TPP's credentials, any
/// that would pass as obgate's own or a proxy's, and those that ask for an answer the filter
/// cannot read (another encoding, a byte range, a conditional `304`).
fn dropped(name: &HeaderName) -> bool {
    let n = name.as_str();
    HOP_BY_HOP.contains(&n)
        || n == "authorization"
        || n == "cookie"
        || n == "forwarded"
        || n == "content-length"
        || n == "accept-encoding"
        || n == "range"
        || n.starts_with("if-")
        || n.starts_with("x-obgate-")
        || n.starts_with("x-forwarded-")
        || n.starts_with("x-sandbox-")
}

/// Whether a content type is JSON (`application/json` or a `+json` type, any case).
fn is_json(content_type: &HeaderValue) -> bool {
    let Ok(value) = content_type.to_str() else {
        return false;
    };
    let media = value.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/json")
        || media
            .get(media.len().saturating_sub(5)..)
            .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json"))
}

/// The query sent upstream: booking dates (statement dates on statement lists) clamped to
/// the consent's window.
fn upstream_query(query: Option<&str>, grant: &Grant) -> Option<String> {
    let mut pairs: Vec<(String, String)> = query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let keys = match grant.matched.route.shape {
        Shape::Transactions => Some(("fromBookingDateTime", "toBookingDateTime")),
        Shape::Statements => Some(("fromStatementDateTime", "toStatementDateTime")),
        _ => None,
    };
    if let Some((from_key, to_key)) = keys {
        let fmt = |t: crate::clock::Timestamp| crate::consent::ob_routes::ob_time(t);
        let clamp = |key: &str,
                     bound: Option<crate::clock::Timestamp>,
                     later: bool,
                     pairs: &mut Vec<(String, String)>| {
            let Some(bound) = bound else { return };
            let current = pairs.iter().position(|(k, _)| k == key);
            let asked = current.and_then(|i| lenient_date_time(&pairs[i].1));
            let value = match asked {
                Some(a) if (later && a > bound) || (!later && a < bound) => a,
                _ => bound,
            };
            match current {
                Some(i) => pairs[i].1 = fmt(value),
                None => pairs.push((key.to_owned(), fmt(value))),
            }
        };
        clamp(from_key, grant.from, true, &mut pairs);
        clamp(to_key, grant.to, false, &mut pairs);
    }
    if pairs.is_empty() {
        return None;
    }
    Some(
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish(),
    )
}

/// A booking-date query value: RFC 3339, or (as the AIS profile allows) a date-time without
/// an offset or a bare date, read as UTC.
fn lenient_date_time(s: &str) -> Option<crate::clock::Timestamp> {
    crate::consent::parse_date_time(s)
        .or_else(|| crate::consent::parse_date_time(&format!("{s}Z")))
        .or_else(|| crate::consent::parse_date_time(&format!("{s}T00:00:00Z")))
}

/// Why a statement's file may not be passed on: the statement is outside the consent's window
/// or unknown to the bank (404, as the list answers it: not there), or the bank failed or its
/// description of the statement is unusable (502).
async fn statement_refusal(
    proxy: &Proxy,
    statement: &str,
    headers: HeaderMap,
    grant: &Grant,
) -> Option<Response> {
    let answer = match proxy.call(statement, headers).await {
        Ok(r) => r,
        Err(UpstreamError::Timeout) => return Some(ApiError::GatewayTimeout.into_response()),
        Err(UpstreamError::Unreachable) => return Some(ApiError::BadGateway.into_response()),
    };
    let not_shown = || {
        ApiError::OpenBanking {
            status: axum::http::StatusCode::NOT_FOUND,
            errors: vec![ObError {
                code: "UK.OBIE.Resource.NotFound",
                message: "no such statement within this consent's transaction window".into(),
                path: None,
            }],
        }
        .into_response()
    };
    let status = answer.status();
    if status.is_server_error() {
        // The bank failed: said as for any upstream failure, not as a missing statement.
        return Some(ApiError::BadGateway.into_response());
    }
    if !status.is_success() {
        return Some(not_shown());
    }
    let bytes = match http_body_util::Limited::new(answer.into_body(), proxy.max_body)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return Some(ApiError::BadGateway.into_response()),
    };
    (!super::filter::shows_statement(&bytes, grant)).then(not_shown)
}

/// The axum handler at the end of the gateway stack.
pub async fn handle(State(state): State<AppState>, mut req: Request) -> Response {
    let Some(grant) = req.extensions_mut().remove::<Grant>() else {
        return ApiError::internal("gateway proxy reached without a grant").into_response();
    };
    let interaction = req
        .extensions()
        .get::<InteractionId>()
        .map_or("", |i| i.0.as_str());
    let proxy = &state.gateway;
    let path = req.uri().path();
    let query = upstream_query(req.uri().query(), &grant);
    // Room for the client's headers and the seven obgate adds, so the map is allocated once
    // rather than grown while it is filled.
    let mut headers = HeaderMap::with_capacity(req.headers().len() + 7);
    for (name, value) in req.headers() {
        if !dropped(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    let add = |headers: &mut HeaderMap, name: &HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::try_from(value) {
            headers.insert(name.clone(), v);
        }
    };
    if grant.matched.route.shape != Shape::File {
        // The filter reads JSON only: ask for nothing else (a TPP asking for another type
        // would otherwise get an answer the filter refuses).
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    }
    add(&mut headers, &CUSTOMER_ID, grant.customer_id());
    add(&mut headers, &CONSENT_ID, grant.consent_id());
    add(&mut headers, &CLIENT_ID, grant.client_id());
    add(&mut headers, &INTERACTION_ID, interaction);
    let proto = match state.config.public_url.scheme() {
        // The usual two without a copy per request.
        "https" => Ok(HeaderValue::from_static("https")),
        "http" => Ok(HeaderValue::from_static("http")),
        other => HeaderValue::try_from(other),
    };
    if let Ok(proto) = proto {
        headers.insert(FORWARDED_PROTO.clone(), proto);
    }
    if let Some(peer) = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        // From the String itself, which the header value then owns (no second copy).
        if let Ok(v) = HeaderValue::try_from(peer.0.ip().to_string()) {
            headers.insert(FORWARDED_FOR.clone(), v);
        }
    }
    if let Some((name, value)) = &proxy.credential {
        headers.insert(name.clone(), value.clone());
    }
    let path_and_query = match &query {
        Some(q) => std::borrow::Cow::Owned(format!("{path}?{q}")),
        None => std::borrow::Cow::Borrowed(path),
    };
    if grant.matched.route.shape == Shape::File && (grant.from.is_some() || grant.to.is_some()) {
        // A statement's file only when the statement itself is inside the consent's window
        // (as the statement list shows it): asked of the bank first.
        let mut asked = headers.clone();
        asked.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let statement = path.strip_suffix("/file").unwrap_or(path);
        if let Some(refusal) = statement_refusal(proxy, statement, asked, &grant).await {
            return refusal;
        }
    }
    let started = std::time::Instant::now();
    let upstream = match proxy.call(&path_and_query, headers).await {
        Ok(r) => r,
        Err(UpstreamError::Timeout) => return ApiError::GatewayTimeout.into_response(),
        Err(UpstreamError::Unreachable) => return ApiError::BadGateway.into_response(),
    };
    tracing::debug!(
        upstream_ms = started.elapsed().as_millis() as u64,
        "upstream answered"
    );
    let status = upstream.status();
    if !status.is_success() {
        // Keep the status, never the upstream's body or headers.
        return ApiError::OpenBanking {
            status,
            errors: vec![ObError {
                code: if status.is_client_error() {
                    "UK.OBIE.Resource.NotFound"
                } else {
                    "UK.OBIE.UnexpectedError"
                },
                message: format!("the bank's account service answered {}", status.as_u16()),
                path: None,
            }],
        }
        .into_response();
    }
    let content_type = upstream
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    if grant.matched.route.shape == Shape::File {
        // A statement file (permission and account checked): streamed as it came.
        let mut res = Response::new(upstream.into_body());
        res.headers_mut().insert(header::CONTENT_TYPE, content_type);
        return res;
    }
    if !is_json(&content_type) {
        // Fail closed: what the filter cannot read would reach the TPP unfiltered.
        tracing::warn!(
            content_type = ?content_type,
            "upstream answered a filtered route with something other than JSON; refused"
        );
        return ApiError::BadGateway.into_response();
    }
    let (upstream, body) = upstream.into_parts();
    let bytes = match http_body_util::Limited::new(body, proxy.max_body)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            tracing::warn!(
                limit = proxy.max_body,
                "upstream answer unreadable or over upstream.max_body"
            );
            return ApiError::BadGateway.into_response();
        }
    };
    let body = match super::filter::reshape(&bytes, &grant, state.config.public_base()) {
        Ok(body) => body,
        Err(e) => {
            tracing::warn!(error = %e, "upstream answer cannot be filtered; refused");
            return ApiError::BadGateway.into_response();
        }
    };
    // The answer reuses the upstream answer's header map, emptied (none of the bank's headers
    // reach the TPP), so it allocates no map of its own: two allocations a gateway read.
    let mut headers = upstream.headers;
    headers.clear();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut res = Response::new(Body::from(body));
    *res.headers_mut() = headers;
    res
}
