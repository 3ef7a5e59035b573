//! The TPP-facing consent resource: `POST/GET/DELETE
//! /open-banking/v3.1/aisp/account-access-consents`, in the UK Open Banking v3.1.11 shapes.
//!
//! The TPP calls it with a `client_credentials` access token with scope `accounts` (a
//! customer-bound token is refused). Validation follows the AIS profile, each failure a `400
//! OBErrorResponse1` naming the field (`Path`) and a `UK.OBIE.*` code. A consent of another
//! client answers exactly like an unknown one.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::permissions::{self, check_combination};
use super::{end, ob_not_found, parse_date_time, ConsentStatus};
use crate::audit::{Actor, ActorType};
use crate::clock::Timestamp;
use crate::error::{ApiError, ObError};
use crate::http::extract::AppJson;
use crate::http::middleware::InteractionId;
use crate::http::Routes;
use crate::oauth::jwt::AccessClaims;
use crate::state::AppState;
use crate::store::consents::ConsentRow;
use crate::store::ClientRow;

/// Base path of the consent resource.
pub const BASE: &str = "/open-banking/v3.1/aisp/account-access-consents";

/// The consent routes.
pub fn routes() -> Routes<AppState> {
    Routes::new()
        .post(BASE, create)
        .get(
            "/open-banking/v3.1/aisp/account-access-consents/{consent_id}",
            show,
        )
        .delete(
            "/open-banking/v3.1/aisp/account-access-consents/{consent_id}",
            delete,
        )
}

fn invalid_token(message: &str) -> ApiError {
    ApiError::Unauthorized {
        message: message.to_owned(),
        challenge: Some("Bearer error=\"invalid_token\""),
    }
}

