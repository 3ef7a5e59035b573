//! Client authentication, the one module every client-authenticated endpoint uses.
//!
//! `client_secret_basic` (RFC 6749 §2.3.1: `Authorization: Basic` of the form-urlencoded id and
//! secret), `client_secret_post` (`client_id` + `client_secret` in the body) and
//! `private_key_jwt` (`client_assertion` + `client_assertion_type`, RFC 7523; see
//! [`super::assertion`]). A client must use the method it registered. Exactly one method per
//! request.
//!
//! Secrets are checked with argon2 off the runtime (see [`super::secrets`]). A verified
//! (client, secret) pair is remembered until it has gone unused for `oauth.secret_cache_ttl`,
//! so a TPP that asks for tokens in a loop pays argon2 once. (Expiring it a fixed time after
//! the check made every busy client stall once per TTL: all its requests in flight missed
//! together and queued for argon2, a p99 of 350 ms against 22 ms; BENCHMARKS.md.) Nothing
//! is lost by keeping a pair while it is used: argon2 would answer the same for as long as
//! the stored hash is unchanged. The cache key includes the stored hash.
//!
//! A pair that is not in the cache (never verified here, or idle past the TTL) is checked
//! once for all the requests that present it meanwhile: they wait for that check instead of
//! each queueing its own argon2. A TPP that comes back after a pause, or meets a node that
//! has just started, with 16 requests in flight otherwise paid 16 argon2 in a row on the one
//! argon2 permit of a 2-core node, its last request waiting about 390 ms (BENCHMARKS.md,
//! fourteenth and fifteenth passes). Only a success is shared: a request that waited on a
//! check that failed runs its own argon2, so every wrong secret still costs a full argon2
//! (an attacker's guesses are not cheaper, and the `/healthz`-under-attack row measures the
//! same thing). An unknown client id and a client without a secret go through the same
//! shared check, which then always fails, so timing under concurrency does not tell which
//! ids exist either.
//!
//! The client's row (its hashes, disabled flag, method and scopes) comes from the decision
//! caches ([`crate::gateway::cache::DecisionCache::client`]), which every update, disable and
//! rotation clears on this node as it commits and on the others by `NOTIFY`, so such a change
//! takes effect on the next request; reading the row was one database round trip per issued
//! token (BENCHMARKS.md, token row). A secret that fails against a cached row is checked once
//! more against the stored one, so a secret rotated where this node cannot hear of it (the
//! CLI on SQLite) works at once. Failures are never cached. Every failure is audited with its
//! reason (never the secret).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::audit::{ActorType, AuditEvent, Outcome};
use crate::clock::Timestamp;
use crate::error::ApiError;
use crate::limits::Subject;
use crate::state::AppState;
use crate::store::ClientRow;

/// Most cache entries kept; past it, expired entries are dropped (then all, if need be).
const CACHE_MAX: usize = 10_000;

/// Verified-secret cache, and the checks running now.
#[derive(Debug, Default)]
pub struct SecretCache {
    entries: Mutex<HashMap<[u8; 32], Timestamp>>,
    /// The check of a pair running now, shared by everyone presenting that pair. An entry
    /// lives while someone waits on it (see [`Waiter`]), so the map holds at most one entry
    /// per request in flight.
    checks: Mutex<HashMap<[u8; 32], Arc<OnceCell<bool>>>>,
}

fn cache_key(client_id: &str, secret: &str, phc: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(client_id.as_bytes());
    h.update([0]);
    h.update(Sha256::digest(secret.as_bytes()));
    h.update([0]);
    h.update(phc.as_bytes());
    h.finalize().into()
}

impl SecretCache {
    /// Whether the pair was verified and used within `ttl`; a hit is kept for `ttl` from
    /// `now`.
    fn hit(&self, key: &[u8; 32], now: Timestamp, ttl: std::time::Duration) -> bool {
        let Ok(mut m) = self.entries.lock() else {
            return false;
        };
        match m.get_mut(key) {
            Some(exp) if *exp > now => {
                *exp = now.plus(ttl);
                true
            }
            _ => false,
        }
    }

