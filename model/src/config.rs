//! Model configuration: a serde mirror of Hugging Face `config.json` (field names equal to
//! the file's keys) and the normalized [`ModelConfig`] the runtime uses.

use serde::Deserialize;

use crate::error::{ModelError, Result};

/// Which member of the LLaMA family; decides defaults such as q/k/v biases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Mistral,
    Qwen2,
}

impl Architecture {
    pub fn from_hf_name(name: &str) -> Result<Self> {
        match name {
            "LlamaForCausalLM" => Ok(Self::Llama),
            "MistralForCausalLM" => Ok(Self::Mistral),
            "Qwen2ForCausalLM" => Ok(Self::Qwen2),
            other => Err(ModelError::UnsupportedArchitecture {
                found: other.to_string(),
            }),
        }
    }

    fn from_model_type(model_type: &str) -> Result<Self> {
        match model_type {
            "llama" => Ok(Self::Llama),
            "mistral" => Ok(Self::Mistral),
            "qwen2" => Ok(Self::Qwen2),
            other => Err(ModelError::UnsupportedArchitecture {
                found: format!("model_type {other}"),
            }),
        }
    }
}

/// RoPE frequency scaling, as `rope_scaling` in config.json.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// LLaMA-3.x: low frequencies divided by `factor`, a smooth band in between.
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_max_position_embeddings: usize,
    },
    /// Positions divided by `factor`.
    Linear { factor: f32 },
}

/// The normalized configuration every loader produces.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub d_head: usize,
    pub d_mlp: usize,
    pub vocab_size: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f32,
    pub rope_scaling: Option<RopeScaling>,
    pub tie_word_embeddings: bool,
    pub qkv_bias: bool,
    pub sliding_window: Option<usize>,
    /// Longest sequence the model was trained for (`max_position_embeddings`, GGUF
    /// `context_length`); `None` when the checkpoint does not say. A sliding window does not
    /// lift it: RoPE positions beyond it were never trained.
    pub max_positions: Option<usize>,
    pub bos_token_id: Option<u32>,
}

impl ModelConfig {
    /// Query heads that share one key/value head.
    pub fn gqa_group(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }

    /// Checks the invariants the forward pass relies on.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let fail = |reason: String| {
            Err(ModelError::Config {
                origin: origin.to_string(),
                reason,
            })
        };
        if self.n_layers == 0 || self.d_model == 0 || self.n_heads == 0 || self.vocab_size == 0 {
            return fail("num_hidden_layers, hidden_size, num_attention_heads and vocab_size must be positive".into());
        }
        if self.n_kv_heads == 0 || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return fail(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.n_heads, self.n_kv_heads
            ));
        }
        if self.d_head == 0 || !self.d_head.is_multiple_of(2) {
            return fail(format!(
                "head_dim {} must be even and positive",
                self.d_head
            ));
        }
        if self.sliding_window == Some(0) {
            return fail("sliding_window must be positive".into());
        }
        if self.max_positions == Some(0) {
            return fail("max_position_embeddings must be positive".into());
        }
        Ok(())
    }
}

/// `config.json` as Hugging Face writes it for LLaMA, Mistral and Qwen2.
#[derive(Debug, Clone, Deserialize)]
pub struct HfConfig {
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub model_type: Option<String>,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    pub vocab_size: usize,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub rope_theta: Option<f32>,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// transformers 5 nests theta and scaling here.
    #[serde(default)]
    pub rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    #[serde(default)]
    pub attention_bias: Option<bool>,
    #[serde(default)]
    pub sliding_window: Option<usize>,
    #[serde(default)]
    pub use_sliding_window: Option<bool>,
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    #[serde(default)]
    pub hidden_act: Option<String>,
    #[serde(default)]
    pub mlp_bias: Option<bool>,
    #[serde(default)]
    pub bos_token_id: Option<serde_json::Value>,
}

fn default_eps() -> f64 {
    1e-6
}

impl HfConfig {
    pub fn from_json(text: &str, origin: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| ModelError::Config {
            origin: origin.to_string(),
            reason: e.to_string(),
        })
    }

    pub fn to_model_config(&self, origin: &str) -> Result<ModelConfig> {
        let architecture = match (self.architectures.first(), &self.model_type) {
            (Some(name), _) => Architecture::from_hf_name(name)?,
            (None, Some(t)) => Architecture::from_model_type(t)?,
            (None, None) => {
                return Err(ModelError::Config {
                    origin: origin.to_string(),
                    reason: "neither `architectures` nor `model_type` is set".into(),
                })
            }
        };
        if let Some(act) = &self.hidden_act {
            if act != "silu" {
                return Err(ModelError::Config {
                    origin: origin.to_string(),
                    reason: format!("hidden_act {act:?} is not supported (only \"silu\")"),
                });
            }
        }
        if self.mlp_bias == Some(true) {
            return Err(ModelError::Config {
                origin: origin.to_string(),
                reason: "mlp_bias = true is not supported".into(),
            });
        }
        let rope = self.rope_parameters.as_ref().or(self.rope_scaling.as_ref());
        let rope_theta = self
            .rope_theta
            .or_else(|| {
                self.rope_parameters
                    .as_ref()
                    .and_then(|p| p.get("rope_theta"))
                    .and_then(|v| v.as_f64())
                    .map(|v| v as f32)
            })
            .unwrap_or(10_000.0);
        let rope_scaling = parse_rope_scaling(rope, origin)?;
        let sliding_window = match architecture {
            Architecture::Mistral => self.sliding_window,
            Architecture::Qwen2 if self.use_sliding_window == Some(true) => self.sliding_window,
            _ => None,
        };
        let n_kv_heads = self.num_key_value_heads.unwrap_or(self.num_attention_heads);
        let cfg = ModelConfig {
            architecture,
            n_layers: self.num_hidden_layers,
            d_model: self.hidden_size,
            n_heads: self.num_attention_heads,
            n_kv_heads,
            d_head: self
                .head_dim
                .unwrap_or(self.hidden_size / self.num_attention_heads.max(1)),
            d_mlp: self.intermediate_size,
            vocab_size: self.vocab_size,
            rms_norm_eps: self.rms_norm_eps,
            rope_theta,
            rope_scaling,
            tie_word_embeddings: self.tie_word_embeddings.unwrap_or(false),
            qkv_bias: match architecture {
                Architecture::Qwen2 => true,
                _ => self.attention_bias.unwrap_or(false),
            },
            sliding_window,
            max_positions: self.max_position_embeddings,
            bos_token_id: self
                .bos_token_id
                .as_ref()
                .and_then(|v| v.as_u64())
                .map(|v| v as u32),
        };
        cfg.validate(origin)?;
        Ok(cfg)
    }
}

