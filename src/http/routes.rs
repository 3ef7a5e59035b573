//! A router that remembers which (method, path) pairs it serves.
//!
//! axum cannot list a router's routes, and the contract test needs that list to compare with
//! `openapi/obgate.yaml`. Every part registers its routes through [`Routes`], so the list and
//! the router cannot drift apart.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{self, MethodRouter};
use axum::Router;

/// A router plus the list of routes it serves.
pub struct Routes<S = ()> {
    router: Router<S>,
    list: Vec<(Method, String)>,
}

impl<S> Default for Routes<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self {
            router: Router::new(),
            list: Vec::new(),
        }
    }
}

impl<S> Routes<S>
where
    S: Clone + Send + Sync + 'static,
{
    /// No routes yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(mut self, method: Method, path: &str, mr: MethodRouter<S>) -> Self {
        self.router = self.router.route(path, mr);
        self.list.push((method, path.to_owned()));
        self
    }

    /// `GET path`.
    pub fn get<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add(Method::GET, path, routing::get(handler))
    }

    /// `POST path`.
    pub fn post<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add(Method::POST, path, routing::post(handler))
    }

    /// `POST path` whose body may be larger than `http.body_limit` (documents); the global
    /// streaming cap is raised for the same path in [`super::middleware::LimitBody`].
    pub fn post_with_limit<H, T>(
        self,
        path: &str,
        handler: H,
        limit: axum::extract::DefaultBodyLimit,
    ) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add(Method::POST, path, routing::post(handler).layer(limit))
    }

    /// `PATCH path`.
    pub fn patch<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add(Method::PATCH, path, routing::patch(handler))
    }

    /// `DELETE path`.
    pub fn delete<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add(Method::DELETE, path, routing::delete(handler))
    }

    /// Adds a router built elsewhere (e.g. the docs UI), declaring the routes it serves.
    pub fn merge_router(mut self, router: Router<S>, routes: &[(Method, &str)]) -> Self {
        self.router = self.router.merge(router);
        self.list
            .extend(routes.iter().map(|(m, p)| (m.clone(), (*p).to_owned())));
        self
    }

    /// Merges another set of routes.
    pub fn merge(mut self, other: Routes<S>) -> Self {
        self.router = self.router.merge(other.router);
        self.list.extend(other.list);
        self
    }

    /// Wraps the routes added so far in a layer (e.g. admin authentication).
    pub fn route_layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: tower::Service<axum::extract::Request> + Clone + Send + Sync + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Response:
            axum::response::IntoResponse + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Error:
            Into<std::convert::Infallible> + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
    {
        self.router = self.router.route_layer(layer);
        self
    }

    /// Splits into the router and the route list.
    pub fn into_parts(self) -> (Router<S>, Vec<(Method, String)>) {
        (self.router, self.list)
    }
}
