//! patchsweep's patching engine: prompt-pair datasets, bias metrics, and activation and
//! attribution patching over layers, positions, heads and neurons. It runs on the model
//! runtime and knows nothing of gRPC, SQL or the CLI.
//!
//! # Layout
//! - [`dataset`]: built-in and custom prompt-pair datasets, tokenization, position labels.
//! - [`metric`]: logit/log-prob differences, odds ratio, normalized effect.
//! - [`stereotype`]: a pair's stereotyped answer side, per-pair orientation (Vig's `y`),
//!   anti-stereotypical swaps.
//! - [`grid`]: components, sites, cells (one measurement each) and the grid that expands to them.
//! - [`selection`]: pathways chosen as the top k of another experiment's ranking.
//! - [`runs`]: the cached clean/corrupted runs of each pair.
//! - [`activation`]: activation patching, fast batched path; [`oracle`]: the naive reference.
//! - [`attribution`]: attribution patching from one backward pass.
//! - [`lens`]: the logit lens, the metric read from each block's output.
//! - [`experiment`]: one experiment over many pairs, effects with baselines and normalization.
//! - [`generate`]: greedy generation with a patch at the prompt's positions (the
//!   generation check).
//! - [`memory`]: the memory a piece of work needs, estimated before it runs.
//! - [`benchmark`]: CrowS-Pairs, WinoBias and Professions readers and the sentence-preference
//!   score (batched sentence log-likelihoods, Wilson intervals).
//! - [`debias`]: targeted interventions on located components, evaluated on held-out pairs
//!   and for capability cost.

pub mod activation;
pub mod attribution;
pub mod benchmark;
pub mod dataset;
pub mod debias;
pub mod error;
pub mod experiment;
pub mod generate;
pub mod grid;
pub mod interval;
pub mod lens;
pub mod memory;
pub mod metric;
pub mod oracle;
pub mod runs;
pub mod selection;
mod stacked;
pub mod stereotype;

pub use error::{EngineError, Result};
