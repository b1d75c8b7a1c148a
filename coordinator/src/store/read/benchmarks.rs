//! Bias benchmark scores (`benchmark_v`): per benchmark, model state (`base`, an
//! intervention, `NAME/control`) and subset, the share of pairs whose stereotypical sentence
//! is more likely, with its Wilson 95% interval.

use super::cells::decode;
use super::exec::Param;
use crate::store::{Store, StoreError};

/// One row of `benchmark_v`.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchmarkScore {
    pub benchmark: String,
    pub subset: String,
    /// `base`, the intervention's name, or `NAME/control`.
    pub model_state: String,
    /// The debias section of an intervention (`None` for `base`).
    pub debias: Option<String>,
    /// Pairs scored (pairs × control sets for a control).
    pub n: i64,
    pub stereo_preferred: i64,
    pub score: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// Control sets pooled (0 when not a control).
    pub control_sets: i64,
}

impl Store {
    /// Every row of `benchmark_v` for a sweep: by benchmark, `base` first, then by debias
    /// section and state (each intervention before its control), subsets alphabetically
    /// and `all` last. Fails on a database from before the benchmarks (no `benchmark_v`).
    pub async fn benchmark_scores(&self, sweep_id: i64) -> Result<Vec<BenchmarkScore>, StoreError> {
        let r = self
            .fetch(
                "SELECT benchmark, subset, model_state, debias, n, stereo_preferred, score, \
                 ci_low, ci_high, control_sets FROM benchmark_v WHERE sweep_id = $1 \
                 ORDER BY benchmark, CASE WHEN debias IS NULL THEN 0 ELSE 1 END, \
                 COALESCE(debias, ''), model_state, \
                 CASE WHEN subset = 'all' THEN 1 ELSE 0 END, subset",
                &[Param::Int(sweep_id)],
            )
            .await?;
        decode(&r, |c| {
            Ok(BenchmarkScore {
                benchmark: c.text("benchmark")?,
                subset: c.text("subset")?,
                model_state: c.text("model_state")?,
                debias: c.opt_text("debias")?,
                n: c.int("n")?,
                stereo_preferred: c.int("stereo_preferred")?,
                score: c.float("score")?,
                ci_low: c.float("ci_low")?,
                ci_high: c.float("ci_high")?,
                control_sets: c.int("control_sets")?,
            })
        })
    }
}
