//! The worker loop: register, lease one task at a time, compute it on the compute thread
//! while heartbeating, deliver the result (retrying while the coordinator is away), and
//! stop cleanly when asked.
//!
//! Stopping: `drain` stops leasing and lets the current task finish and be delivered;
//! `abort` hands the current lease back at once. A result is delivered even when a
//! heartbeat said the lease was lost: the coordinator decides (fencing) and counts it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use patchsweep_api::{HeldLease, Settled, TaskOutput, WorkerInfo, WorkerStatus};
use tokio::sync::watch;

use crate::counters::WorkerCounters;
use crate::executor::ComputeThread;
use crate::link::{Link, LinkError};

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub name: String,
    pub device: String,
    pub memory_bytes: i64,
    /// Wait between lease attempts while there is no work.
    pub idle_poll: Duration,
    /// Longest wait between retries while the coordinator is unreachable.
    pub max_backoff: Duration,
    pub counters: Arc<WorkerCounters>,
}

impl WorkerOptions {
    pub fn new(name: impl Into<String>, device: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            device: device.into(),
            memory_bytes: 0,
            idle_poll: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            counters: Arc::default(),
        }
    }

    /// The memory the worker reports (`workers_v.memory_bytes`): its task memory budget
    /// (`--max-task-memory`, or what the device has), 0 when unknown.
    pub fn with_memory_budget(mut self, budget: Option<u64>) -> Self {
        self.memory_bytes = budget.map_or(0, |b| b.min(i64::MAX as u64) as i64);
        self
    }
}

/// Signals that stop a worker: set to `true` to drain, or to abort.
#[derive(Clone)]
pub struct Controls {
    pub drain: watch::Receiver<bool>,
    pub abort: watch::Receiver<bool>,
}

/// What a worker did, for its last log line and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStats {
    pub completed: u64,
    pub failed: u64,
    pub stale: u64,
    pub released: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Link(#[from] LinkError),
}

struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Self {
        Self {
            next: Duration::from_millis(100),
            max,
        }
    }

    fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }

    /// Waits the current delay (or until a stop signal), then doubles it.
    async fn wait(&mut self, controls: &mut Controls) {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        wait_or_stop(d, controls).await;
    }
}

async fn wait_or_stop(d: Duration, controls: &mut Controls) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = changed(&mut controls.drain) => {}
        _ = changed(&mut controls.abort) => {}
    }
}

