//! Layering (defaults < TOML file < environment) and validation.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use url::Url;

use super::keys::{KeySpec, KEYS};
use super::{
    Config, ConsentConfig, DatabaseUrl, EncryptionKey, GatewayConfig, HttpConfig, KycConfig,
    LimitsConfig, LogFormat, Mode, MonitoringConfig, OAuthConfig, ProviderConfig, Secret,
    SigningAlg, UpstreamConfig, WebhookConfig,
};

/// Where a configuration value came from; error messages and `obgate config` name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Built-in default.
    Default,
    /// Derived from other keys (e.g. `public_url` from `listen`).
    Derived,
    /// The TOML file at this path.
    File(PathBuf),
    /// The environment variable.
    Env,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Derived => f.write_str("derived"),
            Source::File(p) => write!(f, "from {}", p.display()),
            Source::Env => f.write_str("from environment"),
        }
    }
}

/// Every problem found in the configuration, one line each (`KEY: what is wrong`).
#[derive(Debug)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

struct Raw {
    value: String,
    source: Source,
}

struct Layers {
    values: BTreeMap<&'static str, Raw>,
    errors: Vec<String>,
}

impl Layers {
    fn label(&self, spec: &KeySpec) -> String {
        match self.values.get(spec.toml).map(|r| &r.source) {
            Some(Source::File(p)) => format!("{} in {}", spec.toml, p.display()),
            _ => spec.env.to_owned(),
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|r| r.value.as_str())
    }

    fn explicit(&self, key: &str) -> bool {
        matches!(
            self.values.get(key).map(|r| &r.source),
            Some(Source::Env | Source::File(_))
        )
    }

    /// Parses one key; on failure records `LABEL: message` and returns `None`.
    fn parse<T>(&mut self, key: &str, f: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        let spec = spec(key);
        let raw = self.get(key)?.to_owned();
        match f(&raw) {
            Ok(v) => Some(v),
            Err(msg) => {
                let label = self.label(spec);
                self.errors.push(format!("{label}: {msg}"));
                None
            }
        }
    }

    fn fail(&mut self, key: &str, msg: impl fmt::Display) {
        let label = self.label(spec(key));
        self.errors.push(format!("{label}: {msg}"));
    }
}

fn spec(key: &str) -> &'static KeySpec {
    KEYS.iter().find(|k| k.toml == key).unwrap_or(&KEYS[0])
}

/// Flattens a TOML document into dotted keys with scalar values.
fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut Vec<(String, String)>,
    errors: &mut Vec<String>,
) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out, errors),
            toml::Value::String(s) => out.push((key, s.clone())),
            toml::Value::Integer(i) => out.push((key, i.to_string())),
            toml::Value::Boolean(b) => out.push((key, b.to_string())),
            toml::Value::Float(x) => out.push((key, x.to_string())),
            toml::Value::Datetime(d) => out.push((key, d.to_string())),
            toml::Value::Array(_) => errors.push(format!("{key}: expected a single value")),
        }
    }
}

