//! The gateway decides without a database round trip: verified tokens, consents and KYC
//! statuses are kept in memory, and every change that could turn an allow into a deny removes
//! the entry it affects.
//!
//! - **Where the news comes from.** On the node that made a change, at once (before its HTTP
//!   answer leaves: [`crate::state::AppState::committed`] and the token-revocation paths). On
//!   other nodes, through PostgreSQL `LISTEN/NOTIFY` ([`crate::events::invalidation`]). A
//!   listener that loses its connection drops every entry, and until it listens again the
//!   caches are bypassed, so a missed notification can never keep a revoked consent alive.
//! - **How stale it can get.** Each entry lives at most `gateway.cache_ttl` (real time), so
//!   even a notification lost inside PostgreSQL is outlived. `0s` turns caching off.
//! - **Time-based checks run on every request.** A cached consent's expiry and a cached
//!   token's `exp`/`nbf` are compared with obgate's clock each time; only the database read is
//!   saved, never a check.
//! - **No stale refill.** A load that started before an invalidation never writes its (old)
//!   answer back: a generation counter, read before the load and checked after the insert,
//!   catches the race.
//!
//! The token endpoint reads client registrations from here too ([`DecisionCache::client`]):
//! it was one database round trip per issued token, and the same news (a client disabled,
//! its secret rotated) removes the entry on every node.
//!
//! Caches are bounded (`gateway.cache_entries` per cache; quick_cache's S3-FIFO chooses what
//! goes). quick_cache keeps an entry in a few dozen bytes beside its key and value, where the
//! previous cache (moka) spent several hundred on its bookkeeping; with 100,000 tokens in
//! rotation that was most of the node's memory (BENCHMARKS.md, scale row). The time-to-live
//! is checked on every read: an entry past it is removed and reads as absent.

use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::events::invalidation::{Follower, Invalidation};
use crate::kyc::KycStatus;
use crate::metrics::Metrics;
use crate::oauth::jwt::{AccessClaims, TokenError};
use crate::state::AppState;
use crate::store::consents::ConsentRow;
use crate::store::ClientRow;
use crate::store::StoreError;

/// The gateway's copy of a consent: only what its decisions read. A row carries the whole
/// request (`Data`, `Risk`, the customer's IP…); with 100,000 consents in use that was a
/// hundred megabytes of copies no decision looks at, and the transaction window was parsed
/// out of `Data` on every request.
#[derive(Debug)]
pub struct GatewayConsent {
    /// The TPP that created it.
    pub client_id: String,
    /// Its status code.
    pub status: String,
    /// Deleted by the TPP.
    pub deleted: bool,
    /// `ExpirationDateTime`.
    pub expiration_at: Option<crate::clock::Timestamp>,
    /// The customer who authorised it.
    pub customer_id: Option<String>,
    /// Space-separated permission codes, as stored; shared with each request's grant. One
    /// string, not a list of them: a list cost ~0.5 KB more per cached consent, 36 MiB at
    /// the scale benchmark's 100,000.
    pub permissions: Arc<str>,
    /// Space-separated account ids, as stored (likewise).
    pub account_ids: Arc<str>,
    /// `TransactionFromDateTime`.
    pub from: Option<crate::clock::Timestamp>,
    /// `TransactionToDateTime`.
    pub to: Option<crate::clock::Timestamp>,
}

impl From<ConsentRow> for GatewayConsent {
    fn from(row: ConsentRow) -> Self {
        let data: serde_json::Value = serde_json::from_str(&row.data).unwrap_or_default();
        let date = |f: &str| {
            data.get(f)
                .and_then(|v| v.as_str())
                .and_then(crate::consent::parse_date_time)
        };
        Self {
            from: date("TransactionFromDateTime"),
            to: date("TransactionToDateTime"),
            deleted: row.deleted_at.is_some(),
            expiration_at: row.expiration_at,
            client_id: row.client_id,
            status: row.status,
            customer_id: row.customer_id,
            permissions: row.permissions.into(),
            account_ids: row.account_ids.unwrap_or_default().into(),
        }
    }
}

impl GatewayConsent {
    /// What [`crate::consent::usable`] decides on.
    pub fn standing(&self) -> crate::consent::Standing<'_> {
        crate::consent::Standing {
            client_id: &self.client_id,
            status: &self.status,
            deleted: self.deleted,
            expiration_at: self.expiration_at,
        }
    }
}

/// The gateway's decision caches.
pub struct DecisionCache {
    enabled: bool,
    live: AtomicBool,
    generation: AtomicU64,
    tokens: Cache<[u8; 32], Arc<AccessClaims>>,
    revoked: Cache<String, ()>,
    consents: Cache<String, Arc<GatewayConsent>>,
    kyc: Cache<String, KycStatus>,
    clients: Cache<String, Arc<ClientRow>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for DecisionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionCache")
            .field("enabled", &self.enabled)
            .field("live", &self.live.load(Ordering::Relaxed))
            .field("tokens", &self.tokens.entry_count())
            .field("consents", &self.consents.entry_count())
            .field("kyc", &self.kyc.entry_count())
            .finish()
    }
}

