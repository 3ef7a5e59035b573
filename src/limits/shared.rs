//! The Redis connection every node's limits share when `redis.url` is set.
//!
//! Redis holds only counters that may be lost (rate buckets, failure counts, lockouts), so
//! obgate treats it as a helper, never a dependency: when Redis cannot be reached, requests
//! are served, the limits fall back to what this node alone can see, and a warning and the
//! `obgate_redis_errors_total` metric tell the operator. A supervisor pings Redis every second
//! and replaces a broken connection as soon as Redis answers again.
//!
//! Every call has a deadline ([`CALL_TIMEOUT`]): a Redis that stops answering (paused, a
//! failover that black-holes its address) would otherwise hold every gateway and token
//! request until the request timeout. A failed or late call marks Redis down, and until the
//! supervisor's next good ping no request waits on it: the limits are this node's own. The
//! rate-limit backend lets a request through on a Redis error rather than telling obgate, so a
//! Redis that refuses connections goes unnoticed by it until the supervisor's ping fails (up
//! to a second).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use throttle_kit::RedisBackend;

use crate::metrics::Metrics;

/// How long one Redis call may take before the node stops waiting for it and uses its own
/// limits: far above a healthy Redis's sub-millisecond answer, far below a request timeout.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(250);

/// A live connection to Redis and the rate-limit backend that uses it.
pub struct SharedRedis {
    client: redis::Client,
    prefix: String,
    live: RwLock<Live>,
    /// Whether calls go to Redis: cleared by a failed or late call, set by a good ping.
    up: AtomicBool,
    metrics: Arc<Metrics>,
}

#[derive(Clone)]
struct Live {
    conn: MultiplexedConnection,
    backend: Arc<RedisBackend>,
}

impl std::fmt::Debug for SharedRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRedis")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Why Redis could not be used at start.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the Redis at redis.url: {0}")]
pub struct ConnectError(String);

/// Whether this Redis takes `PEXPIRE key ms NX` (Redis 7.0 and later), which the shared
/// lockout counts failures with. An older Redis answers every such call with an error, so each
/// failed sign-in would fall back to this node's own count and mark Redis down: the lockout
/// would silently stop being shared. Asked of the server itself rather than read from its
/// version string, which managed services may hide (`INFO` renamed or disabled).
async fn supports_expire_nx(
    conn: &mut MultiplexedConnection,
    prefix: &str,
) -> Result<(), ConnectError> {
    let mut probe = redis::cmd("PEXPIRE");
    probe
        .arg(format!("{prefix}:probe:expire-nx"))
        .arg(1_000)
        .arg("NX");
    match tokio::time::timeout(Duration::from_secs(5), probe.query_async::<_, i64>(conn)).await {
        Ok(Ok(_)) => Ok(()),
        // What Redis before 7.0 answers: the NX is one argument too many for it.
        Ok(Err(e))
            if e.kind() == redis::ErrorKind::ResponseError
                && e.detail().is_some_and(|d| {
                    d.contains("wrong number of arguments") || d.contains("syntax error")
                }) =>
        {
            Err(ConnectError(
                "this Redis does not take PEXPIRE with NX, which the shared sign-in lockout \
                 needs: use Redis 7.0 or later"
                    .into(),
            ))
        }
        // Anything else the server refused (NOPERM, a renamed command, LOADING) is named by
        // its code; the detail of a server's answer holds no part of the URL.
        Ok(Err(e)) if e.code().is_some() => Err(ConnectError(format!(
            "it refused the PEXPIRE ... NX the shared lockout uses: {} {}",
            e.code().unwrap_or_default(),
            e.detail().unwrap_or_default()
        ))),
        Ok(Err(e)) => Err(ConnectError(e.kind_name())),
        Err(_) => Err(ConnectError("timed out after 5s".into())),
    }
}

impl SharedRedis {
    /// Connects; a node refuses to start with a Redis it cannot reach or one too old for the
    /// shared lockout (before 7.0), so a typo in `redis.url` or an old server is found at
    /// deploy time rather than as silently per-node limits.
    pub async fn connect(
        url: &str,
        prefix: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, ConnectError> {
        // The URL may hold a password: errors name the key, never the value.
        let client = redis::Client::open(url).map_err(|e| ConnectError(e.kind_name()))?;
        let mut conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| ConnectError("timed out after 5s".into()))?
        .map_err(|e| ConnectError(e.kind_name()))?;
        supports_expire_nx(&mut conn, prefix).await?;
        let live = Live {
            backend: Arc::new(RedisBackend::new(conn.clone())),
            conn,
        };
        Ok(Arc::new(Self {
            client,
            prefix: prefix.to_owned(),
            live: RwLock::new(live),
            up: AtomicBool::new(true),
            metrics,
        }))
    }

    /// Runs one Redis call for `what` within [`CALL_TIMEOUT`]: `None` (the caller uses this
    /// node's own limits) when Redis is down, the call fails, or it is late; the last two mark
    /// Redis down until the supervisor's next good ping.
    pub async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, redis::RedisError>>,
    ) -> Option<T> {
        if !self.up.load(Ordering::Relaxed) {
            return None;
        }
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.failed(what, &e.kind_name());
                None
            }
            Err(_) => {
                self.failed(what, "timed out");
                None
            }
        }
    }

    /// `key` under this deployment's prefix, so several deployments can share one Redis.
    pub fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.prefix)
    }

    fn live(&self) -> Live {
        match self.live.read() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The GCRA backend on the current connection.
    pub fn rate_backend(&self) -> Arc<RedisBackend> {
        self.live().backend
    }

    /// A handle on the current connection for counters.
    pub fn conn(&self) -> MultiplexedConnection {
        self.live().conn
    }

    /// Records a failed Redis call and marks Redis down (the caller falls back to local
    /// limits). Warns once per outage, counts every failure.
    fn failed(&self, what: &str, error: &str) {
        self.metrics.redis_error();
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                operation = what,
                error,
                "redis unavailable; limits are per node until it returns"
            );
        }
    }

    /// Pings every second and reconnects after a failure, until `stop` turns true.
    pub async fn supervise(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            let mut conn = self.conn();
            let ping = tokio::time::timeout(
                Duration::from_secs(2),
                redis::cmd("PING").query_async::<_, String>(&mut conn),
            )
            .await;
            match ping {
                Ok(Ok(_)) => {
                    if !self.up.swap(true, Ordering::Relaxed) {
                        tracing::info!("redis answers again; limits are shared again");
                    }
                    continue;
                }
                Ok(Err(e)) => self.failed("ping", &e.kind_name()),
                Err(_) => self.failed("ping", "timed out"),
            }
            let fresh = tokio::time::timeout(
                Duration::from_secs(2),
                self.client.get_multiplexed_async_connection(),
            )
            .await;
            if let Ok(Ok(conn)) = fresh {
                let live = Live {
                    backend: Arc::new(RedisBackend::new(conn.clone())),
                    conn,
                };
                if let Ok(mut l) = self.live.write() {
                    *l = live;
                }
                // Calls resume after the next good ping on the new connection.
                tracing::info!("redis reconnected");
            }
        }
    }
}

trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for redis::RedisError {
    /// The error's category without its detail, which can echo the URL.
    fn kind_name(&self) -> String {
        format!("{:?}", self.kind())
    }
}
