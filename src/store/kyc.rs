//! Storage of customers, KYC state, KYC jobs, documents and AML records.
//!
//! Every KYC change goes through one method, [`KycStore::write_kyc`], which applies the new state
//! only if the customer's `kyc_version` is still the one the caller read (optimistic locking),
//! and writes in the same transaction the idempotency key, the transition row, the job to run,
//! the documents, the outbox events and the audit rows. Either all of it is committed or none.

use async_trait::async_trait;

use super::events::EventRow;
use super::StoreError;
use crate::audit::AuditEvent;
use crate::clock::Timestamp;

/// A customer as stored. Every PII column is sealed (see [`crate::kyc::pii`]).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CustomerRow {
    /// `cus_…` id.
    pub customer_id: String,
    /// The customer's data key, sealed under `pii.key`; `None` once erased.
    pub data_key: Option<Vec<u8>>,
    /// Sealed profile JSON (names, date of birth, addresses).
    pub profile: Option<Vec<u8>>,
    /// Sealed verification contact JSON (SSN, phone, email, IP).
    pub contact: Option<Vec<u8>>,
    /// Keyed hash of the normalised SSN.
    pub ssn_hmac: Option<String>,
    /// KYC status (see [`crate::kyc::KycStatus`]).
    pub kyc_status: String,
    /// Bumped on every KYC change.
    pub kyc_version: i64,
    /// JSON of per-check results.
    pub kyc_reasons: Option<String>,
    /// JSON of requested documents and whether each was submitted.
    pub kyc_documents: Option<String>,
    /// KBA rounds asked so far.
    pub kba_round: i32,
    /// Sealed JSON of the pending KBA round, answer key included.
    pub kba_questions: Option<Vec<u8>>,
    /// Bond program id of the last verification.
    pub program_id: Option<String>,
    /// The provider's reference for the current verification.
    pub kyc_reference: Option<String>,
    /// When the last verification started.
    pub kyc_started_at: Option<Timestamp>,
    /// When KYC last passed.
    pub kyc_passed_at: Option<Timestamp>,
    /// Last KYC change.
    pub kyc_updated_at: Option<Timestamp>,
    /// Created at.
    pub created_at: Timestamp,
    /// Last change of any kind.
    pub updated_at: Timestamp,
    /// Erased at; PII is gone from then on.
    pub erased_at: Option<Timestamp>,
    /// Due-diligence rating (`low`, `medium`, `high`); `None` until KYC first passes.
    pub risk_rating: Option<String>,
    /// JSON array of the factors behind the rating.
    pub risk_factors: Option<String>,
    /// When the rating was last set.
    pub risk_rated_at: Option<Timestamp>,
}

/// A KYC status change, stored with its time and cause.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct TransitionRow {
    /// `kt_…` id.
    pub id: String,
    /// Customer.
    pub customer_id: String,
    /// Status before.
    pub from_status: String,
    /// Status after.
    pub to_status: String,
    /// Machine-readable cause (`provider.passed`, `kba.failed`, `review.failed`, …).
    pub cause: String,
    /// Who: `admin_key`, `system`, …
    pub actor_type: String,
    /// Which admin key, when a person decided.
    pub actor_id: Option<String>,
    /// A reviewer's reason; removed on erasure.
    pub note: Option<String>,
    /// When.
    pub at: Timestamp,
}

/// Work for the identity-provider worker.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct KycJobRow {
    /// `kj_…` id, also the reference sent to the provider (so the provider can de-duplicate).
    pub id: String,
    /// Customer.
    pub customer_id: String,
    /// `verify`, `poll` or `documents`.
    pub kind: String,
    /// The provider's id of a pending check, for `poll`.
    pub provider_ref: Option<String>,
    /// The customer's `kyc_version` when the job was queued; a job for an older version is
    /// dropped (the customer moved on).
    pub kyc_version: i64,
    /// Attempts so far.
    pub attempts: i32,
    /// Not before.
    pub run_after: Timestamp,
    /// Queued at.
    pub created_at: Timestamp,
}

