//! Ongoing monitoring: the bank reports its customers' transactions, obgate scores each one
//! against the customer's history, and a high-risk one opens an alert that (by policy)
//! suspends the customer's third-party access until compliance resolves it.
//!
//! - **Ingest** (`POST /api/v0/customers/{id}/transactions`): a batch is validated whole (every
//!   bad field listed), repeats of stored transaction ids are skipped, the rest are scored in
//!   booking order, each against the history before it (the stored one, plus the batch so
//!   far), and stored with the alerts they open in one database transaction together with the
//!   customer's KYC change. Every write for a customer checks the customer's monitoring
//!   version read before scoring (see [`crate::store::monitoring`]): a batch that raced a
//!   concurrent one (or a resolution) re-reads and scores again, so concurrent single-payment
//!   batches are scored against each other, and a transaction is never counted twice.
//! - **Assess** (`POST /api/v0/transactions/assess`): the same scoring, nothing stored.
//! - **Rules** live in [`rules`] (pure functions, thresholds from config); the customer's
//!   due-diligence rating ([`rating`]) tightens them.
//! - **Suspension** is the KYC status `suspended`: the token endpoint refuses the customer,
//!   and the gateway denies their consents at once on every node (the KYC change invalidates
//!   the decision caches through the change feed).
//! - **Resolution**: `cleared` restores the status the customer had (once no other open alert
//!   holds them), `confirmed` moves the customer to manual review (`under_review`).
//!
//! Privacy: the counterparty's id is kept only as a keyed hash, its name is screened and
//! dropped; alert reasons name rules, amounts and sanctions-list entries, never the customer.

pub mod amount;
pub mod rating;
pub mod routes;
pub mod rules;
pub mod sanctions;

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::audit::{Actor, ActorType};
use crate::clock::Timestamp;
use crate::error::ApiError;
use crate::http::validate::{verdict, Fields, Rule};
use crate::kyc::verification::Change;
use crate::kyc::KycStatus;
use crate::state::AppState;
use crate::store::kyc::{CustomerRow, WriteOutcome};
use crate::store::monitoring::{AlertRow, MonitoredRow, MonitoringWrite, Resolution};
use rules::{Direction, RiskLevel, Txn};

/// Customer ids, as obgate issues them.
pub const CUSTOMER_ID: Rule = Rule {
    pattern: r"^cus_[0-9a-f]{32}$",
    message: "Not a customer id (cus_ followed by 32 hex digits).",
};
/// Transaction ids: the bank's own, 1–64 characters of a safe alphabet.
pub const TRANSACTION_ID: Rule = Rule {
    pattern: r"^[A-Za-z0-9._:-]{1,64}$",
    message: "Must be 1 to 64 letters, digits, dots, colons, underscores or hyphens.",
};
/// Amounts: a positive decimal string; the currency's decimal places are checked in code.
pub const AMOUNT: Rule = Rule {
    pattern: r"^[0-9]{1,15}(\.[0-9]{1,3})?$",
    message: "Must be a positive decimal string like \"125.50\".",
};
/// ISO 4217 currency codes.
pub const CURRENCY: Rule = Rule {
    pattern: r"^[A-Z]{3}$",
    message: "Must be an ISO 4217 currency code like GBP.",
};
/// Counterparty ids (an account reference, a merchant id, …).
pub const COUNTERPARTY_ID: Rule = Rule {
    pattern: r"^[^\x00-\x1f\x7f]{1,64}$",
    message: "Must be 1 to 64 characters.",
};
/// Counterparty names, as on the payment.
pub const COUNTERPARTY_NAME: Rule = Rule {
    pattern: r"^[^\x00-\x1f\x7f]{1,140}$",
    message: "Must be 1 to 140 characters.",
};
/// Where a transaction was made.
pub const CHANNELS: &[&str] = &[
    "card",
    "transfer",
    "cash",
    "direct_debit",
    "standing_order",
    "cheque",
    "wallet",
    "other",
];

/// What to do when an ingested transaction scores `high`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnHigh {
    /// Suspend the customer's third-party access (KYC status `suspended`).
    Suspend,
    /// Only open the alert.
    Flag,
}

/// One validated incoming transaction.
struct Incoming {
    txn: Txn,
    counterparty_name: String,
    country: Option<String>,
}