/// A bounded concurrent cache whose entries live at most `ttl` from their insertion.
struct Cache<K, V> {
    entries: quick_cache::sync::Cache<K, (V, Instant)>,
    ttl: Duration,
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone,
    V: Clone,
{
    fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + quick_cache::Equivalent<K> + ?Sized,
    {
        let (value, born) = self.entries.get(key)?;
        if born.elapsed() < self.ttl {
            return Some(value);
        }
        self.entries.remove(key);
        None
    }

    fn contains_key<Q>(&self, key: &Q) -> bool
    where
        Q: Hash + quick_cache::Equivalent<K> + ?Sized,
    {
        self.get(key).is_some()
    }

    fn insert(&self, key: K, value: V) {
        self.entries.insert(key, (value, Instant::now()));
    }

    fn invalidate<Q>(&self, key: &Q)
    where
        Q: Hash + quick_cache::Equivalent<K> + ?Sized,
    {
        self.entries.remove(key);
    }

    fn invalidate_all(&self) {
        self.entries.clear();
    }

    fn entry_count(&self) -> usize {
        self.entries.len()
    }
}

fn cache<K, V>(ttl: Duration, capacity: u64) -> Cache<K, V>
where
    K: Hash + Eq + Clone,
    V: Clone,
{
    Cache {
        entries: quick_cache::sync::Cache::new(usize::try_from(capacity).unwrap_or(usize::MAX)),
        ttl: ttl.max(Duration::from_millis(1)),
    }
}

impl DecisionCache {
    /// Caches living `ttl` (zero: no caching) with at most `capacity` entries each.
    /// `needs_feed`: entries may only be served while a change feed is connected (several
    /// nodes on PostgreSQL); without one (SQLite, one node) they are live at once.
    pub fn new(ttl: Duration, capacity: u64, needs_feed: bool, metrics: Arc<Metrics>) -> Self {
        Self {
            enabled: !ttl.is_zero(),
            live: AtomicBool::new(!needs_feed),
            generation: AtomicU64::new(0),
            tokens: cache(ttl, capacity),
            revoked: cache(ttl, capacity),
            consents: cache(ttl, capacity),
            kyc: cache(ttl, capacity),
            clients: cache(ttl, capacity),
            metrics,
        }
    }

    fn usable(&self) -> bool {
        self.enabled && self.live.load(Ordering::SeqCst)
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.tokens.invalidate_all();
        self.consents.invalidate_all();
        self.kyc.invalidate_all();
        self.clients.invalidate_all();
    }

    /// Serves `cache[key]`, or loads it and (if no invalidation raced the load) keeps it.
    /// `None` (not found) is never cached.
    /// The key is borrowed and copied only on a miss, to be kept: a hit (nearly every
    /// gateway request) allocates nothing.
    async fn get_or_load<Q, K, V, E, F, Fut>(
        &self,
        name: &'static str,
        cache: &Cache<K, V>,
        key: &Q,
        load: F,
    ) -> Result<Option<V>, E>
    where
        Q: Hash + quick_cache::Equivalent<K> + ToOwned<Owned = K> + ?Sized,
        K: Hash + Eq + Send + Sync + Clone + 'static,
        V: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        if !self.usable() {
            return load().await;
        }
        if let Some(v) = cache.get(key) {
            self.metrics.cache_lookup(name, "hit");
            return Ok(Some(v));
        }
        self.metrics.cache_lookup(name, "miss");
        let before = self.generation.load(Ordering::SeqCst);
        let loaded = load().await?;
        if let Some(v) = &loaded {
            cache.insert(key.to_owned(), v.clone());
            if self.generation.load(Ordering::SeqCst) != before || !self.usable() {
                // Something changed while loading: the answer may be old. Serve it (it was
                // true when read, like an uncached read) but do not keep it.
                cache.invalidate(key);
            }
        }
        Ok(loaded)
    }

    /// A consent by id (`None`: no such consent).
    pub async fn consent(
        &self,
        state: &AppState,
        consent_id: &str,
    ) -> Result<Option<Arc<GatewayConsent>>, StoreError> {
        self.get_or_load("consent", &self.consents, consent_id, || async {
            Ok(state
                .store
                .get_consent(consent_id)
                .await?
                .map(|row| Arc::new(GatewayConsent::from(row))))
        })
        .await
    }

    /// A customer's KYC status (`None`: no such customer, or erased).
    pub async fn kyc(
        &self,
        state: &AppState,
        customer_id: &str,
    ) -> Result<Option<KycStatus>, StoreError> {
        self.get_or_load("kyc", &self.kyc, customer_id, || {
            crate::kyc::status_of(state.store.as_ref(), customer_id)
        })
        .await
    }

    /// A client's registration, disabled ones included (`None`: no such client).
    pub async fn client(
        &self,
        state: &AppState,
        client_id: &str,
    ) -> Result<Option<Arc<ClientRow>>, StoreError> {
        self.get_or_load("client", &self.clients, client_id, || async {
            Ok(state.store.get_client(client_id).await?.map(Arc::new))
        })
        .await
    }

