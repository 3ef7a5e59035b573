//! KYC verification: start, KBA answers, documents, manual review, and applying a provider's
//! outcome. Each change is one optimistic [`KycWrite`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::customers::{self, Opened};
use super::pii::{self, Contact};
use super::provider::{Applicant, Decision, KbaQuestion, Outcome, ProviderError};
use super::{kba, rules, KycStatus};
use crate::audit::{Actor, ActorType, AuditEvent, Outcome as AuditOutcome};
use crate::clock::Timestamp;
use crate::error::{ApiError, FieldError};
use crate::http::idempotency;
use crate::http::validate::{verdict, Fields};
use crate::state::AppState;
use crate::store::events::EventRow;
use crate::store::kyc::{
    CustomerRow, DocumentRow, IdempotencyClaim, KycJobRow, KycWrite, TransitionRow, WriteOutcome,
};

/// The worker's identity in transitions and audit rows.
pub fn worker_actor() -> Actor {
    Actor {
        kind: ActorType::System,
        id: "kyc-worker".into(),
        interaction_id: None,
    }
}

/// A KYC change being assembled.
pub(crate) struct Change {
    pub(crate) row: CustomerRow,
    pub(crate) expected_version: i64,
    pub(crate) transitions: Vec<TransitionRow>,
    pub(crate) events: Vec<EventRow>,
    pub(crate) audit: Vec<AuditEvent>,
    enqueue: Option<KycJobRow>,
    finish_job: Option<String>,
    documents: Vec<DocumentRow>,
    now: Timestamp,
}

impl Change {
    pub(crate) fn new(row: &CustomerRow, now: Timestamp) -> Self {
        let mut row = row.clone();
        row.kyc_updated_at = Some(now);
        row.updated_at = now;
        Self {
            expected_version: row.kyc_version,
            row,
            transitions: Vec::new(),
            events: Vec::new(),
            audit: Vec::new(),
            enqueue: None,
            finish_job: None,
            documents: Vec::new(),
            now,
        }
    }

    fn status(&self) -> Option<KycStatus> {
        KycStatus::parse(&self.row.kyc_status)
    }

    /// Moves to `to`, recording the transition, its event and its audit row.
    pub(crate) fn move_to(
        &mut self,
        to: KycStatus,
        cause: &str,
        actor: &Actor,
        note: Option<String>,
    ) {
        let from = self.row.kyc_status.clone();
        let id = &self.row.customer_id;
        self.transitions.push(TransitionRow {
            id: format!("kt_{}", uuid::Uuid::now_v7().simple()),
            customer_id: id.clone(),
            from_status: from.clone(),
            to_status: to.as_str().to_owned(),
            cause: cause.to_owned(),
            actor_type: actor.kind.as_str().to_owned(),
            actor_id: Some(actor.id.clone()),
            note: note.clone(),
            at: self.now,
        });
        self.events.push(crate::events::event(
            to.event_type(),
            json!({
                "customer_id": id,
                "kyc_status": to.as_str(),
                "previous_status": from,
                "cause": cause,
            }),
            self.now,
        ));
        let mut audit = actor
            .event(self.now, "kyc.status.change")
            .on("customer", id.clone());
        audit.reason = Some(match note {
            Some(n) => format!("{cause}: {n}"),
            None => cause.to_owned(),
        });
        self.audit.push(audit);
        self.row.kyc_status = to.as_str().to_owned();
        if to == KycStatus::Passed {
            self.row.kyc_passed_at = Some(self.now);
        }
        if to != KycStatus::KbaTriggered {
            self.row.kba_questions = None;
        }
    }

    fn queue(&mut self, kind: &str) -> String {
        let id = format!("kj_{}", uuid::Uuid::now_v7().simple());
        self.enqueue = Some(KycJobRow {
            id: id.clone(),
            customer_id: self.row.customer_id.clone(),
            kind: kind.to_owned(),
            provider_ref: None,
            kyc_version: self.expected_version + 1,
            attempts: 0,
            run_after: self.now,
            created_at: self.now,
        });
        id
    }

