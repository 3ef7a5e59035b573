//! How a customer approves a consent: the TPP pushes an authorization request (`POST
//! /oauth2/par`, RFC 9126) or sends it to `GET /oauth2/authorize` directly; obgate checks it and
//! sends the customer to the bank's own login-and-consent UI with a one-time `challenge`; the
//! bank's UI reads the request (`GET /api/v0/authorization-requests/{challenge}`) and, once the
//! bank has logged the customer in, accepts or rejects it. Accepting goes through the KYC gate
//! and yields the redirect back to the TPP with an authorization code.
//!
//! Errors that cannot safely go back to the TPP (unknown client, unregistered redirect URI, a
//! bad `request_uri`) are shown as a page; the rest are redirected to the TPP's redirect URI as
//! `error`, `error_description`, `state` and `iss` (RFC 9207).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use url::Url;

use super::{authorise, bank_view, end, Authorisation, ConsentStatus};
use crate::admin::AdminPrincipal;
use crate::error::ApiError;
use crate::http::extract::AppJson;
use crate::http::middleware::InteractionId;
use crate::http::validate::{verdict, Fields, Rule};
use crate::oauth::client_auth::authenticate;
use crate::oauth::token::{consent_of, parse_form};
use crate::state::AppState;
use crate::store::consents::{AuthRequestRow, CodeRow};
use crate::store::ClientRow;

/// The PAR `request_uri` prefix (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// Authorization codes live this long (RFC 6749 recommends at most 10 minutes; FAPI 60 s).
pub const CODE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The redirect parameters telling the TPP its request was declined.
const DECLINED: &[(&str, &str)] = &[
    ("error", "access_denied"),
    ("error_description", "the customer declined the request"),
];

/// The most accounts one approval may name (the bank's approve API and the consent screen's
/// form alike): more is a malformed request, refused before any of them is looked at.
pub const MAX_ACCOUNTS: usize = 100;

/// Account ids a customer can choose (UK OB `AccountId`, at most 40 characters).
pub const ACCOUNT_ID: Rule = Rule {
    pattern: r"^[A-Za-z0-9._-]{1,40}$",
    message: "Not a valid account id: 1 to 40 letters, digits, dots, hyphens or underscores.",
};
/// Customer ids as obgate issues them.
pub const CUSTOMER_ID: Rule = Rule {
    pattern: r"^[A-Za-z0-9_-]{1,64}$",
    message: "Not a valid customer id.",
};
/// A free-text reason.
pub const REASON: Rule = crate::kyc::rules::REASON;

