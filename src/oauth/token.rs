//! `POST /oauth2/token`, `/oauth2/introspect`, `/oauth2/revoke`.
//!
//! Requests are `application/x-www-form-urlencoded`, each parameter at most once (RFC 6749
//! §3.2). Errors are RFC 6749 §5.2 bodies. Every issuance and refusal is audited.
//!
//! Grants: `client_credentials` (RFC 6749 §4.4). A client-level token is what a TPP uses to
//! create consents. Asking for a customer-bound token with `authorization_details` (RFC 9396,
//! type `openbanking_account_access`, naming a `consent_id`) needs an `Authorised` consent of
//! this client, and until consents exist on this server every such request is refused with
//! `invalid_grant`. `authorization_code` and `refresh_token` arrive with consents.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::client_auth::{authenticate, Authenticated, Params};
use super::jwt::{self, AccessClaims, TokenError};
use crate::audit::{ActorType, AuditEvent, Outcome};
use crate::error::ApiError;
use crate::http::middleware::InteractionId;
use crate::state::AppState;

/// The one `authorization_details` type this server grants.
pub const AUTHORIZATION_DETAILS_TYPE: &str = "openbanking_account_access";

fn oauth(status: StatusCode, error: &'static str, description: impl Into<String>) -> ApiError {
    ApiError::OAuth {
        status,
        error,
        description: description.into(),
    }
}

fn bad(error: &'static str, description: impl Into<String>) -> ApiError {
    oauth(StatusCode::BAD_REQUEST, error, description)
}

/// Parameters RFC 6749 and its extensions define; these must not repeat (§3.2). Unknown
/// parameters are ignored, repeated or not.
const KNOWN_PARAMS: [&str; 13] = [
    "grant_type",
    "scope",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "authorization_details",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "token",
    "token_type_hint",
];

/// Parses a form body: right content type, no defined parameter repeated.
pub fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<Params, ApiError> {
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(bad(
            "invalid_request",
            "send the parameters as application/x-www-form-urlencoded",
        ));
    }
    let mut params = Params::new();
    for (k, v) in form_urlencoded::parse(body) {
        if !KNOWN_PARAMS.contains(&k.as_ref()) {
            continue;
        }
        if params.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(bad(
                "invalid_request",
                format!("parameter {k} appears more than once"),
            ));
        }
    }
    Ok(params)
}

fn audit_refusal(state: &AppState, client: &str, reason: &str, i: &InteractionId) -> AuditEvent {
    AuditEvent::new(state.clock.now(), ActorType::Client, client, "token.issue")
        .outcome(Outcome::Denied, reason)
        .interaction(Some(&i.0))
}

/// `POST /oauth2/token`.
pub async fn token(
    State(state): State<AppState>,
    interaction: InteractionId,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = parse_form(&headers, &body)?;
    let auth = authenticate(&state, &headers, &params, Some(&interaction.0)).await?;
    let client_id = auth.client.client_id.clone();
    match grant(&state, &auth, &params, &interaction).await {
        Ok(resp) => Ok(resp),
        Err(e) => {
            let reason = e.code();
            state
                .store
                .append_audit(&audit_refusal(&state, &client_id, reason, &interaction))
                .await?;
            Err(e)
        }
    }
}

async fn grant(
    state: &AppState,
    auth: &Authenticated,
    params: &Params,
    interaction: &InteractionId,
) -> Result<Response, ApiError> {
    let grant_type = params
        .get("grant_type")
        .ok_or_else(|| bad("invalid_request", "grant_type is required"))?;
    match grant_type.as_str() {
        "client_credentials" => {}
        "authorization_code" | "refresh_token" => {
            return Err(bad(
                "unsupported_grant_type",
                format!("{grant_type} is not enabled on this server yet; use client_credentials"),
            ))
        }
        other => {
            return Err(bad(
                "unsupported_grant_type",
                format!("unknown grant_type {other:?}; this server supports client_credentials"),
            ))
        }
    }
    let client = &auth.client;
    if !client
        .grant_types
        .split_whitespace()
        .any(|g| g == "client_credentials")
    {
        return Err(bad(
            "unauthorized_client",
            "this client is not registered for the client_credentials grant",
        ));
    }
    let allowed: Vec<&str> = client.scope.split_whitespace().collect();
    let scope = match params.get("scope") {
        None => client.scope.clone(),
        Some(s) => {
            let requested: Vec<&str> = s.split_whitespace().collect();
            if requested.is_empty() {
                return Err(bad("invalid_scope", "scope is empty"));
            }
            if let Some(extra) = requested.iter().find(|r| !allowed.contains(r)) {
                return Err(bad(
                    "invalid_scope",
                    format!("scope {extra:?} is not registered for this client"),
                ));
            }
            requested.join(" ")
        }
    };
    if let Some(details) = params.get("authorization_details") {
        let consent_id = consent_of(details)?;
        return Err(bad(
            "invalid_grant",
            format!("consent {consent_id} is not an Authorised consent of this client"),
        ));
    }

    let set = state.keys.current().await.map_err(ApiError::internal)?;
    let now = state.clock.now();
    let ttl = state.config.oauth.access_token_ttl;
    let iat = now.millis() / 1000;
    let claims = AccessClaims {
        iss: state.config.public_base().to_owned(),
        sub: client.client_id.clone(),
        aud: state.config.oauth.audience.clone(),
        exp: iat + ttl.as_secs() as i64,
        iat,
        nbf: iat,
        jti: uuid::Uuid::new_v4().to_string(),
        client_id: client.client_id.clone(),
        scope: scope.clone(),
        consent_id: None,
    };
    let token = jwt::sign(&set, &claims).map_err(ApiError::internal)?;
    let event = AuditEvent::new(
        now,
        ActorType::Client,
        client.client_id.clone(),
        "token.issue",
    )
    .on("access_token", claims.jti.clone())
    .interaction(Some(&interaction.0));
    state.store.append_audit(&event).await?;
    Ok(Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": ttl.as_secs(),
        "scope": scope,
    }))
    .into_response())
}

