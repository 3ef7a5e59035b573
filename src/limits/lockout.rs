//! Brute-force protection for client authentication.
//!
//! Failures are counted per presented client id (from any address) and per remote address
//! (for any client id; see [`super::ClientAddr`] for which address), each over
//! `oauth.lockout_window`. Past half of its threshold (`oauth.lockout_after` for an id,
//! `oauth.lockout_after_address` for an address, by default the same) failures every further
//! failure is answered more slowly (250 ms more each, at most 2 s); at the threshold the id or
//! the address is locked for one window: its requests are refused with `429` before any secret
//! is checked, and the lock is audited once.
//!
//! The lock on a client id is what bounds the harm an attacker can do to the real client: it
//! lasts one window from the moment it was set, and then the real client's next correct
//! secret succeeds (and clears both counters). Unknown ids are counted like known ones, so the
//! lockout says nothing about which ids exist.
//!
//! With `redis.url` set the counters live in Redis and every node sees the same ones;
//! otherwise, or while Redis is away, each node counts on its own.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::shared::SharedRedis;

/// Longest extra wait a failing request gets before its answer.
const MAX_DELAY: Duration = Duration::from_secs(2);
/// Extra wait per failure past the slow-down point.
const DELAY_STEP: Duration = Duration::from_millis(250);

/// What is being counted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A client id as presented (it may not exist).
    Client(String),
    /// A remote address.
    Address(IpAddr),
}

impl Subject {
    /// What failures are counted under. An IPv6 address counts as its /64: one subscriber or
    /// host is routinely given a whole /64 and can send from any of its 2^64 addresses, so
    /// counting single addresses would never lock one. An IPv4-mapped IPv6 address counts as
    /// its IPv4 address.
    fn key(&self) -> String {
        match self {
            Subject::Client(id) => format!("client:{id}"),
            Subject::Address(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => format!("addr:{v4}"),
                None => {
                    let s = v6.segments();
                    format!("addr:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
            Subject::Address(ip) => format!("addr:{ip}"),
        }
    }
}

/// The settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutConfig {
    /// Failures within a window that lock a client id; `0` turns the lockout off.
    pub after: u32,
    /// Failures within a window that lock an address, for any client id
    /// (`oauth.lockout_after_address`; by default the same as `after`). Where many clients
    /// share one address (a TPP's clients behind one NAT), a higher figure keeps one
    /// misconfigured client from locking out the others, while spraying made-up ids from one
    /// address is still stopped. It is also all that bounds admin-key and sign-in guesses,
    /// which count against their address alone, so the configuration refuses `0` (which here
    /// would leave addresses uncounted).
    pub after_address: u32,
    /// How long failures are counted, and how long a lock lasts.
    pub window: Duration,
}

/// What a failure led to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AfterFailure {
    /// How long to hold the failing answer back.
    pub delay: Duration,
    /// Subjects this failure locked (each reported once, to be audited).
    pub locked: Vec<Subject>,
}

#[derive(Clone, Copy, Debug)]
struct Count {
    failures: u32,
    since: Instant,
    locked_until: Option<Instant>,
}

/// The counters.
#[derive(Debug)]
pub struct Lockout {
    config: LockoutConfig,
    local: moka::sync::Cache<String, Arc<Mutex<Count>>>,
    shared: Option<Arc<SharedRedis>>,
}

impl Lockout {
    /// Counters for `config`, in Redis when `shared` is given.
    pub fn new(config: LockoutConfig, shared: Option<Arc<SharedRedis>>) -> Self {
        Self {
            config,
            // Bounded, so a flood of made-up ids or addresses cannot grow memory without end.
            local: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(config.window.saturating_mul(2).max(Duration::from_secs(1)))
                .build(),
            shared,
        }
    }

    fn enabled(&self) -> bool {
        self.config.after > 0
    }

    /// Failures that lock `s`; `0`: `s` is not counted.
    fn threshold(&self, s: &Subject) -> u32 {
        match s {
            Subject::Client(_) => self.config.after,
            Subject::Address(_) => self.config.after_address,
        }
    }

