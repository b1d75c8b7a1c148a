//! A sweep's state: starting its waiting tasks and ending it once its tasks have ended,
//! cancelling it, resuming it.

use super::backend::{sql, QueueConn};
use crate::store::error::db_error;
use crate::store::StoreError;

/// Tasks of a sweep still queued or leased (index only).
pub(crate) async fn active_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    sweep_id: i64,
) -> Result<i64, StoreError> {
    sql("SELECT COUNT(*) FROM tasks WHERE sweep_id = $1 AND state IN ('queued', 'leased')")
        .bind(sweep_id)
        .fetch_scalar(tx)
        .await
        .map_err(db_error("settle sweep", url))
}

/// Sweeps not yet ended.
pub(crate) async fn open_sweeps_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
) -> Result<Vec<i64>, StoreError> {
    sql("SELECT id FROM sweeps WHERE status IN ('queued', 'running')")
        .fetch_scalars(tx)
        .await
        .map_err(db_error("settle sweeps", url))
}

/// After a task ended: starts the sweep's waiting tasks of the earliest stage once nothing
/// else is queued or leased, and gives the sweep its final state once nothing at all is left.
pub(crate) async fn settle_sweep_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    sweep_id: i64,
) -> Result<(), StoreError> {
    const STEP: &str = "settle sweep";
    // Settling takes turns per sweep: two last tasks finishing at once would each see the
    // other still running, and neither would end the sweep.
    let _locked: Option<(i64,)> = sql("SELECT id FROM sweeps WHERE id = $1{lock_row}")
        .bind(sweep_id)
        .fetch_optional(tx)
        .await
        .map_err(db_error(STEP, url))?;
    // A set chosen from an experiment with failed tasks would be chosen from part of it:
    // such waiting patch tasks fail instead, saying so, and `resume` runs them again after
    // the tasks they wait for.
    sql("UPDATE tasks SET state = 'failed', finished_at = {now}, \
         error = 'an earlier stage of the sweep (the experiment its sets are chosen from) has \
         failed tasks; resume the sweep to run them, then this one' \
         WHERE sweep_id = $1 AND state = 'waiting' AND kind = 'patch' \
         AND EXISTS (SELECT 1 FROM tasks f WHERE f.sweep_id = $1 AND f.state = 'failed' \
         AND f.stage < tasks.stage) \
         AND NOT EXISTS (SELECT 1 FROM tasks o WHERE o.sweep_id = $1 \
         AND o.state IN ('queued', 'leased'))")
    .bind(sweep_id)
    .execute(tx)
    .await
    .map_err(db_error(STEP, url))?;
    sql(
        "UPDATE tasks SET state = 'queued' WHERE sweep_id = $1 AND state = 'waiting' \
         AND stage = (SELECT MIN(w.stage) FROM tasks w WHERE w.sweep_id = $1 \
         AND w.state = 'waiting') \
         AND NOT EXISTS (SELECT 1 FROM tasks o WHERE o.sweep_id = $1 \
         AND o.state IN ('queued', 'leased'))",
    )
    .bind(sweep_id)
    .execute(tx)
    .await
    .map_err(db_error(STEP, url))?;
    let (active, failed, prepare_failed): (i64, i64, i64) = sql(
        "SELECT CAST(COALESCE(SUM(CASE WHEN state IN ('waiting', 'queued', 'leased') \
         THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN state = 'failed' AND kind = 'prepare' THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM tasks WHERE sweep_id = $1",
    )
    .bind(sweep_id)
    .fetch_one(tx)
    .await
    .map_err(db_error(STEP, url))?;
    if active > 0 {
        return Ok(());
    }
    let state = if prepare_failed > 0 {
        "failed"
    } else if failed > 0 {
        "partial"
    } else {
        "done"
    };
    sql("UPDATE sweeps SET status = $2, finished_at = {sweep_now}, \
         error = (SELECT error FROM tasks WHERE sweep_id = $1 AND state = 'failed' \
                  AND kind = 'prepare' LIMIT 1) \
         WHERE id = $1 AND status IN ('queued', 'running')")
    .bind(sweep_id)
    .bind(state)
    .execute(tx)
    .await
    .map_err(db_error(STEP, url))?;
    Ok(())
}

/// Cancels a sweep that has not ended, and its waiting, queued and leased tasks.
pub(crate) async fn cancel_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    sweep_id: i64,
) -> Result<(), StoreError> {
    const STEP: &str = "cancel sweep";
    let cancelled = sql(
        "UPDATE sweeps SET status = 'cancelled', finished_at = {sweep_now} \
                         WHERE id = $1 AND status IN ('queued', 'running')",
    )
    .bind(sweep_id)
    .execute(tx)
    .await
    .map_err(db_error(STEP, url))?;
    if cancelled == 1 {
        sql(
            "UPDATE tasks SET state = 'cancelled', lease_expires_at = NULL \
             WHERE sweep_id = $1 AND state IN ('waiting', 'queued', 'leased')",
        )
        .bind(sweep_id)
        .execute(tx)
        .await
        .map_err(db_error(STEP, url))?;
    }
    Ok(())
}

/// Queues a sweep's failed and cancelled tasks again, attempts from zero (tasks of a later
/// stage wait again), then settles it.
pub(crate) async fn resume_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    sweep_id: i64,
) -> Result<(), StoreError> {
    const STEP: &str = "resume sweep";
    sql(
        "UPDATE tasks SET state = CASE WHEN kind = 'debias' OR stage > 0 THEN 'waiting' \
         ELSE 'queued' END, \
         attempt = 0, error = NULL, not_before = 0, worker_id = NULL, finished_at = NULL \
         WHERE sweep_id = $1 AND state IN ('failed', 'cancelled')",
    )
    .bind(sweep_id)
    .execute(tx)
    .await
    .map_err(db_error(STEP, url))?;
    // A sweep that ended `done` (or is still open) is left as it is: resuming it again
    // changes nothing, not even its `finished_at`.
    sql(
        "UPDATE sweeps SET status = 'running', finished_at = NULL, error = NULL \
         WHERE id = $1 AND status IN ('failed', 'partial', 'cancelled')",
    )
    .bind(sweep_id)
    .execute(tx)
    .await
    .map_err(db_error(STEP, url))?;
    settle_sweep_in(tx, url, sweep_id).await
}
