//! Customers: Bond's customer resource, with PII sealed under the customer's data key.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::pii::{self, Contact};
use super::rules::{self, COUNTRIES};
use super::KycStatus;
use crate::audit::Actor;
use crate::clock::Timestamp;
use crate::config::EncryptionKey;
use crate::error::{ApiError, FieldError};
use crate::http::idempotency;
use crate::http::validate::{verdict, Fields};
use crate::state::AppState;
use crate::store::kyc::{AmlRow, CustomerRow, IdempotencyClaim, WriteOutcome};

/// A postal address, as Bond names its fields.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Address {
    /// Stable id within the customer.
    pub address_id: String,
    /// `MAILING` or `PHYSICAL`.
    pub address_type: String,
    /// First line.
    pub street: String,
    /// Second line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street2: Option<String>,
    /// City.
    pub city: String,
    /// State or region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Postal code.
    pub zip_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// The first address is the primary one.
    pub is_primary: bool,
}

/// The sealed profile: everything about the customer that identifies them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Profile {
    /// First name.
    pub first_name: String,
    /// Middle name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    /// Last name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// `YYYY-MM-DD`.
    pub dob: String,
    /// Addresses, primary first.
    pub addresses: Vec<Address>,
}

/// A customer with its PII opened, for the code that needs it (never logged).
pub struct Opened {
    /// The stored row.
    pub row: CustomerRow,
    /// The customer's data key.
    pub key: EncryptionKey,
    /// The profile.
    pub profile: Profile,
    /// The verification contact, once verification-kyc ran.
    pub contact: Option<Contact>,
}

/// Loads a live customer and opens its PII; 404 when unknown or erased.
pub async fn open(state: &AppState, customer_id: &str) -> Result<Opened, ApiError> {
    open_row(&state.config.pii_key, live_row(state, customer_id).await?)
}

/// Loads a live customer's row without opening its PII; 404 when unknown or erased.
pub async fn live_row(state: &AppState, customer_id: &str) -> Result<CustomerRow, ApiError> {
    state
        .store
        .get_customer(customer_id)
        .await?
        .filter(|c| c.erased_at.is_none())
        .ok_or_else(|| not_found(customer_id))
}

/// Opens the PII of a loaded row.
pub fn open_row(pii_key: &EncryptionKey, row: CustomerRow) -> Result<Opened, ApiError> {
    let (Some(dek), Some(profile)) = (&row.data_key, &row.profile) else {
        return Err(not_found(&row.customer_id));
    };
    let key = pii::open_data_key(pii_key, &row.customer_id, dek)?;
    let profile = pii::open_json(&key, "profile", &row.customer_id, profile)?;
    let contact = match &row.contact {
        Some(blob) => Some(pii::open_json(&key, "contact", &row.customer_id, blob)?),
        None => None,
    };
    Ok(Opened {
        row,
        key,
        profile,
        contact,
    })
}

/// The 404 for a customer that does not exist (or no longer does).
pub fn not_found(customer_id: &str) -> ApiError {
    ApiError::NotFound {
        message: format!("no customer {customer_id}"),
    }
}

/// The customer as the API shows it: names and addresses, a masked date of birth, the KYC
/// status.
pub fn view(o: &Opened) -> Value {
    let p = &o.profile;
    let mut v = json!({
        "customer_id": o.row.customer_id,
        "first_name": p.first_name,
        "dob": pii::mask_dob(&p.dob),
        "addresses": p.addresses,
        "kyc_status": o.row.kyc_status,
        "risk_rating": o.row.risk_rating.as_ref().map(|level| {
            let factors: Value = o
                .row
                .risk_factors
                .as_deref()
                .and_then(|f| serde_json::from_str(f).ok())
                .unwrap_or_else(|| json!([]));
            json!({"level": level, "factors": factors, "rated_at": o.row.risk_rated_at})
        }),
        "date_created": o.row.created_at,
        "date_updated": o.row.updated_at,
    });
    if let Some(obj) = v.as_object_mut() {
        if let Some(m) = &p.middle_name {
            obj.insert("middle_name".into(), json!(m));
        }
        if let Some(l) = &p.last_name {
            obj.insert("last_name".into(), json!(l));
        }
    }
    v
}

