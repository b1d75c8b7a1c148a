//! The sweep's bias benchmarks (`[[benchmark]]`) scored on an intervened model: the
//! selected components' state after each intervention, and the first control sets'.
//!
//! Benchmark sentences carry no position labels, so an edit with labelled positions applies
//! at every position of them (as on the neutral text, see [`super::edit::EditPositions`]);
//! a tuned copy is scored as it is. The base model's scores are not repeated here: the
//! sweep's benchmark tasks give them.

use patchsweep_model::HookedTransformer;

use super::edit::{Edit, EditHook};
use super::error::{DebiasError, Result};
use crate::benchmark::{score_tokenized, BenchmarkPair, LoglikOptions, PairScore};
use crate::EngineError;

/// One benchmark of the sweep, tokenized.
#[derive(Debug, Clone)]
pub struct BenchmarkSet {
    pub name: String,
    pub pairs: Vec<BenchmarkPair>,
    /// `[stereo, anti]` token ids per pair ([`crate::benchmark::tokenize_pairs`]).
    pub rows: Vec<[Vec<u32>; 2]>,
    /// On how many control sets (the first ones) it is scored.
    pub control_sets: usize,
}

/// One benchmark's pair scores in one intervened model state.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkScores {
    pub benchmark: String,
    /// The intervention's name.
    pub intervention: String,
    /// The control set (`None`: the selected components).
    pub control: Option<usize>,
    pub scores: Vec<PairScore>,
}

/// Scores every set on `model` with `edits` (`control`: which control set this state is;
/// a set is skipped beyond its `control_sets`).
pub fn score_benchmarks(
    model: &HookedTransformer,
    edits: &[Edit],
    sets: &[BenchmarkSet],
    intervention: &str,
    control: Option<usize>,
) -> Result<Vec<BenchmarkScores>> {
    sets.iter()
        .filter(|s| control.is_none_or(|c| c < s.control_sets))
        .map(|s| {
            if control.is_none() {
                tracing::info!(benchmark = %s.name, intervention, pairs = s.pairs.len(), "scoring benchmark");
            } else {
                tracing::debug!(benchmark = %s.name, intervention, control = ?control, pairs = s.pairs.len(), "scoring benchmark");
            }
            let scores = score_tokenized(
                model,
                &s.pairs,
                &s.rows,
                &LoglikOptions::default(),
                |rows, width| {
                    EditHook::new(edits, &vec![None; rows], width)
                        .map_err(|e| EngineError::Metric(e.to_string()))
                },
                &mut |_| {},
            )
            .map_err(|e| DebiasError::Evaluation(format!("benchmark {}: {e}", s.name)))?;
            Ok(BenchmarkScores {
                benchmark: s.name.clone(),
                intervention: intervention.to_string(),
                control,
                scores,
            })
        })
        .collect()
}