    /// How long until the first of `subjects` that is locked is free again, if any is.
    pub async fn locked(&self, subjects: &[Subject]) -> Option<Duration> {
        if !self.enabled() {
            return None;
        }
        if let Some(shared) = &self.shared {
            let check = self.shared_locked(shared, subjects);
            if let Some(found) = shared.call("lockout check", check).await {
                return found;
            }
        }
        let now = Instant::now();
        subjects
            .iter()
            .filter_map(|s| {
                let entry = self.local.get(&s.key())?;
                let count = entry.lock().ok()?;
                count
                    .locked_until
                    .filter(|until| *until > now)
                    .map(|until| until - now)
            })
            .max()
    }

    async fn shared_locked(
        &self,
        shared: &SharedRedis,
        subjects: &[Subject],
    ) -> Result<Option<Duration>, redis::RedisError> {
        let mut pipe = redis::pipe();
        for s in subjects {
            pipe.cmd("PTTL")
                .arg(shared.key(&format!("lock:{}", s.key())));
        }
        let ttls: Vec<i64> = pipe.query_async(&mut shared.conn()).await?;
        Ok(ttls
            .into_iter()
            .filter(|ms| *ms > 0)
            .max()
            .map(|ms| Duration::from_millis(ms.unsigned_abs())))
    }

    /// Counts one failure against every subject.
    pub async fn failed(&self, subjects: &[Subject]) -> AfterFailure {
        if !self.enabled() {
            return AfterFailure::default();
        }
        let mut out = AfterFailure::default();
        // Failures past the slow-down point (half the threshold) of the subject furthest on.
        let mut worst = 0;
        for s in subjects {
            let after = self.threshold(s);
            if after == 0 {
                continue;
            }
            let (failures, newly_locked) = self.count(s, after).await;
            worst = worst.max(failures.saturating_sub((after / 2).max(1)));
            if newly_locked {
                out.locked.push(s.clone());
            }
        }
        out.delay = DELAY_STEP.saturating_mul(worst).min(MAX_DELAY);
        out
    }

    /// Counts one failure of `s`, which `after` failures lock.
    async fn count(&self, s: &Subject, after: u32) -> (u32, bool) {
        if let Some(shared) = &self.shared {
            if let Some(r) = shared
                .call("lockout count", self.shared_count(shared, s, after))
                .await
            {
                return r;
            }
        }
        let now = Instant::now();
        let entry = self.local.get_with(s.key(), || {
            Arc::new(Mutex::new(Count {
                failures: 0,
                since: now,
                locked_until: None,
            }))
        });
        let Ok(mut c) = entry.lock() else {
            return (0, false);
        };
        if now.duration_since(c.since) > self.config.window {
            c.failures = 0;
            c.since = now;
        }
        c.failures = c.failures.saturating_add(1);
        let lock_over = c.locked_until.is_none_or(|until| until <= now);
        let newly = c.failures >= after && lock_over;
        if newly {
            c.locked_until = Some(now + self.config.window);
            // The next round of failures starts a fresh count.
            c.failures = 0;
            c.since = now;
        }
        (c.failures.max(u32::from(newly) * after), newly)
    }

    async fn shared_count(
        &self,
        shared: &SharedRedis,
        s: &Subject,
        after: u32,
    ) -> Result<(u32, bool), redis::RedisError> {
        let window_ms = u64::try_from(self.config.window.as_millis()).unwrap_or(u64::MAX);
        let count_key = shared.key(&format!("fail:{}", s.key()));
        let lock_key = shared.key(&format!("lock:{}", s.key()));
        let mut conn = shared.conn();
        // INCR, and start the window on the first failure only.
        let (failures,): (u32,) = redis::pipe()
            .cmd("INCR")
            .arg(&count_key)
            .cmd("PEXPIRE")
            .arg(&count_key)
            .arg(window_ms)
            .arg("NX")
            .ignore()
            .query_async(&mut conn)
            .await?;
        if failures < after {
            return Ok((failures, false));
        }
        // Exactly one node sets the lock (and audits it); the count starts afresh.
        let set: Option<String> = redis::cmd("SET")
            .arg(&lock_key)
            .arg(1)
            .arg("PX")
            .arg(window_ms)
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        if set.is_some() {
            redis::cmd("DEL")
                .arg(&count_key)
                .query_async::<_, ()>(&mut conn)
                .await?;
        }
        Ok((failures, set.is_some()))
    }

