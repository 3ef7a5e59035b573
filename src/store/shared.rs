//! The SQL both backends accept, written once.
//!
//! `shared_store_impl!(Type, Database)` expands to the whole `impl Store for Type`. The backend
//! type provides only what differs between dialects, as inherent methods:
//! `pool()`, `begin_write()` (SQLite takes the write lock up front; PostgreSQL uses row locks),
//! `migrator()`, `close_pool()` and `BACKEND`. Placeholders are `$1…`, which both accept.

/// Columns of `admin_keys` as returned to callers.
pub(crate) const ADMIN_KEY_COLUMNS: &str = "id, name, prefix, created_at, last_used_at, revoked_at";

/// Columns of `signing_keys` in struct order.
pub(crate) const SIGNING_KEY_COLUMNS: &str =
    "kid, alg, state, public_jwk, private_key, created_at, activated_at, retired_at";

/// Columns of `oauth_clients` in struct order.
pub(crate) const CLIENT_COLUMNS: &str = "client_id, client_name, redirect_uris, grant_types, \
     scope, token_endpoint_auth_method, jwks, secret_hash, previous_secret_hash, \
     previous_secret_expires_at, created_at, updated_at, disabled_at";

/// Columns of `audit` in struct order.
pub(crate) const AUDIT_COLUMNS: &str = "seq, id, occurred_at, actor_type, actor_id, action, \
     resource_type, resource_id, outcome, reason, interaction_id, prev_hash, hash";

/// Columns of `gateway_decisions` in struct order.
pub(crate) const DECISION_COLUMNS: &str = "seq, sealed_by, occurred_at, client_id, consent_id, \
     outcome, reason, path, interaction_id";

/// How a batch of `n` audit rows is cut into `INSERT` statements: 500 rows at a time (13 values
/// a row stays far below both databases' bind limits), then the rest as powers of two. Each
/// size is its own SQL text; with these ten sizes every statement can stay prepared, where one
/// statement for whatever was left over was compiled afresh on each batch and caching every
/// size (up to 6,500 parameters each) grew a busy node by tens of megabytes.
pub(crate) fn audit_chunks(mut n: usize) -> impl Iterator<Item = usize> {
    const MOST: usize = 500;
    std::iter::from_fn(move || {
        let take = match n {
            0 => return None,
            n if n >= MOST => MOST,
            n => 1 << n.ilog2(),
        };
        n -= take;
        Some(take)
    })
}

