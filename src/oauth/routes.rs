//! Public authorization-server endpoints.

use axum::extract::State;
use axum::Json;
use serde_json::Value;

use crate::error::ApiError;
use crate::http::Routes;
use crate::state::AppState;

/// `GET /oauth2/jwks`.
pub fn routes() -> Routes<AppState> {
    Routes::new().get("/oauth2/jwks", jwks)
}

/// The public signing keys (RFC 7517): the active key, the next one, and retired keys that
/// may still have live tokens.
async fn jwks(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let set = state.keys.current().await.map_err(ApiError::internal)?;
    Ok(Json(set.jwks().clone()))
}
