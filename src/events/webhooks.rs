//! Webhook endpoints: registration, the URL policy, and what the API shows of them.

use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;
use serde_json::Value;
use url::Url;

use super::{signing, EVENT_TYPES};
use crate::audit::Actor;
use crate::clock::Timestamp;
use crate::config::Mode;
use crate::error::{ApiError, FieldError};
use crate::http::validate::{verdict, Fields, Rule};
use crate::state::AppState;
use crate::store::events::WebhookRow;

/// A webhook URL: http(s), a DNS name or IPv4 address, an optional port, a path and query of
/// printable ASCII; no credentials, no fragment; at most 2,000 characters.
pub const URL_RULE: Rule = Rule {
    pattern: r"^https?://(([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(/[\x21\x22\x24-\x7e]*)?$",
    message:
        "Not a valid URL: expected http(s)://host[:port][/path] without user info or fragment.",
};

/// What the API shows of an endpoint (never the secret, except once at creation).
#[derive(Debug, Serialize)]
pub struct WebhookView {
    /// `wh_…`.
    pub webhook_id: String,
    /// Destination.
    pub url: String,
    /// Subscribed event types.
    pub events: Vec<String>,
    /// `active` or `disabled`.
    pub status: &'static str,
    /// Why it is disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Registered at.
    pub date_created: Timestamp,
}

impl WebhookView {
    /// The view of a stored endpoint.
    pub fn of(row: &WebhookRow) -> Self {
        Self {
            webhook_id: row.id.clone(),
            url: row.url.clone(),
            events: row.events.split_whitespace().map(str::to_owned).collect(),
            status: if row.disabled_at.is_some() {
                "disabled"
            } else {
                "active"
            },
            disabled_reason: row.disabled_reason.clone(),
            date_created: row.created_at,
        }
    }
}

/// Why an address may not receive webhooks in production: it reaches inside the bank.
fn forbidden_address(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            // IPv6 forms that carry an IPv4 address, which a gateway or the kernel may reach:
            // mapped (::ffff:a.b.c.d) and compatible (::a.b.c.d), NAT64 (64:ff9b::/96), 6to4
            // (2002::/16, the address in bits 16–48).
            let embedded = if let Some(v4) = v6.to_ipv4() {
                Some(v4)
            } else if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                Some(Ipv4Addr::from(
                    (u32::from(seg[6]) << 16) | u32::from(seg[7]),
                ))
            } else if seg[0] == 0x2002 {
                Some(Ipv4Addr::from(
                    (u32::from(seg[1]) << 16) | u32::from(seg[2]),
                ))
            } else {
                None
            };
            if let Some(v4) = embedded.filter(|_| !v6.is_loopback() && !v6.is_unspecified()) {
                return forbidden_v4(v4);
            }
            let first = seg[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("not a unicast address")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if first & 0xfe00 == 0xfc00 || seg[..3] == [0x64, 0xff9b, 1] {
                Some("private (unique local)")
            } else {
                None
            }
        }
    }
}

fn forbidden_v4(v4: Ipv4Addr) -> Option<&'static str> {
    let o = v4.octets();
    if v4.is_loopback() {
        Some("loopback")
    } else if v4.is_private() || (o[0] == 100 && (64..128).contains(&o[1])) {
        Some("private")
    } else if v4.is_link_local() {
        Some("link-local")
    } else if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() || o[0] == 0 {
        Some("not a unicast address")
    } else if o[0] >= 240 || (o[0] == 198 && (o[1] & 0xfe) == 18) || o[..3] == [192, 0, 0] {
        Some("reserved")
    } else {
        None
    }
}

/// The webhook client's resolver in production: only public addresses of a host are
/// connected to. [`check_destination`] refuses a host that resolves to an internal address,
/// but the connection resolves the name again; a name answering a public address to the
/// check and an internal one a moment later (DNS rebinding) would otherwise reach inside the
/// bank.
#[derive(Debug)]
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str();
            let public: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, 0))
                .await?
                .filter(|a| forbidden_address(a.ip()).is_none())
                .collect();
            if public.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The longest a destination's DNS lookup may take before [`check_destination`] gives up: a
