//! Errors of the benchmark readers and of scoring; each names the file and line, the subset
//! or the option at fault.

/// Why a benchmark could not be read, selected or scored.
#[derive(Debug, thiserror::Error)]
pub enum BenchmarkError {
    /// A benchmark file could not be read.
    #[error("cannot read benchmark file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A line (or CSV record starting on that line) of a benchmark file is malformed.
    #[error("{path}:{line}: {message}")]
    Parse {
        path: String,
        line: usize,
        message: String,
    },

    /// A subset the benchmark does not have.
    #[error("benchmark {benchmark}: unknown subset {subset:?}; known: {known}")]
    UnknownSubset {
        benchmark: String,
        subset: String,
        known: String,
    },

    /// An option value is invalid for this benchmark.
    #[error("benchmark {benchmark}: option {field}: {message}")]
    BadOption {
        benchmark: String,
        field: String,
        message: String,
    },

    /// Nothing is left to score.
    #[error("benchmark {benchmark} has no pairs: {reason}")]
    Empty { benchmark: String, reason: String },

    /// A sentence could not be tokenized, or has nothing to score.
    #[error("pair {id:?}: sentence {text:?}: {message}")]
    Sentence {
        id: String,
        text: String,
        message: String,
    },

    /// The model failed.
    #[error(transparent)]
    Engine(#[from] crate::EngineError),
}

impl From<patchsweep_model::ModelError> for BenchmarkError {
    fn from(e: patchsweep_model::ModelError) -> Self {
        Self::Engine(e.into())
    }
}

impl From<candle_core::Error> for BenchmarkError {
    fn from(e: candle_core::Error) -> Self {
        Self::Engine(e.into())
    }
}
