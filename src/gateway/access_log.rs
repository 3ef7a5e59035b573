//! Every gateway decision in the audit log: allowed or denied, by whom, under which consent,
//! for which route, with the request's interaction id.
//!
//! A bank must be able to say which TPP read which customer's data and when, so each decision
//! is a row of the audit log's `gateway_decisions` table, sealed into the same hash chain as
//! every state change ([`crate::audit::decisions`]). Writing a row per request on the request
//! path would cost a database transaction per read; instead decisions go into a bounded queue
//! and [`write()`] appends them in batches (one transaction and one seal per batch, hundreds of
//! rows each). The queue is the only buffer: when it is full (the database is slow or away)
//! a gateway request waits for room rather than being served without its record, so an
//! access is never unaudited. On shutdown the writer drains the queue before the database
//! closes; if the database is away past `http.shutdown_grace`, what is left goes to the spill
//! file for the next start ([`super::spill`]) rather than holding the process past SIGTERM.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::audit::decisions::GatewayDecision;
use crate::state::AppState;

/// Decisions held before a request has to wait.
const QUEUE: usize = 16_384;
/// Most rows in one transaction.
const BATCH: usize = 2_000;
/// Longest a decision waits in the queue before it is written.
const LINGER: Duration = Duration::from_millis(20);

/// The queue of decisions waiting to be written.
#[derive(Debug)]
pub struct AccessLog {
    tx: mpsc::Sender<GatewayDecision>,
    rx: std::sync::Mutex<Option<mpsc::Receiver<GatewayDecision>>>,
    /// When the writer must be done once shutdown has begun (see [`AccessLog::shutdown_by`]).
    deadline: std::sync::OnceLock<tokio::time::Instant>,
    /// The writer's own deadline: the shutdown deadline, or [`WRITER_FLOOR`] after it was
    /// told to stop if that is later.
    writer_deadline: std::sync::OnceLock<tokio::time::Instant>,
}

/// The least time the writer is given once told to stop: requests that drained right up to
/// the shutdown deadline would otherwise leave it none, and a healthy database's last batch
/// would be spilled (and, cut short as it committed, written twice).
const WRITER_FLOOR: Duration = Duration::from_secs(2);

impl Default for AccessLog {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
            deadline: std::sync::OnceLock::new(),
            writer_deadline: std::sync::OnceLock::new(),
        }
    }
}

/// One decision about one gateway request.
pub struct Decision<'a> {
    /// The TPP, when its token was verified.
    pub client_id: Option<&'a str>,
    /// The consent the token acts under, when known.
    pub consent_id: Option<&'a str>,
    /// Allowed or why not (`consent_revoked`, `invalid_token`, `rate_limited`, …).
    pub reason: &'static str,
    /// Whether the request goes on to the bank.
    pub allowed: bool,
    /// The path requested.
    pub path: &'a str,
    /// The request's `x-fapi-interaction-id`.
    pub interaction: Option<&'a str>,
}

/// The request's `x-fapi-interaction-id`, for its decision row.
pub fn interaction_of<B>(req: &axum::http::Request<B>) -> Option<&str> {
    req.extensions()
        .get::<crate::http::middleware::InteractionId>()
        .map(|i| i.0.as_str())
}

impl AccessLog {
    /// Counts a decision in the metrics (with the time deciding took since `started`) and
    /// queues its audit row; answers whether it was queued (see [`AccessLog::record`]).
    #[must_use = "an allowed request whose decision was not queued must not reach the bank"]
    pub async fn decided(
        &self,
        state: &AppState,
        started: std::time::Instant,
        d: Decision<'_>,
    ) -> bool {
        let outcome = if d.allowed { "allowed" } else { "denied" };
        state
            .metrics
            .gateway_decision(outcome, d.reason, started.elapsed());
        self.record(state, d).await
    }

    /// Queues a decision; waits while the queue is full (see the module docs). Answers
    /// `false` only once the writer has stopped (the node is shutting down): the request must
    /// then not go on to the bank, since nothing would record it.
    #[must_use = "an allowed request whose decision was not queued must not reach the bank"]
    pub async fn record(&self, state: &AppState, d: Decision<'_>) -> bool {
        let event = GatewayDecision::new(
            state.clock.now(),
            d.client_id,
            d.consent_id,
            d.allowed,
            d.reason,
            d.path,
            d.interaction,
        );
        if self.tx.send(event).await.is_err() {
            tracing::error!(
                "the access log writer has stopped; a gateway decision was not audited"
            );
            return false;
        }
        true
    }

    /// Sets when the writer must be done once it is told to stop: [`crate::App::serve`]
    /// gives the moment the shutdown signal came plus `http.shutdown_grace`, so draining the
    /// requests and writing their decisions share one budget. Without it the writer allows
    /// itself `http.shutdown_grace` from when it is told to stop.
    pub fn shutdown_by(&self, deadline: tokio::time::Instant) {
        let _ = self.deadline.set(deadline);
    }

