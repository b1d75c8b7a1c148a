//! The generation check's continuations, stored with their task's completion.

use super::backend::{sql, QueueConn};
use crate::store::error::db_error;
use crate::store::{GenerationRow, StoreError};

/// Inserts a generate task's continuations (a row already stored is kept: exactly once);
/// the number of new rows. The unpatched prompt's cell is stored as '' (NULL in the view).
pub(crate) async fn insert_generations_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    sweep_id: i64,
    rows: &[GenerationRow],
) -> Result<u64, StoreError> {
    const STEP: &str = "store generations";
    let mut n = 0;
    for r in rows {
        let invalid = |message: String| StoreError::InvalidInput {
            step: STEP,
            message: format!("generation of pair `{}`: {message}", r.pair_id),
        };
        if r.run != "clean" && r.run != "corrupt" {
            return Err(invalid(format!("run `{}` is not clean or corrupt", r.run)));
        }
        if r.cell.as_deref() == Some("") {
            return Err(invalid(
                "an empty cell name (the unpatched prompt has none)".into(),
            ));
        }
        let tokens = serde_json::to_string(&r.tokens).map_err(|e| invalid(e.to_string()))?;
        n += sql(
            "INSERT INTO generations (sweep_id, experiment, pair_id, cell, run, tokens, text) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(sweep_id)
        .bind(&r.experiment)
        .bind(&r.pair_id)
        .bind(r.cell.as_deref().unwrap_or(""))
        .bind(&r.run)
        .bind(&tokens)
        .bind(&r.text)
        .execute(tx)
        .await
        .map_err(db_error(STEP, url))?;
    }
    Ok(n)
}
