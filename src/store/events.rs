//! Storage of the event outbox, webhook endpoints, deliveries and delivery attempts.
//!
//! Events are inserted by the part whose change they report, inside its transaction
//! (`insert_events_in`), which also fans out one pending delivery per subscribed endpoint.
//! The dispatcher then claims due deliveries with a lease and records each attempt.

use async_trait::async_trait;

use super::StoreError;
use crate::audit::AuditEvent;
use crate::clock::Timestamp;

/// A domain event as stored in the outbox.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EventRow {
    /// `msg_…`: the `webhook-id` of every delivery of this event.
    pub id: String,
    /// `kyc.verification.success`, …
    pub r#type: String,
    /// JSON payload: ids and statuses only.
    pub payload: String,
    /// When the change happened.
    pub created_at: Timestamp,
}

/// A registered webhook endpoint.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct WebhookRow {
    /// `wh_…`.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// Subscribed event types, space-separated and padded (` a b `).
    pub events: String,
    /// Signing secret, sealed under `pii.key` and bound to `id`.
    pub secret: Vec<u8>,
    /// Registered at.
    pub created_at: Timestamp,
    /// Disabled (by a 410 answer) at.
    pub disabled_at: Option<Timestamp>,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// Deleted at (kept for the delivery history).
    pub deleted_at: Option<Timestamp>,
}

/// A delivery ready to be attempted: the event and where it goes.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DueDelivery {
    /// Event id.
    pub event_id: String,
    /// Event type.
    pub event_type: String,
    /// Event payload.
    pub payload: String,
    /// Event time.
    pub event_created_at: Timestamp,
    /// Endpoint id.
    pub endpoint_id: String,
    /// Endpoint URL.
    pub url: String,
    /// Sealed secret.
    pub secret: Vec<u8>,
    /// Attempts before this one.
    pub attempts: i32,
}

/// One delivery attempt and what follows from it.
#[derive(Clone, Debug)]
pub struct AttemptRecord {
    /// `wa_…`.
    pub id: String,
    /// Event.
    pub event_id: String,
    /// Endpoint.
    pub endpoint_id: String,
    /// When it was made.
    pub attempted_at: Timestamp,
    /// HTTP status, if the receiver answered.
    pub status_code: Option<i32>,
    /// Transport error or a short description of the answer.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
    /// The delivery's next state.
    pub next: DeliveryNext,
    /// The lease the attempt ran under (`claim_delivery`'s `lease_until`). An attempt that
    /// outlived it is counted, and a late success still marks the delivery delivered, but
    /// otherwise only the holder of the current lease moves the delivery on: a stale failure
    /// would release the lease of the attempt after it, and a third copy would go out while
    /// that one is in flight.
    pub lease_until: Timestamp,
}

/// What a delivery attempt leads to.
#[derive(Clone, Debug)]
pub enum DeliveryNext {
    /// 2xx: done.
    Delivered,
    /// Try again at this time.
    RetryAt(Timestamp),
    /// The schedule is exhausted.
    Failed,
    /// 410 Gone: the endpoint is disabled and its pending deliveries abandoned.
    EndpointGone,
}

/// A delivery with its current state, for the operator.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeliveryRow {
    /// Event.
    pub event_id: String,
    /// Event type.
    pub event_type: String,
    /// `pending`, `delivered`, `failed` or `abandoned`.
    pub state: String,
    /// Attempts so far.
    pub attempts: i32,
    /// Next attempt (pending only).
    pub next_attempt_at: Timestamp,
    /// Last HTTP status.
    pub last_status: Option<i32>,
    /// Last error.
    pub last_error: Option<String>,
    /// Delivered at.
    pub delivered_at: Option<Timestamp>,
}