    /// The store write of a change with no job, documents or idempotency key (monitoring's).
    pub(crate) fn as_write(&self) -> KycWrite<'_> {
        KycWrite {
            customer: &self.row,
            expected_version: self.expected_version,
            transitions: self.transitions.clone(),
            idempotency: None,
            enqueue: None,
            finish_job: None,
            documents: Vec::new(),
            events: self.events.clone(),
            audit: self.audit.clone(),
        }
    }

    async fn commit(
        mut self,
        state: &AppState,
        idempotency: Option<IdempotencyClaim>,
    ) -> Result<CustomerRow, ApiError> {
        if self
            .transitions
            .iter()
            .any(|t| t.to_status == KycStatus::Passed.as_str())
        {
            crate::monitoring::rate_on_pass(state, &mut self).await?;
        }
        let write = KycWrite {
            customer: &self.row,
            expected_version: self.expected_version,
            transitions: self.transitions,
            idempotency,
            enqueue: self.enqueue,
            finish_job: self.finish_job,
            documents: self.documents,
            events: self.events,
            audit: self.audit,
        };
        match state.store.write_kyc(&write).await? {
            WriteOutcome::Applied => {
                state.committed(&write.events);
                if write.enqueue.is_some() {
                    state.events.kyc_jobs.notify_one();
                }
                let mut row = self.row;
                row.kyc_version += 1;
                Ok(row)
            }
            WriteOutcome::IdempotencyKeyUsed => Err(idempotency::key_used()),
            WriteOutcome::Stale => Err(ApiError::Conflict {
                code: "kyc_changed",
                message:
                    "the customer's KYC changed while this request ran; read it again and retry"
                        .into(),
            }),
        }
    }
}

fn conflict(code: &'static str, message: String) -> ApiError {
    ApiError::Conflict { code, message }
}

fn provider_unavailable(e: &ProviderError) -> ApiError {
    let id = uuid::Uuid::new_v4().to_string();
    tracing::warn!(error_id = %id, error = %e, "identity provider unavailable");
    ApiError::Unavailable { id }
}

/// Checks a `POST …/verification-kyc` body as the route does, without starting anything: the
/// parser the fuzz target `kyc_request` drives.
pub fn check_start(body: &Value) -> Result<(), ApiError> {
    parse_start(body).map(|_| ())
}

fn parse_start(body: &Value) -> Result<(String, Contact), ApiError> {
    const CODE: &str = "kyc_post_schema";
    let mut f = Fields::new(body, "").map_err(|e| ApiError::Validation {
        code: CODE,
        fields: vec![e],
    })?;
    let program_id = f.string("program_id", true, &rules::PROGRAM_ID);
    let ssn = f.string("ssn", true, &rules::SSN);
    let phone = f.string("phone", true, &rules::PHONE);
    let phone_country_code = f.string("phone_country_code", true, &rules::PHONE_COUNTRY_CODE);
    let email = f.string("email", true, &rules::EMAIL);
    let ip = match f.raw("ip") {
        None => {
            f.errors.push(FieldError::missing("ip"));
            None
        }
        Some(Value::String(s)) => match s.parse::<IpAddr>() {
            Ok(ip) => Some(ip.to_string()),
            Err(_) => {
                f.fail("ip", "Not a valid IPv4 or IPv6 address.");
                None
            }
        },
        Some(_) => {
            f.fail("ip", "Not a valid string.");
            None
        }
    };
    let mut errors = f.finish();
    if let Some(e) = &email {
        if e.len() > 254 {
            errors.push(FieldError::invalid("email", "Not a valid email address."));
        }
    }
    verdict(CODE, errors)?;
    match (program_id, ssn, phone, phone_country_code, email, ip) {
        (
            Some(program_id),
            Some(ssn),
            Some(phone),
            Some(phone_country_code),
            Some(email),
            Some(ip),
        ) => Ok((
            program_id,
            Contact {
                ssn: ssn.chars().filter(char::is_ascii_digit).collect(),
                phone,
                phone_country_code,
                email,
                ip,
            },
        )),
        _ => Err(ApiError::internal("validated KYC body lacks a field")),
    }
}

