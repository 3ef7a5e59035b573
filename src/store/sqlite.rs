//! SQLite: the embedded single-node default.
//!
//! WAL mode (readers never block the writer), foreign keys on, and write transactions opened
//! with `BEGIN IMMEDIATE` so a transaction that reads before it writes cannot fail on lock
//! upgrade.
//!
//! SQLite has one writer at a time. Write transactions take their connection from a pool of
//! one, so concurrent writers queue in order inside obgate instead of meeting SQLite's lock
//! and its busy handler, which sleeps for growing intervals (up to 100 ms) between retries:
//! under load that idled the cores and stretched tail latency (the monitoring benchmark's
//! batch p99 went from 240 ms to about 70 ms). Reads use the other pool, in parallel.
//! The busy timeout stays for writes that come from another process or outside a transaction.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use super::StoreError;
use crate::config::Backend;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Whether a connection going back to the pool is clean. When a write fails with the disk full
/// (or an I/O error), SQLite may roll the transaction back itself; sqlx's own `ROLLBACK` then
/// fails and leaves the connection believing a transaction is open, so every later `BEGIN` on
/// it would fail. Such a connection is closed instead, and the pool opens a fresh one. The
/// ping runs after the rollback sqlx queued when the transaction was dropped. A connection
/// whose transaction committed has nothing queued and is known clean without the ping (a
/// round trip to its worker thread on every write).
async fn still_usable(conn: &mut sqlx::SqliteConnection) -> bool {
    use sqlx::{Connection, TransactionManager};
    let depth = <sqlx::Sqlite as sqlx::Database>::TransactionManager::get_transaction_depth;
    depth(conn) == 0 || (conn.ping().await.is_ok() && depth(conn) == 0)
}

/// The SQLite implementation of [`super::Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
}

impl SqliteStore {
    const BACKEND: Backend = Backend::Sqlite;
    const MIGRATIONS_TABLE_EXISTS: &'static str =
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'";
    /// How a batch of audit rows is inserted. `OR ROLLBACK`: a row that broke a constraint
    /// would fail the whole batch anyway, and saying so up front spares SQLite the statement
    /// journal it otherwise keeps for every multi-row insert, to undo just that statement
    /// (past 64 KiB a temporary file: two thirds of the writer's disk writes were to it).
    const AUDIT_BATCH_INSERT: &'static str = "INSERT OR ROLLBACK INTO audit";
    /// How a batch of gateway decisions is inserted (`OR ROLLBACK` as above).
    const DECISION_BATCH_INSERT: &'static str = "INSERT OR ROLLBACK INTO gateway_decisions";

    /// Opens (creating when missing) the database file named by a `sqlite:` URL.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::Other)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // No ping before each acquire (sqlx's default): a SQLite connection is a file handle
        // in this process that cannot hang up, and the ping was a round trip to the
        // connection's worker thread before every query (BENCHMARKS.md, token row).
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(StoreError::Unavailable)?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .after_release(|conn, _| Box::pin(async move { Ok(still_usable(conn).await) }))
            .connect_with(options)
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(Self { pool, writer })
    }

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }
}

impl SqliteStore {
    /// Closes both pools.
    async fn close_pools(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    /// One node: nobody else to tell.
    async fn notify_in(
        _tx: &mut Transaction<'_, Sqlite>,
        _what: &[crate::events::invalidation::Invalidation],
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// One node: every change is made here, and applied to the caches as it commits.
    async fn follow(
        &self,
        _follower: std::sync::Arc<dyn crate::events::invalidation::Follower>,
        _stop: tokio::sync::watch::Receiver<bool>,
    ) {
    }
}

shared_store_impl!(SqliteStore, Sqlite);
kyc_store_impl!(SqliteStore, Sqlite);
event_store_impl!(SqliteStore, Sqlite);
consent_store_impl!(SqliteStore, Sqlite);
monitoring_store_impl!(SqliteStore, Sqlite);
page_store_impl!(SqliteStore, Sqlite);
