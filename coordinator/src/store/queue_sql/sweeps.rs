//! A sweep's own rows outside the queue: creating and finishing one directly (the store's
//! results API), and the experiments and dropped-pair counts a prepare task hands back.

use super::backend::{sql, QueueConn};
use crate::store::error::{db_error, sweep_db_error};
use crate::store::StoreError;
use patchsweep_api::DroppedPair;

/// Records a new sweep (the table's default status) and returns its id.
pub(crate) async fn create_sweep_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    name: &str,
    spec: &str,
    model: &str,
) -> Result<i64, StoreError> {
    sql("INSERT INTO sweeps (name, spec, model) VALUES ($1, $2, $3) RETURNING id")
        .bind(name)
        .bind(spec)
        .bind(model)
        .fetch_scalar(tx)
        .await
        .map_err(db_error("create sweep", url))
}

/// Sets a sweep's final status and finish time; answers whether the sweep exists.
pub(crate) async fn finish_sweep_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    sweep_id: i64,
    status: &str,
) -> Result<bool, StoreError> {
    let changed = sql("UPDATE sweeps SET status = $1, finished_at = {sweep_now} WHERE id = $2")
        .bind(status)
        .bind(sweep_id)
        .execute(tx)
        .await
        .map_err(db_error("finish sweep", url))?;
    Ok(changed == 1)
}

/// Records an experiment of a sweep unless one of that name exists; answers the existing
/// one's method and direction.
pub(crate) async fn add_experiment_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    sweep_id: i64,
    name: &str,
    method: &str,
    direction: &str,
) -> Result<Option<(String, String)>, StoreError> {
    const STEP: &str = "add experiment";
    let inserted = sql(
        "INSERT INTO experiments (sweep_id, name, method, direction) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(sweep_id)
    .bind(name)
    .bind(method)
    .bind(direction)
    .execute(tx)
    .await
    .map_err(sweep_db_error(STEP, url, sweep_id))?;
    if inserted > 0 {
        return Ok(None);
    }
    sql("SELECT method, direction FROM experiments WHERE sweep_id = $1 AND name = $2")
        .bind(sweep_id)
        .bind(name)
        .fetch_optional(tx)
        .await
        .map_err(db_error(STEP, url))
}

/// Stores the pairs a prepare task dropped, each once.
pub(crate) async fn insert_dropped_pairs_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    sweep_id: i64,
    pairs: &[DroppedPair],
) -> Result<(), StoreError> {
    for d in pairs {
        sql(
            "INSERT INTO dropped_pair_list (sweep_id, pair_id, reason, clean_prompt, \
             corrupt_prompt, clean_tokens, corrupt_tokens) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT DO NOTHING",
        )
        .bind(sweep_id)
        .bind(&d.id)
        .bind(&d.reason)
        .bind(&d.clean)
        .bind(&d.corrupt)
        .bind(d.clean_tokens as i64)
        .bind(d.corrupt_tokens as i64)
        .execute(tx)
        .await
        .map_err(db_error("store dropped pairs", url))?;
    }
    Ok(())
}

/// Replaces a sweep's dropped-pair counts (a reason given twice is summed); answers
/// whether the sweep exists. The sweep row is locked (PostgreSQL), so concurrent calls for
/// one sweep take turns.
pub(crate) async fn set_dropped_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    sweep_id: i64,
    counts: &[(String, i64)],
) -> Result<bool, StoreError> {
    const STEP: &str = "set dropped pairs";
    let found: Option<(i64,)> = sql("SELECT id FROM sweeps WHERE id = $1{lock_row}")
        .bind(sweep_id)
        .fetch_optional(tx)
        .await
        .map_err(db_error(STEP, url))?;
    if found.is_none() {
        return Ok(false);
    }
    sql("DELETE FROM dropped_pairs WHERE sweep_id = $1")
        .bind(sweep_id)
        .execute(tx)
        .await
        .map_err(db_error(STEP, url))?;
    for (reason, count) in counts {
        sql(
            "INSERT INTO dropped_pairs (sweep_id, reason, count) VALUES ($1, $2, $3) \
             ON CONFLICT (sweep_id, reason) DO UPDATE \
             SET count = dropped_pairs.count + excluded.count",
        )
        .bind(sweep_id)
        .bind(reason)
        .bind(*count)
        .execute(tx)
        .await
        .map_err(db_error(STEP, url))?;
    }
    Ok(true)
}
