//! What a committed change makes stale in the gateway's decision caches, and how that news
//! travels between nodes.
//!
//! On the node that made the change, [`crate::state::AppState::committed`] applies it to the
//! caches synchronously, before the change's HTTP answer leaves. Other nodes hear it through
//! PostgreSQL: the store sends `pg_notify(`[`CHANNEL`]`, …)` inside the change's own
//! transaction (so the notification exists exactly when the change does), and each node's
//! listener applies it. SQLite is one node and sends nothing.

use crate::store::events::EventRow;

/// The PostgreSQL `LISTEN`/`NOTIFY` channel.
pub const CHANNEL: &str = "obgate_invalidate";

/// One thing that changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// A consent's status, accounts or deletion.
    Consent(String),
    /// A customer's KYC status (or the customer's erasure).
    Customer(String),
    /// One access token, by `jti`, was revoked.
    Token(String),
    /// Access tokens were revoked in bulk (a refresh-token family, a consent's tokens).
    Tokens,
    /// An OAuth client's registration (disabled, secret rotated, keys or grants changed).
    Client(String),
}

impl Invalidation {
    /// The `NOTIFY` payload (ids are ASCII and far below PostgreSQL's 8000-byte limit).
    pub fn to_payload(&self) -> String {
        match self {
            Invalidation::Consent(id) => format!("consent:{id}"),
            Invalidation::Customer(id) => format!("customer:{id}"),
            Invalidation::Token(jti) => format!("token:{jti}"),
            Invalidation::Tokens => "tokens".to_owned(),
            Invalidation::Client(id) => format!("client:{id}"),
        }
    }

    /// Reads a payload; `None` for one this version does not know (the listener then drops
    /// every cache entry rather than guess).
    pub fn from_payload(payload: &str) -> Option<Self> {
        if payload == "tokens" {
            return Some(Invalidation::Tokens);
        }
        let (kind, id) = payload.split_once(':')?;
        if id.is_empty() {
            return None;
        }
        match kind {
            "consent" => Some(Invalidation::Consent(id.to_owned())),
            "customer" => Some(Invalidation::Customer(id.to_owned())),
            "token" => Some(Invalidation::Token(id.to_owned())),
            "client" => Some(Invalidation::Client(id.to_owned())),
            _ => None,
        }
    }

    /// What an outbox event invalidates: its `consent_id` and its `customer_id`, if any.
    /// Every consent and KYC change writes an event, so this covers them all.
    pub fn of_event(event: &EventRow) -> Vec<Self> {
        let payload: serde_json::Value =
            serde_json::from_str(&event.payload).unwrap_or(serde_json::Value::Null);
        let id = |field: &str| {
            payload
                .get(field)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let mut out = Vec::new();
        if let Some(c) = id("consent_id") {
            out.push(Invalidation::Consent(c));
        }
        if let Some(c) = id("customer_id") {
            out.push(Invalidation::Customer(c));
        }
        out
    }
}

/// Something that keeps copies of stored state and must hear what changed.
pub trait Follower: Send + Sync {
    /// Forget what `what` made stale.
    fn apply(&self, what: &Invalidation);
    /// The change feed connected (`true`) or lost its connection (`false`): either way,
    /// anything kept so far may have missed news.
    fn connected(&self, live: bool);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;

    #[test]
    fn payloads_round_trip() {
        for i in [
            Invalidation::Consent("aac-1".into()),
            Invalidation::Customer("cus_2".into()),
            Invalidation::Token("jti:with:colons".into()),
            Invalidation::Tokens,
            Invalidation::Client("cl_3".into()),
        ] {
            assert_eq!(Invalidation::from_payload(&i.to_payload()), Some(i));
        }
        assert_eq!(Invalidation::from_payload("consent:"), None);
        assert_eq!(Invalidation::from_payload("weather:sunny"), None);
        assert_eq!(Invalidation::from_payload(""), None);
    }

    #[test]
    fn events_name_their_consent_and_customer() {
        let e = crate::events::event(
            "consent.revoked",
            serde_json::json!({"consent_id": "aac-1", "client_id": "c", "customer_id": "cus_9"}),
            Timestamp::from_millis(0),
        );
        assert_eq!(
            Invalidation::of_event(&e),
            vec![
                Invalidation::Consent("aac-1".into()),
                Invalidation::Customer("cus_9".into())
            ]
        );
        let e = crate::events::event(
            "consent.rejected",
            serde_json::json!({"consent_id": "aac-2", "customer_id": null}),
            Timestamp::from_millis(0),
        );
        assert_eq!(
            Invalidation::of_event(&e),
            vec![Invalidation::Consent("aac-2".into())]
        );
    }
}
