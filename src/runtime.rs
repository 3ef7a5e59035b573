//! The async runtime `obgate serve` runs on, and (when asked) which CPU each of its workers
//! runs on.
//!
//! tokio's multi-thread runtime with its defaults: one worker per core (`TOKIO_WORKER_THREADS`
//! sets another number), argon2 and other blocking work on the blocking pool.
//!
//! With `runtime.pin_workers`, each worker thread is pinned to its own CPU of the set the
//! process was started with, in turn (more workers than CPUs share them round-robin). On the
//! benchmark's shared 2-core machine the kernel often left both workers runnable on one core,
//! each preempting the other for milliseconds while the load generator and the bank's API
//! shared the other core; pinned, the gateway's p99 fell from 2.5–4.2 ms to 1.8–2.4 ms at
//! about the same throughput, on two machines (BENCHMARKS.md, fourteenth pass). It is off by
//! default because a pinned worker cannot move away from a core another process keeps busy:
//! turn it on where obgate has its cores to itself (a dedicated VM, a cpuset, Kubernetes'
//! static CPU manager), not on a host whose CPU set it shares under a quota.
//!
//! A worker is pinned the first time it parks (tokio's `on_thread_park` runs on worker threads
//! only), before it has run a task. Every other runtime thread (the blocking pool) is set back
//! to the process's CPU set when it starts: a thread inherits its creator's affinity, and a
//! blocking thread started by a pinned worker would otherwise run argon2 on that worker's core
//! alone. Threads that libraries start themselves from a worker (sqlx's SQLite connection
//! threads) keep that worker's CPU; measured, it made no difference to the gateway's figures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::runtime::Runtime;

/// Builds the runtime `serve` and the other commands run on; with `pin_workers`, also what
/// became of the pinning, for the start-up log (the runtime starts before logging does).
pub fn build(pin_workers: bool) -> std::io::Result<(Runtime, Option<Arc<Pinning>>)> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if !pin_workers {
        return Ok((builder.build()?, None));
    }
    let pinning = Arc::new(Pinning::new()?);
    pin(&mut builder, &pinning);
    Ok((builder.build()?, Some(pinning)))
}

/// Has the runtime `builder` makes pin its workers as `pinning` says.
fn pin(builder: &mut tokio::runtime::Builder, pinning: &Arc<Pinning>) {
    builder
        .on_thread_start({
            let pinning = pinning.clone();
            move || pinning.release_current()
        })
        .on_thread_park({
            let pinning = pinning.clone();
            move || pinning.pin_current_once()
        });
}

