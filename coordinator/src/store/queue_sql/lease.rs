//! Leasing tasks, and returning the leases that expired to the queue.

use super::backend::{sql, QueueConn};
use crate::store::error::db_error;
use crate::store::queue::{LeaseScope, LeasedTask};
use crate::store::StoreError;
use patchsweep_api::{spec_digest, StoredSplit, TaskArgs};

/// A leased task's row: id, attempt, sweep id, kind, model, payload, description.
type LeasedRow = (i64, i64, i64, String, String, String, String);

/// Returns expired leases to the queue (or fails them on their last attempt) and answers
/// the sweeps touched.
pub(crate) async fn expire_leases_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
) -> Result<Vec<i64>, StoreError> {
    let mut sweeps: Vec<i64> = sql(
        "UPDATE tasks SET lease_expirations = lease_expirations + 1, \
         state = CASE WHEN attempt >= max_attempts THEN 'failed' ELSE 'queued' END, \
         error = CASE \
           WHEN attempt >= max_attempts AND lease_expirations + 1 >= attempt THEN \
           'the worker running this task was lost ' || attempt || ' times (each lease \
           expired without a heartbeat; last worker ' || COALESCE(worker_id, '?') || \
           '): the task may be crashing its workers (out of memory, a fault); \
           see the workers'' logs' \
           WHEN attempt >= max_attempts THEN \
           'lease expired on attempt ' || attempt || ' of ' || max_attempts || \
           ' (worker ' || COALESCE(worker_id, '?') || ' stopped heartbeating)' \
           ELSE error END, \
         finished_at = CASE WHEN attempt >= max_attempts THEN {now} END, \
         lease_expires_at = NULL \
         WHERE state = 'leased' AND lease_expires_at < {now} RETURNING sweep_id",
    )
    .fetch_scalars(tx)
    .await
    .map_err(db_error("expire leases", url))?;
    sweeps.sort_unstable();
    sweeps.dedup();
    Ok(sweeps)
}

/// What a lease took: the leased tasks, and the sweeps of tasks it failed instead because
/// their stored arguments do not read (one bad row must not block every lease; the sweep
/// is settled afterwards).
pub(crate) struct Leased {
    pub tasks: Vec<LeasedTask>,
    pub failed_sweeps: Vec<i64>,
}

