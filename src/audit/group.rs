//! Group commit for audit rows that stand alone (an issued client-level token, a refused
//! token request): concurrent appends share one transaction.
//!
//! Each append still returns only after its row is committed, so an answer never leaves
//! before its record, as with [`crate::store::Store::append_audit`]. What changes is the
//! cost under load: rows are chained under one lock (on SQLite, one writer), so one
//! transaction per row caps a node at the rate of transactions; here, while one batch
//! commits, the next gathers, and a burst of requests costs a few transactions.
//!
//! The batch is written by a spawned task, not by a request's own future: a request that is
//! cancelled (its client hung up) can neither abort the others' transaction nor leave its
//! row waiting for a writer that never comes.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::AuditEvent;
use crate::store::{Store, StoreError};

/// Most rows in one transaction.
const BATCH: usize = 500;

type Waiter = oneshot::Sender<Result<(), StoreError>>;

#[derive(Default)]
struct Queue {
    pending: Vec<(AuditEvent, Waiter)>,
    /// A writer task is running and will take `pending` before it stops.
    writing: bool,
}

/// Appends audit rows in shared transactions.
pub struct GroupCommit {
    store: Arc<dyn Store>,
    queue: Arc<Mutex<Queue>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupCommit")
    }
}

impl GroupCommit {
    /// Group commit over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            queue: Arc::default(),
        }
    }

    /// Appends `event`, returning once it is committed (with the others of its batch).
    pub async fn append(&self, event: AuditEvent) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        let start_writer = {
            let mut q = lock(&self.queue);
            q.pending.push((event, tx));
            !std::mem::replace(&mut q.writing, true)
        };
        if start_writer {
            tokio::spawn(write(self.store.clone(), self.queue.clone()));
        }
        rx.await.unwrap_or_else(|_| Err(lost()))
    }
}

/// Writes batches until the queue is empty, then marks that no writer runs. The check and
/// the mark happen under the queue's lock, so a row queued at any moment is either taken by
/// this loop or starts a new writer.
async fn write(store: Arc<dyn Store>, queue: Arc<Mutex<Queue>>) {
    // Should the store panic, the next append starts a new writer instead of waiting for
    // this one (this batch's waiters see their senders dropped: an error, not a hang).
    let _unwind = Unwind(queue.clone());
    loop {
        let batch: Vec<(AuditEvent, Waiter)> = {
            let mut q = lock(&queue);
            if q.pending.is_empty() {
                q.writing = false;
                return;
            }
            let n = q.pending.len().min(BATCH);
            q.pending.drain(..n).collect()
        };
        let (events, waiters): (Vec<AuditEvent>, Vec<Waiter>) = batch.into_iter().unzip();
        let result = store.append_audit_batch(&events).await;
        for w in waiters {
            let _ = w.send(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(e.duplicate()),
            });
        }
    }
}

struct Unwind(Arc<Mutex<Queue>>);

impl Drop for Unwind {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(&self.0).writing = false;
        }
    }
}

/// The queue, whatever a panicking holder left (every change to it is a single step).
fn lock(queue: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lost() -> StoreError {
    StoreError::Other(sqlx::Error::Protocol(
        "the audit writer stopped before committing this row".into(),
    ))
}
