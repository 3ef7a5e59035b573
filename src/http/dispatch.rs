//! Which service answers a request. GET requests on the gateway's routes (TPP reads of
//! account data, nearly all of the traffic) go straight to the gateway's service: the
//! request-wide layers, the gateway's checks and the proxy, composed once. Everything else
//! goes to axum's router, which also serves the gateway routes for other methods (HEAD, and
//! the 405 for the rest) and for an application that embeds the router.
//!
//! The router is not free on the hot path: it matches the path, records the matched path and
//! its parameters, and clones and boxes each route's service and future on every request. On
//! the gateway load that was 15 allocations and about 8 % of obgate's CPU a request
//! (BENCHMARKS.md, eleventh pass). Both paths run the same layers in the same order, and the
//! route's template is recorded for the span and the metrics as the router would record it
//! ([`super::middleware::RouteName`]).

use std::convert::Infallible;
use std::future::Future;

use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;
use axum::Router;
use futures_util::future::Either;
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;

use super::middleware::DirectRoute;
use crate::gateway::route_map;

/// The gateway's routes as one service: the request-wide layers, the checks, the proxy.
pub type GatewayService = BoxCloneSyncService<Request, Response, Infallible>;

/// The router and the gateway's direct path, cloned into each connection.
#[derive(Clone)]
pub struct Dispatch {
    router: Router,
    gateway: GatewayService,
}

impl Dispatch {
    /// Serves with `router`, and with `gateway` for GET requests on the gateway's routes.
    pub fn new(router: Router, gateway: GatewayService) -> Self {
        Self { router, gateway }
    }

    /// Answers one request by the service that takes it (see the module docs).
    pub fn call(
        &self,
        mut req: Request,
    ) -> impl Future<Output = Result<Response, Infallible>> + Send + 'static {
        if req.method() == Method::GET {
            if let Some(template) = route_map::template(req.uri().path()) {
                req.extensions_mut().insert(DirectRoute(template));
                return Either::Left(self.gateway.clone().oneshot(req));
            }
        }
        Either::Right(self.router.clone().oneshot(req))
    }
}