/// A change of a stop signal; never, once its sender is gone (instead of at once, forever).
async fn changed(signal: &mut watch::Receiver<bool>) {
    if signal.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn stopping(c: &Controls) -> bool {
    *c.drain.borrow() || *c.abort.borrow()
}

/// Calls `f` until it succeeds, the coordinator refuses, or `give_up` says stop.
async fn retrying<T, F, Fut>(
    what: &str,
    backoff: &mut Backoff,
    controls: &mut Controls,
    give_up: impl Fn(&Controls) -> bool,
    mut f: F,
) -> Result<Option<T>, LinkError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, LinkError>>,
{
    // A coordinator still starting (a worker started with it) is not worth a warning; one
    // that stays away is.
    const QUIET_RETRIES: u32 = 3;
    let mut failures = 0u32;
    loop {
        match f().await {
            Ok(v) => {
                backoff.reset();
                return Ok(Some(v));
            }
            Err(LinkError::Unavailable(e)) => {
                failures += 1;
                if failures <= QUIET_RETRIES {
                    tracing::info!("{what}: {e}; retrying");
                } else {
                    tracing::warn!("{what}: {e}; retrying (attempt {failures})");
                }
                if give_up(controls) {
                    return Ok(None);
                }
                backoff.wait(controls).await;
            }
            Err(refused) => return Err(refused),
        }
    }
}

/// The heartbeat period a coordinator asked for, bounded to [50 ms, 1 h] (a NaN or an
/// absurd value from a misconfigured coordinator must not crash or silence the worker).
pub fn heartbeat_interval(seconds: f64) -> Duration {
    let s = if seconds.is_finite() { seconds } else { 15.0 };
    Duration::from_secs_f64(s.clamp(0.05, 3600.0))
}

/// Runs the worker until drained or aborted. Errors only when the coordinator refuses
/// the worker (wrong token, say).
pub async fn run_worker<L: Link>(
    link: Arc<L>,
    compute: ComputeThread,
    opts: WorkerOptions,
    mut controls: Controls,
) -> Result<WorkerStats, WorkerError> {
    let mut stats = WorkerStats::default();
    let mut backoff = Backoff::new(opts.max_backoff);
    let info = WorkerInfo {
        memory_bytes: opts.memory_bytes,
        models: compute.models(),
        ..WorkerInfo::new(&opts.name, &opts.device)
    };
    let Some(reg) = retrying("register", &mut backoff, &mut controls, stopping, || {
        link.register(info.clone())
    })
    .await?
    else {
        return Ok(stats);
    };
    let id = reg.worker_id.clone();
    let heartbeat = heartbeat_interval(reg.heartbeat_seconds);
    tracing::info!(worker = %id, "registered");
    while !stopping(&controls) {
        let (models, held) = (compute.models(), compute.held_sweeps());
        let leased = retrying("lease", &mut backoff, &mut controls, stopping, || {
            link.lease(&id, &models, &held, 1)
        })
        .await?;
        let Some(task) = leased.and_then(|t| t.into_iter().next()) else {
            if !stopping(&controls) {
                wait_or_stop(opts.idle_poll, &mut controls).await;
            }
            continue;
        };
        tracing::info!(
            task = task.task_id,
            attempt = task.attempt,
            "{}",
            task.description
        );
        let started = Instant::now();
        let computed = {
            let run = compute.run(task.clone());
            tokio::pin!(run);
            loop {
                tokio::select! {
                    out = &mut run => break Some(out),
                    _ = tokio::time::sleep(heartbeat) => {
                        let status = WorkerStatus {
                            models: compute.models(),
                            device_memory_peak_bytes: opts.counters.device_memory_peak(),
                        };
                        let lease = HeldLease {
                            fraction_done: compute.task_progress(),
                            ..HeldLease::new(task.task_id, task.attempt)
                        };
                        match link.heartbeat(&id, &status, &[lease]).await {
                            Ok(lost) if !lost.is_empty() => tracing::warn!(task = task.task_id, "lease lost while computing; the result may be refused"),
                            Ok(_) => {}
                            Err(e) => tracing::warn!("heartbeat: {e}"),
                        }
                    }
                    _ = changed(&mut controls.abort) => {
                        if *controls.abort.borrow() {
                            break None;
                        }
                    }
                }
            }
        };
        let Some(out) = computed else {
            if let Ok(true) = link.release(&id, &task).await {
                stats.released += 1;
            }
            tracing::info!(task = task.task_id, "aborted: lease handed back");
            break;
        };
        let seconds = started.elapsed().as_secs_f64();
        let aborted = |c: &Controls| *c.abort.borrow();
        let settled = match &out {
            Ok(output) => {
                let delivered = retrying(
                    "deliver result",
                    &mut backoff,
                    &mut controls,
                    aborted,
                    || link.complete(&id, &task, output, seconds),
                )
                .await;
                match delivered {
                    Err(LinkError::Refused(why)) => {
                        // A result the coordinator will never take (invalid values, say) is
                        // this task's failure, not the worker's: report it and go on. If the
                        // report is refused too, the worker itself is refused: stop.
                        tracing::warn!(task = task.task_id, "result refused: {why}");
                        let message = format!("the coordinator refused the result: {why}");
                        retrying(
                            "report refused result",
                            &mut backoff,
                            &mut controls,
                            aborted,
                            || link.fail(&id, &task, &message, true),
                        )
                        .await?
                    }
                    other => other?,
                }
            }
            Err(e) => {
                tracing::warn!(
                    task = task.task_id,
                    permanent = e.permanent,
                    "task failed: {e}"
                );
                retrying(
                    "report failure",
                    &mut backoff,
                    &mut controls,
                    aborted,
                    || link.fail(&id, &task, &e.message, e.permanent),
                )
                .await?
            }
        };
        match settled {
            Some(Settled::Completed { rows }) => {
                stats.completed += 1;
                WorkerCounters::add(&opts.counters.tasks_completed, 1);
                if let Ok(TaskOutput::Patch(e)) = &out {
                    WorkerCounters::add(&opts.counters.patches, e.len() as u64);
                }
                tracing::info!(task = task.task_id, rows, seconds, "task completed");
            }
            Some(Settled::Stale { reason }) => {
                stats.stale += 1;
                WorkerCounters::add(&opts.counters.results_refused, 1);
                tracing::warn!(task = task.task_id, "result refused: {reason}");
            }
            Some(Settled::Requeued { .. } | Settled::Failed) => {
                stats.failed += 1;
                WorkerCounters::add(&opts.counters.tasks_failed, 1);
            }
            None => break,
        }
    }
    tracing::info!(worker = %id, ?stats, "worker stopped");
    Ok(stats)
}
