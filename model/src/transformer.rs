//! The hooked LLaMA-family transformer: one forward pass that calls a [`Hook`] at every
//! TransformerLens hook point, can start at a layer from a given residual, take in more rows
//! at later layers, stop before a layer, reuse cached keys/values of earlier positions, and
//! unembed only the last position.

use candle_core::{DType, Device, Tensor};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::hooks::{Hook, HookPoint, NoHook};
use crate::ops;
use crate::rope::{self, Rope, RopeTables};
use crate::small_attention::{AttentionMix, AttentionPattern};
use crate::weights::{LayerWeights, Weights};

/// Post-RoPE keys and values of one block for the positions already computed,
/// each `[batch, n_kv_heads, positions, d_head]`.
#[derive(Debug, Clone)]
pub struct LayerKv {
    pub k: Tensor,
    pub v: Tensor,
}

/// Where the forward pass begins.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Token ids `[batch, positions]` (u32).
    Tokens(&'a Tensor),
    /// The residual entering block `layer`, `[batch, positions, d_model]`.
    Residual { layer: usize, resid_pre: &'a Tensor },
}

/// Rows that enter a forward at a later block: before block `layer` runs, `resid_pre`
/// (`[rows, positions, d_model]`, the residual entering that block) is appended below the
/// rows already in the batch. Rows that need only the upper blocks thus share those blocks'
/// products with the rows that started lower, without running the blocks below their own.
#[derive(Debug, Clone, Copy)]
pub struct Join<'a> {
    pub layer: usize,
    pub resid_pre: &'a Tensor,
}

/// Which positions go through the final norm and the unembedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unembed {
    All,
    /// Only the last position: logits are `[batch, 1, vocab]`.
    Last,
    /// No logits (for example with `stop_at_layer`).
    None,
}

/// Options of one forward pass; `Default` is a plain full forward with logits everywhere.
#[derive(Debug, Clone, Copy)]
pub struct Forward<'a> {
    pub unembed: Unembed,
    /// Run blocks below this one only and return the residual entering it.
    pub stop_at_layer: Option<usize>,
    /// Keys/values of earlier positions (one entry per block, with one row per row in the
    /// batch at that block, or one row for all); the input then holds only the new positions,
    /// which start at the cached length.
    pub past: Option<&'a [LayerKv]>,
    /// Rows joining at later blocks, by ascending layer (see [`Join`]). Hooks at a block see
    /// the rows in the batch there: the input's, then the joined ones in order.
    pub joins: &'a [Join<'a>],
    /// Return the keys/values of all positions (past and new) for later reuse.
    pub record_kv: bool,
    /// Use only ops with a backward (needed for gradients); slower.
    pub differentiable: bool,
    /// Compute logits only for these vocabulary ids, in this order (a metric that reads a
    /// few answer tokens needs no full unembedding).
    pub vocab_subset: Option<&'a [u32]>,
}

