//! The generation check's continuations (`generations_v`).

use super::cells::decode;
use super::exec::Param;
use crate::store::{Store, StoreError};

/// One continuation as `generations_v` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationSample {
    pub experiment: String,
    /// `noise` or `denoise`: which way a patched continuation's values went.
    pub direction: String,
    pub pair_id: String,
    /// `pathway:NAME`, or `None` for the unpatched prompt.
    pub cell: Option<String>,
    /// The prompt continued: `clean` or `corrupt`.
    pub run: String,
    /// The run the patched values come from (`None` when unpatched).
    pub patched_from: Option<String>,
    /// The prompt continued, as text.
    pub prompt: String,
    /// The continuation.
    pub text: String,
}

impl Store {
    /// Every continuation of the sweep's first `pairs` pairs that have generations (by pair
    /// id), ordered by experiment, pair, cell (the unpatched prompts first) and run.
    /// Fails on a database from before the generation check (no `generations_v`).
    pub async fn generation_sample(
        &self,
        sweep_id: i64,
        pairs: i64,
    ) -> Result<Vec<GenerationSample>, StoreError> {
        let r = self
            .fetch(
                "SELECT experiment, direction, pair_id, cell, run, patched_from, prompt, text \
                 FROM generations_v WHERE sweep_id = $1 AND pair_id IN \
                 (SELECT DISTINCT pair_id FROM generations WHERE sweep_id = $2 \
                 ORDER BY pair_id LIMIT $3) \
                 ORDER BY experiment, pair_id, CASE WHEN cell IS NULL THEN 0 ELSE 1 END, \
                 cell, run",
                &[
                    Param::Int(sweep_id),
                    Param::Int(sweep_id),
                    Param::Int(pairs),
                ],
            )
            .await?;
        decode(&r, |c| {
            Ok(GenerationSample {
                experiment: c.text("experiment")?,
                direction: c.text("direction")?,
                pair_id: c.text("pair_id")?,
                cell: c.opt_text("cell")?,
                run: c.text("run")?,
                patched_from: c.opt_text("patched_from")?,
                prompt: c.text("prompt")?,
                text: c.text("text")?,
            })
        })
    }
}
