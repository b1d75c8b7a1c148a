//! The clean and corrupted runs of each pair, computed once and cached: the metric, the
//! residual entering every block (where patched forwards start), every block's keys and
//! values (reused for the positions a patch cannot change), and the hook values patches
//! take their replacements from.

use std::collections::{HashMap, HashSet};

use candle_core::Tensor;
use patchsweep_model::{
    ActivationCache, Forward, HookPoint, HookedTransformer, Input, LayerKv, Unembed,
};

use crate::error::Result;
use crate::metric::{answer_ids, values_on_subset, Metric};

/// One run of one prompt (batch dimension 1 everywhere).
#[derive(Debug, Clone)]
pub struct RunCache {
    pub metric: f32,
    /// Residual entering block `l`, `[1, positions, d_model]`.
    pub resid_pre: Vec<Tensor>,
    /// Post-RoPE keys and values of every block, `[1, kv_heads, positions, d_head]`.
    pub kv: Vec<LayerKv>,
    /// Values of the requested hook points, `[1, positions, ...]`.
    pub hooks: HashMap<HookPoint, Tensor>,
}

/// Runs prompts of equal length as one batch and splits the results per prompt.
pub fn cache_runs(
    model: &HookedTransformer,
    prompts: &[&[u32]],
    metrics: &[&Metric],
    hooks: &HashSet<HookPoint>,
) -> Result<Vec<RunCache>> {
    cache_batch(model, prompts, metrics, hooks, prompts.len())
}

/// The runs patches take their values from (`sources`, with `hooks`) and the runs they patch
/// (`bases`, without), pair by pair, in one batch: every pass over the weights costs the same
/// for a few rows, so one pass instead of two.
pub fn cache_source_and_base_runs(
    model: &HookedTransformer,
    sources: &[&[u32]],
    bases: &[&[u32]],
    metrics: &[&Metric],
    hooks: &HashSet<HookPoint>,
) -> Result<(Vec<RunCache>, Vec<RunCache>)> {
    let (prompts, both) = one_batch(sources, bases, metrics);
    let mut runs = cache_batch(model, &prompts, &both, hooks, sources.len())?;
    let bases = runs.split_off(sources.len());
    Ok((runs, bases))
}

/// The metric of each pair's two prompts (`first[i]` and `second[i]` under `metrics[i]`),
/// in one batch that caches nothing.
pub fn pair_metrics(
    model: &HookedTransformer,
    first: &[&[u32]],
    second: &[&[u32]],
    metrics: &[&Metric],
) -> Result<(Vec<f32>, Vec<f32>)> {
    let (prompts, both) = one_batch(first, second, metrics);
    let rows: Vec<Vec<u32>> = prompts.iter().map(|p| p.to_vec()).collect();
    let subset = answer_ids(&both);
    let logits = model.last_logits(&rows, subset.as_deref())?;
    let mut values: Vec<f32> = values_on_subset(&logits, &both, subset.as_deref())?.to_vec1()?;
    let second_values = values.split_off(first.len());
    Ok((values, second_values))
}

/// Two prompt sets stacked into one batch, each row with its pair's metric.
fn one_batch<'a>(
    first: &[&'a [u32]],
    second: &[&'a [u32]],
    metrics: &[&'a Metric],
) -> (Vec<&'a [u32]>, Vec<&'a Metric>) {
    (
        first.iter().chain(second).copied().collect(),
        metrics.iter().chain(metrics).copied().collect(),
    )
}

/// [`cache_runs`], keeping the values of `hooks` for the first `hooked` prompts only.
fn cache_batch(
    model: &HookedTransformer,
    prompts: &[&[u32]],
    metrics: &[&Metric],
    hooks: &HashSet<HookPoint>,
    hooked: usize,
) -> Result<Vec<RunCache>> {
    let rows: Vec<Vec<u32>> = prompts.iter().map(|p| p.to_vec()).collect();
    let tokens = model.tokens_tensor(&rows)?;
    let n_layers = model.cfg.n_layers;
    let mut wanted: HashSet<HookPoint> = hooks.clone();
    wanted.extend((0..n_layers).map(HookPoint::ResidPre));
    let mut cache = ActivationCache::only(wanted.iter().copied());
    let subset = answer_ids(metrics);
    let out = model.forward(
        Input::Tokens(&tokens),
        &mut cache,
        Forward {
            unembed: Unembed::Last,
            record_kv: true,
            vocab_subset: subset.as_deref(),
            ..Forward::default()
        },
    )?;
    let logits = out.logits.expect("unembed requested");
    let values: Vec<f32> = values_on_subset(&logits, metrics, subset.as_deref())?.to_vec1()?;
    let cached = cache.into_map();
    let mut runs = Vec::with_capacity(rows.len());
    for (r, metric) in values.into_iter().enumerate() {
        let row = |t: &Tensor| t.narrow(0, r, 1).and_then(|x| x.contiguous());
        runs.push(RunCache {
            metric,
            resid_pre: (0..n_layers)
                .map(|l| row(&cached[&HookPoint::ResidPre(l)]))
                .collect::<candle_core::Result<_>>()?,
            kv: out
                .kv
                .iter()
                .map(|kv| {
                    Ok(LayerKv {
                        k: row(&kv.k)?,
                        v: row(&kv.v)?,
                    })
                })
                .collect::<candle_core::Result<_>>()?,
            hooks: if r < hooked {
                hooks
                    .iter()
                    .map(|h| Ok((*h, row(&cached[h])?)))
                    .collect::<candle_core::Result<_>>()?
            } else {
                HashMap::new()
            },
        });
    }
    Ok(runs)
}
