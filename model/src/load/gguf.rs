//! GGUF files (llama.cpp's format): configuration from the metadata, tensors dequantized to
//! the runtime dtype, and the tokenizer rebuilt from `tokenizer.ggml.*`.
//!
//! llama.cpp stores the q/k projections of `llama`-architecture models with the rows of each
//! head interleaved for its RoPE kernel; they are put back into Hugging Face order here, so
//! hook values and numerics match transformers.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::{decoders, pre_tokenizers, processors, AddedToken};

use crate::config::{Architecture, ModelConfig};
use crate::error::{candle_message, ModelError, Result};
use crate::tokenizer::Tokenizer;
use crate::weights::TensorSource;

pub struct GgufSource {
    path: PathBuf,
    reader: BufReader<File>,
    content: Content,
    arch: String,
    n_heads: usize,
    n_kv_heads: usize,
    /// On the CPU, every tensor dequantized at the first `load` (in parallel), by GGUF name,
    /// until `load` takes it.
    dequantized: Option<HashMap<String, Tensor>>,
}

fn corrupt(path: &Path, reason: impl std::fmt::Display) -> ModelError {
    ModelError::CorruptFile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The file starts with the GGUF magic. Errors name the file but never show its bytes
/// (a model path may name any file the worker can read).
fn check_magic(reader: &mut BufReader<File>, path: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut magic = [0u8; 4];
    let read = reader.read_exact(&mut magic);
    if read.is_err() || &magic != b"GGUF" {
        return Err(corrupt(
            path,
            "not a GGUF file (it does not start with the GGUF magic)",
        ));
    }
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|e| corrupt(path, e))?;
    Ok(())
}

