//! Sweeps and what the report tabulates about each: experiments, pairs and their
//! baselines, dropped pairs, tasks.

use std::collections::BTreeMap;

use super::cells::decode;
use super::exec::Param;
use super::rounded;
use crate::store::{Store, StoreError};
use patchsweep_api::DroppedPair;

/// Which sweeps a command covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepSelection {
    /// The most recent sweep (highest id).
    Latest,
    All,
    Id(i64),
}

/// Whether averages come as they are or rounded to 4 decimals by the database (for text
/// tables printed to a terminal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    Exact,
    FourDecimals,
}

/// A row of `sweeps`.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepRow {
    pub id: i64,
    pub name: String,
    pub model: String,
    pub status: String,
    pub created_at: String,
    pub finished_at: Option<String>,
}

/// An experiment of a sweep with how much it measured.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentSummary {
    pub experiment: String,
    pub method: String,
    pub direction: String,
    /// Effects stored.
    pub effects: i64,
    /// Distinct components among them.
    pub components: i64,
}

/// A pair with its baselines: the metric on the unpatched clean and corrupted prompts.
#[derive(Clone, Debug, PartialEq)]
pub struct PairBaseline {
    pub pair_id: String,
    pub template: Option<String>,
    pub clean_prompt: String,
    pub corrupt_prompt: String,
    pub clean_metric: f64,
    pub corrupt_metric: f64,
    /// `clean_metric - corrupt_metric`.
    pub difference: f64,
    pub n_tokens: i64,
    /// The pair's labels (`profession`, `stereotype`, `stereotypicality`, …).
    pub labels: BTreeMap<String, String>,
}

/// The baselines averaged over a sweep's pairs (`None` without pairs).
#[derive(Clone, Debug, PartialEq)]
pub struct Baselines {
    pub pairs: i64,
    pub mean_clean: Option<f64>,
    pub mean_corrupt: Option<f64>,
    pub mean_difference: Option<f64>,
}

/// The baselines of the pairs of one counterfactual group (`pairs_v.counterfactual_group`:
/// the counterfactual's stereotype where the dataset gives one, else the counterfactual word
/// — `man`, `woman`; `None`: pairs without either): pairs corrupted toward different sides
/// move the metric in opposite directions, and one mean over all of them hides both.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupBaselines {
    pub counterfactual: Option<String>,
    pub baselines: Baselines,
    /// Pairs below the sweep's `min_span`.
    pub weak: i64,
}

impl Baselines {
    /// The row's cells as tables show them: pairs, mean clean, mean corrupted, mean difference.
    pub fn cells(&self) -> Vec<serde_json::Value> {
        use super::values::opt_float;
        vec![
            serde_json::Value::from(self.pairs),
            opt_float(self.mean_clean),
            opt_float(self.mean_corrupt),
            opt_float(self.mean_difference),
        ]
    }
}

/// Pairs dropped from a sweep for one reason.
#[derive(Clone, Debug, PartialEq)]
pub struct DroppedCount {
    pub reason: String,
    pub count: i64,
}

/// A sweep's tasks of one kind in one state, summed.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSummary {
    pub kind: String,
    pub state: String,
    pub tasks: i64,
    pub patches: Option<i64>,
    pub rows_stored: Option<i64>,
    pub attempts: Option<i64>,
    pub lease_expirations: Option<i64>,
    /// Seconds the finished tasks ran (`None` when none finished).
    pub seconds: Option<f64>,
    /// One of their errors, if any.
    pub an_error: Option<String>,
}

const SWEEP_COLUMNS: &str = "SELECT id, name, model, status, created_at, finished_at FROM sweeps";

fn sweep_row(c: &mut super::cells::Cells<'_>) -> Result<SweepRow, StoreError> {
    Ok(SweepRow {
        id: c.int("id")?,
        name: c.text("name")?,
        model: c.text("model")?,
        status: c.text("status")?,
        created_at: c.text("created_at")?,
        finished_at: c.opt_text("finished_at")?,
    })
}

impl Store {
    /// The sweeps selected, by id; an empty list when there are none.
    pub async fn sweeps(&self, which: SweepSelection) -> Result<Vec<SweepRow>, StoreError> {
        let (sql, params) = match which {
            SweepSelection::Latest => (format!("{SWEEP_COLUMNS} ORDER BY id DESC LIMIT 1"), vec![]),
            SweepSelection::All => (format!("{SWEEP_COLUMNS} ORDER BY id"), vec![]),
            SweepSelection::Id(id) => (
                format!("{SWEEP_COLUMNS} WHERE id = $1"),
                vec![Param::Int(id)],
            ),
        };
        let r = self.fetch(&sql, &params).await?;
        decode(&r, sweep_row)
    }

