//! The task queue's types: what the scheduler hands to the store and gets back.
//!
//! Semantics (DESIGN.md §2): a lease is a task plus its `attempt`, the fencing token; a
//! result is stored only if the task is still leased to that worker under that attempt,
//! and it commits in the same transaction as the task's completion. Lease times come from
//! the database clock.

use super::{EffectRow, PairRow};

/// A task to be stored (planned by the coordinator or by a prepare task).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// `prepare`, `patch` or `debias`.
    pub kind: String,
    pub description: String,
    /// JSON arguments, by kind.
    pub payload: String,
    /// Patches the task computes (for progress and ETA).
    pub cost: i64,
    /// Tasks that wait start only once every other task of their sweep has ended.
    pub waits: bool,
}

/// A leased task, as handed to a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct LeasedTask {
    pub task_id: i64,
    /// The fencing token: results must name it.
    pub attempt: i64,
    pub sweep_id: i64,
    pub kind: String,
    pub model: String,
    pub spec_toml: String,
    pub payload: String,
    pub description: String,
}

/// A worker as it registers.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerInfo {
    pub id: String,
    pub name: String,
    pub device: String,
    pub memory_bytes: i64,
    pub models: Vec<String>,
    pub version: String,
}

/// What a prepare task found: the pairs with baselines, the experiments and the plan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PreparedSweep {
    pub pairs: Vec<PairRow>,
    pub dropped: Vec<(String, i64)>,
    /// (name, method, direction)
    pub experiments: Vec<(String, String, String)>,
    pub tasks: Vec<NewTask>,
    /// (debias section, pair id, part): the stored seeded splits.
    pub splits: Vec<(String, String, String)>,
}

/// A finished task's output; stored with its completion in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutput {
    Prepare(PreparedSweep),
    Patch(Vec<EffectRow>),
    /// Debias result rows, JSON as the engine writes them.
    Debias(String),
}

/// The answer to a result or a failure report.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    /// Stored; the number of new rows (effects, pairs or debias rows).
    Completed { rows: u64 },
    /// A failure was recorded and the task will run again after `retry_in` seconds.
    Requeued { retry_in: f64 },
    /// A failure on the last attempt: the task ended as failed.
    Failed,
    /// The lease had moved on (expired and taken over, cancelled, or finished): nothing
    /// was stored.
    Stale { reason: String },
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
    /// Seconds before a task that failed on `attempt` (1-based) runs again: the base,
    /// doubled each attempt, capped at the maximum.
    pub fn backoff(&self, attempt: i64) -> f64 {
        let doublings = (attempt.max(1) - 1).min(30) as i32;
        (self.backoff_base_seconds * 2f64.powi(doublings)).min(self.backoff_max_seconds)
    }
}

/// Task counts of a sweep, by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskCounts {
    pub waiting: i64,
    pub queued: i64,
    pub leased: i64,
    pub done: i64,
    pub failed: i64,
    pub cancelled: i64,
}

impl TaskCounts {
    pub fn total(&self) -> i64 {
        self.waiting + self.queued + self.leased + self.done + self.failed + self.cancelled
    }
}

/// A failed task, for the user.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFailure {
    pub task_id: i64,
    pub description: String,
    pub error: String,
    pub attempts: i64,
}

/// Where a sweep stands, read from the database.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SweepProgress {
    pub sweep_id: i64,
    pub name: String,
    pub model: String,
    /// queued | running | done | partial | failed | cancelled
    pub state: String,
    pub error: Option<String>,
    pub tasks: TaskCounts,
    pub patches_total: i64,
    pub patches_done: i64,
    pub effects_stored: i64,
    /// Seconds from the first lease of the sweep to now (or to its last completion).
    pub elapsed_seconds: f64,
    pub workers: i64,
    pub retries: i64,
    pub stale_results: i64,
    pub lease_expirations: i64,
    pub failures: Vec<TaskFailure>,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// Debias figures: (debias, intervention, split, metric, before, after, control_after).
    pub debias: Vec<DebiasFigure>,
}

/// One debias figure of a sweep, as `status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DebiasFigure {
    pub debias: String,
    pub intervention: String,
    pub split: String,
    pub metric: String,
    pub before: f64,
    pub after: f64,
    pub control_after: Option<f64>,
}

impl SweepProgress {
    /// Whether the sweep has ended (nothing will run unless it is resumed).
    pub fn is_final(&self) -> bool {
        matches!(
            self.state.as_str(),
            "done" | "partial" | "failed" | "cancelled"
        )
    }

    pub fn patches_per_second(&self) -> f64 {
        if self.elapsed_seconds > 0.0 {
            self.patches_done as f64 / self.elapsed_seconds
        } else {
            0.0
        }
    }

    /// Seconds left at the rate so far, when there is one.
    pub fn eta_seconds(&self) -> Option<f64> {
        let rate = self.patches_per_second();
        (rate > 0.0 && !self.is_final())
            .then(|| (self.patches_total - self.patches_done).max(0) as f64 / rate)
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