    /// A correct secret: the counters of these subjects start again from zero (a lock that
    /// is already set runs its course).
    pub async fn succeeded(&self, subjects: &[Subject]) {
        if !self.enabled() {
            return;
        }
        if let Some(shared) = &self.shared {
            let mut cmd = redis::cmd("DEL");
            for s in subjects {
                cmd.arg(shared.key(&format!("fail:{}", s.key())));
            }
            let mut conn = shared.conn();
            let reset = cmd.query_async::<_, ()>(&mut conn);
            if shared.call("lockout reset", reset).await.is_some() {
                return;
            }
        }
        for s in subjects {
            if let Some(entry) = self.local.get(&s.key()) {
                if let Ok(mut c) = entry.lock() {
                    c.failures = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lockout(after: u32, window_ms: u64) -> Lockout {
        Lockout::new(
            LockoutConfig {
                after,
                after_address: after,
                window: Duration::from_millis(window_ms),
            },
            None,
        )
    }

    #[tokio::test]
    async fn an_address_locks_at_its_own_count_and_zero_leaves_it_uncounted() {
        let config = |after_address| LockoutConfig {
            after: 2,
            after_address,
            window: Duration::from_secs(60),
        };
        let ip = Subject::Address("203.0.113.1".parse().unwrap());
        let l = Lockout::new(config(4), None);
        for (n, id) in ["a", "a", "b", "c"].iter().enumerate() {
            let who = [Subject::Client((*id).into()), ip.clone()];
            let after = l.failed(&who).await;
            let want: Vec<Subject> = match n {
                1 => vec![who[0].clone()],
                3 => vec![ip.clone()],
                _ => vec![],
            };
            assert_eq!(after.locked, want, "failure {}", n + 1);
        }
        let off = Lockout::new(config(0), None);
        for id in ["a", "b", "c", "d", "e"] {
            let after = off.failed(&[Subject::Client(id.into()), ip.clone()]).await;
            assert!(!after.locked.contains(&ip));
        }
        assert!(off.locked(std::slice::from_ref(&ip)).await.is_none());
    }

    #[tokio::test]
    async fn failures_slow_down_then_lock_for_one_window() {
        let l = lockout(6, 300);
        let who = [Subject::Client("tpp".into())];
        let mut delays = vec![];
        for _ in 0..5 {
            let after = l.failed(&who).await;
            assert!(after.locked.is_empty());
            delays.push(after.delay);
        }
        // Slow-down starts past half the threshold and grows.
        assert_eq!(delays[..3], [Duration::ZERO; 3]);
        assert!(
            delays[3] > Duration::ZERO && delays[4] > delays[3],
            "{delays:?}"
        );
        assert!(l.locked(&who).await.is_none());
        let after = l.failed(&who).await;
        assert_eq!(after.locked, who.to_vec());
        let left = l.locked(&who).await.unwrap();
        assert!(left <= Duration::from_millis(300));
        // Another subject is untouched; the lock ends with its window.
        assert!(l.locked(&[Subject::Client("other".into())]).await.is_none());
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(l.locked(&who).await.is_none());
    }

    #[tokio::test]
    async fn an_ipv6_address_counts_as_its_64_and_a_mapped_ipv4_as_itself() {
        let l = lockout(3, 10_000);
        let from = |a: &str| [Subject::Address(a.parse().unwrap())];
        for n in 1..=3 {
            l.failed(&from(&format!("2001:db8:1:2::{n}"))).await;
        }
        assert!(l.locked(&from("2001:db8:1:2:ffff::99")).await.is_some());
        assert!(l.locked(&from("2001:db8:1:3::1")).await.is_none());

        for _ in 0..3 {
            l.failed(&from("::ffff:198.51.100.7")).await;
        }
        assert!(l.locked(&from("198.51.100.7")).await.is_some());
        assert!(l.locked(&from("198.51.100.8")).await.is_none());
    }

    #[tokio::test]
    async fn a_success_resets_the_count_and_zero_turns_it_off() {
        let l = lockout(3, 10_000);
        let who = [Subject::Address("10.0.0.1".parse().unwrap())];
        l.failed(&who).await;
        l.failed(&who).await;
        l.succeeded(&who).await;
        l.failed(&who).await;
        l.failed(&who).await;
        assert!(l.locked(&who).await.is_none());
        assert_eq!(l.failed(&who).await.locked.len(), 1);

        let off = lockout(0, 10_000);
        for _ in 0..50 {
            assert_eq!(off.failed(&who).await, AfterFailure::default());
        }
        assert!(off.locked(&who).await.is_none());
    }
}
