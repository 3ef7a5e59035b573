//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format.
//!
//! Each app owns its registry (no global recorder), so several apps in one process (tests, a
//! bank embedding obgate) keep separate counts. Later parts add their families here.

use std::borrow::Cow;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::error::ApiError;
use crate::http::Routes;
use crate::state::AppState;

// Label values are borrowed where they are static (the common methods, the gateway's
// route templates, decision outcomes and reasons): a lookup of an existing series then
// allocates nothing, where owned strings cost six allocations a gateway request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: Cow<'static, str>,
    route: Cow<'static, str>,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: Cow<'static, str>,
    route: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    outcome: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: String,
    result: String,
}

/// The gateway's decision caches, in the order [`Metrics::cache_lookup`] indexes them.
const CACHES: [&str; 4] = ["token", "consent", "kyc", "client"];

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

/// The app's metric families.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    argon2: Counter,
    redis_errors: Counter,
    decisions: Family<DecisionLabels, Counter>,
    decision_latency: Histogram,
    upstream_latency: Histogram,
    /// `[cache][hit, miss]`, resolved once so the hot path does not build labels.
    cache_lookups: [[Counter; 2]; 4],
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every family registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("obgate");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "http_requests",
            "HTTP requests by method, matched route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and matched route",
            latency.clone(),
        );
        let argon2 = Counter::default();
        registry.register(
            "argon2_verifications",
            "Client secrets verified with argon2 (cache misses of client authentication)",
            argon2.clone(),
        );
        let redis_errors = Counter::default();
        registry.register(
            "redis_errors",
            "Failed calls to the Redis that shares limits between nodes (limits fell back to this node's own)",
            redis_errors.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "gateway_decisions",
            "Gateway access decisions by outcome (allowed, denied) and reason",
            decisions.clone(),
        );
        let decision_latency = latency_histogram();
        registry.register(
            "gateway_decision_duration_seconds",
            "Time the gateway spends deciding (token, consent, KYC, permission, account)",
            decision_latency.clone(),
        );
        let upstream_latency = latency_histogram();
        registry.register(
            "gateway_upstream_duration_seconds",
            "Time the bank's account API takes to answer the proxy",
            upstream_latency.clone(),
        );
        let lookups = Family::<CacheLabels, Counter>::default();
        registry.register(
            "gateway_cache_lookups",
            "Decision-cache lookups by cache (token, consent, kyc, client) and result (hit, miss)",
            lookups.clone(),
        );
        let counter = |cache: &str, result: &str| {
            lookups
                .get_or_create(&CacheLabels {
                    cache: cache.to_owned(),
                    result: result.to_owned(),
                })
                .clone()
        };
        let cache_lookups = CACHES.map(|c| [counter(c, "hit"), counter(c, "miss")]);
        Self {
            cache_lookups,
            registry,
            requests,
            latency,
            argon2,
            redis_errors,
            decisions,
            decision_latency,
            upstream_latency,
        }
    }

    /// Records one served request under its method and route template.
    pub fn observe_http(
        &self,
        method: Cow<'static, str>,
        route: Cow<'static, str>,
        status: u16,
        elapsed: Duration,
    ) {
        let labels = RouteLabels { method, route };
        self.latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        let RouteLabels { method, route } = labels;
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// Counts one argon2 verification.
    pub fn argon2_verification(&self) {
        self.argon2.inc();
    }

    /// Counts one failed Redis call.
    pub fn redis_error(&self) {
        self.redis_errors.inc();
    }

    /// Records one gateway decision and how long it took.
    pub fn gateway_decision(&self, outcome: &'static str, reason: &'static str, elapsed: Duration) {
        self.decisions
            .get_or_create(&DecisionLabels { outcome, reason })
            .inc();
        self.decision_latency.observe(elapsed.as_secs_f64());
    }

    /// Records how long the upstream took.
    pub fn upstream_call(&self, elapsed: Duration) {
        self.upstream_latency.observe(elapsed.as_secs_f64());
    }

    /// Counts one decision-cache lookup (`cache` one of token, consent, kyc).
    pub fn cache_lookup(&self, cache: &str, result: &str) {
        if let Some(i) = CACHES.iter().position(|c| *c == cache) {
            self.cache_lookups[i][usize::from(result != "hit")].inc();
        }
    }

    /// The OpenMetrics exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// `GET /metrics`.
pub fn routes() -> Routes<AppState> {
    Routes::new().get("/metrics", metrics)
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.encode() {
        Ok(body) => (
            [(
                CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => ApiError::internal(format!("metrics encoding failed: {e}")).into_response(),
    }
}
