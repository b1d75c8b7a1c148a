//! Where a sweep stands, as the coordinator reads it from the database and a client sees
//! it.

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
    /// Patches of the tasks that are done.
    pub patches_done: i64,
    /// Patches of the leased tasks computed so far, as their workers' heartbeats report
    /// (not stored yet: they join `patches_done` when their task completes).
    pub patches_in_progress: i64,
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
    /// What the metric averages over, and the 95% intervals of before and after.
    pub n: Option<i64>,
    pub before_ci: Option<(f64, f64)>,
    pub after_ci: Option<(f64, f64)>,
    /// The control mean's 95% interval over prompts.
    pub control_ci: Option<(f64, f64)>,
}

impl SweepProgress {
    /// Whether the sweep has ended (nothing will run unless it is resumed).
    pub fn is_final(&self) -> bool {
        matches!(
            self.state.as_str(),
            "done" | "partial" | "failed" | "cancelled"
        )
    }

    /// Patches computed so far: those of done tasks and those of leased tasks by their
    /// workers' last heartbeat. What a progress bar shows.
    pub fn patches_reached(&self) -> i64 {
        let most = self.patches_total.max(self.patches_done);
        (self.patches_done + self.patches_in_progress.max(0)).min(most)
    }

    /// Patches of done tasks per second since the first lease.
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
            .then(|| (self.patches_total - self.patches_reached()).max(0) as f64 / rate)
    }
}