pub(super) fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut layers = Layers {
        values: BTreeMap::new(),
        errors: Vec::new(),
    };
    let mut warnings = Vec::new();

    for spec in KEYS {
        if let Some(d) = spec.default {
            layers.values.insert(
                spec.toml,
                Raw {
                    value: d.to_owned(),
                    source: Source::Default,
                },
            );
        }
    }

    if let Some(path) = file {
        match std::fs::read_to_string(path) {
            Err(e) => layers
                .errors
                .push(format!("--config {}: cannot read: {e}", path.display())),
            Ok(text) => match text.parse::<toml::Table>() {
                Err(e) => layers.errors.push(format!(
                    "--config {}: not valid TOML: {}",
                    path.display(),
                    e.message()
                )),
                Ok(table) => {
                    let mut flat = Vec::new();
                    flatten("", &table, &mut flat, &mut layers.errors);
                    for (key, value) in flat {
                        match KEYS.iter().find(|k| k.toml == key) {
                            Some(spec) => {
                                layers.values.insert(
                                    spec.toml,
                                    Raw {
                                        value,
                                        source: Source::File(path.to_owned()),
                                    },
                                );
                            }
                            None => layers.errors.push(format!(
                                "{key} in {}: unknown key (see `obgate config --help` for the list)",
                                path.display()
                            )),
                        }
                    }
                }
            },
        }
    }

    for (name, value) in env {
        if !name.starts_with("OBGATE_") {
            continue;
        }
        match KEYS.iter().find(|k| k.env == name) {
            Some(spec) => {
                layers.values.insert(
                    spec.toml,
                    Raw {
                        value,
                        source: Source::Env,
                    },
                );
            }
            // The test suites' and benchmarks' own settings share the prefix, and so do the
            // service links Kubernetes puts in every pod of a namespace with a Service named
            // `obgate` (OBGATE_SERVICE_HOST, OBGATE_PORT_8080_TCP, …).
            None if name.starts_with("OBGATE_TEST_")
                || name.starts_with("OBGATE_SERVICE_")
                || name == "OBGATE_PORT"
                || name.starts_with("OBGATE_PORT_") => {}
            // A misspelt variable is refused, as an unknown key in the file is: a warning
            // scrolls past, and `OBGATE_MDOE=production` would start a sandbox (demo keys,
            // customers listed on the sign-in page) where production was meant.
            None => layers.errors.push(match closest_variable(&name) {
                Some(known) => format!("{name}: unknown variable; did you mean {known}?"),
                None => {
                    format!("{name}: unknown variable (see `obgate config --help` for the list)")
                }
            }),
        }
    }

    let mode = layers.parse("mode", |v| match v {
        "sandbox" => Ok(Mode::Sandbox),
        "production" => Ok(Mode::Production),
        other => Err(format!(
            "unknown mode \"{other}\", expected sandbox or production"
        )),
    });
    let production = mode == Some(Mode::Production);

    let listen = layers.parse("listen", |v| {
        v.parse::<SocketAddr>()
            .map_err(|_| format!("\"{v}\" is not a socket address like 127.0.0.1:8080"))
    });

    if !layers.explicit("public_url") {
        if production {
            layers.errors.push(format!(
                "{}: required in production mode (the https URL clients use to reach obgate)",
                spec("public_url").env
            ));
        } else if let Some(addr) = listen {
            let host = if addr.ip().is_unspecified() {
                "localhost".to_owned()
            } else {
                addr.to_string()
            };
            let value = if addr.ip().is_unspecified() {
                format!("http://{host}:{}", addr.port())
            } else {
                format!("http://{host}")
            };
            layers.values.insert(
                "public_url",
                Raw {
                    value,
                    source: Source::Derived,
                },
            );
        }
    }
    let public_url = layers.parse("public_url", |v| {
        let u = Url::parse(v).map_err(|e| format!("\"{v}\" is not an absolute URL: {e}"))?;
        match u.scheme() {
            "https" => {}
            "http" if !production => {}
            "http" => return Err("must be https in production mode".into()),
            s => {
                return Err(format!(
                    "unsupported scheme \"{s}\", expected https: or http:"
                ))
            }
        }
        if u.query().is_some() || u.fragment().is_some() {
            return Err("must not have a query or fragment".into());
        }
        if u.host_str().is_none() {
            return Err("must have a host".into());
        }
        Ok(u)
    });

    if production && !layers.explicit("database.url") {
        layers.errors.push(format!(
            "{}: required in production mode (set postgres://… or an explicit sqlite:// path)",
            spec("database.url").env
        ));
    }
    let database_url = layers.parse("database.url", DatabaseUrl::parse);
    let database_max_connections =
        layers.parse("database.max_connections", |v| match v.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err(format!("\"{v}\" is not a number from 1 to 1000")),
        });
    let migrate_on_start = layers.parse("database.migrate_on_start", parse_bool);
    let pin_workers = layers.parse("runtime.pin_workers", parse_bool);
    let log_format = layers.parse("log.format", |v| match v {
        "auto" => Ok(LogFormat::Auto),
        "pretty" => Ok(LogFormat::Pretty),
        "json" => Ok(LogFormat::Json),
        other => Err(format!(
            "unknown format \"{other}\", expected auto, pretty or json"
        )),
    });
    let log_level = layers.parse("log.level", |v| {
        tracing_subscriber::EnvFilter::try_new(v)
            .map(|_| v.to_owned())
            .map_err(|e| format!("not a valid filter: {e}"))
    });
    let request_timeout = layers.parse("http.request_timeout", |v| {
        parse_duration(v, Duration::from_millis(100), Duration::from_secs(600))
    });
    let header_timeout = layers.parse("http.header_timeout", |v| {
        parse_duration(v, Duration::from_millis(100), Duration::from_secs(300))
    });
    let shutdown_grace = layers.parse("http.shutdown_grace", |v| {
        parse_duration(v, Duration::ZERO, Duration::from_secs(3600))
    });
    let body_limit = layers.parse("http.body_limit", |v| {
        let b: bytesize::ByteSize = v
            .parse()
            .map_err(|_| format!("\"{v}\" is not a size like 1MiB or 65536"))?;
        match usize::try_from(b.as_u64()) {
            Ok(n) if (1024..=64 * 1024 * 1024).contains(&n) => Ok(n),
            _ => Err(format!("{v} is outside 1KiB–64MiB")),
        }
    });

    let pii_key = parse_key(
        &mut layers,
        "pii.key",
        EncryptionKey::DEV_PII_KEY,
        production,
    );
    let key_encryption_key = parse_key(
        &mut layers,
        "oauth.key_encryption_key",
        EncryptionKey::DEV_KEK,
        production,
    );
    let access_token_ttl = layers.parse("oauth.access_token_ttl", |v| {
        parse_duration(v, Duration::from_secs(10), Duration::from_secs(3600))
    });
    let secret_rotation_grace = layers.parse("oauth.secret_rotation_grace", |v| {
        parse_duration(v, Duration::ZERO, Duration::from_secs(30 * 86400))
    });
    let secret_cache_ttl = layers.parse("oauth.secret_cache_ttl", |v| {
        parse_duration(v, Duration::ZERO, Duration::from_secs(3600))
    });
    let signing_alg = layers.parse("oauth.signing_alg", |v| {
        SigningAlg::parse(v)
            .ok_or_else(|| format!("unknown algorithm \"{v}\", expected ES256 or PS256"))
    });
    let key_rotation = layers.parse("oauth.key_rotation", |v| {
        if v == "off" {
            Ok(None)
        } else {
            parse_duration(
                v,
                Duration::from_secs(3600),
                Duration::from_secs(3650 * 86400),
            )
            .map(Some)
        }
    });
    if layers.get("oauth.audience").is_none() {
        if let Some(u) = &public_url {
            layers.values.insert(
                "oauth.audience",
                Raw {
                    value: u.as_str().trim_end_matches('/').to_owned(),
                    source: Source::Derived,
                },
            );
        }
    }
    let audience = layers.parse("oauth.audience", |v| {
        if v.trim().is_empty() {
            Err("must not be empty".to_owned())
        } else {
            Ok(v.to_owned())
        }
    });

    let provider_name = layers.parse("kyc.provider", |v| match v {
        "sandbox" | "http" => Ok(v.to_owned()),
        other => Err(format!(
            "unknown provider \"{other}\", expected sandbox or http"
        )),
    });
    let provider_url = layers.parse("kyc.provider_url", |v| {
        let u = Url::parse(v).map_err(|e| format!("\"{v}\" is not a URL: {e}"))?;
        match u.scheme() {
            "https" => Ok(u),
            "http" if !production => Ok(u),
            _ => Err(if production {
                "must be https in production".to_owned()
            } else {
                "must be an http(s) URL".to_owned()
            }),
        }
    });
    // The sandbox provider passes every customer but a handful of test SSNs: in production it
    // would mark every customer `passed` and open their accounts to TPPs. It is refused there,
    // and left unset it is not the default.
    if production && provider_name.as_deref() != Some("http") {
        let why = if layers.explicit("kyc.provider") {
            "the sandbox provider passes every customer but a few test values and is for \
             sandbox mode only; set http with kyc.provider_url"
        } else {
            "required in production mode: set http with kyc.provider_url (the sandbox provider \
             is for sandbox mode only)"
        };
        if provider_name.is_some() {
            layers.fail("kyc.provider", why);
        }
    }
    let provider_api_key = layers.get("kyc.provider_api_key").map(Secret::new);
    let provider = match provider_name.as_deref() {
        Some("http") => match provider_url {
            Some(url) => Some(ProviderConfig::Http {
                url,
                api_key: provider_api_key,
            }),
            None => {
                if layers.get("kyc.provider_url").is_none() {
                    layers.fail("kyc.provider_url", "required when kyc.provider is http");
                }
                None
            }
        },
        Some(_) => Some(ProviderConfig::Sandbox),
        None => None,
    };
    let provider_timeout = layers.parse("kyc.provider_timeout", |v| {
        parse_duration(v, Duration::from_millis(100), Duration::from_secs(120))
    });
    let provider_retries = layers.parse("kyc.provider_retries", |v| match v.parse::<u32>() {
        Ok(n) if n <= 10 => Ok(n),
        _ => Err(format!("\"{v}\" is not a whole number from 0 to 10")),
    });
    let poll_interval = layers.parse("kyc.poll_interval", |v| {
        parse_duration(v, Duration::from_millis(10), Duration::from_secs(3600))
    });
    let pending_limit = layers.parse("kyc.pending_limit", |v| {
        parse_duration(
            v,
            Duration::from_secs(1),
            Duration::from_secs(30 * 24 * 3600),
        )
    });
    let document_max_bytes = layers.parse("kyc.document_max_bytes", |v| {
        let b: bytesize::ByteSize = v
            .parse()
            .map_err(|_| format!("\"{v}\" is not a size like 5MiB"))?;
        match usize::try_from(b.as_u64()) {
            Ok(n) if (1024..=32 * 1024 * 1024).contains(&n) => Ok(n),
            _ => Err(format!("{v} is outside 1KiB–32MiB")),
        }
    });
    let aml_retention = layers.parse("kyc.aml_retention", |v| {
        parse_duration(v, Duration::ZERO, Duration::from_secs(50 * 366 * 86400))
    });
    let retry_schedule = layers.parse("webhooks.retry_schedule", |v| {
        let steps: Result<Vec<Duration>, String> = v
            .split_whitespace()
            .map(|s| parse_duration(s, Duration::ZERO, Duration::from_secs(7 * 86400)))
            .collect();
        match steps {
            Ok(s) if !s.is_empty() && s.len() <= 50 => Ok(s),
            Ok(_) => Err("expected 1 to 50 durations separated by spaces".to_owned()),
            Err(e) => Err(e),
        }
    });
    let webhook_timeout = layers.parse("webhooks.timeout", |v| {
        parse_duration(v, Duration::from_millis(100), Duration::from_secs(120))
    });
    let refresh_token_ttl = layers.parse("oauth.refresh_token_ttl", |v| {
        parse_duration(
            v,
            Duration::from_secs(60),
            Duration::from_secs(3650 * 86400),
        )
    });
    let require_par = layers.parse("oauth.require_par", parse_bool);
    let request_uri_ttl = layers.parse("oauth.request_uri_ttl", |v| {
        parse_duration(v, Duration::from_secs(10), Duration::from_secs(600))
    });
    if layers.get("consents.ui_url").is_none() {
        if let Some(u) = &public_url {
            layers.values.insert(
                "consents.ui_url",
                Raw {
                    value: format!("{}/consent", u.as_str().trim_end_matches('/')),
                    source: Source::Derived,
                },
            );
        }
    }
    let ui_url = layers.parse("consents.ui_url", |v| {
        let u = Url::parse(v).map_err(|e| format!("\"{v}\" is not a URL: {e}"))?;
        match u.scheme() {
            "https" => Ok(u),
            "http" if !production => Ok(u),
            _ => Err("must be an https URL".to_owned()),
        }
    });
    let authorisation_window = layers.parse("consents.authorisation_window", |v| {
        parse_duration(v, Duration::from_secs(60), Duration::from_secs(30 * 86400))
    });
    let challenge_ttl = layers.parse("consents.challenge_ttl", |v| {
        parse_duration(v, Duration::from_secs(30), Duration::from_secs(3600))
    });
    let pages = parse_pages(&mut layers, production);
    let upstream_url = layers.parse("upstream.url", |v| {
        let u = Url::parse(v).map_err(|e| format!("\"{v}\" is not a URL: {e}"))?;
        match u.scheme() {
            "https" => Ok(u),
            "http" if !production => Ok(u),
            _ => Err("must be an https URL (http only in sandbox mode)".to_owned()),
        }
    });
    if production && layers.get("upstream.url").is_none() {
        layers.fail(
            "upstream.url",
            "required in production mode; the built-in sandbox bank is for sandbox mode only",
        );
    }
    let upstream_connect_timeout = layers.parse("upstream.connect_timeout", |v| {
        parse_duration(v, Duration::from_millis(10), Duration::from_secs(60))
    });
    let upstream_timeout = layers.parse("upstream.timeout", |v| {
        parse_duration(v, Duration::from_millis(10), Duration::from_secs(300))
    });
    let upstream_pool_size = layers.parse("upstream.pool_size", |v| match v.parse::<usize>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err(format!("\"{v}\" is not a whole number from 1 to 10000")),
    });
    let upstream_credential = match layers.get("upstream.credential") {
        None => None,
        Some(v) if v.split_once(':').is_some_and(|(n, _)| !n.trim().is_empty()) => {
            Some(Secret::new(v))
        }
        Some(_) => {
            layers.fail("upstream.credential", "expected `Header-Name: value`");
            None
        }
    };
    let upstream_max_body = layers.parse("upstream.max_body", |v| {
        let b: bytesize::ByteSize = v
            .parse()
            .map_err(|_| format!("\"{v}\" is not a size like 10MiB"))?;
        match usize::try_from(b.as_u64()) {
            Ok(n) if (1024..=256 * 1024 * 1024).contains(&n) => Ok(n),
            _ => Err(format!("{v} is outside 1KiB–256MiB")),
        }
    });
    let monitoring = monitoring(&mut layers, production, &mut warnings);
    let upstream_tls = upstream_tls(&mut layers);
    let cache_ttl = layers.parse("gateway.cache_ttl", |v| {
        parse_duration(v, Duration::ZERO, Duration::from_secs(300))
    });
    let cache_entries = layers.parse("gateway.cache_entries", |v| match v.parse::<u64>() {
        Ok(n) if (100..=100_000_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "\"{v}\" is not a whole number from 100 to 100000000"
        )),
    });
    let decision_spill_file = layers.parse("gateway.decision_spill_file", |v| {
        if v.trim().is_empty() {
            Err("must name a file".to_owned())
        } else {
            Ok(std::path::PathBuf::from(v))
        }
    });
    let sandbox_bank_listen = if production && layers.get("sandbox.bank_listen").is_some() {
        layers.fail(
            "sandbox.bank_listen",
            "the sandbox bank serves made-up data without authentication: sandbox mode only",
        );
        None
    } else {
        layers.parse("sandbox.bank_listen", |v| {
            v.parse::<SocketAddr>()
                .map_err(|_| format!("\"{v}\" is not a socket address like 127.0.0.1:8081"))
        })
    };
    let client_ip_header = layers.parse("http.client_ip_header", |v| {
        axum::http::HeaderName::try_from(v.trim())
            .map_err(|_| format!("\"{v}\" is not an HTTP header name"))
    });
    let lockout_after = layers.parse("oauth.lockout_after", |v| {
        whole(v, 0, 10_000).map(|n| u32::try_from(n).unwrap_or(10_000))
    });
    // By default an address locks at the same count as a client id.
    let lockout_after_address = match layers.get("oauth.lockout_after_address") {
        None => Some(None),
        Some(_) => layers.parse("oauth.lockout_after_address", |v| {
            // Not 0: admin keys and sign-ins are counted against their address alone, so an
            // address that is never locked would let them be guessed without end.
            whole(v, 1, 10_000).map(|n| Some(u32::try_from(n).unwrap_or(10_000)))
        }),
    };
    let lockout_window = layers.parse("oauth.lockout_window", |v| {
        parse_duration(v, Duration::from_secs(1), Duration::from_secs(24 * 3600))
    });
    let rate_token = layers.parse("rate_limit.token", crate::limits::Rate::parse);
    let rate_oauth = layers.parse("rate_limit.oauth", crate::limits::Rate::parse);
    let rate_gateway = layers.parse("rate_limit.gateway", crate::limits::Rate::parse);
    let rate_clients = match layers.get("rate_limit.clients") {
        None => Some(Default::default()),
        Some(_) => layers.parse(
            "rate_limit.clients",
            crate::limits::RateConfig::parse_clients,
        ),
    };
    let redis_url = match layers.get("redis.url") {
        None => None,
        Some(v) if v.starts_with("redis://") || v.starts_with("rediss://") => Some(Secret::new(v)),
        Some(_) => {
            layers.fail("redis.url", "expected a redis:// or rediss:// URL");
            None
        }
    };
    let redis_key_prefix = layers.parse("redis.key_prefix", |v| {
        let ok = !v.is_empty()
            && v.len() <= 64
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if ok {
            Ok(v.to_owned())
        } else {
            Err(format!(
                "\"{v}\" must be 1 to 64 letters, digits, - _ . or :"
            ))
        }
    });
    let workers_poll_interval = layers.parse("workers.poll_interval", |v| {
        parse_duration(v, Duration::from_millis(10), Duration::from_secs(600))
    });

    let effective = KEYS
        .iter()
        .filter_map(|spec| {
            let Some(raw) = layers.values.get(spec.toml) else {
                // Unset keys with a sandbox dev default.
                let dev = matches!(spec.toml, "pii.key" | "oauth.key_encryption_key");
                return (dev && !production).then(|| {
                    (
                        spec,
                        "\"*** (sandbox dev key)\"".to_owned(),
                        Source::Default,
                    )
                });
            };
            let shown = if spec.toml == "database.url" {
                database_url
                    .as_ref()
                    .map(DatabaseUrl::masked)
                    .unwrap_or_else(|| raw.value.clone())
            } else if spec.secret {
                "***".to_owned()
            } else {
                raw.value.clone()
            };
            let literal = if shown.parse::<i64>().is_ok() || shown == "true" || shown == "false" {
                shown
            } else {
                format!("{shown:?}")
            };
            Some((spec, literal, raw.source.clone()))
        })
        .collect();

    let config = (|| {
        Some(Config {
            mode: mode?,
            listen: listen?,
            public_url: public_url?,
            database_url: database_url?,
            database_max_connections: database_max_connections?,
            migrate_on_start: migrate_on_start?,
            pin_workers: pin_workers?,
            log_format: log_format?,
            log_level: log_level?,
            http: HttpConfig {
                request_timeout: request_timeout?,
                body_limit: body_limit?,
                shutdown_grace: shutdown_grace?,
                header_timeout: header_timeout?,
                client_ip_header: match layers.get("http.client_ip_header") {
                    None => None,
                    Some(_) => Some(client_ip_header?),
                },
            },
            pii_key: pii_key?,
            oauth: OAuthConfig {
                access_token_ttl: access_token_ttl?,
                audience: audience?,
                signing_alg: signing_alg?,
                key_rotation: key_rotation?,
                key_encryption_key: key_encryption_key?,
                secret_rotation_grace: secret_rotation_grace?,
                secret_cache_ttl: secret_cache_ttl?,
                refresh_token_ttl: refresh_token_ttl?,
                require_par: require_par?,
                request_uri_ttl: request_uri_ttl?,
                lockout: crate::limits::LockoutConfig {
                    after: lockout_after?,
                    after_address: lockout_after_address?.unwrap_or(lockout_after?),
                    window: lockout_window?,
                },
            },
            consents: ConsentConfig {
                ui_url: ui_url?,
                authorisation_window: authorisation_window?,
                challenge_ttl: challenge_ttl?,
            },
            pages: pages?,
            kyc: KycConfig {
                provider: provider?,
                provider_timeout: provider_timeout?,
                provider_retries: provider_retries?,
                poll_interval: poll_interval?,
                pending_limit: pending_limit?,
                document_max_bytes: document_max_bytes?,
                aml_retention: aml_retention?,
            },
            upstream: UpstreamConfig {
                url: upstream_url,
                connect_timeout: upstream_connect_timeout?,
                timeout: upstream_timeout?,
                pool_size: upstream_pool_size?,
                credential: upstream_credential,
                max_body: upstream_max_body?,
                tls: upstream_tls,
            },
            gateway: GatewayConfig {
                cache_ttl: cache_ttl?,
                cache_entries: cache_entries?,
                decision_spill_file: decision_spill_file?,
            },
            monitoring: monitoring?,
            webhooks: WebhookConfig {
                retry_schedule: retry_schedule?,
                timeout: webhook_timeout?,
            },
            limits: LimitsConfig {
                rates: crate::limits::RateConfig {
                    token: rate_token?,
                    oauth: rate_oauth?,
                    gateway: rate_gateway?,
                    clients: rate_clients?,
                },
                redis_url,
                redis_key_prefix: redis_key_prefix?,
            },
            workers_poll_interval: workers_poll_interval?,
            sandbox_bank_listen,
            warnings,
            effective,
        })
    })();
    match config {
        Some(config) if layers.errors.is_empty() => Ok(config),
        _ => Err(ConfigError(layers.errors)),
    }
}

