//! The storage interface every part calls, and its two implementations.
//!
//! Parts never touch tables directly: they call [`Store`] methods. [`sqlite::SqliteStore`]
//! (embedded default) and [`postgres::PostgresStore`] (production, several nodes) implement it
//! with one shared body of SQL (see `shared.rs`); each backend file holds only what differs:
//! connecting, migrations, and how a write transaction starts.
//!
//! State changes that must be audited take the [`AuditEvent`] as an argument and write it in
//! the same transaction, so an action and its audit row are committed together or not at all.

#[macro_use]
mod shared;
#[macro_use]
pub mod consents;
#[macro_use]
pub mod events;
#[macro_use]
pub mod kyc;
#[macro_use]
pub mod monitoring;
#[macro_use]
pub mod pages;
pub mod postgres;
pub mod sqlite;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::audit::decisions::{DecisionFilter, DecisionRecord, GatewayDecision};
use crate::audit::{AuditEvent, AuditFilter, AuditHead, AuditRecord};
use crate::clock::Timestamp;
use crate::config::{Backend, Config};

/// What storage can fail with, classified so callers map it to the right HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; the string names the constraint or index.
    #[error("conflict on {0}")]
    Conflict(String),
    /// The database could not be reached or no connection was free in time.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Anything else: a bug or a broken database.
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

impl StoreError {
    /// The same kind of error with the same message, for each of several callers that shared
    /// one failed operation (the audit group commit). `sqlx::Error` is not `Clone`.
    pub fn duplicate(&self) -> StoreError {
        let again = |e: &sqlx::Error| sqlx::Error::Protocol(e.to_string());
        match self {
            StoreError::Conflict(c) => StoreError::Conflict(c.clone()),
            StoreError::Unavailable(e) => StoreError::Unavailable(again(e)),
            StoreError::Migrate(e) => StoreError::Other(sqlx::Error::Protocol(e.to_string())),
            StoreError::Other(e) => StoreError::Other(again(e)),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.constraint().unwrap_or("unique").to_owned())
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            sqlx::Error::Database(db) if transient(db.as_ref()) => StoreError::Unavailable(e),
            _ => StoreError::Other(e),
        }
    }
}

/// Database errors that say "not now" rather than "never": the client is told to retry
/// (503 with `Retry-After`) and nothing was written, since the transaction did not commit.
///
/// PostgreSQL: connection exceptions (class 08), shutdown and restart (class 57: an operator
/// stopping the server, a crash, "the database system is starting up"), insufficient
/// resources (class 53: disk full, out of memory, too many connections). SQLite: busy or
/// locked past the busy timeout, I/O errors, a full disk, a file that cannot be opened.
fn transient(db: &dyn sqlx::error::DatabaseError) -> bool {
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        let code = pg.code();
        return ["08", "57", "53"]
            .iter()
            .any(|class| code.starts_with(class));
    }
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // The primary result code is the low byte of the extended one.
        let primary = db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff);
        // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN.
        return matches!(primary, Some(5 | 6 | 10 | 13 | 14));
    }
    false
}

/// Which migrations the database has, against those this binary carries.
#[derive(Clone, Debug, Serialize)]
pub struct MigrationState {
    /// Migrations this binary expects.
    pub expected: usize,
    /// Of those, how many the database has applied successfully.
    pub applied: usize,
    /// Descriptions of the ones still pending, oldest first.
    pub pending: Vec<String>,
}

impl MigrationState {
    /// True when every migration this binary knows is applied.
    pub fn is_current(&self) -> bool {
        self.pending.is_empty()
    }
}

/// A bank-facing API key as stored (never the key itself, only its hash).
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct AdminKey {
    /// Stable id (`ak_…`), used to revoke.
    pub id: String,
    /// Who or what the key is for (`ops`, `onboarding-service`).
    pub name: String,
    /// First characters of the key, so an operator can tell keys apart.
    pub prefix: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// Last successful use, updated at most once a minute.
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked; a revoked key is refused at once.
    pub revoked_at: Option<Timestamp>,
}

