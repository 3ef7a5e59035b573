//! `POST /oauth2/token`, `/oauth2/introspect`, `/oauth2/revoke`.
//!
//! Requests are `application/x-www-form-urlencoded`, each parameter at most once (RFC 6749
//! §3.2). Errors are RFC 6749 §5.2 bodies. Every issuance and refusal is audited.
//!
//! Grants:
//! - `client_credentials` (RFC 6749 §4.4): a client-level token, what a TPP uses to create
//!   consents; with `authorization_details` (RFC 9396, type `openbanking_account_access`
//!   naming a `consent_id`) a customer-bound token instead, when the consent passes
//!   [`crate::consent::check_access`] (this client's, `Authorised`, not expired, customer's KYC
//!   `passed`) — otherwise `invalid_grant` saying which check failed.
//! - `authorization_code` with PKCE S256 (RFC 6749 §4.1, RFC 7636): the code from the consent
//!   approval, single-use, 60 s, bound to client, redirect URI and consent; a second use
//!   revokes every token issued from the first. The consent is checked again.
//! - `refresh_token` (§6): opaque, stored as a hash, rotated on every use; presenting a used
//!   one revokes its whole family. Each refresh checks the consent again.

use crate::events::invalidation::Invalidation;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};
use sha2::Digest;

use super::client_auth::{authenticate, Authenticated, Params};
use super::jwt::{self, AccessClaims, TokenError};
use crate::audit::{ActorType, AuditEvent, Outcome};
use crate::error::ApiError;
use crate::http::middleware::InteractionId;
use crate::state::AppState;
use crate::store::consents::Redemption;

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
const KNOWN_PARAMS: [&str; 19] = [
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
    "response_type",
    "state",
    "code_challenge",
    "code_challenge_method",
    "request_uri",
    "request",
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
    addr: crate::limits::ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = parse_form(&headers, &body)?;
    let auth = authenticate(&state, &headers, &params, addr.0, Some(&interaction.0)).await?;
    let client_id = auth.client.client_id.clone();
    // After authentication, so nobody can spend another client's budget by naming it; a
    // refusal is audited like any other.
    let outcome = match state
        .limits
        .take(&client_id, crate::limits::Scope::Token)
        .await
    {
        Ok(()) => grant(&state, &auth, &params, &interaction).await,
        Err(limited) => Err(limited),
    };
    match outcome {
        Ok(resp) => Ok(resp),
        Err(e) => {
            let reason = e.code();
            state
                .audit_group
                .append(audit_refusal(&state, &client_id, reason, &interaction))
                .await?;
            Err(e)
        }
    }
}

fn has_grant(client: &crate::store::ClientRow, grant: &str) -> bool {
    client.grant_types.split_whitespace().any(|g| g == grant)
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
    let client = &auth.client;
    match grant_type.as_str() {
        "client_credentials" | "authorization_code" | "refresh_token" => {}
        other => {
            return Err(bad(
                "unsupported_grant_type",
                format!("unknown grant_type {other:?}; this server supports client_credentials, authorization_code and refresh_token"),
            ))
        }
    }
    if !has_grant(client, grant_type) {
        return Err(bad(
            "unauthorized_client",
            format!("this client is not registered for the {grant_type} grant"),
        ));
    }
    match grant_type.as_str() {
        "authorization_code" => return code_grant(state, client, params, interaction).await,
        "refresh_token" => return refresh_grant(state, client, params, interaction).await,
        _ => {}
    }
    let scope =
        super::clients::requested_scope(&client.scope, params.get("scope").map(String::as_str))
            .map_err(|e| bad("invalid_scope", e))?;
    if let Some(details) = params.get("authorization_details") {
        let consent_id = consent_of(details)?;
        let consent = granted_consent(state, &consent_id, &client.client_id).await?;
        let bound = Bound {
            consent: &consent,
            scope: &scope,
            family_id: None,
            refresh: false,
            redeem: None,
        };
        return issue_bound(state, client, bound, interaction)
            .await?
            .ok_or_else(|| ApiError::internal("an issuance spending nothing was refused"));
    }

    let set = state.keys.current().await.map_err(ApiError::internal)?;
    let now = state.clock.now();
    let ttl = state.config.oauth.access_token_ttl;
    let claims = access_claims(state, &client.client_id, &client.client_id, &scope, None);
    let token = jwt::sign(&set, &claims).map_err(ApiError::internal)?;
    let event = AuditEvent::new(
        now,
        ActorType::Client,
        client.client_id.clone(),
        "token.issue",
    )
    .on("access_token", claims.jti.clone())
    .interaction(Some(&interaction.0));
    // Shared with concurrent issuances (one transaction for a burst), committed before the
    // token is handed out.
    state.audit_group.append(event).await?;
    Ok(Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": ttl.as_secs(),
        "scope": scope,
    }))
    .into_response())
}

