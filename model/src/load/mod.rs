//! Loading a model and its tokenizer from one model-spec string.

mod download_lines;
mod folder;
mod gguf;
mod hub;
mod spec;

use candle_core::{DType, Device};

pub use folder::{folder_files, FolderFiles, SafetensorsSource};
pub use gguf::GgufSource;
pub use hub::{hub_dataset_files, hub_files};
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
    /// Checks the names as [`LoadOptions::parse`] does, without opening the device: a
    /// coordinator without a GPU validates specs meant for GPU workers.
    pub fn check(device: &str, dtype: &str) -> Result<()> {
        let cpu = device_ordinal(device)?.is_none();
        let dtype = parse_dtype(device, dtype)?;
        if cpu && dtype != DType::F32 {
            return Err(ModelError::Device {
                device: "cpu".into(),
                reason: "only f32 is supported on the CPU".into(),
            });
        }
        Ok(())
    }

    /// `cpu`, `cuda` or `cuda:N`, and `f32`, `f16` or `bf16` (half types on CUDA only).
    pub fn parse(device: &str, dtype: &str) -> Result<Self> {
        Self::check(device, dtype)?;
        let dtype = parse_dtype(device, dtype)?;
        let device = parse_device(device)?;
        Ok(Self { device, dtype })
    }
}

fn parse_dtype(device: &str, dtype: &str) -> Result<DType> {
    match dtype {
        "f32" => Ok(DType::F32),
        "f16" => Ok(DType::F16),
        "bf16" => Ok(DType::BF16),
        other => Err(ModelError::Device {
            device: device.to_string(),
            reason: format!("dtype {other:?} is not one of f32, f16, bf16"),
        }),
    }
}

/// `cpu` → `None`, `cuda` / `cuda:N` → the ordinal; nothing is opened.
fn device_ordinal(s: &str) -> Result<Option<usize>> {
    let err = || ModelError::Device {
        device: s.to_string(),
        reason: "expected cpu, cuda or cuda:N".into(),
    };
    match s {
        "cpu" => Ok(None),
        _ => match s.strip_prefix("cuda") {
            Some("") => Ok(Some(0)),
            Some(rest) => rest
                .strip_prefix(':')
                .and_then(|n| n.parse::<usize>().ok())
                .map(Some)
                .ok_or_else(err),
            None => Err(err()),
        },
    }
}

fn parse_device(s: &str) -> Result<Device> {
    let err = |reason: String| ModelError::Device {
        device: s.to_string(),
        reason,
    };
    match device_ordinal(s)? {
        None => Ok(Device::Cpu),
        Some(ordinal) => {
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
            let files = hub_files(repo, revision.as_deref()).map_err(|e| local_hint(repo, e))?;
            load_files(&files, opts)?
        }
    };
    Ok(LoadedModel {
        spec: spec.clone(),
        model: HookedTransformer::new(cfg, weights, opts.device.clone(), opts.dtype),
        tokenizer,
    })
}

/// A bare `ORG/NAME` whose `ORG` is a local folder was most likely meant as a local path:
/// the Hub's error then says so (`models/nope` must not answer with a DNS error only).
fn local_hint(repo: &str, hub: ModelError) -> ModelError {
    let Some((dir, _)) = repo.split_once('/') else {
        return hub;
    };
    if !std::path::Path::new(dir).is_dir() {
        return hub;
    }
    let hub = match hub {
        ModelError::Hub { reason, .. } => reason,
        other => other.to_string(),
    };
    ModelError::NotLocalNorHub {
        spec: repo.to_string(),
        dir: dir.to_string(),
        hub,
    }
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
