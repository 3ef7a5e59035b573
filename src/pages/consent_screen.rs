//! The hosted consent screen: `GET /consent?challenge=…` shows what the TPP asks for and the
//! customer's accounts; `POST /consent` approves (through the KYC gate) or declines, then
//! sends the browser back to the TPP.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::form::Form;
use super::render::{message, origin, page, see_other};
use super::session::Session;
use super::views::{AccountChoice, Brand, ConsentScreen, KycProblem, Nav, PermissionGroup};
use crate::consent::flow::{self, ACCOUNT_ID};
use crate::consent::permissions;
use crate::error::ApiError;
use crate::http::middleware::InteractionId;
use crate::kyc::KycStatus;
use crate::state::AppState;

/// Challenges are 256-bit URL-safe tokens.
fn valid_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn here(challenge: &str) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("challenge", challenge)
        .finish();
    format!("/consent?{q}")
}

fn bad_link(state: &AppState) -> Response {
    message(
        state,
        StatusCode::BAD_REQUEST,
        None,
        "This link is not complete",
        "The address is missing the part that identifies the app's request.",
        Some("Go back to the app and start again."),
    )
}

fn ended(state: &AppState, s: &Session) -> Response {
    message(
        state,
        StatusCode::NOT_FOUND,
        Some(Nav {
            csrf: s.csrf.clone(),
        }),
        "This request has ended",
        "The app's request has expired or was already answered.",
        Some("Go back to the app and start again."),
    )
}

/// `GET /consent?challenge=…`.
pub async fn show(
    State(state): State<AppState>,
    interaction: InteractionId,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let challenge = form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "challenge")
        .map(|(_, v)| v.into_owned());
    let Some(challenge) = challenge.filter(|c| valid_challenge(c)) else {
        return bad_link(&state);
    };
    let s = match super::signed_in(&state, &headers, &here(&challenge)).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    screen(
        &state,
        &s,
        &challenge,
        &interaction.0,
        StatusCode::OK,
        None,
        &[],
    )
    .await
}

/// What a customer whose KYC is not `passed` is told. It never says why access is held
/// (a monitoring suspension must not tip the customer off), only what they can do.
fn kyc_problem(status: Option<KycStatus>) -> Option<KycProblem> {
    let p = |title, detail, what_to_do| {
        Some(KycProblem {
            title,
            detail,
            what_to_do,
        })
    };
    match status {
        Some(KycStatus::Passed) => None,
        Some(KycStatus::NotStarted | KycStatus::Initialized) | None => p(
            "We need to confirm who you are first",
            "Apps can only see your accounts once we have checked your identity, and that check is not finished.",
            "Complete the identity check in online banking or our app, then come back here.",
        ),
        Some(KycStatus::KbaTriggered) => p(
            "We need you to answer a few security questions",
            "Apps can only see your accounts once we have checked your identity.",
            "Answer the questions in online banking or our app, then come back here.",
        ),
        Some(KycStatus::DocumentRequired) => p(
            "We need a document from you",
            "Apps can only see your accounts once we have checked your identity.",
            "Upload the document we asked for in online banking or our app; we will tell you when it is checked.",
        ),
        Some(KycStatus::UnderReview) => p(
            "We are checking your details",
            "Apps can see your accounts again once our check is finished.",
            "Wait for our message, then try again.",
        ),
        Some(KycStatus::Error | KycStatus::Timeout) => p(
            "We could not finish checking your identity",
            "Something went wrong while we checked your identity.",
            "Please try again later, or contact us if it keeps happening.",
        ),
        Some(KycStatus::Failed | KycStatus::Suspended) => p(
            "Apps cannot see your accounts at the moment",
            "Sharing your account information with apps is not available on your profile.",
            "Contact us and we will help.",
        ),
    }
}

/// A long date, `30 November 2027`.
pub(super) fn long_date(t: crate::clock::Timestamp) -> String {
    let fmt = time::macros::format_description!("[day padding:none] [month repr:long] [year]");
    time::OffsetDateTime::from_unix_timestamp(t.millis().div_euclid(1000))
        .ok()
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_else(|| t.to_rfc3339())
}

fn date_field(data: &Value, field: &str) -> Option<String> {
    data.get(field)
        .and_then(Value::as_str)
        .and_then(crate::consent::parse_date_time)
        .map(long_date)
}