fn parse_addresses(items: &[Value], errors: &mut Vec<FieldError>) -> Vec<Address> {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("addresses[{i}]");
        let mut f = match Fields::new(item, &path) {
            Ok(f) => f,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let address_type = f.one_of("address_type", true, &["MAILING", "PHYSICAL"]);
        let street = f.string("street", true, &rules::STREET);
        let street2 = f.string("street2", false, &rules::STREET);
        let city = f.string("city", true, &rules::PLACE);
        let state = f.string("state", false, &rules::PLACE);
        let zip_code = f.string("zip_code", true, &rules::ZIP);
        let country = f.one_of("country", true, COUNTRIES);
        errors.extend(f.finish());
        if let (Some(address_type), Some(street), Some(city), Some(zip_code), Some(country)) =
            (address_type, street, city, zip_code, country)
        {
            out.push(Address {
                address_id: format!("adr_{}", i + 1),
                address_type,
                street,
                street2,
                city,
                state,
                zip_code,
                country,
                is_primary: i == 0,
            });
        }
    }
    out
}

/// Reads a create (`base = None`) or patch (`base` = the current profile) body.
pub fn parse_profile(
    body: &Value,
    base: Option<&Profile>,
    today: time::Date,
) -> Result<Profile, ApiError> {
    let code = if base.is_some() {
        "customer_patch_schema"
    } else {
        "customer_post_schema"
    };
    let required = base.is_none();
    let mut f = Fields::new(body, "").map_err(|e| ApiError::Validation {
        code,
        fields: vec![e],
    })?;
    let first_name = f.string("first_name", required, &rules::NAME);
    let middle_name = f.string("middle_name", false, &rules::MIDDLE_NAME);
    let last_name = f.string("last_name", false, &rules::NAME);
    let dob = f.string("dob", required, &rules::DOB);
    let mut errors = Vec::new();
    let addresses = f
        .array("addresses", false, 0, 5)
        .map(|items| parse_addresses(items, &mut errors));
    errors.splice(0..0, f.finish());
    if let Some(d) = &dob {
        if let Err(msg) = rules::check_dob(d, today) {
            errors.push(FieldError::invalid("dob", msg));
        }
    }
    verdict(code, errors)?;
    let fallback = |field: &str| ApiError::internal(format!("validated profile lacks {field}"));
    Ok(match base {
        None => Profile {
            first_name: first_name.ok_or_else(|| fallback("first_name"))?,
            middle_name,
            last_name,
            dob: dob.ok_or_else(|| fallback("dob"))?,
            addresses: addresses.unwrap_or_default(),
        },
        Some(b) => Profile {
            first_name: first_name.unwrap_or_else(|| b.first_name.clone()),
            middle_name: middle_name.or_else(|| b.middle_name.clone()),
            last_name: last_name.or_else(|| b.last_name.clone()),
            dob: dob.unwrap_or_else(|| b.dob.clone()),
            addresses: addresses.unwrap_or_else(|| b.addresses.clone()),
        },
    })
}

/// Today's date on the app's clock.
pub fn today(state: &AppState) -> time::Date {
    time::OffsetDateTime::from_unix_timestamp(state.clock.now().millis() / 1000)
        .map(|t| t.date())
        .unwrap_or(time::Date::MIN)
}

/// Creates a customer.
pub async fn create(
    state: &AppState,
    profile: Profile,
    claim: Option<IdempotencyClaim>,
    actor: &Actor,
) -> Result<Opened, ApiError> {
    let now = state.clock.now();
    let id = format!("cus_{}", uuid::Uuid::now_v7().simple());
    let (key, sealed_key) = pii::new_data_key(&state.config.pii_key, &id);
    let row = CustomerRow {
        customer_id: id.clone(),
        data_key: Some(sealed_key),
        profile: Some(pii::seal_json(&key, "profile", &id, &profile)?),
        contact: None,
        ssn_hmac: None,
        kyc_status: KycStatus::NotStarted.as_str().to_owned(),
        kyc_version: 0,
        kyc_reasons: None,
        kyc_documents: None,
        kba_round: 0,
        kba_questions: None,
        program_id: None,
        kyc_reference: None,
        kyc_started_at: None,
        kyc_passed_at: None,
        kyc_updated_at: None,
        created_at: now,
        updated_at: now,
        erased_at: None,
        risk_rating: None,
        risk_factors: None,
        risk_rated_at: None,
    };
    let audit = actor.event(now, "customer.create").on("customer", &id);
    match state
        .store
        .insert_customer(&row, claim.as_ref(), &[], &audit)
        .await?
    {
        WriteOutcome::Applied => Ok(Opened {
            row,
            key,
            profile,
            contact: None,
        }),
        WriteOutcome::IdempotencyKeyUsed => Err(idempotency::key_used()),
        WriteOutcome::Stale => Err(ApiError::internal("a new customer cannot be stale")),
    }
}

