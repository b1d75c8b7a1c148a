//! Attribution patching: every cell's effect estimated at once to first order,
//! `(a_source - a_base) · ∂metric/∂a` with the gradient taken on the base run — one forward
//! of the source prompts (cached), one forward and one backward of the base prompts, for a
//! batch of equal-length pairs.
//!
//! Whatever the model's dtype (f32, f16, bf16), the products and their sums are computed in
//! f32: the activations and gradients are converted before `a_source - a_base` (a half
//! precision difference of two close activations would lose most of its digits), so a bf16
//! or f16 model gives estimates as precise as its activations allow.

use std::collections::{HashMap, HashSet};

use candle_core::{DType, Tensor};
use patchsweep_model::{HookPoint, HookedTransformer, NoHook};

use crate::error::Result;
use crate::grid::{Cell, Site};
use crate::metric::{values_per_row, Metric};
use crate::runs::RunCache;

/// A batch of equal-length pairs for attribution.
pub struct AttributionJob<'a> {
    pub base_ids: &'a [u32],
    pub source: &'a RunCache,
    pub metric: &'a Metric,
    pub cells: &'a [Cell],
}

/// Estimated patched metric values (`base metric + estimate`) per job and cell, and the base
/// metric of each job.
pub fn estimate_values(
    model: &HookedTransformer,
    jobs: &[AttributionJob],
) -> Result<(Vec<Vec<f32>>, Vec<f32>)> {
    let points: HashSet<HookPoint> = jobs
        .iter()
        .flat_map(|j| j.cells.iter().flat_map(|c| c.sites.iter().map(Site::hook)))
        .collect();
    let points: Vec<HookPoint> = points.into_iter().collect();
    let rows: Vec<Vec<u32>> = jobs.iter().map(|j| j.base_ids.to_vec()).collect();
    let tokens = model.tokens_tensor(&rows)?;
    let metrics: Vec<&Metric> = jobs.iter().map(|j| j.metric).collect();
    let per_row = std::cell::RefCell::new(Vec::new());
    // Rows are independent, so the gradient of the sum is each row's own gradient.
    let metric = |logits: &Tensor| -> patchsweep_model::Result<Tensor> {
        let v = values_per_row(logits, &metrics)
            .map_err(|e| patchsweep_model::ModelError::BadInput(e.to_string()))?;
        per_row.replace(v.detach().to_vec1::<f32>()?);
        Ok(v.sum_all()?)
    };
    let g = model.gradients(&tokens, &points, &mut NoHook, &metric)?;
    let base_metrics = per_row.into_inner();
    // (a_source - a_base) * grad, per hook, as host vectors [rows, ...].
    let mut products: HashMap<HookPoint, (Vec<f32>, Vec<usize>)> = HashMap::new();
    for &point in &points {
        let base = &g.activations[&point];
        let source = Tensor::cat(
            &jobs
                .iter()
                .map(|j| j.source.hooks[&point].clone())
                .collect::<Vec<_>>(),
            0,
        )?;
        let prod = attribution_product(&source, base, &g.grads[&point])?;
        products.insert(
            point,
            (prod.flatten_all()?.to_vec1::<f32>()?, prod.dims().to_vec()),
        );
    }
    let mut values = Vec::with_capacity(jobs.len());
    for (r, job) in jobs.iter().enumerate() {
        let mut row = Vec::with_capacity(job.cells.len());
        for cell in job.cells {
            let estimate: f32 = cell
                .sites
                .iter()
                .map(|s| site_sum(&products[&s.hook()], r, s))
                .sum();
            row.push(base_metrics[r] + estimate);
        }
        values.push(row);
    }
    Ok((values, base_metrics))
}

/// `(source - base) * grad` elementwise, in f32 whatever the dtype of the inputs (the
/// model's dtype: f32, f16 or bf16).
pub fn attribution_product(source: &Tensor, base: &Tensor, grad: &Tensor) -> Result<Tensor> {
    let f32 = |t: &Tensor| t.to_dtype(DType::F32);
    Ok(((f32(source)? - f32(base)?)? * f32(grad)?)?)
}

/// Sum of the product tensor over the entries a site selects in row `r`.
fn site_sum((data, dims): &(Vec<f32>, Vec<usize>), r: usize, site: &Site) -> f32 {
    let n = dims[1];
    let (heads, width) = if site.hook().has_head_dim() {
        (dims[2], dims[3])
    } else {
        (1, dims[2])
    };
    let positions: Vec<usize> = site
        .position
        .map(|p| vec![p])
        .unwrap_or_else(|| (0..n).collect());
    let hs: Vec<usize> = site
        .head
        .map(|h| vec![h])
        .unwrap_or_else(|| (0..heads).collect());
    let mut total = 0f32;
    for p in positions {
        for &h in &hs {
            let at = ((r * n + p) * heads + h) * width;
            let slice = &data[at..at + width];
            total += match site.neuron {
                Some(f) => slice[f],
                None => slice.iter().sum::<f32>(),
            };
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The product of half-precision activations and gradients is read as f32 (candle
    /// refuses `to_vec1::<f32>` on a bf16/f16 tensor) and its difference is taken in f32.
    #[test]
    fn products_of_half_precision_tensors_are_f32() -> Result<()> {
        let dev = Device::Cpu;
        // 1 + 2^-7 is exact in bf16 and f16; its square (1 + 2^-6 + 2^-14) is not.
        let x = 1.0078125f32;
        let source = Tensor::new(&[[x, 3.0, -2.0]], &dev)?;
        let base = Tensor::new(&[[0.0f32, 1.0, -2.0]], &dev)?;
        let grad = Tensor::new(&[[x, 0.25, 7.0]], &dev)?;
        for dtype in [DType::BF16, DType::F16, DType::F32] {
            let h = |t: &Tensor| t.to_dtype(dtype).unwrap();
            let prod = attribution_product(&h(&source), &h(&base), &h(&grad))?;
            assert_eq!(prod.dtype(), DType::F32, "{dtype:?}");
            let v = prod.flatten_all()?.to_vec1::<f32>()?;
            assert_eq!(v, vec![x * x, 0.5, 0.0], "{dtype:?}");
        }
        Ok(())
    }
}