/// `POST …/verification-kyc`: stores the contact, queues the provider check, answers at once.
pub async fn start(
    state: &AppState,
    customer_id: &str,
    body: &Value,
    claim: Option<IdempotencyClaim>,
    actor: &Actor,
) -> Result<Value, ApiError> {
    let o = customers::open(state, customer_id).await?;
    let (program_id, contact) = parse_start(body)?;
    let status = KycStatus::parse(&o.row.kyc_status);
    match status {
        Some(KycStatus::NotStarted | KycStatus::Error | KycStatus::Timeout) => {}
        Some(KycStatus::Passed) => {
            return Err(conflict(
                "kyc_already_passed",
                format!(
                    "KYC already passed for this customer at {}",
                    o.row.kyc_passed_at.map(|t| t.to_rfc3339()).unwrap_or_default()
                ),
            ))
        }
        Some(KycStatus::Failed) => {
            return Err(conflict(
                "kyc_review_required",
                "KYC failed for this customer; a compliance review (verification-kyc/review) decides now".into(),
            ))
        }
        Some(KycStatus::Suspended) => {
            return Err(conflict(
                "kyc_suspended",
                "the customer is suspended by monitoring; a compliance review lifts it".into(),
            ))
        }
        Some(s) => {
            return Err(conflict(
                "kyc_in_progress",
                format!("a verification is already in progress (status {})", s.as_str()),
            ))
        }
        None => return Err(ApiError::internal("unknown stored KYC status")),
    }
    let now = state.clock.now();
    let mut change = Change::new(&o.row, now);
    change.row.contact = Some(pii::seal_json(&o.key, "contact", customer_id, &contact)?);
    change.row.ssn_hmac = Some(pii::ssn_hmac(&state.config.pii_key, &contact.ssn)?);
    change.row.program_id = Some(program_id);
    change.row.kyc_started_at = Some(now);
    change.row.kyc_reasons = None;
    change.row.kyc_documents = None;
    change.row.kba_round = 0;
    let job = change.queue("verify");
    change.row.kyc_reference = Some(job);
    change.move_to(KycStatus::Initialized, "verification.started", actor, None);
    let row = change.commit(state, claim).await?;
    Ok(json!({"customer_id": row.customer_id, "kyc_status": row.kyc_status}))
}

/// `GET …/verification-kyc`: status, reasons, pending questions, documents, masked contact,
/// timestamps and history.
pub async fn view(state: &AppState, customer_id: &str) -> Result<Value, ApiError> {
    let o = customers::open(state, customer_id).await?;
    let history = state.store.list_kyc_transitions(customer_id).await?;
    let mut v = Map::new();
    v.insert("customer_id".into(), json!(customer_id));
    v.insert("kyc_status".into(), json!(o.row.kyc_status));
    let reasons: Value = o
        .row
        .kyc_reasons
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or_else(|| json!({}));
    v.insert("reasons".into(), reasons);
    if let Some(p) = &o.row.program_id {
        v.insert("program_id".into(), json!(p));
    }
    if let Some(c) = &o.contact {
        v.insert("ssn".into(), json!(pii::mask_ssn(&c.ssn)));
        v.insert(
            "phone".into(),
            json!(pii::mask_phone(&c.phone_country_code, &c.phone)),
        );
        v.insert("email".into(), json!(pii::mask_email(&c.email)));
    }
    if let Some(h) = &o.row.ssn_hmac {
        let others = state.store.customers_with_ssn(h, customer_id).await?;
        v.insert("duplicate_ssn".into(), json!(!others.is_empty()));
    }
    if o.row.kyc_status == KycStatus::KbaTriggered.as_str() {
        let questions = pending_questions(&o)?;
        let shown: Vec<Value> = questions
            .iter()
            .map(|q| json!({"question_id": q.question_id, "question": q.question, "choices": q.choices}))
            .collect();
        v.insert("kba_questions".into(), json!(shown));
    }
    v.insert("kba_round".into(), json!(o.row.kba_round));
    if let Some(d) = o
        .row
        .kyc_documents
        .as_deref()
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
    {
        v.insert("documents".into(), d);
    }
    for (key, t) in [
        ("date_started", o.row.kyc_started_at),
        ("date_updated", o.row.kyc_updated_at),
        ("date_passed", o.row.kyc_passed_at),
    ] {
        if let Some(t) = t {
            v.insert(key.into(), json!(t));
        }
    }
    let history: Vec<Value> = history
        .iter()
        .map(|t| json!({"from": t.from_status, "to": t.to_status, "cause": t.cause, "at": t.at}))
        .collect();
    v.insert("history".into(), json!(history));
    Ok(Value::Object(v))
}

fn pending_questions(o: &Opened) -> Result<Vec<KbaQuestion>, ApiError> {
    match &o.row.kba_questions {
        Some(blob) => pii::open_json(&o.key, "kba", &o.row.customer_id, blob),
        None => Ok(Vec::new()),
    }
}

