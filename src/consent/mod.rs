//! Account-access consents: the UK Open Banking consent resource, its authorization by a
//! customer whose KYC passed, rejection, revocation, deletion and expiry.
//!
//! ```text
//! AwaitingAuthorisation ─┬─▶ Authorised ──▶ Revoked   (bank, customer, or the TPP's DELETE)
//!                        └─▶ Rejected
//! ```
//!
//! An `AwaitingAuthorisation` consent can be authorised for `consents.authorisation_window`
//! after its creation. An `Authorised` consent grants access only while [`check_access`]
//! passes: it belongs to the client, is `Authorised`, not deleted, not past its
//! `ExpirationDateTime`, and its customer's KYC status is `passed`; expiry and a KYC downgrade
//! need no background job, because every use checks them. Every transition is one
//! optimistic write with its event (`consent.authorised`, `.rejected`, `.revoked`,
//! `.deleted`) and audit row, and revocation revokes every token issued under the consent.

pub mod bank_routes;
pub mod flow;
pub mod ob_routes;
pub mod permissions;

use serde_json::{json, Value};

use crate::audit::Actor;
use crate::clock::Timestamp;
use crate::error::{ApiError, ObError};
use crate::kyc::KycStatus;
use crate::state::AppState;
use crate::store::consents::{CodeRow, ConsentRow, ConsentWrite};

/// Consent statuses (the UK OB `Status` enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentStatus {
    /// Created by the TPP, waiting for the customer.
    AwaitingAuthorisation,
    /// Approved by the customer.
    Authorised,
    /// Declined by the customer (terminal).
    Rejected,
    /// Ended by the bank, the customer or the TPP (terminal).
    Revoked,
}

impl ConsentStatus {
    /// Wire and stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentStatus::AwaitingAuthorisation => "AwaitingAuthorisation",
            ConsentStatus::Authorised => "Authorised",
            ConsentStatus::Rejected => "Rejected",
            ConsentStatus::Revoked => "Revoked",
        }
    }
}

/// Why a consent does not grant access right now; each says which check failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// No such consent, or another client's (indistinguishable to the caller).
    NotFound,
    /// Not `Authorised` (the status it has instead).
    Status(String),
    /// Deleted by the TPP.
    Deleted,
    /// Past its `ExpirationDateTime`.
    Expired,
    /// The customer's KYC status is not `passed` (what it is instead).
    Kyc(String),
}

impl Denial {
    /// A sentence saying which check failed.
    pub fn describe(&self, consent_id: &str) -> String {
        match self {
            Denial::NotFound => format!("consent {consent_id} is not a consent of this client"),
            Denial::Status(s) => format!("consent {consent_id} is {s}, not Authorised"),
            Denial::Deleted => format!("consent {consent_id} was deleted"),
            Denial::Expired => format!("consent {consent_id} has expired"),
            Denial::Kyc(s) => {
                format!("the customer of consent {consent_id} has KYC status {s}, not passed")
            }
        }
    }

    /// Machine-readable reason for audit rows.
    pub fn code(&self) -> &'static str {
        match self {
            Denial::NotFound => "consent_not_found",
            Denial::Status(_) => "consent_not_authorised",
            Denial::Deleted => "consent_deleted",
            Denial::Expired => "consent_expired",
            Denial::Kyc(_) => "kyc_not_passed",
        }
    }
}

/// Whether `consent_id` grants `client_id` access now (see the module docs), read from the
/// database. The token endpoint and introspection call this; the gateway makes the same
/// checks ([`usable`], [`kyc_allows`]) on its cached copies.
pub async fn check_access(
    state: &AppState,
    consent_id: &str,
    client_id: &str,
) -> Result<ConsentRow, Result<Denial, ApiError>> {
    let consent = state
        .store
        .get_consent(consent_id)
        .await
        .map_err(|e| Err(e.into()))?;
    usable(
        consent.as_ref().map(ConsentRow::standing),
        client_id,
        state.clock.now(),
    )
    .map_err(Ok)?;
    let consent = consent.ok_or(Ok(Denial::NotFound))?;
    let customer = consent.customer_id.as_deref().unwrap_or("");
    let kyc = crate::kyc::status_of(state.store.as_ref(), customer)
        .await
        .map_err(|e| Err(e.into()))?;
    kyc_allows(kyc).map_err(Ok)?;
    Ok(consent)
}

