//! A request-wide layer whose work before and after the inner service is synchronous, served
//! without cloning or boxing anything per request.
//!
//! axum's `from_fn` middleware clones the whole service beneath it, boxes that clone and boxes
//! the middleware's future on every request; with several such layers stacked, each request
//! cloned the stack below it once per layer. The request-wide layers (interaction id, metrics,
//! error rendering, canonical paths, body limit) only look at the request before it goes in and
//! at the response after it comes out, so they implement [`Around`] instead: [`AroundLayer`]
//! calls the inner service directly and maps its future in place, as tower-http's own layers do.

use std::convert::Infallible;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use tower::{Layer, Service};

/// What a request-wide layer does around the inner service.
pub trait Around: Clone + Send + Sync + 'static {
    /// What [`Around::before`] hands to [`Around::after`] for one request.
    type Ctx: Send + 'static;

    /// Looks at (and may change) the request; `Break(response)` answers it without calling
    /// the inner service.
    fn before(&self, req: &mut Request) -> ControlFlow<Response, Self::Ctx>;

    /// Looks at (and may replace) the inner service's response; by default passes it on.
    fn after(&self, ctx: Self::Ctx, res: Response) -> Response {
        let _ = ctx;
        res
    }
}

/// Wraps a service in an [`Around`].
#[derive(Clone, Debug)]
pub struct AroundLayer<A>(pub A);

impl<A: Around, S> Layer<S> for AroundLayer<A> {
    type Service = AroundService<A, S>;

    fn layer(&self, inner: S) -> Self::Service {
        AroundService {
            around: self.0.clone(),
            inner,
        }
    }
}

/// The service [`AroundLayer`] builds.
#[derive(Clone, Debug)]
pub struct AroundService<A, S> {
    around: A,
    inner: S,
}

impl<A, S, B> Service<Request> for AroundService<A, S>
where
    A: Around,
    S: Service<Request, Response = axum::http::Response<B>, Error = Infallible>,
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = AroundFuture<A, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        match self.around.before(&mut req) {
            ControlFlow::Continue(ctx) => AroundFuture {
                state: State::Inner {
                    future: self.inner.call(req),
                    around: Some((self.around.clone(), ctx)),
                },
            },
            ControlFlow::Break(res) => AroundFuture {
                state: State::Answered { res: Some(res) },
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future, its response passed through [`Around::after`].
    pub struct AroundFuture<A: Around, F> {
        #[pin]
        state: State<A, F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<A: Around, F> {
        Inner { #[pin] future: F, around: Option<(A, A::Ctx)> },
        Answered { res: Option<Response> },
    }
}

impl<A, F, B> Future for AroundFuture<A, F>
where
    A: Around,
    F: Future<Output = Result<axum::http::Response<B>, Infallible>>,
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future, around } => {
                let Ok(res) = std::task::ready!(future.poll(cx));
                // The layers beneath (tracing, panic catching) wrap the body in their own
                // types; `Body::new` leaves a body that is already a `Body` as it is.
                let res = res.map(axum::body::Body::new);
                Poll::Ready(Ok(match around.take() {
                    Some((a, ctx)) => a.after(ctx, res),
                    // Polled again after it finished: a bug in the caller, answered rather
                    // than panicking.
                    None => res,
                }))
            }
            StateProj::Answered { res } => Poll::Ready(Ok(res.take().unwrap_or_default())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::ServiceExt;

    /// Refuses `/no`, and stamps the path it saw on every other response.
    #[derive(Clone)]
    struct Stamp;

    impl Around for Stamp {
        type Ctx = String;
        fn before(&self, req: &mut Request) -> ControlFlow<Response, String> {
            if req.uri().path() == "/no" {
                let mut res = Response::new(Body::empty());
                *res.status_mut() = StatusCode::FORBIDDEN;
                return ControlFlow::Break(res);
            }
            req.extensions_mut().insert(7u8);
            ControlFlow::Continue(req.uri().path().to_owned())
        }
        fn after(&self, ctx: String, mut res: Response) -> Response {
            res.headers_mut()
                .insert("x-seen", ctx.parse().expect("a path is a header value"));
            res
        }
    }

    #[tokio::test]
    async fn before_and_after_run_around_the_inner_service() {
        let svc = AroundLayer(Stamp).layer(tower::service_fn(|req: Request| async move {
            // The inner service sees what `before` put on the request.
            let seen = req.extensions().get::<u8>().copied().unwrap_or(0);
            Ok::<_, Infallible>(Response::new(Body::from(seen.to_string())))
        }));
        let res = svc
            .oneshot(Request::new(Body::empty()))
            .await
            .expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-seen"], "/");
        let body = axum::body::to_bytes(res.into_body(), 64)
            .await
            .expect("body");
        assert_eq!(&body[..], b"7");
    }

    #[tokio::test]
    async fn an_answer_from_before_skips_the_inner_service_and_after() {
        let svc = AroundLayer(Stamp).layer(tower::service_fn(|_: Request| async {
            panic!("the inner service must not be called");
            #[allow(unreachable_code)]
            Ok::<Response, Infallible>(Response::new(Body::empty()))
        }));
        let req = Request::builder()
            .uri("/no")
            .body(Body::empty())
            .expect("request");
        let res = svc.oneshot(req).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(res.headers().get("x-seen").is_none());
    }
}