/// The claims of a new access token: `sub` is the customer for customer-bound tokens, the
/// client otherwise.
fn access_claims(
    state: &AppState,
    client_id: &str,
    sub: &str,
    scope: &str,
    consent_id: Option<&str>,
) -> AccessClaims {
    let iat = state.clock.now().millis() / 1000;
    AccessClaims {
        iss: state.config.public_base().to_owned(),
        sub: sub.to_owned(),
        aud: state.config.oauth.audience.clone(),
        exp: iat + state.config.oauth.access_token_ttl.as_secs() as i64,
        iat,
        nbf: iat,
        // Time-ordered (UUIDv7: 74 random bits after the millisecond): the audit index on
        // (resource_type, resource_id) then grows at its end instead of dirtying a random
        // page per issued token (BENCHMARKS.md, token row).
        jti: uuid::Uuid::now_v7().to_string(),
        client_id: client_id.to_owned(),
        scope: scope.to_owned(),
        consent_id: consent_id.map(str::to_owned),
    }
}

/// The consent behind a customer-bound grant, or `invalid_grant` saying which check failed.
async fn granted_consent(
    state: &AppState,
    consent_id: &str,
    client_id: &str,
) -> Result<crate::store::consents::ConsentRow, ApiError> {
    match crate::consent::check_access(state, consent_id, client_id).await {
        Ok(c) => Ok(c),
        Err(Ok(denial)) => Err(bad("invalid_grant", denial.describe(consent_id))),
        Err(Err(e)) => Err(e),
    }
}

/// What a customer-bound token is issued under.
struct Bound<'a> {
    consent: &'a crate::store::consents::ConsentRow,
    scope: &'a str,
    family_id: Option<&'a str>,
    refresh: bool,
    /// The code or refresh token the issuance spends.
    redeem: Option<Redemption<'a>>,
}

/// Issues a customer-bound access token (and a refresh token for code and refresh grants),
/// spending `b.redeem` in the same write: `Ok(None)` when it was spent meanwhile (a
/// concurrent or earlier use), nothing issued.
async fn issue_bound(
    state: &AppState,
    client: &crate::store::ClientRow,
    b: Bound<'_>,
    interaction: &InteractionId,
) -> Result<Option<Response>, ApiError> {
    let customer_id = b
        .consent
        .customer_id
        .clone()
        .ok_or_else(|| ApiError::internal("authorised consent without a customer"))?;
    let set = state.keys.current().await.map_err(ApiError::internal)?;
    let now = state.clock.now();
    let ttl = state.config.oauth.access_token_ttl;
    let claims = access_claims(
        state,
        &client.client_id,
        &customer_id,
        b.scope,
        Some(&b.consent.consent_id),
    );
    let token = jwt::sign(&set, &claims).map_err(ApiError::internal)?;
    let refresh = if b.refresh {
        let secret = crate::consent::flow::random_token();
        let lifetime = now.plus(state.config.oauth.refresh_token_ttl);
        let expires_at = match b.consent.expiration_at {
            Some(t) if t < lifetime => t,
            _ => lifetime,
        };
        Some((
            secret.clone(),
            crate::store::consents::RefreshRow {
                token_hash: crate::consent::flow::hash(&secret),
                family_id: b.family_id.unwrap_or_default().to_owned(),
                client_id: client.client_id.clone(),
                consent_id: b.consent.consent_id.clone(),
                customer_id,
                scope: b.scope.to_owned(),
                created_at: now,
                expires_at,
                used_at: None,
                revoked_at: None,
            },
        ))
    } else {
        None
    };
    let audit = AuditEvent::new(
        now,
        ActorType::Client,
        client.client_id.clone(),
        "token.issue",
    )
    .on("access_token", claims.jti.clone())
    .interaction(Some(&interaction.0));
    let issuance = crate::store::consents::Issuance {
        jti: &claims.jti,
        consent_id: &b.consent.consent_id,
        family_id: b.family_id,
        client_id: &client.client_id,
        expires_at: crate::clock::Timestamp::from_millis(claims.exp * 1000),
        refresh: refresh.as_ref().map(|(_, r)| r.clone()),
        redeem: b.redeem,
        audit: &audit,
    };
    if !state.store.record_issuance(&issuance).await? {
        return Ok(None);
    }
    let mut body = json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": ttl.as_secs(),
        "scope": b.scope,
        "authorization_details": [{"type": AUTHORIZATION_DETAILS_TYPE, "consent_id": b.consent.consent_id}],
    });
    if let (Some((secret, _)), Some(obj)) = (&refresh, body.as_object_mut()) {
        obj.insert("refresh_token".into(), json!(secret));
    }
    Ok(Some(Json(body).into_response()))
}

