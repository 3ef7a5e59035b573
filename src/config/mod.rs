//! The one `Config` obgate runs with.
//!
//! Read from an optional TOML file and `OBGATE_*` environment variables (env wins), then
//! validated as a whole: every bad value is reported at once, each message naming the key
//! where the operator set it (`OBGATE_DATABASE_URL: …` or `database.url in obgate.toml: …`).
//! Every key is declared once in [`keys::KEYS`], which also drives `obgate config` and the
//! README's configuration table.

mod keys;
mod load;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretBox, SecretString};
use url::Url;

pub use keys::{KeySpec, KEYS};
pub use load::{ConfigError, Source};

/// Which kind of deployment this is; decides what defaults are acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Zero-config development and demos: generated dev keys, demo data, built-in sandbox bank.
    Sandbox,
    /// A real deployment: refuses dev keys, a missing PII key or an implicit database.
    Production,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Sandbox => "sandbox",
            Mode::Production => "production",
        })
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Pretty on a terminal, JSON lines otherwise.
    Auto,
    /// Human-readable, coloured when on a terminal.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The storage backend a database URL selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file: the single-node default.
    Sqlite,
    /// PostgreSQL: production, and several nodes sharing one database.
    Postgres,
}

/// A database URL; it may hold a password, so it is kept secret and displayed masked.
#[derive(Clone)]
pub struct DatabaseUrl {
    backend: Backend,
    url: SecretString,
}

impl DatabaseUrl {
    /// Parses and classifies a URL; the error text is meant to follow `KEY: `.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let scheme = raw.split_once(':').map(|(s, _)| s).unwrap_or("");
        let backend = match scheme {
            "sqlite" => Backend::Sqlite,
            "postgres" | "postgresql" => Backend::Postgres,
            "" => {
                return Err(format!(
                    "\"{raw}\" has no scheme, expected sqlite: or postgres:"
                ))
            }
            other => {
                return Err(format!(
                    "unsupported scheme \"{other}\", expected sqlite: or postgres:"
                ))
            }
        };
        if backend == Backend::Postgres {
            Url::parse(raw).map_err(|e| format!("not a valid postgres URL: {e}"))?;
        }
        Ok(Self {
            backend,
            url: SecretString::from(raw.to_owned()),
        })
    }

    /// The backend this URL selects.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The full URL, password included; only for opening the connection.
    pub fn expose(&self) -> &str {
        self.url.expose_secret()
    }

    /// The URL with any password replaced by `***`, safe for logs and `obgate config`: the
    /// one in the user-info part and the `password` query parameter (which PostgreSQL's
    /// connection URLs accept too). Anything else is shown as given.
    pub fn masked(&self) -> String {
        let raw = self.url.expose_secret();
        let Ok(mut u) = Url::parse(raw) else {
            // Only a SQLite URL gets here (a postgres one is parsed when loaded): no password.
            return raw.to_owned();
        };
        let in_query = u
            .query_pairs()
            .any(|(k, _)| k.eq_ignore_ascii_case("password"));
        if u.password().is_none() && !in_query {
            return raw.to_owned();
        }
        if u.password().is_some() {
            let _ = u.set_password(Some("***"));
        }
        if in_query {
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") {
                        "***".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
        u.to_string()
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// A 256-bit AES-256-GCM key from configuration (the PII key, the signing-key encryption key).
pub struct EncryptionKey {
    key: SecretBox<[u8; 32]>,
    is_dev: bool,
}

impl EncryptionKey {
    /// The published sandbox PII key: fine for demo data, refused in production.
    pub const DEV_PII_KEY: [u8; 32] = *b"obgate-sandbox-dev-key-notsecret";
    /// The published sandbox key-encryption key, refused in production.
    pub const DEV_KEK: [u8; 32] = *b"obgate-sandbox-kek-not-a-secret!";

    /// Wraps raw key bytes; `is_dev` marks a published sandbox key.
    pub fn new(bytes: [u8; 32], is_dev: bool) -> Self {
        Self {
            key: SecretBox::new(Box::new(bytes)),
            is_dev,
        }
    }

    /// The raw key, for the cipher only.
    pub fn expose(&self) -> &[u8; 32] {
        self.key.expose_secret()
    }

    /// True when this is the published sandbox key.
    pub fn is_dev(&self) -> bool {
        self.is_dev
    }
}

impl Clone for EncryptionKey {
    fn clone(&self) -> Self {
        Self::new(*self.key.expose_secret(), self.is_dev)
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_dev {
            "[sandbox dev key]"
        } else {
            "[REDACTED]"
        })
    }
}

/// HTTP server limits.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Longest a request may take, body upload included.
    pub request_timeout: Duration,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// How long shutdown waits for in-flight requests before closing connections.
    pub shutdown_grace: Duration,
    /// Longest a client may take to send a request's headers (slowloris guard).
    pub header_timeout: Duration,
    /// Header carrying the caller's address behind a load balancer.
    pub client_ip_header: Option<axum::http::HeaderName>,
}