/// What [`usable`] reads of a consent: from a stored row, or from the gateway's smaller copy
/// ([`crate::gateway::cache::GatewayConsent`]).
#[derive(Clone, Copy, Debug)]
pub struct Standing<'a> {
    /// The TPP that created it.
    pub client_id: &'a str,
    /// Its status code.
    pub status: &'a str,
    /// Deleted by the TPP.
    pub deleted: bool,
    /// `ExpirationDateTime`.
    pub expiration_at: Option<Timestamp>,
}

impl ConsentRow {
    /// What [`usable`] decides on.
    pub fn standing(&self) -> Standing<'_> {
        Standing {
            client_id: &self.client_id,
            status: &self.status,
            deleted: self.deleted_at.is_some(),
            expiration_at: self.expiration_at,
        }
    }
}

/// The consent's own checks: `client_id`'s, not deleted, `Authorised`, not expired at `now`.
pub fn usable(
    consent: Option<Standing<'_>>,
    client_id: &str,
    now: Timestamp,
) -> Result<(), Denial> {
    let consent = consent
        .filter(|c| c.client_id == client_id)
        .ok_or(Denial::NotFound)?;
    if consent.deleted {
        return Err(Denial::Deleted);
    }
    if consent.status != ConsentStatus::Authorised.as_str() {
        return Err(Denial::Status(consent.status.to_owned()));
    }
    if consent.expiration_at.is_some_and(|t| t <= now) {
        return Err(Denial::Expired);
    }
    Ok(())
}

/// The KYC gate: only `passed` allows access (`None` is an erased or unknown customer).
pub fn kyc_allows(kyc: Option<KycStatus>) -> Result<(), Denial> {
    match kyc {
        Some(KycStatus::Passed) => Ok(()),
        other => Err(Denial::Kyc(
            other.map_or("erased", KycStatus::as_str).to_owned(),
        )),
    }
}

/// The OB not-found answer: 400 `UK.OBIE.Resource.NotFound`, for unknown consents and other
/// clients' alike, so existence is never revealed.
pub fn ob_not_found(consent_id: &str) -> ApiError {
    ApiError::OpenBanking {
        status: axum::http::StatusCode::BAD_REQUEST,
        errors: vec![ObError::field(
            "UK.OBIE.Resource.NotFound",
            "ConsentId",
            format!("no account-access consent {consent_id} for this client"),
        )],
    }
}

/// The 404 of the bank-facing API for an unknown consent.
pub fn not_found(consent_id: &str) -> ApiError {
    ApiError::NotFound {
        message: format!("no consent {consent_id}"),
    }
}

/// The permission codes a consent grants, in stored order.
pub fn permissions_of(c: &ConsentRow) -> Vec<&str> {
    c.permissions.split_whitespace().collect()
}