/// Revokes a token family after a replay, auditing it.
async fn revoke_family(
    state: &AppState,
    client_id: &str,
    family_id: &str,
    reason: &str,
    interaction: &InteractionId,
) -> Result<(), ApiError> {
    let audit = AuditEvent::new(
        state.clock.now(),
        ActorType::Client,
        client_id,
        "token.family.revoke",
    )
    .on("token_family", family_id)
    .outcome(Outcome::Denied, reason)
    .interaction(Some(&interaction.0));
    state
        .store
        .revoke_family(family_id, state.clock.now(), &audit)
        .await?;
    state.tokens_revoked(&Invalidation::Tokens);
    Ok(())
}

/// `authorization_code` + PKCE S256.
///
/// The code is spent by the issuance itself (one transaction), so a failure on the way (the
/// database, the signing key) leaves it usable for the client's retry within its minute. A
/// refused exchange (another client, expired, wrong redirect or verifier, a consent no
/// longer granted) spends it at once: the code is never good again.
async fn code_grant(
    state: &AppState,
    client: &crate::store::ClientRow,
    params: &Params,
    interaction: &InteractionId,
) -> Result<Response, ApiError> {
    let code = params
        .get("code")
        .ok_or_else(|| bad("invalid_request", "code is required"))?;
    let redirect_uri = params
        .get("redirect_uri")
        .ok_or_else(|| bad("invalid_request", "redirect_uri is required"))?;
    let verifier = params
        .get("code_verifier")
        .ok_or_else(|| bad("invalid_request", "code_verifier is required (PKCE)"))?;
    let now = state.clock.now();
    let hash = crate::consent::flow::hash(code);
    let Some(row) = state.store.get_code(&hash).await? else {
        return Err(bad("invalid_grant", "the authorization code is unknown"));
    };
    if row.used_at.is_some() {
        return Err(code_reused(state, client, &row, interaction).await?);
    }
    let valid_verifier = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let refusal = if row.client_id != client.client_id {
        Some("the authorization code was issued to another client")
    } else if row.expires_at <= now {
        Some("the authorization code has expired (codes live 60 s)")
    } else if row.redirect_uri != *redirect_uri {
        Some("redirect_uri differs from the authorization request's")
    } else if !valid_verifier || computed != row.code_challenge {
        Some("code_verifier does not match the code_challenge (PKCE S256)")
    } else {
        None
    };
    if let Some(refusal) = refusal {
        state.store.redeem_code(&hash, now).await?;
        return Err(bad("invalid_grant", refusal));
    }
    let consent =
        match crate::consent::check_access(state, &row.consent_id, &client.client_id).await {
            Ok(c) => c,
            Err(Ok(denial)) => {
                state.store.redeem_code(&hash, now).await?;
                return Err(bad("invalid_grant", denial.describe(&row.consent_id)));
            }
            Err(Err(e)) => return Err(e),
        };
    let bound = Bound {
        consent: &consent,
        scope: &row.scope,
        family_id: Some(&row.family_id),
        refresh: has_grant(client, "refresh_token"),
        redeem: Some(Redemption::Code(&hash)),
    };
    match issue_bound(state, client, bound, interaction).await? {
        Some(issued) => Ok(issued),
        // Exchanged by a concurrent request between the read above and this write.
        None => Err(code_reused(state, client, &row, interaction).await?),
    }
}

