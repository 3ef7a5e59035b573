//! Liveness and readiness, for load balancers and orchestrators.
//!
//! `/healthz` answers while the process can serve HTTP at all. `/readyz` answers 200 only when
//! the database answers and every migration this binary needs is applied; otherwise 503 with a
//! reason an operator can act on.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::http::Routes;
use crate::state::AppState;

/// `GET /healthz`, `GET /readyz`.
pub fn routes() -> Routes<AppState> {
    Routes::new()
        .get("/healthz", healthz)
        .get("/readyz", readyz)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    let backend = match state.store.backend() {
        crate::config::Backend::Sqlite => "sqlite",
        crate::config::Backend::Postgres => "postgres",
    };
    let unavailable = |reason: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "database": backend, "reason": reason})),
        )
            .into_response()
    };
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "readiness: database unreachable");
        return unavailable("database unreachable".into());
    }
    match state.store.migration_state().await {
        Err(e) => {
            tracing::warn!(error = %e, "readiness: cannot read migration state");
            unavailable("cannot read migration state".into())
        }
        Ok(m) if !m.is_current() => unavailable(format!(
            "{} of {} migrations pending ({}); run `obgate migrate`",
            m.pending.len(),
            m.expected,
            m.pending.join(", ")
        )),
        Ok(m) => Json(json!({
            "status": "ready",
            "database": backend,
            "migrations": {"expected": m.expected, "applied": m.applied},
        }))
        .into_response(),
    }
}
