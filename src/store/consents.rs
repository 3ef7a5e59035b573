//! Storage of consents, authorization requests, authorization codes and refresh tokens.
//!
//! Consent changes are optimistic (`version`), and each writes its events, audit rows and
//! side effects (an authorization code, the decided request, revoked token families) in the
//! same transaction. Codes, request URIs, challenges and refresh tokens are stored as hashes
//! and consumed with a conditional update, so each is used at most once across nodes.

use async_trait::async_trait;

use super::events::EventRow;
use super::StoreError;
use crate::audit::AuditEvent;
use crate::clock::Timestamp;

/// An account-access consent as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ConsentRow {
    /// `aac-…`.
    pub consent_id: String,
    /// The TPP that created it.
    pub client_id: String,
    /// `AwaitingAuthorisation`, `Authorised`, `Rejected` or `Revoked`.
    pub status: String,
    /// Space-separated permission codes.
    pub permissions: String,
    /// The `Data` object as accepted (JSON).
    pub data: String,
    /// The `Risk` object (JSON).
    pub risk: String,
    /// `ExpirationDateTime`.
    pub expiration_at: Option<Timestamp>,
    /// The customer who authorised it.
    pub customer_id: Option<String>,
    /// Space-separated account ids it covers.
    pub account_ids: Option<String>,
    /// Created at.
    pub created_at: Timestamp,
    /// Last status change.
    pub status_updated_at: Timestamp,
    /// Not authorisable after this.
    pub authorisable_until: Timestamp,
    /// Authorised at.
    pub authorised_at: Option<Timestamp>,
    /// Deleted by the TPP at.
    pub deleted_at: Option<Timestamp>,
    /// Why it was revoked.
    pub revoked_reason: Option<String>,
    /// `x-fapi-customer-ip-address` at creation.
    pub customer_ip: Option<String>,
    /// `x-fapi-auth-date` at creation.
    pub auth_date: Option<String>,
    /// Bumped on every change.
    pub version: i64,
}

/// An authorization request (pushed or direct).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AuthRequestRow {
    /// `ar_…`.
    pub id: String,
    /// SHA-256 of the PAR `request_uri`.
    pub request_uri_hash: Option<String>,
    /// SHA-256 of the challenge given to the bank's UI.
    pub challenge_hash: Option<String>,
    /// Client.
    pub client_id: String,
    /// Registered redirect URI it will return to.
    pub redirect_uri: String,
    /// The TPP's `state`.
    pub state: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// Requested scope.
    pub scope: String,
    /// The consent to authorise.
    pub consent_id: String,
    /// Created at.
    pub created_at: Timestamp,
    /// The request URI is usable until then.
    pub request_expires_at: Timestamp,
    /// The challenge is usable until then.
    pub challenge_expires_at: Option<Timestamp>,
    /// Request URI consumed at.
    pub used_at: Option<Timestamp>,
    /// Accepted or rejected at.
    pub decided_at: Option<Timestamp>,
}

/// An authorization code.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CodeRow {
    /// SHA-256 of the code.
    pub code_hash: String,
    /// Client.
    pub client_id: String,
    /// Must be repeated at the exchange.
    pub redirect_uri: String,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// Consent.
    pub consent_id: String,
    /// Customer.
    pub customer_id: String,
    /// Scope.
    pub scope: String,
    /// Token family its tokens belong to.
    pub family_id: String,
    /// Issued at.
    pub created_at: Timestamp,
    /// At most 60 s after issue.
    pub expires_at: Timestamp,
    /// Exchanged at.
    pub used_at: Option<Timestamp>,
}

/// A refresh token.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RefreshRow {
    /// SHA-256 of the token.
    pub token_hash: String,
    /// Family.
    pub family_id: String,
    /// Client.
    pub client_id: String,
    /// Consent.
    pub consent_id: String,
    /// Customer.
    pub customer_id: String,
    /// Scope.
    pub scope: String,
    /// Issued at.
    pub created_at: Timestamp,
    /// Expires at.
    pub expires_at: Timestamp,
    /// Rotated (used) at.
    pub used_at: Option<Timestamp>,
    /// Revoked at.
    pub revoked_at: Option<Timestamp>,
}

/// What consuming a single-use credential found.
#[derive(Clone, Debug)]
pub enum Redeemed<T> {
    /// First use: it is now marked used.
    Fresh(T),
    /// Already used (or revoked): a replay.
    Reused(T),
    /// No such credential.
    Unknown,
}

