//! `/api/v0/oauth-clients`: the bank registers and manages TPP clients (the CLI does the same).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::clients::{ClientMetadata, ClientView};
use crate::admin::{auth::require_admin, AdminPrincipal};
use crate::error::{ApiError, FieldError};
use crate::http::extract::{AppJson, AppQuery};
use crate::http::middleware::InteractionId;
use crate::http::Routes;
use crate::state::AppState;

/// Client routes, behind the admin-key check.
pub fn routes(state: AppState) -> Routes<AppState> {
    Routes::new()
        .post("/api/v0/oauth-clients", create)
        .get("/api/v0/oauth-clients", list)
        .get("/api/v0/oauth-clients/{client_id}", show)
        .patch("/api/v0/oauth-clients/{client_id}", update)
        .delete("/api/v0/oauth-clients/{client_id}", disable)
        .post("/api/v0/oauth-clients/{client_id}/rotate-secret", rotate)
        .route_layer(axum::middleware::from_fn_with_state(state, require_admin))
}

/// Client metadata from a JSON body; an explicit `null` is refused (RFC 7591 fields are
/// omitted, not nulled), so a typo cannot silently keep or default a value.
fn metadata(body: &Value) -> Result<ClientMetadata, ApiError> {
    if let Some(obj) = body.as_object() {
        let nulls: Vec<FieldError> = obj
            .iter()
            .filter(|(_, v)| v.is_null())
            .map(|(k, _)| {
                FieldError::invalid(k.clone(), "must not be null; omit the field instead")
            })
            .collect();
        if !nulls.is_empty() {
            return Err(ApiError::Validation {
                code: "invalid_client_metadata",
                fields: nulls,
            });
        }
    }
    let bytes = serde_json::to_vec(body).map_err(ApiError::internal)?;
    crate::http::extract::parse_json(&bytes)
}

fn with_secret(view: &ClientView, secret: Option<String>) -> Result<Value, ApiError> {
    let mut v = serde_json::to_value(view).map_err(ApiError::internal)?;
    if let (Some(obj), Some(s)) = (v.as_object_mut(), secret) {
        obj.insert("client_secret".into(), Value::String(s));
    }
    Ok(v)
}

async fn create(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    AppJson(body): AppJson<Value>,
) -> Result<Response, ApiError> {
    let (view, secret) = state
        .clients()
        .create(metadata(&body)?, &principal.actor(&interaction))
        .await?;
    Ok((StatusCode::CREATED, Json(with_secret(&view, secret)?)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
    include_disabled: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = crate::http::extract::page_limit(q.limit.as_deref())?;
    let include_disabled = match q.include_disabled.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "invalid_query",
                "include_disabled",
                "expected true or false",
            ))
        }
    };
    // The cursor is the last client id of the previous page; an unknown one ends the listing.
    let before = match q.cursor {
        None => None,
        Some(id) => match state.store.get_client(&id).await? {
            Some(c) => Some((c.created_at, c.client_id)),
            None => return Ok(Json(json!({"data": [], "next_cursor": null}))),
        },
    };
    let rows = state
        .store
        .list_clients(before, limit, include_disabled)
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.client_id.clone()))
        .flatten();
    let data: Vec<ClientView> = rows.iter().map(ClientView::of).collect();
    Ok(Json(json!({"data": data, "next_cursor": next})))
}

async fn show(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
) -> Result<Json<ClientView>, ApiError> {
    let row = state.clients().get(&client_id).await?;
    Ok(Json(ClientView::of(&row)))
}

async fn update(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    Path(client_id): Path<String>,
    AppJson(body): AppJson<Value>,
) -> Result<Json<ClientView>, ApiError> {
    let view = state
        .clients()
        .update(&client_id, metadata(&body)?, &principal.actor(&interaction))
        .await?;
    Ok(Json(view))
}

async fn disable(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    Path(client_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .clients()
        .disable(&client_id, &principal.actor(&interaction))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    Path(client_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (view, secret) = state
        .clients()
        .rotate_secret(&client_id, &principal.actor(&interaction))
        .await?;
    Ok(Json(with_secret(&view, Some(secret))?))
}