/// The consent as the bank's API and the customer's dashboard show it.
pub async fn bank_view(state: &AppState, c: &ConsentRow) -> Result<Value, ApiError> {
    let client_name = state
        .store
        .get_client(&c.client_id)
        .await?
        .map(|cl| cl.client_name)
        .unwrap_or_default();
    let data: Value = serde_json::from_str(&c.data).unwrap_or(Value::Null);
    let expired = c.expiration_at.is_some_and(|t| t <= state.clock.now());
    let mut v = json!({
        "consent_id": c.consent_id,
        "client_id": c.client_id,
        "client_name": client_name,
        "status": c.status,
        "expired": expired,
        "permissions": permissions_of(c)
            .iter()
            .map(|p| json!({"code": p, "description": permissions::describe(p)}))
            .collect::<Vec<_>>(),
        "account_ids": c.account_ids.as_deref().map(|a| a.split_whitespace().collect::<Vec<_>>()).unwrap_or_default(),
        "created_at": c.created_at,
        "status_updated_at": c.status_updated_at,
    });
    if let Some(obj) = v.as_object_mut() {
        for (key, field) in [
            ("expiration_date_time", "ExpirationDateTime"),
            ("transaction_from_date_time", "TransactionFromDateTime"),
            ("transaction_to_date_time", "TransactionToDateTime"),
        ] {
            if let Some(s) = data.get(field).and_then(Value::as_str) {
                obj.insert(key.into(), json!(s));
            }
        }
        if let Some(cus) = &c.customer_id {
            obj.insert("customer_id".into(), json!(cus));
        }
        if let Some(t) = c.authorised_at {
            obj.insert("authorised_at".into(), json!(t));
        }
        if let Some(r) = &c.revoked_reason {
            obj.insert("revoked_reason".into(), json!(r));
        }
        if c.deleted_at.is_some() {
            obj.insert("deleted_by_tpp".into(), json!(true));
        }
    }
    Ok(v)
}

/// What authorising needs: who, which accounts, by whom.
pub struct Authorisation<'a> {
    /// The customer approving.
    pub customer_id: &'a str,
    /// The accounts they chose.
    pub account_ids: &'a [String],
    /// Who tells obgate (the bank's UI or app, by admin key).
    pub actor: &'a Actor,
    /// The authorization request this answers, for the redirect flow.
    pub request_id: Option<String>,
    /// The code to issue with it, for the redirect flow.
    pub code: Option<CodeRow>,
}

/// The 403 for a customer whose KYC has not passed; audited by the caller.
fn kyc_refusal(status: &str) -> ApiError {
    ApiError::Forbidden {
        code: "kyc_not_passed",
        message: format!(
            "the customer's KYC status is {status}; only a customer whose KYC passed can authorise a consent"
        ),
    }
}

/// Authorises a consent for a customer whose KYC passed; the KYC gate refuses anyone else
/// with `403 kyc_not_passed` (audited) and leaves the consent as it was.
pub async fn authorise(
    state: &AppState,
    consent_id: &str,
    a: Authorisation<'_>,
) -> Result<ConsentRow, ApiError> {
    let c = state
        .store
        .get_consent(consent_id)
        .await?
        .ok_or_else(|| not_found(consent_id))?;
    let now = state.clock.now();
    if c.status != ConsentStatus::AwaitingAuthorisation.as_str() || c.deleted_at.is_some() {
        return Err(ApiError::Conflict {
            code: "consent_not_awaiting_authorisation",
            message: format!(
                "consent {consent_id} is {}; only AwaitingAuthorisation consents can be authorised",
                c.status
            ),
        });
    }
    if c.authorisable_until <= now {
        return Err(ApiError::Conflict {
            code: "consent_authorisation_expired",
            message: format!(
                "consent {consent_id} was not authorised within consents.authorisation_window; the TPP must create a new one"
            ),
        });
    }
    if c.expiration_at.is_some_and(|t| t <= now) {
        return Err(ApiError::Conflict {
            code: "consent_expired",
            message: format!("consent {consent_id} is past its ExpirationDateTime"),
        });
    }
    let kyc = crate::kyc::status_of(state.store.as_ref(), a.customer_id).await?;
    let Some(kyc) = kyc else {
        return Err(crate::kyc::customers::not_found(a.customer_id));
    };
    if kyc != KycStatus::Passed {
        let audit = a
            .actor
            .event(now, "consent.authorise")
            .on("consent", consent_id)
            .outcome(crate::audit::Outcome::Denied, "kyc_not_passed");
        state.store.append_audit(&audit).await?;
        return Err(kyc_refusal(kyc.as_str()));
    }
    check_accounts(state, a.customer_id, a.account_ids, &a.actor.interaction_id).await?;
    let mut next = c.clone();
    next.status = ConsentStatus::Authorised.as_str().into();
    next.customer_id = Some(a.customer_id.to_owned());
    next.account_ids = Some(a.account_ids.join(" "));
    next.status_updated_at = now;
    next.authorised_at = Some(now);
    let events = vec![crate::events::event(
        "consent.authorised",
        json!({"consent_id": consent_id, "client_id": c.client_id, "customer_id": a.customer_id, "status": "Authorised"}),
        now,
    )];
    let audit = vec![a
        .actor
        .event(now, "consent.authorise")
        .on("consent", consent_id)];
    let write = ConsentWrite {
        consent: Some(&next),
        expected_version: c.version,
        code: a.code,
        decide_request: a.request_id,
        revoke_tokens: false,
        events,
        audit,
    };
    commit(state, &write).await?;
    Ok(next)
}