/// Leases up to `max` runnable tasks, those for `model` first; a task of a sweep the
/// worker holds (same spec digest) comes without its spec text.
pub(crate) async fn lease_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    worker_id: &str,
    scope: &LeaseScope<'_>,
    lease_seconds: f64,
) -> Result<Leased, StoreError> {
    const STEP: &str = "lease tasks";
    let (model, max) = (scope.model, scope.max as i64);
    // Tasks for the worker's model first, then any; both walk the index on
    // (state, model, sweep_id, id) / (state, sweep_id, id) in order, with a LIMIT.
    let mut ids: Vec<i64> = if let Some(sweep_id) = scope.only_sweep {
        sql(
            "SELECT t.id FROM tasks t JOIN sweeps s ON s.id = t.sweep_id \
             WHERE t.state = 'queued' AND t.sweep_id = $1 AND t.not_before <= {now} \
             AND s.status IN ('queued', 'running') \
             ORDER BY t.id LIMIT $2{skip_locked}",
        )
        .bind(sweep_id)
        .bind(max)
        .fetch_scalars(tx)
        .await
        .map_err(db_error(STEP, url))?
    } else if model.is_empty() {
        Vec::new()
    } else {
        sql(
            "SELECT t.id FROM tasks t JOIN sweeps s ON s.id = t.sweep_id \
             WHERE t.state = 'queued' AND t.model = $1 AND t.not_before <= {now} \
             AND s.status IN ('queued', 'running') \
             ORDER BY t.sweep_id, t.id LIMIT $2{skip_locked}",
        )
        .bind(model)
        .bind(max)
        .fetch_scalars(tx)
        .await
        .map_err(db_error(STEP, url))?
    };
    if (ids.len() as i64) < max && scope.only_sweep.is_none() {
        let more: Vec<i64> = sql(
            "SELECT t.id FROM tasks t JOIN sweeps s ON s.id = t.sweep_id \
             WHERE t.state = 'queued' AND t.not_before <= {now} \
             AND s.status IN ('queued', 'running') \
             ORDER BY t.sweep_id, t.id LIMIT $1{skip_locked}",
        )
        .bind(max)
        .fetch_scalars(tx)
        .await
        .map_err(db_error(STEP, url))?;
        for id in more {
            if (ids.len() as i64) < max && !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    let mut leased = Leased {
        tasks: Vec::with_capacity(ids.len()),
        failed_sweeps: Vec::new(),
    };
    for id in ids {
        let (task_id, attempt, sweep_id, kind, model, payload, description): LeasedRow = sql(
            "UPDATE tasks SET state = 'leased', attempt = attempt + 1, worker_id = $1, \
             lease_expires_at = {now} + $2, started_at = {now}, progress = 0 WHERE id = $3 \
             RETURNING id, attempt, sweep_id, kind, model, payload, description",
        )
        .bind(worker_id)
        .bind(lease_seconds)
        .bind(id)
        .fetch_one(tx)
        .await
        .map_err(db_error(STEP, url))?;
        // The digest stored at submit (a sweep stored before it was kept is hashed here),
        // and whether the sweep still has to be marked running: one read, and a write only
        // for the sweep's first lease.
        let (stored, status): (Option<String>, String) =
            sql("SELECT spec_digest, status FROM sweeps WHERE id = $1")
                .bind(sweep_id)
                .fetch_one(tx)
                .await
                .map_err(db_error(STEP, url))?;
        let mut spec = None;
        let digest = match stored {
            Some(d) => d,
            None => {
                let text = spec_text(tx, url, sweep_id).await?;
                let d = spec_digest(&text);
                spec = Some(text);
                d
            }
        };
        let held = scope
            .held
            .iter()
            .any(|h| h.sweep_id == sweep_id && h.spec_digest == digest);
        let spec = match (held, spec) {
            (true, _) => None,
            (false, Some(text)) => Some(text),
            (false, None) => Some(spec_text(tx, url, sweep_id).await?),
        };
        if status == "queued" {
            sql("UPDATE sweeps SET status = 'running' WHERE id = $1 AND status = 'queued'")
                .bind(sweep_id)
                .execute(tx)
                .await
                .map_err(db_error(STEP, url))?;
        }
        let args = match kind.parse() {
            Ok(kind) => TaskArgs::from_stored(kind, &payload).map_err(|e| e.to_string()),
            Err(e) => Err(format!("the stored task {e}")),
        };
        let args = match args {
            Ok(args) => args,
            Err(reason) => {
                fail_unreadable_in(tx, url, task_id, &reason).await?;
                leased.failed_sweeps.push(sweep_id);
                continue;
            }
        };
        leased.tasks.push(LeasedTask {
            task_id,
            attempt,
            sweep_id,
            args,
            model,
            description,
            spec_toml: spec,
            spec_digest: digest,
        });
    }
    Ok(leased)
}

/// Fails a just-leased task for good: its stored row cannot be run by any worker.
async fn fail_unreadable_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    task_id: i64,
    reason: &str,
) -> Result<(), StoreError> {
    sql(
        "UPDATE tasks SET state = 'failed', error = $1, worker_id = NULL, \
         lease_expires_at = NULL, finished_at = {now} WHERE id = $2",
    )
    .bind(reason)
    .bind(task_id)
    .execute(tx)
    .await
    .map_err(db_error("fail an unreadable task", url))?;
    Ok(())
}

async fn spec_text<C: QueueConn>(
    tx: &mut C,
    url: &str,
    sweep_id: i64,
) -> Result<String, StoreError> {
    sql("SELECT spec FROM sweeps WHERE id = $1")
        .bind(sweep_id)
        .fetch_scalar(tx)
        .await
        .map_err(db_error("lease tasks", url))
}

/// An experiment's score per component over the selection pairs of a debias section only
/// (held-out pairs never inform the selection): the normalized effect as `cells_v` forms it
/// (`SUM(shift) / SUM(abs_span)` over the strong pairs), for a `noise` experiment
/// `1 - normalized` (the share of the clean-corrupt difference lost when the component alone
/// is corrupted; a component that does nothing scores 0 either way). A leased debias task's
/// arguments carry them.
pub(crate) async fn selection_effects_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    sweep_id: i64,
    debias: &str,
    experiment: &str,
) -> Result<Vec<(String, i64, Option<i64>, Option<String>, f64)>, StoreError> {
    sql(
        "SELECT t.component, CAST(t.layer AS BIGINT), CAST(t.head AS BIGINT), \
         t.position_label, CAST(CASE WHEN t.direction = 'noise' \
         THEN 1 - SUM(t.shift) / SUM(t.abs_span) ELSE SUM(t.shift) / SUM(t.abs_span) END \
         AS DOUBLE PRECISION) \
         FROM effect_terms_v t JOIN debias_splits d ON d.sweep_id = t.sweep_id \
         AND d.pair_id = t.pair_id AND d.debias = $2 AND d.part = 'selection' \
         WHERE t.sweep_id = $1 AND t.experiment = $3 AND t.layer IS NOT NULL \
         GROUP BY t.component, t.layer, t.head, t.position_label, t.direction \
         HAVING SUM(t.abs_span) > 0",
    )
    .bind(sweep_id)
    .bind(debias)
    .bind(experiment)
    .fetch_all(tx)
    .await
    .map_err(db_error("read selection effects", url))
}

/// A debias section's split as the prepare task stored it; a leased debias task's
/// arguments carry it, so the worker runs on the stored split and never draws it again.
pub(crate) async fn stored_split_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    sweep_id: i64,
    debias: &str,
) -> Result<StoredSplit, StoreError> {
    const STEP: &str = "read debias split";
    let members: Vec<(String, String)> = sql(
        "SELECT pair_id, part FROM debias_splits WHERE sweep_id = $1 AND debias = $2 \
         ORDER BY pair_id",
    )
    .bind(sweep_id)
    .bind(debias)
    .fetch_all(tx)
    .await
    .map_err(db_error(STEP, url))?;
    let mut split = StoredSplit::default();
    for (pair_id, part) in members {
        split
            .push(pair_id, &part)
            .map_err(|e| StoreError::Database {
                step: STEP,
                url: url.to_string(),
                reason: e.to_string(),
            })?;
    }
    Ok(split)
}
