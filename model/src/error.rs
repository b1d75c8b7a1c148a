//! Errors of the model runtime, named after the step that failed.

use std::path::PathBuf;

/// Architectures this runtime implements (HF `architectures[0]` values).
pub const SUPPORTED_ARCHITECTURES: &[&str] =
    &["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"];

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model spec {spec:?} is not understood: {reason}")]
    BadSpec { spec: String, reason: String },

    #[error("missing file: {path}{}", demo_hint(path))]
    MissingFile { path: PathBuf },

    #[error(
        "model {spec:?}: there is no file or folder {spec:?} here, but there is a folder {dir:?} \
         (a typo in the path?), so {spec:?} was looked up as a Hugging Face repository and the \
         Hub answered: {hub}. For a local model give an existing path (`./{spec}` or \
         `dir:{spec}`, `gguf:FILE`); for the Hub, `hf:{spec}`"
    )]
    NotLocalNorHub {
        spec: String,
        dir: String,
        hub: String,
    },

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

/// Where the README's demo model is missing, the command that fetches it.
fn demo_hint(path: &std::path::Path) -> &'static str {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.starts_with("SmolLM2-135M-Instruct") {
        " (the demo model: run scripts/fetch-demo-model.sh to fetch it)"
    } else {
        ""
    }
}

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
