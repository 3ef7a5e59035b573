//! PostgreSQL: production, and several gateway nodes sharing one database.
//!
//! The pool connects lazily, so the server starts (and `/readyz` reports why it is not ready)
//! while the database is still coming up. Migrations take PostgreSQL's advisory lock, so several
//! nodes starting together apply them once.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

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

shared_store_impl!(PostgresStore, Postgres);
kyc_store_impl!(PostgresStore, Postgres);
event_store_impl!(PostgresStore, Postgres);
consent_store_impl!(PostgresStore, Postgres);