    /// Joins the check of the pair running now, or starts the one the next presenters join.
    fn join(&self, key: [u8; 32]) -> Waiter<'_> {
        let cell = match self.checks.lock() {
            Ok(mut c) => c.entry(key).or_default().clone(),
            // A poisoned map: a check of one's own, shared with nobody.
            Err(_) => Arc::default(),
        };
        Waiter {
            cache: self,
            key,
            cell,
        }
    }

    /// Records a check's answer: a verified pair is kept for `ttl` from `now`, any other is
    /// forgotten (a pair verified before whose check now fails).
    fn settle(&self, key: [u8; 32], verified: bool, now: Timestamp, ttl: std::time::Duration) {
        let Ok(mut m) = self.entries.lock() else {
            return;
        };
        if !verified || ttl.is_zero() {
            m.remove(&key);
            return;
        }
        if m.len() >= CACHE_MAX && !m.contains_key(&key) {
            m.retain(|_, exp| *exp > now);
            if m.len() >= CACHE_MAX {
                m.clear();
            }
        }
        m.insert(key, now.plus(ttl));
    }
}

/// One request's place in a shared check. Dropping it (the request answered, or abandoned
/// by its client mid-check) retires the check once it has an answer, so the next presenter
/// starts a new one, or once nobody else waits on it, so an abandoned check does not stay.
struct Waiter<'c> {
    cache: &'c SecretCache,
    key: [u8; 32],
    cell: Arc<OnceCell<bool>>,
}

impl Waiter<'_> {
    /// The shared answer: the first waiter runs `check` and the others wait for it. A waiter
    /// that did not run it and got `false` runs its own, so a wrong secret is never cheaper
    /// (see the module docs).
    async fn verified<F>(&self, check: impl Fn() -> F) -> bool
    where
        F: std::future::Future<Output = bool>,
    {
        let mut ran = false;
        let shared = *self
            .cell
            .get_or_init(|| {
                ran = true;
                check()
            })
            .await;
        if shared || ran {
            shared
        } else {
            check().await
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if let Ok(mut c) = self.cache.checks.lock() {
            let ours = c.get(&self.key).is_some_and(|x| Arc::ptr_eq(x, &self.cell));
            // Two holders: the map and this waiter. Others clone it under the same lock.
            if ours && (self.cell.initialized() || Arc::strong_count(&self.cell) <= 2) {
                c.remove(&self.key);
            }
        }
    }
}

/// An authenticated client.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// Its stored row (shared with the registration cache).
    pub client: std::sync::Arc<ClientRow>,
    /// The method it used.
    pub method: &'static str,
}

/// The request's form parameters, each at most once (RFC 6749 §3.2).
pub type Params = HashMap<String, String>;

enum Presented {
    Basic { id: String, secret: String },
    Post { id: String, secret: String },
    Jwt { id: String, assertion: String },
}

impl Presented {
    fn id(&self) -> &str {
        match self {
            Presented::Basic { id, .. }
            | Presented::Post { id, .. }
            | Presented::Jwt { id, .. } => id,
        }
    }
}

fn invalid_request(description: impl Into<String>) -> ApiError {
    ApiError::OAuth {
        status: axum::http::StatusCode::BAD_REQUEST,
        error: "invalid_request",
        description: description.into(),
    }
}

fn presented(headers: &HeaderMap, params: &Params) -> Result<Presented, ApiError> {
    let basic = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, b64)| b64.trim().to_owned());
    let post_secret = params.get("client_secret");
    let assertion = params.get("client_assertion");
    let methods = [basic.is_some(), post_secret.is_some(), assertion.is_some()]
        .iter()
        .filter(|m| **m)
        .count();
    if methods > 1 {
        return Err(invalid_request(
            "use exactly one client authentication method per request",
        ));
    }
    if let Some(b64) = basic {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| basic_failure("the Basic credentials are not valid base64"))?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| basic_failure("the Basic credentials need client_id:client_secret"))?;
        let decode = |s: &str| {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        return Ok(Presented::Basic {
            id: decode(id),
            secret: decode(secret),
        });
    }
    if let Some(assertion) = assertion {
        if params.get("client_assertion_type").map(String::as_str)
            != Some(super::assertion::ASSERTION_TYPE)
        {
            return Err(invalid_request(format!(
                "client_assertion_type must be {}",
                super::assertion::ASSERTION_TYPE
            )));
        }
        let id = super::assertion::claimed_client(assertion)
            .ok_or_else(|| invalid_client(false, "client_assertion is not a valid JWT"))?;
        if params.get("client_id").is_some_and(|c| *c != id) {
            return Err(invalid_client(
                false,
                "client_id does not match the client_assertion's iss",
            ));
        }
        return Ok(Presented::Jwt {
            id,
            assertion: assertion.clone(),
        });
    }
    match (params.get("client_id"), post_secret) {
        (Some(id), Some(secret)) => Ok(Presented::Post {
            id: id.clone(),
            secret: secret.clone(),
        }),
        _ => Err(invalid_client(
            false,
            "client authentication required: HTTP Basic, or client_id and client_secret in the body",
        )),
    }
}

