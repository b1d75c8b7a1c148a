//! Loading a model and its tokenizer from one model-spec string.

mod folder;
mod gguf;
mod hub;
mod spec;

use candle_core::{DType, Device};

pub use folder::{folder_files, FolderFiles, SafetensorsSource};
pub use gguf::GgufSource;
pub use hub::hub_files;
pub use spec::ModelSpec;

use crate::error::{ModelError, Result};
use crate::tokenizer::Tokenizer;
use crate::transformer::HookedTransformer;
use crate::weights::Weights;

/// Where and how to hold the weights.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub device: Device,
    pub dtype: DType,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            dtype: DType::F32,
        }
    }
}

impl LoadOptions {
    /// `cpu`, `cuda` or `cuda:N`, and `f32`, `f16` or `bf16` (half types on CUDA only).
    pub fn parse(device: &str, dtype: &str) -> Result<Self> {
        let device = parse_device(device)?;
        let dtype = match dtype {
            "f32" => DType::F32,
            "f16" => DType::F16,
            "bf16" => DType::BF16,
            other => {
                return Err(ModelError::Device {
                    device: format!("{device:?}"),
                    reason: format!("dtype {other:?} is not one of f32, f16, bf16"),
                })
            }
        };
        if device.is_cpu() && dtype != DType::F32 {
            return Err(ModelError::Device {
                device: "cpu".into(),
                reason: "only f32 is supported on the CPU".into(),
            });
        }
        Ok(Self { device, dtype })
    }
}

fn parse_device(s: &str) -> Result<Device> {
    let err = |reason: String| ModelError::Device {
        device: s.to_string(),
        reason,
    };
    match s {
        "cpu" => Ok(Device::Cpu),
        _ => {
            let ordinal = match s.strip_prefix("cuda") {
                Some("") => 0,
                Some(rest) => rest
                    .strip_prefix(':')
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| err("expected cpu, cuda or cuda:N".into()))?,
                None => return Err(err("expected cpu, cuda or cuda:N".into())),
            };
            if !candle_core::utils::cuda_is_available() {
                return Err(err(
                    "this build has no CUDA support (build with --features cuda)".into(),
                ));
            }
            Device::new_cuda(ordinal).map_err(|e| err(e.to_string()))
        }
    }
}

/// A model with its tokenizer, and the spec it came from.
pub struct LoadedModel {
    pub spec: ModelSpec,
    pub model: HookedTransformer,
    pub tokenizer: Tokenizer,
}

/// Loads any model spec: a folder, a GGUF file, or a Hub repository.
pub fn load(spec: &ModelSpec, opts: &LoadOptions) -> Result<LoadedModel> {
    let (cfg, weights, tokenizer) = match spec {
        ModelSpec::Gguf(path) => {
            let mut src = GgufSource::open(path)?;
            let cfg = src.config()?;
            let tokenizer = src.tokenizer()?;
            let weights = Weights::load(&cfg, &mut src, &opts.device, opts.dtype)?;
            (cfg, weights, tokenizer)
        }
        ModelSpec::Folder(dir) => load_files(&folder_files(dir)?, opts)?,
        ModelSpec::Hub { repo, revision } => {
            load_files(&hub_files(repo, revision.as_deref())?, opts)?
        }
    };
    Ok(LoadedModel {
        spec: spec.clone(),
        model: HookedTransformer::new(cfg, weights, opts.device.clone(), opts.dtype),
        tokenizer,
    })
}

fn load_files(
    files: &FolderFiles,
    opts: &LoadOptions,
) -> Result<(crate::ModelConfig, Weights, Tokenizer)> {
    let cfg = folder::read_config(&files.config)?;
    let tokenizer = Tokenizer::from_file(&files.tokenizer, cfg.bos_token_id)?;
    let mut src = SafetensorsSource::open(&files.weights)?;
    let weights = Weights::load(&cfg, &mut src, &opts.device, opts.dtype)?;
    Ok((cfg, weights, tokenizer))
}
