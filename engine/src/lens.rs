//! The logit lens: the bias metric read from the residual stream after each block, at the
//! last position (the position the metric reads), through the model's final RMSNorm and
//! unembedding — TransformerLens' `accumulated_resid(apply_ln=True)` (the final norm applied
//! to each layer's residual on its own, `apply_ln_to_stack`) followed by the unembedding.
//!
//! The lens uses the one forward pass: the clean and corrupted prompts run once with their
//! block outputs cached, and the cached residuals enter the same forward at its last block
//! boundary (`Input::Residual { layer: n_layers }`), which runs no block and only the final
//! norm and unembedding. The last layer's lens is therefore the model's own metric.

use candle_core::Tensor;
use patchsweep_model::{ActivationCache, Forward, HookPoint, Input, NoHook, Unembed};

use crate::error::{EngineError, Result};
use crate::experiment::{Engine, Experiment, PairInput};
use crate::metric::{values_per_row, Metric};

/// The metric of one pair read from the residual after block `layer`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LensValue {
    /// Index into the pairs given to [`Engine::lens`].
    pub pair: usize,
    /// The block whose output (`resid_post`) was read.
    pub layer: usize,
    pub clean: f64,
    pub corrupt: f64,
    /// Which answers each value says lead ([`crate::metric::MetricKind::lead`]).
    pub clean_lead: i8,
    pub corrupt_lead: i8,
}

impl Engine<'_> {
    /// The layers `exp` reads: its grid's `layers`, or every layer.
    pub fn lens_layers(&self, exp: &Experiment) -> Result<Vec<usize>> {
        exp.grid.validate(&self.model.cfg)?;
        Ok(exp
            .grid
            .layers
            .clone()
            .unwrap_or_else(|| (0..self.model.cfg.n_layers).collect()))
    }

    /// The logit lens of `exp` on `pairs`: for every pair and layer, the metric read from
    /// `resid_post` of that layer at the last position, on the clean and corrupted prompts.
    pub fn lens(&self, exp: &Experiment, pairs: &[PairInput]) -> Result<Vec<LensValue>> {
        let layers = self.lens_layers(exp)?;
        let mut out = Vec::with_capacity(pairs.len() * layers.len());
        for chunk in self.chunks(pairs, self.pairs_per_chunk) {
            let metrics: Vec<&Metric> = chunk.iter().map(|&i| &pairs[i].metric).collect();
            let clean: Vec<Vec<u32>> = chunk.iter().map(|&i| pairs[i].clean_ids.clone()).collect();
            let corrupt: Vec<Vec<u32>> = chunk
                .iter()
                .map(|&i| pairs[i].corrupt_ids.clone())
                .collect();
            let c = self.lens_rows(&clean, &metrics, &layers)?;
            let k = self.lens_rows(&corrupt, &metrics, &layers)?;
            for (li, &layer) in layers.iter().enumerate() {
                for (n, &i) in chunk.iter().enumerate() {
                    let at = li * chunk.len() + n;
                    let (clean, corrupt) = (c[at] as f64, k[at] as f64);
                    let kind = pairs[i].metric.kind;
                    out.push(LensValue {
                        pair: i,
                        layer,
                        clean,
                        corrupt,
                        clean_lead: kind.lead(clean),
                        corrupt_lead: kind.lead(corrupt),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Lens values of prompts of equal length, layer-major: `[layer][prompt]` flattened.
    fn lens_rows(
        &self,
        prompts: &[Vec<u32>],
        metrics: &[&Metric],
        layers: &[usize],
    ) -> Result<Vec<f32>> {
        let model = self.model;
        let tokens = model.tokens_tensor(prompts)?;
        let mut cache = ActivationCache::only(layers.iter().map(|&l| HookPoint::ResidPost(l)));
        model.forward(
            Input::Tokens(&tokens),
            &mut cache,
            Forward {
                unembed: Unembed::None,
                ..Forward::default()
            },
        )?;
        let last = prompts[0].len() - 1;
        let residuals = layers
            .iter()
            .map(|&l| Ok(cache.get(HookPoint::ResidPost(l))?.narrow(1, last, 1)?))
            .collect::<Result<Vec<Tensor>>>()?;
        let stacked = Tensor::cat(&residuals, 0)?; // [layers * prompts, 1, d_model]
        let row_metrics: Vec<&Metric> = layers
            .iter()
            .flat_map(|_| metrics.iter().copied())
            .collect();
        let rows = row_metrics.len();
        let step = self.max_batch.max(1);
        let mut values = Vec::with_capacity(rows);
        for start in (0..rows).step_by(step) {
            let n = step.min(rows - start);
            let resid = stacked.narrow(0, start, n)?;
            let logits = model
                .forward(
                    Input::Residual {
                        layer: model.cfg.n_layers,
                        resid_pre: &resid,
                    },
                    &mut NoHook,
                    Forward {
                        unembed: Unembed::Last,
                        ..Forward::default()
                    },
                )?
                .logits
                .ok_or_else(|| EngineError::Metric("the lens forward gave no logits".into()))?;
            values
                .extend(values_per_row(&logits, &row_metrics[start..start + n])?.to_vec1::<f32>()?);
        }
        Ok(values)
    }
}