/// dead name server must not hold a registration, nor a delivery past its lease (the
/// dispatcher's lease counts this and `webhooks.timeout`).
pub const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Checks a destination against the mode's policy. Production: https only, and every address
/// the host resolves to must be public (no loopback, private or link-local), checked at
/// registration and again before each delivery. Sandbox: http and local receivers allowed.
pub async fn check_destination(url: &Url, mode: Mode) -> Result<(), String> {
    if mode == Mode::Sandbox {
        return Ok(());
    }
    if url.scheme() != "https" {
        return Err("must be https in production".into());
    }
    let host = url.host_str().ok_or("has no host")?;
    let port = url.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<_> = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| format!("host {host} did not resolve within {LOOKUP_TIMEOUT:?}"))?
        .map_err(|_| format!("host {host} does not resolve"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("host {host} does not resolve"));
    }
    for a in addrs {
        if let Some(why) = forbidden_address(a.ip()) {
            return Err(format!(
                "host {host} resolves to a {why} address; webhooks must go to a public address"
            ));
        }
    }
    Ok(())
}

/// Validates a registration body; returns the URL and the event types.
pub async fn parse_registration(body: &Value, mode: Mode) -> Result<(Url, Vec<String>), ApiError> {
    let mut f = Fields::new(body, "").map_err(|e| ApiError::Validation {
        code: "webhook_post_schema",
        fields: vec![e],
    })?;
    let url = f.string("url", true, &URL_RULE);
    let mut events = Vec::new();
    if let Some(items) = f.array("events", true, 1, EVENT_TYPES.len()) {
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(t) if EVENT_TYPES.contains(&t) => {
                    if !events.iter().any(|e| e == t) {
                        events.push(t.to_owned());
                    }
                }
                _ => f.fail(
                    &format!("events[{i}]"),
                    format!(
                        "Unknown event type; expected one of: {}.",
                        EVENT_TYPES.join(", ")
                    ),
                ),
            }
        }
    }
    let mut errors = f.finish();
    let mut parsed = None;
    if let Some(u) = url {
        match Url::parse(&u) {
            Ok(parsed_url) if u.len() <= 2000 => match check_destination(&parsed_url, mode).await {
                Ok(()) => parsed = Some(parsed_url),
                Err(why) => errors.push(FieldError::invalid("url", format!("Not allowed: {why}."))),
            },
            _ => errors.push(FieldError::invalid("url", URL_RULE.message)),
        }
    }
    verdict("webhook_post_schema", errors)?;
    match parsed {
        Some(u) => Ok((u, events)),
        None => Err(ApiError::internal(
            "webhook validation passed without a URL",
        )),
    }
}

/// Registers an endpoint; returns its view and the signing secret (shown only now).
pub async fn register(
    state: &AppState,
    url: Url,
    events: Vec<String>,
    actor: &Actor,
) -> Result<(WebhookView, String), ApiError> {
    let now = state.clock.now();
    let id = format!("wh_{}", uuid::Uuid::now_v7().simple());
    let secret = signing::new_secret();
    let row = WebhookRow {
        secret: crate::crypto::seal(&state.config.pii_key, id.as_bytes(), secret.as_bytes()),
        id: id.clone(),
        url: url.to_string(),
        events: format!(" {} ", events.join(" ")),
        created_at: now,
        disabled_at: None,
        disabled_reason: None,
        deleted_at: None,
    };
    let audit = actor.event(now, "webhook.create").on("webhook", &id);
    state.store.insert_webhook(&row, &audit).await?;
    Ok((WebhookView::of(&row), secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_and_public_ones_allowed() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:a00:1::1",
            "2002:7f00:1::1",
            "198.18.0.1",
            "198.19.255.1",
            "240.0.0.1",
            "192.0.0.8",
        ] {
            let ip: IpAddr = bad.parse().unwrap();
            assert!(forbidden_address(ip).is_some(), "{bad} must be refused");
        }
        for good in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "64:ff9b::5db8:d822",
            "198.20.0.1",
        ] {
            let ip: IpAddr = good.parse().unwrap();
            assert_eq!(forbidden_address(ip), None, "{good} is public");
        }
    }

    #[tokio::test]
    async fn production_wants_https_and_public_hosts() {
        let http = Url::parse("http://example.com/hook").unwrap();
        assert!(check_destination(&http, Mode::Production).await.is_err());
        let local = Url::parse("https://127.0.0.1:9000/hook").unwrap();
        let err = check_destination(&local, Mode::Production)
            .await
            .unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        let localhost = Url::parse("https://localhost/hook").unwrap();
        assert!(check_destination(&localhost, Mode::Production)
            .await
            .is_err());
        assert!(check_destination(&local, Mode::Sandbox).await.is_ok());
    }

    #[tokio::test]
    async fn the_delivery_resolver_never_answers_an_internal_address() {
        use reqwest::dns::Resolve;
        use std::str::FromStr;
        let name = reqwest::dns::Name::from_str("localhost").unwrap();
        let err = PublicOnly.resolve(name).await.err().unwrap();
        assert!(err.to_string().contains("no public address"), "{err}");
    }
}
