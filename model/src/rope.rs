//! Rotary position embeddings in the Hugging Face ("rotate half") convention, with the
//! LLaMA-3 and linear frequency scalings, computed in f32 exactly as transformers does.

use candle_core::{DType, Device, Tensor, D};

use crate::config::{ModelConfig, RopeScaling};
use crate::error::Result;

/// Inverse frequencies, one per pair of dimensions (`d_head / 2` of them).
pub fn inv_freq(cfg: &ModelConfig) -> Vec<f32> {
    let dim = cfg.d_head;
    let base: f32 = cfg.rope_theta;
    let mut freqs: Vec<f32> = (0..dim)
        .step_by(2)
        .map(|i| 1.0f32 / base.powf(i as f32 / dim as f32))
        .collect();
    if let Some(RopeScaling::Llama3 {
        factor,
        low_freq_factor,
        high_freq_factor,
        original_max_position_embeddings,
    }) = &cfg.rope_scaling
    {
        let old_len = *original_max_position_embeddings as f32;
        let low_wavelen = old_len / low_freq_factor;
        let high_wavelen = old_len / high_freq_factor;
        for f in freqs.iter_mut() {
            let wavelen = 2.0 * std::f32::consts::PI / *f;
            let scaled = if wavelen > low_wavelen {
                *f / factor
            } else {
                *f
            };
            let medium = wavelen >= high_wavelen && wavelen <= low_wavelen;
            *f = if medium {
                let smooth =
                    (old_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                (1.0 - smooth) * scaled / factor + smooth * scaled
            } else {
                scaled
            };
        }
    }
    freqs
}

/// Cos and sin tables for positions `offset..offset + len`, each `[len, d_head / 2]`.
#[derive(Debug, Clone)]
pub struct RopeTables {
    pub cos: Tensor,
    pub sin: Tensor,
}

/// Precomputed frequencies for one model.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
    position_scale: f32,
}

impl Rope {
    pub fn new(cfg: &ModelConfig) -> Self {
        let position_scale = match cfg.rope_scaling {
            Some(RopeScaling::Linear { factor }) => 1.0 / factor,
            _ => 1.0,
        };
        Self {
            inv_freq: inv_freq(cfg),
            position_scale,
        }
    }

    pub fn tables(
        &self,
        offset: usize,
        len: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<RopeTables> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for p in offset..offset + len {
            let pos = p as f32 * self.position_scale;
            for f in &self.inv_freq {
                let angle = pos * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Ok(RopeTables {
            cos: Tensor::from_vec(cos, (len, half), device)?.to_dtype(dtype)?,
            sin: Tensor::from_vec(sin, (len, half), device)?.to_dtype(dtype)?,
        })
    }
}

/// Applies RoPE to `x` of shape `[b, heads, p, d_head]`.
/// The fused kernel has no backward, so the differentiable path composes basic ops.
pub fn apply(x: &Tensor, t: &RopeTables, differentiable: bool) -> Result<Tensor> {
    if !differentiable {
        return Ok(candle_nn::rotary_emb::rope(
            &x.contiguous()?,
            &t.cos,
            &t.sin,
        )?);
    }
    let half = x.dim(D::Minus1)? / 2;
    let cos = Tensor::cat(&[&t.cos, &t.cos], D::Minus1)?;
    let sin = Tensor::cat(&[&t.sin, &t.sin], D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    Ok((x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?)?)
}
