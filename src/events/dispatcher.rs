//! Delivers webhook events: signed, retried on a schedule, recorded, and resumed after restarts.
//!
//! The loop claims one due delivery at a time with a lease (the DNS check's limit, plus
//! `webhooks.timeout`, plus 5 s), so a
//! node that dies mid-delivery leaves it to be claimed again once the lease ends: every event
//! is delivered at least once, always under its own `webhook-id`, which receivers use to drop
//! duplicates. Up to [`MAX_IN_FLIGHT`] deliveries run at once, at most [`PER_ENDPOINT`] of them
//! to one endpoint, so one slow receiver does not hold up the others: a receiver that accepts
//! connections and never answers would otherwise take every slot with its backlog and its
//! retries, and each for the whole `webhooks.timeout`.
//!
//! After each attempt: 2xx → delivered; 410 → the endpoint is disabled and its pending
//! deliveries abandoned; anything else → the next step of `webhooks.retry_schedule` (or the
//! receiver's `Retry-After`, when longer); past the last step → failed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use tokio::sync::Semaphore;
use url::Url;

use super::signing;
use crate::audit::{ActorType, AuditEvent, Outcome};
use crate::clock::Timestamp;
use crate::state::AppState;
use crate::store::events::{AttemptRecord, DeliveryNext, DueDelivery};

/// Deliveries attempted concurrently by one node.
pub const MAX_IN_FLIGHT: usize = 8;

/// Deliveries attempted concurrently by one node to one endpoint.
pub const PER_ENDPOINT: usize = 2;

/// The endpoints this node is delivering to, with how many deliveries each.
#[derive(Default)]
struct InFlight(std::sync::Mutex<HashMap<String, usize>>);

impl InFlight {
    /// Endpoints that have their [`PER_ENDPOINT`] deliveries running.
    fn busy(&self) -> Vec<String> {
        self.0.lock().map_or_else(
            |_| Vec::new(),
            |m| {
                m.iter()
                    .filter(|(_, n)| **n >= PER_ENDPOINT)
                    .map(|(id, _)| id.clone())
                    .collect()
            },
        )
    }

    fn start(&self, endpoint: &str) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(endpoint.to_owned()).or_default() += 1;
        }
    }

    fn end(&self, endpoint: &str) {
        if let Ok(mut m) = self.0.lock() {
            if let Some(n) = m.get_mut(endpoint) {
                *n -= 1;
                if *n == 0 {
                    m.remove(endpoint);
                }
            }
        }
    }
}

/// A delivery running: when it ends (or its task panics), its endpoint's count goes down and
/// the loop looks again, since a delivery it passed over for a busy endpoint may now go.
struct Running {
    in_flight: Arc<InFlight>,
    endpoint: String,
    state: AppState,
}