/// A random URL-safe token of 256 bits.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// SHA-256 hex, how request URIs, challenges, codes and refresh tokens are stored.
pub fn hash(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// An authorization-request error for the TPP (RFC 6749 §4.1.2.1).
#[derive(Debug)]
struct FlowError {
    error: &'static str,
    description: String,
}

fn flow_err(error: &'static str, description: impl Into<String>) -> FlowError {
    FlowError {
        error,
        description: description.into(),
    }
}

/// A checked authorization request.
struct Checked {
    redirect_uri: String,
    state: Option<String>,
    code_challenge: String,
    scope: String,
    consent_id: String,
}

/// Checks the parameters of an authorization request of `client` whose `redirect_uri` is
/// already known to be registered.
async fn check_request(
    state: &AppState,
    client: &ClientRow,
    p: &HashMap<String, String>,
) -> Result<Checked, FlowError> {
    let redirect_uri = p.get("redirect_uri").cloned().unwrap_or_default();
    if !client
        .grant_types
        .split_whitespace()
        .any(|g| g == "authorization_code")
    {
        return Err(flow_err(
            "unauthorized_client",
            "this client is not registered for the authorization_code grant",
        ));
    }
    if p.get("response_type").map(String::as_str) != Some("code") {
        return Err(flow_err(
            "unsupported_response_type",
            "response_type must be code",
        ));
    }
    if p.contains_key("request") {
        return Err(flow_err(
            "request_not_supported",
            "request objects are not supported; use PAR",
        ));
    }
    let state_param = p.get("state").cloned();
    if state_param.as_ref().is_some_and(|s| s.len() > 512) {
        return Err(flow_err(
            "invalid_request",
            "state is longer than 512 characters",
        ));
    }
    let code_challenge = p
        .get("code_challenge")
        .filter(|c| {
            (43..=128).contains(&c.len())
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        })
        .cloned()
        .ok_or_else(|| flow_err("invalid_request", "PKCE is required: code_challenge (43 to 128 characters) with code_challenge_method=S256"))?;
    if p.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return Err(flow_err(
            "invalid_request",
            "code_challenge_method must be S256 (plain is not accepted)",
        ));
    }
    let scope =
        crate::oauth::clients::requested_scope(&client.scope, p.get("scope").map(String::as_str))
            .map_err(|e| flow_err("invalid_scope", e))?;
    let details = p.get("authorization_details").ok_or_else(|| {
        flow_err(
            "invalid_request",
            "authorization_details naming the consent is required: [{\"type\": \"openbanking_account_access\", \"consent_id\": \"…\"}]",
        )
    })?;
    let consent_id =
        consent_of(details).map_err(|e| flow_err("invalid_authorization_details", e.message()))?;
    let consent = state
        .store
        .get_consent(&consent_id)
        .await
        .map_err(|_| flow_err("temporarily_unavailable", "try again"))?
        .filter(|c| c.client_id == client.client_id && c.deleted_at.is_none())
        .ok_or_else(|| {
            flow_err(
                "invalid_authorization_details",
                format!("consent {consent_id} is not a consent of this client"),
            )
        })?;
    if consent.status != ConsentStatus::AwaitingAuthorisation.as_str() {
        return Err(flow_err(
            "invalid_authorization_details",
            format!(
                "consent {consent_id} is {}, not AwaitingAuthorisation",
                consent.status
            ),
        ));
    }
    if consent.authorisable_until <= state.clock.now() {
        return Err(flow_err(
            "invalid_authorization_details",
            format!("consent {consent_id} can no longer be authorised; create a new one"),
        ));
    }
    Ok(Checked {
        redirect_uri,
        state: state_param,
        code_challenge,
        scope,
        consent_id,
    })
}

fn registered(client: &ClientRow, redirect_uri: &str) -> bool {
    client
        .redirect_uris
        .split_whitespace()
        .any(|u| u == redirect_uri)
}

/// `POST /oauth2/par` (RFC 9126): stores the checked request, answers a one-use
/// `request_uri`.
pub async fn par(
    State(state): State<AppState>,
    interaction: InteractionId,
    addr: crate::limits::ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = parse_form(&headers, &body)?;
    let auth = authenticate(&state, &headers, &params, addr.0, Some(&interaction.0)).await?;
    state
        .limits
        .take(&auth.client.client_id, crate::limits::Scope::Oauth)
        .await?;
    let client = auth.client;
    let oauth_err = |error: &'static str, description: String| ApiError::OAuth {
        status: StatusCode::BAD_REQUEST,
        error,
        description,
    };
    if params.contains_key("request_uri") {
        return Err(oauth_err(
            "invalid_request",
            "request_uri cannot be pushed; send the parameters themselves".into(),
        ));
    }
    if params
        .get("client_id")
        .is_some_and(|c| *c != client.client_id)
    {
        return Err(oauth_err(
            "invalid_request",
            "client_id does not match the authenticated client".into(),
        ));
    }
    let redirect_uri = params.get("redirect_uri").cloned().unwrap_or_default();
    if !registered(&client, &redirect_uri) {
        return Err(oauth_err(
            "invalid_request",
            "redirect_uri must exactly match one of the client's registered redirect URIs".into(),
        ));
    }
    let checked = check_request(&state, &client, &params)
        .await
        .map_err(|e| oauth_err(e.error, e.description))?;
    let now = state.clock.now();
    let request_uri = format!("{REQUEST_URI_PREFIX}{}", random_token());
    let ttl = state.config.oauth.request_uri_ttl;
    let row = AuthRequestRow {
        id: format!("ar_{}", uuid::Uuid::now_v7().simple()),
        request_uri_hash: Some(hash(&request_uri)),
        challenge_hash: None,
        client_id: client.client_id.clone(),
        redirect_uri: checked.redirect_uri,
        state: checked.state,
        code_challenge: checked.code_challenge,
        scope: checked.scope,
        consent_id: checked.consent_id,
        created_at: now,
        request_expires_at: now.plus(ttl),
        challenge_expires_at: None,
        used_at: None,
        decided_at: None,
    };
    state.store.insert_auth_request(&row).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"request_uri": request_uri, "expires_in": ttl.as_secs()})),
    )
        .into_response())
}