fn basic_failure(msg: &str) -> ApiError {
    invalid_client(true, msg)
}

/// `invalid_client`, 401; with a Basic challenge when the client tried Basic.
pub fn invalid_client(basic: bool, description: &str) -> ApiError {
    ApiError::Unauthorized {
        message: description.to_owned(),
        challenge: basic.then_some("Basic realm=\"obgate\", charset=\"UTF-8\""),
    }
}

/// Authenticates the client of a request, or explains (and audits) why not.
///
/// `addr` is where the request came from ([`crate::limits::ClientAddr`]): failures count
/// against it and against the presented client id, and either, once locked, is refused with
/// `429` before any secret is checked (see [`crate::limits::lockout`]).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    addr: Option<IpAddr>,
    interaction: Option<&str>,
) -> Result<Authenticated, ApiError> {
    let lockout = &state.limits.lockout;
    let presented = match presented(headers, params) {
        Ok(p) => p,
        Err(e) => {
            // Credentials that cannot even be read name no client, but they come from an
            // address: a locked one is refused before anything is written, and the refusals
            // (401, and the 400s for two methods at once or a wrong assertion type) count
            // against it, so an anonymous loop of them is not an audit write each forever. A
            // client misconfigured that way locks its address as one sending a wrong secret
            // does.
            let subjects: Vec<Subject> = addr.map(Subject::Address).into_iter().collect();
            if let Some(wait) = lockout.locked(&subjects).await {
                return Err(crate::limits::locked_out(wait));
            }
            deny(state, "-", "malformed_credentials", interaction).await?;
            return Err(counted(state, &subjects, e, interaction).await?);
        }
    };
    let mut subjects = vec![Subject::Client(presented.id().chars().take(256).collect())];
    subjects.extend(addr.map(Subject::Address));
    if let Some(wait) = lockout.locked(&subjects).await {
        // The lock itself was audited once; a row per refused attempt would let a flood of
        // them turn into a flood of database writes.
        return Err(crate::limits::locked_out(wait));
    }
    let gate = Gate {
        subjects: &subjects,
        locked: Mutex::new(None),
    };
    match verify(state, presented, &gate, interaction).await {
        Ok(client) => {
            lockout.succeeded(&subjects).await;
            Ok(client)
        }
        Err(e) => match gate.locked() {
            // Locked while this request waited for argon2: refused like one arriving after
            // the lock, unchecked, unaudited and uncounted.
            Some(wait) => Err(crate::limits::locked_out(wait)),
            None => Err(counted(state, &subjects, e, interaction).await?),
        },
    }
}

/// The lockout's second look, taken when a secret's argon2 check gets its turn: requests
/// sent together all pass the first look before any of them has failed, and without this
/// each would be a guess, however many the lockout allows.
struct Gate<'a> {
    subjects: &'a [Subject],
    /// How long the lock that stopped this request's check lasts, once one has.
    locked: Mutex<Option<std::time::Duration>>,
}

impl Gate<'_> {
    /// Whether the subjects are locked now (remembered for the answer).
    async fn refuses(&self, state: &AppState) -> bool {
        let wait = state.limits.lockout.locked(self.subjects).await;
        if let (Some(w), Ok(mut l)) = (wait, self.locked.lock()) {
            *l = Some(w);
        }
        wait.is_some()
    }

    fn locked(&self) -> Option<std::time::Duration> {
        self.locked.lock().ok().and_then(|l| *l)
    }
}