/// Everything a consent change writes.
#[derive(Debug, Default)]
pub struct ConsentWrite<'a> {
    /// The consent's new state (`None`: no consent change).
    pub consent: Option<&'a ConsentRow>,
    /// The version read.
    pub expected_version: i64,
    /// An authorization code to store.
    pub code: Option<CodeRow>,
    /// The authorization request this decides.
    pub decide_request: Option<String>,
    /// Revoke every refresh token and access token issued under the consent.
    pub revoke_tokens: bool,
    /// Outbox events.
    pub events: Vec<EventRow>,
    /// Audit rows.
    pub audit: Vec<AuditEvent>,
}

/// An access token being issued under a consent, with what travels with it.
#[derive(Debug)]
pub struct Issuance<'a> {
    /// The access token's `jti`.
    pub jti: &'a str,
    /// Consent.
    pub consent_id: &'a str,
    /// Family, for code and refresh grants.
    pub family_id: Option<&'a str>,
    /// Client.
    pub client_id: &'a str,
    /// Access token expiry.
    pub expires_at: Timestamp,
    /// A new refresh token.
    pub refresh: Option<RefreshRow>,
    /// The single-use credential this issuance spends, consumed in the same transaction: a
    /// failure anywhere before the commit leaves it unspent, so the client's retry is not
    /// taken for a replay (which would revoke the family).
    pub redeem: Option<Redemption<'a>>,
    /// The audit row of the issuance.
    pub audit: &'a AuditEvent,
}