    /// A verified access token: signature, claims and revocation as
    /// [`crate::oauth::token::verify_access_token`] checks them, with `exp`/`nbf` checked
    /// against obgate's clock on every use.
    pub async fn token(
        &self,
        state: &AppState,
        token: &str,
    ) -> Result<Arc<AccessClaims>, TokenError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let claims = self
            .get_or_load("token", &self.tokens, &key, || async {
                crate::oauth::token::verify_access_token(state, token)
                    .await
                    .map(|c| Some(Arc::new(c)))
            })
            .await?
            .ok_or(TokenError::Malformed)?;
        if self.revoked.contains_key(&claims.jti) {
            return Err(TokenError::Revoked);
        }
        crate::oauth::jwt::check_times(&claims, state.clock.now())?;
        Ok(claims)
    }
}

impl Follower for DecisionCache {
    fn apply(&self, what: &Invalidation) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        match what {
            Invalidation::Consent(id) => self.consents.invalidate(id),
            Invalidation::Customer(id) => self.kyc.invalidate(id),
            // Cached tokens are keyed by a hash of the token, not by jti: remember the jti
            // for as long as an entry that holds it can live.
            Invalidation::Token(jti) => self.revoked.insert(jti.clone(), ()),
            Invalidation::Tokens => self.tokens.invalidate_all(),
            Invalidation::Client(id) => self.clients.invalidate(id),
        }
    }

    fn connected(&self, live: bool) {
        // Drop first, then go live: nothing cached before the feed was listening survives.
        self.clear();
        self.live.store(live, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(needs_feed: bool) -> DecisionCache {
        DecisionCache::new(
            Duration::from_secs(60),
            100,
            needs_feed,
            Arc::new(Metrics::new()),
        )
    }

    async fn kyc(
        c: &DecisionCache,
        answer: Result<KycStatus, ()>,
    ) -> Result<Option<KycStatus>, ()> {
        c.get_or_load("kyc", &c.kyc, "cus_1", || async move { answer.map(Some) })
            .await
    }

    #[tokio::test]
    async fn serves_from_memory_until_invalidated() {
        let c = cache(false);
        assert_eq!(
            kyc(&c, Ok(KycStatus::Passed)).await,
            Ok(Some(KycStatus::Passed))
        );
        // A second read does not load: a loader that would fail is never called.
        assert_eq!(kyc(&c, Err(())).await, Ok(Some(KycStatus::Passed)));
        c.apply(&Invalidation::Customer("cus_1".into()));
        assert_eq!(
            kyc(&c, Ok(KycStatus::Suspended)).await,
            Ok(Some(KycStatus::Suspended))
        );
        // Another customer's change leaves this entry alone.
        c.apply(&Invalidation::Customer("cus_2".into()));
        c.apply(&Invalidation::Consent("cus_1".into()));
        assert_eq!(kyc(&c, Err(())).await, Ok(Some(KycStatus::Suspended)));
    }

    #[tokio::test]
    async fn a_load_racing_an_invalidation_is_not_kept() {
        let c = cache(false);
        let got = c
            .get_or_load("kyc", &c.kyc, "cus_1", || async {
                // The change commits (and invalidates) while this read is in flight.
                c.apply(&Invalidation::Customer("cus_1".into()));
                Ok::<_, ()>(Some(KycStatus::Passed))
            })
            .await;
        assert_eq!(got, Ok(Some(KycStatus::Passed)));
        assert!(c.kyc.get("cus_1").is_none(), "the old answer was kept");
    }

    #[tokio::test]
    async fn not_found_is_not_cached() {
        let c = cache(false);
        let none = c
            .get_or_load("kyc", &c.kyc, "cus_1", || async { Ok::<_, ()>(None) })
            .await;
        assert_eq!(none, Ok(None));
        assert_eq!(
            kyc(&c, Ok(KycStatus::Passed)).await,
            Ok(Some(KycStatus::Passed))
        );
    }

    #[tokio::test]
    async fn without_a_connected_feed_nothing_is_cached() {
        let c = cache(true);
        let _ = kyc(&c, Ok(KycStatus::Passed)).await;
        assert!(c.kyc.get("cus_1").is_none());
        c.connected(true);
        let _ = kyc(&c, Ok(KycStatus::Passed)).await;
        assert!(c.kyc.get("cus_1").is_some());
        // Losing the feed drops what was cached and stops caching.
        c.connected(false);
        assert!(c.kyc.get("cus_1").is_none());
        assert_eq!(
            kyc(&c, Ok(KycStatus::Failed)).await,
            Ok(Some(KycStatus::Failed))
        );
        assert!(c.kyc.get("cus_1").is_none());
    }

    #[tokio::test]
    async fn zero_ttl_turns_caching_off() {
        let c = DecisionCache::new(Duration::ZERO, 100, false, Arc::new(Metrics::new()));
        let _ = kyc(&c, Ok(KycStatus::Passed)).await;
        assert!(c.kyc.get("cus_1").is_none());
    }
}