/// An evidence document, sealed under the customer's data key.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DocumentRow {
    /// `doc_…`.
    pub id: String,
    /// Customer.
    pub customer_id: String,
    /// `government_id`, `proof_of_address` or `social_security_card`.
    pub kind: String,
    /// `passport`, `utility_bill`, …
    pub doc_type: Option<String>,
    /// `front` or `back`.
    pub side: String,
    /// Detected from the content.
    pub content_type: String,
    /// Decoded size.
    pub size_bytes: i64,
    /// Sealed bytes.
    pub content: Vec<u8>,
    /// Received at.
    pub created_at: Timestamp,
}

/// An idempotency key to claim in the same transaction as the change it guards.
#[derive(Clone, Debug)]
pub struct IdempotencyClaim {
    /// Who may not reuse it (the admin key id).
    pub scope: String,
    /// SHA-256 of the key.
    pub key_hash: String,
    /// Now.
    pub at: Timestamp,
    /// Claims older than this have expired and no longer block.
    pub expired_before: Timestamp,
}

/// Everything one KYC change writes.
#[derive(Debug)]
pub struct KycWrite<'a> {
    /// The customer's new KYC state (every KYC column is written from it).
    pub customer: &'a CustomerRow,
    /// The version the caller read; the write applies only if it is still current.
    pub expected_version: i64,
    /// The status changes, in order (usually one; none when only data changed).
    pub transitions: Vec<TransitionRow>,
    /// The idempotency key of the request, if it sent one.
    pub idempotency: Option<IdempotencyClaim>,
    /// A job to queue.
    pub enqueue: Option<KycJobRow>,
    /// The job this change completes.
    pub finish_job: Option<String>,
    /// Documents received.
    pub documents: Vec<DocumentRow>,
    /// Outbox events.
    pub events: Vec<EventRow>,
    /// Audit rows.
    pub audit: Vec<AuditEvent>,
}

/// What an optimistic write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Committed.
    Applied,
    /// The idempotency key was used within its window; nothing changed.
    IdempotencyKeyUsed,
    /// The customer changed (or was erased) since it was read; nothing changed.
    Stale,
}

/// The AML evidence kept after erasure.
#[derive(Clone, Debug)]
pub struct AmlRow {
    /// Customer.
    pub customer_id: String,
    /// Sealed under `pii.key`.
    pub evidence: Vec<u8>,
    /// Erased at.
    pub erased_at: Timestamp,
    /// Destroyed at.
    pub retain_until: Timestamp,
}