/// The TPP behind a request's `client_credentials` token (scope `accounts`, no consent).
pub async fn tpp(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(AccessClaims, ClientRow), ApiError> {
    let token = crate::gateway::authenticate::bearer_header(headers).ok_or_else(|| {
        invalid_token("send Authorization: Bearer <client_credentials access token>")
    })?;
    let claims = crate::oauth::token::verify_access_token(state, token)
        .await
        .map_err(|_| invalid_token("the access token is not valid"))?;
    if claims.consent_id.is_some() {
        return Err(invalid_token(
            "a customer-bound token cannot manage consents; use a client_credentials token",
        ));
    }
    if !claims.scope.split_whitespace().any(|s| s == "accounts") {
        return Err(invalid_token("the access token lacks scope accounts"));
    }
    let client = state
        .store
        .get_client(&claims.client_id)
        .await?
        .filter(|c| c.disabled_at.is_none())
        .ok_or_else(|| invalid_token("the client is disabled"))?;
    Ok((claims, client))
}

fn actor(client: &ClientRow, interaction: &InteractionId) -> Actor {
    Actor {
        kind: ActorType::Client,
        id: client.client_id.clone(),
        interaction_id: Some(interaction.0.clone()),
    }
}

/// `2017-04-05T10:43:07+00:00`: the OB examples' form (seconds, explicit offset).
pub fn ob_time(t: Timestamp) -> String {
    let s = t.to_rfc3339();
    // `to_rfc3339` is `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    format!("{}+00:00", s.get(..19).unwrap_or(&s))
}

fn bad(errors: Vec<ObError>) -> ApiError {
    ApiError::OpenBanking {
        status: StatusCode::BAD_REQUEST,
        errors,
    }
}

/// A validated `OBReadConsent1`.
struct NewConsent {
    permissions: Vec<String>,
    data: Map<String, Value>,
    expiration: Option<Timestamp>,
}

/// Checks a consent request body as `POST /account-access-consents` does, without storing
/// anything: the parser the fuzz target `consent_request` drives.
pub fn check_request(body: &Value, now: Timestamp) -> Result<(), ApiError> {
    validate(body, now).map(|_| ())
}

fn validate(body: &Value, now: Timestamp) -> Result<NewConsent, ApiError> {
    let mut errors = Vec::new();
    let Some(top) = body.as_object() else {
        return Err(bad(vec![ObError::field(
            "UK.OBIE.Resource.InvalidFormat",
            "$",
            "the body must be an OBReadConsent1 JSON object",
        )]));
    };
    for key in top
        .keys()
        .filter(|k| !matches!(k.as_str(), "Data" | "Risk"))
    {
        errors.push(ObError::field(
            "UK.OBIE.Field.Unexpected",
            key,
            format!("{key} is not a field of OBReadConsent1"),
        ));
    }
    match top.get("Risk") {
        None => errors.push(ObError::field(
            "UK.OBIE.Field.Missing",
            "Risk",
            "Risk is required ({} for account access)",
        )),
        Some(Value::Object(r)) => {
            for key in r.keys() {
                errors.push(ObError::field(
                    "UK.OBIE.Field.Unexpected",
                    &format!("Risk.{key}"),
                    "Risk has no fields for account access; send {}",
                ));
            }
        }
        Some(_) => errors.push(ObError::field(
            "UK.OBIE.Field.Invalid",
            "Risk",
            "Risk must be an object",
        )),
    }
    let data = match top.get("Data") {
        None => {
            errors.push(ObError::field(
                "UK.OBIE.Field.Missing",
                "Data",
                "Data is required",
            ));
            return Err(bad(errors));
        }
        Some(Value::Object(d)) => d,
        Some(_) => {
            errors.push(ObError::field(
                "UK.OBIE.Field.Invalid",
                "Data",
                "Data must be an object",
            ));
            return Err(bad(errors));
        }
    };
    let mut permissions: Vec<String> = Vec::new();
    match data.get("Permissions") {
        None => errors.push(ObError::field(
            "UK.OBIE.Field.Missing",
            "Data.Permissions",
            "Data.Permissions is required",
        )),
        Some(Value::Array(list)) if list.is_empty() => errors.push(ObError::field(
            "UK.OBIE.Field.Invalid",
            "Data.Permissions",
            "Data.Permissions must not be empty",
        )),
        Some(Value::Array(list)) => {
            let mut unknown = false;
            for (i, p) in list.iter().enumerate() {
                match p.as_str() {
                    Some(code) if permissions::known(code) => {
                        if !permissions.iter().any(|x| x == code) {
                            permissions.push(code.to_owned());
                        }
                    }
                    _ => {
                        unknown = true;
                        errors.push(ObError::field(
                            "UK.OBIE.Field.Invalid",
                            &format!("Data.Permissions[{i}]"),
                            format!("{p} is not a permission this server supports"),
                        ));
                    }
                }
            }
            if !unknown {
                let codes: Vec<&str> = permissions.iter().map(String::as_str).collect();
                errors.extend(check_combination(&codes));
            }
        }
        Some(_) => errors.push(ObError::field(
            "UK.OBIE.Field.Invalid",
            "Data.Permissions",
            "Data.Permissions must be an array of permission codes",
        )),
    }
    let mut date = |field: &str| -> Option<(String, Timestamp)> {
        let v = data.get(field)?;
        let path = format!("Data.{field}");
        match v
            .as_str()
            .and_then(|s| parse_date_time(s).map(|t| (s.to_owned(), t)))
        {
            Some(x) => Some(x),
            None => {
                errors.push(ObError::field(
                    "UK.OBIE.Field.InvalidDate",
                    &path,
                    format!("{path} must be an ISO 8601 date-time with a time zone, e.g. 2026-05-02T00:00:00+00:00"),
                ));
                None
            }
        }
    };
    let expiration = date("ExpirationDateTime");
    let from = date("TransactionFromDateTime");
    let to = date("TransactionToDateTime");
    if let Some((_, t)) = &expiration {
        if *t <= now {
            errors.push(ObError::field(
                "UK.OBIE.Field.InvalidDate",
                "Data.ExpirationDateTime",
                "Data.ExpirationDateTime must be in the future",
            ));
        }
    }
    if let (Some((_, f)), Some((_, t))) = (&from, &to) {
        if f > t {
            errors.push(ObError::field(
                "UK.OBIE.Field.InvalidDate",
                "Data.TransactionFromDateTime",
                "Data.TransactionFromDateTime must not be after Data.TransactionToDateTime",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(bad(errors));
    }
    // Only the fields OBReadConsent1 defines are kept; dates exactly as the TPP sent them.
    let mut kept = Map::new();
    kept.insert("Permissions".into(), json!(permissions));
    for (field, v) in [
        ("ExpirationDateTime", &expiration),
        ("TransactionFromDateTime", &from),
        ("TransactionToDateTime", &to),
    ] {
        if let Some((s, _)) = v {
            kept.insert(field.into(), json!(s));
        }
    }
    Ok(NewConsent {
        permissions,
        data: kept,
        expiration: expiration.map(|(_, t)| t),
    })
}

/// `OBReadConsentResponse1` of a stored consent.
pub fn ob_view(state: &AppState, c: &ConsentRow) -> Value {
    let mut data: Map<String, Value> = serde_json::from_str(&c.data).unwrap_or_default();
    data.insert("ConsentId".into(), json!(c.consent_id));
    data.insert("Status".into(), json!(c.status));
    data.insert("CreationDateTime".into(), json!(ob_time(c.created_at)));
    data.insert(
        "StatusUpdateDateTime".into(),
        json!(ob_time(c.status_updated_at)),
    );
    json!({
        "Data": data,
        "Risk": serde_json::from_str::<Value>(&c.risk).unwrap_or_else(|_| json!({})),
        "Links": {"Self": format!("{}{BASE}/{}", state.config.public_base(), c.consent_id)},
        "Meta": {"TotalPages": 1},
    })
}

/// The OB file's pattern for `x-fapi-auth-date` (an RFC 7231 date).
pub const AUTH_DATE: crate::http::validate::Rule = crate::http::validate::Rule {
    pattern: r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} (GMT|UTC)$",
    message: "x-fapi-auth-date must be an RFC 7231 date such as Sun, 10 Sep 2017 19:43:31 GMT",
};

/// `x-fapi-auth-date` must be an RFC 7231 date, as the OB file's pattern says.
fn auth_date(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("x-fapi-auth-date") else {
        return Ok(None);
    };
    let ok = v
        .to_str()
        .ok()
        .filter(|s| AUTH_DATE.matches(s))
        .map(str::to_owned);
    match ok {
        Some(s) => Ok(Some(s)),
        None => Err(bad(vec![ObError::field(
            "UK.OBIE.Header.Invalid",
            "x-fapi-auth-date",
            "x-fapi-auth-date must be an RFC 7231 date such as Sun, 10 Sep 2017 19:43:31 GMT",
        )])),
    }
}

async fn create(
    State(state): State<AppState>,
    interaction: InteractionId,
    headers: HeaderMap,
    AppJson(body): AppJson<Value>,
) -> Result<Response, ApiError> {
    let (_, client) = tpp(&state, &headers).await?;
    let auth_date = auth_date(&headers)?;
    let customer_ip = headers
        .get("x-fapi-customer-ip-address")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(64).collect::<String>());
    let now = state.clock.now();
    let new = validate(&body, now)?;
    let consent = ConsentRow {
        consent_id: format!("aac-{}", uuid::Uuid::new_v4()),
        client_id: client.client_id.clone(),
        status: ConsentStatus::AwaitingAuthorisation.as_str().into(),
        permissions: new.permissions.join(" "),
        data: Value::Object(new.data).to_string(),
        risk: "{}".into(),
        expiration_at: new.expiration,
        customer_id: None,
        account_ids: None,
        created_at: now,
        status_updated_at: now,
        authorisable_until: now.plus(state.config.consents.authorisation_window),
        authorised_at: None,
        deleted_at: None,
        revoked_reason: None,
        customer_ip,
        auth_date,
        version: 0,
    };
    let audit = actor(&client, &interaction)
        .event(now, "consent.create")
        .on("consent", &consent.consent_id);
    state.store.insert_consent(&consent, &audit).await?;
    Ok((StatusCode::CREATED, Json(ob_view(&state, &consent))).into_response())
}

/// The TPP's own consent, not deleted; the OB not-found error otherwise.
async fn own(state: &AppState, client: &ClientRow, id: &str) -> Result<ConsentRow, ApiError> {
    state
        .store
        .get_consent(id)
        .await?
        .filter(|c| c.client_id == client.client_id && c.deleted_at.is_none())
        .ok_or_else(|| ob_not_found(id))
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (_, client) = tpp(&state, &headers).await?;
    let c = own(&state, &client, &id).await?;
    Ok(Json(ob_view(&state, &c)))
}

async fn delete(
    State(state): State<AppState>,
    interaction: InteractionId,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (_, client) = tpp(&state, &headers).await?;
    let c = own(&state, &client, &id).await?;
    end(
        &state,
        &c,
        ConsentStatus::Revoked,
        "deleted_by_tpp",
        true,
        &actor(&client, &interaction),
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