macro_rules! shared_store_impl {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Deletes the rows of `table` matching `condition` (on the time `$1`), reading
            /// first so that a call with nothing to delete takes no write lock (the worker's
            /// housekeeping probes several tables each time). Answers how many were deleted.
            async fn purge(
                &self,
                table: &str,
                condition: &str,
                at: $crate::clock::Timestamp,
            ) -> Result<u64, $crate::store::StoreError> {
                let probe = format!("SELECT 1 FROM {table} WHERE {condition} LIMIT 1");
                let due: Option<(i32,)> = sqlx::query_as(&probe)
                    .bind(at)
                    .fetch_optional(self.pool())
                    .await?;
                if due.is_none() {
                    return Ok(0);
                }
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(&format!("DELETE FROM {table} WHERE {condition}"))
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            }

            /// Binds a client row as `$1…$13` in `CLIENT_COLUMNS` order.
            fn bind_client<'q>(
                q: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
                c: &'q $crate::store::ClientRow,
            ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
                q.bind(&c.client_id)
                    .bind(&c.client_name)
                    .bind(&c.redirect_uris)
                    .bind(&c.grant_types)
                    .bind(&c.scope)
                    .bind(&c.token_endpoint_auth_method)
                    .bind(&c.jwks)
                    .bind(&c.secret_hash)
                    .bind(&c.previous_secret_hash)
                    .bind(c.previous_secret_expires_at)
                    .bind(c.created_at)
                    .bind(c.updated_at)
                    .bind(c.disabled_at)
            }

            async fn insert_signing_key_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                k: &$crate::store::SigningKeyRow,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, state, public_jwk, private_key, \
                     created_at, activated_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&k.kid)
                .bind(&k.alg)
                .bind(&k.state)
                .bind(&k.public_jwk)
                .bind(&k.private_key)
                .bind(k.created_at)
                .bind(k.activated_at)
                .bind(k.retired_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// Appends to the audit chain inside the caller's transaction.
            ///
            /// The first statement bumps the single `audit_head` row, which serialises
            /// appenders (a row lock on PostgreSQL, the write lock on SQLite) so the chain
            /// never forks, even across nodes.
            async fn append_audit_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                event: &$crate::audit::AuditEvent,
            ) -> Result<$crate::audit::AuditRecord, $crate::store::StoreError> {
                let head: $crate::audit::AuditHead = sqlx::query_as(
                    "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, last_hash",
                )
                .fetch_one(&mut **tx)
                .await?;
                let record = $crate::audit::chain::seal(head.seq, &head.last_hash, event);
                Self::insert_sealed(tx, &record).await?;
                Ok(record)
            }

            /// `select` narrowed by exact matches, a time window and a seq cursor, newest
            /// first: the shape of both audit listings.
            fn newest_first(
                select: String,
                exact: &[(&str, &Option<String>)],
                window: &$crate::audit::Window,
            ) -> sqlx::QueryBuilder<'static, $db> {
                let mut q = sqlx::QueryBuilder::<$db>::new(select);
                q.push(" WHERE 1 = 1");
                for (column, value) in exact {
                    if let Some(v) = value {
                        q.push(format!(" AND {column} = ")).push_bind(v.clone());
                    }
                }
                if let Some(t) = window.since {
                    q.push(" AND occurred_at >= ").push_bind(t);
                }
                if let Some(t) = window.until {
                    q.push(" AND occurred_at < ").push_bind(t);
                }
                if let Some(s) = window.before_seq {
                    q.push(" AND seq < ").push_bind(s);
                }
                q.push(" ORDER BY seq DESC LIMIT ")
                    .push_bind(i64::from(window.limit));
                q
            }

            /// Appends gateway decisions and the audit row that seals them inside `tx`.
            async fn insert_decisions(
                tx: &mut sqlx::Transaction<'_, $db>,
                decisions: &[$crate::audit::decisions::GatewayDecision],
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::audit::decisions::{seal_event, DecisionRow};
                let n = i64::try_from(decisions.len()).unwrap_or(i64::MAX);
                if n == 0 {
                    return Ok(());
                }
                // One chain seq for the seal and n decision seqs, reserved under the head lock.
                let head: $crate::audit::AuditHead = sqlx::query_as(
                    "UPDATE audit_head SET seq = seq + 1, decisions = decisions + $1 \
                     WHERE id = 1 RETURNING seq, last_hash, decisions",
                )
                .bind(n)
                .fetch_one(&mut **tx)
                .await?;
                let first = head.decisions - n + 1;
                let rows: Vec<DecisionRow<'_>> = decisions
                    .iter()
                    .enumerate()
                    .map(|(i, d)| d.row(first + i as i64, head.seq))
                    .collect();
                let mut rest = rows.as_slice();
                for size in $crate::store::shared::audit_chunks(rows.len()) {
                    let (chunk, after) = rest.split_at(size);
                    rest = after;
                    let mut q = sqlx::QueryBuilder::new(format!(
                        "{} ({}) ",
                        Self::DECISION_BATCH_INSERT,
                        $crate::store::shared::DECISION_COLUMNS
                    ));
                    q.push_values(chunk, |mut b, r| {
                        b.push_bind(r.seq)
                            .push_bind(r.sealed_by)
                            .push_bind(r.occurred_at)
                            .push_bind(r.client_id)
                            .push_bind(r.consent_id)
                            .push_bind(r.outcome)
                            .push_bind(r.reason)
                            .push_bind(r.path)
                            .push_bind(r.interaction_id);
                    });
                    // Kept prepared: there are ten sizes at most (see audit_chunks).
                    q.build().execute(&mut **tx).await?;
                }
                if let Some(event) = seal_event(&rows) {
                    let record = $crate::audit::chain::seal(head.seq, &head.last_hash, &event);
                    Self::insert_sealed(tx, &record).await?;
                }
                Ok(())
            }

            /// Inserts a row sealed at the seq reserved in `audit_head` and makes it the head.
            async fn insert_sealed(
                tx: &mut sqlx::Transaction<'_, $db>,
                record: &$crate::audit::AuditRecord,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO audit (seq, id, occurred_at, actor_type, actor_id, action, \
                     resource_type, resource_id, outcome, reason, interaction_id, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(record.seq)
                .bind(&record.id)
                .bind(record.occurred_at)
                .bind(&record.actor_type)
                .bind(&record.actor_id)
                .bind(&record.action)
                .bind(&record.resource_type)
                .bind(&record.resource_id)
                .bind(&record.outcome)
                .bind(&record.reason)
                .bind(&record.interaction_id)
                .bind(&record.prev_hash)
                .bind(&record.hash)
                .execute(&mut **tx)
                .await?;
                sqlx::query("UPDATE audit_head SET last_hash = $1 WHERE id = 1")
                    .bind(&record.hash)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> $crate::config::Backend {
                Self::BACKEND
            }

            async fn follow_changes(
                &self,
                follower: std::sync::Arc<dyn $crate::events::invalidation::Follower>,
                stop: tokio::sync::watch::Receiver<bool>,
            ) {
                self.follow(follower, stop).await
            }

            #[tracing::instrument(skip_all)]
            async fn migrate(&self) -> Result<(), $crate::store::StoreError> {
                Self::migrator().run(self.pool()).await?;
                Ok(())
            }

            #[tracing::instrument(skip_all)]
            async fn migration_state(
                &self,
            ) -> Result<$crate::store::MigrationState, $crate::store::StoreError> {
                let expected: Vec<_> = Self::migrator()
                    .iter()
                    .filter(|m| !m.migration_type.is_down_migration())
                    .collect();
                let exists: Option<(String,)> = sqlx::query_as(Self::MIGRATIONS_TABLE_EXISTS)
                    .fetch_optional(self.pool())
                    .await?;
                let applied: Vec<i64> = if exists.is_some() {
                    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                        .fetch_all(self.pool())
                        .await?
                } else {
                    Vec::new()
                };
                let pending: Vec<String> = expected
                    .iter()
                    .filter(|m| !applied.contains(&m.version))
                    .map(|m| format!("{} {}", m.version, m.description))
                    .collect();
                Ok($crate::store::MigrationState {
                    expected: expected.len(),
                    applied: expected.len() - pending.len(),
                    pending,
                })
            }

            #[tracing::instrument(skip_all)]
            async fn ping(&self) -> Result<(), $crate::store::StoreError> {
                sqlx::query("SELECT 1").execute(self.pool()).await?;
                Ok(())
            }

            async fn close(&self) {
                self.close_pools().await;
            }

            #[tracing::instrument(skip_all, fields(admin_key.id = %key.id))]
            async fn insert_admin_key(
                &self,
                key: &$crate::store::NewAdminKey,
                audit: &$crate::audit::AuditEvent,
            ) -> Result<$crate::store::AdminKey, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let row: $crate::store::AdminKey = sqlx::query_as(&format!(
                    "INSERT INTO admin_keys (id, name, prefix, key_hash, created_at) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING {}",
                    $crate::store::shared::ADMIN_KEY_COLUMNS
                ))
                .bind(&key.id)
                .bind(&key.name)
                .bind(&key.prefix)
                .bind(&key.key_hash)
                .bind(key.created_at)
                .fetch_one(&mut *tx)
                .await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(row)
            }

            #[tracing::instrument(skip_all)]
            async fn list_admin_keys(
                &self,
            ) -> Result<Vec<$crate::store::AdminKey>, $crate::store::StoreError> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM admin_keys ORDER BY created_at DESC, id DESC",
                    $crate::store::shared::ADMIN_KEY_COLUMNS
                ))
                .fetch_all(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all)]
            async fn find_admin_key_by_hash(
                &self,
                key_hash: &str,
            ) -> Result<Option<$crate::store::AdminKey>, $crate::store::StoreError> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM admin_keys WHERE key_hash = $1",
                    $crate::store::shared::ADMIN_KEY_COLUMNS
                ))
                .bind(key_hash)
                .fetch_optional(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all, fields(admin_key.id = %id))]
            async fn touch_admin_key(
                &self,
                id: &str,
                at: $crate::clock::Timestamp,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query("UPDATE admin_keys SET last_used_at = $1 WHERE id = $2")
                    .bind(at)
                    .bind(id)
                    .execute(self.pool())
                    .await?;
                Ok(())
            }

            #[tracing::instrument(skip_all, fields(admin_key.id = %id))]
            async fn revoke_admin_key(
                &self,
                id: &str,
                at: $crate::clock::Timestamp,
                audit: &$crate::audit::AuditEvent,
            ) -> Result<Option<$crate::store::AdminKey>, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let revoked: Option<$crate::store::AdminKey> = sqlx::query_as(&format!(
                    "UPDATE admin_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
                     RETURNING {}",
                    $crate::store::shared::ADMIN_KEY_COLUMNS
                ))
                .bind(at)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(revoked) = revoked else {
                    tx.rollback().await?;
                    return Ok(sqlx::query_as(&format!(
                        "SELECT {} FROM admin_keys WHERE id = $1",
                        $crate::store::shared::ADMIN_KEY_COLUMNS
                    ))
                    .bind(id)
                    .fetch_optional(self.pool())
                    .await?);
                };
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(Some(revoked))
            }

            #[tracing::instrument(skip_all)]
            async fn list_signing_keys(
                &self,
            ) -> Result<Vec<$crate::store::SigningKeyRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM signing_keys ORDER BY created_at, kid",
                    $crate::store::shared::SIGNING_KEY_COLUMNS
                ))
                .fetch_all(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all)]
            async fn insert_signing_keys(
                &self,
                keys: &[$crate::store::SigningKeyRow],
                audit: &$crate::audit::AuditEvent,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                for k in keys {
                    Self::insert_signing_key_in(&mut tx, k).await?;
                }
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip_all, fields(kid = %active_kid))]
            async fn rotate_signing_keys(
                &self,
                active_kid: &str,
                new_next: &$crate::store::SigningKeyRow,
                at: $crate::clock::Timestamp,
                audit: &$crate::audit::AuditEvent,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let retired = sqlx::query(
                    "UPDATE signing_keys SET state = 'retired', retired_at = $1 \
                     WHERE kid = $2 AND state = 'active'",
                )
                .bind(at)
                .bind(active_kid)
                .execute(&mut *tx)
                .await?;
                if retired.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE signing_keys SET state = 'active', activated_at = $1 WHERE state = 'next'",
                )
                .bind(at)
                .execute(&mut *tx)
                .await?;
                Self::insert_signing_key_in(&mut tx, new_next).await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip_all, fields(client_id = %c.client_id))]
            async fn insert_client(
                &self,
                c: &$crate::store::ClientRow,
                audit: &$crate::audit::AuditEvent,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let sql = format!(
                    "INSERT INTO oauth_clients ({}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    $crate::store::shared::CLIENT_COLUMNS
                );
                Self::bind_client(sqlx::query(&sql), c)
                    .execute(&mut *tx)
                .await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip_all, fields(client_id = %client_id))]
            async fn get_client(
                &self,
                client_id: &str,
            ) -> Result<Option<$crate::store::ClientRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM oauth_clients WHERE client_id = $1",
                    $crate::store::shared::CLIENT_COLUMNS
                ))
                .bind(client_id)
                .fetch_optional(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all)]
            async fn list_clients(
                &self,
                before: Option<($crate::clock::Timestamp, String)>,
                limit: u32,
                include_disabled: bool,
            ) -> Result<Vec<$crate::store::ClientRow>, $crate::store::StoreError> {
                // No cursor: every row is created before the end of time.
                let (at, id) = before.unwrap_or((
                    $crate::clock::Timestamp::from_millis(i64::MAX),
                    String::new(),
                ));
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM oauth_clients \
                     WHERE (created_at < $1 OR (created_at = $1 AND client_id < $2)) \
                     AND ($4 OR disabled_at IS NULL) \
                     ORDER BY created_at DESC, client_id DESC LIMIT $3",
                    $crate::store::shared::CLIENT_COLUMNS
                ))
                .bind(at)
                .bind(id)
                .bind(i64::from(limit))
                .bind(include_disabled)
                .fetch_all(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all, fields(client_id = %c.client_id))]
            async fn update_client(
                &self,
                c: &$crate::store::ClientRow,
                read_at: $crate::clock::Timestamp,
                audit: &$crate::audit::AuditEvent,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                // Same parameters as the insert, in CLIENT_COLUMNS order; created_at ($11)
                // never changes, so it only narrows the WHERE.
                let updated = Self::bind_client(
                    sqlx::query(
                        "UPDATE oauth_clients SET client_name = $2, redirect_uris = $3, \
                         grant_types = $4, scope = $5, token_endpoint_auth_method = $6, \
                         jwks = $7, secret_hash = $8, previous_secret_hash = $9, \
                         previous_secret_expires_at = $10, updated_at = $12, \
                         disabled_at = $13 WHERE client_id = $1 AND created_at = $11 \
                         AND updated_at = $14 AND disabled_at IS NULL",
                    ),
                    c,
                )
                .bind(read_at)
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                Self::append_audit_in(&mut tx, audit).await?;
                Self::notify_in(
                    &mut tx,
                    &[$crate::events::invalidation::Invalidation::Client(
                        c.client_id.clone(),
                    )],
                )
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip_all, fields(client_id = %client_id))]
            async fn revoke_token(
                &self,
                jti: &str,
                client_id: &str,
                expires_at: $crate::clock::Timestamp,
                audit: &$crate::audit::AuditEvent,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let inserted = sqlx::query(
                    "INSERT INTO revoked_tokens (jti, client_id, expires_at, revoked_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING",
                )
                .bind(jti)
                .bind(client_id)
                .bind(expires_at)
                .bind(audit.at)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                Self::append_audit_in(&mut tx, audit).await?;
                Self::notify_in(
                    &mut tx,
                    &[$crate::events::invalidation::Invalidation::Token(jti.to_owned())],
                )
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip_all)]
            async fn use_client_assertion(
                &self,
                client_id: &str,
                jti: &str,
                expires_at: $crate::clock::Timestamp,
                now: $crate::clock::Timestamp,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM client_assertions WHERE expires_at < $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query(
                    "INSERT INTO client_assertions (client_id, jti, expires_at) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(client_id)
                .bind(jti)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(skip_all)]
            async fn is_token_revoked(&self, jti: &str) -> Result<bool, $crate::store::StoreError> {
                let found: Option<(String,)> =
                    sqlx::query_as("SELECT jti FROM revoked_tokens WHERE jti = $1")
                        .bind(jti)
                        .fetch_optional(self.pool())
                        .await?;
                Ok(found.is_some())
            }

            #[tracing::instrument(skip_all, fields(action = event.action))]
            async fn append_audit(
                &self,
                event: &$crate::audit::AuditEvent,
            ) -> Result<$crate::audit::AuditRecord, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let record = Self::append_audit_in(&mut tx, event).await?;
                tx.commit().await?;
                Ok(record)
            }

            #[tracing::instrument(skip_all, fields(events = events.len()))]
            async fn append_audit_batch(
                &self,
                events: &[$crate::audit::AuditEvent],
            ) -> Result<(), $crate::store::StoreError> {
                if events.is_empty() {
                    return Ok(());
                }
                let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
                let mut tx = self.begin_write().await?;
                // Reserve n sequence numbers at once; the head row lock serialises appenders.
                let head: $crate::audit::AuditHead = sqlx::query_as(
                    "UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, last_hash",
                )
                .bind(n)
                .fetch_one(&mut *tx)
                .await?;
                let mut prev = head.last_hash.clone();
                let first = head.seq - n + 1;
                let records: Vec<$crate::audit::AuditRecord> = events
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        let r = $crate::audit::chain::seal(first + i as i64, &prev, e);
                        prev = r.hash.clone();
                        r
                    })
                    .collect();
                let mut rest = records.as_slice();
                for size in $crate::store::shared::audit_chunks(records.len()) {
                    let (chunk, after) = rest.split_at(size);
                    rest = after;
                    let mut q = sqlx::QueryBuilder::new(format!(
                        "{} (seq, id, occurred_at, actor_type, actor_id, action, resource_type, \
                         resource_id, outcome, reason, interaction_id, prev_hash, hash) ",
                        Self::AUDIT_BATCH_INSERT
                    ));
                    q.push_values(chunk, |mut b, r| {
                        b.push_bind(r.seq)
                            .push_bind(&r.id)
                            .push_bind(r.occurred_at)
                            .push_bind(&r.actor_type)
                            .push_bind(&r.actor_id)
                            .push_bind(&r.action)
                            .push_bind(&r.resource_type)
                            .push_bind(&r.resource_id)
                            .push_bind(&r.outcome)
                            .push_bind(&r.reason)
                            .push_bind(&r.interaction_id)
                            .push_bind(&r.prev_hash)
                            .push_bind(&r.hash);
                    });
                    // Kept prepared: there are ten sizes at most (see audit_chunks).
                    q.build().execute(&mut *tx).await?;
                }
                sqlx::query("UPDATE audit_head SET last_hash = $1 WHERE id = 1")
                    .bind(&prev)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip_all, fields(decisions = decisions.len()))]
            async fn append_decisions(
                &self,
                decisions: &[$crate::audit::decisions::GatewayDecision],
            ) -> Result<(), $crate::store::StoreError> {
                if decisions.is_empty() {
                    return Ok(());
                }
                let mut tx = self.begin_write().await?;
                Self::insert_decisions(&mut tx, decisions).await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip_all, fields(decisions = decisions.len()))]
            async fn append_spilled(
                &self,
                digest: &str,
                decisions: &[$crate::audit::decisions::GatewayDecision],
                now: $crate::clock::Timestamp,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let first = sqlx::query(
                    "INSERT INTO spill_replays (digest, decisions, replayed_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (digest) DO NOTHING",
                )
                .bind(digest)
                .bind(i64::try_from(decisions.len()).unwrap_or(i64::MAX))
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !first {
                    // Written by an earlier start (the transaction rolls back on drop).
                    return Ok(false);
                }
                Self::insert_decisions(&mut tx, decisions).await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip_all)]
            async fn list_decisions(
                &self,
                f: &$crate::audit::decisions::DecisionFilter,
            ) -> Result<Vec<$crate::audit::decisions::DecisionRecord>, $crate::store::StoreError>
            {
                let select = format!(
                    "SELECT {} FROM gateway_decisions",
                    $crate::store::shared::DECISION_COLUMNS
                );
                let text_filters = [
                    ("client_id", &f.client_id),
                    ("consent_id", &f.consent_id),
                    ("outcome", &f.outcome),
                    ("reason", &f.reason),
                    ("interaction_id", &f.interaction_id),
                ];
                let mut q = Self::newest_first(select, &text_filters, &f.window);
                Ok(q.build_query_as().fetch_all(self.pool()).await?)
            }

            #[tracing::instrument(skip_all)]
            async fn decisions_between(
                &self,
                first: i64,
                last: i64,
                limit: u32,
            ) -> Result<Vec<$crate::audit::decisions::DecisionRecord>, $crate::store::StoreError>
            {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM gateway_decisions WHERE seq >= $1 AND seq <= $2 \
                     ORDER BY seq LIMIT $3",
                    $crate::store::shared::DECISION_COLUMNS
                ))
                .bind(first)
                .bind(last)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all)]
            async fn list_audit(
                &self,
                f: &$crate::audit::AuditFilter,
            ) -> Result<Vec<$crate::audit::AuditRecord>, $crate::store::StoreError> {
                let select = format!(
                    "SELECT {} FROM audit",
                    $crate::store::shared::AUDIT_COLUMNS
                );
                let text_filters = [
                    ("actor_type", &f.actor_type),
                    ("actor_id", &f.actor_id),
                    ("action", &f.action),
                    ("resource_type", &f.resource_type),
                    ("resource_id", &f.resource_id),
                    ("outcome", &f.outcome),
                    ("interaction_id", &f.interaction_id),
                ];
                let mut q = Self::newest_first(select, &text_filters, &f.window);
                Ok(q.build_query_as().fetch_all(self.pool()).await?)
            }

            #[tracing::instrument(skip_all)]
            async fn audit_chain_page(
                &self,
                after_seq: i64,
                limit: u32,
            ) -> Result<Vec<$crate::audit::AuditRecord>, $crate::store::StoreError> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
                    $crate::store::shared::AUDIT_COLUMNS
                ))
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all)]
            async fn audit_head(
                &self,
            ) -> Result<$crate::audit::AuditHead, $crate::store::StoreError> {
                Ok(
                    sqlx::query_as(
                        "SELECT seq, last_hash, decisions FROM audit_head WHERE id = 1",
                    )
                        .fetch_one(self.pool())
                        .await?,
                )
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::audit_chunks;

    #[test]
    fn audit_batches_are_cut_into_few_statement_sizes_covering_every_row() {
        let mut sizes = std::collections::BTreeSet::new();
        for n in 0..=2_100 {
            let chunks: Vec<usize> = audit_chunks(n).collect();
            assert_eq!(chunks.iter().sum::<usize>(), n, "rows of a batch of {n}");
            assert!(chunks.iter().all(|&c| c > 0 && c <= 500));
            sizes.extend(chunks);
        }
        assert_eq!(
            sizes.into_iter().collect::<Vec<_>>(),
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 500]
        );
        assert_eq!(
            audit_chunks(1_300).collect::<Vec<_>>(),
            [500, 500, 256, 32, 8, 4]
        );
    }
}
