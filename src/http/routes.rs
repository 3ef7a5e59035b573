//! A router that remembers which (method, path) pairs it serves.
//!
//! axum cannot list a router's routes, and the contract test needs that list to compare with
//! `openapi/obgate.yaml`. Every part registers its routes through [`Routes`], so the list and
//! the router cannot drift apart.
//!
//! A part's routes stay separate method routers until they are merged, so that
//! [`Routes::route_layer`] can wrap each method's handler rather than the whole path: a wrong
//! method then gets its `405` (naming the right ones) before any authentication runs. Wrapped
//! whole, as `Router::route_layer` does, a POST without credentials to a GET-only admin or
//! gateway route answered `401`, telling a developer to fix credentials that were not the
//! problem.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{self, MethodRouter};
use axum::Router;

/// A router plus the list of routes it serves.
pub struct Routes<S = ()> {
    router: Router<S>,
    /// Whether `router` holds any route (merged ones); axum refuses to layer an empty one.
    routed: bool,
    /// Routes added here and not yet in `router`, one method router per (method, path).
    pending: Vec<(String, MethodRouter<S>)>,
    list: Vec<(Method, String)>,
}

impl<S> Default for Routes<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self {
            router: Router::new(),
            routed: false,
            pending: Vec::new(),
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
        self.pending.push((path.to_owned(), mr));
        self.list.push((method, path.to_owned()));
        self
    }

    /// The router with every pending route in it (axum merges a path's methods).
    fn into_router(self) -> Router<S> {
        self.pending
            .into_iter()
            .fold(self.router, |router, (path, mr)| router.route(&path, mr))
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
        self.routed = true;
        self.list
            .extend(routes.iter().map(|(m, p)| (m.clone(), (*p).to_owned())));
        self
    }

    /// Merges another set of routes.
    pub fn merge(mut self, other: Routes<S>) -> Self {
        let list = std::mem::take(&mut self.list);
        let (router, other_list) = other.into_parts();
        self.router = self.router.merge(router);
        self.routed = true;
        self.list = list;
        self.list.extend(other_list);
        self
    }

    /// Wraps the routes added so far in a layer (e.g. admin authentication), each method's
    /// handler on its own, so a wrong method is answered `405` without running it (see the
    /// module docs).
    pub fn route_layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: tower::Service<axum::extract::Request, Error = std::convert::Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Response:
            axum::response::IntoResponse + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
    {
        if self.routed {
            self.router = self.router.route_layer(layer.clone());
        }
        self.pending = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|(path, mr)| (path, mr.route_layer(layer.clone())))
            .collect();
        self
    }

    /// Splits into the router and the route list.
    pub fn into_parts(mut self) -> (Router<S>, Vec<(Method, String)>) {
        let list = std::mem::take(&mut self.list);
        (self.into_router(), list)
    }
}
