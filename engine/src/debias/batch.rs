//! Batched forwards with edits: rows grouped by token count, one forward per group.

use std::collections::BTreeMap;

use candle_core::Tensor;
use patchsweep_model::{ActivationCache, Forward, HookPoint, HookedTransformer, Input, Unembed};

use super::edit::{Edit, EditHook};
use super::error::Result;

/// Indices of `lens` grouped by equal length (ascending), in chunks of at most `max_batch`,
/// each chunk in input order.
pub fn by_length(lens: &[usize], max_batch: usize) -> Vec<Vec<usize>> {
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &l) in lens.iter().enumerate() {
        groups.entry(l).or_default().push(i);
    }
    groups
        .into_values()
        .flat_map(|g| {
            g.chunks(max_batch.max(1))
                .map(<[usize]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One batch of equal-length rows.
pub struct Rows<'a> {
    pub ids: Vec<&'a [u32]>,
    /// Position labels per row (`None`: unlabelled text).
    pub labels: Vec<Option<&'a [String]>>,
}

/// What one edited forward returns.
pub struct EditedRun {
    /// `[batch, 1 or positions, vocab]` f32.
    pub logits: Tensor,
    /// Values recorded at `record` (after the edits).
    pub cache: ActivationCache,
}

/// Runs one batch with `edits`, unembedding `unembed`, recording the `record` hook points.
pub fn run_edited(
    model: &HookedTransformer,
    edits: &[Edit],
    rows: &Rows,
    unembed: Unembed,
    record: &[HookPoint],
) -> Result<EditedRun> {
    let owned: Vec<Vec<u32>> = rows.ids.iter().map(|r| r.to_vec()).collect();
    let tokens = model.tokens_tensor(&owned)?;
    let n = owned.first().map(Vec::len).unwrap_or(0);
    let mut hook = EditHook::new(edits, &rows.labels, n)?
        .with_cache(ActivationCache::only(record.iter().copied()));
    let out = model.forward(
        Input::Tokens(&tokens),
        &mut hook,
        Forward {
            unembed,
            ..Forward::default()
        },
    )?;
    let logits = match out.logits {
        Some(l) => l,
        None => Tensor::zeros(1, candle_core::DType::F32, model.device())?,
    };
    Ok(EditedRun {
        logits,
        cache: hook.cache.take().unwrap_or_default(),
    })
}
