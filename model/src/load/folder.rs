//! Hugging Face model folders: config.json, model.safetensors or sharded safetensors with
//! model.safetensors.index.json, and tokenizer.json.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{Device, Tensor};

use crate::config::{HfConfig, ModelConfig};
use crate::error::{candle_message, ModelError, Result};
use crate::weights::TensorSource;

pub(crate) fn require(path: PathBuf) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(ModelError::MissingFile { path })
    }
}

pub(crate) fn read_config(path: &Path) -> Result<ModelConfig> {
    let text = std::fs::read_to_string(require(path.to_path_buf())?).map_err(|e| {
        ModelError::CorruptFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })?;
    let origin = path.display().to_string();
    HfConfig::from_json(&text, &origin)?.to_model_config(&origin)
}

/// The safetensors files of a checkpoint: the shards named by the index, else the single file.
pub(crate) fn weight_files(
    index: Option<&Path>,
    single: impl FnOnce() -> Result<PathBuf>,
    shard: impl Fn(&str) -> Result<PathBuf>,
) -> Result<Vec<PathBuf>> {
    let Some(index) = index else {
        return Ok(vec![single()?]);
    };
    let corrupt = |reason: String| ModelError::CorruptFile {
        path: index.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(index).map_err(|e| corrupt(e.to_string()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| corrupt("no weight_map object".into()))?;
    let names: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
    names.into_iter().map(shard).collect()
}

/// Tensors from one or more safetensors files, memory-mapped.
pub struct SafetensorsSource {
    files: MmapedSafetensors,
    names: HashSet<String>,
    origin: String,
}

impl SafetensorsSource {
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        for p in paths {
            require(p.clone())?;
        }
        // Safety: the files are mapped read-only; a file changed on disk while mapped is the
        // caller's problem, as with every memory-mapped checkpoint loader.
        let files =
            unsafe { MmapedSafetensors::multi(paths) }.map_err(|e| ModelError::CorruptFile {
                path: paths.first().cloned().unwrap_or_default(),
                reason: format!(
                    "not a valid safetensors file (truncated or damaged?): {}",
                    candle_message(&e)
                ),
            })?;
        let names = files.tensors().into_iter().map(|(n, _)| n).collect();
        let origin = paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Self {
            files,
            names,
            origin,
        })
    }
}

impl TensorSource for SafetensorsSource {
    fn load(&mut self, name: &str, device: &Device) -> Result<Option<Tensor>> {
        if !self.names.contains(name) {
            return Ok(None);
        }
        self.files
            .load(name, device)
            .map(Some)
            .map_err(|e| ModelError::CorruptFile {
                path: PathBuf::from(&self.origin),
                reason: format!("tensor {name}: {}", candle_message(&e)),
            })
    }

    fn origin(&self) -> String {
        self.origin.clone()
    }
}

/// Paths of a local model folder.
pub struct FolderFiles {
    pub config: PathBuf,
    pub tokenizer: PathBuf,
    pub weights: Vec<PathBuf>,
}

pub fn folder_files(dir: &Path) -> Result<FolderFiles> {
    if !dir.is_dir() {
        return Err(ModelError::MissingFile {
            path: dir.to_path_buf(),
        });
    }
    let index = dir.join("model.safetensors.index.json");
    let weights = weight_files(
        index.is_file().then_some(index.as_path()),
        || require(dir.join("model.safetensors")),
        |name| require(dir.join(name)),
    )?;
    Ok(FolderFiles {
        config: require(dir.join("config.json"))?,
        tokenizer: require(dir.join("tokenizer.json"))?,
        weights,
    })
}