fn applicant(o: &Opened) -> Result<Applicant, ApiError> {
    let c = o
        .contact
        .clone()
        .ok_or_else(|| ApiError::internal("verification without a contact"))?;
    let p = &o.profile;
    Ok(Applicant {
        first_name: p.first_name.clone(),
        middle_name: p.middle_name.clone(),
        last_name: p.last_name.clone(),
        dob: p.dob.clone(),
        address: p.addresses.first().cloned(),
        ssn: c.ssn,
        phone: c.phone,
        phone_country_code: c.phone_country_code,
        email: c.email,
        ip: c.ip,
    })
}

fn reference(o: &Opened) -> String {
    o.row
        .kyc_reference
        .clone()
        .unwrap_or_else(|| o.row.customer_id.clone())
}

/// `POST …/verification-kba`: all right → passed; a wrong answer → a new round; a third
/// wrong round → failed and queued for manual review.
pub async fn answer_kba(
    state: &AppState,
    customer_id: &str,
    body: &Value,
    claim: Option<IdempotencyClaim>,
    actor: &Actor,
) -> Result<Value, ApiError> {
    let o = customers::open(state, customer_id).await?;
    let answers = kba::parse(body)?;
    if o.row.kyc_status != KycStatus::KbaTriggered.as_str() {
        if o.row.kba_round >= kba::MAX_ROUNDS {
            return Err(ApiError::BadRequest {
                code: "kba_max_attempts",
                message: "Maximum number of attempts exceeded".into(),
            });
        }
        return Err(conflict(
            "kba_not_pending",
            format!("no KBA questions are pending (status {})", o.row.kyc_status),
        ));
    }
    let questions = pending_questions(&o)?;
    let unknown: Vec<FieldError> = answers
        .keys()
        .filter(|q| !questions.iter().any(|p| &p.question_id == *q))
        .map(|q| FieldError::invalid("kba_responses", format!("Unknown question id {q}.")))
        .collect();
    verdict("kba_post_schema", unknown)?;
    // A replay is refused before the provider is asked: each check can be a billed call, and
    // a wrong answer's next round would be fetched only to be thrown away.
    if let Some(c) = &claim {
        if state.store.idempotency_key_taken(c).await? {
            return Err(idempotency::key_used());
        }
    }
    let provider = state.provider.clone();
    let reference = reference(&o);
    let correct = provider
        .check_kba(&reference, &questions, &answers)
        .await
        .map_err(|e| provider_unavailable(&e))?;
    let now = state.clock.now();
    let mut change = Change::new(&o.row, now);
    if correct {
        change.move_to(KycStatus::Passed, "kba.passed", actor, None);
    } else if o.row.kba_round < kba::MAX_ROUNDS {
        let round = o.row.kba_round + 1;
        let next = provider
            .kba_questions(&reference, &applicant(&o)?, round as u32)
            .await
            .map_err(|e| provider_unavailable(&e))?;
        change.row.kba_round = round;
        change.row.kba_questions = Some(pii::seal_json(&o.key, "kba", customer_id, &next)?);
        change.events.push(crate::events::event(
            KycStatus::KbaTriggered.event_type(),
            json!({"customer_id": customer_id, "kyc_status": "kba triggered", "kba_round": round}),
            now,
        ));
        change.audit.push(
            actor
                .event(now, "kyc.kba.answer")
                .on("customer", customer_id)
                .outcome(
                    AuditOutcome::Failure,
                    format!("wrong_answer_round_{}", round - 1),
                ),
        );
    } else {
        change.move_to(KycStatus::Failed, "kba.failed", actor, None);
        change.move_to(KycStatus::UnderReview, "review.queued", actor, None);
    }
    change.commit(state, claim).await?;
    view(state, customer_id).await
}

