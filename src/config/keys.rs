//! Every configuration key, declared once.

/// One configuration key: its TOML name, its environment name, its default and how to show it.
#[derive(Debug)]
pub struct KeySpec {
    /// Dotted TOML key (`database.url` is `[database] url = …`).
    pub toml: &'static str,
    /// Environment variable: `OBGATE_` + the TOML key upper-cased, dots as underscores.
    pub env: &'static str,
    /// Default when neither the file nor the environment sets it (`None`: computed or required).
    pub default: Option<&'static str>,
    /// Masked in `obgate config` output.
    pub secret: bool,
    /// One line for `obgate config --help` and the README.
    pub help: &'static str,
}

/// All keys, top-level ones first (TOML needs them before any `[section]`).
pub const KEYS: &[KeySpec] = &[
    KeySpec {
        toml: "mode",
        env: "OBGATE_MODE",
        default: Some("sandbox"),
        secret: false,
        help: "`sandbox` (dev keys, demo data, built-in bank) or `production` (strict)",
    },
    KeySpec {
        toml: "listen",
        env: "OBGATE_LISTEN",
        default: Some("127.0.0.1:8080"),
        secret: false,
        help: "socket address to bind",
    },
    KeySpec {
        toml: "public_url",
        env: "OBGATE_PUBLIC_URL",
        default: None,
        secret: false,
        help: "external base URL: OAuth issuer and base of every link (default http://<listen>; https and explicit in production)",
    },
    KeySpec {
        toml: "database.url",
        env: "OBGATE_DATABASE_URL",
        default: Some("sqlite://obgate.db"),
        secret: true,
        help: "`sqlite://FILE` (created when missing) or `postgres://…`; explicit in production",
    },
    KeySpec {
        toml: "database.max_connections",
        env: "OBGATE_DATABASE_MAX_CONNECTIONS",
        default: Some("10"),
        secret: false,
        help: "connection pool size (1–1000)",
    },
    KeySpec {
        toml: "database.migrate_on_start",
        env: "OBGATE_DATABASE_MIGRATE_ON_START",
        default: Some("true"),
        secret: false,
        help: "apply pending migrations when `serve` starts; when false, /readyz stays 503 until `obgate migrate`",
    },
    KeySpec {
        toml: "log.format",
        env: "OBGATE_LOG_FORMAT",
        default: Some("auto"),
        secret: false,
        help: "`auto` (pretty on a terminal, JSON otherwise), `pretty` or `json`",
    },
    KeySpec {
        toml: "log.level",
        env: "OBGATE_LOG_LEVEL",
        default: Some("info"),
        secret: false,
        help: "tracing filter directives, e.g. `info,obgate=debug`",
    },
    KeySpec {
        toml: "http.request_timeout",
        env: "OBGATE_HTTP_REQUEST_TIMEOUT",
        default: Some("30s"),
        secret: false,
        help: "longest a request may take, body upload included (answers 408 past it)",
    },
    KeySpec {
        toml: "http.body_limit",
        env: "OBGATE_HTTP_BODY_LIMIT",
        default: Some("1MiB"),
        secret: false,
        help: "largest request body (answers 413 past it), 1KiB–64MiB",
    },
    KeySpec {
        toml: "http.shutdown_grace",
        env: "OBGATE_HTTP_SHUTDOWN_GRACE",
        default: Some("30s"),
        secret: false,
        help: "on SIGTERM/SIGINT, how long in-flight requests may take to finish",
    },
    KeySpec {
        toml: "oauth.access_token_ttl",
        env: "OBGATE_OAUTH_ACCESS_TOKEN_TTL",
        default: Some("300s"),
        secret: false,
        help: "lifetime of access tokens (10s–1h)",
    },
    KeySpec {
        toml: "oauth.audience",
        env: "OBGATE_OAUTH_AUDIENCE",
        default: None,
        secret: false,
        help: "`aud` of access tokens (default: the public URL)",
    },
    KeySpec {
        toml: "oauth.signing_alg",
        env: "OBGATE_OAUTH_SIGNING_ALG",
        default: Some("ES256"),
        secret: false,
        help: "algorithm of new signing keys: `ES256` or `PS256`",
    },
    KeySpec {
        toml: "oauth.key_rotation",
        env: "OBGATE_OAUTH_KEY_ROTATION",
        default: Some("90d"),
        secret: false,
        help: "rotate the signing key automatically this often (`off` to rotate only with `obgate keys rotate`)",
    },
    KeySpec {
        toml: "oauth.secret_rotation_grace",
        env: "OBGATE_OAUTH_SECRET_ROTATION_GRACE",
        default: Some("24h"),
        secret: false,
        help: "after `rotate-secret`, how long the old client secret keeps working",
    },
    KeySpec {
        toml: "oauth.secret_cache_ttl",
        env: "OBGATE_OAUTH_SECRET_CACHE_TTL",
        default: Some("60s"),
        secret: false,
        help: "how long a verified client secret skips argon2 (`0s` disables the cache)",
    },
    KeySpec {
        toml: "oauth.key_encryption_key",
        env: "OBGATE_OAUTH_KEY_ENCRYPTION_KEY",
        default: None,
        secret: true,
        help: "base64 of 32 random bytes encrypting signing keys at rest; required in production, a published dev key in sandbox",
    },
    KeySpec {
        toml: "pii.key",
        env: "OBGATE_PII_KEY",
        default: None,
        secret: true,
        help: "base64 of 32 random bytes (`openssl rand -base64 32`) encrypting PII at rest; required in production, a published dev key in sandbox",
    },
    KeySpec {
        toml: "kyc.provider",
        env: "OBGATE_KYC_PROVIDER",
        default: Some("sandbox"),
        secret: false,
        help: "identity-verification provider: `sandbox` (deterministic rules, see README) or `http` (a real provider's REST API at `kyc.provider_url`)",
    },
    KeySpec {
        toml: "kyc.provider_url",
        env: "OBGATE_KYC_PROVIDER_URL",
        default: None,
        secret: false,
        help: "base URL of the `http` provider's API (required when `kyc.provider = \"http\"`; https in production)",
    },
    KeySpec {
        toml: "kyc.provider_api_key",
        env: "OBGATE_KYC_PROVIDER_API_KEY",
        default: None,
        secret: true,
        help: "API key sent to the `http` provider as a Bearer token",
    },
    KeySpec {
        toml: "kyc.provider_timeout",
        env: "OBGATE_KYC_PROVIDER_TIMEOUT",
        default: Some("10s"),
        secret: false,
        help: "timeout of one call to the provider",
    },
    KeySpec {
        toml: "kyc.provider_retries",
        env: "OBGATE_KYC_PROVIDER_RETRIES",
        default: Some("3"),
        secret: false,
        help: "retries (with exponential backoff) on a provider 5xx or timeout before the check ends as `error`/`timeout` (0–10)",
    },
    KeySpec {
        toml: "kyc.document_max_bytes",
        env: "OBGATE_KYC_DOCUMENT_MAX_BYTES",
        default: Some("5MiB"),
        secret: false,
        help: "largest accepted document image, after base64 decoding",
    },
    KeySpec {
        toml: "kyc.aml_retention",
        env: "OBGATE_KYC_AML_RETENTION",
        default: Some("1826d"),
        secret: false,
        help: "how long the KYC evidence of an erased customer is kept for AML record-keeping (5 years under the UK MLR 2017); `0s` destroys it with the erasure",
    },
    KeySpec {
        toml: "webhooks.retry_schedule",
        env: "OBGATE_WEBHOOKS_RETRY_SCHEDULE",
        default: Some("5s 5m 30m 2h 5h 10h 10h"),
        secret: false,
        help: "delays between webhook delivery attempts (space-separated; the default spans about a day, as Standard Webhooks suggests)",
    },
    KeySpec {
        toml: "webhooks.timeout",
        env: "OBGATE_WEBHOOKS_TIMEOUT",
        default: Some("10s"),
        secret: false,
        help: "how long one webhook delivery may take before it counts as failed",
    },
    KeySpec {
        toml: "workers.poll_interval",
        env: "OBGATE_WORKERS_POLL_INTERVAL",
        default: Some("1s"),
        secret: false,
        help: "how often background workers (KYC checks, webhook delivery, AML purge) look for due work written by other nodes or before a restart",
    },
];
