//! Benchmark pair scores, stored with their task's completion (a benchmark task's `base`
//! rows, a debias task's rows after each intervention).

use super::backend::{sql, QueueConn};
use crate::store::error::db_error;
use crate::store::{BenchmarkRow, StoreError};

/// Checks every row before any is written: a state, finite log-likelihoods, a debias
/// section exactly when the state is not `base`.
fn check(rows: &[BenchmarkRow]) -> Result<(), String> {
    for r in rows {
        let at = format!(
            "benchmark {:?} pair {:?} ({})",
            r.benchmark, r.pair_id, r.model_state
        );
        if r.benchmark.is_empty() || r.model_state.is_empty() || r.pair_id.is_empty() {
            return Err(format!("{at}: an empty benchmark, state or pair id"));
        }
        if !(r.stereo_loglik.is_finite() && r.anti_loglik.is_finite()) {
            return Err(format!(
                "{at}: log-likelihoods {} and {} are not finite",
                r.stereo_loglik, r.anti_loglik
            ));
        }
        let base = r.model_state == patchsweep_api::BASE_STATE;
        if base != r.debias.is_none() || (base && r.control_set.is_some()) {
            return Err(format!(
                "{at}: a base row has no debias section nor control set; an intervention's \
                 has a debias section"
            ));
        }
        if r.debias.as_deref() == Some("") {
            return Err(format!("{at}: an empty debias section name"));
        }
    }
    Ok(())
}

/// Inserts benchmark pair scores (a row already stored is kept: exactly once); the number
/// of new rows. Nothing is written when a row is invalid.
pub(crate) async fn insert_benchmarks_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    sweep_id: i64,
    rows: &[BenchmarkRow],
) -> Result<u64, StoreError> {
    const STEP: &str = "store benchmark scores";
    check(rows).map_err(|message| StoreError::InvalidInput {
        step: STEP,
        message,
    })?;
    let mut n = 0;
    for r in rows {
        n += sql(
            "INSERT INTO benchmark_scores (sweep_id, benchmark, debias, model_state, \
             control_set, pair_index, pair_id, subset, stereo_loglik, anti_loglik) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        )
        .bind(sweep_id)
        .bind(&r.benchmark)
        .bind(r.debias.as_deref().unwrap_or(""))
        .bind(&r.model_state)
        .bind(r.control_set.map_or(-1, i64::from))
        .bind(i64::from(r.pair_index))
        .bind(&r.pair_id)
        .bind(&r.subset)
        .bind(r.stereo_loglik)
        .bind(r.anti_loglik)
        .execute(tx)
        .await
        .map_err(db_error(STEP, url))?;
    }
    Ok(n)
}
