//! `GET /api/v0/audit`: the audit log for compliance and operators, newest first, and
//! `GET /api/v0/audit/gateway-decisions`: every gateway request's decision, newest first.
//!
//! Filters are exact matches (`actor_id`, `action`, `resource_type`, `resource_id`, `outcome`,
//! `actor_type`, `interaction_id`; for decisions `client_id`, `consent_id`, `outcome`,
//! `reason`, `interaction_id`) plus a time window (`since` inclusive, `until` exclusive,
//! RFC 3339). Pages are `limit` rows (1–500, default 50); `next_cursor` continues the listing.
//! The cursor is a plain `seq` ("rows below this one"): both tables are append-only and
//! gap-free, so a cursor never goes stale and new rows never shift a page.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::decisions::{DecisionFilter, DecisionRecord};
use super::{ActorType, AuditFilter, AuditRecord, Outcome, Window};
use crate::admin::auth::require_admin;
use crate::clock::Timestamp;
use crate::error::{ApiError, FieldError};
use crate::http::extract::AppQuery;
use crate::http::Routes;
use crate::state::AppState;

const MAX_LIMIT: u32 = 500;
const DEFAULT_LIMIT: u32 = 50;

/// `GET /api/v0/audit` and its gateway decisions, behind the admin-key check.
pub fn routes(state: AppState) -> Routes<AppState> {
    Routes::new()
        .get("/api/v0/audit", list)
        .get("/api/v0/audit/gateway-decisions", list_decisions)
        .route_layer(axum::middleware::from_fn_with_state(state, require_admin))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    actor_type: Option<String>,
    actor_id: Option<String>,
    action: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    outcome: Option<String>,
    interaction_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionQuery {
    client_id: Option<String>,
    consent_id: Option<String>,
    outcome: Option<String>,
    reason: Option<String>,
    interaction_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Serialize)]
struct Page<T> {
    data: Vec<T>,
    next_cursor: Option<i64>,
}

/// The window and page both listings take; each bad value is added to `errors`.
fn parse_window(
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    errors: &mut Vec<FieldError>,
) -> Window {
    let mut time = |field: &str, v: Option<String>| {
        v.and_then(|s| match Timestamp::parse_rfc3339(&s) {
            Some(t) => Some(t),
            None => {
                errors.push(FieldError::invalid(
                    field,
                    "expected an RFC 3339 date-time such as 2026-11-22T10:00:00Z",
                ));
                None
            }
        })
    };
    let since = time("since", since);
    let until = time("until", until);
    let limit = match limit.as_deref().map(str::parse::<u32>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            errors.push(FieldError::invalid(
                "limit",
                format!("expected a whole number from 1 to {MAX_LIMIT}"),
            ));
            DEFAULT_LIMIT
        }
    };
    let before_seq = match cursor.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(seq)) if seq >= 1 => Some(seq),
        Some(_) => {
            errors.push(FieldError::invalid(
                "cursor",
                "expected the next_cursor of a previous page (a whole number from 1)",
            ));
            None
        }
    };
    Window {
        since,
        until,
        before_seq,
        limit,
    }
}

fn parse_filter(q: Query) -> Result<AuditFilter, ApiError> {
    let mut errors = Vec::new();
    let window = parse_window(q.since, q.until, q.limit, q.cursor, &mut errors);
    if let Some(a) = q.actor_type.as_deref() {
        if !ActorType::ALL.iter().any(|t| t.as_str() == a) {
            let known: Vec<&str> = ActorType::ALL.iter().map(|t| t.as_str()).collect();
            errors.push(FieldError::invalid(
                "actor_type",
                format!("expected one of {}", known.join(", ")),
            ));
        }
    }
    if let Some(o) = q.outcome.as_deref() {
        if Outcome::parse(o).is_none() {
            errors.push(FieldError::invalid(
                "outcome",
                "expected success, denied or failure",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation {
            code: "invalid_query",
            fields: errors,
        });
    }
    Ok(AuditFilter {
        actor_type: q.actor_type,
        actor_id: q.actor_id,
        action: q.action,
        resource_type: q.resource_type,
        resource_id: q.resource_id,
        outcome: q.outcome,
        interaction_id: q.interaction_id,
        window,
    })
}

fn parse_decision_filter(q: DecisionQuery) -> Result<DecisionFilter, ApiError> {
    let mut errors = Vec::new();
    let window = parse_window(q.since, q.until, q.limit, q.cursor, &mut errors);
    if let Some(o) = q.outcome.as_deref() {
        if !matches!(o, "success" | "denied") {
            errors.push(FieldError::invalid("outcome", "expected success or denied"));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation {
            code: "invalid_query",
            fields: errors,
        });
    }
    Ok(DecisionFilter {
        client_id: q.client_id,
        consent_id: q.consent_id,
        outcome: q.outcome,
        reason: q.reason,
        interaction_id: q.interaction_id,
        window,
    })
}

/// The page as JSON, with the cursor to the next one when this one is full.
fn page<T: Serialize>(
    data: Vec<T>,
    limit: u32,
    seq: impl Fn(&T) -> i64,
) -> Result<Json<serde_json::Value>, ApiError> {
    let next_cursor = if data.len() == limit as usize {
        data.last().map(seq)
    } else {
        None
    };
    serde_json::to_value(Page { data, next_cursor })
        .map(Json)
        .map_err(ApiError::internal)
}

async fn list(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<Query>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filter = parse_filter(q)?;
    let data = state.store.list_audit(&filter).await?;
    page(data, filter.window.limit, |r: &AuditRecord| r.seq)
}

async fn list_decisions(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<DecisionQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filter = parse_decision_filter(q)?;
    let data = state.store.list_decisions(&filter).await?;
    page(data, filter.window.limit, |r: &DecisionRecord| r.seq)
}