fn whole(v: &str, min: u64, max: u64) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("\"{v}\" is not a whole number from {min} to {max}")),
    }
}

fn fraction(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if (0.5..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("\"{v}\" is not a number from 0.5 to 1")),
    }
}

/// `KEY:VALUE` pairs separated by spaces.
fn pairs(v: &str) -> Result<Vec<(String, u64)>, String> {
    v.split_whitespace()
        .map(|p| {
            let (k, n) = p
                .split_once(':')
                .ok_or_else(|| format!("\"{p}\" is not KEY:NUMBER"))?;
            let n = n
                .parse::<u64>()
                .map_err(|_| format!("\"{n}\" in \"{p}\" is not a whole number"))?;
            Ok((k.to_owned(), n))
        })
        .collect()
}

/// The `monitoring.*` settings.
fn monitoring(
    layers: &mut Layers,
    production: bool,
    warnings: &mut Vec<String>,
) -> Option<MonitoringConfig> {
    use crate::monitoring::{rating::RatingConfig, rules::RuleConfig, sanctions::SanctionsList};
    let d = Duration::from_secs;
    let batch_max = layers.parse("monitoring.batch_max", |v| whole(v, 1, 10_000));
    let on_high = layers.parse("monitoring.on_high", |v| match v {
        "suspend" => Ok(crate::monitoring::OnHigh::Suspend),
        "flag" => Ok(crate::monitoring::OnHigh::Flag),
        _ => Err(format!("\"{v}\" is not `suspend` or `flag`")),
    });
    let large_amount = layers.parse("monitoring.large_amount", |v| {
        let p = pairs(v)?;
        if let Some((c, _)) = p
            .iter()
            .find(|(c, _)| c != "*" && !crate::monitoring::amount::valid_currency(c))
        {
            return Err(format!("\"{c}\" is not an ISO 4217 currency code"));
        }
        if !p.iter().any(|(c, _)| c == "*") {
            return Err("needs a `*:AMOUNT` entry for every other currency".into());
        }
        if p.iter().any(|(_, n)| *n == 0) {
            return Err("thresholds must be above zero".into());
        }
        Ok(p.into_iter().collect::<std::collections::BTreeMap<_, _>>())
    });
    let rating_percent = layers.parse("monitoring.rating_percent", |v| {
        let p = pairs(v)?;
        let get = |k: &str| {
            p.iter()
                .find(|(c, _)| c == k)
                .map(|(_, n)| *n)
                .filter(|n| (1..=100).contains(n))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("needs {k}:PERCENT with a percent from 1 to 100"))
        };
        Ok([get("low")?, get("medium")?, get("high")?])
    });
    let pct =
        |layers: &mut Layers, key: &str| layers.parse(key, |v| whole(v, 1, 100).map(|n| n as u32));
    let count = |layers: &mut Layers, key: &str| {
        layers.parse(key, |v| whole(v, 1, 10_000).map(|n| n as usize))
    };
    let window = |layers: &mut Layers, key: &str| {
        layers.parse(key, |v| parse_duration(v, d(60), d(30 * 86_400)))
    };
    let structuring_band_percent = pct(layers, "monitoring.structuring_band_percent");
    let structuring_count = count(layers, "monitoring.structuring_count");
    let structuring_window = window(layers, "monitoring.structuring_window");
    let velocity_debits = count(layers, "monitoring.velocity_debits");
    let velocity_window = window(layers, "monitoring.velocity_window");
    let factor =
        |layers: &mut Layers, key: &str| layers.parse(key, |v| whole(v, 1, 1000).map(|n| n as u32));
    let velocity_daily_factor = factor(layers, "monitoring.velocity_daily_factor");
    let velocity_daily_min = count(layers, "monitoring.velocity_daily_min");
    let rapid_window = window(layers, "monitoring.rapid_window");
    let rapid_credit_percent = pct(layers, "monitoring.rapid_credit_percent");
    let rapid_debit_percent = pct(layers, "monitoring.rapid_debit_percent");
    let new_counterparty_factor = factor(layers, "monitoring.new_counterparty_factor");
    let new_counterparty_min_history = count(layers, "monitoring.new_counterparty_min_history");
    let sanctions_threshold = layers.parse("monitoring.sanctions_threshold", fraction);
    let sanctions_proximity = layers.parse("monitoring.sanctions_proximity", fraction);
    let high_risk_countries = layers.parse("monitoring.high_risk_countries", |v| {
        let list: Vec<String> = v.split_whitespace().map(str::to_uppercase).collect();
        match list
            .iter()
            .find(|c| !crate::kyc::rules::COUNTRIES.contains(&c.as_str()))
        {
            Some(c) => Err(format!("\"{c}\" is not an ISO 3166 alpha-2 country code")),
            None => Ok(list),
        }
    });
    let new_relationship = layers.parse("monitoring.new_relationship", |v| {
        parse_duration(v, Duration::ZERO, d(10 * 365 * 86_400))
    });
    let sanctions = match layers.get("monitoring.sanctions_list").map(str::to_owned) {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) => {
                let list = SanctionsList::parse(&text);
                if list.is_empty() {
                    layers.fail(
                        "monitoring.sanctions_list",
                        format!("{path} holds no names"),
                    );
                }
                Some(list)
            }
            Err(e) => {
                layers.fail(
                    "monitoring.sanctions_list",
                    format!("cannot read {path}: {e}"),
                );
                None
            }
        },
        None if production => {
            warnings.push(
                "monitoring.sanctions_list is not set: counterparty names are not screened".into(),
            );
            Some(SanctionsList::parse(""))
        }
        None => Some(SanctionsList::sandbox()),
    };
    let defaults = RuleConfig::default();
    Some(MonitoringConfig {
        batch_max: usize::try_from(batch_max?).unwrap_or(10_000),
        on_high: on_high?,
        rules: RuleConfig {
            large_amount: large_amount?,
            rating_percent: rating_percent?,
            structuring_band_percent: structuring_band_percent?,
            structuring_count: structuring_count?,
            structuring_window: structuring_window?,
            velocity_debits: velocity_debits?,
            velocity_window: velocity_window?,
            velocity_daily_factor: velocity_daily_factor?,
            velocity_daily_min: velocity_daily_min?,
            rapid_window: rapid_window?,
            rapid_credit_percent: rapid_credit_percent?,
            rapid_debit_percent: rapid_debit_percent?,
            new_counterparty_factor: new_counterparty_factor?,
            new_counterparty_min_history: new_counterparty_min_history?,
            sanctions_threshold: sanctions_threshold?,
            ..defaults
        },
        rating: RatingConfig {
            high_risk_countries: high_risk_countries?,
            sanctions_proximity: sanctions_proximity?,
            new_relationship: new_relationship?,
        },
        sanctions: std::sync::Arc::new(sanctions?),
    })
}

