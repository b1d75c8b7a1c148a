//! Debias results of a sweep (`debias_v`).

use super::cells::decode;
use super::exec::Param;
use super::rounded;
use super::sweeps::Rounding;
use crate::store::{DebiasRow, Store, StoreError};

/// A debias result with `after - before`, as the database computed it, and the values
/// rounded as asked.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundedDebiasRow {
    pub debias: String,
    pub intervention: String,
    pub split: String,
    pub metric: String,
    pub before: f64,
    pub after: f64,
    pub delta: f64,
    pub control_after: Option<f64>,
    pub control_p05: Option<f64>,
    pub control_p95: Option<f64>,
    pub control_percentile: Option<f64>,
    pub control_sets: Option<i64>,
    /// What the metric averages over, and the 95% intervals of before and after.
    pub n: Option<i64>,
    pub before_ci: Option<(f64, f64)>,
    pub after_ci: Option<(f64, f64)>,
    /// The control mean's 95% interval over prompts.
    pub control_ci: Option<(f64, f64)>,
}

/// The components an intervention of a debias section changed, and its control's.
#[derive(Clone, Debug, PartialEq)]
pub struct DebiasComponents {
    pub debias: String,
    pub intervention: String,
    pub components: String,
    pub control_components: Option<String>,
}

/// How many pairs one part of a debias section's split holds (`debias_splits` joined with
/// `pairs`): the `n` behind its figures.
#[derive(Clone, Debug, PartialEq)]
pub struct DebiasSplitSize {
    pub debias: String,
    /// `selection`, `heldout` or `unused`.
    pub part: String,
    pub pairs: i64,
    /// Distinct clean prompts (`mean_logit_diff` and `mean_abs_logit_diff` count each once).
    pub clean_prompts: i64,
    /// Pairs with a stereotyped side (`toward_stereotype` ≠ 0): `stereotype_win_share`'s n.
    pub stereotyped: i64,
}

impl Store {
    /// The size of every part of every debias split of the sweep, by section and part.
    pub async fn debias_split_sizes(
        &self,
        sweep_id: i64,
    ) -> Result<Vec<DebiasSplitSize>, StoreError> {
        let r = self
            .fetch(
                "SELECT d.debias, d.part, COUNT(*) AS pairs, \
                 COUNT(DISTINCT p.clean_prompt) AS clean_prompts, \
                 SUM(CASE WHEN p.toward_stereotype <> 0 THEN 1 ELSE 0 END) AS stereotyped \
                 FROM debias_splits d JOIN pairs p \
                 ON p.sweep_id = d.sweep_id AND p.pair_id = d.pair_id \
                 WHERE d.sweep_id = $1 GROUP BY d.debias, d.part ORDER BY d.debias, d.part",
                &[Param::Int(sweep_id)],
            )
            .await?;
        decode(&r, |c| {
            Ok(DebiasSplitSize {
                debias: c.text("debias")?,
                part: c.text("part")?,
                pairs: c.int("pairs")?,
                clean_prompts: c.int("clean_prompts")?,
                stereotyped: c.int("stereotyped")?,
            })
        })
    }

    /// The sweep's debias results ordered by section, metric, split and intervention.
    /// Fails on a database from before debiasing (no `debias_v`).
    pub async fn debias_rows(&self, sweep_id: i64) -> Result<Vec<DebiasRow>, StoreError> {
        let r = self
            .fetch(
                "SELECT debias, intervention, components, split, metric, before, after, \
                 control_after, control_components, control_sets, control_p05, control_p95, \
                 control_percentile, n, before_ci_low, before_ci_high, after_ci_low, \
                 after_ci_high, control_ci_low, control_ci_high FROM debias_v \
                 WHERE sweep_id = $1 \
                 ORDER BY debias, metric, split, intervention",
                &[Param::Int(sweep_id)],
            )
            .await?;
        decode(&r, |c| {
            Ok(DebiasRow {
                debias: c.text("debias")?,
                intervention: c.text("intervention")?,
                components: c.text("components")?,
                split: c.text("split")?,
                metric: c.text("metric")?,
                before: c.float("before")?,
                after: c.float("after")?,
                control_after: c.opt_float("control_after")?,
                control_components: c.opt_text("control_components")?,
                control_sets: c.opt_int("control_sets")?,
                control_p05: c.opt_float("control_p05")?,
                control_p95: c.opt_float("control_p95")?,
                control_percentile: c.opt_float("control_percentile")?,
                n: c.opt_int("n")?,
                before_ci: c.opt_interval("before_ci_low", "before_ci_high")?,
                after_ci: c.opt_interval("after_ci_low", "after_ci_high")?,
                control_ci: c.opt_interval("control_ci_low", "control_ci_high")?,
            })
        })
    }

    /// The sweep's debias results ordered by section, intervention, split and metric,
    /// with `delta`, rounded as asked.
    pub async fn debias_deltas(
        &self,
        sweep_id: i64,
        rounding: Rounding,
    ) -> Result<Vec<RoundedDebiasRow>, StoreError> {
        let sql = format!(
            "SELECT debias, intervention, split, metric, {}, {}, {}, {}, {}, {}, {}, \
             control_sets, n, {}, {}, {}, {}, {}, {} FROM debias_v WHERE sweep_id = $1 \
             ORDER BY debias, intervention, split, metric",
            rounded("before", rounding),
            rounded("after", rounding),
            rounded("delta", rounding),
            rounded("control_after", rounding),
            rounded("control_p05", rounding),
            rounded("control_p95", rounding),
            rounded("control_percentile", rounding),
            rounded("before_ci_low", rounding),
            rounded("before_ci_high", rounding),
            rounded("after_ci_low", rounding),
            rounded("after_ci_high", rounding),
            rounded("control_ci_low", rounding),
            rounded("control_ci_high", rounding),
        );
        let r = self.fetch(&sql, &[Param::Int(sweep_id)]).await?;
        decode(&r, |c| {
            Ok(RoundedDebiasRow {
                debias: c.text("debias")?,
                intervention: c.text("intervention")?,
                split: c.text("split")?,
                metric: c.text("metric")?,
                before: c.float("before")?,
                after: c.float("after")?,
                delta: c.float("delta")?,
                control_after: c.opt_float("control_after")?,
                control_p05: c.opt_float("control_p05")?,
                control_p95: c.opt_float("control_p95")?,
                control_percentile: c.opt_float("control_percentile")?,
                control_sets: c.opt_int("control_sets")?,
                n: c.opt_int("n")?,
                before_ci: c.opt_interval("before_ci_low", "before_ci_high")?,
                after_ci: c.opt_interval("after_ci_low", "after_ci_high")?,
                control_ci: c.opt_interval("control_ci_low", "control_ci_high")?,
            })
        })
    }

    /// Each intervention's components (and its control's) once, by section and
    /// intervention.
    pub async fn debias_components(
        &self,
        sweep_id: i64,
    ) -> Result<Vec<DebiasComponents>, StoreError> {
        let r = self
            .fetch(
                "SELECT DISTINCT debias, intervention, components, control_components \
                 FROM debias_v WHERE sweep_id = $1 ORDER BY debias, intervention",
                &[Param::Int(sweep_id)],
            )
            .await?;
        decode(&r, |c| {
            Ok(DebiasComponents {
                debias: c.text("debias")?,
                intervention: c.text("intervention")?,
                components: c.text("components")?,
                control_components: c.opt_text("control_components")?,
            })
        })
    }
}
