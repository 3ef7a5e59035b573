//! Per-client rate limits: a GCRA token bucket per (scope, client id), kept in this process
//! or, with `redis.url` set, in Redis so that every node draws from the same bucket.
//!
//! The algorithm is [`throttle_kit`]'s (the same arithmetic in memory and in its Redis Lua
//! script), so one configured rate means the same thing on one node and on many. Buckets
//! are keyed by the *authenticated* client id: an attacker who only knows a client id cannot
//! spend that client's budget.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use throttle_kit::{InMemoryBackend, Quota, RateLimitBackend};

use super::shared::SharedRedis;

/// Where a bucket applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `POST /oauth2/token`.
    Token,
    /// The other client-authenticated OAuth endpoints: `POST /oauth2/introspect`,
    /// `/oauth2/revoke` and `/oauth2/par`. Each request can cost a database write (a revocation
    /// also empties every node's token cache, a pushed request stores a row), so a client
    /// looping on them is held to a budget of its own, apart from its token budget.
    Oauth,
    /// Every account-data request through the gateway.
    Gateway,
}

impl Scope {
    /// The name used in config (`CLIENT:token=…`) and in keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Token => "token",
            Scope::Oauth => "oauth",
            Scope::Gateway => "gateway",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "token" => Some(Scope::Token),
            "oauth" => Some(Scope::Oauth),
            "gateway" => Some(Scope::Gateway),
            _ => None,
        }
    }
}

/// One configured limit: `N/s`, `N/min` or `N/h`, optionally `burst M`, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rate {
    /// No limit.
    Off,
    /// A steady rate with a burst allowance.
    Limit {
        /// Requests allowed per `per`.
        count: u32,
        /// The period `count` is measured over.
        per: Duration,
        /// Requests that may arrive at once after a quiet spell (the bucket's size).
        burst: u32,
    },
}

/// The bucket arithmetic counts in whole milliseconds (in memory and in the Redis script),
/// so a rate above one request per millisecond per client cannot be expressed.
const MAX_PER_SECOND: f64 = 1000.0;

impl Rate {
    /// Parses `100/s`, `6000/min burst 200`, `off`; the error says what is expected.
    pub fn parse(v: &str) -> Result<Self, String> {
        let v = v.trim();
        if v == "off" {
            return Ok(Rate::Off);
        }
        let expected = || format!("\"{v}\" is not a rate like 100/s, 6000/min burst 200, or off");
        let mut words = v.split_whitespace();
        let (count, unit) = words
            .next()
            .and_then(|r| r.split_once('/'))
            .ok_or_else(expected)?;
        let count: u32 = count.parse().map_err(|_| expected())?;
        let per = match unit {
            "s" => Duration::from_secs(1),
            "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(expected()),
        };
        let burst = match (words.next(), words.next(), words.next()) {
            (None, _, _) => count,
            (Some("burst"), Some(b), None) => b.parse().map_err(|_| expected())?,
            _ => return Err(expected()),
        };
        if count == 0 || burst == 0 {
            return Err(format!(
                "\"{v}\": the rate and burst must be at least 1 (use off for no limit)"
            ));
        }
        if f64::from(count) / per.as_secs_f64() > MAX_PER_SECOND {
            return Err(format!(
                "\"{v}\" is above 1000/s per client, the finest rate the limiter counts (use off for no limit)"
            ));
        }
        Ok(Rate::Limit { count, per, burst })
    }

    fn quota(self) -> Option<Quota> {
        match self {
            Rate::Off => None,
            Rate::Limit { count, per, burst } => Some(Quota::from_parts(per / count, burst)),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Off => f.write_str("off"),
            Rate::Limit { count, per, burst } => {
                let unit = match per.as_secs() {
                    1 => "s",
                    60 => "min",
                    _ => "h",
                };
                write!(f, "{count}/{unit} burst {burst}")
            }
        }
    }
}

/// The configured limits: a default per scope and overrides per client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateConfig {
    /// Default for the token endpoint.
    pub token: Rate,
    /// Default for introspection, revocation and pushed authorization requests.
    pub oauth: Rate,
    /// Default for the gateway.
    pub gateway: Rate,
    /// `(client id, scope)` → rate, from `rate_limit.clients`.
    pub clients: HashMap<(String, Scope), Rate>,
}

impl RateConfig {
    /// Parses `rate_limit.clients`: entries `CLIENT_ID:SCOPE=RATE` separated by `;`, where
    /// RATE is as in [`Rate::parse`] (so it may hold spaces: `c1:gateway=50/s burst 100`).
    pub fn parse_clients(v: &str) -> Result<HashMap<(String, Scope), Rate>, String> {
        let mut out = HashMap::new();
        for entry in v.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || {
                format!("\"{entry}\" is not CLIENT_ID:SCOPE=RATE (SCOPE token, oauth or gateway, RATE like 100/s)")
            };
            let (who, rate) = entry.split_once('=').ok_or_else(bad)?;
            let (client, scope) = who.trim().rsplit_once(':').ok_or_else(bad)?;
            let scope = Scope::parse(scope.trim()).ok_or_else(bad)?;
            if client.trim().is_empty() {
                return Err(bad());
            }
            let rate = Rate::parse(rate).map_err(|e| format!("{}: {e}", client.trim()))?;
            out.insert((client.trim().to_owned(), scope), rate);
        }
        Ok(out)
    }

    fn rate(&self, client_id: &str, scope: Scope) -> Rate {
        let default = match scope {
            Scope::Token => self.token,
            Scope::Oauth => self.oauth,
            Scope::Gateway => self.gateway,
        };
        // Most deployments set no per-client rate: then no key is built (an allocation per
        // gateway request).
        if self.clients.is_empty() {
            return default;
        }
        self.clients
            .get(&(client_id.to_owned(), scope))
            .copied()
            .unwrap_or(default)
    }
}