/// The upstream's TLS settings: a client identity for mTLS and/or a private CA. Files are read
/// and checked now, so a wrong path or a key that does not match its certificate stops start-up
/// naming the setting.
fn upstream_tls(layers: &mut Layers) -> Option<std::sync::Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert = layers.get("upstream.client_cert").map(str::to_owned);
    let key = layers.get("upstream.client_key").map(str::to_owned);
    let ca = layers.get("upstream.ca_file").map(str::to_owned);
    if cert.is_none() && key.is_none() && ca.is_none() {
        return None;
    }
    let certs_in = |layers: &mut Layers, name: &str, path: &str| {
        let certs: Result<Vec<CertificateDer<'static>>, _> =
            CertificateDer::pem_file_iter(path).and_then(|i| i.collect());
        match certs {
            Ok(c) if !c.is_empty() => Some(c),
            Ok(_) => {
                layers.fail(name, format!("{path} holds no PEM certificate"));
                None
            }
            Err(e) => {
                layers.fail(name, format!("cannot read certificates from {path}: {e}"));
                None
            }
        }
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b,
        Err(e) => {
            layers.fail("upstream.client_cert", format!("TLS setup failed: {e}"));
            return None;
        }
    };
    let mut roots = rustls::RootCertStore::empty();
    match &ca {
        Some(path) => {
            for c in certs_in(layers, "upstream.ca_file", path)? {
                if let Err(e) = roots.add(c) {
                    layers.fail("upstream.ca_file", format!("{path}: {e}"));
                    return None;
                }
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = builder.with_root_certificates(roots);
    let config = match (cert, key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = certs_in(layers, "upstream.client_cert", &cert)?;
            let private = match PrivateKeyDer::from_pem_file(&key) {
                Ok(k) => k,
                Err(e) => {
                    layers.fail(
                        "upstream.client_key",
                        format!("cannot read a private key from {key}: {e}"),
                    );
                    return None;
                }
            };
            match builder.with_client_auth_cert(chain, private) {
                Ok(c) => c,
                Err(e) => {
                    layers.fail(
                        "upstream.client_key",
                        format!("does not match upstream.client_cert: {e}"),
                    );
                    return None;
                }
            }
        }
        (Some(_), None) => {
            layers.fail("upstream.client_key", "required with upstream.client_cert");
            return None;
        }
        (None, Some(_)) => {
            layers.fail("upstream.client_cert", "required with upstream.client_key");
            return None;
        }
    };
    Some(std::sync::Arc::new(config))
}

/// A 256-bit key in base64: the published dev key when unset in sandbox mode, required in
/// production, and refused there when it equals the published dev key.
fn parse_key(
    layers: &mut Layers,
    key: &str,
    dev: [u8; 32],
    production: bool,
) -> Option<EncryptionKey> {
    let Some(raw) = layers.get(key).map(str::to_owned) else {
        if production {
            layers.fail(
                key,
                "required in production mode; generate one with `openssl rand -base64 32`",
            );
            return None;
        }
        return Some(EncryptionKey::new(dev, true));
    };
    let bytes = layers.parse(key, |_| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .map_err(|_| "not valid base64".to_owned())?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| format!("decodes to {} bytes, expected 32", bytes.len()))
    })?;
    let is_dev = bytes == dev;
    if is_dev && production {
        layers.fail(
            key,
            "this is the published sandbox dev key; generate one with `openssl rand -base64 32`",
        );
        return None;
    }
    Some(EncryptionKey::new(bytes, is_dev))
}