impl Default for Forward<'_> {
    fn default() -> Self {
        Self {
            unembed: Unembed::All,
            stop_at_layer: None,
            past: None,
            joins: &[],
            record_kv: false,
            differentiable: false,
            vocab_subset: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ForwardOutput {
    /// `[batch, positions or 1, vocab]` in f32, unless `Unembed::None`.
    pub logits: Option<Tensor>,
    /// The residual where the pass stopped: entering `stop_at_layer`, or leaving the last block.
    pub residual: Tensor,
    /// Keys/values per block when `record_kv` was set.
    pub kv: Vec<LayerKv>,
}

/// A LLaMA-family model with hook points. Holds no per-request state.
#[derive(Debug, Clone)]
pub struct HookedTransformer {
    pub cfg: ModelConfig,
    pub weights: Weights,
    rope: Rope,
    device: Device,
    dtype: DType,
}

impl HookedTransformer {
    pub fn new(cfg: ModelConfig, weights: Weights, device: Device, dtype: DType) -> Self {
        let rope = Rope::new(&cfg);
        Self {
            cfg,
            weights,
            rope,
            device,
            dtype,
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Token ids as a `[batch, positions]` tensor; all rows must have the same length.
    pub fn tokens_tensor(&self, rows: &[Vec<u32>]) -> Result<Tensor> {
        let len = rows.first().map(|r| r.len()).unwrap_or(0);
        if len == 0 || rows.iter().any(|r| r.len() != len) {
            return Err(ModelError::BadInput(
                "a batch needs at least one token per row and rows of equal length".into(),
            ));
        }
        let vocab = self.cfg.vocab_size as u32;
        if let Some(bad) = rows.iter().flatten().find(|&&t| t >= vocab) {
            return Err(ModelError::BadInput(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        let flat: Vec<u32> = rows.iter().flatten().copied().collect();
        Ok(Tensor::from_vec(flat, (rows.len(), len), &self.device)?)
    }

    /// The logits at the last position of each row of token ids (rows of equal length),
    /// `[rows, 1, vocab]` in f32 (or over `vocab_subset`): a plain forward without hooks.
    pub fn last_logits(&self, rows: &[Vec<u32>], vocab_subset: Option<&[u32]>) -> Result<Tensor> {
        let tokens = self.tokens_tensor(rows)?;
        let out = self.forward(
            Input::Tokens(&tokens),
            &mut NoHook,
            Forward {
                unembed: Unembed::Last,
                vocab_subset,
                ..Forward::default()
            },
        )?;
        out.logits
            .ok_or_else(|| ModelError::BadInput("the forward pass returned no logits".into()))
    }

    /// The forward pass. `hook` sees (and may replace) every hook point's value.
    pub fn forward(
        &self,
        input: Input,
        hook: &mut dyn Hook,
        opts: Forward,
    ) -> Result<ForwardOutput> {
        let (mut x, first_layer) = match input {
            Input::Tokens(tokens) => {
                let (b, p) = tokens.dims2()?;
                let flat = tokens.flatten_all()?;
                let emb = self.weights.embed_tokens.index_select(&flat, 0)?;
                let emb = emb.reshape((b, p, self.cfg.d_model))?;
                (hook.on(HookPoint::Embed, emb)?, 0)
            }
            Input::Residual { layer, resid_pre } => {
                if layer > self.cfg.n_layers {
                    return Err(ModelError::BadInput(format!(
                        "cannot start at layer {layer} of a {}-layer model",
                        self.cfg.n_layers
                    )));
                }
                (resid_pre.to_dtype(self.dtype)?, layer)
            }
        };
        let (_, new_len, _) = x.dims3()?;
        let past_len = match opts.past {
            Some(past) => {
                if past.len() != self.cfg.n_layers {
                    return Err(ModelError::BadInput(format!(
                        "past keys/values for {} blocks, model has {}",
                        past.len(),
                        self.cfg.n_layers
                    )));
                }
                past[0].k.dim(2)?
            }
            None => 0,
        };
        let tables = self
            .rope
            .tables(past_len, new_len, self.dtype, &self.device)?;
        let mask = self.attention_mask(past_len, new_len, opts.differentiable)?;
        let last_layer = opts
            .stop_at_layer
            .unwrap_or(self.cfg.n_layers)
            .min(self.cfg.n_layers);
        self.check_joins(opts.joins, first_layer, last_layer, new_len)?;
        let mut joins = opts.joins.iter().peekable();
        let mut kv_out = Vec::new();
        for l in first_layer..last_layer {
            while let Some(join) = joins.next_if(|j| j.layer == l) {
                x = Tensor::cat(&[&x, &join.resid_pre.to_dtype(self.dtype)?], 0)?;
            }
            let ctx = BlockContext {
                tables: &tables,
                mask: &mask,
                past: opts.past.map(|p| &p[l]),
                differentiable: opts.differentiable,
            };
            let (next, kv) = self.block(l, x, &ctx, hook)?;
            x = next;
            if opts.record_kv {
                kv_out.push(kv);
            }
        }
        let logits = if opts.stop_at_layer.is_some_and(|s| s < self.cfg.n_layers) {
            None
        } else {
            self.unembed(&x, opts.unembed, opts.vocab_subset, hook)?
        };
        Ok(ForwardOutput {
            logits,
            residual: x,
            kv: kv_out,
        })
    }

    /// Joins must come by ascending layer, between the first block run and the last, with
    /// the input's positions.
    fn check_joins(
        &self,
        joins: &[Join],
        first_layer: usize,
        last_layer: usize,
        positions: usize,
    ) -> Result<()> {
        let mut previous = first_layer;
        for join in joins {
            if join.layer < previous || join.layer >= last_layer {
                return Err(ModelError::BadInput(format!(
                    "rows joining at layer {} of a forward over blocks {first_layer}..{last_layer} \
                     (joins must be in that range, by ascending layer)",
                    join.layer
                )));
            }
            let (_, p, d) = join.resid_pre.dims3()?;
            if p != positions || d != self.cfg.d_model {
                return Err(ModelError::BadInput(format!(
                    "rows joining at layer {} have {p} positions × {d}, the forward {positions} × {}",
                    join.layer, self.cfg.d_model
                )));
            }
            previous = join.layer;
        }
        Ok(())
    }

    /// Additive mask `[new, past + new]`: 0 where a query may attend, -inf elsewhere
    /// (future positions, and positions beyond the sliding window); in the form the
    /// forward's attention takes (see [`AttentionMask`]).
    fn attention_mask(
        &self,
        past_len: usize,
        new_len: usize,
        differentiable: bool,
    ) -> Result<AttentionMask> {
        let kernels = !differentiable && self.device.is_cpu() && self.dtype == DType::F32;
        let total = past_len + new_len;
        let window = self.cfg.sliding_window;
        let allowed = |i: usize, j: usize| {
            let qi = past_len + i;
            j <= qi && window.is_none_or(|w| qi - j < w)
        };
        let values: Option<Vec<f32>> = if (0..new_len).all(|i| (0..total).all(|j| allowed(i, j))) {
            None
        } else {
            Some(
                (0..new_len)
                    .flat_map(|i| (0..total).map(move |j| (i, j)))
                    .map(|(i, j)| {
                        if allowed(i, j) {
                            0.0
                        } else {
                            f32::NEG_INFINITY
                        }
                    })
                    .collect(),
            )
        };
        if kernels {
            return Ok(AttentionMask::Kernels(values));
        }
        let tensor = values
            .map(|v| Tensor::from_vec(v, (new_len, total), &self.device)?.to_dtype(self.dtype));
        Ok(AttentionMask::Ops(tensor.transpose()?))
    }

    fn block(
        &self,
        l: usize,
        resid_pre: Tensor,
        ctx: &BlockContext,
        hook: &mut dyn Hook,
    ) -> Result<(Tensor, LayerKv)> {
        let w = &self.weights.layers[l];
        let resid_pre = hook.on(HookPoint::ResidPre(l), resid_pre)?;
        let normed = ops::rms_norm(
            &resid_pre,
            &w.input_layernorm,
            self.cfg.rms_norm_eps,
            ctx.differentiable,
        )?;
        let (attn_out, kv) = self.attention(l, w, &normed, ctx, hook)?;
        let attn_out = hook.on(HookPoint::AttnOut(l), attn_out)?;
        let resid_mid = hook.on(HookPoint::ResidMid(l), (&resid_pre + &attn_out)?)?;
        let normed = ops::rms_norm(
            &resid_mid,
            &w.post_attention_layernorm,
            self.cfg.rms_norm_eps,
            ctx.differentiable,
        )?;
        let gate = ops::linear(&normed, &w.gate_proj, None)?;
        let up = ops::linear(&normed, &w.up_proj, None)?;
        let post = hook.on(HookPoint::MlpPost(l), ops::swiglu(&gate, &up)?)?;
        let mlp_out = hook.on(
            HookPoint::MlpOut(l),
            ops::linear(&post, &w.down_proj, None)?,
        )?;
        let resid_post = hook.on(HookPoint::ResidPost(l), (&resid_mid + &mlp_out)?)?;
        Ok((resid_post, kv))
    }

    fn attention(
        &self,
        l: usize,
        w: &LayerWeights,
        x: &Tensor,
        ctx: &BlockContext,
        hook: &mut dyn Hook,
    ) -> Result<(Tensor, LayerKv)> {
        let cfg = &self.cfg;
        let (b, t, _) = x.dims3()?;
        let (h, g, dh) = (cfg.n_heads, cfg.n_kv_heads, cfg.d_head);
        let q = ops::linear(x, &w.q_proj, w.q_bias.as_ref())?.reshape((b, t, h, dh))?;
        let k = ops::linear(x, &w.k_proj, w.k_bias.as_ref())?.reshape((b, t, g, dh))?;
        let v = ops::linear(x, &w.v_proj, w.v_bias.as_ref())?.reshape((b, t, g, dh))?;
        let q = hook.on(HookPoint::Q(l), q)?;
        let k = hook.on(HookPoint::K(l), k)?;
        let v = hook.on(HookPoint::V(l), v)?;
        let q = rope::apply(
            &q.transpose(1, 2)?.contiguous()?,
            ctx.tables,
            ctx.differentiable,
        )?;
        let k = rope::apply(
            &k.transpose(1, 2)?.contiguous()?,
            ctx.tables,
            ctx.differentiable,
        )?;
        let v = v.transpose(1, 2)?.contiguous()?;
        let (k, v) = match ctx.past {
            Some(past) => (
                Tensor::cat(
                    &[
                        &past
                            .k
                            .broadcast_as((b, g, past.k.dim(2)?, dh))?
                            .contiguous()?,
                        &k,
                    ],
                    2,
                )?,
                Tensor::cat(
                    &[
                        &past
                            .v
                            .broadcast_as((b, g, past.v.dim(2)?, dh))?
                            .contiguous()?,
                        &v,
                    ],
                    2,
                )?,
            ),
            None => (k, v),
        };
        let scale = 1.0 / (dh as f64).sqrt();
        let mask = match ctx.mask {
            AttentionMask::Kernels(values) => {
                let pattern = q.apply_op2_no_bwd(
                    &k,
                    &AttentionPattern {
                        scale: scale as f32,
                        mask: values.as_deref(),
                    },
                )?;
                let pattern = hook.on(HookPoint::Pattern(l), pattern)?;
                let z = pattern.contiguous()?.apply_op2_no_bwd(&v, &AttentionMix)?;
                let z = hook.on(HookPoint::Z(l), z)?;
                let attn_out = ops::linear(&z.reshape((b, t, h * dh))?, &w.o_proj, None)?;
                return Ok((attn_out, LayerKv { k, v }));
            }
            AttentionMask::Ops(mask) => mask.as_ref(),
        };
        let total = k.dim(2)?;
        // Grouped-query attention without copying keys: fold the query heads that share a
        // key/value head into the query-position axis.
        let rep = h / g;
        let qg = q.reshape((b, g, rep * t, dh))?;
        let scores = (qg.matmul(&k.t()?.contiguous()?)? * scale)?.reshape((b, h, t, total))?;
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let pattern = ops::softmax_last(&scores, ctx.differentiable)?;
        let pattern = hook.on(HookPoint::Pattern(l), pattern)?;
        let z = pattern
            .reshape((b, g, rep * t, total))?
            .matmul(&v)?
            .reshape((b, h, t, dh))?;
        let z = hook.on(HookPoint::Z(l), z.transpose(1, 2)?.contiguous()?)?;
        let attn_out = ops::linear(&z.reshape((b, t, h * dh))?, &w.o_proj, None)?;
        Ok((attn_out, LayerKv { k, v }))
    }

    fn unembed(
        &self,
        resid: &Tensor,
        mode: Unembed,
        subset: Option<&[u32]>,
        hook: &mut dyn Hook,
    ) -> Result<Option<Tensor>> {
        let x = match mode {
            Unembed::None => return Ok(None),
            Unembed::All => resid.clone(),
            Unembed::Last => {
                let p = resid.dim(1)?;
                resid.narrow(1, p - 1, 1)?
            }
        };
        let normalized = hook.on(
            HookPoint::LnFinalNormalized,
            ops::rms_normalize(&x, self.cfg.rms_norm_eps)?,
        )?;
        let normed = normalized.broadcast_mul(&self.weights.norm)?;
        let logits = match subset {
            None => ops::linear(&normed, &self.weights.lm_head, None)?,
            Some(ids) => {
                let idx = Tensor::new(ids, &self.device)?;
                ops::linear(&normed, &self.weights.lm_head.index_select(&idx, 0)?, None)?
            }
        };
        Ok(Some(logits.to_dtype(DType::F32)?))
    }

    /// Per-head contributions to `attn_out`: `z[.., h, :] @ o_proj[:, h]^T`, shape
    /// `[batch, positions, n_heads, d_model]` (TransformerLens' `hook_result`).
    pub fn head_results(&self, layer: usize, z: &Tensor) -> Result<Tensor> {
        let (b, t, h, dh) = z.dims4()?;
        let d = self.cfg.d_model;
        // o_proj [d, h*dh] -> [h, dh, d]
        let wo = self.weights.layers[layer]
            .o_proj
            .reshape((d, h, dh))?
            .permute((1, 2, 0))?
            .contiguous()?;
        let zt = z.permute((2, 0, 1, 3))?.reshape((h, b * t, dh))?;
        let out = zt.matmul(&wo)?; // [h, b*t, d]
        Ok(out
            .reshape((h, b, t, d))?
            .permute((1, 2, 0, 3))?
            .contiguous()?)
    }
}

struct BlockContext<'a> {
    tables: &'a RopeTables,
    mask: &'a AttentionMask,
    past: Option<&'a LayerKv>,
    differentiable: bool,
}

/// The attention's additive mask (none when every key is visible), in the form its path
/// takes: values for the CPU kernels of [`crate::small_attention`] (plain f32 forwards on
/// the CPU), a tensor for candle's ops (the others).
enum AttentionMask {
    Kernels(Option<Vec<f32>>),
    Ops(Option<Tensor>),
}