impl GgufSource {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|_| ModelError::MissingFile {
            path: path.to_path_buf(),
        })?;
        let kind = file.metadata().map_err(|e| corrupt(path, e))?.file_type();
        if !kind.is_file() {
            return Err(corrupt(
                path,
                "not a regular file (a GGUF model must be one)",
            ));
        }
        let mut reader = BufReader::new(file);
        check_magic(&mut reader, path)?;
        let content = Content::read(&mut reader).map_err(|e| {
            corrupt(
                path,
                format!("not a readable GGUF file: {}", candle_message(&e)),
            )
        })?;
        let file_len = std::fs::metadata(path).map_err(|e| corrupt(path, e))?.len();
        // A truncated download keeps a valid header; check every tensor lies inside the file.
        for (name, info) in &content.tensor_infos {
            let bytes = info.shape.elem_count() / info.ggml_dtype.block_size()
                * info.ggml_dtype.type_size();
            let end = content.tensor_data_offset + info.offset + bytes as u64;
            if end > file_len {
                return Err(corrupt(
                    path,
                    format!("truncated: tensor {name} ends at byte {end} but the file has {file_len} bytes"),
                ));
            }
        }
        let arch = meta_str(&content, "general.architecture")
            .map_err(|e| corrupt(path, e))?
            .to_string();
        let mut src = Self {
            path: path.to_path_buf(),
            reader,
            content,
            arch,
            n_heads: 0,
            n_kv_heads: 0,
            dequantized: None,
        };
        src.n_heads = src.meta_usize("attention.head_count")?;
        src.n_kv_heads = src
            .meta_usize("attention.head_count_kv")
            .unwrap_or(src.n_heads);
        Ok(src)
    }

    fn read(&mut self, gguf: &str, device: &Device) -> Result<QTensor> {
        self.content
            .tensor(&mut self.reader, gguf, device)
            .map_err(|e| corrupt(&self.path, format!("tensor {gguf}: {}", candle_message(&e))))
    }

    /// Every tensor of the file dequantized, a few at a time read (in file order) and then
    /// dequantized on all threads (sequentially, SmolLM2's load spent most of its time
    /// dequantizing): the file's quantized tensors are never all held at once.
    fn dequantize_all(&mut self, device: &Device) -> Result<HashMap<String, Tensor>> {
        let mut names: Vec<String> = self.content.tensor_infos.keys().cloned().collect();
        names.sort_by_key(|n| self.content.tensor_infos[n].offset);
        let window = 2 * rayon::current_num_threads().max(1);
        let mut out = HashMap::with_capacity(names.len());
        for batch in names.chunks(window) {
            let quantized = batch
                .iter()
                .map(|name| Ok((name.clone(), self.read(name, device)?)))
                .collect::<Result<Vec<_>>>()?;
            let tensors = quantized
                .into_par_iter()
                .map(|(name, q)| Ok((name, q.dequantize(device)?)))
                .collect::<Result<Vec<_>>>()?;
            out.extend(tensors);
        }
        Ok(out)
    }

    fn meta(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(&format!("{}.{key}", self.arch))
    }

    fn meta_usize(&self, key: &str) -> Result<usize> {
        let full = format!("{}.{key}", self.arch);
        let v = self
            .meta(key)
            .ok_or_else(|| corrupt(&self.path, format!("metadata {full} is missing")))?;
        v.to_u64()
            .map(|x| x as usize)
            .or_else(|_| v.to_u32().map(|x| x as usize))
            .map_err(|e| corrupt(&self.path, format!("metadata {full}: {e}")))
    }

    fn meta_f64(&self, key: &str) -> Option<f64> {
        let v = self.meta(key)?;
        v.to_f32().map(f64::from).or_else(|_| v.to_f64()).ok()
    }

    /// The model configuration from `{arch}.*` metadata.
    pub fn config(&self) -> Result<ModelConfig> {
        let architecture = match self.arch.as_str() {
            "llama" => Architecture::Llama,
            "mistral" => Architecture::Mistral,
            "qwen2" => Architecture::Qwen2,
            other => {
                return Err(ModelError::UnsupportedArchitecture {
                    found: format!("GGUF architecture {other}"),
                })
            }
        };
        if let Some(Value::String(kind)) = self.meta("rope.scaling.type") {
            if kind != "none" {
                return Err(ModelError::Config {
                    origin: self.path.display().to_string(),
                    reason: format!("GGUF rope scaling {kind:?} is not supported; load the Hugging Face folder instead"),
                });
            }
        }
        let d_model = self.meta_usize("embedding_length")?;
        let vocab_size = match self.content.tensor_infos.get("token_embd.weight") {
            Some(info) => info.shape.dims()[0],
            None => {
                return Err(ModelError::MissingTensor {
                    tensor: "token_embd.weight".into(),
                    origin: self.path.display().to_string(),
                })
            }
        };
        let cfg = ModelConfig {
            architecture,
            n_layers: self.meta_usize("block_count")?,
            d_model,
            n_heads: self.n_heads,
            n_kv_heads: self.n_kv_heads,
            d_head: self
                .meta_usize("attention.key_length")
                .unwrap_or(d_model / self.n_heads.max(1)),
            d_mlp: self.meta_usize("feed_forward_length")?,
            vocab_size,
            rms_norm_eps: self
                .meta_f64("attention.layer_norm_rms_epsilon")
                .unwrap_or(1e-6),
            rope_theta: self.meta_f64("rope.freq_base").unwrap_or(10_000.0) as f32,
            rope_scaling: None,
            tie_word_embeddings: !self.content.tensor_infos.contains_key("output.weight"),
            qkv_bias: self.content.tensor_infos.contains_key("blk.0.attn_q.bias"),
            sliding_window: self.meta_usize("attention.sliding_window").ok(),
            max_positions: self.meta_usize("context_length").ok(),
            bos_token_id: self
                .content
                .metadata
                .get("tokenizer.ggml.bos_token_id")
                .and_then(|v| v.to_u32().ok()),
        };
        cfg.validate(&self.path.display().to_string())?;
        Ok(cfg)
    }

    /// GGUF name of a Hugging Face checkpoint key, and the head count to un-interleave with.
    fn gguf_name(&self, hf: &str) -> Option<(String, Option<usize>)> {
        let fixed = match hf {
            "model.embed_tokens.weight" => Some("token_embd.weight"),
            "model.norm.weight" => Some("output_norm.weight"),
            "lm_head.weight" => Some("output.weight"),
            _ => None,
        };
        if let Some(n) = fixed {
            return Some((n.to_string(), None));
        }
        let rest = hf.strip_prefix("model.layers.")?;
        let (layer, key) = rest.split_once('.')?;
        let permute = self.arch == "llama";
        let (name, heads) = match key {
            "input_layernorm.weight" => ("attn_norm.weight", None),
            "post_attention_layernorm.weight" => ("ffn_norm.weight", None),
            "self_attn.q_proj.weight" => ("attn_q.weight", permute.then_some(self.n_heads)),
            "self_attn.k_proj.weight" => ("attn_k.weight", permute.then_some(self.n_kv_heads)),
            "self_attn.v_proj.weight" => ("attn_v.weight", None),
            "self_attn.o_proj.weight" => ("attn_output.weight", None),
            "self_attn.q_proj.bias" => ("attn_q.bias", permute.then_some(self.n_heads)),
            "self_attn.k_proj.bias" => ("attn_k.bias", permute.then_some(self.n_kv_heads)),
            "self_attn.v_proj.bias" => ("attn_v.bias", None),
            "mlp.gate_proj.weight" => ("ffn_gate.weight", None),
            "mlp.up_proj.weight" => ("ffn_up.weight", None),
            "mlp.down_proj.weight" => ("ffn_down.weight", None),
            _ => return None,
        };
        Some((format!("blk.{layer}.{name}"), heads))
    }

    /// The tokenizer stored in the metadata (byte-level BPE, `tokenizer.ggml.model = gpt2`).
    pub fn tokenizer(&self) -> Result<Tokenizer> {
        build_tokenizer(&self.content.metadata, &self.path)
    }
}