/// A request the limit turned away, and when the client may try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    /// How long until the bucket holds a token again.
    pub retry_after: Duration,
}

/// The buckets.
pub struct RateLimits {
    config: RateConfig,
    local: InMemoryBackend,
    shared: Option<Arc<SharedRedis>>,
}

impl fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimits")
            .field("config", &self.config)
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

impl RateLimits {
    /// Buckets for `config`, in Redis when `shared` is given.
    pub fn new(config: RateConfig, shared: Option<Arc<SharedRedis>>) -> Self {
        Self {
            config,
            local: InMemoryBackend::new(),
            shared,
        }
    }

    /// Takes one token from `client_id`'s bucket for `scope`, or says how long to wait.
    pub async fn check(&self, client_id: &str, scope: Scope) -> Result<(), Limited> {
        let Some(quota) = self.config.rate(client_id, scope).quota() else {
            return Ok(());
        };
        let key = format!("rl:{}:{client_id}", scope.as_str());
        // When Redis is down, late or failing, this node's own bucket decides (a limiter
        // outage must not become a bank outage, nor lift the limits); `SharedRedis` reports it.
        let shared = match &self.shared {
            Some(shared) => {
                let backend = shared.rate_backend();
                let shared_key = shared.key(&key);
                let check = backend.check(&shared_key, &quota);
                shared.call("rate limit", async { Ok(check.await) }).await
            }
            None => None,
        };
        let result = match shared {
            Some(result) => result,
            None => self.local.check(&key, &quota).await,
        };
        if result.allowed {
            Ok(())
        } else {
            Err(Limited {
                retry_after: result.retry_after.unwrap_or(quota.interval()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_units_bursts_and_off() {
        assert_eq!(Rate::parse("off"), Ok(Rate::Off));
        assert_eq!(
            Rate::parse("100/s"),
            Ok(Rate::Limit {
                count: 100,
                per: Duration::from_secs(1),
                burst: 100
            })
        );
        assert_eq!(
            Rate::parse(" 6000/min burst 200 ").map(|r| r.to_string()),
            Ok("6000/min burst 200".to_owned())
        );
        for bad in [
            "",
            "100",
            "100/day",
            "x/s",
            "0/s",
            "5/s burst 0",
            "5/s burst",
            "5/s flood 3",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad:?}");
        }
        let too_fast = Rate::parse("5000/s").unwrap_err();
        assert!(too_fast.contains("1000/s"), "{too_fast}");
    }

    #[test]
    fn client_overrides_name_a_client_a_scope_and_a_rate() {
        let m = RateConfig::parse_clients(
            "tpp_a:gateway=50/s burst 100; tpp_b:token=off; tpp_b:oauth=off",
        )
        .unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[&("tpp_b".to_owned(), Scope::Token)], Rate::Off);
        assert_eq!(m[&("tpp_b".to_owned(), Scope::Oauth)], Rate::Off);
        for bad in [
            "tpp_a=5/s",
            "tpp_a:payments=5/s",
            ":token=5/s",
            "tpp_a:token=fast",
        ] {
            assert!(RateConfig::parse_clients(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_bucket_empties_per_client_and_per_scope() {
        let config = RateConfig {
            token: Rate::parse("2/min").unwrap(),
            oauth: Rate::parse("1/min").unwrap(),
            gateway: Rate::Off,
            clients: RateConfig::parse_clients("vip:token=5/min").unwrap(),
        };
        let limits = RateLimits::new(config, None);
        assert!(limits.check("a", Scope::Token).await.is_ok());
        assert!(limits.check("a", Scope::Token).await.is_ok());
        let limited = limits.check("a", Scope::Token).await.unwrap_err();
        // One token returns every 30 s.
        assert!(limited.retry_after > Duration::from_secs(25), "{limited:?}");
        assert!(
            limited.retry_after <= Duration::from_secs(30),
            "{limited:?}"
        );
        // Another client, another scope, and an override each have their own bucket.
        assert!(limits.check("b", Scope::Token).await.is_ok());
        for _ in 0..100 {
            assert!(limits.check("a", Scope::Gateway).await.is_ok());
        }
        assert!(limits.check("a", Scope::Oauth).await.is_ok());
        assert!(limits.check("a", Scope::Oauth).await.is_err());
        for _ in 0..5 {
            assert!(limits.check("vip", Scope::Token).await.is_ok());
        }
        assert!(limits.check("vip", Scope::Token).await.is_err());
    }
}
