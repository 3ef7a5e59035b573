//! The admin-key check in front of every `/api/v0/*` route.

use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::audit::{Actor, ActorType, AuditEvent, Outcome};
use crate::error::ApiError;
use crate::http::middleware::InteractionId;
use crate::state::AppState;

const CHALLENGE: &str = "Bearer realm=\"obgate-admin\"";
/// `last_used_at` is written at most this often per key, to keep reads read-only.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The authenticated admin key of the request; handlers take it to audit their actions.
#[derive(Clone, Debug)]
pub struct AdminPrincipal {
    /// `ak_…` id.
    pub key_id: String,
    /// Its label.
    pub name: String,
}

impl AdminPrincipal {
    /// This key as the actor of an audited change made in the request `interaction`.
    pub fn actor(&self, interaction: &InteractionId) -> Actor {
        Actor {
            kind: ActorType::AdminKey,
            id: self.key_id.clone(),
            interaction_id: Some(interaction.0.clone()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AdminPrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<AdminPrincipal>()
            .cloned()
            .ok_or_else(|| ApiError::internal("admin route served without the admin layer"))
    }
}

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Middleware: requires a valid, unrevoked admin key. Refused presented keys are audited and
/// count against the address they come from, as failed client authentications do
/// ([`crate::limits::lockout`]): once it is locked, its requests are refused (`429`) before
/// any key is looked up or anything written, so an anonymous flood of made-up keys is not a
/// serialised audit write each.
pub async fn require_admin(
    State(state): State<AppState>,
    addr: crate::limits::ClientAddr,
    mut req: Request,
    next: Next,
) -> Response {
    let interaction = req.extensions().get::<InteractionId>().map(|i| i.0.clone());
    let subjects: Vec<crate::limits::lockout::Subject> = addr
        .0
        .map(crate::limits::lockout::Subject::Address)
        .into_iter()
        .collect();
    if let Some(wait) = state.limits.lockout.locked(&subjects).await {
        return crate::limits::locked_out(wait).into_response();
    }
    let Some(token) = bearer(&req) else {
        return ApiError::Unauthorized {
            message: "missing admin API key: send `Authorization: Bearer <key>`".into(),
            challenge: Some(CHALLENGE),
        }
        .into_response();
    };
    let found = match state
        .store
        .find_admin_key_by_hash(&super::hash_key(token))
        .await
    {
        Ok(found) => found,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let now = state.clock.now();
    let refusal = match &found {
        None => Some(("unknown_key", "-".to_owned(), ActorType::Anonymous)),
        Some(k) if k.revoked_at.is_some() => {
            Some(("revoked_key", k.id.clone(), ActorType::AdminKey))
        }
        Some(_) => None,
    };
    if let Some((reason, actor_id, actor_type)) = refusal {
        let event = AuditEvent::new(now, actor_type, actor_id, "admin.authenticate")
            .outcome(Outcome::Denied, reason)
            .interaction(interaction.as_deref());
        if let Err(e) = state.store.append_audit(&event).await {
            return ApiError::from(e).into_response();
        }
        let counted = crate::oauth::client_auth::count_failure(
            &state,
            &subjects,
            crate::oauth::client_auth::Failure::AdminKey,
            interaction.as_deref(),
        );
        if let Err(e) = counted.await {
            return e.into_response();
        }
        return ApiError::Unauthorized {
            message: "unknown or revoked admin API key".into(),
            challenge: Some(CHALLENGE),
        }
        .into_response();
    }
    let Some(key) = found else {
        return ApiError::internal("admin key vanished").into_response();
    };
    let stale = key.last_used_at.is_none_or(|t| t.plus(TOUCH_EVERY) <= now);
    if stale {
        if let Err(e) = state.store.touch_admin_key(&key.id, now).await {
            tracing::warn!(error = %e, "could not record admin key use");
        }
    }
    req.extensions_mut().insert(AdminPrincipal {
        key_id: key.id,
        name: key.name,
    });
    next.run(req).await
}
