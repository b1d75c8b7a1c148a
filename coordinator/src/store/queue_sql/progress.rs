//! Reading where the sweeps stand: one sweep's progress, totals for metrics, the list.

use sqlx::{ColumnIndex, Decode, FromRow, Row, Type};

use super::backend::{sql, QueueConn};
use crate::store::error::db_error;
use crate::store::queue::{DebiasFigure, QueueTotals, SweepProgress, TaskCounts, TaskFailure};
use crate::store::StoreError;

/// A sweep: id, name, model, status, error, created_at, finished_at.
type SweepRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
);

/// Where a sweep stands; `None` when it does not exist.
pub(crate) async fn progress_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    sweep_id: i64,
    lease_seconds: f64,
) -> Result<Option<SweepProgress>, StoreError> {
    const STEP: &str = "read sweep";
    let sweep: Option<SweepRow> =
        sql("SELECT id, name, model, status, error, {sweep_times} FROM sweeps WHERE id = $1")
            .bind(sweep_id)
            .fetch_optional(tx)
            .await
            .map_err(db_error(STEP, url))?;
    let Some((sweep_id, name, model, state, error, created_at, finished_at)) = sweep else {
        return Ok(None);
    };
    let counts: Vec<(String, i64)> =
        sql("SELECT state, COUNT(*) FROM tasks WHERE sweep_id = $1 GROUP BY state")
            .bind(sweep_id)
            .fetch_all(tx)
            .await
            .map_err(db_error(STEP, url))?;
    let mut tasks = TaskCounts::default();
    for (state, n) in counts {
        match state.as_str() {
            "waiting" => tasks.waiting = n,
            "queued" => tasks.queued = n,
            "leased" => tasks.leased = n,
            "done" => tasks.done = n,
            "failed" => tasks.failed = n,
            _ => tasks.cancelled += n,
        }
    }
    let sums: TaskSums = sql(
        "SELECT CAST(COALESCE(SUM(cost), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN state = 'done' THEN cost ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN state = 'leased' THEN cost * progress ELSE 0 END), 0) \
           AS DOUBLE PRECISION), \
         CAST(COALESCE(SUM(CASE WHEN state = 'done' AND kind = 'patch' THEN rows_stored ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN attempt > 1 THEN attempt - 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(stale_results), 0) AS BIGINT), \
         CAST(COALESCE(SUM(lease_expirations), 0) AS BIGINT), \
         CAST(COALESCE(MAX(CASE WHEN state IN ('waiting', 'queued', 'leased') THEN {now} \
           ELSE finished_at END) - MIN(started_at), 0) AS DOUBLE PRECISION) \
         FROM tasks WHERE sweep_id = $1",
    )
    .bind(sweep_id)
    .fetch_one(tx)
    .await
    .map_err(db_error(STEP, url))?;
    let workers = live_workers_in(tx, url, STEP, lease_seconds).await?;
    let failures: Vec<(i64, String, String, i64)> = sql(
        "SELECT id, description, COALESCE(error, ''), attempt FROM tasks \
         WHERE sweep_id = $1 AND state = 'failed' ORDER BY id LIMIT 20",
    )
    .bind(sweep_id)
    .fetch_all(tx)
    .await
    .map_err(db_error(STEP, url))?;
    let figures: Vec<StoredFigure> = sql(
        "SELECT debias, intervention, split, metric, before, after, control_after, n, \
         before_ci_low, before_ci_high, after_ci_low, after_ci_high, control_ci_low, \
         control_ci_high FROM debias_results WHERE sweep_id = $1 \
         ORDER BY debias, intervention, split, metric",
    )
    .bind(sweep_id)
    .fetch_all(tx)
    .await
    .map_err(db_error(STEP, url))?;
    Ok(Some(SweepProgress {
        sweep_id,
        name,
        model,
        state,
        error,
        tasks,
        patches_total: sums.patches_total,
        patches_done: sums.patches_done,
        patches_in_progress: sums.patches_in_progress,
        effects_stored: sums.effects_stored,
        elapsed_seconds: sums.elapsed_seconds,
        workers,
        retries: sums.retries,
        stale_results: sums.stale_results,
        lease_expirations: sums.lease_expirations,
        failures: failures
            .into_iter()
            .map(|(task_id, description, error, attempts)| TaskFailure {
                task_id,
                description,
                error,
                attempts,
            })
            .collect(),
        created_at,
        finished_at,
        debias: figures.into_iter().map(|f| f.0).collect(),
    }))
}