/// Algorithm of JWT signing keys (RFC 9068 tokens; never HS*, never `none`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningAlg {
    /// ECDSA P-256 with SHA-256: small, fast; the default.
    Es256,
    /// RSASSA-PSS with SHA-256, 2048-bit keys.
    Ps256,
}

impl SigningAlg {
    /// JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Es256 => "ES256",
            SigningAlg::Ps256 => "PS256",
        }
    }

    /// Parses a JOSE name (exactly `ES256` or `PS256`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ES256" => Some(SigningAlg::Es256),
            "PS256" => Some(SigningAlg::Ps256),
            _ => None,
        }
    }
}

/// Authorization-server settings.
#[derive(Clone, Debug)]
pub struct OAuthConfig {
    /// Access-token lifetime.
    pub access_token_ttl: Duration,
    /// `aud` of access tokens.
    pub audience: String,
    /// Algorithm of newly generated signing keys.
    pub signing_alg: SigningAlg,
    /// Automatic rotation period; `None` rotates only on `obgate keys rotate`.
    pub key_rotation: Option<Duration>,
    /// Encrypts signing keys at rest.
    pub key_encryption_key: EncryptionKey,
    /// How long a rotated-out client secret stays valid.
    pub secret_rotation_grace: Duration,
    /// How long a verified client secret skips argon2.
    pub secret_cache_ttl: Duration,
    /// Refresh-token lifetime.
    pub refresh_token_ttl: Duration,
    /// Refuse authorization requests that were not pushed (PAR).
    pub require_par: bool,
    /// PAR `request_uri` lifetime.
    pub request_uri_ttl: Duration,
    /// Brute-force lockout of client authentication.
    pub lockout: crate::limits::LockoutConfig,
}

/// Per-client limits, and where they are kept.
#[derive(Clone, Debug)]
pub struct LimitsConfig {
    /// Rates per scope and per client.
    pub rates: crate::limits::RateConfig,
    /// Redis URL (may hold a password) when limits are shared between nodes.
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key.
    pub redis_key_prefix: String,
}

/// The bank's account API behind the gateway.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// Base URL; `None` means the built-in sandbox bank.
    pub url: Option<Url>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Answer timeout.
    pub timeout: Duration,
    /// Idle connections kept.
    pub pool_size: usize,
    /// A `Name: value` header added to every call.
    pub credential: Option<Secret>,
    /// Largest JSON answer read for filtering.
    pub max_body: usize,
    /// TLS with a client identity (mTLS) or a private CA; `None`: the public web roots.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// Ongoing monitoring.
#[derive(Clone, Debug)]
pub struct MonitoringConfig {
    /// Largest ingest batch.
    pub batch_max: usize,
    /// What a high-risk transaction does.
    pub on_high: crate::monitoring::OnHigh,
    /// The transaction rules' thresholds.
    pub rules: crate::monitoring::rules::RuleConfig,
    /// The customer-rating rules.
    pub rating: crate::monitoring::rating::RatingConfig,
    /// The sanctions list names are screened against.
    pub sanctions: std::sync::Arc<crate::monitoring::sanctions::SanctionsList>,
}

/// The gateway's decision caches.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Longest an entry is used without news (zero: no caching).
    pub cache_ttl: Duration,
    /// Entries per cache.
    pub cache_entries: u64,
    /// Where decisions unwritten at shutdown wait for the next start ([`crate::gateway::spill`]).
    pub decision_spill_file: std::path::PathBuf,
}

/// Consent settings.
#[derive(Clone, Debug)]
pub struct ConsentConfig {
    /// The bank's login-and-consent UI.
    pub ui_url: Url,
    /// How long a new consent can be authorised.
    pub authorisation_window: Duration,
    /// How long the consent UI has to decide.
    pub challenge_ttl: Duration,
}

/// Where customer assertions' verification keys come from.
#[derive(Clone, Debug)]
pub enum AssertionKeys {
    /// No bank key: only the sandbox sign-in (sandbox mode) signs customers in.
    None,
    /// One PEM public key, read at start.
    Pem {
        /// The file it was read from, for messages.
        path: std::path::PathBuf,
        /// The PEM text.
        pem: String,
    },
    /// The bank's JWK set, fetched and cached.
    Jwks(Url),
}

