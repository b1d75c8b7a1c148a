//! Errors of the model runtime, named after the step that failed.

use std::path::PathBuf;

/// Architectures this runtime implements (HF `architectures[0]` values).
pub const SUPPORTED_ARCHITECTURES: &[&str] =
    &["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"];

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model spec {spec:?} is not understood: {reason}")]
    BadSpec { spec: String, reason: String },

    #[error("missing file: {path}")]
    MissingFile { path: PathBuf },

    #[error("corrupt or truncated file {path}: {reason}")]
    CorruptFile { path: PathBuf, reason: String },

    #[error("invalid model config in {origin}: {reason}")]
    Config { origin: String, reason: String },

    #[error(
        "unsupported architecture {found:?}; supported: {}",
        SUPPORTED_ARCHITECTURES.join(", ")
    )]
    UnsupportedArchitecture { found: String },

    #[error("tensor {tensor} missing from {origin}")]
    MissingTensor { tensor: String, origin: String },

    #[error("tensor {tensor} has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error("tokenizer from {origin}: {reason}")]
    Tokenizer { origin: String, reason: String },

    #[error("Hugging Face Hub, repo {repo}: {reason}")]
    Hub { repo: String, reason: String },

    #[error("bad hook {hook:?}: {reason}")]
    BadHook { hook: String, reason: String },

    #[error("bad input: {0}")]
    BadInput(String),

    #[error("device {device:?}: {reason}")]
    Device { device: String, reason: String },

    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, ModelError>;

/// A candle error's message without the backtrace candle appends when `RUST_BACKTRACE` is set.
pub fn candle_message(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => candle_message(inner),
        candle_core::Error::WithPath { inner, path } => {
            format!("{}: {}", path.display(), candle_message(inner))
        }
        other => other.to_string(),
    }
}
