//! The read model: every question the CLI asks of the results (`run`'s summary, `report`,
//! `plot`, `export`) as a named query on [`Store`] that returns typed rows. The SQL is
//! written once here and runs unchanged on SQLite and PostgreSQL (`$N` parameters, the
//! user-facing views), read-only (`exec.rs`). [`Store::query_readonly`] stays for the
//! user's own SQL (`patchsweep query`).
//!
//! # Layout
//! - `exec.rs`: one read-only statement with bound parameters on either backend;
//! - `values.rs`: the one conversion of database values to JSON and back;
//! - `cells.rs`: typed cells of a result row;
//! - `sweeps.rs`: sweeps, experiments, pairs and baselines, dropped pairs, tasks;
//! - `effects.rs`: aggregated effects for heatmaps (`effect_terms_v`), tokens by position,
//!   scatter points, top cells (`cells_v`), weak pairs;
//! - `reversals.rs`: reversal rates per cell (`reversals_v`), the sites of selected sets;
//! - `lens.rs`: the logit-lens curve per layer (`lens_layers_v`);
//! - `debias.rs`: debias results; `export.rs`: a whole view or table for `export`;
//! - `generations.rs`: a sample of the generation check's continuations;
//! - `benchmarks.rs`: bias benchmark scores per model state (`benchmark_v`).

mod benchmarks;
mod cells;
mod debias;
mod effects;
pub(crate) mod exec;
pub(crate) mod export;
mod generations;
mod lens;
mod reversals;
mod sweeps;
pub mod values;

pub use benchmarks::BenchmarkScore;
pub use debias::{DebiasComponents, DebiasSplitSize, RoundedDebiasRow};
pub use effects::{CellMean, PositionToken, ScatterPoint, ScatterSet, TopComponent, WeakPairs};
pub use generations::GenerationSample;
pub use lens::LensLayer;
pub use reversals::{Reversal, SelectedSite};
pub use sweeps::{
    Baselines, DroppedCount, ExperimentSummary, GroupBaselines, PairBaseline, Rounding, SweepRow,
    SweepSelection, TaskSummary,
};

/// The first query `patchsweep run` suggests to its user.
pub const EXAMPLE_QUERY: &str = "SELECT * FROM effects_v LIMIT 10";

/// `expr` as the query shows it: as it is, or rounded to 4 decimals by the database.
fn rounded(expr: &str, rounding: Rounding) -> String {
    match rounding {
        Rounding::Exact => expr.to_string(),
        Rounding::FourDecimals => format!("ROUND(CAST({expr} AS NUMERIC), 4)"),
    }
}
