//! Domain events: the durable outbox, signed webhook delivery, and in-process notification.
//!
//! A part that changes state builds its events with [`event`] and hands them to the store
//! method that commits the change, so the event row (and one delivery per subscribed webhook)
//! is written in the same transaction. After the commit it calls [`Hub::published`], which
//! wakes the [`dispatcher`] at once and tells in-process listeners (caches) what changed. Other
//! nodes and restarts find due deliveries by polling (`workers.poll_interval`).
//!
//! Payloads carry ids and statuses only, never PII: a webhook receiver fetches details over
//! the authenticated API.

pub mod dispatcher;
pub mod invalidation;
pub mod routes;
pub mod signing;
pub mod webhooks;

use serde_json::Value;
use tokio::sync::{broadcast, Notify};

use crate::clock::Timestamp;
use crate::store::events::EventRow;

/// Every event type a webhook can subscribe to. Later parts add theirs here.
pub const EVENT_TYPES: &[&str] = &[
    "kyc.verification.initialized",
    "kyc.verification.success",
    "kyc.verification.failure",
    "kyc.verification.kba",
    "kyc.verification.document_required",
    "kyc.verification.under_review",
    "kyc.verification.error",
    "kyc.verification.timeout",
    "kyc.verification.suspended",
    "customer.erased",
    "consent.authorised",
    "consent.rejected",
    "consent.revoked",
    "consent.deleted",
    "monitoring.alert.created",
    "monitoring.alert.resolved",
];

/// A new outbox event of `kind` (one of [`EVENT_TYPES`]) with an ids-only payload.
pub fn event(kind: &str, payload: Value, at: Timestamp) -> EventRow {
    EventRow {
        id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
        r#type: kind.to_owned(),
        payload: payload.to_string(),
        created_at: at,
    }
}

/// A committed event, as in-process listeners see it.
#[derive(Clone, Debug)]
pub struct Published {
    /// Event type.
    pub kind: String,
    /// Payload.
    pub payload: Value,
}

/// In-process fan-out of committed events, and the dispatcher's wake-up call.
#[derive(Debug)]
pub struct Hub {
    bus: broadcast::Sender<Published>,
    /// Woken when new deliveries may be due.
    pub deliveries: Notify,
    /// Woken when a KYC job was queued.
    pub kyc_jobs: Notify,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            bus: broadcast::channel(1024).0,
            deliveries: Notify::new(),
            kyc_jobs: Notify::new(),
        }
    }
}

impl Hub {
    /// Announces events that were just committed.
    pub fn published(&self, events: &[EventRow]) {
        for e in events {
            // No subscriber is fine: nobody caches yet.
            let _ = self.bus.send(Published {
                kind: e.r#type.clone(),
                payload: serde_json::from_str(&e.payload).unwrap_or(Value::Null),
            });
        }
        if !events.is_empty() {
            self.deliveries.notify_one();
        }
    }

    /// Receives every event committed on this node from now on (caches invalidate on them).
    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.bus.subscribe()
    }
}
