//! The task queue's types: what the scheduler hands to the store and gets back. The
//! tasks, results and progress are the shared vocabulary of `patchsweep_api`; the queue's
//! own policy and totals are here.
//!
//! Semantics (DESIGN.md §2): a lease is a task plus its `attempt`, the fencing token; a
//! result is stored only if the task is still leased to that worker under that attempt,
//! and it commits in the same transaction as the task's completion. Lease times come from
//! the database clock.

pub use patchsweep_api::{
    DebiasFigure, HeldSweep, LeasedTask, NewTask, PreparedSweep, Settled, SweepProgress,
    TaskCounts, TaskFailure, TaskKind, TaskOutput, TaskState, WorkerInfo,
};

/// Which tasks a lease may take, and the sweeps whose spec text the worker needs not be
/// sent.
#[derive(Debug, Clone, Copy)]
pub struct LeaseScope<'a> {
    /// The worker's model: its tasks come first ("" for none).
    pub model: &'a str,
    /// Every model the worker holds, recorded as its `workers.models` (`None`: leave the
    /// record as it is).
    pub models: Option<&'a [String]>,
    /// Only this sweep's tasks, when set (the embedded `run` leaves every other sweep of
    /// its database alone).
    pub only_sweep: Option<i64>,
    /// Sweeps the worker holds prepared: their tasks come without their spec text when
    /// the digest is the stored spec's.
    pub held: &'a [HeldSweep],
    pub max: usize,
}

/// Retry and lease timing, fixed by the coordinator's configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueuePolicy {
    pub lease_seconds: f64,
    pub backoff_base_seconds: f64,
    pub backoff_max_seconds: f64,
    pub max_attempts: i64,
}

impl Default for QueuePolicy {
    fn default() -> Self {
        Self {
            lease_seconds: 60.0,
            backoff_base_seconds: 2.0,
            backoff_max_seconds: 300.0,
            max_attempts: 4,
        }
    }
}

impl QueuePolicy {
    /// How stale `workers.last_seen_at` may be before a worker's call writes it again: a
    /// second, or a tenth of the lease period when that is shorter. A fleet of busy workers
    /// would otherwise write its rows twice per task (lease and result), and liveness is
    /// judged over a lease period, not to the millisecond.
    pub fn seen_resolution(&self) -> f64 {
        (self.lease_seconds / 10.0).min(1.0)
    }

    /// Seconds before a task that failed on `attempt` (1-based) runs again: the base,
    /// doubled each attempt, capped at the maximum.
    pub fn backoff(&self, attempt: i64) -> f64 {
        let doublings = (attempt.max(1) - 1).min(30) as i32;
        (self.backoff_base_seconds * 2f64.powi(doublings)).min(self.backoff_max_seconds)
    }
}

/// Totals over every sweep (the coordinator's metrics are read from the database, so a
/// restarted coordinator reports the same).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueTotals {
    pub tasks_by_state: Vec<(String, i64)>,
    pub lease_expirations: i64,
    pub retries: i64,
    pub stale_results: i64,
    pub effects_stored: i64,
    /// Workers seen within the last lease period.
    pub workers: i64,
}