/// `CreditCard` → `Credit card`: the OB code list's sub-types in words.
fn words(code: &str) -> String {
    let mut out = String::new();
    for (i, ch) in code.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push(' ');
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// An upstream account as the customer knows it: (id, name, details such as
/// `Current account · GBP · ending 9753`).
pub(super) fn describe_account(a: &Value) -> Option<(String, String, String)> {
    let id = a.get("AccountId")?.as_str()?.to_owned();
    let s = |f: &str| a.get(f).and_then(Value::as_str);
    let name = s("Nickname")
        .or(s("Description"))
        .map(str::to_owned)
        .or_else(|| s("AccountSubType").map(words))
        .unwrap_or_else(|| "Account".to_owned());
    let mut detail: Vec<String> = Vec::new();
    if let Some(t) = s("AccountSubType") {
        detail.push(words(t));
    }
    if let Some(c) = s("Currency") {
        detail.push(c.to_owned());
    }
    let ident = a
        .get("Account")
        .and_then(|list| list.get(0))
        .and_then(|acc| acc.get("Identification"))
        .and_then(Value::as_str);
    if let Some(last4) = ident.and_then(|i| i.get(i.len().saturating_sub(4)..)) {
        detail.push(format!("ending {last4}"));
    }
    Some((id, name, detail.join(" · ")))
}

fn account_choice(a: &Value, chosen: &[&str]) -> Option<AccountChoice> {
    let (id, label, detail) = describe_account(a)?;
    Some(AccountChoice {
        checked: chosen.contains(&id.as_str()),
        id,
        label,
        detail,
    })
}

/// Renders the screen for the request behind `challenge`.
async fn screen(
    state: &AppState,
    s: &Session,
    challenge: &str,
    interaction: &str,
    status: StatusCode,
    error: Option<String>,
    chosen: &[&str],
) -> Response {
    match screen_inner(state, s, challenge, interaction, status, error, chosen).await {
        Ok(r) => r,
        Err(ApiError::NotFound { .. }) => ended(state, s),
        Err(e) => super::failed(state, e),
    }
}

async fn screen_inner(
    state: &AppState,
    s: &Session,
    challenge: &str,
    interaction: &str,
    status: StatusCode,
    error: Option<String>,
    chosen: &[&str],
) -> Result<Response, ApiError> {
    let req = flow::pending(state, challenge).await?;
    let consent = state
        .store
        .get_consent(&req.consent_id)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            message: "consent gone".into(),
        })?;
    let tpp_name = state
        .store
        .get_client(&req.client_id)
        .await?
        .map(|c| c.client_name)
        .unwrap_or_else(|| "An app".into());
    let codes = crate::consent::permissions_of(&consent);
    let groups = permissions::CLUSTERS
        .iter()
        .filter_map(|title| {
            let items: Vec<&'static str> = codes
                .iter()
                .filter(|c| permissions::cluster(c) == *title)
                .map(|c| permissions::describe(c))
                .collect();
            (!items.is_empty()).then_some(PermissionGroup { title, items })
        })
        .collect();
    let data: Value = serde_json::from_str(&consent.data).unwrap_or(Value::Null);
    let access_ends = consent.expiration_at.map_or_else(
        || "No end date: until you stop it here or in the app".to_owned(),
        long_date,
    );
    let reads_transactions = codes.iter().any(|c| c.starts_with("ReadTransactions"));
    let history = if !reads_transactions {
        "Not requested".to_owned()
    } else {
        match (
            date_field(&data, "TransactionFromDateTime"),
            date_field(&data, "TransactionToDateTime"),
        ) {
            (Some(f), Some(t)) => format!("From {f} to {t}"),
            (Some(f), None) => format!("From {f} onwards"),
            (None, Some(t)) => format!("Everything up to {t}"),
            (None, None) => "All the history the bank holds".to_owned(),
        }
    };
    let kyc = crate::kyc::status_of(state.store.as_ref(), &s.customer_id).await?;
    let kyc_problem = kyc_problem(kyc);
    let accounts = state
        .gateway
        .accounts_of(&s.customer_id, interaction)
        .await
        .map_err(|e| match e {
            crate::gateway::proxy::UpstreamError::Timeout => ApiError::GatewayTimeout,
            crate::gateway::proxy::UpstreamError::Unreachable => ApiError::BadGateway,
        })?;
    let accounts = accounts
        .iter()
        .filter_map(|a| account_choice(a, chosen))
        .collect();
    let brand = Brand::of(state);
    let view = ConsentScreen {
        brand: &brand,
        session: Some(Nav {
            csrf: s.csrf.clone(),
        }),
        tpp_name,
        challenge: challenge.to_owned(),
        csrf: s.csrf.clone(),
        groups,
        access_ends,
        history,
        accounts,
        can_approve: kyc_problem.is_none(),
        kyc_problem,
        error,
    };
    let back = origin(&req.redirect_uri);
    Ok(page(state, status, &view, Vec::new(), back.as_deref()))
}

