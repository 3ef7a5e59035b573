//! Storage of the hosted pages' sign-in sessions.
//!
//! A session row is keyed by the SHA-256 of the random id in the customer's cookie, so what is
//! stored cannot be replayed as a cookie. Starting and ending a session write their audit row
//! in the same transaction (no sign-out without its record, no record of one that did not
//! happen); starting one also deletes sessions that have expired.

use async_trait::async_trait;

use super::StoreError;
use crate::audit::AuditEvent;
use crate::clock::Timestamp;

/// A signed-in customer on the hosted pages.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PageSessionRow {
    /// Hex SHA-256 of the cookie's session id.
    pub id_hash: String,
    /// Who signed in.
    pub customer_id: String,
    /// The token every form of this session must echo.
    pub csrf_token: String,
    /// When the customer signed in.
    pub created_at: Timestamp,
    /// When the session ends, whatever the customer does.
    pub expires_at: Timestamp,
}

/// What the hosted pages store.
#[async_trait]
pub trait PageStore {
    /// Stores a new session with its audit row; purges expired sessions.
    async fn start_page_session(
        &self,
        session: &PageSessionRow,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// The session with this id hash, expired or not (the caller compares with its clock).
    async fn get_page_session(&self, id_hash: &str) -> Result<Option<PageSessionRow>, StoreError>;
    /// Ends a session (sign-out) with its audit row, in one transaction; `false` (and nothing
    /// audited) when there was none.
    async fn end_page_session(&self, id_hash: &str, audit: &AuditEvent)
        -> Result<bool, StoreError>;
}

macro_rules! page_store_impl {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::pages::PageStore for $store {
            #[tracing::instrument(skip_all)]
            async fn start_page_session(
                &self,
                s: &$crate::store::pages::PageSessionRow,
                audit: &$crate::audit::AuditEvent,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM page_sessions WHERE expires_at <= $1")
                    .bind(s.created_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO page_sessions (id_hash, customer_id, csrf_token, created_at, \
                     expires_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&s.id_hash)
                .bind(&s.customer_id)
                .bind(&s.csrf_token)
                .bind(s.created_at)
                .bind(s.expires_at)
                .execute(&mut *tx)
                .await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip_all)]
            async fn get_page_session(
                &self,
                id_hash: &str,
            ) -> Result<Option<$crate::store::pages::PageSessionRow>, $crate::store::StoreError>
            {
                Ok(sqlx::query_as(
                    "SELECT id_hash, customer_id, csrf_token, created_at, expires_at \
                     FROM page_sessions WHERE id_hash = $1",
                )
                .bind(id_hash)
                .fetch_optional(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all)]
            async fn end_page_session(
                &self,
                id_hash: &str,
                audit: &$crate::audit::AuditEvent,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("DELETE FROM page_sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(&mut *tx)
                    .await?;
                let ended = done.rows_affected() == 1;
                if ended {
                    Self::append_audit_in(&mut tx, audit).await?;
                }
                tx.commit().await?;
                Ok(ended)
            }
        }
    };
}