/// A refusal counted against `subjects` when it is a failed authentication (401, or 400 for
/// credentials presented wrongly): the locks it sets are audited, and the answer waits out
/// the lockout's delay. A store error (5xx) does not count. Answers the refusal.
async fn counted(
    state: &AppState,
    subjects: &[Subject],
    refusal: ApiError,
    interaction: Option<&str>,
) -> Result<ApiError, ApiError> {
    use axum::http::StatusCode;
    let failed = matches!(
        refusal.status(),
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED
    );
    if failed {
        count_failure(state, subjects, Failure::Client, interaction).await?;
    }
    Ok(refusal)
}

/// What failed, for the audit record of the lock it sets: the counters are shared (an
/// address that fails at one door is locked at all of them), so the record names the
/// failure that crossed the threshold.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Failure {
    /// Client credentials at an OAuth endpoint.
    Client,
    /// A made-up or revoked admin key on `/api/v0`.
    AdminKey,
    /// A refused customer sign-in on the pages (bad assertion, bad form token).
    SignIn,
}

impl Failure {
    fn as_str(self) -> &'static str {
        match self {
            Failure::Client => "client_authentication",
            Failure::AdminKey => "admin_key",
            Failure::SignIn => "sign_in",
        }
    }
}

/// Counts a failed authentication (of a client, an admin key or a customer sign-in) against
/// `subjects`: the locks it sets are audited, and the caller waits out the lockout's delay.
pub(crate) async fn count_failure(
    state: &AppState,
    subjects: &[Subject],
    failure: Failure,
    interaction: Option<&str>,
) -> Result<(), ApiError> {
    if subjects.is_empty() {
        return Ok(());
    }
    let after = state.limits.lockout.failed(subjects).await;
    for subject in &after.locked {
        audit_lock(state, subject, failure, interaction).await?;
    }
    if !after.delay.is_zero() {
        tokio::time::sleep(after.delay).await;
    }
    Ok(())
}

/// Audits that a client id or an address was locked (an address by failed client, admin-key
/// or sign-in attempts: the lock is the same; the reason names the one that locked it).
async fn audit_lock(
    state: &AppState,
    subject: &Subject,
    failure: Failure,
    interaction: Option<&str>,
) -> Result<(), ApiError> {
    let window = humantime::format_duration(state.config.oauth.lockout.window);
    let (actor_type, actor, kind) = match subject {
        Subject::Client(id) => (ActorType::Client, id.chars().take(64).collect(), "client"),
        Subject::Address(ip) => (ActorType::Anonymous, ip.to_string(), "address"),
    };
    tracing::warn!(subject = kind, %actor, %window, "client authentication locked after repeated failures");
    let event = AuditEvent::new(
        state.clock.now(),
        actor_type,
        actor.clone(),
        "client.lockout",
    )
    .on(kind, actor)
    .outcome(
        Outcome::Denied,
        format!(
            "too_many_failures; last: {}; locked for {window}",
            failure.as_str()
        ),
    )
    .interaction(interaction);
    state.store.append_audit(&event).await?;
    Ok(())
}

/// Checks what was presented against the client's registration; a refusal the gate made
/// (the lock set while waiting) is not audited here.
async fn verify(
    state: &AppState,
    presented: Presented,
    gate: &Gate<'_>,
    interaction: Option<&str>,
) -> Result<Authenticated, ApiError> {
    let (id, secret, method, basic) = match presented {
        Presented::Basic { id, secret } => (id, secret, "client_secret_basic", true),
        Presented::Post { id, secret } => (id, secret, "client_secret_post", false),
        Presented::Jwt { id, assertion } => {
            return authenticate_assertion(state, &id, &assertion, interaction).await
        }
    };
    let generic = "client authentication failed";
    let row = state.decisions.client(state, &id).await?;
    let now = state.clock.now();

    let Some(mut client) = row else {
        // Same work as for a real client, so timing does not reveal which ids exist.
        shared_argon2(state, gate, cache_key(&id, &secret, ""), &secret, None).await;
        if gate.locked().is_none() {
            deny(state, &id, "unknown_client", interaction).await?;
        }
        return Err(invalid_client(basic, generic));
    };
    let mut verified = secret_matches(state, gate, &client, &secret, now).await;
    if !verified && gate.locked().is_none() {
        // The cached registration may predate a change made where this node does not hear
        // of it (`obgate client rotate-secret` on SQLite): a new secret must work at once,
        // so a failure is checked once more against the stored row.
        if let Some(fresh) = state.store.get_client(&id).await? {
            if fresh.updated_at != client.updated_at {
                use crate::events::invalidation::{Follower, Invalidation};
                state.decisions.apply(&Invalidation::Client(id.clone()));
                client = std::sync::Arc::new(fresh);
                verified = secret_matches(state, gate, &client, &secret, now).await;
            }
        }
    }
    let reason = if !verified {
        Some("wrong_secret")
    } else if client.disabled_at.is_some() {
        Some("client_disabled")
    } else if client.token_endpoint_auth_method != method {
        Some("wrong_auth_method")
    } else {
        None
    };
    if let Some(reason) = reason {
        if gate.locked().is_none() {
            deny(state, &client.client_id, reason, interaction).await?;
        }
        return Err(invalid_client(basic, generic));
    }
    Ok(Authenticated { client, method })
}

