//! Activation patching, naive: one full forward of the base prompt per cell with the source
//! values patched in. Slow and obviously right; the fast path is tested against it.

use candle_core::Tensor;
use patchsweep_model::{Forward, HookedTransformer, Input, Patch, Patcher, Unembed};

use crate::error::Result;
use crate::grid::Cell;
use crate::metric::Metric;
use crate::runs::RunCache;

/// The patched metric of each cell, for one pair.
pub fn patch_values_naive(
    model: &HookedTransformer,
    base_ids: &[u32],
    source: &RunCache,
    metric: &Metric,
    cells: &[Cell],
) -> Result<Vec<f32>> {
    let tokens = model.tokens_tensor(&[base_ids.to_vec()])?;
    let mut out = Vec::with_capacity(cells.len());
    for cell in cells {
        let patches: Vec<Patch> = cell
            .sites
            .iter()
            .map(|s| Patch {
                point: s.hook(),
                target: s.target(),
                value: source.hooks[&s.hook()].clone(),
            })
            .collect();
        let logits = model
            .forward(
                Input::Tokens(&tokens),
                &mut Patcher::new(&patches),
                Forward {
                    unembed: Unembed::All,
                    ..Forward::default()
                },
            )?
            .logits
            .expect("unembed requested");
        let n = logits.dim(1)?;
        let last: Tensor = logits.narrow(1, n - 1, 1)?;
        out.push(metric.values(&last)?.to_vec1::<f32>()?[0]);
    }
    Ok(out)
}
