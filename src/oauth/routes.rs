//! Public authorization-server endpoints.

use axum::extract::State;
use axum::Json;
use serde_json::Value;

use crate::error::ApiError;
use crate::http::Routes;
use crate::state::AppState;

/// The authorization server's public endpoints.
pub fn routes() -> Routes<AppState> {
    Routes::new()
        .get("/oauth2/jwks", jwks)
        .post("/oauth2/token", super::token::token)
        .post("/oauth2/introspect", super::token::introspect)
        .post("/oauth2/revoke", super::token::revoke)
        .post("/oauth2/par", crate::consent::flow::par)
        .get("/oauth2/authorize", crate::consent::flow::authorize)
        .get("/.well-known/oauth-authorization-server", metadata)
}

/// RFC 8414 metadata: every endpoint, grant, method and algorithm this server supports, with
/// `issuer` exactly as configured.
async fn metadata(State(state): State<AppState>) -> Json<Value> {
    let base = state.config.public_base();
    let auth_methods = super::clients::AUTH_METHODS;
    Json(serde_json::json!({
        "issuer": base,
        "token_endpoint": format!("{base}/oauth2/token"),
        "jwks_uri": format!("{base}/oauth2/jwks"),
        "introspection_endpoint": format!("{base}/oauth2/introspect"),
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "pushed_authorization_request_endpoint": format!("{base}/oauth2/par"),
        "require_pushed_authorization_requests": state.config.oauth.require_par,
        "authorization_response_iss_parameter_supported": true,
        "grant_types_supported": super::clients::GRANT_TYPES,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": super::clients::SCOPES,
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "PS256"],
        "authorization_details_types_supported": [super::token::AUTHORIZATION_DETAILS_TYPE],
        "access_token_signing_alg_values_supported": ["ES256", "PS256"],
    }))
}

/// The public signing keys (RFC 7517): the active key, the next one, and retired keys that
/// may still have live tokens.
async fn jwks(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let set = state.keys.current().await.map_err(ApiError::internal)?;
    Ok(Json(set.jwks().clone()))
}