/// Whether `secret` is the client's current secret, or its previous one inside the grace
/// period. A pair verified and used within the TTL is answered from the secret cache;
/// otherwise argon2 runs, once for the requests presenting the pair together (also when the
/// client has no secret, so timing says nothing about that).
async fn secret_matches(
    state: &AppState,
    gate: &Gate<'_>,
    client: &ClientRow,
    secret: &str,
    now: crate::clock::Timestamp,
) -> bool {
    let mut candidates = vec![];
    if let Some(h) = &client.secret_hash {
        candidates.push(h.as_str());
    }
    if let (Some(h), Some(until)) = (
        &client.previous_secret_hash,
        client.previous_secret_expires_at,
    ) {
        if until > now {
            candidates.push(h.as_str());
        }
    }
    if candidates.is_empty() {
        shared_argon2(
            state,
            gate,
            cache_key(&client.client_id, secret, ""),
            secret,
            None,
        )
        .await;
        return false;
    }
    let ttl = state.config.oauth.secret_cache_ttl;
    let cache = &state.secret_cache;
    let keys: Vec<([u8; 32], &str)> = candidates
        .into_iter()
        .map(|phc| (cache_key(&client.client_id, secret, phc), phc))
        .collect();
    // Every candidate's cache entry before any argon2: a previous secret still in its grace
    // period, verified before, would otherwise fail an argon2 against the current hash on
    // every request.
    if keys.iter().any(|(key, _)| cache.hit(key, now, ttl)) {
        return true;
    }
    for (key, phc) in keys {
        let waiter = cache.join(key);
        let verified = waiter
            .verified(|| gated_argon2(state, gate, secret, Some(phc)))
            .await;
        // Recorded before the check retires (the waiter's drop), so a request arriving
        // between the two finds the pair cached rather than starting another argon2.
        cache.settle(key, verified, now, ttl);
        drop(waiter);
        if verified {
            return true;
        }
    }
    false
}

/// argon2 of `secret` against `phc` through the pair's shared check; with no `phc`, the same
/// work, failing (for unknown clients and clients without a secret).
async fn shared_argon2(
    state: &AppState,
    gate: &Gate<'_>,
    key: [u8; 32],
    secret: &str,
    phc: Option<&str>,
) -> bool {
    state
        .secret_cache
        .join(key)
        .verified(|| gated_argon2(state, gate, secret, phc))
        .await
}

/// argon2 of `secret` against `phc` when its turn comes, unless the gate's subjects are
/// locked by then (false: not verified; the gate remembers why).
async fn gated_argon2(state: &AppState, gate: &Gate<'_>, secret: &str, phc: Option<&str>) -> bool {
    state
        .hasher
        .verify_unless(secret, phc, || gate.refuses(state))
        .await
        .unwrap_or(false)
}

