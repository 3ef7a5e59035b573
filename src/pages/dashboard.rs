//! The access dashboard: every consent the customer granted, current and ended apart, and a
//! two-step revoke (`GET …/revoke` asks, `POST …/revoke` ends access at once, with the same
//! path the bank's API uses: tokens revoked, caches told, event and audit written).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::consent_screen::long_date;
use super::form::Form;
use super::render::{message, page, see_other};
use super::session::Session;
use super::views::{Brand, ConsentCard, Dashboard, Nav, RevokeConfirm};
use crate::consent::{permissions, ConsentStatus};
use crate::error::ApiError;
use crate::http::middleware::InteractionId;
use crate::state::AppState;
use crate::store::consents::ConsentRow;

/// The reason recorded when a customer ends access here.
const REVOKED_BY_CUSTOMER: &str = "revoked_by_customer";

fn nav(s: &Session) -> Option<Nav> {
    Some(Nav {
        csrf: s.csrf.clone(),
    })
}

/// Whether the consent gives access right now.
fn active(state: &AppState, c: &ConsentRow) -> bool {
    c.status == ConsentStatus::Authorised.as_str()
        && c.expiration_at.is_none_or(|t| t > state.clock.now())
}

/// What the dashboard knows to show for names: TPPs by client id, accounts by account id
/// (from the bank, best effort: an unreachable bank shows the ids).
#[derive(Default)]
struct Names {
    tpps: HashMap<String, String>,
    accounts: HashMap<String, String>,
}

impl Names {
    async fn with_accounts(state: &AppState, s: &Session, interaction: &str) -> Self {
        let mut names = Self::default();
        if let Ok(list) = state.gateway.accounts_of(&s.customer_id, interaction).await {
            for a in &list {
                if let Some((id, name, detail)) = super::consent_screen::describe_account(a) {
                    let ending = detail
                        .rsplit(" · ")
                        .next()
                        .filter(|d| d.starts_with("ending"));
                    let label = match ending {
                        Some(e) => format!("{name} ({e})"),
                        None => name,
                    };
                    names.accounts.insert(id, label);
                }
            }
        }
        names
    }
}

async fn card(
    state: &AppState,
    c: &ConsentRow,
    names: &mut Names,
) -> Result<ConsentCard, ApiError> {
    let names_accounts = &names.accounts;
    let accounts = c
        .account_ids
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(|id| {
            names_accounts
                .get(id)
                .cloned()
                .unwrap_or_else(|| id.to_owned())
        })
        .collect::<Vec<_>>()
        .join(", ");
    let names = &mut names.tpps;
    if !names.contains_key(&c.client_id) {
        let name = state
            .store
            .get_client(&c.client_id)
            .await?
            .map_or_else(|| "An app".to_owned(), |cl| cl.client_name);
        names.insert(c.client_id.clone(), name);
    }
    let tpp_name = names.get(&c.client_id).cloned().unwrap_or_default();
    let codes = crate::consent::permissions_of(c);
    let permissions = permissions::CLUSTERS
        .iter()
        .filter(|cl| codes.iter().any(|code| permissions::cluster(code) == **cl))
        .map(|cl| cl.strip_prefix("Your ").unwrap_or(cl))
        .collect::<Vec<_>>()
        .join(", ");
    let now = state.clock.now();
    let when = long_date(c.status_updated_at);
    let status = if active(state, c) {
        "Active".to_owned()
    } else if c.status == ConsentStatus::Authorised.as_str() {
        format!("Expired on {}", long_date(c.expiration_at.unwrap_or(now)))
    } else if c.deleted_at.is_some() {
        format!("Ended by {tpp_name} on {when}")
    } else if c.revoked_reason.as_deref() == Some(REVOKED_BY_CUSTOMER) {
        format!("Stopped by you on {when}")
    } else {
        format!("Ended by the bank on {when}")
    };
    Ok(ConsentCard {
        consent_id: c.consent_id.clone(),
        permissions: if permissions.is_empty() {
            "nothing".into()
        } else {
            // "account details, balances" reads better without the repeated "Your".
            let mut p = permissions;
            if let Some(first) = p.get(0..1) {
                let upper = first.to_uppercase();
                p.replace_range(0..1, &upper);
            }
            p
        },
        accounts,
        granted: c.authorised_at.map(long_date).unwrap_or_default(),
        expires: c
            .expiration_at
            .map_or_else(|| "No end date".to_owned(), long_date),
        status,
        tpp_name,
    })
}