/// A key about to be stored.
#[derive(Clone, Debug)]
pub struct NewAdminKey {
    /// `ak_…` id.
    pub id: String,
    /// Label.
    pub name: String,
    /// Display prefix.
    pub prefix: String,
    /// Hex SHA-256 of the full key.
    pub key_hash: String,
    /// Creation time.
    pub created_at: Timestamp,
}

/// A JWT signing key as stored; the private key is sealed under the key-encryption key.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SigningKeyRow {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// `ES256` or `PS256`.
    pub alg: String,
    /// `next`, `active` or `retired`.
    pub state: String,
    /// The public JWK (JSON text).
    pub public_jwk: String,
    /// `crypto::seal`ed DER private key, bound to `kid`.
    pub private_key: Vec<u8>,
    /// Generated at.
    pub created_at: Timestamp,
    /// Started signing at.
    pub activated_at: Option<Timestamp>,
    /// Stopped signing at.
    pub retired_at: Option<Timestamp>,
}

/// An OAuth client as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ClientRow {
    /// `cl_…`.
    pub client_id: String,
    /// Human-readable name.
    pub client_name: String,
    /// Space-separated redirect URIs.
    pub redirect_uris: String,
    /// Space-separated grant types.
    pub grant_types: String,
    /// Space-separated scopes.
    pub scope: String,
    /// `client_secret_basic`, `client_secret_post` or `private_key_jwt`.
    pub token_endpoint_auth_method: String,
    /// JWK set (JSON) for `private_key_jwt`.
    pub jwks: Option<String>,
    /// argon2id PHC string of the current secret.
    pub secret_hash: Option<String>,
    /// The secret before the last rotation, valid until `previous_secret_expires_at`.
    pub previous_secret_hash: Option<String>,
    /// End of the rotation grace period.
    pub previous_secret_expires_at: Option<Timestamp>,
    /// Registered at.
    pub created_at: Timestamp,
    /// Last metadata or secret change.
    pub updated_at: Timestamp,
    /// Disabled at; refused everywhere from then on.
    pub disabled_at: Option<Timestamp>,
}