/// A second exchange of a code: every token issued from it is revoked (RFC 6749 §4.1.2).
async fn code_reused(
    state: &AppState,
    client: &crate::store::ClientRow,
    row: &crate::store::consents::CodeRow,
    interaction: &InteractionId,
) -> Result<ApiError, ApiError> {
    if row.client_id == client.client_id {
        revoke_family(
            state,
            &client.client_id,
            &row.family_id,
            "code_reused",
            interaction,
        )
        .await?;
    }
    Ok(bad(
        "invalid_grant",
        "the authorization code was already used; every token issued from it is revoked",
    ))
}

/// `refresh_token`, rotated on every use.
///
/// As for codes, the refresh token is spent by the issuance of its successor, in one
/// transaction: a failure on the way leaves it unspent, and the client's retry is not taken
/// for a replay (which revokes the family and sends the customer back to consent). A
/// malformed request (`invalid_scope`) spends nothing either.
async fn refresh_grant(
    state: &AppState,
    client: &crate::store::ClientRow,
    params: &Params,
    interaction: &InteractionId,
) -> Result<Response, ApiError> {
    let token = params
        .get("refresh_token")
        .ok_or_else(|| bad("invalid_request", "refresh_token is required"))?;
    let now = state.clock.now();
    let hash = crate::consent::flow::hash(token);
    let Some(row) = state.store.get_refresh(&hash).await? else {
        return Err(bad("invalid_grant", "the refresh token is unknown"));
    };
    if row.used_at.is_some() || row.revoked_at.is_some() {
        return Err(refresh_reused(state, client, &row, interaction).await?);
    }
    let refusal = if row.client_id != client.client_id {
        Some("the refresh token was issued to another client")
    } else if row.expires_at <= now {
        Some("the refresh token has expired")
    } else {
        None
    };
    if let Some(refusal) = refusal {
        state.store.redeem_refresh(&hash, now).await?;
        return Err(bad("invalid_grant", refusal));
    }
    let scope = match params.get("scope") {
        None => row.scope.clone(),
        Some(s) => {
            let granted: Vec<&str> = row.scope.split_whitespace().collect();
            if s.split_whitespace().next().is_none() {
                return Err(bad("invalid_scope", "scope is empty"));
            }
            if s.split_whitespace().any(|r| !granted.contains(&r)) {
                return Err(bad(
                    "invalid_scope",
                    "a refresh cannot widen the granted scope",
                ));
            }
            s.split_whitespace().collect::<Vec<_>>().join(" ")
        }
    };
    let consent =
        match crate::consent::check_access(state, &row.consent_id, &client.client_id).await {
            Ok(c) => c,
            // A customer on a KYC hold (suspended by monitoring, under review) is refused without
            // spending the refresh token: the hold is temporary, and once it lifts the TPP
            // refreshes as before.
            Err(Ok(denial @ crate::consent::Denial::Kyc(_))) => {
                return Err(bad("invalid_grant", denial.describe(&row.consent_id)))
            }
            // The consent no longer grants access (revoked, expired, deleted): the family ends.
            Err(Ok(denial)) => {
                let refusal = bad("invalid_grant", denial.describe(&row.consent_id));
                revoke_family(
                    state,
                    &client.client_id,
                    &row.family_id,
                    refusal.code(),
                    interaction,
                )
                .await?;
                return Err(refusal);
            }
            // The store could not answer: nothing is spent, the client retries.
            Err(Err(e)) => return Err(e),
        };
    let bound = Bound {
        consent: &consent,
        scope: &scope,
        family_id: Some(&row.family_id),
        refresh: true,
        redeem: Some(Redemption::Refresh(&hash)),
    };
    match issue_bound(state, client, bound, interaction).await? {
        Some(issued) => Ok(issued),
        // Spent or revoked between the read above and this write: a concurrent use.
        None => {
            let row = state.store.get_refresh(&hash).await?.unwrap_or(row);
            Err(refresh_reused(state, client, &row, interaction).await?)
        }
    }
}

