//! patchsweep's model runtime: a LLaMA-family transformer on candle with TransformerLens
//! hook points. It knows nothing of gRPC, SQL or the CLI.
//!
//! # Layout
//! - [`config`]: `config.json` mirror and the normalized [`ModelConfig`].
//! - [`weights`]: the weight tensors under Hugging Face names, loaded from a [`TensorSource`].
//! - [`transformer`]: [`HookedTransformer::forward`], the one forward pass (hooks, start
//!   layer, stop layer, cached keys/values, last-position unembedding).
//! - [`hooks`]: [`HookPoint`] names and shapes, [`ActivationCache`], [`Patch`]/[`Patcher`].
//! - [`grad`]: metric gradients at hook points ([`HookedTransformer::gradients`]).
//! - [`load`]: the model-spec string and the folder, Hub and GGUF loaders.
//! - [`device_memory`]: free and peak memory of the device a model lives on (CUDA).
//! - [`tokenizer`]: BOS handling on top of `tokenizers`.
//! - [`rope`], [`ops`]: numerics shared by the forward pass; `small_matmul`: the CPU kernel
//!   for products with few rows (batch-1 forwards), where GEMM is bound by packing;
//!   `small_attention`: the CPU attention kernels for short contexts over many rows;
//!   `fused_swiglu`: the MLP's `silu(gate) * up` in one CPU pass; `fused_rms_norm`: RMSNorm
//!   rows across threads; `gemm_xwt`: larger products through `gemm` without zeroing the
//!   output first; `par_fill`: the kernels' outputs, zeroed on the threads that fill them.
//! - [`cpu_pool`]: how long candle's CPU threads spin between operations (set by `main`), and
//!   the matrix products' thread count, read once.

pub mod config;
pub mod cpu_pool;
pub mod device_memory;
pub mod error;
mod fused_rms_norm;
mod fused_swiglu;
mod gemm_xwt;
pub mod grad;
pub mod hooks;
pub mod load;
pub mod ops;
mod par_fill;
pub mod rope;
mod small_attention;
mod small_matmul;
pub mod tokenizer;
pub mod transformer;
pub mod weights;

pub use config::{Architecture, ModelConfig};
pub use error::{ModelError, Result};
pub use grad::Gradients;
pub use hooks::{
    ActivationCache, Hook, HookPoint, MaskedPatch, NoHook, Patch, PatchTarget, Patcher,
};
pub use load::{load, LoadOptions, LoadedModel, ModelSpec};
pub use tokenizer::Tokenizer;
pub use transformer::{Forward, ForwardOutput, HookedTransformer, Input, Join, LayerKv, Unembed};
pub use weights::{TensorSource, Weights};
