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
}

impl Default for AccessLog {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
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
    /// queues its audit row.
    pub async fn decided(&self, state: &AppState, started: std::time::Instant, d: Decision<'_>) {
        let outcome = if d.allowed { "allowed" } else { "denied" };
        state
            .metrics
            .gateway_decision(outcome, d.reason, started.elapsed());
        self.record(state, d).await;
    }

    /// Queues a decision; waits while the queue is full (see the module docs).
    pub async fn record(&self, state: &AppState, d: Decision<'_>) {
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
        }
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
        // Retries while the database is away, until told to stop: then the shutdown below
        // takes the batch over.
        if !flush_until(&state, &mut batch, None, Some(&mut stop)).await {
            break;
        }
    }
    // Shutdown: the server has stopped taking requests; write everything still queued, for
    // as long as `http.shutdown_grace` allows, then keep the rest in the spill file.
    rx.close();
    let deadline = tokio::time::Instant::now() + state.config.http.shutdown_grace;
    loop {
        if batch.is_empty() && rx.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        if !flush_until(&state, &mut batch, Some(deadline), None).await {
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

/// Appends a batch, retrying until it is written (decisions are never dropped), or until
/// `deadline` has passed, or `stop` turns true between two attempts; answers whether it was
/// written (the batch is then empty; otherwise it is left whole).
async fn flush_until(
    state: &AppState,
    batch: &mut Vec<GatewayDecision>,
    deadline: Option<tokio::time::Instant>,
    mut stop: Option<&mut tokio::sync::watch::Receiver<bool>>,
) -> bool {
    let mut wait = Duration::from_millis(100);
    loop {
        let attempt = state.store.append_decisions(batch);
        let result = match deadline {
            // One attempt can wait long for a connection; the deadline cuts it short (its
            // transaction rolls back when dropped).
            Some(d) => match tokio::time::timeout_at(d, attempt).await {
                Ok(r) => r,
                Err(_) => return false,
            },
            None => attempt.await,
        };
        match result {
            Ok(()) => {
                batch.clear();
                return true;
            }
            Err(e) => {
                if deadline.is_some_and(|d| tokio::time::Instant::now() + wait > d) {
                    return false;
                }
                tracing::warn!(error = %e, rows = batch.len(), "cannot write gateway decisions to the audit log; retrying");
                match stop.as_deref_mut() {
                    // Only between attempts: an attempt cut short after its commit was sent
                    // could leave the batch both written and kept.
                    Some(stop) => tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.wait_for(|s| *s) => return false,
                    },
                    None => tokio::time::sleep(wait).await,
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}
