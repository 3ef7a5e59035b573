//! PostgreSQL: production, and several gateway nodes sharing one database.
//!
//! The pool connects lazily, so the server starts (and `/readyz` reports why it is not ready)
//! while the database is still coming up. Migrations take PostgreSQL's advisory lock, so several
//! nodes starting together apply them once.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgListener;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use std::sync::Arc;
use tokio::sync::watch;

use crate::events::invalidation::{Follower, Invalidation, CHANNEL};

use super::StoreError;
use crate::config::Backend;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL implementation of [`super::Store`].
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    const BACKEND: Backend = Backend::Postgres;
    const MIGRATIONS_TABLE_EXISTS: &'static str =
        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() AND tablename = '_sqlx_migrations'";
    /// How a batch of audit rows is inserted (a failed statement fails the transaction).
    const AUDIT_BATCH_INSERT: &'static str = "INSERT INTO audit";
    /// How a batch of gateway decisions is inserted.
    const DECISION_BATCH_INSERT: &'static str = "INSERT INTO gateway_decisions";

    /// Prepares a pool for a `postgres:` URL; no connection is opened yet.
    pub fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse().map_err(StoreError::Other)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options.application_name("obgate"));
        Ok(Self { pool })
    }

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }
}

impl PostgresStore {
    /// Closes the pool.
    async fn close_pools(&self) {
        self.pool.close().await;
    }

    /// Tells every node's listener what this transaction changes; PostgreSQL delivers it at
    /// commit, and not at all on rollback.
    async fn notify_in(
        tx: &mut Transaction<'_, Postgres>,
        what: &[Invalidation],
    ) -> Result<(), sqlx::Error> {
        if what.is_empty() {
            return Ok(());
        }
        let payloads: Vec<String> = what.iter().map(Invalidation::to_payload).collect();
        sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
            .bind(CHANNEL)
            .bind(payloads)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// `LISTEN`s for other nodes' changes. Connected: the follower drops everything it kept
    /// (news may have been missed before) and goes live. Connection lost: it drops everything
    /// and stops serving copies until the listener is back, retried every second.
    async fn follow(&self, follower: Arc<dyn Follower>, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            let listening = async {
                let mut l = PgListener::connect_with(&self.pool).await?;
                l.listen(CHANNEL).await?;
                Ok::<_, sqlx::Error>(l)
            };
            let mut listener = match listening.await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "change feed: cannot listen; gateway caches off");
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            follower.connected(true);
            tracing::info!("change feed: listening; gateway caches on");
            loop {
                let next = tokio::select! {
                    _ = stop.changed() => return,
                    n = listener.try_recv() => n,
                };
                match next {
                    Ok(Some(n)) => match Invalidation::from_payload(n.payload()) {
                        Some(what) => follower.apply(&what),
                        None => follower.connected(true),
                    },
                    Ok(None) | Err(_) => {
                        tracing::warn!("change feed: connection lost; gateway caches off");
                        follower.connected(false);
                        break;
                    }
                }
            }
        }
    }
}

shared_store_impl!(PostgresStore, Postgres);
kyc_store_impl!(PostgresStore, Postgres);
event_store_impl!(PostgresStore, Postgres);
consent_store_impl!(PostgresStore, Postgres);
monitoring_store_impl!(PostgresStore, Postgres);
page_store_impl!(PostgresStore, Postgres);