impl Running {
    /// Counts a delivery to `endpoint` as running until the value is dropped.
    fn start(in_flight: &Arc<InFlight>, endpoint: &str, state: &AppState) -> Self {
        in_flight.start(endpoint);
        Self {
            in_flight: in_flight.clone(),
            endpoint: endpoint.to_owned(),
            state: state.clone(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.in_flight.end(&self.endpoint);
        self.state.events.deliveries.notify_one();
    }
}

/// Runs until `stop` resolves.
pub async fn run(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut builder = reqwest::Client::builder()
        // Never through a proxy named by the environment (`HTTPS_PROXY`, `ALL_PROXY`, ...):
        // the destination checks apply to the address connected to, so through a proxy they
        // would check the proxy (refusing an internal one, every delivery failing) while the
        // proxy resolved the destination unchecked (DNS rebinding into the bank).
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(state.config.webhooks.timeout)
        .user_agent(concat!("obgate-webhooks/", env!("CARGO_PKG_VERSION")));
    if state.config.mode == crate::config::Mode::Production {
        builder = builder.dns_resolver(Arc::new(super::webhooks::PublicOnly));
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook dispatcher cannot start its HTTP client");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let in_flight = Arc::new(InFlight::default());
    // A delivery's longest run: the destination's DNS check, then the request; and a margin.
    // A lease shorter than that let a slow lookup's delivery be claimed again mid-flight, sent
    // twice and counted as two attempts.
    let lease =
        super::webhooks::LOOKUP_TIMEOUT + state.config.webhooks.timeout + Duration::from_secs(5);
    loop {
        if *stop.borrow() {
            return;
        }
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let now = state.clock.now();
        let busy = in_flight.busy();
        let lease_until = now.plus(lease);
        match state.store.claim_delivery(now, lease_until, &busy).await {
            Ok(Some(due)) => {
                let running = Running::start(&in_flight, &due.endpoint_id, &state);
                let (state, client) = (state.clone(), client.clone());
                tokio::spawn(async move {
                    deliver(&state, &client, due, lease_until).await;
                    drop(running);
                    drop(permit);
                });
            }
            Ok(None) => {
                drop(permit);
                tokio::select! {
                    _ = state.events.deliveries.notified() => {}
                    _ = tokio::time::sleep(state.config.workers_poll_interval) => {}
                    _ = stop.changed() => return,
                }
            }
            Err(e) => {
                drop(permit);
                tracing::warn!(error = %e, "webhook dispatcher cannot read deliveries; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(state.config.workers_poll_interval) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// The body receivers get: the event type, its time and its ids-only payload.
pub fn body_of(due: &DueDelivery) -> Vec<u8> {
    let data: serde_json::Value =
        serde_json::from_str(&due.payload).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "type": due.event_type,
        "timestamp": due.event_created_at,
        "data": data,
    })
    .to_string()
    .into_bytes()
}

async fn deliver(
    state: &AppState,
    client: &reqwest::Client,
    due: DueDelivery,
    lease_until: Timestamp,
) {
    let started = Instant::now();
    let attempted_at = state.clock.now();
    let result = attempt(state, client, &due, attempted_at).await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let (status_code, error, next) = match result {
        Ok((status, _)) if (200..300).contains(&status) => {
            (Some(i32::from(status)), None, DeliveryNext::Delivered)
        }
        Ok((410, _)) => (
            Some(410),
            Some("the endpoint answered 410 Gone; endpoint disabled".to_owned()),
            DeliveryNext::EndpointGone,
        ),
        Ok((status, retry_after)) => (
            Some(i32::from(status)),
            Some(format!("the endpoint answered {status}")),
            retry(state, &due, attempted_at, retry_after),
        ),
        Err(e) => (None, Some(e), retry(state, &due, attempted_at, None)),
    };
    let gone = matches!(next, DeliveryNext::EndpointGone);
    let audit = gone.then(|| {
        AuditEvent::new(
            attempted_at,
            ActorType::System,
            "webhooks",
            "webhook.disable",
        )
        .on("webhook", &due.endpoint_id)
        .outcome(Outcome::Success, "endpoint_gone")
    });
    tracing::info!(
        event_id = %due.event_id,
        webhook.id = %due.endpoint_id,
        status = status_code,
        attempt = due.attempts + 1,
        outcome = ?next,
        "webhook delivery attempt"
    );
    let record = AttemptRecord {
        id: format!("wa_{}", uuid::Uuid::now_v7().simple()),
        event_id: due.event_id.clone(),
        endpoint_id: due.endpoint_id.clone(),
        attempted_at,
        status_code,
        error,
        duration_ms,
        next,
        lease_until,
    };
    if let Err(e) = state.store.record_attempt(&record, audit.as_ref()).await {
        // The lease will expire and the delivery be retried under the same webhook-id.
        tracing::warn!(error = %e, event_id = %due.event_id, "cannot record a webhook attempt");
    }
}

/// The next attempt's time, or `Failed` when the schedule is exhausted.
fn retry(
    state: &AppState,
    due: &DueDelivery,
    now: Timestamp,
    retry_after: Option<Duration>,
) -> DeliveryNext {
    let schedule = &state.config.webhooks.retry_schedule;
    match usize::try_from(due.attempts)
        .ok()
        .and_then(|n| schedule.get(n))
    {
        Some(delay) => {
            // Honour the receiver's Retry-After when it asks for longer (capped at a day).
            let wait = retry_after
                .map(|r| r.min(Duration::from_secs(86_400)))
                .map_or(*delay, |r| r.max(*delay));
            DeliveryNext::RetryAt(now.plus(wait))
        }
        None => DeliveryNext::Failed,
    }
}

/// One POST; the HTTP status and any `Retry-After`, or why it did not complete.
async fn attempt(
    state: &AppState,
    client: &reqwest::Client,
    due: &DueDelivery,
    now: Timestamp,
) -> Result<(u16, Option<Duration>), String> {
    let url = Url::parse(&due.url).map_err(|_| "the stored URL does not parse".to_owned())?;
    super::webhooks::check_destination(&url, state.config.mode).await?;
    let secret = crate::crypto::open(
        &state.config.pii_key,
        due.endpoint_id.as_bytes(),
        &due.secret,
    )
    .map_err(|_| "the endpoint's secret cannot be decrypted (pii.key changed?)".to_owned())?;
    let secret = String::from_utf8(secret).map_err(|_| "corrupt secret".to_owned())?;
    let body = body_of(due);
    let timestamp = now.millis() / 1000;
    let signature = signing::sign(&secret, &due.event_id, timestamp, &body)
        .ok_or_else(|| "corrupt secret".to_owned())?;
    let res = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &due.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "could not connect".to_owned()
            } else {
                "transport error".to_owned()
            }
        })?;
    let status = res.status().as_u16();
    Ok((status, retry_after(res.headers(), now)))
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    let at_ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    let delta = i64::try_from(at_ms).ok()? - now.millis();
    Some(Duration::from_millis(u64::try_from(delta.max(0)).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        let mut h = HeaderMap::new();
        h.insert("retry-after", "120".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(120)));
        let later = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_060);
        h.insert(
            "retry-after",
            httpdate::fmt_http_date(later).parse().unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(60)));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
    }
}