/// An error page for what cannot go back to the TPP.
fn page(status: StatusCode, message: &str) -> Response {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Authorization request refused</title></head>\
         <body><h1>This request cannot be completed</h1><p>{escaped}</p>\
         <p>Go back to the app you came from and try again.</p></body></html>"
    );
    let mut res = (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response();
    res.extensions_mut()
        .insert(crate::http::middleware::DeliberatePage);
    res
}

/// A 303 to `url` with extra query parameters.
fn redirect(url: &str, params: &[(&str, &str)]) -> Response {
    let mut u = match Url::parse(url) {
        Ok(u) => u,
        Err(_) => return page(StatusCode::BAD_REQUEST, "the redirect address is not valid"),
    };
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, u.to_string()),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
    )
        .into_response()
}

/// The redirect back to the TPP with `params`, `state` and `iss`.
pub fn back_to_tpp(
    state: &AppState,
    redirect_uri: &str,
    tpp_state: Option<&str>,
    params: &[(&str, &str)],
) -> String {
    let mut u = match Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => return redirect_uri.to_owned(),
    };
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(s) = tpp_state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", state.config.public_base());
    }
    u.to_string()
}

/// `GET /oauth2/authorize`: checks the request and sends the customer to the bank's consent UI.
pub async fn authorize(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    match authorize_inner(&state, query.as_deref().unwrap_or("")).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn authorize_inner(state: &AppState, query: &str) -> Result<Response, ApiError> {
    let mut p: HashMap<String, String> = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if p.insert(k.to_string(), v.into_owned()).is_some() {
            return Ok(page(
                StatusCode::BAD_REQUEST,
                &format!("the parameter {k} appears more than once"),
            ));
        }
    }
    let Some(client_id) = p.get("client_id").cloned() else {
        return Ok(page(StatusCode::BAD_REQUEST, "client_id is missing"));
    };
    let Some(client) = state
        .store
        .get_client(&client_id)
        .await?
        .filter(|c| c.disabled_at.is_none())
    else {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            "the client is unknown or disabled",
        ));
    };
    let now = state.clock.now();
    let challenge = random_token();
    let challenge_expires = now.plus(state.config.consents.challenge_ttl);
    let ui = state.config.consents.ui_url.to_string();
    if let Some(request_uri) = p.get("request_uri") {
        let taken = state
            .store
            .take_request_uri(
                &hash(request_uri),
                &client.client_id,
                &hash(&challenge),
                challenge_expires,
                now,
            )
            .await?;
        let Some(req) = taken else {
            return Ok(page(
                StatusCode::BAD_REQUEST,
                "the request_uri is unknown, expired, already used, or belongs to another client",
            ));
        };
        // The consent may have changed since the request was pushed.
        let consent = state.store.get_consent(&req.consent_id).await?;
        if consent.is_none_or(|c| {
            c.status != ConsentStatus::AwaitingAuthorisation.as_str() || c.deleted_at.is_some()
        }) {
            let to = back_to_tpp(
                state,
                &req.redirect_uri,
                req.state.as_deref(),
                &[
                    ("error", "invalid_request"),
                    (
                        "error_description",
                        "the consent is no longer awaiting authorisation",
                    ),
                ],
            );
            return Ok(redirect(&to, &[]));
        }
        return Ok(redirect(&ui, &[("challenge", &challenge)]));
    }
    let redirect_uri = p.get("redirect_uri").cloned().unwrap_or_default();
    if !registered(&client, &redirect_uri) {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            "the redirect_uri is not registered for this client",
        ));
    }
    let tpp_state = p.get("state").cloned();
    let fail = |e: FlowError| {
        let to = back_to_tpp(
            state,
            &redirect_uri,
            tpp_state.as_deref(),
            &[("error", e.error), ("error_description", &e.description)],
        );
        redirect(&to, &[])
    };
    if state.config.oauth.require_par {
        return Ok(fail(flow_err(
            "invalid_request",
            "this server requires pushed authorization requests: POST /oauth2/par first",
        )));
    }
    let checked = match check_request(state, &client, &p).await {
        Ok(c) => c,
        Err(e) => return Ok(fail(e)),
    };
    let row = AuthRequestRow {
        id: format!("ar_{}", uuid::Uuid::now_v7().simple()),
        request_uri_hash: None,
        challenge_hash: Some(hash(&challenge)),
        client_id: client.client_id.clone(),
        redirect_uri: checked.redirect_uri,
        state: checked.state,
        code_challenge: checked.code_challenge,
        scope: checked.scope,
        consent_id: checked.consent_id,
        created_at: now,
        request_expires_at: now,
        challenge_expires_at: Some(challenge_expires),
        used_at: Some(now),
        decided_at: None,
    };
    state.store.insert_auth_request(&row).await?;
    Ok(redirect(&ui, &[("challenge", &challenge)]))
}