    /// When the writer must be done, once shutdown has begun.
    pub(crate) fn deadline(&self, grace: Duration) -> tokio::time::Instant {
        *self
            .deadline
            .get_or_init(|| tokio::time::Instant::now() + grace)
    }

    /// When the writer must be done: fixed the first time it asks, once told to stop.
    fn writer_deadline(&self, grace: Duration) -> tokio::time::Instant {
        *self.writer_deadline.get_or_init(|| {
            self.deadline(grace)
                .max(tokio::time::Instant::now() + WRITER_FLOOR)
        })
    }

    fn take_receiver(&self) -> Option<mpsc::Receiver<GatewayDecision>> {
        self.rx.lock().ok()?.take()
    }
}

/// Writes queued decisions until `stop` turns true, then writes what is left.
/// [`crate::App::serve`] runs it; an embedding that serves the router itself spawns it.
pub async fn write(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(mut rx) = state.access_log.take_receiver() else {
        tracing::error!("the access log writer was started twice");
        return;
    };
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
            }
            changed = stop.changed() => {
                // Stop when told to, or when whoever could tell us is gone.
                if changed.is_err() || *stop.borrow() {
                    break;
                }
                continue;
            }
        }
        // Let a batch fill for a moment; under light load this adds LINGER to when the row
        // appears, never to a response. Sleep, then take what came: waiting on the queue
        // instead woke this task for every decision sent during the linger, a task wake-up
        // per gateway request under load (BENCHMARKS.md, twelfth pass).
        if batch.len() < BATCH {
            tokio::time::sleep(LINGER).await;
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(decision) => batch.push(decision),
                    Err(_) => break,
                }
            }
        }
        // Retries while the database is away; once told to stop, until the deadline, and
        // then the shutdown below takes the batch over.
        if !flush(&state, &mut batch, &mut stop).await {
            break;
        }
    }
    // Shutdown: the server has stopped taking requests; write everything still queued until
    // the shutdown deadline, then keep the rest in the spill file.
    rx.close();
    loop {
        if batch.is_empty() && rx.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        if !flush(&state, &mut batch, &mut stop).await {
            break;
        }
    }
    while rx.recv_many(&mut batch, BATCH).await > 0 {}
    let path = &state.config.gateway.decision_spill_file;
    match super::spill::write(path, &batch) {
        Ok(()) => tracing::error!(
            decisions = batch.len(),
            file = %path.display(),
            "the audit log could not be written before shutdown; the gateway decisions still \
             unwritten are kept in the spill file, and the next start writes them"
        ),
        Err(e) => tracing::error!(
            decisions = batch.len(),
            file = %path.display(),
            error = %e,
            "the audit log could not be written before shutdown, nor the spill file: \
             these gateway decisions are lost"
        ),
    }
}

/// Appends a batch, retrying until it is written: while the node runs, decisions are never
/// dropped. Once `stop` is true the node is shutting down, and the shutdown deadline bounds
/// the attempt under way and every retry: an attempt still running then is given up (its
/// transaction rolls back when dropped; one whose commit was already on its way can leave
/// the batch both written and spilled, so a decision may then appear twice). Answers whether
/// the batch was written (it is then empty; otherwise it is left whole).
async fn flush(
    state: &AppState,
    batch: &mut Vec<GatewayDecision>,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    let grace = state.config.http.shutdown_grace;
    let mut wait = Duration::from_millis(100);
    loop {
        let result = {
            let attempt = state.store.append_decisions(batch);
            tokio::pin!(attempt);
            // Not cut short while the node runs: a database that hangs holds the batch, and
            // the queue fills and holds requests, rather than risking a batch written twice.
            let early = if stopping(stop) {
                None
            } else {
                tokio::select! {
                    biased;
                    r = &mut attempt => Some(r),
                    _ = stop.wait_for(|s| *s) => None,
                }
            };
            match early {
                Some(r) => r,
                None => {
                    match tokio::time::timeout_at(state.access_log.writer_deadline(grace), attempt)
                        .await
                    {
                        Ok(r) => r,
                        Err(_) => return false,
                    }
                }
            }
        };
        match result {
            Ok(()) => {
                batch.clear();
                return true;
            }
            Err(e) => {
                tracing::warn!(error = %e, rows = batch.len(), "cannot write gateway decisions to the audit log; retrying");
                if stopping(stop) {
                    // Retry until the deadline, the last try at it (under `timeout_at`,
                    // which gives up at once past it).
                    let deadline = state.access_log.writer_deadline(grace);
                    let now = tokio::time::Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    tokio::time::sleep_until((now + wait).min(deadline)).await;
                } else {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        // Told to stop: try once more at once, under the deadline.
                        _ = stop.wait_for(|s| *s) => {}
                    }
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Whether the node is shutting down: told so, or whoever could tell us is gone.
fn stopping(stop: &tokio::sync::watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}