/// A spent or revoked refresh token presented again: a replay, so its family is revoked
/// (unless it already was).
async fn refresh_reused(
    state: &AppState,
    client: &crate::store::ClientRow,
    row: &crate::store::consents::RefreshRow,
    interaction: &InteractionId,
) -> Result<ApiError, ApiError> {
    if row.client_id == client.client_id && row.revoked_at.is_none() {
        revoke_family(
            state,
            &client.client_id,
            &row.family_id,
            "refresh_token_reused",
            interaction,
        )
        .await?;
    }
    Ok(bad(
        "invalid_grant",
        "the refresh token was already used or revoked; its whole family is revoked",
    ))
}

/// The consent id named by RFC 9396 `authorization_details`, or `invalid_authorization_details`.
pub fn consent_of(details: &str) -> Result<String, ApiError> {
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
            tracing::warn!(error = %e, "revocation list unavailable; token not checked");
            Err(TokenError::Unavailable)
        }
    }
}

/// `POST /oauth2/introspect` (RFC 7662): the claims of an active token of the calling client,
/// `{"active": false}` for anything else.
pub async fn introspect(
    State(state): State<AppState>,
    interaction: InteractionId,
    addr: crate::limits::ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let params = parse_form(&headers, &body)?;
    let auth = authenticate(&state, &headers, &params, addr.0, Some(&interaction.0)).await?;
    state
        .limits
        .take(&auth.client.client_id, crate::limits::Scope::Oauth)
        .await?;
    let token = params
        .get("token")
        .ok_or_else(|| bad("invalid_request", "token is required"))?;
    let claims = match verify_access_token(&state, token).await {
        Ok(c) if c.client_id == auth.client.client_id => c,
        Err(TokenError::Unavailable) => return Err(crate::error::ApiError::unavailable()),
        _ => return Ok(Json(json!({"active": false}))),
    };
    // A customer-bound token is active only while its consent grants access.
    if let Some(consent_id) = &claims.consent_id {
        match crate::consent::check_access(&state, consent_id, &claims.client_id).await {
            Ok(_) => {}
            Err(Ok(_)) => return Ok(Json(json!({"active": false}))),
            Err(Err(e)) => return Err(e),
        }
    }
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
    addr: crate::limits::ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let params = parse_form(&headers, &body)?;
    let auth = authenticate(&state, &headers, &params, addr.0, Some(&interaction.0)).await?;
    state
        .limits
        .take(&auth.client.client_id, crate::limits::Scope::Oauth)
        .await?;
    let token = params
        .get("token")
        .ok_or_else(|| bad("invalid_request", "token is required"))?;
    let Ok((kid, alg)) = jwt::inspect(token) else {
        // Not a JWT: a refresh token. Revoking it revokes its family (RFC 7009 §2.1). A
        // family already revoked is left alone: revoking again would write another audit row
        // and empty every node's token cache, as often as a client cared to ask.
        if let Some(r) = state
            .store
            .get_refresh(&crate::consent::flow::hash(token))
            .await?
        {
            if r.client_id == auth.client.client_id && r.revoked_at.is_none() {
                let audit = AuditEvent::new(
                    state.clock.now(),
                    ActorType::Client,
                    r.client_id.clone(),
                    "token.revoke",
                )
                .on("token_family", r.family_id.clone())
                .interaction(Some(&interaction.0));
                state
                    .store
                    .revoke_family(&r.family_id, state.clock.now(), &audit)
                    .await?;
                state.tokens_revoked(&Invalidation::Tokens);
            }
        }
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
            // Already on the deny list: nothing written, nothing to forget.
            if state
                .store
                .revoke_token(&c.jti, &c.client_id, expires, &event)
                .await?
            {
                state.tokens_revoked(&Invalidation::Token(c.jti.clone()));
            }
        }
    }
    Ok(StatusCode::OK)
}