/// The hosted pages' keys: branding checked for accessibility, and at most one source of
/// the bank's assertion keys.
fn parse_pages(layers: &mut Layers, production: bool) -> Option<super::PagesConfig> {
    let web_url = |v: &str| -> Result<Url, String> {
        let u = Url::parse(v).map_err(|e| format!("\"{v}\" is not a URL: {e}"))?;
        match u.scheme() {
            "https" => Ok(u),
            "http" if !production => Ok(u),
            _ => Err("must be an https URL".to_owned()),
        }
    };
    let bank_name = layers.parse("pages.bank_name", |v| {
        let v = v.trim();
        if v.is_empty() || v.chars().count() > 80 || v.chars().any(char::is_control) {
            Err("must be 1 to 80 printable characters".to_owned())
        } else {
            Ok(v.to_owned())
        }
    });
    let logo_url = layers.parse("pages.logo_url", web_url);
    let primary_color = layers.parse("pages.primary_color", parse_accent_colour);
    let login_url = layers.parse("pages.login_url", web_url);
    let issuer = layers.parse("pages.assertion_issuer", |v| Ok(v.to_owned()));
    let session_ttl = layers.parse("pages.session_ttl", |v| {
        parse_duration(v, Duration::from_secs(60), Duration::from_secs(7200))
    });
    let pem_path = layers.get("pages.assertion_public_key").map(str::to_owned);
    let jwks = layers.parse("pages.assertion_jwks_url", web_url);
    let keys = match (pem_path, jwks) {
        (Some(_), Some(_)) => {
            layers.fail(
                "pages.assertion_jwks_url",
                "set either pages.assertion_public_key or pages.assertion_jwks_url, not both",
            );
            None
        }
        (Some(path), None) => match std::fs::read_to_string(&path) {
            Ok(pem) if pem.contains("-----BEGIN PUBLIC KEY-----") => {
                Some(super::AssertionKeys::Pem {
                    path: path.into(),
                    pem,
                })
            }
            Ok(_) => {
                layers.fail(
                    "pages.assertion_public_key",
                    format!("{path} holds no PEM public key (-----BEGIN PUBLIC KEY-----)"),
                );
                None
            }
            Err(e) => {
                layers.fail(
                    "pages.assertion_public_key",
                    format!("cannot read {path}: {e}"),
                );
                None
            }
        },
        (None, Some(url)) => Some(super::AssertionKeys::Jwks(url)),
        (None, None) => Some(super::AssertionKeys::None),
    };
    Some(super::PagesConfig {
        bank_name: bank_name?,
        logo_url,
        primary_color: primary_color?,
        login_url,
        assertion_keys: keys?,
        assertion_issuer: issuer,
        session_ttl: session_ttl?,
    })
}