/// Undoes llama.cpp's per-head interleaving of q/k rows: `[heads, 2, d/2]` → `[heads, d/2, 2]`.
fn unpermute(t: &Tensor, heads: usize) -> Result<Tensor> {
    let dims = t.dims().to_vec();
    let rows = dims[0];
    let half = rows / heads / 2;
    let mut shape = vec![heads, half, 2];
    shape.extend_from_slice(&dims[1..]);
    Ok(t.reshape(shape)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?)
}

impl TensorSource for GgufSource {
    fn load(&mut self, name: &str, device: &Device) -> Result<Option<Tensor>> {
        let Some((gguf, heads)) = self.gguf_name(name) else {
            return Ok(None);
        };
        if !self.content.tensor_infos.contains_key(&gguf) {
            return Ok(None);
        }
        if device.is_cpu() && self.dequantized.is_none() {
            self.dequantized = Some(self.dequantize_all(device)?);
        }
        let t = match self.dequantized.as_mut().and_then(|d| d.remove(&gguf)) {
            Some(t) => t,
            None => self.read(&gguf, device)?.dequantize(device)?,
        };
        Ok(Some(match heads {
            Some(h) => unpermute(&t, h)?,
            None => t,
        }))
    }

    fn origin(&self) -> String {
        self.path.display().to_string()
    }
}

fn meta_str<'a>(content: &'a Content, key: &str) -> std::result::Result<&'a str, String> {
    match content.metadata.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("metadata {key} is not a string")),
        None => Err(format!("metadata {key} is missing")),
    }
}

fn meta_strings(
    meta: &HashMap<String, Value>,
    key: &str,
) -> std::result::Result<Vec<String>, String> {
    let v = meta
        .get(key)
        .ok_or_else(|| format!("metadata {key} is missing"))?;
    let list = v.to_vec().map_err(|e| format!("metadata {key}: {e}"))?;
    list.iter()
        .map(|x| {
            x.to_string()
                .cloned()
                .map_err(|e| format!("metadata {key}: {e}"))
        })
        .collect()
}

/// Rebuilds the byte-level BPE tokenizer the way transformers' GGUF converter does.
fn build_tokenizer(meta: &HashMap<String, Value>, path: &Path) -> Result<Tokenizer> {
    let origin = path.display().to_string();
    let err = |reason: String| ModelError::Tokenizer {
        origin: origin.clone(),
        reason,
    };
    let model = match meta.get("tokenizer.ggml.model") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(err("metadata tokenizer.ggml.model is missing".into())),
    };
    if model != "gpt2" {
        return Err(err(format!(
            "GGUF tokenizer model {model:?} is not supported (only byte-level BPE, \"gpt2\"); \
             load the Hugging Face folder or Hub id, which carries tokenizer.json"
        )));
    }
    let tokens = meta_strings(meta, "tokenizer.ggml.tokens").map_err(err)?;
    let merges: Vec<(String, String)> = meta_strings(meta, "tokenizer.ggml.merges")
        .map_err(err)?
        .into_iter()
        .filter_map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect();
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| err(format!("cannot build BPE: {e}")))?;
    let mut tk = tokenizers::Tokenizer::new(bpe);
    tk.with_pre_tokenizer(Some(pre_tokenizers::byte_level::ByteLevel::new(
        false, true, true,
    )));
    tk.with_decoder(Some(decoders::byte_level::ByteLevel::default()));
    tk.with_post_processor(Some(processors::byte_level::ByteLevel::new(
        true, false, true,
    )));
    let types: Vec<i64> = meta
        .get("tokenizer.ggml.token_type")
        .and_then(|v| v.to_vec().ok())
        .map(|l| {
            l.iter()
                .map(|x| x.to_i32().map(i64::from).unwrap_or(1))
                .collect()
        })
        .unwrap_or_default();
    // Control (3) and user-defined (4) tokens match as whole special tokens.
    let special: Vec<AddedToken> = types
        .iter()
        .enumerate()
        .filter(|(_, t)| **t == 3 || **t == 4)
        .map(|(i, _)| AddedToken::from(tokens[i].clone(), true))
        .collect();
    tk.add_special_tokens(&special);
    let bos = meta
        .get("tokenizer.ggml.bos_token_id")
        .and_then(|v| v.to_u32().ok());
    let add_bos = matches!(
        meta.get("tokenizer.ggml.add_bos_token"),
        Some(Value::Bool(true))
    );
    if add_bos {
        if let Some(b) = bos {
            let bos_text = tokens.get(b as usize).cloned().unwrap_or_default();
            let template = processors::template::TemplateProcessing::builder()
                .try_single(format!("{bos_text} $A"))
                .and_then(|t| {
                    t.special_tokens(vec![(bos_text.clone(), b)])
                        .build()
                        .map_err(|e| e.to_string())
                })
                .map_err(|e| err(format!("BOS template: {e}")))?;
            tk.with_post_processor(Some(template));
        }
    }
    Tokenizer::new(tk, bos, &origin)
}