/// Reads one transaction object at `path`, collecting every error into `errors`.
fn parse_one(
    state: &AppState,
    value: &Value,
    path: &str,
    with_customer: bool,
    errors: &mut Vec<crate::error::FieldError>,
) -> Result<Option<(Incoming, Option<String>)>, ApiError> {
    let mut f = match Fields::new(value, path) {
        Ok(f) => f,
        Err(e) => {
            errors.push(e);
            return Ok(None);
        }
    };
    let customer_id = with_customer
        .then(|| f.string("customer_id", true, &CUSTOMER_ID))
        .flatten();
    let transaction_id = f.string("transaction_id", true, &TRANSACTION_ID);
    let booked_at = match f.raw("booked_at") {
        None => {
            f.errors
                .push(crate::error::FieldError::missing(f.name("booked_at")));
            None
        }
        Some(Value::String(s)) => match crate::consent::parse_date_time(s) {
            Some(t) => Some(t),
            None => {
                f.fail(
                    "booked_at",
                    "Not a valid date-time: expected RFC 3339 like 2026-11-22T09:30:00Z.",
                );
                None
            }
        },
        Some(_) => {
            f.fail("booked_at", "Not a valid string.");
            None
        }
    };
    let raw_amount = f.string("amount", true, &AMOUNT);
    let currency = f.string("currency", true, &CURRENCY);
    let direction = f
        .one_of("direction", true, &["credit", "debit"])
        .and_then(|d| Direction::parse(&d));
    let channel = f.one_of("channel", true, CHANNELS);
    let country = f.one_of("country", false, crate::kyc::rules::COUNTRIES);
    let mut counterparty = None;
    match f.raw("counterparty") {
        None => {
            let name = f.name("counterparty");
            f.errors.push(crate::error::FieldError::missing(name));
        }
        Some(cp) => {
            let name = f.name("counterparty");
            match Fields::new(cp, &name) {
                Ok(mut c) => {
                    let id = c.string("id", true, &COUNTERPARTY_ID);
                    let cp_name = c.string("name", true, &COUNTERPARTY_NAME);
                    f.errors.extend(c.finish());
                    counterparty = id.zip(cp_name);
                }
                Err(e) => f.errors.push(e),
            }
        }
    }
    let mut amount_minor = None;
    if let (Some(a), Some(c)) = (&raw_amount, &currency) {
        match amount::parse_amount(a, c) {
            Ok(m) => amount_minor = Some(m),
            Err(why) => f.fail("amount", why),
        }
    }
    errors.extend(f.finish());
    let (
        Some(transaction_id),
        Some(booked_at),
        Some(amount_minor),
        Some(currency),
        Some(direction),
        Some(channel),
        Some((cp_id, cp_name)),
    ) = (
        transaction_id,
        booked_at,
        amount_minor,
        currency,
        direction,
        channel,
        counterparty,
    )
    else {
        return Ok(None);
    };
    let txn = Txn {
        transaction_id,
        booked_at,
        amount_minor,
        currency,
        direction,
        counterparty: crate::kyc::pii::keyed_hash(&state.config.pii_key, "counterparty", &cp_id)?,
        channel,
    };
    Ok(Some((
        Incoming {
            txn,
            counterparty_name: cp_name,
            country,
        },
        customer_id,
    )))
}

/// The batch body: `{"transactions": [...]}`, every item valid, at most `monitoring.batch_max`.
fn parse_batch(state: &AppState, body: &Value) -> Result<Vec<Incoming>, ApiError> {
    const CODE: &str = "transactions_post_schema";
    let mut f = Fields::new(body, "").map_err(|e| ApiError::Validation {
        code: CODE,
        fields: vec![e],
    })?;
    let max = state.config.monitoring.batch_max;
    let items = f.array("transactions", true, 1, max);
    let mut errors = f.finish();
    let mut out = Vec::new();
    for (i, item) in items.into_iter().flatten().enumerate() {
        if let Some((incoming, _)) = parse_one(
            state,
            item,
            &format!("transactions[{i}]"),
            false,
            &mut errors,
        )? {
            out.push(incoming);
        }
    }
    verdict(CODE, errors)?;
    Ok(out)
}

