//! Storage of monitored transactions, alerts and the changes they cause.
//!
//! A monitoring change is one transaction: the new transactions, the alerts they open (or the
//! alert being resolved), the customer's KYC change if any (suspension, restoration, manual
//! review, a new risk rating, through the same optimistic write as every KYC change), and the
//! events and audit rows.
//!
//! Every change for a customer checks and bumps the customer's `monitoring_version`, read
//! before anything it was decided on: a batch scored without a concurrent batch's
//! transactions, or a resolution decided without an alert opened meanwhile, is
//! [`WriteOutcome::Stale`] and the caller re-reads and decides again. So a burst of
//! single-payment batches is scored as the sequence it is, and a transaction is never counted
//! twice. (On PostgreSQL the bump also locks the customer's row until the commit.)

use std::collections::HashSet;

use async_trait::async_trait;

use super::events::EventRow;
use super::kyc::{KycWrite, WriteOutcome};
use super::StoreError;
use crate::audit::AuditEvent;
use crate::clock::Timestamp;

/// A transaction as monitoring keeps it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MonitoredRow {
    /// Whose.
    pub customer_id: String,
    /// The bank's id, unique per customer.
    pub transaction_id: String,
    /// Booking time.
    pub booked_at: Timestamp,
    /// Exact amount in the currency's minor units.
    pub amount_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// `credit` or `debit`.
    pub direction: String,
    /// Keyed hash of the counterparty's id.
    pub counterparty: String,
    /// Where it was made (card, transfer, cash, …).
    pub channel: String,
    /// ISO 3166 alpha-2, when the bank knows it.
    pub country: Option<String>,
    /// When obgate received it.
    pub ingested_at: Timestamp,
}

/// An alert as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AlertRow {
    /// `al_…` id.
    pub alert_id: String,
    /// Whose.
    pub customer_id: String,
    /// The transaction that opened it.
    pub transaction_id: String,
    /// Always `high` today; kept for lower-level alerts later.
    pub risk_level: String,
    /// 0–100.
    pub score: i32,
    /// JSON `[{"rule", "detail"}]`.
    pub reasons: String,
    /// `open`, `cleared` or `confirmed`.
    pub status: String,
    /// `suspended` (it holds the customer's access) or `flagged`.
    pub action: String,
    /// What clearing restores.
    pub previous_kyc_status: Option<String>,
    /// Opened at.
    pub created_at: Timestamp,
    /// Resolved at.
    pub resolved_at: Option<Timestamp>,
    /// Who resolved it (an admin key id).
    pub resolved_by: Option<String>,
    /// Why, in the officer's words.
    pub resolution_note: Option<String>,
}

/// Columns of `alerts` in struct order.
pub(crate) const ALERT_COLUMNS: &str = "alert_id, customer_id, transaction_id, risk_level, \
     score, reasons, status, action, previous_kyc_status, created_at, resolved_at, resolved_by, \
     resolution_note";

/// Columns of `monitored_transactions` in struct order.
pub(crate) const MONITORED_COLUMNS: &str = "customer_id, transaction_id, booked_at, \
     amount_minor, currency, direction, counterparty, channel, country, ingested_at";

/// Closing an open alert.
#[derive(Clone, Debug)]
pub struct Resolution {
    /// Which.
    pub alert_id: String,
    /// `cleared` or `confirmed`.
    pub status: String,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub by: String,
    /// Why.
    pub note: String,
}

/// One monitoring change (see the module docs).
pub struct MonitoringWrite<'a> {
    /// The customer, and the `monitoring_version` read before the change was decided.
    pub customer: (&'a str, i64),
    /// New transactions (none may exist yet).
    pub transactions: Vec<MonitoredRow>,
    /// Alerts opened.
    pub alerts: Vec<AlertRow>,
    /// An alert closed (only while still open).
    pub resolve: Option<Resolution>,
    /// The customer's KYC change, if any.
    pub kyc: Option<KycWrite<'a>>,
    /// Outbox events besides the KYC change's.
    pub events: Vec<EventRow>,
    /// Audit rows besides the KYC change's.
    pub audit: Vec<AuditEvent>,
}

/// Filters of the alert list.
#[derive(Clone, Debug, Default)]
pub struct AlertFilter {
    /// Only this customer's.
    pub customer_id: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Page after this (created_at, alert_id), newest first.
    pub before: Option<(Timestamp, String)>,
    /// Page size.
    pub limit: u32,
}

