//! `/api/v0/webhooks`: the bank registers receivers of obgate's events.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::webhooks::{parse_registration, register, WebhookView};
use crate::admin::{auth::require_admin, AdminPrincipal};
use crate::error::ApiError;
use crate::http::extract::AppJson;
use crate::http::middleware::InteractionId;
use crate::http::Routes;
use crate::state::AppState;

/// Webhook routes, behind the admin-key check.
pub fn routes(state: AppState) -> Routes<AppState> {
    Routes::new()
        .post("/api/v0/webhooks", create)
        .get("/api/v0/webhooks", list)
        .get("/api/v0/webhooks/{webhook_id}", show)
        .delete("/api/v0/webhooks/{webhook_id}", delete)
        .get("/api/v0/webhooks/{webhook_id}/deliveries", deliveries)
        .route_layer(axum::middleware::from_fn_with_state(state, require_admin))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound {
        message: format!("no webhook {id}"),
    }
}

async fn create(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    AppJson(body): AppJson<Value>,
) -> Result<Response, ApiError> {
    let (url, events) = parse_registration(&body, state.config.mode).await?;
    let (view, secret) = register(&state, url, events, &principal.actor(&interaction)).await?;
    let mut v = serde_json::to_value(&view).map_err(ApiError::internal)?;
    if let Some(obj) = v.as_object_mut() {
        obj.insert("secret".into(), Value::String(secret));
    }
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let rows = state.store.list_webhooks().await?;
    let data: Vec<WebhookView> = rows.iter().map(WebhookView::of).collect();
    Ok(Json(json!({ "data": data })))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let row = state
        .store
        .get_webhook(&id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(WebhookView::of(&row)))
}

async fn delete(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let now = state.clock.now();
    let audit = principal
        .actor(&interaction)
        .event(now, "webhook.delete")
        .on("webhook", &id);
    if state.store.delete_webhook(&id, now, &audit).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&id))
    }
}

async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if state.store.get_webhook(&id).await?.is_none() {
        return Err(not_found(&id));
    }
    let rows = state.store.list_deliveries(&id, 100).await?;
    let data: Vec<Value> = rows
        .iter()
        .map(|d| {
            json!({
                "event_id": d.event_id,
                "event_type": d.event_type,
                "state": d.state,
                "attempts": d.attempts,
                "next_attempt_at": (d.state == "pending").then_some(d.next_attempt_at),
                "last_status": d.last_status,
                "last_error": d.last_error,
                "delivered_at": d.delivered_at,
            })
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}
