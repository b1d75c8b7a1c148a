//! Errors of the debiasing engine, named after the step that failed.

use std::path::PathBuf;

use patchsweep_model::error::candle_message;
use patchsweep_model::ModelError;

use crate::error::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum DebiasError {
    #[error("debias config, {field}: {reason}")]
    Config { field: String, reason: String },

    #[error("component {spec:?}: {reason}")]
    Component { spec: String, reason: String },

    #[error("effect row {row}: {reason}")]
    AggregatedEffect { row: usize, reason: String },

    #[error("held-out split: {0}")]
    Split(String),

    #[error("random control: {0}")]
    Control(String),

    #[error("steering: {0}")]
    Steering(String),

    #[error("fine-tuning: {0}")]
    Finetune(String),

    /// A fine-tuning corpus or swap list (`line`: 1-based, when one line is at fault).
    #[error("corpus {file}{}: {reason}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Corpus {
        file: String,
        line: Option<usize>,
        reason: String,
    },

    #[error("deltas file {path}: {reason}")]
    Deltas { path: PathBuf, reason: String },

    #[error("evaluation: {0}")]
    Evaluation(String),

    #[error(transparent)]
    Engine(#[from] EngineError),

    #[error(transparent)]
    Model(#[from] ModelError),

    #[error("tensor operation failed: {}", candle_message(.0))]
    Tensor(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, DebiasError>;

/// A config error on `field`.
pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> DebiasError {
    DebiasError::Config {
        field: field.into(),
        reason: reason.into(),
    }
}
