//! One experiment (method × direction × grid) over many prompt pairs: baselines, patched
//! values, effects and normalized effects.

use std::collections::{BTreeMap, HashSet};

use patchsweep_model::{HookPoint, HookedTransformer};
use serde::{Deserialize, Serialize};

use crate::activation::{patch_values, Packing, PairJob};
use crate::attribution::{estimate_values, AttributionJob};
use crate::error::{EngineError, Result};
use crate::grid::{Cell, EffectKey, Grid, Site};
use crate::metric::{normalized, EffectMode, Metric};
use crate::runs::{cache_runs, cache_source_and_base_runs, pair_metrics, RunCache};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Exact: one patched forward per cell.
    Activation,
    /// First-order estimate from one backward pass per pair.
    Attribution,
    /// No patching: the metric read from the residual stream after each block through the
    /// final norm and unembedding ([`crate::lens`]).
    LogitLens,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Run the corrupted prompt, patch in clean values.
    Denoise,
    /// Run the clean prompt, patch in corrupted values.
    Noise,
}

impl Method {
    pub fn name(&self) -> &'static str {
        match self {
            Method::Activation => "activation",
            Method::Attribution => "attribution",
            Method::LogitLens => "logit_lens",
        }
    }
}

impl Direction {
    pub fn name(&self) -> &'static str {
        match self {
            Direction::Denoise => "denoise",
            Direction::Noise => "noise",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub name: String,
    pub method: Method,
    pub direction: Direction,
    pub grid: Grid,
}

/// A tokenized pair with its metric.
#[derive(Debug, Clone)]
pub struct PairInput {
    pub id: String,
    pub clean_ids: Vec<u32>,
    pub corrupt_ids: Vec<u32>,
    pub position_labels: Vec<String>,
    pub metric: Metric,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    pub clean: f32,
    pub corrupt: f32,
}

/// One measured effect.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    /// Index into the pairs given to [`Engine::run`].
    pub pair: usize,
    pub key: EffectKey,
    /// The metric of the patched run (attribution: base metric plus the estimate).
    pub value: f64,
    /// `value - base` (or `value / base - 1` with [`EffectMode::Relative`]), `base` the
    /// metric of the unpatched base run.
    pub effect: f64,
    /// `(value - corrupt) / (clean - corrupt)`.
    pub normalized: Option<f64>,
}

/// The first position where the two prompts' tokens differ.
fn first_difference(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len())
}

fn lens_has_no_patches(exp: &Experiment) -> EngineError {
    EngineError::Grid(format!(
        "experiment `{}` is a logit lens: it patches nothing (its values come from `Engine::lens`)",
        exp.name
    ))
}

/// Below this many tokens a forward on a GPU is bound by reading the weights and launching
/// kernels rather than by arithmetic (an H100/H200 in bf16 needs some hundreds of tokens per
/// weight matrix to be compute-bound; a few thousand leave no forward launch-bound).
pub const MIN_FORWARD_TOKENS_GPU: usize = 4096;
/// The same on the CPU, where arithmetic dominates much sooner.
pub const MIN_FORWARD_TOKENS_CPU: usize = 64;

/// A CPU forward of some hundreds of tokens is compute-bound; past about this many, more rows
/// only hold more memory (SmolLM2, 16 pairs of 4 tokens: 256 rows per forward patched 10–30%
/// faster than 64, and 1024 or 4096 rows no faster than 256).
pub const CPU_FORWARD_TOKENS: usize = 1024;

/// Rows per forward on the CPU when the spec fixes none: as many as give prompts of `longest`
/// tokens [`CPU_FORWARD_TOKENS`] tokens, and never fewer than `default`. A forward then holds
/// no more than `default` rows of a prompt of `CPU_FORWARD_TOKENS / default` tokens would.
pub fn cpu_rows(longest: usize, default: usize) -> usize {
    (CPU_FORWARD_TOKENS / longest.max(1)).max(default)
}

/// Runs experiments on one model.
pub struct Engine<'m> {
    pub model: &'m HookedTransformer,
    /// Rows per batched forward.
    pub max_batch: usize,
    /// Activation patching packs forwards of fewer tokens than this (see
    /// [`crate::activation`]); by default 4096 on a GPU, 64 on the CPU.
    pub min_forward_tokens: usize,
    /// Pairs whose runs are cached at once.
    pub pairs_per_chunk: usize,
    /// How effects are read from the patched values.
    pub effect: EffectMode,
}

impl<'m> Engine<'m> {
    pub fn new(model: &'m HookedTransformer) -> Self {
        Self {
            model,
            max_batch: 64,
            min_forward_tokens: if model.device().is_cpu() {
                MIN_FORWARD_TOKENS_CPU
            } else {
                MIN_FORWARD_TOKENS_GPU
            },
            pairs_per_chunk: 16,
            effect: EffectMode::Difference,
        }
    }