fn history_of(rows: Vec<MonitoredRow>) -> Vec<Txn> {
    rows.into_iter()
        .filter_map(|r| {
            Some(Txn {
                direction: Direction::parse(&r.direction)?,
                transaction_id: r.transaction_id,
                booked_at: r.booked_at,
                amount_minor: r.amount_minor,
                currency: r.currency,
                counterparty: r.counterparty,
                channel: r.channel,
            })
        })
        .collect()
}

fn rating_of(row: &CustomerRow) -> RiskLevel {
    row.risk_rating
        .as_deref()
        .and_then(RiskLevel::parse)
        .unwrap_or(RiskLevel::Low)
}

fn reasons_json(a: &rules::Assessment) -> Value {
    Value::Array(
        a.reasons
            .iter()
            .map(|r| json!({"rule": r.rule, "detail": r.detail}))
            .collect(),
    )
}

fn assessment_json(a: &rules::Assessment) -> Value {
    json!({"risk_level": a.risk_level.as_str(), "score": a.score, "reasons": reasons_json(a)})
}

/// Announces a committed monitoring write's events, the KYC change's included.
fn announce(state: &AppState, w: &MonitoringWrite<'_>) {
    let mut events = w.events.clone();
    if let Some(k) = &w.kyc {
        events.extend(k.events.iter().cloned());
    }
    state.committed(&events);
}

fn system() -> Actor {
    Actor {
        kind: ActorType::System,
        id: "monitoring".into(),
        interaction_id: None,
    }
}

/// `POST /api/v0/customers/{customer_id}/transactions`.
pub async fn ingest(
    state: &AppState,
    customer_id: &str,
    body: &Value,
    actor: &Actor,
) -> Result<Value, ApiError> {
    let batch = parse_batch(state, body)?;
    // A concurrent batch or KYC change for the same customer makes the write stale: read
    // again and score again, a few times, then tell the caller to retry.
    for _ in 0..5 {
        if let Some(answer) = try_ingest(state, customer_id, &batch, actor).await? {
            return Ok(answer);
        }
    }
    Err(ApiError::Conflict {
        code: "customer_changed",
        message: "the customer changed while this batch was scored; send it again".into(),
    })
}