/// The 409 for changing a customer whose KYC passed.
fn locked(row: &CustomerRow) -> ApiError {
    ApiError::Conflict {
        code: "kyc_already_passed",
        message: format!(
            "customer details cannot change after KYC passed (at {}); ask compliance for a review instead",
            row.kyc_passed_at.map(|t| t.to_rfc3339()).unwrap_or_default()
        ),
    }
}

/// Updates a customer's profile: before a verification, or after one that ended without a
/// pass. Refused while a check runs on the details it was started with (the provider, the
/// KBA questions built from them, the documents under review) and once KYC passed: an edit
/// then would let a pass, or a return from suspension, stand for details nobody checked.
pub async fn update(
    state: &AppState,
    customer_id: &str,
    body: &Value,
    claim: Option<IdempotencyClaim>,
    actor: &Actor,
) -> Result<Opened, ApiError> {
    let mut o = open(state, customer_id).await?;
    match KycStatus::parse(&o.row.kyc_status) {
        Some(KycStatus::Passed) => return Err(locked(&o.row)),
        Some(KycStatus::Suspended) => {
            return Err(ApiError::Conflict {
                code: "kyc_suspended",
                message: "customer details cannot change while the customer is suspended by \
                          monitoring; a compliance review decides first"
                    .into(),
            })
        }
        Some(
            status @ (KycStatus::Initialized
            | KycStatus::KbaTriggered
            | KycStatus::DocumentRequired
            | KycStatus::UnderReview),
        ) => {
            return Err(ApiError::Conflict {
                code: "kyc_in_progress",
                message: format!(
                    "customer details cannot change while KYC is {}: the verification runs on \
                     the details it was started with; change them once it has an outcome",
                    status.as_str()
                ),
            })
        }
        _ => {}
    }
    let profile = parse_profile(body, Some(&o.profile), today(state))?;
    let now = state.clock.now();
    let sealed = pii::seal_json(&o.key, "profile", customer_id, &profile)?;
    let audit = actor
        .event(now, "customer.update")
        .on("customer", customer_id);
    match state
        .store
        .update_customer_profile(
            customer_id,
            &sealed,
            now,
            o.row.kyc_version,
            claim.as_ref(),
            &audit,
        )
        .await?
    {
        WriteOutcome::Applied => {
            o.profile = profile;
            o.row.updated_at = now;
            o.row.profile = Some(sealed);
            o.row.kyc_version += 1;
            Ok(o)
        }
        WriteOutcome::IdempotencyKeyUsed => Err(idempotency::key_used()),
        WriteOutcome::Stale => Err(ApiError::Conflict {
            code: "customer_changed",
            message:
                "the customer's KYC changed while this update was made; read it again and retry"
                    .into(),
        }),
    }
}

/// Erases a customer's PII at once, keeping the AML evidence for `kyc.aml_retention` (sealed
/// under `pii.key`, destroyed when the period ends). Returns when the evidence is destroyed.
pub async fn erase(
    state: &AppState,
    customer_id: &str,
    actor: &Actor,
) -> Result<Timestamp, ApiError> {
    let o = open(state, customer_id).await?;
    let now = state.clock.now();
    let retention = state.config.kyc.aml_retention;
    let retain_until = now.plus(retention);
    let aml = if retention.is_zero() || o.row.kyc_started_at.is_none() {
        // Nothing was verified, so there is no AML evidence to keep.
        None
    } else {
        let evidence = json!({
            "profile": o.profile,
            "contact": o.contact,
            "kyc_status": o.row.kyc_status,
            "kyc_passed_at": o.row.kyc_passed_at,
            "kyc_reasons": o.row.kyc_reasons,
        });
        Some(AmlRow {
            customer_id: customer_id.to_owned(),
            evidence: crate::crypto::seal(
                &state.config.pii_key,
                format!("aml:{customer_id}").as_bytes(),
                evidence.to_string().as_bytes(),
            ),
            erased_at: now,
            retain_until,
        })
    };
    let events = vec![crate::events::event(
        "customer.erased",
        json!({"customer_id": customer_id}),
        now,
    )];
    let audit = actor
        .event(now, "customer.erase")
        .on("customer", customer_id);
    if !state
        .store
        .erase_customer(customer_id, now, aml.as_ref(), &events, &audit)
        .await?
    {
        return Err(not_found(customer_id));
    }
    state.committed(&events);
    Ok(if aml.is_some() { retain_until } else { now })
}
