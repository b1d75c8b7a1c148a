//! Sentence log-likelihoods, batched.
//!
//! A sentence's total log-likelihood is `Σ_{t ≥ 1} log p(ids[t] | ids[..t])`: every token
//! after the first is scored given everything before it; the first token has no prefix and
//! is not scored. When a BOS token is prepended (the model's tokenizer does so itself, or
//! `prepend_bos = true`), the BOS is that unscored first token, so every token of the text is
//! scored. Sums are taken in f64 over f32 log-softmax values, as transformers computes them.
//!
//! Batching: sentences are sorted by token count (longest first) and cut into batches of at
//! most [`LoglikOptions::max_batch_tokens`] padded tokens; shorter rows are padded on the
//! right. Padding on the right is exact for a causal model: a real position attends only to
//! itself and earlier positions, so tokens after a sentence's end never reach its scores, and
//! positions (RoPE) are the same as unpadded. The padded positions' scores are dropped.

use candle_core::{Tensor, D};
use patchsweep_model::{Forward, HookedTransformer, Input, NoHook};

use crate::{EngineError, Result};

/// How sentences are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoglikOptions {
    /// Padded tokens per forward pass (rows × longest row); a longer single row runs alone.
    /// Memory: about `2 × max_batch_tokens × vocab × 4` bytes of logits.
    pub max_batch_tokens: usize,
    /// Rows per forward pass at most.
    pub max_batch_rows: usize,
}

impl Default for LoglikOptions {
    fn default() -> Self {
        Self {
            max_batch_tokens: 1024,
            max_batch_rows: 64,
        }
    }
}

/// The total log-likelihood of each row of token ids (see the module doc), in row order.
/// A row of one token scores 0 (nothing follows its first token); an empty row is an error.
pub fn sentence_log_likelihoods(
    model: &HookedTransformer,
    rows: &[Vec<u32>],
    opts: &LoglikOptions,
) -> Result<Vec<f64>> {
    if let Some(i) = rows.iter().position(|r| r.is_empty()) {
        return Err(EngineError::Metric(format!(
            "sentence {i} has no tokens: nothing to score"
        )));
    }
    let mut order: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].len() >= 2).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(rows[i].len()));
    let mut out = vec![0.0; rows.len()];
    let mut start = 0;
    while start < order.len() {
        let width = rows[order[start]].len();
        let fit = (opts.max_batch_tokens / width).clamp(1, opts.max_batch_rows.max(1));
        let batch = &order[start..(start + fit).min(order.len())];
        let scored = batch_log_likelihoods(model, rows, batch, width)?;
        for (&i, value) in batch.iter().zip(scored) {
            out[i] = value;
        }
        start += batch.len();
    }
    Ok(out)
}

/// One forward pass over `batch` (indices into `rows`), every row padded to `width`.
fn batch_log_likelihoods(
    model: &HookedTransformer,
    rows: &[Vec<u32>],
    batch: &[usize],
    width: usize,
) -> Result<Vec<f64>> {
    let padded: Vec<Vec<u32>> = batch
        .iter()
        .map(|&i| {
            let row = &rows[i];
            let mut p = row.clone();
            p.resize(width, row[row.len() - 1]);
            p
        })
        .collect();
    let tokens = model.tokens_tensor(&padded)?;
    let logits = model
        .forward(Input::Tokens(&tokens), &mut NoHook, Forward::default())?
        .logits
        .ok_or_else(|| EngineError::Metric("the forward pass returned no logits".into()))?;
    let log_probs = candle_nn::ops::log_softmax(&logits.narrow(1, 0, width - 1)?, D::Minus1)?;
    let targets: Vec<u32> = padded.iter().flat_map(|r| r[1..].to_vec()).collect();
    let targets = Tensor::from_vec(targets, (batch.len(), width - 1, 1), model.device())?;
    let picked: Vec<Vec<f32>> = log_probs.gather(&targets, 2)?.squeeze(2)?.to_vec2()?;
    Ok(batch
        .iter()
        .zip(picked)
        .map(|(&i, row)| row[..rows[i].len() - 1].iter().map(|&x| f64::from(x)).sum())
        .collect())
}
