//! How a lease ends: the fence every report passes, then completion (with the task's
//! output), failure (retried after a backoff, or failed) or release.

use super::backend::{sql, QueueConn};
use crate::store::error::db_error;
use crate::store::queue::{QueuePolicy, Settled};
use crate::store::StoreError;

/// Checks that `worker_id` holds the lease of `task_id` under `attempt` (and locks the
/// task row): `Ok((sweep_id, kind))`, or `Err(reason)` when it is stale.
pub(crate) async fn fence_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    task_id: i64,
    attempt: i64,
    worker_id: &str,
) -> Result<Result<(i64, String), String>, StoreError> {
    let row: Option<(String, i64, Option<String>, i64, String)> =
        sql("SELECT state, attempt, worker_id, sweep_id, kind FROM tasks WHERE id = $1{lock_row}")
            .bind(task_id)
            .fetch_optional(tx)
            .await
            .map_err(db_error("check lease", url))?;
    let Some((state, current, holder, sweep_id, kind)) = row else {
        return Ok(Err(format!("task {task_id} does not exist")));
    };
    if state == "leased" && current == attempt && holder.as_deref() == Some(worker_id) {
        return Ok(Ok((sweep_id, kind)));
    }
    Ok(Err(format!(
        "stale lease: task {task_id} attempt {attempt} by worker {worker_id}, but the \
         task is {state} at attempt {current}{}",
        holder
            .filter(|h| h != worker_id)
            .map(|h| format!(" (worker {h})"))
            .unwrap_or_default()
    )))
}

/// Counts a result refused by the fence.
pub(crate) async fn record_stale_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    task_id: i64,
) -> Result<(), StoreError> {
    sql("UPDATE tasks SET stale_results = stale_results + 1 WHERE id = $1")
        .bind(task_id)
        .execute(tx)
        .await
        .map_err(db_error("record stale result", url))?;
    Ok(())
}

/// Ends a fenced task as done, with the number of rows its output stored.
pub(crate) async fn mark_done_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    task_id: i64,
    rows: u64,
) -> Result<(), StoreError> {
    sql(
        "UPDATE tasks SET state = 'done', finished_at = {now}, lease_expires_at = NULL, \
         error = NULL, rows_stored = rows_stored + $2 WHERE id = $1",
    )
    .bind(task_id)
    .bind(rows as i64)
    .execute(tx)
    .await
    .map_err(db_error("complete task", url))?;
    Ok(())
}

/// Stores the seeded splits of the debias sections (a prepare task's output).
pub(crate) async fn insert_splits_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    sweep_id: i64,
    members: &[(String, String, String)],
) -> Result<(), StoreError> {
    for (debias, pair_id, part) in members {
        sql(
            "INSERT INTO debias_splits (sweep_id, debias, pair_id, part) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(sweep_id)
        .bind(debias)
        .bind(pair_id)
        .bind(part)
        .execute(tx)
        .await
        .map_err(db_error("store debias splits", url))?;
    }
    Ok(())
}

/// Stores a debias task's rows; answers how many were new.
pub(crate) async fn insert_debias_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    sweep_id: i64,
    task_id: i64,
    rows: &[crate::store::DebiasRow],
) -> Result<u64, StoreError> {
    const STEP: &str = "store debias results";
    let mut n = 0;
    for r in rows {
        n += sql(
            "INSERT INTO debias_results (sweep_id, debias, intervention, components, \
                  split, metric, before, after, control_after, control_components, task_id, \
                  control_sets, control_p05, control_p95, control_percentile, n, \
                  before_ci_low, before_ci_high, after_ci_low, after_ci_high, \
                  control_ci_low, control_ci_high) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                  $16, $17, $18, $19, $20, $21, $22) \
                  ON CONFLICT DO NOTHING",
        )
        .bind(sweep_id)
        .bind(&r.debias)
        .bind(&r.intervention)
        .bind(&r.components)
        .bind(&r.split)
        .bind(&r.metric)
        .bind(r.before)
        .bind(r.after)
        .bind(r.control_after)
        .bind(&r.control_components)
        .bind(task_id)
        .bind(r.control_sets)
        .bind(r.control_p05)
        .bind(r.control_p95)
        .bind(r.control_percentile)
        .bind(r.n)
        .bind(r.before_ci.map(|c| c.0))
        .bind(r.before_ci.map(|c| c.1))
        .bind(r.after_ci.map(|c| c.0))
        .bind(r.after_ci.map(|c| c.1))
        .bind(r.control_ci.map(|c| c.0))
        .bind(r.control_ci.map(|c| c.1))
        .execute(tx)
        .await
        .map_err(db_error(STEP, url))?;
    }
    Ok(n)
}

/// Records a failure of a fenced task: queued again after a backoff, or failed on its
/// last attempt (or at once when `permanent`).
pub(crate) async fn retry_or_fail_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    task_id: i64,
    error: &str,
    permanent: bool,
    policy: &QueuePolicy,
) -> Result<Settled, StoreError> {
    const STEP: &str = "fail task";
    let (attempt, max): (i64, i64) = sql("SELECT attempt, max_attempts FROM tasks WHERE id = $1")
        .bind(task_id)
        .fetch_one(tx)
        .await
        .map_err(db_error(STEP, url))?;
    if permanent || attempt >= max {
        sql(
            "UPDATE tasks SET state = 'failed', error = $2, finished_at = {now}, \
             lease_expires_at = NULL WHERE id = $1",
        )
        .bind(task_id)
        .bind(error)
        .execute(tx)
        .await
        .map_err(db_error(STEP, url))?;
        return Ok(Settled::Failed);
    }
    let retry_in = policy.backoff(attempt);
    sql(
        "UPDATE tasks SET state = 'queued', error = $2, not_before = {now} + $3, \
         lease_expires_at = NULL WHERE id = $1",
    )
    .bind(task_id)
    .bind(error)
    .bind(retry_in)
    .execute(tx)
    .await
    .map_err(db_error(STEP, url))?;
    Ok(Settled::Requeued { retry_in })
}

/// Puts a fenced task back in the queue at once, its attempt not counted.
pub(crate) async fn release_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    task_id: i64,
) -> Result<(), StoreError> {
    sql("UPDATE tasks SET state = 'queued', attempt = attempt - 1, \
         lease_expires_at = NULL, worker_id = NULL WHERE id = $1")
    .bind(task_id)
    .execute(tx)
    .await
    .map_err(db_error("release task", url))?;
    Ok(())
}
