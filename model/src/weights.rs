//! The weights of a LLaMA-family model, with Hugging Face checkpoint names and shapes.

use candle_core::{DType, Device, Tensor};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};

/// Where tensors come from: a safetensors checkpoint, a GGUF file, or a test fixture.
/// Names are Hugging Face checkpoint keys (`model.layers.0.self_attn.q_proj.weight`).
pub trait TensorSource {
    /// Loads `name`, or `Ok(None)` when the source does not have it.
    fn load(&mut self, name: &str, device: &Device) -> Result<Option<Tensor>>;
    /// Describes the source in error messages.
    fn origin(&self) -> String;
}

/// One decoder block.
#[derive(Debug, Clone)]
pub struct LayerWeights {
    pub input_layernorm: Tensor,
    pub q_proj: Tensor,
    pub k_proj: Tensor,
    pub v_proj: Tensor,
    pub o_proj: Tensor,
    pub q_bias: Option<Tensor>,
    pub k_bias: Option<Tensor>,
    pub v_bias: Option<Tensor>,
    pub post_attention_layernorm: Tensor,
    pub gate_proj: Tensor,
    pub up_proj: Tensor,
    pub down_proj: Tensor,
}

/// The whole model. With tied embeddings `lm_head` is the embedding matrix itself.
#[derive(Debug, Clone)]
pub struct Weights {
    pub embed_tokens: Tensor,
    pub layers: Vec<LayerWeights>,
    pub norm: Tensor,
    pub lm_head: Tensor,
}

struct Loader<'a> {
    source: &'a mut dyn TensorSource,
    device: &'a Device,
    dtype: DType,
}

impl Loader<'_> {
    fn optional(&mut self, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        let Some(t) = self.source.load(name, self.device)? else {
            return Ok(None);
        };
        if t.dims() != shape {
            return Err(ModelError::ShapeMismatch {
                tensor: name.to_string(),
                expected: shape.to_vec(),
                found: t.dims().to_vec(),
            });
        }
        Ok(Some(t.to_dtype(self.dtype)?))
    }

    fn required(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.optional(name, shape)?
            .ok_or_else(|| ModelError::MissingTensor {
                tensor: name.to_string(),
                origin: self.source.origin(),
            })
    }
}

impl Weights {
    /// Loads every tensor the config calls for, checking each shape.
    pub fn load(
        cfg: &ModelConfig,
        source: &mut dyn TensorSource,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let mut ld = Loader {
            source,
            device,
            dtype,
        };
        let (d, dh, v) = (cfg.d_model, cfg.d_head, cfg.vocab_size);
        let (q_out, kv_out) = (cfg.n_heads * dh, cfg.n_kv_heads * dh);
        let embed_tokens = ld.required("model.embed_tokens.weight", &[v, d])?;
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let p = format!("model.layers.{l}");
            let bias = |ld: &mut Loader, name: &str, n: usize| -> Result<Option<Tensor>> {
                if cfg.qkv_bias {
                    ld.required(&format!("{p}.self_attn.{name}.bias"), &[n])
                        .map(Some)
                } else {
                    Ok(None)
                }
            };
            layers.push(LayerWeights {
                input_layernorm: ld.required(&format!("{p}.input_layernorm.weight"), &[d])?,
                q_proj: ld.required(&format!("{p}.self_attn.q_proj.weight"), &[q_out, d])?,
                k_proj: ld.required(&format!("{p}.self_attn.k_proj.weight"), &[kv_out, d])?,
                v_proj: ld.required(&format!("{p}.self_attn.v_proj.weight"), &[kv_out, d])?,
                o_proj: ld.required(&format!("{p}.self_attn.o_proj.weight"), &[d, q_out])?,
                q_bias: bias(&mut ld, "q_proj", q_out)?,
                k_bias: bias(&mut ld, "k_proj", kv_out)?,
                v_bias: bias(&mut ld, "v_proj", kv_out)?,
                post_attention_layernorm: ld
                    .required(&format!("{p}.post_attention_layernorm.weight"), &[d])?,
                gate_proj: ld.required(&format!("{p}.mlp.gate_proj.weight"), &[cfg.d_mlp, d])?,
                up_proj: ld.required(&format!("{p}.mlp.up_proj.weight"), &[cfg.d_mlp, d])?,
                down_proj: ld.required(&format!("{p}.mlp.down_proj.weight"), &[d, cfg.d_mlp])?,
            });
        }
        let norm = ld.required("model.norm.weight", &[d])?;
        let lm_head = if cfg.tie_word_embeddings {
            embed_tokens.clone()
        } else {
            ld.required("lm_head.weight", &[v, d])?
        };
        Ok(Self {
            embed_tokens,
            layers,
            norm,
            lm_head,
        })
    }
}
