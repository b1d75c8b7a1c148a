//! Workers: registering, and the heartbeat that keeps their leases.

use patchsweep_api::{HeldLease, WorkerStatus};

use super::backend::{sql, QueueConn};
use crate::store::error::db_error;
use crate::store::queue::WorkerInfo;
use crate::store::StoreError;

/// Records a worker, or refreshes one that registers again under the same id.
pub(crate) async fn register_worker_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    w: &WorkerInfo,
) -> Result<(), StoreError> {
    let models = serde_json::to_string(&w.models).unwrap_or_else(|_| "[]".into());
    sql(
        "INSERT INTO workers (id, name, device, memory_bytes, models, version, \
         registered_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, {now}, {now}) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, device = excluded.device, \
         memory_bytes = excluded.memory_bytes, models = excluded.models, \
         version = excluded.version, last_seen_at = excluded.last_seen_at",
    )
    .bind(&w.id)
    .bind(&w.name)
    .bind(&w.device)
    .bind(w.memory_bytes)
    .bind(&models)
    .bind(&w.version)
    .execute(tx)
    .await
    .map_err(db_error("register worker", url))?;
    Ok(())
}

/// Marks the worker seen now: every call a worker makes (lease, heartbeat, result, failure,
/// release) does this, so `workers_v.last_seen_at` says when it last spoke, to within
/// `resolution` seconds: a call within that of the last mark writes nothing (see
/// [`crate::store::QueuePolicy::seen_resolution`]).
pub(crate) async fn touch_worker_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    worker_id: &str,
    resolution: f64,
) -> Result<(), StoreError> {
    sql("UPDATE workers SET last_seen_at = {now} WHERE id = $1 AND last_seen_at <= {now} - $2")
        .bind(worker_id)
        .bind(resolution)
        .execute(tx)
        .await
        .map_err(db_error("mark worker seen", url))?;
    Ok(())
}

/// Records the models a worker holds, as its lease request names them (a worker loads its
/// model for its first task, after it registered).
pub(crate) async fn record_models_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    worker_id: &str,
    models: &[String],
) -> Result<(), StoreError> {
    let models = serde_json::to_string(models).unwrap_or_else(|_| "[]".into());
    sql("UPDATE workers SET models = $2 WHERE id = $1")
        .bind(worker_id)
        .bind(&models)
        .execute(tx)
        .await
        .map_err(db_error("record worker models", url))?;
    Ok(())
}

/// Extends the worker's leases and records how far each has got (a share that only
/// grows within an attempt); answers those it no longer holds `(task_id, attempt)`.
pub(crate) async fn heartbeat_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    worker_id: &str,
    status: &WorkerStatus,
    leases: &[HeldLease],
    lease_seconds: f64,
) -> Result<Vec<(i64, i64)>, StoreError> {
    const STEP: &str = "heartbeat";
    let models = serde_json::to_string(&status.models).unwrap_or_else(|_| "[]".into());
    let peak = status.device_memory_peak_bytes.min(i64::MAX as u64) as i64;
    sql("UPDATE workers SET last_seen_at = {now}, models = $2, \
         device_memory_peak_bytes = $3 WHERE id = $1")
    .bind(worker_id)
    .bind(&models)
    .bind(peak)
    .execute(tx)
    .await
    .map_err(db_error(STEP, url))?;
    let mut lost = Vec::new();
    for lease in leases {
        let extended = sql("UPDATE tasks SET lease_expires_at = {now} + $1, \
                            progress = CASE WHEN progress < $5 THEN $5 ELSE progress END \
                            WHERE id = $2 AND attempt = $3 AND worker_id = $4 \
                            AND state = 'leased'")
        .bind(lease_seconds)
        .bind(lease.task_id)
        .bind(lease.attempt)
        .bind(worker_id)
        .bind(lease.fraction_clamped())
        .execute(tx)
        .await
        .map_err(db_error(STEP, url))?;
        if extended == 0 {
            lost.push((lease.task_id, lease.attempt));
        }
    }
    Ok(lost)
}