/// `#rrggbb` whose contrast with white text is at least 4.5:1 (WCAG 2.1 AA), because the
/// pages put white button text on it.
fn parse_accent_colour(v: &str) -> Result<String, String> {
    let hex = v
        .strip_prefix('#')
        .filter(|h| h.len() == 6 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| format!("\"{v}\" is not a colour like #1d4ed8"))?;
    let channel = |i: usize| -> f64 {
        let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0)) / 255.0;
        if c <= 0.039_28 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let luminance = 0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4);
    let contrast = 1.05 / (luminance + 0.05);
    if contrast < 4.5 {
        return Err(format!(
            "{v} gives white text a contrast of {contrast:.2}:1; WCAG AA needs 4.5:1, so pick a darker colour"
        ));
    }
    Ok(format!("#{}", hex.to_ascii_lowercase()))
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("\"{v}\" is not a boolean (true or false)")),
    }
}

fn parse_duration(v: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = humantime::parse_duration(v)
        .map_err(|_| format!("\"{v}\" is not a duration like 30s, 500ms or 2m"))?;
    if d < min || d > max {
        return Err(format!(
            "{v} is outside {}–{}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

/// The known variable a misspelt `name` most likely meant, when one is close enough to name.
/// Compared without the `OBGATE_` every name shares, which would make any two look alike.
fn closest_variable(name: &str) -> Option<&'static str> {
    let bare = |n: &'static str| n.strip_prefix("OBGATE_").unwrap_or(n);
    let name = name.strip_prefix("OBGATE_").unwrap_or(name);
    KEYS.iter()
        .map(|k| (strsim::jaro_winkler(name, bare(k.env)), k.env))
        .filter(|(score, _)| *score >= 0.9)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, env)| env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Backend;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn errors(pairs: &[(&str, &str)]) -> Vec<String> {
        match Config::load(None, env(pairs)) {
            Ok(_) => Vec::new(),
            Err(e) => e.0,
        }
    }

    #[test]
    fn the_pages_colour_must_leave_white_text_readable() {
        // #1d4ed8 gives 6.7:1; #767676 is the lightest grey at 4.54:1; #777777 is 4.48:1.
        assert_eq!(parse_accent_colour("#1D4ED8"), Ok("#1d4ed8".into()));
        assert_eq!(parse_accent_colour("#767676"), Ok("#767676".into()));
        let e = parse_accent_colour("#777777").unwrap_err();
        assert!(e.contains("4.48:1") && e.contains("4.5:1"), "{e}");
        assert!(
            parse_accent_colour("#ffff00").is_err(),
            "yellow under white text"
        );
        assert!(parse_accent_colour("blue")
            .unwrap_err()
            .contains("not a colour"));
        assert!(parse_accent_colour("#12345").is_err());
        let errs = errors(&[("OBGATE_PAGES_PRIMARY_COLOR", "#ffffff")]);
        assert!(
            errs[0].starts_with(
                "OBGATE_PAGES_PRIMARY_COLOR: #ffffff gives white text a contrast of 1.00:1"
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn the_banks_assertion_key_comes_from_one_readable_source() {
        let errs = errors(&[
            ("OBGATE_PAGES_ASSERTION_PUBLIC_KEY", "/nonexistent/bank.pem"),
            (
                "OBGATE_PAGES_ASSERTION_JWKS_URL",
                "https://bank.example/jwks",
            ),
        ]);
        assert!(errs.iter().any(|e| e.contains("not both")), "{errs:?}");
        let errs = errors(&[("OBGATE_PAGES_ASSERTION_PUBLIC_KEY", "/nonexistent/bank.pem")]);
        assert!(
            errs[0].starts_with(
                "OBGATE_PAGES_ASSERTION_PUBLIC_KEY: cannot read /nonexistent/bank.pem"
            ),
            "{errs:?}"
        );
        let errs = errors(&[("OBGATE_PAGES_ASSERTION_PUBLIC_KEY", "Cargo.toml")]);
        assert!(errs[0].contains("holds no PEM public key"), "{errs:?}");
        let errs = errors(&[("OBGATE_PAGES_SESSION_TTL", "3h")]);
        assert!(errs[0].starts_with("OBGATE_PAGES_SESSION_TTL:"), "{errs:?}");
        let c = Config::load(
            None,
            env(&[("OBGATE_PAGES_ASSERTION_JWKS_URL", "http://127.0.0.1:9/jwks")]),
        );
        assert!(matches!(
            c.map(|c| c.pages.assertion_keys),
            Ok(crate::config::AssertionKeys::Jwks(_))
        ));
    }

    #[test]
    fn zero_config_is_a_sandbox_on_localhost_with_sqlite() -> Result<(), ConfigError> {
        let c = Config::load(None, env(&[]))?;
        assert_eq!(c.mode, Mode::Sandbox);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_base(), "http://127.0.0.1:8080");
        assert_eq!(c.database_url.backend(), Backend::Sqlite);
        assert!(c.pii_key.is_dev());
        assert!(c.oauth.key_encryption_key.is_dev());
        assert_eq!(c.oauth.audience, "http://127.0.0.1:8080");
        assert_eq!(c.oauth.access_token_ttl, Duration::from_secs(300));
        assert_eq!(c.oauth.signing_alg, SigningAlg::Es256);
        assert_eq!(c.oauth.key_rotation, Some(Duration::from_secs(90 * 86400)));
        Ok(())
    }

    #[test]
    fn the_address_lockout_follows_the_id_lockout_unless_set_and_is_never_off_alone(
    ) -> Result<(), ConfigError> {
        let lockout = |pairs: &[(&str, &str)]| -> Result<_, ConfigError> {
            Ok(Config::load(None, env(pairs))?.oauth.lockout)
        };
        let default = lockout(&[("OBGATE_OAUTH_LOCKOUT_AFTER", "7")])?;
        assert_eq!((default.after, default.after_address), (7, 7));
        let nat = lockout(&[("OBGATE_OAUTH_LOCKOUT_AFTER_ADDRESS", "200")])?;
        assert_eq!((nat.after, nat.after_address), (10, 200));
        // Admin keys and sign-ins are counted against their address alone.
        assert_eq!(
            errors(&[("OBGATE_OAUTH_LOCKOUT_AFTER_ADDRESS", "0")]),
            vec!["OBGATE_OAUTH_LOCKOUT_AFTER_ADDRESS: \"0\" is not a whole number from 1 to 10000"]
        );
        Ok(())
    }

    #[test]
    fn bad_database_scheme_names_the_env_key() {
        assert_eq!(
            errors(&[("OBGATE_DATABASE_URL", "mysql://x")]),
            vec![
                "OBGATE_DATABASE_URL: unsupported scheme \"mysql\", expected sqlite: or postgres:"
            ]
        );
    }

    #[test]
    fn production_refuses_implicit_and_dev_settings_all_at_once() {
        let dev_pii = base64::engine::general_purpose::STANDARD.encode(EncryptionKey::DEV_PII_KEY);
        let errs = errors(&[("OBGATE_MODE", "production"), ("OBGATE_PII_KEY", &dev_pii)]);
        assert_eq!(errs.len(), 6, "{errs:?}");
        assert!(errs[0].starts_with("OBGATE_PUBLIC_URL: required in production"));
        assert!(errs[1].starts_with("OBGATE_DATABASE_URL: required in production"));
        assert!(errs[2].starts_with("OBGATE_PII_KEY: this is the published sandbox dev key"));
        assert!(errs[3].starts_with("OBGATE_OAUTH_KEY_ENCRYPTION_KEY: required in production"));
        assert!(errs[4].starts_with("OBGATE_KYC_PROVIDER: required in production mode"));
        assert!(errs[5].starts_with("OBGATE_UPSTREAM_URL: required in production mode"));
        let errs = errors(&[
            ("OBGATE_MODE", "production"),
            ("OBGATE_KYC_PROVIDER", "sandbox"),
            ("OBGATE_PUBLIC_URL", "http://bank.example"),
            ("OBGATE_DATABASE_URL", "postgres://u:pw@db/obgate"),
            ("OBGATE_UPSTREAM_URL", "https://core.bank.example/ob"),
            (
                "OBGATE_OAUTH_KEY_ENCRYPTION_KEY",
                &base64::engine::general_purpose::STANDARD.encode([9u8; 32]),
            ),
        ]);
        assert_eq!(
            errs,
            vec![
                "OBGATE_PUBLIC_URL: must be https in production mode",
                "OBGATE_PII_KEY: required in production mode; generate one with `openssl rand -base64 32`",
                "OBGATE_KYC_PROVIDER: the sandbox provider passes every customer but a few test \
                 values and is for sandbox mode only; set http with kyc.provider_url"
            ]
        );
    }

    #[test]
    fn env_wins_over_file_and_file_errors_name_the_file() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("obgate.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\n[http]\nbody_limit = \"2KiB\"\n",
        )?;
        let c = Config::load(Some(&path), env(&[("OBGATE_LISTEN", "127.0.0.1:9100")]))?;
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.http.body_limit, 2048);

        std::fs::write(&path, "[http]\nrequest_timeout = \"soon\"\nbody_limt = 5\n")?;
        let err = Config::load(Some(&path), env(&[]))
            .err()
            .ok_or("expected an error")?;
        let shown = path.display().to_string();
        assert_eq!(
            err.0,
            vec![
                format!("http.body_limt in {shown}: unknown key (see `obgate config --help` for the list)"),
                format!("http.request_timeout in {shown}: \"soon\" is not a duration like 30s, 500ms or 2m"),
            ]
        );
        Ok(())
    }

    #[test]
    fn unknown_variables_stop_start_up_and_name_the_likely_one() -> Result<(), ConfigError> {
        let errs = errors(&[
            ("OBGATE_MDOE", "production"),
            ("OBGATE_LISTN", "127.0.0.1:1"),
            ("OBGATE_FROBNICATE", "yes"),
            ("OBGATE_TEST_POSTGRES_URL", "postgres://x"),
            ("HOME", "/root"),
        ]);
        assert_eq!(
            errs,
            vec![
                "OBGATE_MDOE: unknown variable; did you mean OBGATE_MODE?",
                "OBGATE_LISTN: unknown variable; did you mean OBGATE_LISTEN?",
                "OBGATE_FROBNICATE: unknown variable (see `obgate config --help` for the list)",
            ]
        );
        // The suites' own variables, Kubernetes' service links and others' are not the
        // gateway's business.
        let c = Config::load(
            None,
            env(&[
                ("OBGATE_TEST_POSTGRES_URL", "postgres://x"),
                ("OBGATE_SERVICE_HOST", "10.0.0.7"),
                ("OBGATE_SERVICE_PORT", "8080"),
                ("OBGATE_PORT", "tcp://10.0.0.7:8080"),
                ("OBGATE_PORT_8080_TCP_ADDR", "10.0.0.7"),
                ("HOME", "/root"),
            ]),
        )?;
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        Ok(())
    }

    #[test]
    fn masked_rendering_hides_passwords_and_keys() -> Result<(), ConfigError> {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let c = Config::load(
            None,
            env(&[
                (
                    "OBGATE_DATABASE_URL",
                    "postgres://app:hunter2@db:5432/obgate",
                ),
                ("OBGATE_PII_KEY", &key),
            ]),
        )?;
        let shown = c.render_masked();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains(&key), "{shown}");
        assert!(
            shown.contains("postgres://app:***@db:5432/obgate"),
            "{shown}"
        );
        assert!(format!("{c:?}").contains("[REDACTED]"));
        assert!(!format!("{c:?}").contains("hunter2"));
        Ok(())
    }
}