    /// Chunks of pair indices with equal token counts, in order.
    pub(crate) fn chunks(&self, pairs: &[PairInput], size: usize) -> Vec<Vec<usize>> {
        let mut by_len: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, p) in pairs.iter().enumerate() {
            by_len.entry(p.clean_ids.len()).or_default().push(i);
        }
        by_len
            .into_values()
            .flat_map(|v| {
                v.chunks(size.max(1))
                    .map(|c| c.to_vec())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Clean and corrupted metric of every pair.
    pub fn baselines(&self, pairs: &[PairInput]) -> Result<Vec<Baseline>> {
        let mut out = vec![
            Baseline {
                clean: 0.0,
                corrupt: 0.0
            };
            pairs.len()
        ];
        for chunk in self.chunks(pairs, self.max_batch) {
            let metrics: Vec<&Metric> = chunk.iter().map(|&i| &pairs[i].metric).collect();
            let clean: Vec<&[u32]> = chunk
                .iter()
                .map(|&i| pairs[i].clean_ids.as_slice())
                .collect();
            let corrupt: Vec<&[u32]> = chunk
                .iter()
                .map(|&i| pairs[i].corrupt_ids.as_slice())
                .collect();
            let (c, k) = pair_metrics(self.model, &clean, &corrupt, &metrics)?;
            for (n, &i) in chunk.iter().enumerate() {
                out[i] = Baseline {
                    clean: c[n],
                    corrupt: k[n],
                };
            }
        }
        Ok(out)
    }

    /// The cells of every pair (validated against the model).
    pub fn cells(&self, exp: &Experiment, pairs: &[PairInput]) -> Result<Vec<Vec<Cell>>> {
        exp.grid.validate(&self.model.cfg)?;
        pairs
            .iter()
            .map(|p| {
                exp.grid
                    .cells(&self.model.cfg, p.clean_ids.len(), &p.position_labels)
            })
            .collect()
    }

    /// Runs `exp` on `pairs`; `progress` is told how many cells each step finished.
    pub fn run(
        &self,
        exp: &Experiment,
        pairs: &[PairInput],
        baselines: &[Baseline],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Effect>> {
        if exp.method == Method::LogitLens {
            return Err(lens_has_no_patches(exp));
        }
        let cells = self.cells(exp, pairs)?;
        let mut effects = Vec::new();
        for chunk in self.chunks(pairs, self.pairs_per_chunk) {
            let hooks: HashSet<HookPoint> = chunk
                .iter()
                .flat_map(|&i| cells[i].iter().flat_map(|c| c.sites.iter().map(Site::hook)))
                .collect();
            let metrics: Vec<&Metric> = chunk.iter().map(|&i| &pairs[i].metric).collect();
            let (base_ids, source_ids): (Vec<&[u32]>, Vec<&[u32]>) = chunk
                .iter()
                .map(|&i| match exp.direction {
                    Direction::Denoise => (
                        pairs[i].corrupt_ids.as_slice(),
                        pairs[i].clean_ids.as_slice(),
                    ),
                    Direction::Noise => (
                        pairs[i].clean_ids.as_slice(),
                        pairs[i].corrupt_ids.as_slice(),
                    ),
                })
                .unzip();
            let values = match exp.method {
                Method::Activation => {
                    let (sources, bases) = cache_source_and_base_runs(
                        self.model,
                        &source_ids,
                        &base_ids,
                        &metrics,
                        &hooks,
                    )?;
                    let jobs: Vec<PairJob> = chunk
                        .iter()
                        .enumerate()
                        .map(|(n, &i)| PairJob {
                            first_diff: first_difference(
                                &pairs[i].clean_ids,
                                &pairs[i].corrupt_ids,
                            ),
                            base: &bases[n],
                            source: &sources[n],
                            metric: &pairs[i].metric,
                            n_tokens: pairs[i].clean_ids.len(),
                            cells: &cells[i],
                        })
                        .collect();
                    patch_values(
                        self.model,
                        &jobs,
                        Packing {
                            max_rows: self.max_batch,
                            min_tokens: self.min_forward_tokens,
                        },
                        progress,
                    )?
                }
                Method::Attribution => {
                    let sources = cache_runs(self.model, &source_ids, &metrics, &hooks)?;
                    let mut all = Vec::new();
                    for sub in (0..chunk.len()).collect::<Vec<_>>().chunks(8) {
                        let jobs: Vec<AttributionJob> = sub
                            .iter()
                            .map(|&n| AttributionJob {
                                base_ids: base_ids[n],
                                source: &sources[n],
                                metric: &pairs[chunk[n]].metric,
                                cells: &cells[chunk[n]],
                            })
                            .collect();
                        let (v, _) = estimate_values(self.model, &jobs)?;
                        progress(jobs.iter().map(|j| j.cells.len()).sum());
                        all.extend(v);
                    }
                    all
                }
                Method::LogitLens => return Err(lens_has_no_patches(exp)),
            };
            for (n, &i) in chunk.iter().enumerate() {
                let b = baselines[i];
                let base = match exp.direction {
                    Direction::Denoise => b.corrupt,
                    Direction::Noise => b.clean,
                } as f64;
                for (cell, &v) in cells[i].iter().zip(&values[n]) {
                    let value = v as f64;
                    let effect = self.effect.effect(value, base).ok_or_else(|| {
                        EngineError::Metric(format!(
                            "pair {:?}: a relative effect needs a positive base metric, got {base}",
                            pairs[i].id
                        ))
                    })?;
                    effects.push(Effect {
                        pair: i,
                        key: cell.key.clone(),
                        value,
                        effect,
                        normalized: normalized(value, b.clean as f64, b.corrupt as f64),
                    });
                }
            }
        }
        Ok(effects)
    }

    /// The cached run of one prompt (for callers that need hook values, e.g. the oracle).
    pub fn cache(
        &self,
        ids: &[u32],
        metric: &Metric,
        hooks: &HashSet<HookPoint>,
    ) -> Result<RunCache> {
        Ok(cache_runs(self.model, &[ids], &[metric], hooks)?.remove(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_forwards_take_rows_for_about_a_thousand_tokens_but_never_fewer_than_the_default() {
        assert_eq!(cpu_rows(4, 64), 256);
        assert_eq!(cpu_rows(10, 64), 102);
        assert_eq!(cpu_rows(100, 64), 64, "long prompts keep the default");
        assert_eq!(
            cpu_rows(0, 64),
            CPU_FORWARD_TOKENS,
            "no prompt reads as one token"
        );
    }
}
