//! Bias benchmark scores as `run` prints them and `report` shows them (`benchmark_v`): per
//! benchmark, model state and subset, the share of pairs whose stereotypical sentence is
//! more likely with its Wilson 95% interval; and the paper's shape, each intervention's
//! before / after / control on every benchmark (all subsets).

use patchsweep_coordinator::store::{values, BenchmarkScore, QueryResult};
use serde_json::Value;

/// The columns of [`table`].
pub const COLUMNS: &[&str] = &[
    "benchmark",
    "subset",
    "model_state",
    "debias",
    "n",
    "stereo_preferred",
    "score",
    "ci_low",
    "ci_high",
];

fn round(x: f64) -> Value {
    values::float((x * 1000.0).round() / 1000.0)
}

/// Every row of `benchmark_v`, scores rounded to 3 decimals.
pub fn table(rows: &[BenchmarkScore]) -> QueryResult {
    QueryResult::from_rows(COLUMNS, rows, |r| {
        vec![
            Value::from(r.benchmark.as_str()),
            Value::from(r.subset.as_str()),
            Value::from(r.model_state.as_str()),
            Value::from(r.debias.clone()),
            Value::from(r.n),
            Value::from(r.stereo_preferred),
            round(r.score),
            round(r.ci_low),
            round(r.ci_high),
        ]
    })
}

/// `0.612 [0.587, 0.637]`.
fn with_interval(r: &BenchmarkScore) -> String {
    format!("{:.3} [{:.3}, {:.3}]", r.score, r.ci_low, r.ci_high)
}

/// One row per (debias section, intervention, benchmark) over all subsets: the base
/// score (before), after the intervention, and after it on the control sets (pooled; how
/// many in `control_sets`). Empty without debias rows.
pub fn before_after(rows: &[BenchmarkScore]) -> QueryResult {
    let all: Vec<&BenchmarkScore> = rows.iter().filter(|r| r.subset == "all").collect();
    let mut out: Vec<[Value; 7]> = Vec::new();
    for after in all
        .iter()
        .filter(|r| r.debias.is_some() && r.control_sets == 0)
    {
        let base = all
            .iter()
            .find(|r| r.benchmark == after.benchmark && r.debias.is_none());
        let control_state = format!("{}/control", after.model_state);
        let control = all.iter().find(|r| {
            r.benchmark == after.benchmark
                && r.debias == after.debias
                && r.model_state == control_state
        });
        out.push([
            Value::from(after.debias.clone()),
            Value::from(after.model_state.as_str()),
            Value::from(after.benchmark.as_str()),
            Value::from(base.map(|b| with_interval(b))),
            Value::from(with_interval(after)),
            Value::from(control.map(|c| with_interval(c))),
            Value::from(control.map_or(0, |c| c.control_sets)),
        ]);
    }
    QueryResult::from_rows(
        &[
            "debias",
            "intervention",
            "benchmark",
            "before",
            "after",
            "control",
            "control_sets",
        ],
        &out,
        |r| r.to_vec(),
    )
}