/// `GET /dashboard`.
pub async fn show(
    State(state): State<AppState>,
    interaction: InteractionId,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let s = match super::signed_in(&state, &headers, "/dashboard").await {
        Ok(s) => s,
        Err(page) => return page,
    };
    match dashboard(&state, &s, raw.as_deref(), &interaction.0).await {
        Ok(r) => r,
        Err(e) => super::failed(&state, e),
    }
}

async fn dashboard(
    state: &AppState,
    s: &Session,
    raw: Option<&str>,
    interaction: &str,
) -> Result<Response, ApiError> {
    let revoked = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "revoked")
        .map(|(_, v)| v.into_owned());
    let rows = state.store.list_customer_consents(&s.customer_id).await?;
    let mut names = Names::with_accounts(state, s, interaction).await;
    let (mut current, mut ended) = (Vec::new(), Vec::new());
    let mut notice = None;
    for c in rows.iter().filter(|c| c.authorised_at.is_some()) {
        let card = card(state, c, &mut names).await?;
        if active(state, c) {
            current.push(card);
        } else {
            if revoked.as_deref() == Some(c.consent_id.as_str()) {
                notice = Some(format!(
                    "{} can no longer see your accounts.",
                    card.tpp_name
                ));
            }
            ended.push(card);
        }
    }
    let brand = Brand::of(state);
    Ok(page(
        state,
        StatusCode::OK,
        &Dashboard {
            brand: &brand,
            session: nav(s),
            active: current,
            ended,
            notice,
        },
        Vec::new(),
        None,
    ))
}

/// The customer's consent `id`, when it gives access now.
async fn own_active(
    state: &AppState,
    s: &Session,
    id: &str,
) -> Result<Option<ConsentRow>, ApiError> {
    Ok(state
        .store
        .get_consent(id)
        .await?
        .filter(|c| c.customer_id.as_deref() == Some(s.customer_id.as_str()) && active(state, c)))
}

fn not_active(state: &AppState, s: &Session) -> Response {
    message(
        state,
        StatusCode::NOT_FOUND,
        nav(s),
        "Nothing to stop",
        "This access was not found, or it has already ended.",
        Some("Your connected apps are listed on the dashboard."),
    )
}

/// `GET /dashboard/consents/{consent_id}/revoke`: the confirm step.
pub async fn confirm_revoke(
    State(state): State<AppState>,
    interaction: InteractionId,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let s = match super::signed_in(&state, &headers, "/dashboard").await {
        Ok(s) => s,
        Err(page) => return page,
    };
    let c = match own_active(&state, &s, &id).await {
        Ok(Some(c)) => c,
        Ok(None) => return not_active(&state, &s),
        Err(e) => return super::failed(&state, e),
    };
    let mut names = Names::with_accounts(&state, &s, &interaction.0).await;
    let card = match card(&state, &c, &mut names).await {
        Ok(card) => card,
        Err(e) => return super::failed(&state, e),
    };
    let brand = Brand::of(&state);
    page(
        &state,
        StatusCode::OK,
        &RevokeConfirm {
            brand: &brand,
            session: nav(&s),
            card,
            csrf: s.csrf.clone(),
        },
        Vec::new(),
        None,
    )
}

/// `POST /dashboard/consents/{consent_id}/revoke`: ends access at once.
pub async fn revoke(
    State(state): State<AppState>,
    interaction: InteractionId,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Some(form) = Form::parse(&headers, &body) else {
        return super::not_a_form(&state);
    };
    if form.one("csrf_token").is_none_or(str::is_empty) {
        return super::expired_form(&state, None);
    }
    let s = match super::signed_in(&state, &headers, "/dashboard").await {
        Ok(s) => s,
        Err(page) => return page,
    };
    if !s.csrf_ok(form.one("csrf_token")) {
        return super::expired_form(&state, Some(s));
    }
    let c = match own_active(&state, &s, &id).await {
        Ok(Some(c)) => c,
        Ok(None) => return not_active(&state, &s),
        Err(e) => return super::failed(&state, e),
    };
    let ended = crate::consent::end(
        &state,
        &c,
        ConsentStatus::Revoked,
        REVOKED_BY_CUSTOMER,
        false,
        &s.actor(&interaction.0),
        None,
    )
    .await;
    match ended {
        Ok(_) => {
            let q: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("revoked", &c.consent_id)
                .finish();
            see_other(&format!("/dashboard?{q}"), Vec::new())
        }
        Err(ApiError::Conflict { .. }) => not_active(&state, &s),
        Err(e) => super::failed(&state, e),
    }
}
