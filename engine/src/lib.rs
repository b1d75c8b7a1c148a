//! patchsweep's patching engine: prompt-pair datasets, bias metrics, and activation and
//! attribution patching over layers, positions, heads and neurons. It runs on the model
//! runtime and knows nothing of gRPC, SQL or the CLI.
//!
//! # Layout
//! - [`dataset`]: built-in and custom prompt-pair datasets, tokenization, position labels.

pub mod dataset;
