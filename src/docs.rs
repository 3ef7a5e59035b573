//! The API contract, served as written, and a docs page that renders it.
//!
//! `openapi/obgate.yaml` is compiled into the binary and served at `/openapi.yaml`; `/docs` is
//! Swagger UI from `utoipa-swagger-ui`'s vendored assets, so nothing loads from the internet.

use axum::http::header::CONTENT_TYPE;
use axum::http::Method;
use axum::response::IntoResponse;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::http::Routes;
use crate::state::AppState;

/// The OpenAPI 3.1 document, exactly as in the repository.
pub const OPENAPI_YAML: &str = include_str!("../openapi/obgate.yaml");

/// `GET /openapi.yaml` and the docs UI under `/docs`.
pub fn routes() -> Routes<AppState> {
    let ui = SwaggerUi::new("/docs").config(
        Config::new(["/openapi.yaml"])
            .try_it_out_enabled(true)
            .display_request_duration(true),
    );
    Routes::new().get("/openapi.yaml", openapi).merge_router(
        ui.into(),
        &[
            (Method::GET, "/docs"),
            (Method::GET, "/docs/"),
            (Method::GET, "/docs/{*rest}"),
        ],
    )
}

async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/yaml")], OPENAPI_YAML)
}