/// The undecided request behind a challenge, still inside its time; 404 otherwise.
pub async fn pending(state: &AppState, challenge: &str) -> Result<AuthRequestRow, ApiError> {
    state
        .store
        .get_auth_request_by_challenge(&hash(challenge))
        .await?
        .filter(|r| r.challenge_expires_at.is_some_and(|t| t > state.clock.now()))
        .ok_or_else(|| ApiError::NotFound {
            message: "no pending authorization request for this challenge (unknown, expired or already decided)".into(),
        })
}

/// `GET /api/v0/authorization-requests/{challenge}`: what the bank's UI shows the customer.
pub async fn show_request(
    State(state): State<AppState>,
    Path(challenge): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let req = pending(&state, &challenge).await?;
    let consent = state
        .store
        .get_consent(&req.consent_id)
        .await?
        .ok_or_else(|| super::not_found(&req.consent_id))?;
    let consent = bank_view(&state, &consent).await?;
    Ok(Json(json!({
        "client_id": req.client_id,
        "client_name": consent["client_name"],
        "redirect_uri": req.redirect_uri,
        "scope": req.scope,
        "expires_at": req.challenge_expires_at,
        "consent": consent,
    })))
}

/// Reads `{"customer_id", "account_ids": [...]}`.
pub fn parse_authorisation(body: &Value) -> Result<(String, Vec<String>), ApiError> {
    const CODE: &str = "authorisation_post_schema";
    let mut f = Fields::new(body, "").map_err(|e| ApiError::Validation {
        code: CODE,
        fields: vec![e],
    })?;
    let customer_id = f.string("customer_id", true, &CUSTOMER_ID);
    let mut accounts = Vec::new();
    if let Some(items) = f.array("account_ids", true, 1, MAX_ACCOUNTS) {
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) if ACCOUNT_ID.matches(s) => {
                    if !accounts.iter().any(|a| a == s) {
                        accounts.push(s.to_owned());
                    }
                }
                _ => f.fail(&format!("account_ids[{i}]"), ACCOUNT_ID.message),
            }
        }
    }
    verdict(CODE, f.finish())?;
    let customer_id =
        customer_id.ok_or_else(|| ApiError::internal("validated body lacks customer_id"))?;
    Ok((customer_id, accounts))
}

/// `POST /api/v0/authorization-requests/{challenge}/accept`.
pub async fn accept(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    Path(challenge): Path<String>,
    AppJson(body): AppJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let (customer_id, account_ids) = parse_authorisation(&body)?;
    let actor = principal.actor(&interaction);
    let to = accept_request(&state, &challenge, &customer_id, &account_ids, &actor).await?;
    Ok(Json(json!({ "redirect_to": to })))
}

/// Authorises the consent behind `challenge` for `customer_id` (through the KYC gate) and
/// answers the TPP redirect carrying the new authorization code. Shared by the bank's UI API
/// and the hosted consent screen, so both make exactly the same checks.
pub async fn accept_request(
    state: &AppState,
    challenge: &str,
    customer_id: &str,
    account_ids: &[String],
    actor: &crate::audit::Actor,
) -> Result<String, ApiError> {
    let req = pending(state, challenge).await?;
    let now = state.clock.now();
    let code = random_token();
    let row = CodeRow {
        code_hash: hash(&code),
        client_id: req.client_id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        code_challenge: req.code_challenge.clone(),
        consent_id: req.consent_id.clone(),
        customer_id: customer_id.to_owned(),
        scope: req.scope.clone(),
        family_id: format!("fam_{}", uuid::Uuid::now_v7().simple()),
        created_at: now,
        expires_at: now.plus(CODE_TTL),
        used_at: None,
    };
    authorise(
        state,
        &req.consent_id,
        Authorisation {
            customer_id,
            account_ids,
            actor,
            request_id: Some(req.id.clone()),
            code: Some(row),
        },
    )
    .await?;
    Ok(back_to_tpp(
        state,
        &req.redirect_uri,
        req.state.as_deref(),
        &[("code", &code)],
    ))
}