/// Outbox and webhook storage.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Registers an endpoint.
    async fn insert_webhook(&self, row: &WebhookRow, audit: &AuditEvent) -> Result<(), StoreError>;
    /// Endpoints not deleted, newest first.
    async fn list_webhooks(&self) -> Result<Vec<WebhookRow>, StoreError>;
    /// An endpoint not deleted.
    async fn get_webhook(&self, id: &str) -> Result<Option<WebhookRow>, StoreError>;
    /// Deletes an endpoint and abandons its pending deliveries; `false` when none.
    async fn delete_webhook(
        &self,
        id: &str,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Writes events (and their deliveries) on their own, for changes with no other row.
    async fn insert_events(&self, events: &[EventRow]) -> Result<(), StoreError>;
    /// Takes the next due delivery to an endpoint not in `busy`, leasing it until
    /// `lease_until`.
    async fn claim_delivery(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        busy: &[String],
    ) -> Result<Option<DueDelivery>, StoreError>;
    /// Records an attempt and moves the delivery on. `audit` is written with it; for an
    /// endpoint gone (410), only by the attempt that disables the endpoint.
    async fn record_attempt(
        &self,
        attempt: &AttemptRecord,
        audit: Option<&AuditEvent>,
    ) -> Result<(), StoreError>;
    /// The endpoint's deliveries, newest event first.
    async fn list_deliveries(
        &self,
        endpoint_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError>;
}

/// Columns of `webhook_endpoints` in struct order.
pub(crate) const WEBHOOK_COLUMNS: &str =
    "id, url, events, secret, created_at, disabled_at, disabled_reason, deleted_at";

macro_rules! event_store_impl {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Writes events and one pending delivery per live endpoint subscribed to each.
            async fn insert_events_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                events: &[$crate::store::events::EventRow],
            ) -> Result<(), $crate::store::StoreError> {
                for e in events {
                    sqlx::query(
                        "INSERT INTO events (id, type, payload, created_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&e.id)
                    .bind(&e.r#type)
                    .bind(&e.payload)
                    .bind(e.created_at)
                    .execute(&mut **tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO webhook_deliveries (event_id, endpoint_id, state, attempts, \
                         next_attempt_at) \
                         SELECT $1, id, 'pending', 0, $2 FROM webhook_endpoints \
                         WHERE disabled_at IS NULL AND deleted_at IS NULL \
                         AND events LIKE $3",
                    )
                    .bind(&e.id)
                    .bind(e.created_at)
                    .bind(format!("% {} %", e.r#type))
                    .execute(&mut **tx)
                    .await?;
                }
                let stale: Vec<$crate::events::invalidation::Invalidation> = events
                    .iter()
                    .flat_map($crate::events::invalidation::Invalidation::of_event)
                    .collect();
                Self::notify_in(tx, &stale).await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::events::EventStore for $store {
            #[tracing::instrument(skip_all, fields(webhook.id = %w.id))]
            async fn insert_webhook(
                &self,
                w: &$crate::store::events::WebhookRow,
                audit: &$crate::audit::AuditEvent,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(&format!(
                    "INSERT INTO webhook_endpoints ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    $crate::store::events::WEBHOOK_COLUMNS
                ))
                .bind(&w.id)
                .bind(&w.url)
                .bind(&w.events)
                .bind(&w.secret)
                .bind(w.created_at)
                .bind(w.disabled_at)
                .bind(&w.disabled_reason)
                .bind(w.deleted_at)
                .execute(&mut *tx)
                .await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip_all)]
            async fn list_webhooks(
                &self,
            ) -> Result<Vec<$crate::store::events::WebhookRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM webhook_endpoints WHERE deleted_at IS NULL \
                     ORDER BY created_at DESC, id DESC",
                    $crate::store::events::WEBHOOK_COLUMNS
                ))
                .fetch_all(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all)]
            async fn get_webhook(
                &self,
                id: &str,
            ) -> Result<Option<$crate::store::events::WebhookRow>, $crate::store::StoreError>
            {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL",
                    $crate::store::events::WEBHOOK_COLUMNS
                ))
                .bind(id)
                .fetch_optional(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all, fields(webhook.id = %id))]
            async fn delete_webhook(
                &self,
                id: &str,
                at: $crate::clock::Timestamp,
                audit: &$crate::audit::AuditEvent,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE webhook_endpoints SET deleted_at = $1 WHERE id = $2 \
                     AND deleted_at IS NULL",
                )
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE webhook_deliveries SET state = 'abandoned', locked_until = NULL \
                     WHERE endpoint_id = $1 AND state = 'pending'",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip_all)]
            async fn insert_events(
                &self,
                events: &[$crate::store::events::EventRow],
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                Self::insert_events_in(&mut tx, events).await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip_all)]
            async fn claim_delivery(
                &self,
                now: $crate::clock::Timestamp,
                lease_until: $crate::clock::Timestamp,
                busy: &[String],
            ) -> Result<Option<$crate::store::events::DueDelivery>, $crate::store::StoreError>
            {
                // The endpoints to pass over, bound from parameter `$first` on.
                let skip = |first: usize| {
                    if busy.is_empty() {
                        return String::new();
                    }
                    let marks: Vec<String> =
                        (0..busy.len()).map(|i| format!("${}", i + first)).collect();
                    format!(" AND endpoint_id NOT IN ({})", marks.join(", "))
                };
                // A read first: an idle dispatcher must not take the write lock every poll.
                let probe = format!(
                    "SELECT event_id FROM webhook_deliveries WHERE state = 'pending' \
                     AND next_attempt_at <= $1 AND (locked_until IS NULL OR locked_until < $1)\
                     {} LIMIT 1",
                    skip(2)
                );
                let mut q = sqlx::query_as(&probe).bind(now);
                for id in busy {
                    q = q.bind(id);
                }
                let due: Option<(String,)> = q.fetch_optional(self.pool()).await?;
                if due.is_none() {
                    return Ok(None);
                }
                let mut tx = self.begin_write().await?;
                let claim = format!(
                    "UPDATE webhook_deliveries SET locked_until = $2 \
                     WHERE (event_id, endpoint_id) = (SELECT event_id, endpoint_id \
                       FROM webhook_deliveries WHERE state = 'pending' \
                       AND next_attempt_at <= $1 \
                       AND (locked_until IS NULL OR locked_until < $1){} \
                       ORDER BY next_attempt_at, event_id LIMIT 1) \
                     AND state = 'pending' AND (locked_until IS NULL OR locked_until < $1) \
                     RETURNING event_id, endpoint_id, attempts",
                    skip(3)
                );
                let mut q = sqlx::query_as(&claim).bind(now).bind(lease_until);
                for id in busy {
                    q = q.bind(id);
                }
                let claimed: Option<(String, String, i32)> = q.fetch_optional(&mut *tx).await?;
                let Some((event_id, endpoint_id, _)) = claimed else {
                    tx.commit().await?;
                    return Ok(None);
                };
                let due = sqlx::query_as(
                    "SELECT e.id AS event_id, e.type AS event_type, e.payload, \
                     e.created_at AS event_created_at, w.id AS endpoint_id, w.url, w.secret, \
                     d.attempts FROM webhook_deliveries d \
                     JOIN events e ON e.id = d.event_id \
                     JOIN webhook_endpoints w ON w.id = d.endpoint_id \
                     WHERE d.event_id = $1 AND d.endpoint_id = $2",
                )
                .bind(&event_id)
                .bind(&endpoint_id)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(due)
            }

            #[tracing::instrument(skip_all, fields(event_id = %a.event_id))]
            async fn record_attempt(
                &self,
                a: &$crate::store::events::AttemptRecord,
                audit: Option<&$crate::audit::AuditEvent>,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::events::DeliveryNext;
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO webhook_attempts (id, event_id, endpoint_id, attempted_at, \
                     status_code, error, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&a.id)
                .bind(&a.event_id)
                .bind(&a.endpoint_id)
                .bind(a.attempted_at)
                .bind(a.status_code)
                .bind(&a.error)
                .bind(a.duration_ms)
                .execute(&mut *tx)
                .await?;
                // A 410 disables the endpoint: its row is locked first, before this delivery's,
                // the order deleting an endpoint takes, so concurrent 410s (and a delete) queue
                // on it rather than deadlock on each other's deliveries. Only the attempt that
                // disables it writes the audit row.
                let gone = matches!(a.next, DeliveryNext::EndpointGone);
                let mut disabled = false;
                if gone {
                    disabled = sqlx::query(
                        "UPDATE webhook_endpoints SET disabled_at = $1, \
                         disabled_reason = 'the endpoint answered 410 Gone' \
                         WHERE id = $2 AND disabled_at IS NULL",
                    )
                    .bind(a.attempted_at)
                    .bind(&a.endpoint_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                }
                let (state, next_at, delivered_at) = match &a.next {
                    DeliveryNext::Delivered => ("delivered", a.attempted_at, Some(a.attempted_at)),
                    DeliveryNext::RetryAt(t) => ("pending", *t, None),
                    DeliveryNext::Failed => ("failed", a.attempted_at, None),
                    DeliveryNext::EndpointGone => ("abandoned", a.attempted_at, None),
                };
                let moved = sqlx::query(
                    "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, \
                     next_attempt_at = $2, delivered_at = $3, last_status = $4, last_error = $5, \
                     locked_until = NULL \
                     WHERE event_id = $6 AND endpoint_id = $7 AND state = 'pending' \
                     AND locked_until = $8",
                )
                .bind(state)
                .bind(next_at)
                .bind(delivered_at)
                .bind(a.status_code)
                .bind(&a.error)
                .bind(&a.event_id)
                .bind(&a.endpoint_id)
                .bind(a.lease_until)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if moved == 0 {
                    // The lease ran out and the delivery was claimed again (or has ended):
                    // the attempt happened, so it is counted. A late success still delivers a
                    // pending or failed delivery (the receiver has the event, whatever the
                    // newer attempts met); anything else changes nothing more, the lease
                    // holder decides.
                    let delivered = matches!(a.next, DeliveryNext::Delivered)
                        && sqlx::query(
                            "UPDATE webhook_deliveries SET state = 'delivered', \
                             attempts = attempts + 1, delivered_at = $1, last_status = $2, \
                             last_error = NULL, locked_until = NULL \
                             WHERE event_id = $3 AND endpoint_id = $4 \
                             AND state IN ('pending', 'failed')",
                        )
                        .bind(a.attempted_at)
                        .bind(a.status_code)
                        .bind(&a.event_id)
                        .bind(&a.endpoint_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                            == 1;
                    if !delivered {
                        sqlx::query(
                            "UPDATE webhook_deliveries SET attempts = attempts + 1 \
                             WHERE event_id = $1 AND endpoint_id = $2",
                        )
                        .bind(&a.event_id)
                        .bind(&a.endpoint_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                if gone {
                    sqlx::query(
                        "UPDATE webhook_deliveries SET state = 'abandoned', locked_until = NULL \
                         WHERE endpoint_id = $1 AND state = 'pending'",
                    )
                    .bind(&a.endpoint_id)
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(audit) = audit.filter(|_| disabled || !gone) {
                    Self::append_audit_in(&mut tx, audit).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip_all)]
            async fn list_deliveries(
                &self,
                endpoint_id: &str,
                limit: u32,
            ) -> Result<Vec<$crate::store::events::DeliveryRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as(
                    "SELECT d.event_id, e.type AS event_type, d.state, d.attempts, \
                     d.next_attempt_at, d.last_status, d.last_error, d.delivered_at \
                     FROM webhook_deliveries d JOIN events e ON e.id = d.event_id \
                     WHERE d.endpoint_id = $1 ORDER BY e.created_at DESC, e.id DESC LIMIT $2",
                )
                .bind(endpoint_id)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?)
            }
        }
    };
}