/// `POST /consent`: `decision` = `approve` (with one `account_id` per chosen account) or
/// `decline`, with the session's `csrf_token` and the request's `challenge`.
pub async fn decide(
    State(state): State<AppState>,
    interaction: InteractionId,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(form) = Form::parse(&headers, &body) else {
        return super::not_a_form(&state);
    };
    let Some(challenge) = form.one("challenge").filter(|c| valid_challenge(c)) else {
        return bad_link(&state);
    };
    // A form without a token or a decision is not one of this screen's: refuse it before
    // looking for a session.
    if form.one("csrf_token").is_none_or(str::is_empty) {
        return super::expired_form(&state, None);
    }
    let decision = form.one("decision");
    if !matches!(decision, Some("approve" | "decline")) {
        return message(
            &state,
            StatusCode::BAD_REQUEST,
            None,
            "This form could not be read",
            "Choose Approve or Decline.",
            None,
        );
    }
    let named = form.all("account_id");
    if named.len() > flow::MAX_ACCOUNTS {
        return message(
            &state,
            StatusCode::BAD_REQUEST,
            None,
            "This form could not be read",
            &format!(
                "The form names more accounts than one approval may share (at most {}).",
                flow::MAX_ACCOUNTS
            ),
            Some("Go back, reload the page and try again."),
        );
    }
    if named.iter().any(|a| !ACCOUNT_ID.matches(a)) {
        return message(
            &state,
            StatusCode::BAD_REQUEST,
            None,
            "This form could not be read",
            "An account in the form is not valid.",
            Some("Go back, reload the page and try again."),
        );
    }
    let s = match super::signed_in(&state, &headers, &here(challenge)).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    if !s.csrf_ok(form.one("csrf_token")) {
        return super::expired_form(&state, Some(s));
    }
    let actor = s.actor(&interaction.0);
    let decided = match decision {
        Some("decline") => {
            flow::reject_request(&state, challenge, "rejected_by_customer", &actor).await
        }
        Some("approve") => {
            let mut seen = std::collections::HashSet::new();
            let accounts: Vec<String> = named
                .iter()
                .filter(|a| seen.insert(**a))
                .map(|a| (*a).to_owned())
                .collect();
            if accounts.is_empty() {
                return screen(
                    &state,
                    &s,
                    challenge,
                    &interaction.0,
                    StatusCode::BAD_REQUEST,
                    Some("Choose at least one account to share, or decline.".into()),
                    &[],
                )
                .await;
            }
            let chosen: Vec<&str> = accounts.iter().map(String::as_str).collect();
            match flow::accept_request(&state, challenge, &s.customer_id, &accounts, &actor).await {
                Err(ApiError::Forbidden { .. }) => {
                    // The KYC gate: the screen says why and what to do.
                    return screen(
                        &state,
                        &s,
                        challenge,
                        &interaction.0,
                        StatusCode::FORBIDDEN,
                        None,
                        &chosen,
                    )
                    .await;
                }
                Err(ApiError::Validation { .. } | ApiError::BadRequest { .. }) => {
                    return screen(
                        &state,
                        &s,
                        challenge,
                        &interaction.0,
                        StatusCode::BAD_REQUEST,
                        Some("Choose only from your accounts listed here.".into()),
                        &chosen,
                    )
                    .await;
                }
                other => other,
            }
        }
        _ => return super::failed(&state, ApiError::internal("decision checked above")),
    };
    // Already answered: by this very answer sent twice (a double click), the TPP gets its
    // redirect after all; otherwise the request has ended or moved on.
    let decided = match decided {
        Err(e @ (ApiError::NotFound { .. } | ApiError::Conflict { .. })) => {
            let approve = decision == Some("approve");
            match flow::answered_again(&state, challenge, &s.customer_id, approve, &actor).await {
                Ok(Some(to)) => Ok(to),
                Ok(None) => Err(e),
                Err(other) => Err(other),
            }
        }
        other => other,
    };
    match decided {
        Ok(to) => see_other(&to, Vec::new()),
        Err(ApiError::NotFound { .. }) => ended(&state, &s),
        Err(ApiError::Conflict { .. }) => message(
            &state,
            StatusCode::CONFLICT,
            Some(Nav { csrf: s.csrf }),
            "This request can no longer be approved",
            "The app's request was withdrawn, has expired, or was already answered.",
            Some("Go back to the app and start again."),
        ),
        Err(e) => super::failed(&state, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accounts_are_described_in_words_with_only_the_last_four_digits() {
        let a = json!({"AccountId": "acc-1", "Nickname": "Everyday", "AccountSubType": "CreditCard",
                       "Currency": "GBP", "Account": [{"Identification": "60161331926819"}]});
        assert_eq!(
            describe_account(&a),
            Some((
                "acc-1".into(),
                "Everyday".into(),
                "Credit card · GBP · ending 6819".into()
            ))
        );
        let bare = json!({"AccountId": "acc-2", "AccountSubType": "CurrentAccount"});
        assert_eq!(
            describe_account(&bare),
            Some((
                "acc-2".into(),
                "Current account".into(),
                "Current account".into()
            ))
        );
        assert_eq!(describe_account(&json!({"Nickname": "x"})), None);
    }
}