/// Monitoring's storage.
#[async_trait]
pub trait MonitoringStore {
    /// Which of `ids` the customer already has.
    async fn known_transaction_ids(
        &self,
        customer_id: &str,
        ids: &[String],
    ) -> Result<HashSet<String>, StoreError>;
    /// The customer's transactions booked in `[from, to]`.
    async fn monitored_history(
        &self,
        customer_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<MonitoredRow>, StoreError>;
    /// The customer's `monitoring_version` (0 for no such customer), to read before deciding
    /// a change.
    async fn monitoring_version(&self, customer_id: &str) -> Result<i64, StoreError>;
    /// Applies a monitoring change; `Stale` when the customer's monitoring version moved, a
    /// transaction exists already, the alert is no longer open, or the KYC write is stale.
    async fn write_monitoring(&self, w: &MonitoringWrite<'_>) -> Result<WriteOutcome, StoreError>;
    /// One alert.
    async fn get_alert(&self, alert_id: &str) -> Result<Option<AlertRow>, StoreError>;
    /// A page of alerts, newest first.
    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<AlertRow>, StoreError>;
    /// The customer's open alerts.
    async fn open_alerts(&self, customer_id: &str) -> Result<Vec<AlertRow>, StoreError>;
}

macro_rules! monitoring_store_impl {
    ($store:ty, $db:ty) => {
        impl $store {
            /// `VALUES (…), (…) ON CONFLICT DO NOTHING` for `rows`.
            fn push_monitored<'q>(
                q: &mut sqlx::QueryBuilder<'q, $db>,
                rows: &'q [$crate::store::monitoring::MonitoredRow],
            ) {
                q.push_values(rows, |mut b, t| {
                    b.push_bind(&t.customer_id)
                        .push_bind(&t.transaction_id)
                        .push_bind(t.booked_at)
                        .push_bind(t.amount_minor)
                        .push_bind(&t.currency)
                        .push_bind(&t.direction)
                        .push_bind(&t.counterparty)
                        .push_bind(&t.channel)
                        .push_bind(&t.country)
                        .push_bind(t.ingested_at);
                });
                q.push(" ON CONFLICT DO NOTHING");
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::monitoring::MonitoringStore for $store {
            #[tracing::instrument(skip_all, fields(customer_id = %customer_id))]
            async fn known_transaction_ids(
                &self,
                customer_id: &str,
                ids: &[String],
            ) -> Result<std::collections::HashSet<String>, $crate::store::StoreError> {
                let mut known = std::collections::HashSet::new();
                for chunk in ids.chunks(500) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "SELECT transaction_id FROM monitored_transactions WHERE customer_id = ",
                    );
                    q.push_bind(customer_id);
                    q.push(" AND transaction_id IN (");
                    let mut list = q.separated(", ");
                    for id in chunk {
                        list.push_bind(id);
                    }
                    q.push(")");
                    let rows: Vec<(String,)> = q.build_query_as().fetch_all(self.pool()).await?;
                    known.extend(rows.into_iter().map(|(id,)| id));
                }
                Ok(known)
            }

            #[tracing::instrument(skip_all, fields(customer_id = %customer_id))]
            async fn monitored_history(
                &self,
                customer_id: &str,
                from: $crate::clock::Timestamp,
                to: $crate::clock::Timestamp,
            ) -> Result<Vec<$crate::store::monitoring::MonitoredRow>, $crate::store::StoreError>
            {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM monitored_transactions \
                     WHERE customer_id = $1 AND booked_at >= $2 AND booked_at <= $3 \
                     ORDER BY booked_at",
                    $crate::store::monitoring::MONITORED_COLUMNS
                ))
                .bind(customer_id)
                .bind(from)
                .bind(to)
                .fetch_all(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all, fields(customer_id = %customer_id))]
            async fn monitoring_version(
                &self,
                customer_id: &str,
            ) -> Result<i64, $crate::store::StoreError> {
                let version: Option<i64> = sqlx::query_scalar(
                    "SELECT monitoring_version FROM customers WHERE customer_id = $1",
                )
                .bind(customer_id)
                .fetch_optional(self.pool())
                .await?;
                Ok(version.unwrap_or(0))
            }

            #[tracing::instrument(skip_all)]
            async fn write_monitoring(
                &self,
                w: &$crate::store::monitoring::MonitoringWrite<'_>,
            ) -> Result<$crate::store::kyc::WriteOutcome, $crate::store::StoreError> {
                use $crate::store::kyc::WriteOutcome;
                let nothing = w.transactions.is_empty()
                    && w.alerts.is_empty()
                    && w.resolve.is_none()
                    && w.kyc.is_none();
                if nothing && w.events.is_empty() && w.audit.is_empty() {
                    // A batch of repeats only.
                    return Ok(WriteOutcome::Applied);
                }
                let mut tx = self.begin_write().await?;
                let (customer_id, version) = w.customer;
                let current = sqlx::query(
                    "UPDATE customers SET monitoring_version = monitoring_version + 1 \
                     WHERE customer_id = $1 AND monitoring_version = $2",
                )
                .bind(customer_id)
                .bind(version)
                .execute(&mut *tx)
                .await?;
                if current.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(WriteOutcome::Stale);
                }
                for chunk in w.transactions.chunks(500) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                        "INSERT INTO monitored_transactions ({}) ",
                        $crate::store::monitoring::MONITORED_COLUMNS
                    ));
                    Self::push_monitored(&mut q, chunk);
                    let done = q.build().execute(&mut *tx).await?;
                    if done.rows_affected() != chunk.len() as u64 {
                        tx.rollback().await?;
                        return Ok(WriteOutcome::Stale);
                    }
                }
                for a in &w.alerts {
                    sqlx::query(&format!(
                        "INSERT INTO alerts ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                         $10, $11, $12, $13)",
                        $crate::store::monitoring::ALERT_COLUMNS
                    ))
                    .bind(&a.alert_id)
                    .bind(&a.customer_id)
                    .bind(&a.transaction_id)
                    .bind(&a.risk_level)
                    .bind(a.score)
                    .bind(&a.reasons)
                    .bind(&a.status)
                    .bind(&a.action)
                    .bind(&a.previous_kyc_status)
                    .bind(a.created_at)
                    .bind(a.resolved_at)
                    .bind(&a.resolved_by)
                    .bind(&a.resolution_note)
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(r) = &w.resolve {
                    let done = sqlx::query(
                        "UPDATE alerts SET status = $1, resolved_at = $2, resolved_by = $3, \
                         resolution_note = $4 WHERE alert_id = $5 AND status = 'open'",
                    )
                    .bind(&r.status)
                    .bind(r.at)
                    .bind(&r.by)
                    .bind(&r.note)
                    .bind(&r.alert_id)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() != 1 {
                        tx.rollback().await?;
                        return Ok(WriteOutcome::Stale);
                    }
                }
                if let Some(k) = &w.kyc {
                    let outcome = Self::write_kyc_in(&mut tx, k).await?;
                    if outcome != WriteOutcome::Applied {
                        tx.rollback().await?;
                        return Ok(outcome);
                    }
                }
                Self::insert_events_in(&mut tx, &w.events).await?;
                for a in &w.audit {
                    Self::append_audit_in(&mut tx, a).await?;
                }
                tx.commit().await?;
                Ok(WriteOutcome::Applied)
            }

            #[tracing::instrument(skip_all)]
            async fn get_alert(
                &self,
                alert_id: &str,
            ) -> Result<Option<$crate::store::monitoring::AlertRow>, $crate::store::StoreError>
            {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM alerts WHERE alert_id = $1",
                    $crate::store::monitoring::ALERT_COLUMNS
                ))
                .bind(alert_id)
                .fetch_optional(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all)]
            async fn list_alerts(
                &self,
                f: &$crate::store::monitoring::AlertFilter,
            ) -> Result<Vec<$crate::store::monitoring::AlertRow>, $crate::store::StoreError> {
                let (at, id) = f.before.clone().unwrap_or((
                    $crate::clock::Timestamp::from_millis(i64::MAX),
                    String::new(),
                ));
                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM alerts WHERE (created_at < ",
                    $crate::store::monitoring::ALERT_COLUMNS
                ));
                q.push_bind(at);
                q.push(" OR (created_at = ");
                q.push_bind(at);
                q.push(" AND alert_id < ");
                q.push_bind(id);
                q.push("))");
                if let Some(c) = &f.customer_id {
                    q.push(" AND customer_id = ");
                    q.push_bind(c);
                }
                if let Some(s) = &f.status {
                    q.push(" AND status = ");
                    q.push_bind(s);
                }
                q.push(" ORDER BY created_at DESC, alert_id DESC LIMIT ");
                q.push_bind(i64::from(f.limit));
                Ok(q.build_query_as().fetch_all(self.pool()).await?)
            }

            #[tracing::instrument(skip_all, fields(customer_id = %customer_id))]
            async fn open_alerts(
                &self,
                customer_id: &str,
            ) -> Result<Vec<$crate::store::monitoring::AlertRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM alerts WHERE customer_id = $1 AND status = 'open' \
                     ORDER BY created_at",
                    $crate::store::monitoring::ALERT_COLUMNS
                ))
                .bind(customer_id)
                .fetch_all(self.pool())
                .await?)
            }
        }
    };
}