async fn try_ingest(
    state: &AppState,
    customer_id: &str,
    batch: &[Incoming],
    actor: &Actor,
) -> Result<Option<Value>, ApiError> {
    let cfg = &state.config.monitoring;
    // Read first: everything below is decided on reads made after it.
    let version = state.store.monitoring_version(customer_id).await?;
    let row = crate::kyc::customers::live_row(state, customer_id).await?;
    let now = state.clock.now();
    let ids: Vec<String> = batch.iter().map(|i| i.txn.transaction_id.clone()).collect();
    let known = state.store.known_transaction_ids(customer_id, &ids).await?;
    let mut seen: HashSet<&str> = HashSet::new();
    let mut fresh: Vec<&Incoming> = Vec::new();
    for i in batch {
        let id = i.txn.transaction_id.as_str();
        if !known.contains(id) && seen.insert(id) {
            fresh.push(i);
        }
    }
    fresh.sort_by_key(|i| i.txn.booked_at);
    let mut history = match (fresh.first(), fresh.last()) {
        (Some(first), Some(last)) => history_of(
            state
                .store
                .monitored_history(
                    customer_id,
                    Timestamp::from_millis(first.txn.booked_at.millis().saturating_sub(
                        i64::try_from(rules::LOOKBACK.as_millis()).unwrap_or(i64::MAX),
                    )),
                    last.txn.booked_at,
                )
                .await?,
        ),
        _ => Vec::new(),
    };
    let mut rating = rating_of(&row);
    let status = KycStatus::parse(&row.kyc_status);
    let mut scored = std::collections::HashMap::with_capacity(fresh.len());
    let mut rows = Vec::with_capacity(fresh.len());
    let mut alerts: Vec<AlertRow> = Vec::new();
    let mut events = Vec::new();
    let mut audit = Vec::new();
    for i in &fresh {
        let a = rules::assess(
            &i.txn,
            &i.counterparty_name,
            &history,
            rating,
            &cfg.rules,
            &cfg.sanctions,
        );
        let mut result = json!({
            "transaction_id": i.txn.transaction_id,
            "duplicate": false,
            "risk_level": a.risk_level.as_str(),
            "score": a.score,
            "reasons": reasons_json(&a),
        });
        if a.risk_level == RiskLevel::High {
            let alert_id = format!("al_{}", uuid::Uuid::now_v7().simple());
            result["alert_id"] = json!(alert_id);
            alerts.push(AlertRow {
                alert_id,
                customer_id: customer_id.to_owned(),
                transaction_id: i.txn.transaction_id.clone(),
                risk_level: a.risk_level.as_str().to_owned(),
                score: i32::try_from(a.score).unwrap_or(100),
                reasons: reasons_json(&a).to_string(),
                status: "open".into(),
                action: String::new(),
                previous_kyc_status: None,
                created_at: now,
                resolved_at: None,
                resolved_by: None,
                resolution_note: None,
            });
            // The rest of the batch is scored as a high-risk customer's.
            rating = RiskLevel::High;
        }
        scored.insert(i.txn.transaction_id.clone(), result);
        rows.push(MonitoredRow {
            customer_id: customer_id.to_owned(),
            transaction_id: i.txn.transaction_id.clone(),
            booked_at: i.txn.booked_at,
            amount_minor: i.txn.amount_minor,
            currency: i.txn.currency.clone(),
            direction: i.txn.direction.as_str().to_owned(),
            counterparty: i.txn.counterparty.clone(),
            channel: i.txn.channel.clone(),
            country: i.country.clone(),
            ingested_at: now,
        });
        history.push(i.txn.clone());
    }

    // What the alerts do to the customer.
    let mut change = None;
    if !alerts.is_empty() {
        let open = state.store.open_alerts(customer_id).await?;
        let held_since = open
            .iter()
            .find(|a| a.action == "suspended")
            .and_then(|a| a.previous_kyc_status.clone());
        let (action, previous) = match (cfg.on_high, status) {
            (OnHigh::Suspend, Some(KycStatus::Passed)) => ("suspended", Some("passed".into())),
            (OnHigh::Suspend, Some(KycStatus::Suspended)) if held_since.is_some() => {
                ("suspended", held_since)
            }
            _ => ("flagged", None),
        };
        for a in &mut alerts {
            a.action = action.to_owned();
            a.previous_kyc_status = previous.clone();
            events.push(crate::events::event(
                "monitoring.alert.created",
                json!({"alert_id": a.alert_id, "customer_id": customer_id,
                       "transaction_id": a.transaction_id, "risk_level": a.risk_level,
                       "action": action}),
                now,
            ));
            let mut entry = actor
                .event(now, "monitoring.alert.create")
                .on("alert", a.alert_id.clone());
            entry.reason = Some(format!("{action}: customer {customer_id}"));
            audit.push(entry);
        }
        let mut c = Change::new(&row, now);
        if action == "suspended" && status == Some(KycStatus::Passed) {
            let first = &alerts[0].alert_id;
            c.move_to(
                KycStatus::Suspended,
                "monitoring.alert",
                &system(),
                Some(format!("alert {first}")),
            );
        }
        let open_after = open.len() + alerts.len();
        rerate(state, &mut c, open_after, now, "monitoring.alert")?;
        if !c.transitions.is_empty()
            || c.row.risk_rating != row.risk_rating
            || c.row.risk_factors != row.risk_factors
        {
            change = Some(c);
        }
    }

    let w = MonitoringWrite {
        customer: (customer_id, version),
        transactions: rows,
        alerts,
        resolve: None,
        kyc: change.as_ref().map(Change::as_write),
        events,
        audit,
    };
    match state.store.write_monitoring(&w).await? {
        WriteOutcome::Applied => {}
        _ => return Ok(None),
    }
    announce(state, &w);

    // In the batch's order; a repeated id answers once as scored, then as a duplicate.
    let answers: Vec<Value> = batch
        .iter()
        .map(|i| {
            let id = i.txn.transaction_id.as_str();
            scored
                .remove(id)
                .unwrap_or_else(|| json!({"transaction_id": id, "duplicate": true}))
        })
        .collect();
    let final_row = change.as_ref().map_or(&row, |c| &c.row);
    Ok(Some(json!({
        "customer_id": customer_id,
        "accepted": w.transactions.len(),
        "duplicates": batch.len() - w.transactions.len(),
        "results": answers,
        "alerts": w.alerts.iter().map(|a| a.alert_id.clone()).collect::<Vec<_>>(),
        "kyc_status": final_row.kyc_status,
        "risk_rating": final_row.risk_rating,
    })))
}