/// Customer and KYC storage.
#[async_trait]
pub trait KycStore: Send + Sync {
    /// Stores a new customer with its events and audit rows.
    async fn insert_customer(
        &self,
        customer: &CustomerRow,
        idempotency: Option<&IdempotencyClaim>,
        events: &[EventRow],
        audit: &AuditEvent,
    ) -> Result<WriteOutcome, StoreError>;
    /// A customer, erased or not.
    async fn get_customer(&self, customer_id: &str) -> Result<Option<CustomerRow>, StoreError>;
    /// Customers not erased, newest first, created before the cursor.
    async fn list_customers(
        &self,
        before: Option<(Timestamp, String)>,
        limit: u32,
    ) -> Result<Vec<CustomerRow>, StoreError>;
    /// Replaces the sealed profile if `kyc_version` is still `expected_version`, and moves the
    /// version on: each update is merged into the profile it read, so a second update made
    /// from the same read must fail rather than drop the first one's change.
    async fn update_customer_profile(
        &self,
        customer_id: &str,
        profile: &[u8],
        at: Timestamp,
        expected_version: i64,
        idempotency: Option<&IdempotencyClaim>,
        audit: &AuditEvent,
    ) -> Result<WriteOutcome, StoreError>;
    /// Applies a KYC change (see the module docs).
    async fn write_kyc(&self, write: &KycWrite<'_>) -> Result<WriteOutcome, StoreError>;
    /// The customer's status history, oldest first.
    async fn list_kyc_transitions(
        &self,
        customer_id: &str,
    ) -> Result<Vec<TransitionRow>, StoreError>;
    /// Other live customers with the same SSN hash.
    async fn customers_with_ssn(
        &self,
        ssn_hmac: &str,
        except: &str,
    ) -> Result<Vec<String>, StoreError>;
    /// Documents received for a customer, without their content.
    async fn count_documents(&self, customer_id: &str) -> Result<i64, StoreError>;
    /// Takes the next due job, leasing it until `lease_until`.
    async fn claim_kyc_job(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<KycJobRow>, StoreError>;
    /// Puts a job back for later after a provider answered `pending`: the answer is progress,
    /// so the job's failed-attempt count starts again.
    async fn reschedule_kyc_job(
        &self,
        id: &str,
        run_after: Timestamp,
        provider_ref: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Marks a job done without a KYC change (its customer moved on).
    async fn finish_kyc_job(&self, id: &str, at: Timestamp) -> Result<(), StoreError>;
    /// Destroys the customer's PII (data key, sealed columns, documents, notes), keeps `aml`
    /// when given, and writes events and audit. `false` when there is no live customer.
    async fn erase_customer(
        &self,
        customer_id: &str,
        at: Timestamp,
        aml: Option<&AmlRow>,
        events: &[EventRow],
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Destroys AML records whose retention ended; returns how many.
    async fn purge_aml_records(&self, now: Timestamp) -> Result<u64, StoreError>;
    /// Deletes idempotency keys created before `before` (past their window, they block
    /// nothing); answers how many. Reads first and writes only when there are some, so an
    /// idle call takes no write lock.
    async fn purge_idempotency_keys(&self, before: Timestamp) -> Result<u64, StoreError>;
    /// Whether `claim`'s key is taken and still inside its window: a look before work that
    /// cannot be undone (a provider call). The claim written with the change still decides.
    async fn idempotency_key_taken(&self, claim: &IdempotencyClaim) -> Result<bool, StoreError>;
    /// The AML record of an erased customer, if still retained.
    async fn get_aml_record(&self, customer_id: &str) -> Result<Option<AmlRow>, StoreError>;
}

/// Columns of `customers` in struct order.
pub(crate) const CUSTOMER_COLUMNS: &str = "customer_id, data_key, profile, contact, ssn_hmac, \
     kyc_status, kyc_version, kyc_reasons, kyc_documents, kba_round, kba_questions, program_id, \
     kyc_reference, kyc_started_at, kyc_passed_at, kyc_updated_at, created_at, updated_at, erased_at, \
     risk_rating, risk_factors, risk_rated_at";

/// Columns of `kyc_jobs` in struct order.
pub(crate) const JOB_COLUMNS: &str =
    "id, customer_id, kind, provider_ref, kyc_version, attempts, run_after, created_at";

macro_rules! kyc_store_impl {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Applies a KYC change inside `tx`; anything but `Applied` leaves `tx` for the
            /// caller to roll back.
            async fn write_kyc_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                w: &$crate::store::kyc::KycWrite<'_>,
            ) -> Result<$crate::store::kyc::WriteOutcome, $crate::store::StoreError> {
                let c = w.customer;
                if let Some(claim) = &w.idempotency {
                    if !Self::claim_idempotency_in(tx, claim).await? {
                        return Ok($crate::store::kyc::WriteOutcome::IdempotencyKeyUsed);
                    }
                }
                let done = sqlx::query(
                    "UPDATE customers SET contact = $1, ssn_hmac = $2, kyc_status = $3, \
                     kyc_version = kyc_version + 1, kyc_reasons = $4, kyc_documents = $5, \
                     kba_round = $6, kba_questions = $7, program_id = $8, kyc_started_at = $9, \
                     kyc_passed_at = $10, kyc_updated_at = $11, updated_at = $12, \
                     kyc_reference = $15, risk_rating = $16, risk_factors = $17, \
                     risk_rated_at = $18 \
                     WHERE customer_id = $13 AND kyc_version = $14 AND erased_at IS NULL",
                )
                .bind(&c.contact)
                .bind(&c.ssn_hmac)
                .bind(&c.kyc_status)
                .bind(&c.kyc_reasons)
                .bind(&c.kyc_documents)
                .bind(c.kba_round)
                .bind(&c.kba_questions)
                .bind(&c.program_id)
                .bind(c.kyc_started_at)
                .bind(c.kyc_passed_at)
                .bind(c.kyc_updated_at)
                .bind(c.updated_at)
                .bind(&c.customer_id)
                .bind(w.expected_version)
                .bind(&c.kyc_reference)
                .bind(&c.risk_rating)
                .bind(&c.risk_factors)
                .bind(c.risk_rated_at)
                .execute(&mut **tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok($crate::store::kyc::WriteOutcome::Stale);
                }
                for t in &w.transitions {
                    sqlx::query(
                        "INSERT INTO kyc_transitions (id, customer_id, from_status, to_status, \
                         cause, actor_type, actor_id, note, at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(&t.id)
                    .bind(&t.customer_id)
                    .bind(&t.from_status)
                    .bind(&t.to_status)
                    .bind(&t.cause)
                    .bind(&t.actor_type)
                    .bind(&t.actor_id)
                    .bind(&t.note)
                    .bind(t.at)
                    .execute(&mut **tx)
                    .await?;
                }
                if let Some(id) = &w.finish_job {
                    sqlx::query(
                        "UPDATE kyc_jobs SET state = 'done', finished_at = $1, \
                         locked_until = NULL WHERE id = $2",
                    )
                    .bind(c.updated_at)
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                }
                if let Some(j) = &w.enqueue {
                    // A new check supersedes any job still queued for this customer.
                    sqlx::query(
                        "UPDATE kyc_jobs SET state = 'done', finished_at = $1, \
                         locked_until = NULL WHERE customer_id = $2 AND state = 'pending'",
                    )
                    .bind(c.updated_at)
                    .bind(&j.customer_id)
                    .execute(&mut **tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO kyc_jobs (id, customer_id, kind, provider_ref, kyc_version, \
                         state, attempts, run_after, created_at) \
                         VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $7)",
                    )
                    .bind(&j.id)
                    .bind(&j.customer_id)
                    .bind(&j.kind)
                    .bind(&j.provider_ref)
                    .bind(j.kyc_version)
                    .bind(j.run_after)
                    .bind(j.created_at)
                    .execute(&mut **tx)
                    .await?;
                }
                for d in &w.documents {
                    sqlx::query(
                        "INSERT INTO kyc_documents (id, customer_id, kind, doc_type, side, \
                         content_type, size_bytes, content, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(&d.id)
                    .bind(&d.customer_id)
                    .bind(&d.kind)
                    .bind(&d.doc_type)
                    .bind(&d.side)
                    .bind(&d.content_type)
                    .bind(d.size_bytes)
                    .bind(&d.content)
                    .bind(d.created_at)
                    .execute(&mut **tx)
                    .await?;
                }
                Self::insert_events_in(tx, &w.events).await?;
                for a in &w.audit {
                    Self::append_audit_in(tx, a).await?;
                }
                Ok($crate::store::kyc::WriteOutcome::Applied)
            }

            /// Claims an idempotency key; `false` when it is taken and still inside its window.
            async fn claim_idempotency_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                c: &$crate::store::kyc::IdempotencyClaim,
            ) -> Result<bool, $crate::store::StoreError> {
                sqlx::query(
                    "DELETE FROM idempotency_keys WHERE scope = $1 AND key_hash = $2 \
                     AND created_at < $3",
                )
                .bind(&c.scope)
                .bind(&c.key_hash)
                .bind(c.expired_before)
                .execute(&mut **tx)
                .await?;
                let done = sqlx::query(
                    "INSERT INTO idempotency_keys (scope, key_hash, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(&c.scope)
                .bind(&c.key_hash)
                .bind(c.at)
                .execute(&mut **tx)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::kyc::KycStore for $store {
            #[tracing::instrument(skip_all, fields(customer_id = %c.customer_id))]
            async fn insert_customer(
                &self,
                c: &$crate::store::kyc::CustomerRow,
                idempotency: Option<&$crate::store::kyc::IdempotencyClaim>,
                events: &[$crate::store::events::EventRow],
                audit: &$crate::audit::AuditEvent,
            ) -> Result<$crate::store::kyc::WriteOutcome, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                if let Some(claim) = idempotency {
                    if !Self::claim_idempotency_in(&mut tx, claim).await? {
                        tx.rollback().await?;
                        return Ok($crate::store::kyc::WriteOutcome::IdempotencyKeyUsed);
                    }
                }
                sqlx::query(&format!(
                    "INSERT INTO customers ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                     $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)",
                    $crate::store::kyc::CUSTOMER_COLUMNS
                ))
                .bind(&c.customer_id)
                .bind(&c.data_key)
                .bind(&c.profile)
                .bind(&c.contact)
                .bind(&c.ssn_hmac)
                .bind(&c.kyc_status)
                .bind(c.kyc_version)
                .bind(&c.kyc_reasons)
                .bind(&c.kyc_documents)
                .bind(c.kba_round)
                .bind(&c.kba_questions)
                .bind(&c.program_id)
                .bind(&c.kyc_reference)
                .bind(c.kyc_started_at)
                .bind(c.kyc_passed_at)
                .bind(c.kyc_updated_at)
                .bind(c.created_at)
                .bind(c.updated_at)
                .bind(c.erased_at)
                .bind(&c.risk_rating)
                .bind(&c.risk_factors)
                .bind(c.risk_rated_at)
                .execute(&mut *tx)
                .await?;
                Self::insert_events_in(&mut tx, events).await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok($crate::store::kyc::WriteOutcome::Applied)
            }

            #[tracing::instrument(skip_all)]
            async fn get_customer(
                &self,
                customer_id: &str,
            ) -> Result<Option<$crate::store::kyc::CustomerRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM customers WHERE customer_id = $1",
                    $crate::store::kyc::CUSTOMER_COLUMNS
                ))
                .bind(customer_id)
                .fetch_optional(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all)]
            async fn list_customers(
                &self,
                before: Option<($crate::clock::Timestamp, String)>,
                limit: u32,
            ) -> Result<Vec<$crate::store::kyc::CustomerRow>, $crate::store::StoreError> {
                let (at, id) = before.unwrap_or((
                    $crate::clock::Timestamp::from_millis(i64::MAX),
                    String::new(),
                ));
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM customers \
                     WHERE (created_at < $1 OR (created_at = $1 AND customer_id < $2)) \
                     AND erased_at IS NULL \
                     ORDER BY created_at DESC, customer_id DESC LIMIT $3",
                    $crate::store::kyc::CUSTOMER_COLUMNS
                ))
                .bind(at)
                .bind(id)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all, fields(customer_id = %customer_id))]
            async fn update_customer_profile(
                &self,
                customer_id: &str,
                profile: &[u8],
                at: $crate::clock::Timestamp,
                expected_version: i64,
                idempotency: Option<&$crate::store::kyc::IdempotencyClaim>,
                audit: &$crate::audit::AuditEvent,
            ) -> Result<$crate::store::kyc::WriteOutcome, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                if let Some(claim) = idempotency {
                    if !Self::claim_idempotency_in(&mut tx, claim).await? {
                        tx.rollback().await?;
                        return Ok($crate::store::kyc::WriteOutcome::IdempotencyKeyUsed);
                    }
                }
                let done = sqlx::query(
                    "UPDATE customers SET profile = $1, updated_at = $2, \
                     kyc_version = kyc_version + 1 \
                     WHERE customer_id = $3 AND kyc_version = $4 AND erased_at IS NULL",
                )
                .bind(profile)
                .bind(at)
                .bind(customer_id)
                .bind(expected_version)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok($crate::store::kyc::WriteOutcome::Stale);
                }
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok($crate::store::kyc::WriteOutcome::Applied)
            }

            #[tracing::instrument(skip_all, fields(customer_id = %w.customer.customer_id))]
            async fn write_kyc(
                &self,
                w: &$crate::store::kyc::KycWrite<'_>,
            ) -> Result<$crate::store::kyc::WriteOutcome, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let outcome = Self::write_kyc_in(&mut tx, w).await?;
                if outcome == $crate::store::kyc::WriteOutcome::Applied {
                    tx.commit().await?;
                } else {
                    tx.rollback().await?;
                }
                Ok(outcome)
            }

            #[tracing::instrument(skip_all)]
            async fn list_kyc_transitions(
                &self,
                customer_id: &str,
            ) -> Result<Vec<$crate::store::kyc::TransitionRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as(
                    "SELECT id, customer_id, from_status, to_status, cause, actor_type, \
                     actor_id, note, at FROM kyc_transitions WHERE customer_id = $1 \
                     ORDER BY at, id",
                )
                .bind(customer_id)
                .fetch_all(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all)]
            async fn customers_with_ssn(
                &self,
                ssn_hmac: &str,
                except: &str,
            ) -> Result<Vec<String>, $crate::store::StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT customer_id FROM customers WHERE ssn_hmac = $1 \
                     AND customer_id <> $2 AND erased_at IS NULL ORDER BY customer_id",
                )
                .bind(ssn_hmac)
                .bind(except)
                .fetch_all(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all)]
            async fn count_documents(
                &self,
                customer_id: &str,
            ) -> Result<i64, $crate::store::StoreError> {
                Ok(
                    sqlx::query_scalar("SELECT COUNT(*) FROM kyc_documents WHERE customer_id = $1")
                        .bind(customer_id)
                        .fetch_one(self.pool())
                        .await?,
                )
            }

            #[tracing::instrument(skip_all)]
            async fn claim_kyc_job(
                &self,
                now: $crate::clock::Timestamp,
                lease_until: $crate::clock::Timestamp,
            ) -> Result<Option<$crate::store::kyc::KycJobRow>, $crate::store::StoreError> {
                // The outer condition repeats the lease check, so two nodes that pick the same
                // row in the subquery cannot both claim it (PostgreSQL re-checks the outer
                // WHERE after waiting on the row lock; SQLite has one writer).
                // A read first: an idle worker must not take the write lock every poll.
                let due: Option<(String,)> = sqlx::query_as(
                    "SELECT id FROM kyc_jobs WHERE state = 'pending' AND run_after <= $1 \
                     AND (locked_until IS NULL OR locked_until < $1) LIMIT 1",
                )
                .bind(now)
                .fetch_optional(self.pool())
                .await?;
                if due.is_none() {
                    return Ok(None);
                }
                let mut tx = self.begin_write().await?;
                let job = sqlx::query_as(&format!(
                    "UPDATE kyc_jobs SET locked_until = $2, attempts = attempts + 1 \
                     WHERE id = (SELECT id FROM kyc_jobs WHERE state = 'pending' \
                       AND run_after <= $1 AND (locked_until IS NULL OR locked_until < $1) \
                       ORDER BY run_after, id LIMIT 1) \
                     AND state = 'pending' AND (locked_until IS NULL OR locked_until < $1) \
                     RETURNING {}",
                    $crate::store::kyc::JOB_COLUMNS
                ))
                .bind(now)
                .bind(lease_until)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(job)
            }

            #[tracing::instrument(skip_all)]
            async fn reschedule_kyc_job(
                &self,
                id: &str,
                run_after: $crate::clock::Timestamp,
                provider_ref: Option<&str>,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "UPDATE kyc_jobs SET run_after = $1, locked_until = NULL, attempts = 0, \
                     provider_ref = COALESCE($2, provider_ref) WHERE id = $3 AND state = 'pending'",
                )
                .bind(run_after)
                .bind(provider_ref)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip_all)]
            async fn finish_kyc_job(
                &self,
                id: &str,
                at: $crate::clock::Timestamp,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "UPDATE kyc_jobs SET state = 'done', finished_at = $1, locked_until = NULL \
                     WHERE id = $2",
                )
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip_all, fields(customer_id = %customer_id))]
            async fn erase_customer(
                &self,
                customer_id: &str,
                at: $crate::clock::Timestamp,
                aml: Option<&$crate::store::kyc::AmlRow>,
                events: &[$crate::store::events::EventRow],
                audit: &$crate::audit::AuditEvent,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE customers SET data_key = NULL, profile = NULL, contact = NULL, \
                     ssn_hmac = NULL, kba_questions = NULL, kyc_version = kyc_version + 1, \
                     erased_at = $1, updated_at = $1 \
                     WHERE customer_id = $2 AND erased_at IS NULL",
                )
                .bind(at)
                .bind(customer_id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query("DELETE FROM kyc_documents WHERE customer_id = $1")
                    .bind(customer_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE kyc_transitions SET note = NULL WHERE customer_id = $1")
                    .bind(customer_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE kyc_jobs SET state = 'done', finished_at = $1, locked_until = NULL \
                     WHERE customer_id = $2 AND state = 'pending'",
                )
                .bind(at)
                .bind(customer_id)
                .execute(&mut *tx)
                .await?;
                if let Some(a) = aml {
                    sqlx::query(
                        "INSERT INTO aml_records (customer_id, evidence, erased_at, retain_until) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&a.customer_id)
                    .bind(&a.evidence)
                    .bind(a.erased_at)
                    .bind(a.retain_until)
                    .execute(&mut *tx)
                    .await?;
                }
                Self::insert_events_in(&mut tx, events).await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip_all)]
            async fn purge_aml_records(
                &self,
                now: $crate::clock::Timestamp,
            ) -> Result<u64, $crate::store::StoreError> {
                self.purge("aml_records", "retain_until <= $1", now).await
            }

            #[tracing::instrument(skip_all)]
            async fn purge_idempotency_keys(
                &self,
                before: $crate::clock::Timestamp,
            ) -> Result<u64, $crate::store::StoreError> {
                self.purge("idempotency_keys", "created_at < $1", before)
                    .await
            }

            #[tracing::instrument(skip_all)]
            async fn idempotency_key_taken(
                &self,
                c: &$crate::store::kyc::IdempotencyClaim,
            ) -> Result<bool, $crate::store::StoreError> {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM idempotency_keys WHERE scope = $1 AND key_hash = $2 \
                     AND created_at >= $3",
                )
                .bind(&c.scope)
                .bind(&c.key_hash)
                .bind(c.expired_before)
                .fetch_one(self.pool())
                .await?;
                Ok(n > 0)
            }

            #[tracing::instrument(skip_all)]
            async fn get_aml_record(
                &self,
                customer_id: &str,
            ) -> Result<Option<$crate::store::kyc::AmlRow>, $crate::store::StoreError> {
                let row: Option<(String, Vec<u8>, $crate::clock::Timestamp, $crate::clock::Timestamp)> =
                    sqlx::query_as(
                        "SELECT customer_id, evidence, erased_at, retain_until FROM aml_records \
                         WHERE customer_id = $1",
                    )
                    .bind(customer_id)
                    .fetch_optional(self.pool())
                    .await?;
                Ok(row.map(|(customer_id, evidence, erased_at, retain_until)| {
                    $crate::store::kyc::AmlRow {
                        customer_id,
                        evidence,
                        erased_at,
                        retain_until,
                    }
                }))
            }
        }
    };
}
