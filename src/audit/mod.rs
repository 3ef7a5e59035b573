//! The append-only, hash-chained record of every security decision.
//!
//! Other parts describe a decision as an [`AuditEvent`] (who, what, on which resource, outcome,
//! interaction id) and either pass it to the store method that makes the state change (one
//! transaction for both) or append it alone (`Store::append_audit`) for decisions that change
//! nothing (a refused key).
//! Events hold ids and codes only, never PII values.
//!
//! Each stored row carries the hash of the row before it ([`chain`]), the database refuses
//! `UPDATE`/`DELETE` on the table (triggers), and the head (last seq and hash) is kept beside
//! it, so `obgate audit verify` proves that no row was altered, removed or appended out of band.
//!
//! The gateway's per-request decisions are the exception to one row per decision: they are
//! compact rows of their own table, sealed into the chain a batch at a time ([`decisions`]).

pub mod chain;
pub mod decisions;
pub mod group;
pub mod routes;

use serde::Serialize;

use crate::clock::Timestamp;

/// Who made the decision happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActorType {
    /// A bank-facing admin API key (`actor_id` is its `ak_…` id).
    AdminKey,
    /// The `obgate` command line on the server (`actor_id` is the OS user when known).
    Cli,
    /// A TPP's OAuth client (`actor_id` is its client id, or what it presented as one).
    Client,
    /// obgate itself (start-up, expiry sweeps).
    System,
    /// A caller that did not authenticate.
    Anonymous,
    /// A customer signed in to the hosted pages (`actor_id` is their customer id).
    Customer,
}

impl ActorType {
    /// Every actor type, for validating filters.
    pub const ALL: [ActorType; 6] = [
        ActorType::AdminKey,
        ActorType::Cli,
        ActorType::Client,
        ActorType::System,
        ActorType::Anonymous,
        ActorType::Customer,
    ];

    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::AdminKey => "admin_key",
            ActorType::Cli => "cli",
            ActorType::Client => "client",
            ActorType::System => "system",
            ActorType::Anonymous => "anonymous",
            ActorType::Customer => "customer",
        }
    }
}

/// How the decision came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed and done.
    Success,
    /// Refused by a security check.
    Denied,
    /// Attempted and failed for another reason.
    Failure,
}

impl Outcome {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failure => "failure",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Outcome::Success),
            "denied" => Some(Outcome::Denied),
            "failure" => Some(Outcome::Failure),
            _ => None,
        }
    }
}

/// Who is acting, for the audit row of a state change (admin key, CLI user, client).
#[derive(Clone, Debug)]
pub struct Actor {
    /// Kind.
    pub kind: ActorType,
    /// Id (an `ak_…` id, a client id, or the OS user for the CLI).
    pub id: String,
    /// The request's interaction id, when over HTTP.
    pub interaction_id: Option<String>,
}

impl Actor {
    /// An audit event by this actor, joined to its request.
    pub fn event(&self, at: Timestamp, action: &'static str) -> AuditEvent {
        AuditEvent::new(at, self.kind, self.id.clone(), action)
            .interaction(self.interaction_id.as_deref())
    }
}

/// A security decision about to be recorded.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    /// When it was decided.
    pub at: Timestamp,
    /// Kind of actor.
    pub actor_type: ActorType,
    /// Actor id (`ak_…`, client id, `-` when anonymous). Never a secret or PII.
    pub actor_id: String,
    /// Dotted verb, e.g. `admin_key.create`, `admin.authenticate`.
    pub action: &'static str,
    /// Kind of resource acted on, e.g. `admin_key`.
    pub resource_type: Option<&'static str>,
    /// Its id.
    pub resource_id: Option<String>,
    /// Outcome.
    pub outcome: Outcome,
    /// A short machine-readable reason for a denial or failure (`revoked_key`), never PII.
    pub reason: Option<String>,
    /// The request's `x-fapi-interaction-id`, to join the audit row to logs.
    pub interaction_id: Option<String>,
}

impl AuditEvent {
    /// A successful action by `actor`.
    pub fn new(
        at: Timestamp,
        actor_type: ActorType,
        actor_id: impl Into<String>,
        action: &'static str,
    ) -> Self {
        Self {
            at,
            actor_type,
            actor_id: actor_id.into(),
            action,
            resource_type: None,
            resource_id: None,
            outcome: Outcome::Success,
            reason: None,
            interaction_id: None,
        }
    }

    /// Names the resource acted on.
    pub fn on(mut self, kind: &'static str, id: impl Into<String>) -> Self {
        self.resource_type = Some(kind);
        self.resource_id = Some(id.into());
        self
    }

    /// Marks the outcome with a reason code.
    pub fn outcome(mut self, outcome: Outcome, reason: impl Into<String>) -> Self {
        self.outcome = outcome;
        self.reason = Some(reason.into());
        self
    }

    /// Joins the row to the request that caused it.
    pub fn interaction(mut self, id: Option<&str>) -> Self {
        self.interaction_id = id.map(str::to_owned);
        self
    }
}

/// A stored audit row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AuditRecord {
    /// Position in the chain, 1-based and gap-free.
    pub seq: i64,
    /// Globally unique id (UUID v7).
    pub id: String,
    /// When the decision was made.
    pub occurred_at: Timestamp,
    /// See [`ActorType`].
    pub actor_type: String,
    /// Actor id.
    pub actor_id: String,
    /// Action verb.
    pub action: String,
    /// Resource kind.
    pub resource_type: Option<String>,
    /// Resource id.
    pub resource_id: Option<String>,
    /// See [`Outcome`].
    pub outcome: String,
    /// Reason code.
    pub reason: Option<String>,
    /// Request correlation id.
    pub interaction_id: Option<String>,
    /// Hash of the previous row (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 over this row's fields and `prev_hash`.
    pub hash: String,
}

/// The chain head kept beside the table: the last seq and its hash.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditHead {
    /// Last appended seq (0 when empty).
    pub seq: i64,
    /// Hash of that row (the genesis hash when empty).
    pub last_hash: String,
    /// Gateway decisions sealed so far (the last decision seq; see [`decisions`]). Statements
    /// that only move the chain do not return it.
    #[sqlx(default)]
    pub decisions: i64,
}

/// Filters for listing audit rows; every field narrows the result.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Exact actor type.
    pub actor_type: Option<String>,
    /// Exact actor id.
    pub actor_id: Option<String>,
    /// Exact action.
    pub action: Option<String>,
    /// Exact resource type.
    pub resource_type: Option<String>,
    /// Exact resource id.
    pub resource_id: Option<String>,
    /// Exact outcome.
    pub outcome: Option<String>,
    /// Exact interaction id.
    pub interaction_id: Option<String>,
    /// Time window and page.
    pub window: Window,
}

/// The time window and page every audit listing takes (rows and gateway decisions alike).
#[derive(Clone, Debug, Default)]
pub struct Window {
    /// At or after.
    pub since: Option<Timestamp>,
    /// Before.
    pub until: Option<Timestamp>,
    /// Only rows with `seq` below this (the cursor).
    pub before_seq: Option<i64>,
    /// Page size.
    pub limit: u32,
}