/// `POST …/verification-kyc/documents`: stores the documents sealed; when every requested
/// kind is in, the status becomes `under_review` and the provider is asked to decide.
pub async fn submit_documents(
    state: &AppState,
    customer_id: &str,
    body: &Value,
    claim: Option<IdempotencyClaim>,
    actor: &Actor,
) -> Result<Value, ApiError> {
    let o = customers::open(state, customer_id).await?;
    let docs = super::documents::parse(body, state.config.kyc.document_max_bytes)?;
    if o.row.kyc_status != KycStatus::DocumentRequired.as_str() {
        return Err(conflict(
            "documents_not_requested",
            format!("no documents are requested (status {})", o.row.kyc_status),
        ));
    }
    let now = state.clock.now();
    let mut change = Change::new(&o.row, now);
    let mut requested: BTreeMap<String, String> = o
        .row
        .kyc_documents
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    for d in &docs {
        let id = format!("doc_{}", uuid::Uuid::now_v7().simple());
        change.documents.push(DocumentRow {
            content: pii::seal_bytes(&o.key, &format!("document/{id}"), customer_id, &d.bytes),
            id,
            customer_id: customer_id.to_owned(),
            kind: d.kind.to_owned(),
            doc_type: d.doc_type.clone(),
            side: d.side.to_owned(),
            content_type: d.content_type.to_owned(),
            size_bytes: d.bytes.len() as i64,
            created_at: now,
        });
        requested.insert(d.kind.to_owned(), "submitted".to_owned());
    }
    change.row.kyc_documents = Some(json!(requested).to_string());
    change.audit.push(
        actor
            .event(now, "kyc.documents.submit")
            .on("customer", customer_id),
    );
    if requested.values().all(|s| s == "submitted") {
        change.queue("documents");
        change.move_to(KycStatus::UnderReview, "documents.submitted", actor, None);
    }
    change.commit(state, claim).await?;
    Ok(json!({"customer_id": customer_id, "num_documents_submitted": docs.len()}))
}

/// `POST …/verification-kyc/review`: a compliance officer decides, with a reason.
pub async fn review(
    state: &AppState,
    customer_id: &str,
    body: &Value,
    claim: Option<IdempotencyClaim>,
    actor: &Actor,
) -> Result<Value, ApiError> {
    let o = customers::open(state, customer_id).await?;
    let mut f = Fields::new(body, "").map_err(|e| ApiError::Validation {
        code: "review_post_schema",
        fields: vec![e],
    })?;
    let decision = f.one_of("decision", true, &["passed", "failed"]);
    let reason = f.string("reason", true, &rules::REASON);
    verdict("review_post_schema", f.finish())?;
    let (Some(decision), Some(reason)) = (decision, reason) else {
        return Err(ApiError::internal("validated review lacks a field"));
    };
    let to = if decision == "passed" {
        KycStatus::Passed
    } else {
        KycStatus::Failed
    };
    let from = KycStatus::parse(&o.row.kyc_status)
        .ok_or_else(|| ApiError::internal("unknown stored KYC status"))?;
    if !from.reviewable_to(to) {
        return Err(conflict(
            "review_not_allowed",
            format!(
                "a review cannot decide {} while the status is {}",
                to.as_str(),
                from.as_str()
            ),
        ));
    }
    let now = state.clock.now();
    let mut change = Change::new(&o.row, now);
    let cause = if to == KycStatus::Passed {
        "review.passed"
    } else {
        "review.failed"
    };
    change.move_to(to, cause, actor, Some(reason));
    change.commit(state, claim).await?;
    view(state, customer_id).await
}