/// The hosted customer pages: branding and how customers sign in.
#[derive(Clone, Debug)]
pub struct PagesConfig {
    /// The bank's name, shown on every page.
    pub bank_name: String,
    /// The bank's logo, when it has one.
    pub logo_url: Option<Url>,
    /// The accent colour, `#rrggbb`.
    pub primary_color: String,
    /// The bank's login page for customers without a session.
    pub login_url: Option<Url>,
    /// The keys that verify the bank's customer assertions.
    pub assertion_keys: AssertionKeys,
    /// The `iss` assertions must carry, when set.
    pub assertion_issuer: Option<String>,
    /// How long a page session lasts.
    pub session_ttl: Duration,
}

/// Which identity-verification provider runs KYC checks.
#[derive(Clone, Debug)]
pub enum ProviderConfig {
    /// Built-in deterministic rules (README), for development and tests.
    Sandbox,
    /// A real provider's REST API.
    Http {
        /// Base URL of the provider's API.
        url: Url,
        /// Bearer API key, if the provider wants one.
        api_key: Option<Secret>,
    },
}

/// A secret string from config (an API key), masked in `Debug`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// KYC settings.
#[derive(Clone, Debug)]
pub struct KycConfig {
    /// The identity-verification provider.
    pub provider: ProviderConfig,
    /// Timeout of one provider call.
    pub provider_timeout: Duration,
    /// Retries on provider 5xx or timeouts.
    pub provider_retries: u32,
    /// Delay before a pending provider check is asked again.
    pub poll_interval: Duration,
    /// How long a check may stay pending before it ends as `timeout`: a provider that never
    /// decides must not hold the customer in `initialized`, where nothing else moves them.
    pub pending_limit: Duration,
    /// Largest accepted decoded document image.
    pub document_max_bytes: usize,
    /// How long an erased customer's KYC evidence is kept for AML record-keeping.
    pub aml_retention: Duration,
}

/// Webhook delivery settings.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Delay before each retry; its length is the number of retries.
    pub retry_schedule: Vec<Duration>,
    /// Timeout of one delivery attempt.
    pub timeout: Duration,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Sandbox or production.
    pub mode: Mode,
    /// Socket address the server binds.
    pub listen: SocketAddr,
    /// External base URL: the OAuth issuer and the base of every link obgate returns.
    pub public_url: Url,
    /// Storage backend and where it is.
    pub database_url: DatabaseUrl,
    /// Connection pool size.
    pub database_max_connections: u32,
    /// Apply pending migrations when `serve` starts.
    pub migrate_on_start: bool,
    /// Pin each async worker thread to its own CPU ([`crate::runtime`]): off by default,
    /// because a pinned worker cannot move off a core that another process keeps busy.
    pub pin_workers: bool,
    /// Log line format.
    pub log_format: LogFormat,
    /// `tracing` filter directives, e.g. `info,obgate=debug`.
    pub log_level: String,
    /// HTTP limits.
    pub http: HttpConfig,
    /// Encryption key for PII at rest.
    pub pii_key: EncryptionKey,
    /// The authorization server.
    pub oauth: OAuthConfig,
    /// Customers and KYC.
    pub kyc: KycConfig,
    /// Consents and the authorization flow.
    pub consents: ConsentConfig,
    /// The hosted consent screen and dashboard.
    pub pages: PagesConfig,
    /// The bank's account API.
    pub upstream: UpstreamConfig,
    /// Gateway decision caches.
    pub gateway: GatewayConfig,
    /// Ongoing monitoring.
    pub monitoring: MonitoringConfig,
    /// Webhook delivery.
    pub webhooks: WebhookConfig,
    /// Rate limits and their Redis.
    pub limits: LimitsConfig,
    /// How often background workers look for due work.
    pub workers_poll_interval: Duration,
    /// Where the sandbox bank is also served over HTTP (sandbox mode only).
    pub sandbox_bank_listen: Option<SocketAddr>,
    /// Non-fatal findings (monitoring settings that look wrong), logged at start.
    pub warnings: Vec<String>,
    /// The effective value and origin of each key, for `obgate config` (secrets masked).
    pub effective: Vec<(&'static KeySpec, String, Source)>,
}

impl Config {
    /// Loads from an optional TOML file and the given environment (normally `std::env::vars()`).
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        load::load(file, env)
    }

    /// The issuer / link base without a trailing slash.
    pub fn public_base(&self) -> &str {
        self.public_url.as_str().trim_end_matches('/')
    }

    /// The effective configuration as TOML, secrets masked, each line saying where it came from.
    pub fn render_masked(&self) -> String {
        let mut out = String::new();
        let mut section = "";
        for (spec, value, source) in &self.effective {
            let (sec, name) = spec.toml.rsplit_once('.').unwrap_or(("", spec.toml));
            if sec != section {
                out.push_str(&format!("\n[{sec}]\n"));
                section = sec;
            }
            out.push_str(&format!("{name} = {value:<40} # {source}\n"));
        }
        out.trim_start().to_owned()
    }
}