/// `POST /api/v0/transactions/assess`: one transaction scored against the customer's
/// history; nothing is stored and no alert is opened.
pub async fn assess(state: &AppState, body: &Value) -> Result<Value, ApiError> {
    const CODE: &str = "assess_post_schema";
    let mut errors = Vec::new();
    let parsed = parse_one(state, body, "", true, &mut errors)?;
    verdict(CODE, errors)?;
    let Some((incoming, Some(customer_id))) = parsed else {
        return Err(ApiError::internal("validated transaction lacks a field"));
    };
    let row = crate::kyc::customers::live_row(state, &customer_id).await?;
    let t = incoming.txn.booked_at;
    let lookback = i64::try_from(rules::LOOKBACK.as_millis()).unwrap_or(i64::MAX);
    let history = history_of(
        state
            .store
            .monitored_history(
                &customer_id,
                Timestamp::from_millis(t.millis().saturating_sub(lookback)),
                t,
            )
            .await?,
    );
    // A stored transaction with the same id is the candidate itself: leave it out.
    let history: Vec<Txn> = history
        .into_iter()
        .filter(|h| h.transaction_id != incoming.txn.transaction_id)
        .collect();
    let cfg = &state.config.monitoring;
    let a = rules::assess(
        &incoming.txn,
        &incoming.counterparty_name,
        &history,
        rating_of(&row),
        &cfg.rules,
        &cfg.sanctions,
    );
    Ok(assessment_json(&a))
}