/// The consent id named by RFC 9396 `authorization_details`, or `invalid_authorization_details`.
fn consent_of(details: &str) -> Result<String, ApiError> {
    let invalid = |d: &str| bad("invalid_authorization_details", d.to_owned());
    let value: Value = serde_json::from_str(details)
        .map_err(|_| invalid("authorization_details must be a JSON array"))?;
    let items = value
        .as_array()
        .filter(|a| a.len() == 1)
        .ok_or_else(|| invalid("authorization_details must be an array of exactly one object"))?;
    let item = &items[0];
    if item.get("type").and_then(Value::as_str) != Some(AUTHORIZATION_DETAILS_TYPE) {
        return Err(invalid(
            "authorization_details type must be openbanking_account_access",
        ));
    }
    item.get("consent_id")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| invalid("authorization_details needs a consent_id"))
}

/// Verifies a token for introspection or revocation: signature and claims, plus the deny list.
pub async fn verify_access_token(
    state: &AppState,
    token: &str,
) -> Result<AccessClaims, TokenError> {
    let expected = state.token_expectations();
    let claims = jwt::verify(&state.keys, token, &expected, state.clock.now()).await?;
    match state.store.is_token_revoked(&claims.jti).await {
        Ok(false) => Ok(claims),
        Ok(true) => Err(TokenError::Revoked),
        Err(e) => {
            tracing::error!(error = %e, "revocation list unavailable; refusing token");
            Err(TokenError::Revoked)
        }
    }
}

/// `POST /oauth2/introspect` (RFC 7662): the claims of an active token of the calling client,
/// `{"active": false}` for anything else.
pub async fn introspect(
    State(state): State<AppState>,
    interaction: InteractionId,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let params = parse_form(&headers, &body)?;
    let auth = authenticate(&state, &headers, &params, Some(&interaction.0)).await?;
    let token = params
        .get("token")
        .ok_or_else(|| bad("invalid_request", "token is required"))?;
    let claims = match verify_access_token(&state, token).await {
        Ok(c) if c.client_id == auth.client.client_id => c,
        _ => return Ok(Json(json!({"active": false}))),
    };
    let mut body = serde_json::to_value(&claims).map_err(ApiError::internal)?;
    if let Some(obj) = body.as_object_mut() {
        obj.insert("active".into(), Value::Bool(true));
        obj.insert("token_type".into(), Value::String("Bearer".into()));
    }
    Ok(Json(body))
}

/// `POST /oauth2/revoke` (RFC 7009): revokes an access token of the calling client; 200 for
/// anything else too, so revocation cannot be used to probe tokens.
pub async fn revoke(
    State(state): State<AppState>,
    interaction: InteractionId,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let params = parse_form(&headers, &body)?;
    let auth = authenticate(&state, &headers, &params, Some(&interaction.0)).await?;
    let token = params
        .get("token")
        .ok_or_else(|| bad("invalid_request", "token is required"))?;
    let Ok((kid, alg)) = jwt::inspect(token) else {
        return Ok(StatusCode::OK);
    };
    let key = state
        .keys
        .verifier(&kid)
        .await
        .map_err(ApiError::internal)?;
    let expected = state.token_expectations();
    // Expiry does not matter for revocation: an expired token is refused anyway.
    let claims = jwt::verify_ignoring_time(token, alg, key.as_ref(), &expected);
    if let Ok(c) = claims {
        if c.client_id == auth.client.client_id {
            let event = AuditEvent::new(
                state.clock.now(),
                ActorType::Client,
                c.client_id.clone(),
                "token.revoke",
            )
            .on("access_token", c.jti.clone())
            .interaction(Some(&interaction.0));
            let expires = crate::clock::Timestamp::from_millis(c.exp * 1000);
            state
                .store
                .revoke_token(&c.jti, &c.client_id, expires, &event)
                .await?;
        }
    }
    Ok(StatusCode::OK)
}
