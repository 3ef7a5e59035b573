//! `/api/v0/customers…`: Bond's customer and KYC API for the bank's back office.

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{customers, verification};
use crate::admin::{auth::require_admin, AdminPrincipal};
use crate::error::ApiError;
use crate::http::extract::{AppJson, AppQuery};
use crate::http::idempotency;
use crate::http::middleware::InteractionId;
use crate::http::Routes;
use crate::state::AppState;

/// Customer and KYC routes, behind the admin-key check.
pub fn routes(state: AppState) -> Routes<AppState> {
    // Documents carry base64 images: up to three kinds, two sides each.
    let documents_limit = state.config.kyc.document_max_bytes.saturating_mul(8) + 64 * 1024;
    Routes::new()
        .post("/api/v0/customers", create)
        .get("/api/v0/customers", list)
        .get("/api/v0/customers/{customer_id}", show)
        .patch("/api/v0/customers/{customer_id}", update)
        .delete("/api/v0/customers/{customer_id}", erase)
        .post("/api/v0/customers/{customer_id}/verification-kyc", start)
        .get("/api/v0/customers/{customer_id}/verification-kyc", status)
        .post("/api/v0/customers/{customer_id}/verification-kba", kba)
        .post_with_limit(
            "/api/v0/customers/{customer_id}/verification-kyc/documents",
            documents,
            DefaultBodyLimit::max(documents_limit),
        )
        .post(
            "/api/v0/customers/{customer_id}/verification-kyc/review",
            review,
        )
        .route_layer(axum::middleware::from_fn_with_state(state, require_admin))
}

async fn create(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    headers: HeaderMap,
    AppJson(body): AppJson<Value>,
) -> Result<Response, ApiError> {
    let claim = idempotency::claim(&headers, &principal, state.clock.now())?;
    let profile = customers::parse_profile(&body, None, customers::today(&state))?;
    let o = customers::create(&state, profile, claim, &principal.actor(&interaction)).await?;
    Ok((StatusCode::CREATED, Json(customers::view(&o))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = crate::http::extract::page_limit(q.limit.as_deref())?;
    // The cursor is the last customer id of the previous page.
    let before = match q.cursor {
        None => None,
        Some(id) => match state.store.get_customer(&id).await? {
            Some(c) => Some((c.created_at, c.customer_id)),
            None => return Ok(Json(json!({"data": [], "next_cursor": null}))),
        },
    };
    let rows = state.store.list_customers(before, limit).await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.customer_id.clone()))
        .flatten();
    let mut data = Vec::with_capacity(rows.len());
    for row in rows {
        data.push(customers::view(&customers::open_row(
            &state.config.pii_key,
            row,
        )?));
    }
    Ok(Json(json!({"data": data, "next_cursor": next})))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(customers::view(&customers::open(&state, &id).await?)))
}

async fn update(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    headers: HeaderMap,
    Path(id): Path<String>,
    AppJson(body): AppJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let claim = idempotency::claim(&headers, &principal, state.clock.now())?;
    let o = customers::update(&state, &id, &body, claim, &principal.actor(&interaction)).await?;
    Ok(Json(customers::view(&o)))
}

async fn erase(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let until = customers::erase(&state, &id, &principal.actor(&interaction)).await?;
    let now = state.clock.now();
    Ok(Json(json!({
        "customer_id": id,
        "erased_at": now,
        "aml_record_retained_until": (until > now).then_some(until),
    })))
}

async fn start(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    headers: HeaderMap,
    Path(id): Path<String>,
    AppJson(body): AppJson<Value>,
) -> Result<Response, ApiError> {
    let claim = idempotency::claim(&headers, &principal, state.clock.now())?;
    let v = verification::start(&state, &id, &body, claim, &principal.actor(&interaction)).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(verification::view(&state, &id).await?))
}

async fn kba(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    headers: HeaderMap,
    Path(id): Path<String>,
    AppJson(body): AppJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let claim = idempotency::claim(&headers, &principal, state.clock.now())?;
    let actor = principal.actor(&interaction);
    Ok(Json(
        verification::answer_kba(&state, &id, &body, claim, &actor).await?,
    ))
}

async fn documents(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    headers: HeaderMap,
    Path(id): Path<String>,
    AppJson(body): AppJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let claim = idempotency::claim(&headers, &principal, state.clock.now())?;
    let actor = principal.actor(&interaction);
    Ok(Json(
        verification::submit_documents(&state, &id, &body, claim, &actor).await?,
    ))
}

async fn review(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    interaction: InteractionId,
    headers: HeaderMap,
    Path(id): Path<String>,
    AppJson(body): AppJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let claim = idempotency::claim(&headers, &principal, state.clock.now())?;
    let actor = principal.actor(&interaction);
    Ok(Json(
        verification::review(&state, &id, &body, claim, &actor).await?,
    ))
}