/// A single-use credential an issuance spends, by its hash.
#[derive(Clone, Copy, Debug)]
pub enum Redemption<'a> {
    /// An authorization code.
    Code(&'a str),
    /// A refresh token (rotated: spent by the issuance of its successor).
    Refresh(&'a str),
}

/// Consent and authorization-flow storage.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// Stores a new consent.
    async fn insert_consent(
        &self,
        consent: &ConsentRow,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// A consent, deleted or not.
    async fn get_consent(&self, consent_id: &str) -> Result<Option<ConsentRow>, StoreError>;
    /// A customer's consents, newest first.
    async fn list_customer_consents(
        &self,
        customer_id: &str,
    ) -> Result<Vec<ConsentRow>, StoreError>;
    /// Applies a consent change if its version is still current; `false` when it is not.
    async fn write_consent(&self, write: &ConsentWrite<'_>) -> Result<bool, StoreError>;
    /// Stores an authorization request.
    async fn insert_auth_request(&self, row: &AuthRequestRow) -> Result<(), StoreError>;
    /// Consumes a PAR request URI of `client_id` still valid at `now`, attaching a challenge.
    async fn take_request_uri(
        &self,
        request_uri_hash: &str,
        client_id: &str,
        challenge_hash: &str,
        challenge_expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<Option<AuthRequestRow>, StoreError>;
    /// An undecided request by its challenge hash.
    async fn get_auth_request_by_challenge(
        &self,
        challenge_hash: &str,
    ) -> Result<Option<AuthRequestRow>, StoreError>;
    /// Deletes what no request can use any more, expired before `before`: authorization
    /// codes and requests, access-token records, refresh tokens and revoked-token entries
    /// (a token past its expiry is refused for that alone). Answers how many rows went. A
    /// used refresh token presented after its row is gone is refused as unknown, not as a
    /// replay: replay detection lasts as long as the token would have.
    async fn purge_expired_credentials(&self, before: Timestamp) -> Result<u64, StoreError>;
    /// A decided request by its challenge hash (for the same answer sent again).
    async fn get_decided_request(
        &self,
        challenge_hash: &str,
    ) -> Result<Option<AuthRequestRow>, StoreError>;
    /// Replaces the code issued for `consent_id` to `customer_id`, while it is unused and
    /// unexpired, with `code_hash` (valid from `now` to `expires_at`), audited with `audit` in
    /// the same transaction; `false` (nothing changed) when there is no such code. The code it
    /// replaces no longer works.
    async fn reissue_code(
        &self,
        consent_id: &str,
        customer_id: &str,
        code_hash: &str,
        now: Timestamp,
        expires_at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// An authorization code by its hash, without consuming it.
    async fn get_code(&self, code_hash: &str) -> Result<Option<CodeRow>, StoreError>;
    /// Consumes an authorization code.
    async fn redeem_code(
        &self,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<Redeemed<CodeRow>, StoreError>;
    /// Consumes a refresh token (reused when it was used or revoked before).
    async fn redeem_refresh(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Redeemed<RefreshRow>, StoreError>;
    /// A refresh token by its hash, without consuming it.
    async fn get_refresh(&self, token_hash: &str) -> Result<Option<RefreshRow>, StoreError>;
    /// Revokes a token family: its refresh tokens, and its access tokens onto the deny list.
    async fn revoke_family(
        &self,
        family_id: &str,
        now: Timestamp,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// Records a consent-bound access token (and its refresh token) with its audit row,
    /// spending `issuance.redeem` in the same transaction; `false` (nothing written) when that
    /// credential was already spent or revoked.
    async fn record_issuance(&self, issuance: &Issuance<'_>) -> Result<bool, StoreError>;
}

/// Columns of `consents` in struct order.
pub(crate) const CONSENT_COLUMNS: &str = "consent_id, client_id, status, permissions, data, risk, \
     expiration_at, customer_id, account_ids, created_at, status_updated_at, authorisable_until, \
     authorised_at, deleted_at, revoked_reason, customer_ip, auth_date, version";

/// Columns of `authorization_requests` in struct order.
pub(crate) const AUTH_REQUEST_COLUMNS: &str = "id, request_uri_hash, challenge_hash, client_id, \
     redirect_uri, state, code_challenge, scope, consent_id, created_at, request_expires_at, \
     challenge_expires_at, used_at, decided_at";

/// Columns of `authorization_codes` in struct order.
pub(crate) const CODE_COLUMNS: &str = "code_hash, client_id, redirect_uri, code_challenge, \
     consent_id, customer_id, scope, family_id, created_at, expires_at, used_at";

/// Columns of `refresh_tokens` in struct order.
pub(crate) const REFRESH_COLUMNS: &str = "token_hash, family_id, client_id, consent_id, \
     customer_id, scope, created_at, expires_at, used_at, revoked_at";

macro_rules! consent_store_impl {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Revokes refresh tokens and denies access tokens matching `column = value`
            /// (`family_id` or `consent_id`).
            async fn revoke_tokens_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                column: &str,
                value: &str,
                now: $crate::clock::Timestamp,
            ) -> Result<(), $crate::store::StoreError> {
                // Until a pass finds no refresh token left to revoke. An issuance in flight
                // has spent (and so locked) one of these refresh tokens: the first pass waits
                // for its commit, but on PostgreSQL its statement cannot see the rows that
                // issuance inserted (read committed: the snapshot is taken at the statement's
                // start). The next pass's statements can, so the successor it handed out is
                // revoked too instead of surviving the revocation of its family.
                loop {
                    let revoked = sqlx::query(&format!(
                        "UPDATE refresh_tokens SET revoked_at = $1 \
                         WHERE {column} = $2 AND revoked_at IS NULL"
                    ))
                    .bind(now)
                    .bind(value)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                    sqlx::query(&format!(
                        "INSERT INTO revoked_tokens (jti, client_id, expires_at, revoked_at) \
                         SELECT jti, client_id, expires_at, $1 FROM consent_tokens \
                         WHERE {column} = $2 AND expires_at > $1 ON CONFLICT DO NOTHING"
                    ))
                    .bind(now)
                    .bind(value)
                    .execute(&mut **tx)
                    .await?;
                    if revoked == 0 {
                        break;
                    }
                }
                Self::notify_in(tx, &[$crate::events::invalidation::Invalidation::Tokens]).await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::consents::ConsentStore for $store {
            #[tracing::instrument(skip_all, fields(consent_id = %c.consent_id))]
            async fn insert_consent(
                &self,
                c: &$crate::store::consents::ConsentRow,
                audit: &$crate::audit::AuditEvent,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(&format!(
                    "INSERT INTO consents ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                     $10, $11, $12, $13, $14, $15, $16, $17, $18)",
                    $crate::store::consents::CONSENT_COLUMNS
                ))
                .bind(&c.consent_id)
                .bind(&c.client_id)
                .bind(&c.status)
                .bind(&c.permissions)
                .bind(&c.data)
                .bind(&c.risk)
                .bind(c.expiration_at)
                .bind(&c.customer_id)
                .bind(&c.account_ids)
                .bind(c.created_at)
                .bind(c.status_updated_at)
                .bind(c.authorisable_until)
                .bind(c.authorised_at)
                .bind(c.deleted_at)
                .bind(&c.revoked_reason)
                .bind(&c.customer_ip)
                .bind(&c.auth_date)
                .bind(c.version)
                .execute(&mut *tx)
                .await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip_all)]
            async fn get_consent(
                &self,
                consent_id: &str,
            ) -> Result<Option<$crate::store::consents::ConsentRow>, $crate::store::StoreError>
            {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM consents WHERE consent_id = $1",
                    $crate::store::consents::CONSENT_COLUMNS
                ))
                .bind(consent_id)
                .fetch_optional(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all)]
            async fn list_customer_consents(
                &self,
                customer_id: &str,
            ) -> Result<Vec<$crate::store::consents::ConsentRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM consents WHERE customer_id = $1 \
                     ORDER BY created_at DESC, consent_id DESC",
                    $crate::store::consents::CONSENT_COLUMNS
                ))
                .bind(customer_id)
                .fetch_all(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all)]
            async fn write_consent(
                &self,
                w: &$crate::store::consents::ConsentWrite<'_>,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let now = w
                    .consent
                    .map(|c| c.status_updated_at)
                    .unwrap_or($crate::clock::Timestamp::from_millis(0));
                if let Some(c) = w.consent {
                    let done = sqlx::query(
                        "UPDATE consents SET status = $1, customer_id = $2, account_ids = $3, \
                         status_updated_at = $4, authorised_at = $5, deleted_at = $6, \
                         revoked_reason = $7, version = version + 1 \
                         WHERE consent_id = $8 AND version = $9",
                    )
                    .bind(&c.status)
                    .bind(&c.customer_id)
                    .bind(&c.account_ids)
                    .bind(c.status_updated_at)
                    .bind(c.authorised_at)
                    .bind(c.deleted_at)
                    .bind(&c.revoked_reason)
                    .bind(&c.consent_id)
                    .bind(w.expected_version)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() != 1 {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                    if w.revoke_tokens {
                        Self::revoke_tokens_in(&mut tx, "consent_id", &c.consent_id, now).await?;
                    }
                }
                if let Some(id) = &w.decide_request {
                    let done = sqlx::query(
                        "UPDATE authorization_requests SET decided_at = $1 \
                         WHERE id = $2 AND decided_at IS NULL",
                    )
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() != 1 {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                }
                if let Some(code) = &w.code {
                    sqlx::query(&format!(
                        "INSERT INTO authorization_codes ({}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                        $crate::store::consents::CODE_COLUMNS
                    ))
                    .bind(&code.code_hash)
                    .bind(&code.client_id)
                    .bind(&code.redirect_uri)
                    .bind(&code.code_challenge)
                    .bind(&code.consent_id)
                    .bind(&code.customer_id)
                    .bind(&code.scope)
                    .bind(&code.family_id)
                    .bind(code.created_at)
                    .bind(code.expires_at)
                    .bind(code.used_at)
                    .execute(&mut *tx)
                    .await?;
                }
                Self::insert_events_in(&mut tx, &w.events).await?;
                for a in &w.audit {
                    Self::append_audit_in(&mut tx, a).await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip_all)]
            async fn insert_auth_request(
                &self,
                r: &$crate::store::consents::AuthRequestRow,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(&format!(
                    "INSERT INTO authorization_requests ({}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                    $crate::store::consents::AUTH_REQUEST_COLUMNS
                ))
                .bind(&r.id)
                .bind(&r.request_uri_hash)
                .bind(&r.challenge_hash)
                .bind(&r.client_id)
                .bind(&r.redirect_uri)
                .bind(&r.state)
                .bind(&r.code_challenge)
                .bind(&r.scope)
                .bind(&r.consent_id)
                .bind(r.created_at)
                .bind(r.request_expires_at)
                .bind(r.challenge_expires_at)
                .bind(r.used_at)
                .bind(r.decided_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip_all)]
            async fn take_request_uri(
                &self,
                request_uri_hash: &str,
                client_id: &str,
                challenge_hash: &str,
                challenge_expires_at: $crate::clock::Timestamp,
                now: $crate::clock::Timestamp,
            ) -> Result<Option<$crate::store::consents::AuthRequestRow>, $crate::store::StoreError>
            {
                let mut tx = self.begin_write().await?;
                let row = sqlx::query_as(&format!(
                    "UPDATE authorization_requests SET used_at = $1, challenge_hash = $2, \
                     challenge_expires_at = $3 \
                     WHERE request_uri_hash = $4 AND client_id = $5 AND used_at IS NULL \
                     AND request_expires_at > $1 RETURNING {}",
                    $crate::store::consents::AUTH_REQUEST_COLUMNS
                ))
                .bind(now)
                .bind(challenge_hash)
                .bind(challenge_expires_at)
                .bind(request_uri_hash)
                .bind(client_id)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(row)
            }

            #[tracing::instrument(skip_all)]
            async fn get_auth_request_by_challenge(
                &self,
                challenge_hash: &str,
            ) -> Result<Option<$crate::store::consents::AuthRequestRow>, $crate::store::StoreError>
            {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM authorization_requests WHERE challenge_hash = $1 \
                     AND decided_at IS NULL",
                    $crate::store::consents::AUTH_REQUEST_COLUMNS
                ))
                .bind(challenge_hash)
                .fetch_optional(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all)]
            async fn purge_expired_credentials(
                &self,
                before: $crate::clock::Timestamp,
            ) -> Result<u64, $crate::store::StoreError> {
                let mut gone = 0;
                for (table, condition) in [
                    ("authorization_codes", "expires_at < $1"),
                    ("authorization_requests", "request_expires_at < $1"),
                    ("consent_tokens", "expires_at < $1"),
                    ("refresh_tokens", "expires_at < $1"),
                    ("revoked_tokens", "expires_at < $1"),
                ] {
                    gone += self.purge(table, condition, before).await?;
                }
                Ok(gone)
            }

            #[tracing::instrument(skip_all)]
            async fn get_decided_request(
                &self,
                challenge_hash: &str,
            ) -> Result<Option<$crate::store::consents::AuthRequestRow>, $crate::store::StoreError>
            {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM authorization_requests WHERE challenge_hash = $1 \
                     AND decided_at IS NOT NULL",
                    $crate::store::consents::AUTH_REQUEST_COLUMNS
                ))
                .bind(challenge_hash)
                .fetch_optional(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all)]
            async fn reissue_code(
                &self,
                consent_id: &str,
                customer_id: &str,
                code_hash: &str,
                now: $crate::clock::Timestamp,
                expires_at: $crate::clock::Timestamp,
                audit: &$crate::audit::AuditEvent,
            ) -> Result<bool, $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE authorization_codes SET code_hash = $1, created_at = $2, \
                     expires_at = $3 WHERE consent_id = $4 AND customer_id = $5 \
                     AND used_at IS NULL AND expires_at > $2",
                )
                .bind(code_hash)
                .bind(now)
                .bind(expires_at)
                .bind(consent_id)
                .bind(customer_id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip_all)]
            async fn get_code(
                &self,
                code_hash: &str,
            ) -> Result<Option<$crate::store::consents::CodeRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM authorization_codes WHERE code_hash = $1",
                    $crate::store::consents::CODE_COLUMNS
                ))
                .bind(code_hash)
                .fetch_optional(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all)]
            async fn redeem_code(
                &self,
                code_hash: &str,
                now: $crate::clock::Timestamp,
            ) -> Result<
                $crate::store::consents::Redeemed<$crate::store::consents::CodeRow>,
                $crate::store::StoreError,
            > {
                let mut tx = self.begin_write().await?;
                let fresh: Option<$crate::store::consents::CodeRow> = sqlx::query_as(&format!(
                    "UPDATE authorization_codes SET used_at = $1 \
                     WHERE code_hash = $2 AND used_at IS NULL RETURNING {}",
                    $crate::store::consents::CODE_COLUMNS
                ))
                .bind(now)
                .bind(code_hash)
                .fetch_optional(&mut *tx)
                .await?;
                let out = match fresh {
                    Some(c) => $crate::store::consents::Redeemed::Fresh(c),
                    None => {
                        let used: Option<$crate::store::consents::CodeRow> =
                            sqlx::query_as(&format!(
                                "SELECT {} FROM authorization_codes WHERE code_hash = $1",
                                $crate::store::consents::CODE_COLUMNS
                            ))
                            .bind(code_hash)
                            .fetch_optional(&mut *tx)
                            .await?;
                        match used {
                            Some(c) => $crate::store::consents::Redeemed::Reused(c),
                            None => $crate::store::consents::Redeemed::Unknown,
                        }
                    }
                };
                tx.commit().await?;
                Ok(out)
            }

            #[tracing::instrument(skip_all)]
            async fn redeem_refresh(
                &self,
                token_hash: &str,
                now: $crate::clock::Timestamp,
            ) -> Result<
                $crate::store::consents::Redeemed<$crate::store::consents::RefreshRow>,
                $crate::store::StoreError,
            > {
                let mut tx = self.begin_write().await?;
                let fresh: Option<$crate::store::consents::RefreshRow> = sqlx::query_as(&format!(
                    "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 \
                         AND used_at IS NULL AND revoked_at IS NULL RETURNING {}",
                    $crate::store::consents::REFRESH_COLUMNS
                ))
                .bind(now)
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
                let out = match fresh {
                    Some(r) => $crate::store::consents::Redeemed::Fresh(r),
                    None => {
                        let old: Option<$crate::store::consents::RefreshRow> =
                            sqlx::query_as(&format!(
                                "SELECT {} FROM refresh_tokens WHERE token_hash = $1",
                                $crate::store::consents::REFRESH_COLUMNS
                            ))
                            .bind(token_hash)
                            .fetch_optional(&mut *tx)
                            .await?;
                        match old {
                            Some(r) => $crate::store::consents::Redeemed::Reused(r),
                            None => $crate::store::consents::Redeemed::Unknown,
                        }
                    }
                };
                tx.commit().await?;
                Ok(out)
            }

            #[tracing::instrument(skip_all)]
            async fn get_refresh(
                &self,
                token_hash: &str,
            ) -> Result<Option<$crate::store::consents::RefreshRow>, $crate::store::StoreError>
            {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM refresh_tokens WHERE token_hash = $1",
                    $crate::store::consents::REFRESH_COLUMNS
                ))
                .bind(token_hash)
                .fetch_optional(self.pool())
                .await?)
            }

            #[tracing::instrument(skip_all)]
            async fn revoke_family(
                &self,
                family_id: &str,
                now: $crate::clock::Timestamp,
                audit: &$crate::audit::AuditEvent,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                Self::revoke_tokens_in(&mut tx, "family_id", family_id, now).await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip_all)]
            async fn record_issuance(
                &self,
                i: &$crate::store::consents::Issuance<'_>,
            ) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::consents::Redemption;
                let mut tx = self.begin_write().await?;
                // Spent first: on PostgreSQL this locks the credential's row, so a family
                // revocation running meanwhile waits for this commit and then sees (and
                // revokes) what it wrote (see `revoke_tokens_in`).
                let spent = match i.redeem {
                    None => true,
                    Some(Redemption::Code(hash)) => {
                        sqlx::query(
                            "UPDATE authorization_codes SET used_at = $1 \
                             WHERE code_hash = $2 AND used_at IS NULL",
                        )
                        .bind(i.audit.at)
                        .bind(hash)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                            == 1
                    }
                    Some(Redemption::Refresh(hash)) => {
                        sqlx::query(
                            "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 \
                             AND used_at IS NULL AND revoked_at IS NULL",
                        )
                        .bind(i.audit.at)
                        .bind(hash)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                            == 1
                    }
                };
                if !spent {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO consent_tokens (jti, consent_id, family_id, client_id, \
                     expires_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(i.jti)
                .bind(i.consent_id)
                .bind(i.family_id)
                .bind(i.client_id)
                .bind(i.expires_at)
                .execute(&mut *tx)
                .await?;
                if let Some(r) = &i.refresh {
                    sqlx::query(&format!(
                        "INSERT INTO refresh_tokens ({}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                        $crate::store::consents::REFRESH_COLUMNS
                    ))
                    .bind(&r.token_hash)
                    .bind(&r.family_id)
                    .bind(&r.client_id)
                    .bind(&r.consent_id)
                    .bind(&r.customer_id)
                    .bind(&r.scope)
                    .bind(r.created_at)
                    .bind(r.expires_at)
                    .bind(r.used_at)
                    .bind(r.revoked_at)
                    .execute(&mut *tx)
                    .await?;
                }
                Self::append_audit_in(&mut tx, i.audit).await?;
                tx.commit().await?;
                Ok(true)
            }
        }
    };
}