/// `private_key_jwt`: the client's registered keys verify the assertion.
async fn authenticate_assertion(
    state: &AppState,
    id: &str,
    assertion: &str,
    interaction: Option<&str>,
) -> Result<Authenticated, ApiError> {
    let Some(client) = state.decisions.client(state, id).await? else {
        deny(state, id, "unknown_client", interaction).await?;
        return Err(invalid_client(false, "client authentication failed"));
    };
    if client.disabled_at.is_some() || client.token_endpoint_auth_method != "private_key_jwt" {
        let reason = if client.disabled_at.is_some() {
            "client_disabled"
        } else {
            "wrong_auth_method"
        };
        deny(state, &client.client_id, reason, interaction).await?;
        return Err(invalid_client(false, "client authentication failed"));
    }
    if let Err(refusal) = super::assertion::verify(state, &client, assertion).await {
        deny(state, &client.client_id, refusal.code(), interaction).await?;
        return Err(invalid_client(false, refusal.hint()));
    }
    Ok(Authenticated {
        client,
        method: "private_key_jwt",
    })
}

async fn deny(
    state: &AppState,
    client_id: &str,
    reason: &str,
    interaction: Option<&str>,
) -> Result<(), ApiError> {
    let actor: String = client_id.chars().take(64).collect();
    let event = AuditEvent::new(
        state.clock.now(),
        ActorType::Client,
        actor,
        "client.authenticate",
    )
    .outcome(Outcome::Denied, reason)
    .interaction(interaction);
    state.store.append_audit(&event).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_cached_secret_stays_while_used_and_goes_when_idle() {
        let cache = SecretCache::default();
        let ttl = Duration::from_secs(60);
        let key = cache_key("cl", "secret", "$argon2id$…");
        let t0 = Timestamp::from_millis(0);
        cache.settle(key, true, t0, ttl);
        // Used every 50 s: never falls back to argon2, though 60 s pass many times over.
        for i in 1..=10 {
            assert!(
                cache.hit(&key, Timestamp::from_millis(i * 50_000), ttl),
                "use {i}"
            );
        }
        // Idle for longer than the TTL: gone.
        assert!(!cache.hit(&key, Timestamp::from_millis(500_000 + 60_001), ttl));
        // Another secret, or the same secret against another stored hash, never hits.
        assert!(!cache.hit(&cache_key("cl", "other", "$argon2id$…"), t0, ttl));
        assert!(!cache.hit(&cache_key("cl", "secret", "$argon2id$new"), t0, ttl));
        // A failed check forgets the pair.
        cache.settle(key, true, t0, ttl);
        cache.settle(key, false, t0, ttl);
        assert!(!cache.hit(&key, t0, ttl));
    }

    fn checks(cache: &SecretCache) -> usize {
        cache.checks.lock().unwrap().len()
    }

    /// Two requests presenting one pair while its check runs: the check (held at a gate
    /// until both have joined) answers `answer`; how many checks ran.
    async fn two_together(answer: bool) -> (bool, bool, usize) {
        let cache = SecretCache::default();
        let key = cache_key("cl", "secret", "$argon2id$…");
        let gate = tokio::sync::Semaphore::new(0);
        let runs = std::sync::atomic::AtomicUsize::new(0);
        let check = || async {
            let _open = gate.acquire().await.unwrap();
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            answer
        };
        let (a, b) = (cache.join(key), cache.join(key));
        assert!(Arc::ptr_eq(&a.cell, &b.cell), "one check for the pair");
        let (x, y, ()) = tokio::join!(a.verified(check), b.verified(check), async {
            tokio::task::yield_now().await;
            gate.add_permits(1);
        });
        assert_eq!(checks(&cache), 1, "still held by its waiters");
        drop((a, b));
        assert_eq!(checks(&cache), 0, "retired once answered");
        (x, y, runs.into_inner())
    }

    #[tokio::test]
    async fn a_success_is_shared_and_a_failure_is_checked_again_by_each_waiter() {
        assert_eq!(two_together(true).await, (true, true, 1));
        assert_eq!(two_together(false).await, (false, false, 2));
    }

    #[test]
    fn a_check_abandoned_by_all_its_waiters_is_retired() {
        let cache = SecretCache::default();
        let key = cache_key("cl", "secret", "$argon2id$…");
        let (a, b) = (cache.join(key), cache.join(key));
        drop(a);
        assert_eq!(checks(&cache), 1, "b still waits on it");
        drop(b);
        assert_eq!(checks(&cache), 0);
        // The next presenter starts a new one.
        let c = cache.join(key);
        assert!(!c.cell.initialized());
    }
}
