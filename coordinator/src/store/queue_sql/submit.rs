//! Storing a sweep and its tasks: at submit, and the plan a prepare task hands back.

use super::backend::{sql, QueueConn};
use crate::store::error::db_error;
use crate::store::queue::NewTask;
use crate::store::StoreError;

/// Stores a sweep (state `queued`, with its weak-pair threshold `min_span`) and its first
/// tasks; returns the sweep id.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn submit_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    name: &str,
    spec: &str,
    model: &str,
    min_span: f64,
    metric_neutral: f64,
    tasks: &[NewTask],
    max_attempts: i64,
) -> Result<i64, StoreError> {
    let digest = patchsweep_api::spec_digest(spec);
    let id: i64 = sql(
        "INSERT INTO sweeps (name, spec, model, status, min_span, metric_neutral, spec_digest) \
         VALUES ($1, $2, $3, 'queued', $4, $5, $6) RETURNING id",
    )
    .bind(name)
    .bind(spec)
    .bind(model)
    .bind(min_span)
    .bind(metric_neutral)
    .bind(&digest)
    .fetch_scalar(tx)
    .await
    .map_err(db_error("submit sweep", url))?;
    insert_tasks_in(tx, url, id, tasks, max_attempts).await?;
    Ok(id)
}

/// Stores tasks of a sweep: `waiting` when they wait for the rest of it, else `queued`.
pub(crate) async fn insert_tasks_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    sweep_id: i64,
    tasks: &[NewTask],
    max_attempts: i64,
) -> Result<(), StoreError> {
    for t in tasks {
        let payload = t.args.to_stored();
        sql(
            "INSERT INTO tasks (sweep_id, kind, description, model, payload, cost, \
             max_attempts, state, stage, created_at) VALUES ($1, $2, $3, \
             (SELECT model FROM sweeps WHERE id = $1), $4, $5, $6, $7, $8, {now})",
        )
        .bind(sweep_id)
        .bind(t.kind().as_str())
        .bind(&t.description)
        .bind(&payload)
        .bind(t.cost)
        .bind(max_attempts)
        .bind(t.initial_state().as_str())
        .bind(i64::from(t.stage))
        .execute(tx)
        .await
        .map_err(db_error("store tasks", url))?;
    }
    Ok(())
}