/// The CPUs a CPU set holds, in order.
#[cfg(target_os = "linux")]
fn cpus_of(set: &nix::sched::CpuSet) -> Vec<usize> {
    (0..nix::sched::CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect()
}

thread_local! {
    /// Whether this worker thread has been pinned (or tried to be).
    static PINNED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The CPUs workers are pinned to and what each pin came to.
#[derive(Debug)]
pub struct Pinning {
    /// The process's CPU set when the runtime was built.
    cpus: Vec<usize>,
    #[cfg(target_os = "linux")]
    original: nix::sched::CpuSet,
    /// The next worker's turn.
    next: AtomicUsize,
    /// Per pinned worker: its CPU, or why it could not be pinned.
    outcomes: Mutex<Vec<Result<usize, String>>>,
}

impl Pinning {
    #[cfg(target_os = "linux")]
    fn new() -> std::io::Result<Self> {
        use nix::sched::sched_getaffinity;
        use nix::unistd::Pid;
        let original = sched_getaffinity(Pid::from_raw(0)).map_err(std::io::Error::from)?;
        let cpus = cpus_of(&original);
        if cpus.is_empty() {
            return Err(std::io::Error::other(
                "runtime.pin_workers: the process may run on no CPU",
            ));
        }
        Ok(Self {
            cpus,
            original,
            next: AtomicUsize::new(0),
            outcomes: Mutex::new(Vec::new()),
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn new() -> std::io::Result<Self> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "runtime.pin_workers is supported on Linux only; set it to false",
        ))
    }

    /// Pins the calling worker thread to the next CPU in turn, the first time only.
    fn pin_current_once(&self) {
        if PINNED.with(|p| p.replace(true)) {
            return;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let cpu = self.cpus[turn % self.cpus.len()];
        let outcome = self.set_current(&[cpu]).map(|()| cpu);
        if let Ok(mut outcomes) = self.outcomes.lock() {
            outcomes.push(outcome);
        }
    }

    /// Sets the calling thread back to the process's CPU set.
    fn release_current(&self) {
        // A failure leaves the thread as it was created; nothing to do about it here, and a
        // blocking thread runs correctly on any CPU set.
        let _ = self.set_current(&self.cpus);
    }

    #[cfg(target_os = "linux")]
    fn set_current(&self, cpus: &[usize]) -> Result<(), String> {
        use nix::sched::{sched_setaffinity, CpuSet};
        use nix::unistd::Pid;
        let set = if cpus == self.cpus.as_slice() {
            self.original
        } else {
            let mut set = CpuSet::new();
            for &c in cpus {
                set.set(c).map_err(|e| e.to_string())?;
            }
            set
        };
        sched_setaffinity(Pid::from_raw(0), &set).map_err(|e| e.to_string())
    }

    #[cfg(not(target_os = "linux"))]
    fn set_current(&self, _cpus: &[usize]) -> Result<(), String> {
        Err("not supported on this system".into())
    }

    /// One line for the start-up log: which CPUs the runtime's `workers` run on, or why one
    /// could not be pinned.
    pub fn describe(&self, workers: usize) -> String {
        let outcomes = match self.outcomes.lock() {
            Ok(o) => o.clone(),
            Err(_) => return "worker pinning state unavailable".into(),
        };
        let pinned: Vec<String> = outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok().map(usize::to_string))
            .collect();
        let failed: Vec<&str> = outcomes
            .iter()
            .filter_map(|o| o.as_ref().err().map(String::as_str))
            .collect();
        let mut line = format!(
            "{} of {workers} async workers pinned to CPUs [{}] of [{}]",
            pinned.len(),
            pinned.join(", "),
            self.cpus
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        if outcomes.len() < workers {
            line.push_str(" (the others are pinned when they first go idle)");
        }
        if !failed.is_empty() {
            line.push_str(&format!(
                "; {} could not be pinned: {}",
                failed.len(),
                failed.join("; ")
            ));
        }
        line
    }

    /// What each pinned worker came to, in pinning order.
    #[cfg(test)]
    fn outcomes(&self) -> Vec<Result<usize, String>> {
        self.outcomes.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use nix::sched::sched_getaffinity;
    use nix::unistd::Pid;

    /// Each worker runs on its own CPU (in turn, when there are more workers than CPUs), and a
    /// blocking thread started by a worker runs on the whole set again.
    #[test]
    fn workers_are_pinned_in_turn_and_blocking_threads_are_not() {
        let all = cpus_of(&sched_getaffinity(Pid::from_raw(0)).expect("own affinity"));
        let workers = 2;
        let pinning = Arc::new(Pinning::new().expect("pinning"));
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers).enable_all();
        pin(&mut builder, &pinning);
        let rt = builder.build().expect("runtime");
        // Each worker parks as soon as it finds no work; wait for both to have done so.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while pinning.outcomes().len() < workers && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let outcomes = pinning.outcomes();
        let expected: Vec<usize> = (0..workers).map(|i| all[i % all.len()]).collect();
        let mut got: Vec<usize> = outcomes
            .iter()
            .map(|o| *o.as_ref().expect("pinned"))
            .collect();
        got.sort_unstable();
        assert_eq!(got, expected, "one worker per CPU, in turn");

        // A task runs on a worker, pinned to exactly one of those CPUs; a blocking thread it
        // starts is not pinned.
        let (on_worker, on_blocking) = rt.block_on(async {
            tokio::spawn(async {
                let here = cpus_of(&sched_getaffinity(Pid::from_raw(0)).expect("affinity"));
                let blocking = tokio::task::spawn_blocking(|| {
                    cpus_of(&sched_getaffinity(Pid::from_raw(0)).expect("affinity"))
                })
                .await
                .expect("blocking task");
                (here, blocking)
            })
            .await
            .expect("task")
        });
        assert_eq!(
            on_worker.len(),
            1,
            "a worker runs on one CPU: {on_worker:?}"
        );
        assert!(expected.contains(&on_worker[0]));
        assert_eq!(on_blocking, all, "blocking threads run on the whole set");
        assert!(pinning
            .describe(workers)
            .starts_with("2 of 2 async workers pinned to CPUs ["));
    }
}