    /// The newest sweep with exactly this spec text that has not ended (queued or
    /// running), if any: the embedded `run` continues it instead of starting over.
    pub async fn unfinished_sweep_with_spec(
        &self,
        spec_toml: &str,
    ) -> Result<Option<SweepRow>, StoreError> {
        let r = self
            .fetch(
                &format!(
                    "{SWEEP_COLUMNS} WHERE spec = $1 AND status IN ('queued', 'running') \
                     ORDER BY id DESC LIMIT 1"
                ),
                &[Param::Text(spec_toml)],
            )
            .await?;
        Ok(decode(&r, sweep_row)?.into_iter().next())
    }

    /// The spec text a sweep was submitted with.
    pub async fn sweep_spec(&self, sweep_id: i64) -> Result<Option<String>, StoreError> {
        let r = self
            .fetch(
                "SELECT spec FROM sweeps WHERE id = $1",
                &[Param::Int(sweep_id)],
            )
            .await?;
        Ok(decode(&r, |c| c.text("spec"))?.into_iter().next())
    }

    /// Sweeps other than `sweep_id` that have not ended.
    pub async fn other_unfinished_sweeps(
        &self,
        sweep_id: i64,
    ) -> Result<Vec<SweepRow>, StoreError> {
        let r = self
            .fetch(
                &format!(
                    "{SWEEP_COLUMNS} WHERE id <> $1 AND status IN ('queued', 'running') ORDER BY id"
                ),
                &[Param::Int(sweep_id)],
            )
            .await?;
        decode(&r, sweep_row)
    }

    /// The sweep's experiments by name, with their effect and component counts.
    pub async fn experiment_summaries(
        &self,
        sweep_id: i64,
    ) -> Result<Vec<ExperimentSummary>, StoreError> {
        let r = self
            .fetch(
                "SELECT x.name, x.method, x.direction, COUNT(e.pair_id), \
                 COUNT(DISTINCT e.component) \
                 FROM experiments x LEFT JOIN effects e \
                 ON e.sweep_id = x.sweep_id AND e.experiment = x.name \
                 WHERE x.sweep_id = $1 GROUP BY x.name, x.method, x.direction ORDER BY x.name",
                &[Param::Int(sweep_id)],
            )
            .await?;
        decode(&r, |c| {
            Ok(ExperimentSummary {
                experiment: c.text("name")?,
                method: c.text("method")?,
                direction: c.text("direction")?,
                effects: c.int("effects")?,
                components: c.int("components")?,
            })
        })
    }

    /// The sweep's pairs by id, with their baselines.
    pub async fn pair_baselines(&self, sweep_id: i64) -> Result<Vec<PairBaseline>, StoreError> {
        let r = self
            .fetch(
                "SELECT v.pair_id, v.template, v.clean_prompt, v.corrupt_prompt, \
                 v.clean_metric, v.corrupt_metric, v.clean_metric - v.corrupt_metric, \
                 v.n_tokens, p.labels FROM pairs_v v JOIN pairs p \
                 ON p.sweep_id = v.sweep_id AND p.pair_id = v.pair_id \
                 WHERE v.sweep_id = $1 ORDER BY v.pair_id",
                &[Param::Int(sweep_id)],
            )
            .await?;
        decode(&r, |c| {
            Ok(PairBaseline {
                pair_id: c.text("pair_id")?,
                template: c.opt_text("template")?,
                clean_prompt: c.text("clean_prompt")?,
                corrupt_prompt: c.text("corrupt_prompt")?,
                clean_metric: c.float("clean_metric")?,
                corrupt_metric: c.float("corrupt_metric")?,
                difference: c.float("difference")?,
                n_tokens: c.int("n_tokens")?,
                labels: labels(&c.text("labels")?)?,
            })
        })
    }

    /// The baselines averaged over the sweep's pairs.
    pub async fn baselines(
        &self,
        sweep_id: i64,
        rounding: Rounding,
    ) -> Result<Baselines, StoreError> {
        let sql = format!(
            "SELECT COUNT(*), {}, {}, {} FROM pairs_v WHERE sweep_id = $1",
            rounded("AVG(clean_metric)", rounding),
            rounded("AVG(corrupt_metric)", rounding),
            rounded("AVG(clean_metric - corrupt_metric)", rounding),
        );
        let r = self.fetch(&sql, &[Param::Int(sweep_id)]).await?;
        let rows = decode(&r, |c| {
            Ok(Baselines {
                pairs: c.int("pairs")?,
                mean_clean: c.opt_float("mean_clean")?,
                mean_corrupt: c.opt_float("mean_corrupt")?,
                mean_difference: c.opt_float("mean_difference")?,
            })
        })?;
        rows.into_iter().next().ok_or_else(|| StoreError::Query {
            message: "the baselines query returned no row".to_string(),
        })
    }

