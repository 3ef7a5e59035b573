//! The bank-facing consent API (admin key): the consent UI's calls, the decoupled
//! authorisation for the bank's own apps, revocation, and a customer's consents (the data
//! behind an access dashboard).

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::flow;
use super::{authorise, bank_view, end, not_found, Authorisation, ConsentStatus};
use crate::admin::{auth::require_admin, AdminPrincipal};
use crate::error::ApiError;
use crate::http::extract::AppJson;
use crate::http::middleware::InteractionId;
use crate::http::validate::{verdict, Fields};
use crate::http::Routes;
use crate::state::AppState;

/// The routes, behind the admin-key check.
pub fn routes(state: AppState) -> Routes<AppState> {
    Routes::new()
        .get(
            "/api/v0/authorization-requests/{challenge}",
            flow::show_request,
        )
        .post(
            "/api/v0/authorization-requests/{challenge}/accept",
            flow::accept,
        )
        .post(
            "/api/v0/authorization-requests/{challenge}/reject",
            flow::reject,
        )
        .get("/api/v0/consents/{consent_id}", show)
        .post(
            "/api/v0/consents/{consent_id}/authorise",
            authorise_decoupled,
        )
        .post("/api/v0/consents/{consent_id}/revoke", revoke)
        .get("/api/v0/customers/{customer_id}/consents", of_customer)
        .route_layer(axum::middleware::from_fn_with_state(state, require_admin))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = state
        .store
        .get_consent(&id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(bank_view(&state, &c).await?))
}

async fn authorise_decoupled(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    Path(id): Path<String>,
    AppJson(body): AppJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let (customer_id, account_ids) = flow::parse_authorisation(&body)?;
    let actor = principal.actor(&interaction);
    let c = authorise(
        &state,
        &id,
        Authorisation {
            customer_id: &customer_id,
            account_ids: &account_ids,
            actor: &actor,
            request_id: None,
            code: None,
        },
    )
    .await?;
    Ok(Json(bank_view(&state, &c).await?))
}

async fn revoke(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    Path(id): Path<String>,
    AppJson(body): AppJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let mut f = Fields::new(&body, "").map_err(|e| ApiError::Validation {
        code: "revocation_post_schema",
        fields: vec![e],
    })?;
    let reason = f.string("reason", true, &flow::REASON);
    verdict("revocation_post_schema", f.finish())?;
    let reason = reason.ok_or_else(|| ApiError::internal("validated body lacks reason"))?;
    let c = state
        .store
        .get_consent(&id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    if c.status != ConsentStatus::Authorised.as_str() {
        return Err(ApiError::Conflict {
            code: "consent_not_authorised",
            message: format!(
                "consent {id} is {}; only an Authorised consent can be revoked",
                c.status
            ),
        });
    }
    let c = end(
        &state,
        &c,
        ConsentStatus::Revoked,
        &reason,
        false,
        &principal.actor(&interaction),
        None,
    )
    .await?;
    Ok(Json(bank_view(&state, &c).await?))
}

async fn of_customer(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let customer = state.store.get_customer(&id).await?;
    if customer.is_none_or(|c| c.erased_at.is_some()) {
        return Err(crate::kyc::customers::not_found(&id));
    }
    let rows = state.store.list_customer_consents(&id).await?;
    let mut data = Vec::with_capacity(rows.len());
    for c in &rows {
        data.push(bank_view(&state, c).await?);
    }
    Ok(Json(json!({ "data": data })))
}