/// The storage interface. Every method is instrumented and never logs values it is given.
/// Parts with many tables have their own trait ([`kyc::KycStore`], [`events::EventStore`],
/// [`consents::ConsentStore`]); a
/// `Store` is all of them.
#[async_trait]
pub trait Store:
    kyc::KycStore
    + events::EventStore
    + consents::ConsentStore
    + monitoring::MonitoringStore
    + pages::PageStore
    + Send
    + Sync
    + fmt::Debug
{
    /// Which backend this is.
    fn backend(&self) -> Backend;
    /// Tells `follower` of changes other nodes commit, until `stop` turns true: PostgreSQL
    /// `LISTEN`s on [`crate::events::invalidation::CHANNEL`]; SQLite (one node) returns at once.
    async fn follow_changes(
        &self,
        follower: Arc<dyn crate::events::invalidation::Follower>,
        stop: tokio::sync::watch::Receiver<bool>,
    );
    /// Applies pending migrations (safe to run concurrently from several nodes).
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Applied versus expected migrations, for `/readyz`.
    async fn migration_state(&self) -> Result<MigrationState, StoreError>;
    /// A round trip to the database.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Closes the pool, waiting for connections to be returned.
    async fn close(&self);

    /// Stores a new admin key and its audit row in one transaction.
    async fn insert_admin_key(
        &self,
        key: &NewAdminKey,
        audit: &AuditEvent,
    ) -> Result<AdminKey, StoreError>;
    /// All keys, newest first, revoked ones included.
    async fn list_admin_keys(&self) -> Result<Vec<AdminKey>, StoreError>;
    /// The key with this hash, revoked or not.
    async fn find_admin_key_by_hash(&self, key_hash: &str) -> Result<Option<AdminKey>, StoreError>;
    /// Records a use of the key (callers throttle this).
    async fn touch_admin_key(&self, id: &str, at: Timestamp) -> Result<(), StoreError>;
    /// Revokes a key and writes the audit row in one transaction. `None` when no such key;
    /// an already revoked key is returned unchanged and not audited again.
    async fn revoke_admin_key(
        &self,
        id: &str,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<Option<AdminKey>, StoreError>;

    /// Every signing key, oldest first.
    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRow>, StoreError>;
    /// Stores the first keys (an active and a next one) with their audit row. `Conflict` when
    /// another node bootstrapped at the same moment.
    async fn insert_signing_keys(
        &self,
        keys: &[SigningKeyRow],
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// Retires `active_kid`, activates the next key and stores `new_next`, in one transaction.
    /// `false` (nothing changed) when `active_kid` is no longer the active key: another node
    /// rotated first.
    async fn rotate_signing_keys(
        &self,
        active_kid: &str,
        new_next: &SigningKeyRow,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Registers a client, auditing it in the same transaction.
    async fn insert_client(&self, client: &ClientRow, audit: &AuditEvent)
        -> Result<(), StoreError>;
    /// A client by id, disabled or not.
    async fn get_client(&self, client_id: &str) -> Result<Option<ClientRow>, StoreError>;
    /// Clients, newest first, created before `before` (a cursor), at most `limit`; disabled
    /// ones only when asked.
    async fn list_clients(
        &self,
        before: Option<(Timestamp, String)>,
        limit: u32,
        include_disabled: bool,
    ) -> Result<Vec<ClientRow>, StoreError>;
    /// Replaces a client's row (metadata, secrets, disabled state) and audits the change in
    /// one transaction, if the stored row is still enabled and still the one read (its
    /// `updated_at` is `read_at`, every write moving it forward). `false` otherwise: no such
    /// client, disabled, or changed since the read (a rotation, an update or a disable
    /// meanwhile, which a whole-row write would otherwise undo).
    async fn update_client(
        &self,
        client: &ClientRow,
        read_at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Puts an access token's `jti` on the deny list until `expires_at`, auditing it. `false`
    /// when it was already there.
    async fn revoke_token(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Records a client assertion's `jti` until `expires_at`; `false` when this client used
    /// it before (a replay). Purges expired ones.
    async fn use_client_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Whether a `jti` is on the deny list.
    async fn is_token_revoked(&self, jti: &str) -> Result<bool, StoreError>;

    /// Appends one audit row to the hash chain.
    async fn append_audit(&self, event: &AuditEvent) -> Result<AuditRecord, StoreError>;
    /// Appends many rows in one transaction, in order: all or none. The gateway's access log
    /// writes its decisions this way, off the request path.
    async fn append_audit_batch(&self, events: &[AuditEvent]) -> Result<(), StoreError>;
    /// Appends gateway decisions and the audit row that seals them, in one transaction: all
    /// or none ([`crate::audit::decisions`]). The access log writes its batches this way.
    async fn append_decisions(&self, decisions: &[GatewayDecision]) -> Result<(), StoreError>;
    /// Appends a spill file's decisions as [`Self::append_decisions`] does, with the file's
    /// `digest` recorded in the same transaction; `false`, writing nothing, when a start
    /// already wrote a file with this digest. A node that dies after that commit and before it
    /// deletes the file finds the file again at its next start
    /// ([`crate::gateway::spill`]): without the record its decisions would be logged twice.
    async fn append_spilled(
        &self,
        digest: &str,
        decisions: &[GatewayDecision],
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Gateway decisions matching the filter, newest first, at most `filter.limit`.
    async fn list_decisions(
        &self,
        filter: &DecisionFilter,
    ) -> Result<Vec<DecisionRecord>, StoreError>;
    /// Gateway decisions with `first <= seq <= last` in seq order, at most `limit`, for
    /// verification.
    async fn decisions_between(
        &self,
        first: i64,
        last: i64,
        limit: u32,
    ) -> Result<Vec<DecisionRecord>, StoreError>;
    /// Audit rows matching the filter, newest first, at most `filter.limit`.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;
    /// Audit rows in chain order with `seq > after_seq`, for verification.
    async fn audit_chain_page(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// The chain head as recorded beside the table (last seq and hash).
    async fn audit_head(&self) -> Result<AuditHead, StoreError>;
}

/// Opens the configured backend. Connecting is lazy: the first query opens connections.
pub async fn connect(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    let url = config.database_url.expose();
    let max = config.database_max_connections;
    Ok(match config.database_url.backend() {
        Backend::Sqlite => Arc::new(sqlite::SqliteStore::connect(url, max).await?),
        Backend::Postgres => Arc::new(postgres::PostgresStore::connect(url, max)?),
    })
}