/// The chosen accounts must be the customer's, as the bank's account API lists them.
async fn check_accounts(
    state: &AppState,
    customer_id: &str,
    chosen: &[String],
    interaction: &Option<String>,
) -> Result<(), ApiError> {
    let held = state
        .gateway
        .accounts_of(customer_id, interaction.as_deref().unwrap_or(""))
        .await
        .map_err(|e| match e {
            crate::gateway::proxy::UpstreamError::Timeout => ApiError::GatewayTimeout,
            crate::gateway::proxy::UpstreamError::Unreachable => ApiError::BadGateway,
        })?;
    let ids: Vec<&str> = held
        .iter()
        .filter_map(|a| a.get("AccountId").and_then(Value::as_str))
        .collect();
    let foreign: Vec<crate::error::FieldError> = chosen
        .iter()
        .enumerate()
        .filter(|(_, c)| !ids.contains(&c.as_str()))
        .map(|(i, c)| {
            crate::error::FieldError::invalid(
                format!("account_ids[{i}]"),
                format!("{c} is not an account of this customer"),
            )
        })
        .collect();
    crate::http::validate::verdict("authorisation_post_schema", foreign)
}

/// Moves a consent to a terminal status (`Rejected` or `Revoked`), revoking its tokens.
pub async fn end(
    state: &AppState,
    c: &ConsentRow,
    to: ConsentStatus,
    reason: &str,
    deleted: bool,
    actor: &Actor,
    request_id: Option<String>,
) -> Result<ConsentRow, ApiError> {
    let now = state.clock.now();
    let mut next = c.clone();
    next.status = to.as_str().into();
    next.status_updated_at = now;
    if to == ConsentStatus::Revoked {
        next.revoked_reason = Some(reason.to_owned());
    }
    if deleted {
        next.deleted_at = Some(now);
    }
    let (event, action) = match (to, deleted) {
        (_, true) => ("consent.deleted", "consent.delete"),
        (ConsentStatus::Rejected, _) => ("consent.rejected", "consent.reject"),
        _ => ("consent.revoked", "consent.revoke"),
    };
    let events = vec![crate::events::event(
        event,
        json!({"consent_id": c.consent_id, "client_id": c.client_id, "customer_id": c.customer_id, "status": to.as_str()}),
        now,
    )];
    let mut audit = actor.event(now, action).on("consent", &c.consent_id);
    audit.reason = Some(reason.chars().take(200).collect());
    let write = ConsentWrite {
        consent: Some(&next),
        expected_version: c.version,
        code: None,
        decide_request: request_id,
        revoke_tokens: true,
        events,
        audit: vec![audit],
    };
    commit(state, &write).await?;
    Ok(next)
}

async fn commit(state: &AppState, write: &ConsentWrite<'_>) -> Result<(), ApiError> {
    if !state.store.write_consent(write).await? {
        return Err(ApiError::Conflict {
            code: "consent_changed",
            message: "the consent changed while this request ran; read it again and retry".into(),
        });
    }
    state.committed(&write.events);
    if write.revoke_tokens {
        state.tokens_revoked(&crate::events::invalidation::Invalidation::Tokens);
    }
    Ok(())
}

/// Parses an RFC 3339 date-time with its offset (ISO 8601 as the OB file requires).
pub fn parse_date_time(s: &str) -> Option<Timestamp> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(ms).ok().map(Timestamp::from_millis)
}
