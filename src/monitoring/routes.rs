//! `/api/v0/…` monitoring routes for the bank's back office: transaction ingest, one-off
//! assessment, and the alert queue compliance works from.

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::admin::{auth::require_admin, AdminPrincipal};
use crate::error::ApiError;
use crate::http::extract::{AppJson, AppQuery};
use crate::http::middleware::InteractionId;
use crate::http::Routes;
use crate::state::AppState;
use crate::store::monitoring::AlertFilter;

/// Monitoring routes, behind the admin-key check.
pub fn routes(state: AppState) -> Routes<AppState> {
    // About 1 KiB per transaction is generous; the batch size is the real limit.
    let batch_limit = state.config.monitoring.batch_max.saturating_mul(1024) + 64 * 1024;
    Routes::new()
        .post_with_limit(
            "/api/v0/customers/{customer_id}/transactions",
            ingest,
            DefaultBodyLimit::max(batch_limit),
        )
        .post("/api/v0/transactions/assess", assess)
        .get("/api/v0/alerts", list)
        .get("/api/v0/alerts/{alert_id}", show)
        .post("/api/v0/alerts/{alert_id}/resolve", resolve)
        .route_layer(axum::middleware::from_fn_with_state(state, require_admin))
}

async fn ingest(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    Path(id): Path<String>,
    AppJson(body): AppJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let actor = principal.actor(&interaction);
    Ok(Json(super::ingest(&state, &id, &body, &actor).await?))
}

async fn assess(
    State(state): State<AppState>,
    AppJson(body): AppJson<Value>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(super::assess(&state, &body).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    customer_id: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = crate::http::extract::page_limit(q.limit.as_deref())?;
    if let Some(s) = &q.status {
        if !["open", "cleared", "confirmed"].contains(&s.as_str()) {
            return Err(ApiError::BadRequest {
                code: "invalid_filter",
                message: format!("status \"{s}\" is not one of open, cleared, confirmed"),
            });
        }
    }
    // The cursor is the last alert id of the previous page.
    let before = match q.cursor {
        None => None,
        Some(id) => match state.store.get_alert(&id).await? {
            Some(a) => Some((a.created_at, a.alert_id)),
            None => return Ok(Json(json!({"data": [], "next_cursor": null}))),
        },
    };
    let rows = state
        .store
        .list_alerts(&AlertFilter {
            customer_id: q.customer_id,
            status: q.status,
            before,
            limit,
        })
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.alert_id.clone()))
        .flatten();
    let data: Vec<Value> = rows.iter().map(super::alert_view).collect();
    Ok(Json(json!({"data": data, "next_cursor": next})))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let a = state
        .store
        .get_alert(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            message: format!("no alert {id}"),
        })?;
    Ok(Json(super::alert_view(&a)))
}

async fn resolve(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    Path(id): Path<String>,
    AppJson(body): AppJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let actor = principal.actor(&interaction);
    Ok(Json(super::resolve(&state, &id, &body, &actor).await?))
}