/// Recomputes the customer's rating into `change` (audited when it changes).
fn rerate(
    state: &AppState,
    change: &mut Change,
    open_alerts: usize,
    now: Timestamp,
    cause: &str,
) -> Result<(), ApiError> {
    let opened = crate::kyc::customers::open_row(&state.config.pii_key, change.row.clone())?;
    let profile = &opened.profile;
    let full_name = [
        Some(profile.first_name.as_str()),
        profile.middle_name.as_deref(),
        profile.last_name.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    let manual = change.row.kyc_documents.is_some()
        || change
            .transitions
            .iter()
            .any(|t| t.cause.starts_with("review."));
    let p = rating::Profile {
        full_name: &full_name,
        countries: profile
            .addresses
            .iter()
            .map(|a| a.country.clone())
            .collect(),
        kba_used: change.row.kba_round > 0,
        manual_review: manual,
        customer_since: change.row.created_at,
        now,
        open_high_alerts: open_alerts,
    };
    let cfg = &state.config.monitoring;
    let r = rating::rate(&p, &cfg.rating, &cfg.sanctions);
    let level = r.level.as_str().to_owned();
    let factors = serde_json::to_string(&r.factors).map_err(ApiError::internal)?;
    if change.row.risk_rating.as_deref() != Some(level.as_str())
        || change.row.risk_factors.as_deref() != Some(factors.as_str())
    {
        let before = change
            .row
            .risk_rating
            .clone()
            .unwrap_or_else(|| "none".into());
        let mut entry = system()
            .event(now, "customer.risk_rating.change")
            .on("customer", change.row.customer_id.clone());
        entry.reason = Some(format!("{before} -> {level} ({cause})"));
        change.audit.push(entry);
        change.row.risk_rating = Some(level);
        change.row.risk_factors = Some(factors);
        change.row.risk_rated_at = Some(now);
    }
    Ok(())
}

/// Rates a customer whose KYC is passing in `change` (called by every KYC change that
/// passes, before it commits, so the rating is written with the pass).
pub(crate) async fn rate_on_pass(state: &AppState, change: &mut Change) -> Result<(), ApiError> {
    let open = state
        .store
        .open_alerts(&change.row.customer_id)
        .await?
        .len();
    let now = change.row.updated_at;
    rerate(state, change, open, now, "kyc.passed")
}

/// An alert as the API shows it.
pub fn alert_view(a: &AlertRow) -> Value {
    let reasons: Value = serde_json::from_str(&a.reasons).unwrap_or_else(|_| json!([]));
    let resolution = a.resolved_at.map(|at| {
        json!({
            "outcome": a.status,
            "note": a.resolution_note,
            "resolved_by": a.resolved_by,
            "resolved_at": at,
        })
    });
    json!({
        "alert_id": a.alert_id,
        "customer_id": a.customer_id,
        "transaction_id": a.transaction_id,
        "risk_level": a.risk_level,
        "score": a.score,
        "reasons": reasons,
        "status": a.status,
        "action": a.action,
        "previous_kyc_status": a.previous_kyc_status,
        "created_at": a.created_at,
        "resolution": resolution,
    })
}

/// `POST /api/v0/alerts/{alert_id}/resolve`.
pub async fn resolve(
    state: &AppState,
    alert_id: &str,
    body: &Value,
    actor: &Actor,
) -> Result<Value, ApiError> {
    const CODE: &str = "resolve_post_schema";
    let mut f = Fields::new(body, "").map_err(|e| ApiError::Validation {
        code: CODE,
        fields: vec![e],
    })?;
    let outcome = f.one_of("outcome", true, &["cleared", "confirmed"]);
    let note = f.string("note", true, &crate::kyc::rules::REASON);
    verdict(CODE, f.finish())?;
    let (Some(outcome), Some(note)) = (outcome, note) else {
        return Err(ApiError::internal("validated resolution lacks a field"));
    };
    for _ in 0..5 {
        let alert = state
            .store
            .get_alert(alert_id)
            .await?
            .ok_or_else(|| ApiError::NotFound {
                message: format!("no alert {alert_id}"),
            })?;
        // Read before the customer and the other open alerts: a batch opening an alert (or
        // another resolution) meanwhile makes this one decide again.
        let version = state.store.monitoring_version(&alert.customer_id).await?;
        if alert.status != "open" {
            return Err(ApiError::Conflict {
                code: "alert_already_resolved",
                message: format!("alert {alert_id} was already resolved as {}", alert.status),
            });
        }
        let row = crate::kyc::customers::live_row(state, &alert.customer_id).await?;
        let now = state.clock.now();
        let others: Vec<AlertRow> = state
            .store
            .open_alerts(&alert.customer_id)
            .await?
            .into_iter()
            .filter(|a| a.alert_id != alert.alert_id)
            .collect();
        let still_held = others.iter().any(|a| a.action == "suspended");
        let status = KycStatus::parse(&row.kyc_status);
        let mut c = Change::new(&row, now);
        let note_for = Some(format!("alert {alert_id}"));
        match outcome.as_str() {
            "cleared" => {
                let restore = alert
                    .previous_kyc_status
                    .as_deref()
                    .and_then(KycStatus::parse);
                if let (Some(to), Some(KycStatus::Suspended), false, "suspended") =
                    (restore, status, still_held, alert.action.as_str())
                {
                    c.move_to(to, "monitoring.cleared", actor, note_for);
                }
            }
            _ => {
                if matches!(status, Some(KycStatus::Passed | KycStatus::Suspended)) {
                    c.move_to(
                        KycStatus::UnderReview,
                        "monitoring.confirmed",
                        actor,
                        note_for,
                    );
                }
            }
        }
        rerate(state, &mut c, others.len(), now, "monitoring.resolved")?;
        let changed = !c.transitions.is_empty()
            || c.row.risk_rating != row.risk_rating
            || c.row.risk_factors != row.risk_factors;
        let mut entry = actor
            .event(now, "monitoring.alert.resolve")
            .on("alert", alert_id.to_owned());
        entry.reason = Some(outcome.clone());
        let events = vec![crate::events::event(
            "monitoring.alert.resolved",
            json!({"alert_id": alert_id, "customer_id": alert.customer_id, "outcome": outcome}),
            now,
        )];
        let w = MonitoringWrite {
            customer: (&alert.customer_id, version),
            transactions: Vec::new(),
            alerts: Vec::new(),
            resolve: Some(Resolution {
                alert_id: alert_id.to_owned(),
                status: outcome.clone(),
                at: now,
                by: actor.id.clone(),
                note: note.clone(),
            }),
            kyc: changed.then(|| c.as_write()),
            events,
            audit: vec![entry],
        };
        if state.store.write_monitoring(&w).await? != WriteOutcome::Applied {
            continue;
        }
        announce(state, &w);
        let stored = state
            .store
            .get_alert(alert_id)
            .await?
            .ok_or_else(|| ApiError::internal("resolved alert vanished"))?;
        return Ok(alert_view(&stored));
    }
    Err(ApiError::Conflict {
        code: "customer_changed",
        message: "the customer or the alert changed while resolving; read it again and retry"
            .into(),
    })
}
