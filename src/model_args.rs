//! The model options of the one-model commands (`logits`, `generate`, `score`): which
//! model, on which device and in which dtype, with which BOS policy; and loading it.

use anyhow::{Context, Result};
use clap::Args;
use patchsweep_model::{load, LoadOptions, LoadedModel, ModelSpec};

#[derive(Args)]
pub struct ModelArgs {
    /// Model: gguf:PATH, hf:ORG/NAME[@REV], or a model folder.
    #[arg(long, env = "PATCHSWEEP_MODEL")]
    pub model: String,
    /// Prepend BOS (true/false); by default the model tokenizer's own behaviour.
    #[arg(long)]
    pub prepend_bos: Option<bool>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu", env = "PATCHSWEEP_DEVICE")]
    pub device: String,
    /// f32, or f16/bf16 on CUDA.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
}

impl ModelArgs {
    /// The model, loaded as the options say (a spinner with the elapsed time meanwhile: a
    /// 7B model takes a while to read, longer to download).
    pub fn load(&self) -> Result<LoadedModel> {
        let spec: ModelSpec = self.model.parse()?;
        let opts = LoadOptions::parse(&self.device, &self.dtype)?;
        crate::progress::spin(&format!("loading model {spec} on {}", self.device), || {
            load(&spec, &opts)
        })
        .with_context(|| format!("loading model {spec}"))
    }
}
