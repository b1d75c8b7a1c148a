//! The compute side of a worker: an [`Executor`] on its own thread, fed by a channel, so
//! model compute never blocks the async runtime that heartbeats and talks to the
//! coordinator.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use patchsweep_api::{HeldSweep, LeasedTask, TaskOutput};
use tokio::sync::oneshot;

/// Why a task could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct TaskError {
    pub message: String,
    /// Deterministic (the spec does not fit the model): retrying cannot help.
    pub permanent: bool,
}

impl TaskError {
    pub fn permanent(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            permanent: true,
        }
    }

    pub fn transient(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            permanent: false,
        }
    }
}

/// How far the task on the compute thread has got: a share from 0 to 1 that the executor
/// moves as it computes and the worker loop sends with each heartbeat, so `watch` moves
/// within a long task. Shared between the two threads without a lock.
#[derive(Debug, Default)]
pub struct TaskProgress {
    /// The share done, as the bits of an `f64`.
    bits: AtomicU64,
}

impl TaskProgress {
    /// The share done so far, 0 to 1.
    pub fn fraction(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }

    /// Sets the share done to `done / total` (0 when `total` is 0; at most 1).
    pub fn set(&self, done: u64, total: u64) {
        let share = if total == 0 {
            0.0
        } else {
            (done as f64 / total as f64).min(1.0)
        };
        self.bits.store(share.to_bits(), Ordering::Relaxed);
    }

    /// A callback counting `total` units, each call adding the units it is given and moving
    /// this progress: the shape of the engine's progress callbacks.
    pub fn counter(&self, total: u64) -> impl FnMut(usize) + '_ {
        let mut done = 0u64;
        self.set(0, total);
        move |n| {
            done += n as u64;
            self.set(done, total);
        }
    }
}

/// Computes tasks. Runs on the compute thread only.
pub trait Executor: Send + 'static {
    /// Computes `task`, moving `progress` as it goes (an executor that cannot tell leaves
    /// it at 0: the task's patches count when it completes).
    fn execute(
        &mut self,
        task: &LeasedTask,
        progress: &TaskProgress,
    ) -> Result<TaskOutput, TaskError>;
    /// The model specs loaded now (the scheduler prefers their tasks).
    fn models(&self) -> Vec<String>;
    /// The sweeps held parsed and prepared now: the worker names them when it leases, and
    /// their tasks come without their spec text. An executor that keeps no sweep holds none.
    fn held_sweeps(&self) -> Vec<HeldSweep> {
        Vec::new()
    }
}

type Job = (LeasedTask, oneshot::Sender<Result<TaskOutput, TaskError>>);

/// What the executor holds, as of its last task: loaded models and prepared sweeps.
#[derive(Default)]
struct Holding {
    models: Vec<String>,
    sweeps: Vec<HeldSweep>,
}

impl Holding {
    fn of(executor: &dyn Executor) -> Self {
        Self {
            models: executor.models(),
            sweeps: executor.held_sweeps(),
        }
    }
}

/// A handle on the compute thread.
pub struct ComputeThread {
    jobs: mpsc::Sender<Job>,
    holding: Arc<Mutex<Holding>>,
    progress: Arc<TaskProgress>,
}

impl ComputeThread {
    pub fn spawn(mut executor: Box<dyn Executor>) -> Self {
        let (jobs, rx) = mpsc::channel::<Job>();
        let holding = Arc::new(Mutex::new(Holding::of(executor.as_ref())));
        let shared = holding.clone();
        let progress = Arc::new(TaskProgress::default());
        let moved = progress.clone();
        std::thread::Builder::new()
            .name("patchsweep-compute".into())
            .spawn(move || {
                for (task, reply) in rx {
                    moved.set(0, 1);
                    let out = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        executor.execute(&task, &moved)
                    }))
                    .unwrap_or_else(|panic| {
                        let what = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "unknown panic".into());
                        Err(TaskError::transient(format!("the task panicked: {what}")))
                    });
                    if let Ok(mut h) = shared.lock() {
                        *h = Holding::of(executor.as_ref());
                    }
                    let _ = reply.send(out);
                }
            })
            .expect("spawning the compute thread");
        Self {
            jobs,
            holding,
            progress,
        }
    }

    /// The share of the running task computed so far, 0 to 1.
    pub fn task_progress(&self) -> f64 {
        self.progress.fraction()
    }

    /// Computes `task` on the compute thread.
    pub async fn run(&self, task: LeasedTask) -> Result<TaskOutput, TaskError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send((task, tx))
            .map_err(|_| TaskError::transient("the compute thread has stopped"))?;
        rx.await
            .map_err(|_| TaskError::transient("the compute thread has stopped"))?
    }

    pub fn models(&self) -> Vec<String> {
        self.holding
            .lock()
            .map(|h| h.models.clone())
            .unwrap_or_default()
    }

    /// The sweeps the executor holds prepared, as of its last task (the compute thread is
    /// idle while the worker leases, so this is what the next task will find).
    pub fn held_sweeps(&self) -> Vec<HeldSweep> {
        self.holding
            .lock()
            .map(|h| h.sweeps.clone())
            .unwrap_or_default()
    }
}
