//! The background worker that runs identity-provider checks, and the housekeeping that deletes
//! what has stopped mattering: AML records past their retention, idempotency keys past their
//! window, codes and token records a day past their expiry.
//!
//! Jobs are rows (`kyc_jobs`) written in the same transaction as the change that queued them,
//! so a check queued before a crash still runs after the restart. A claim leases the job for
//! its longest possible run (below); a node that dies mid-check leaves the
//! job to be claimed again when the lease ends. The provider is given the job's reference, so
//! a provider that de-duplicates on it (the HTTP adapter's `PUT`) runs the check once, and the
//! outcome is applied only if the customer has not changed since (optimistic version check).
//! The lease is the longest a check can take (every attempt timing out, plus the backoff
//! between them) and a few seconds, so a crashed node's check resumes soon after.

use std::time::Duration;

use crate::state::AppState;

/// A job claimed more often than this (a crash loop) ends as `error`. A provider answering
/// `pending` is not a failure: each such answer starts the count again.
pub const MAX_ATTEMPTS: i32 = 5;

/// How long authorization codes and requests, access-token records and refresh tokens are
/// kept past their expiry (for an operator looking into a recent failure) before the worker
/// deletes them: nothing uses them any more, and a busy bank issues millions a day.
pub const CREDENTIALS_KEPT_AFTER_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// How often the housekeeping runs (on the node's clock): what it deletes waits a day or more
/// anyway, and its probes need not run at every poll.
pub const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

/// Deletes what has stopped mattering; each purge reads first and writes only when it finds
/// something. A failure is logged and tried again next time.
async fn housekeeping(state: &AppState, now: crate::clock::Timestamp) {
    match state.store.purge_aml_records(now).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(records = n, "destroyed AML records past their retention"),
        Err(e) => tracing::warn!(error = %e, "cannot purge AML records"),
    }
    let expired = crate::clock::Timestamp::from_millis(
        now.millis() - crate::http::idempotency::WINDOW.as_millis() as i64,
    );
    if let Err(e) = state.store.purge_idempotency_keys(expired).await {
        tracing::warn!(error = %e, "cannot purge expired idempotency keys");
    }
    let spent = crate::clock::Timestamp::from_millis(
        now.millis() - CREDENTIALS_KEPT_AFTER_EXPIRY.as_millis() as i64,
    );
    match state.store.purge_expired_credentials(spent).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(rows = n, "deleted expired codes and token records"),
        Err(e) => tracing::warn!(error = %e, "cannot purge expired codes and token records"),
    }
}

/// Runs until `stop` says so.
pub async fn run(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let kyc = &state.config.kyc;
    let backoff: Duration = (0..kyc.provider_retries)
        .map(|n| Duration::from_millis(200 << n.min(6)))
        .sum();
    // A KBA-triggering check makes two provider calls (the check, then the questions).
    let lease =
        (kyc.provider_timeout * (kyc.provider_retries + 1) + backoff) * 2 + Duration::from_secs(5);
    let mut last_housekeeping: Option<crate::clock::Timestamp> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let now = state.clock.now();
        if last_housekeeping.is_none_or(|at| at.plus(HOUSEKEEPING_EVERY) <= now) {
            housekeeping(&state, now).await;
            last_housekeeping = Some(now);
        }
        let claimed = state.store.claim_kyc_job(now, now.plus(lease)).await;
        match claimed {
            Ok(Some(job)) => {
                if job.attempts > MAX_ATTEMPTS {
                    tracing::error!(job_id = %job.id, "KYC job keeps failing; giving up");
                    if let Err(e) = super::verification::abandon_job(&state, &job).await {
                        tracing::warn!(job_id = %job.id, error = %e, "cannot close the KYC job; it will be tried again");
                    }
                    continue;
                }
                if let Err(e) = super::verification::run_job(&state, &job).await {
                    // The lease ends and the job is tried again.
                    tracing::warn!(job_id = %job.id, error = %e, "KYC job failed; it will be retried");
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read KYC jobs; retrying"),
        }
        tokio::select! {
            _ = state.events.kyc_jobs.notified() => {}
            _ = tokio::time::sleep(state.config.workers_poll_interval) => {}
            _ = stop.changed() => return,
        }
    }
}