/// The sums over a sweep's tasks, in the order of the SELECT in [`progress_in`].
struct TaskSums {
    patches_total: i64,
    patches_done: i64,
    /// Truncated to whole patches here (the backends cast reals to integers differently), so
    /// a running task never reads as finished.
    patches_in_progress: i64,
    effects_stored: i64,
    retries: i64,
    stale_results: i64,
    lease_expirations: i64,
    /// 0 when the database answers no number.
    elapsed_seconds: f64,
}

impl<'r, R: Row> FromRow<'r, R> for TaskSums
where
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Option<f64>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(TaskSums {
            patches_total: row.try_get(0)?,
            patches_done: row.try_get(1)?,
            patches_in_progress: row
                .try_get::<Option<f64>, _>(2)
                .ok()
                .flatten()
                .map_or(0, |v| v.max(0.0).floor() as i64),
            effects_stored: row.try_get(3)?,
            retries: row.try_get(4)?,
            stale_results: row.try_get(5)?,
            lease_expirations: row.try_get(6)?,
            elapsed_seconds: row
                .try_get::<Option<f64>, _>(7)
                .ok()
                .flatten()
                .unwrap_or(0.0),
        })
    }
}

/// A debias figure as the SELECT in [`progress_in`] reads it: debias, intervention, split,
/// metric, before, after, control_after, n, then the low and high bounds of before's,
/// after's and the control's intervals.
struct StoredFigure(DebiasFigure);

impl<'r, R: Row> FromRow<'r, R> for StoredFigure
where
    usize: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
    Option<f64>: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        let interval = |low: usize| -> Result<Option<(f64, f64)>, sqlx::Error> {
            let low_value: Option<f64> = row.try_get(low)?;
            Ok(low_value.zip(row.try_get::<Option<f64>, _>(low + 1)?))
        };
        Ok(StoredFigure(DebiasFigure {
            debias: row.try_get(0)?,
            intervention: row.try_get(1)?,
            split: row.try_get(2)?,
            metric: row.try_get(3)?,
            before: row.try_get(4)?,
            after: row.try_get(5)?,
            control_after: row.try_get(6)?,
            n: row.try_get(7)?,
            before_ci: interval(8)?,
            after_ci: interval(10)?,
            control_ci: interval(12)?,
        }))
    }
}

/// Workers seen within the last lease period.
async fn live_workers_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    step: &'static str,
    lease_seconds: f64,
) -> Result<i64, StoreError> {
    sql("SELECT COUNT(*) FROM workers WHERE last_seen_at > {now} - $1")
        .bind(lease_seconds)
        .fetch_scalar(tx)
        .await
        .map_err(db_error(step, url))
}

/// Totals over every sweep, for the coordinator's Prometheus metrics.
pub(crate) async fn totals_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    lease_seconds: f64,
) -> Result<QueueTotals, StoreError> {
    const STEP: &str = "read totals";
    let tasks_by_state: Vec<(String, i64)> =
        sql("SELECT state, COUNT(*) FROM tasks GROUP BY state ORDER BY state")
            .fetch_all(tx)
            .await
            .map_err(db_error(STEP, url))?;
    let (lease_expirations, retries, stale_results, effects_stored): (i64, i64, i64, i64) = sql(
        "SELECT CAST(COALESCE(SUM(lease_expirations), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN attempt > 1 THEN attempt - 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(stale_results), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN kind = 'patch' THEN rows_stored ELSE 0 END), 0) AS BIGINT) \
         FROM tasks",
    )
    .fetch_one(tx)
    .await
    .map_err(db_error(STEP, url))?;
    let workers = live_workers_in(tx, url, STEP, lease_seconds).await?;
    Ok(QueueTotals {
        tasks_by_state,
        lease_expirations,
        retries,
        stale_results,
        effects_stored,
        workers,
    })
}

/// The ids of the newest sweeps, newest first.
pub(crate) async fn sweep_ids_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    limit: i64,
) -> Result<Vec<i64>, StoreError> {
    sql("SELECT id FROM sweeps ORDER BY id DESC LIMIT $1")
        .bind(limit)
        .fetch_scalars(tx)
        .await
        .map_err(db_error("list sweeps", url))
}