/// `POST /api/v0/authorization-requests/{challenge}/reject`.
pub async fn reject(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    Path(challenge): Path<String>,
    AppJson(body): AppJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let mut f = Fields::new(&body, "").map_err(|e| ApiError::Validation {
        code: "rejection_post_schema",
        fields: vec![e],
    })?;
    let reason = f.string("reason", false, &REASON);
    verdict("rejection_post_schema", f.finish())?;
    let to = reject_request(
        &state,
        &challenge,
        reason.as_deref().unwrap_or("rejected_by_customer"),
        &principal.actor(&interaction),
    )
    .await?;
    Ok(Json(json!({ "redirect_to": to })))
}

/// The same customer's answer to a request they already answered, sent again: a
/// double-clicked Approve or Decline (the pages need no script to stop one). The browser shows
/// only the last answer's page, so without this the first answer's redirect, carrying the
/// code, was lost: the consent authorised and the TPP never called back.
///
/// An approval is answered with a new code in place of the first, while that one is unused
/// and unexpired (the first no longer works: it never reached the TPP, and it must not stay a
/// second way in); a decline with the TPP's `access_denied` again. `None` when the request was
/// not answered that way by this customer within [`CODE_TTL`], or the code was already used.
pub async fn answered_again(
    state: &AppState,
    challenge: &str,
    customer_id: &str,
    approve: bool,
    actor: &crate::audit::Actor,
) -> Result<Option<String>, ApiError> {
    let Some(req) = state.store.get_decided_request(&hash(challenge)).await? else {
        return Ok(None);
    };
    let now = state.clock.now();
    if req.decided_at.is_none_or(|at| at.plus(CODE_TTL) <= now) {
        return Ok(None);
    }
    let Some(consent) = state.store.get_consent(&req.consent_id).await? else {
        return Ok(None);
    };
    if !approve {
        let declined = consent.status == ConsentStatus::Rejected.as_str();
        return Ok(
            declined.then(|| back_to_tpp(state, &req.redirect_uri, req.state.as_deref(), DECLINED))
        );
    }
    let theirs = consent.status == ConsentStatus::Authorised.as_str()
        && consent.customer_id.as_deref() == Some(customer_id);
    if !theirs {
        return Ok(None);
    }
    let code = random_token();
    let audit = actor
        .event(now, "consent.code_reissue")
        .on("consent", &req.consent_id);
    let reissued = state
        .store
        .reissue_code(
            &req.consent_id,
            customer_id,
            &hash(&code),
            now,
            now.plus(CODE_TTL),
            &audit,
        )
        .await?;
    Ok(reissued.then(|| {
        back_to_tpp(
            state,
            &req.redirect_uri,
            req.state.as_deref(),
            &[("code", &code)],
        )
    }))
}

/// Rejects the consent behind `challenge` and answers the TPP redirect carrying
/// `access_denied`; shared by the bank's UI API and the hosted consent screen.
pub async fn reject_request(
    state: &AppState,
    challenge: &str,
    reason: &str,
    actor: &crate::audit::Actor,
) -> Result<String, ApiError> {
    let req = pending(state, challenge).await?;
    let consent = state
        .store
        .get_consent(&req.consent_id)
        .await?
        .ok_or_else(|| super::not_found(&req.consent_id))?;
    if consent.status != ConsentStatus::AwaitingAuthorisation.as_str() {
        return Err(ApiError::Conflict {
            code: "consent_not_awaiting_authorisation",
            message: format!("consent {} is {}", consent.consent_id, consent.status),
        });
    }
    end(
        state,
        &consent,
        ConsentStatus::Rejected,
        reason,
        false,
        actor,
        Some(req.id.clone()),
    )
    .await?;
    Ok(back_to_tpp(
        state,
        &req.redirect_uri,
        req.state.as_deref(),
        DECLINED,
    ))
}
