//! `/api/v0/admin-keys`: create, list and revoke admin keys over HTTP (the CLI does the same).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::{auth, AdminPrincipal};
use crate::error::ApiError;
use crate::http::extract::AppJson;
use crate::http::middleware::InteractionId;
use crate::http::Routes;
use crate::state::AppState;

/// Admin key routes, behind the admin-key check. Every other part's `/api/v0` routes are
/// wrapped with [`auth::require_admin`] the same way.
pub fn routes(state: AppState) -> Routes<AppState> {
    Routes::new()
        .post("/api/v0/admin-keys", create)
        .get("/api/v0/admin-keys", list)
        .delete("/api/v0/admin-keys/{key_id}", revoke)
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            auth::require_admin,
        ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
}

async fn create(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    AppJson(body): AppJson<CreateKey>,
) -> Result<Response, ApiError> {
    let created = super::create_key(
        state.store.as_ref(),
        state.clock.as_ref(),
        &body.name,
        &principal.actor(&interaction),
    )
    .await?;
    let mut value = serde_json::to_value(&created.record).map_err(ApiError::internal)?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("key".into(), created.secret.expose_secret().into());
    }
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

async fn list(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let keys = state.store.list_admin_keys().await?;
    Ok(Json(json!({ "data": keys })))
}

async fn revoke(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    Path(key_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    super::revoke_key(
        state.store.as_ref(),
        state.clock.as_ref(),
        &key_id,
        &principal.actor(&interaction),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
