//! The HTTP surface: every part's routes merged in one place, wrapped in the request-wide
//! layers, and served with graceful shutdown.
//!
//! Layers, outermost first:
//! 1. interaction id (so every response, even a 500, carries `x-fapi-interaction-id`);
//! 2. one tracing span per request (interaction id, method, matched route, status, latency);
//! 3. metrics per matched route;
//! 4. error rendering in the path's family, and `Cache-Control: no-store` on `/oauth2`, `/api`;
//! 5. panic catching (opaque 500 with an error id);
//! 6. request timeout (408), body limit (413).
//!
//! GET requests on the gateway's routes get the same layers without the router in front
//! ([`dispatch`]).

pub mod dispatch;
pub mod extract;
pub mod idempotency;
pub mod middleware;
pub mod routes;
pub mod validate;
pub mod wrap;

use std::future::Future;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{Method, StatusCode};
use axum::Router;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::field::Empty;
use wrap::AroundLayer;

use crate::state::AppState;
use middleware::InteractionId;
pub use routes::Routes;

/// What [`router`] builds.
pub struct Built {
    /// Every route, wrapped in the request-wide layers.
    pub router: Router,
    /// The gateway's routes as one service in the same layers, for [`serve`] to call without
    /// the router (see [`dispatch`]).
    pub gateway: dispatch::GatewayService,
    /// Every (method, path template) the router serves.
    pub routes: Vec<(Method, String)>,
}

/// Builds the complete router, the gateway's direct path and the list of routes served.
pub fn router(state: AppState) -> Built {
    let routes = Routes::new()
        .merge(crate::health::routes())
        .merge(crate::metrics::routes())
        .merge(crate::docs::routes())
        .merge(crate::oauth::routes())
        .merge(crate::oauth::client_routes(state.clone()))
        .merge(crate::admin::routes(state.clone()))
        .merge(crate::audit::routes::routes(state.clone()))
        .merge(crate::kyc::routes::routes(state.clone()))
        .merge(crate::monitoring::routes::routes(state.clone()))
        .merge(crate::events::routes::routes(state.clone()))
        .merge(crate::consent::ob_routes::routes())
        .merge(crate::consent::bank_routes::routes(state.clone()))
        .merge(crate::gateway::routes(state.clone()))
        .merge(crate::gateway::bank_routes(state.clone()))
        .merge(crate::pages::routes());
    let (router, list) = routes.into_parts();

    let http = &state.config.http;
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request| {
            // Field values are read only when the span is enabled: a node logging at `warn`
            // pays nothing here per request.
            tracing::info_span!(
                "request",
                interaction_id = %req
                    .extensions()
                    .get::<InteractionId>()
                    .map_or("", |i| i.0.as_str()),
                method = %req.method(),
                route = %middleware::RouteName::of(req).as_str(),
                status = Empty,
                latency_ms = Empty,
            )
        })
        .on_request(())
        .on_response(
            |res: &axum::response::Response, latency: Duration, span: &tracing::Span| {
                span.record("status", res.status().as_u16());
                span.record("latency_ms", latency.as_secs_f64() * 1000.0);
                tracing::info!("served");
            },
        )
        .on_failure(());

    // One `Router::layer` call for the whole stack: each call boxes every route again, and a
    // boxed layer costs a clone, an allocation and a boxed future per request. Our own layers
    // are `Around`s, not `from_fn` (which clones and boxes the stack beneath it per request;
    // see `wrap`). Listed from the outermost (first to see the request) to the innermost.
    let stack = tower::ServiceBuilder::new()
        .layer(AroundLayer(middleware::EchoInteractionId))
        .layer(trace)
        .layer(AroundLayer(middleware::RecordMetrics(state.clone())))
        .layer(AroundLayer(middleware::RenderErrors))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(AroundLayer(crate::gateway::path::CanonicalOnly))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            http.request_timeout,
        ))
        .layer(AroundLayer(middleware::LimitBody::new(&state.config)))
        .layer(DefaultBodyLimit::max(http.body_limit));
    let proxy_state = state.clone();
    let gateway = dispatch::GatewayService::new(
        tower::ServiceBuilder::new()
            .map_response(|res: axum::http::Response<_>| res.map(axum::body::Body::new))
            .layer(stack.clone())
            .layer(crate::gateway::checks(state.clone()))
            .service_fn(move |req: Request| {
                let state = proxy_state.clone();
                async move {
                    let res = crate::gateway::proxy::handle(axum::extract::State(state), req).await;
                    Ok::<_, std::convert::Infallible>(res)
                }
            }),
    );
    let router = router
        .fallback(middleware::not_found)
        .layer(stack)
        .with_state(state);
    Built {
        router,
        gateway,
        routes: list,
    }
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested, finishing in-flight requests");
}

/// Serves `app` (the router, and the gateway's direct path) on `listener` until `shutdown`
/// completes, then lets in-flight requests finish for at most `grace` before returning.
///
/// hyper's connection builder is used directly, not `axum::serve`, because only with a timer
/// does hyper enforce `header_read_timeout`: without it a client that sends its headers a
/// byte at a time (slowloris), or opens a connection and sends nothing, holds a socket for
/// ever. Here such a connection is closed `header_timeout` after it started, and a stalled
/// body is ended by the request timeout layer.
pub async fn serve(
    listener: TcpListener,
    app: dispatch::Dispatch,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    header_timeout: Duration,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: keep
                    // serving the connections already open, and try again shortly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // hyper's header timer starts with the first byte; a connection that sends
            // nothing at all is closed after the same time.
            let mut first = [0u8; 1];
            match tokio::time::timeout(header_timeout, stream.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    app.call(req.map(axum::body::Body::new))
                },
            );
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_s = grace.as_secs_f64(), "shutdown grace expired, closing remaining connections");
        }
    }
    Ok(())
}