/// Runs one claimed job: calls the provider and applies its outcome. A job whose customer
/// moved on (erased, or another change since it was queued) is closed without effect.
pub async fn run_job(state: &AppState, job: &KycJobRow) -> Result<(), ApiError> {
    let Some(row) = job_customer(state, job).await? else {
        return Ok(());
    };
    let o = customers::open_row(&state.config.pii_key, row)?;
    let applicant = applicant(&o)?;
    let actor = worker_actor();
    let reference = reference(&o);
    let provider = state.provider.clone();
    let result = match (job.kind.as_str(), &job.provider_ref) {
        // A check that answered `pending` is polled, documents included (sending them again
        // would start another review).
        (_, Some(r)) => provider.poll(r).await,
        ("documents", _) => {
            let kinds: BTreeMap<String, String> = o
                .row
                .kyc_documents
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or_default();
            let docs: Vec<(String, String)> =
                kinds.into_keys().map(|k| (k, String::new())).collect();
            provider
                .review_documents(&reference, &applicant, &docs)
                .await
        }
        _ => provider.verify(&reference, &applicant).await,
    };
    let now = state.clock.now();
    let mut change = Change::new(&o.row, now);
    change.finish_job = Some(job.id.clone());
    let documents_job = job.kind == "documents";
    match result {
        Ok(Outcome {
            decision: Decision::Pending(r),
            ..
        }) => {
            let kyc = &state.config.kyc;
            if job.created_at.plus(kyc.pending_limit) > now {
                state
                    .store
                    .reschedule_kyc_job(&job.id, now.plus(kyc.poll_interval), Some(&r))
                    .await?;
                return Ok(());
            }
            // Still pending past `kyc.pending_limit`: the check ends as `timeout`, which the
            // bank may start again. Documents stay under review, where a reviewer decides.
            if !documents_job {
                fail(&mut change, &ProviderError::Timeout, &actor);
            }
        }
        Ok(outcome) => {
            change.row.kyc_reasons = Some(json!(outcome.reasons).to_string());
            match outcome.decision {
                Decision::Passed => {
                    change.move_to(KycStatus::Passed, "provider.passed", &actor, None)
                }
                Decision::Failed => {
                    change.move_to(KycStatus::Failed, "provider.failed", &actor, None)
                }
                Decision::ManualReview if documents_job => {}
                Decision::ManualReview => {
                    change.move_to(KycStatus::UnderReview, "provider.review", &actor, None)
                }
                Decision::Kba if !documents_job => {
                    match provider.kba_questions(&reference, &applicant, 1).await {
                        Ok(questions) => {
                            change.row.kba_round = 1;
                            change.row.kba_questions = Some(pii::seal_json(
                                &o.key,
                                "kba",
                                &o.row.customer_id,
                                &questions,
                            )?);
                            change.move_to(KycStatus::KbaTriggered, "provider.kba", &actor, None);
                        }
                        Err(e) => fail(&mut change, &e, &actor),
                    }
                }
                Decision::Documents(kinds) if !documents_job => {
                    let requested: BTreeMap<String, String> = kinds
                        .into_iter()
                        .map(|k| (k, "required".to_owned()))
                        .collect();
                    change.row.kyc_documents = Some(json!(requested).to_string());
                    change.move_to(
                        KycStatus::DocumentRequired,
                        "provider.documents",
                        &actor,
                        None,
                    );
                }
                // After documents, anything but a decision leaves the customer under review.
                Decision::Kba | Decision::Documents(_) | Decision::Pending(_) => {}
            }
        }
        Err(e) if documents_job => {
            // The documents stay under review; a reviewer can still decide.
            tracing::warn!(error = %e, customer_id = %o.row.customer_id, "document review by the provider failed");
        }
        Err(e) => fail(&mut change, &e, &actor),
    }
    commit_job(state, change, job).await
}

/// The customer a job is for, as it was when the job was queued; `None` (the job closed
/// without effect) when the customer was erased or changed since.
async fn job_customer(state: &AppState, job: &KycJobRow) -> Result<Option<CustomerRow>, ApiError> {
    match state.store.get_customer(&job.customer_id).await? {
        Some(row) if row.erased_at.is_none() && row.kyc_version == job.kyc_version => Ok(Some(row)),
        _ => {
            state
                .store
                .finish_kyc_job(&job.id, state.clock.now())
                .await?;
            Ok(None)
        }
    }
}

/// Commits a job's change (which finishes the job); a customer changed meanwhile closes the
/// job without effect.
async fn commit_job(state: &AppState, change: Change, job: &KycJobRow) -> Result<(), ApiError> {
    match change.commit(state, None).await {
        Ok(_) => Ok(()),
        Err(ApiError::Conflict { .. }) => {
            state
                .store
                .finish_kyc_job(&job.id, state.clock.now())
                .await?;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Ends a job the worker keeps failing to run (claimed more than
/// [`super::worker::MAX_ATTEMPTS`] times: a crash loop, a store that keeps refusing its
/// write). A verification still in `initialized` ends as `error`, which the bank may start
/// again; without this the customer would stay `initialized`, where nothing else moves them.
/// Documents stay under review, where a reviewer decides.
pub async fn abandon_job(state: &AppState, job: &KycJobRow) -> Result<(), ApiError> {
    let Some(row) = job_customer(state, job).await? else {
        return Ok(());
    };
    let mut change = Change::new(&row, state.clock.now());
    change.finish_job = Some(job.id.clone());
    if job.kind != "documents" {
        let failure =
            ProviderError::Failed("the check was abandoned after repeated failures".into());
        fail(&mut change, &failure, &worker_actor());
    }
    commit_job(state, change, job).await
}

fn fail(change: &mut Change, e: &ProviderError, actor: &Actor) {
    tracing::warn!(error = %e, customer_id = %change.row.customer_id, "identity provider check failed");
    let (to, cause) = match e {
        ProviderError::Timeout => (KycStatus::Timeout, "provider.timeout"),
        ProviderError::Failed(_) => (KycStatus::Error, "provider.error"),
    };
    if change.status().is_some_and(|s| s.can_become(to)) {
        change.move_to(to, cause, actor, None);
    }
}
