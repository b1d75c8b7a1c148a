//! Errors of the patching engine.

use patchsweep_model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("answer word {word:?} is not a single token: it splits into {tokens}")]
    MultiTokenAnswer { word: String, tokens: String },

    #[error("metric: {0}")]
    Metric(String),

    #[error("grid: {0}")]
    Grid(String),

    #[error("generation: {0}")]
    Generation(String),

    #[error(transparent)]
    Model(#[from] ModelError),

    #[error("tensor operation failed: {}", patchsweep_model::error::candle_message(.0))]
    Tensor(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, EngineError>;