fn parse_rope_scaling(
    value: Option<&serde_json::Value>,
    origin: &str,
) -> Result<Option<RopeScaling>> {
    let Some(v) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let kind = v
        .get("rope_type")
        .or_else(|| v.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or("default");
    let num = |key: &str| -> Result<f64> {
        v.get(key)
            .and_then(|x| x.as_f64())
            .ok_or_else(|| ModelError::Config {
                origin: origin.to_string(),
                reason: format!("rope_scaling of type {kind} lacks numeric field {key}"),
            })
    };
    match kind {
        "default" => Ok(None),
        "linear" => Ok(Some(RopeScaling::Linear {
            factor: num("factor")? as f32,
        })),
        "llama3" => Ok(Some(RopeScaling::Llama3 {
            factor: num("factor")? as f32,
            low_freq_factor: num("low_freq_factor")? as f32,
            high_freq_factor: num("high_freq_factor")? as f32,
            original_max_position_embeddings: num("original_max_position_embeddings")? as usize,
        })),
        other => Err(ModelError::Config {
            origin: origin.to_string(),
            reason: format!(
                "rope_scaling type {other:?} is not supported (default, linear, llama3)"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA3: &str = r#"{"architectures":["LlamaForCausalLM"],"hidden_size":4096,
      "intermediate_size":14336,"num_hidden_layers":32,"num_attention_heads":32,
      "num_key_value_heads":8,"vocab_size":128256,"rms_norm_eps":1e-5,"rope_theta":500000.0,
      "rope_scaling":{"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
      "original_max_position_embeddings":8192,"rope_type":"llama3"},"bos_token_id":128000}"#;

    #[test]
    fn llama3_config_normalizes() {
        let cfg = HfConfig::from_json(LLAMA3, "test")
            .unwrap()
            .to_model_config("test")
            .unwrap();
        assert_eq!(cfg.d_head, 128);
        assert_eq!(cfg.gqa_group(), 4);
        assert_eq!(cfg.rope_theta, 500000.0);
        assert!(
            matches!(cfg.rope_scaling, Some(RopeScaling::Llama3 { factor, .. }) if factor == 8.0)
        );
        assert_eq!(cfg.bos_token_id, Some(128000));
        assert!(!cfg.qkv_bias && !cfg.tie_word_embeddings);
    }

    #[test]
    fn transformers5_rope_parameters_are_read() {
        let text = r#"{"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":128,
          "num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100,
          "rope_parameters":{"rope_theta":500000.0,"rope_type":"llama3","factor":8.0,
          "low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":16}}"#;
        let cfg = HfConfig::from_json(text, "t")
            .unwrap()
            .to_model_config("t")
            .unwrap();
        assert_eq!(cfg.rope_theta, 500000.0);
        assert!(matches!(
            cfg.rope_scaling,
            Some(RopeScaling::Llama3 {
                original_max_position_embeddings: 16,
                ..
            })
        ));
    }

    #[test]
    fn unknown_architecture_is_named_with_the_supported_list() {
        let text = LLAMA3.replace("LlamaForCausalLM", "GPTNeoXForCausalLM");
        let err = HfConfig::from_json(&text, "t")
            .unwrap()
            .to_model_config("t")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("GPTNeoXForCausalLM"), "{msg}");
        assert!(msg.contains("MistralForCausalLM"), "{msg}");
    }

    #[test]
    fn unsupported_rope_type_is_an_error() {
        let text = LLAMA3.replace("\"llama3\"", "\"yarn\"");
        let err = HfConfig::from_json(&text, "t")
            .unwrap()
            .to_model_config("t")
            .unwrap_err();
        assert!(err.to_string().contains("yarn"));
    }

    #[test]
    fn heads_must_divide() {
        let text = LLAMA3.replace("\"num_key_value_heads\":8", "\"num_key_value_heads\":7");
        let err = HfConfig::from_json(&text, "t")
            .unwrap()
            .to_model_config("t")
            .unwrap_err();
        assert!(err.to_string().contains("num_key_value_heads"));
    }
}