    /// The baselines per counterfactual group, in group order (pairs without one first).
    pub async fn baselines_by_counterfactual(
        &self,
        sweep_id: i64,
        rounding: Rounding,
    ) -> Result<Vec<GroupBaselines>, StoreError> {
        let sql = format!(
            "SELECT counterfactual_group, COUNT(*), {}, {}, {}, SUM(weak) FROM pairs_v \
             WHERE sweep_id = $1 GROUP BY counterfactual_group ORDER BY counterfactual_group",
            rounded("AVG(clean_metric)", rounding),
            rounded("AVG(corrupt_metric)", rounding),
            rounded("AVG(clean_metric - corrupt_metric)", rounding),
        );
        let r = self.fetch(&sql, &[Param::Int(sweep_id)]).await?;
        let mut rows = decode(&r, |c| {
            Ok(GroupBaselines {
                counterfactual: c.opt_text("counterfactual_group")?,
                baselines: Baselines {
                    pairs: c.int("pairs")?,
                    mean_clean: c.opt_float("mean_clean")?,
                    mean_corrupt: c.opt_float("mean_corrupt")?,
                    mean_difference: c.opt_float("mean_difference")?,
                },
                weak: c.int("weak")?,
            })
        })?;
        rows.sort_by(|a, b| a.counterfactual.cmp(&b.counterfactual));
        Ok(rows)
    }

    /// The pairs the sweep dropped, in pair-id order (`dropped_pairs_v`); none for a sweep
    /// prepared before the list was kept.
    pub async fn dropped_pairs(&self, sweep_id: i64) -> Result<Vec<DroppedPair>, StoreError> {
        let r = self
            .fetch(
                "SELECT pair_id, reason, clean_prompt, corrupt_prompt, clean_tokens, \
                 corrupt_tokens FROM dropped_pairs_v WHERE sweep_id = $1 ORDER BY pair_id",
                &[Param::Int(sweep_id)],
            )
            .await?;
        decode(&r, |c| {
            Ok(DroppedPair {
                id: c.text("pair_id")?,
                reason: c.text("reason")?,
                clean: c.text("clean_prompt")?,
                corrupt: c.text("corrupt_prompt")?,
                clean_tokens: c.int("clean_tokens")? as usize,
                corrupt_tokens: c.int("corrupt_tokens")? as usize,
            })
        })
    }

    /// The sweep's dropped-pair counts by reason.
    pub async fn dropped_counts(&self, sweep_id: i64) -> Result<Vec<DroppedCount>, StoreError> {
        let r = self
            .fetch(
                "SELECT reason, count FROM dropped_pairs WHERE sweep_id = $1 ORDER BY reason",
                &[Param::Int(sweep_id)],
            )
            .await?;
        decode(&r, |c| {
            Ok(DroppedCount {
                reason: c.text("reason")?,
                count: c.int("count")?,
            })
        })
    }

    /// The sweep's tasks summed by kind and state.
    pub async fn task_summaries(&self, sweep_id: i64) -> Result<Vec<TaskSummary>, StoreError> {
        let r = self
            .fetch(
                "SELECT kind, state, COUNT(*), SUM(patches), SUM(rows_stored), SUM(attempts), \
                 SUM(lease_expirations), SUM(seconds), MAX(error) \
                 FROM tasks_v WHERE sweep_id = $1 GROUP BY kind, state ORDER BY kind, state",
                &[Param::Int(sweep_id)],
            )
            .await?;
        decode(&r, |c| {
            Ok(TaskSummary {
                kind: c.text("kind")?,
                state: c.text("state")?,
                tasks: c.int("tasks")?,
                patches: c.opt_int("patches")?,
                rows_stored: c.opt_int("rows_stored")?,
                attempts: c.opt_int("attempts")?,
                lease_expirations: c.opt_int("lease_expirations")?,
                seconds: c.opt_float("seconds")?,
                an_error: c.opt_text("an_error")?,
            })
        })
    }
}

/// A pair's labels as stored (a JSON object of strings).
fn labels(text: &str) -> Result<BTreeMap<String, String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Query {
        message: format!("column `labels`: not a JSON object of strings ({e}): {text}"),
    })
}
