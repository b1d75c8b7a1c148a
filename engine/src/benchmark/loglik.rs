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
//! positions (RoPE) are the same as unpadded.
//!
//! Only the positions that are scored are unembedded: the final residual of a batch's real
//! positions is gathered and unembedded in chunks of [`LoglikOptions::max_unembed_rows`]
//! (padding and, for [`pair_log_likelihoods`], the second sentence's shared prefix never
//! reach the vocabulary projection, the costliest single product of a small model).

use candle_core::{Tensor, D};
use patchsweep_model::{Forward, Hook, HookedTransformer, Input, NoHook, Unembed};

use crate::{EngineError, Result};

/// How sentences are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoglikOptions {
    /// Padded tokens per forward pass (rows × longest row); a longer single row runs alone.
    /// Memory: the activations of that many tokens (a few MB per 1,000 tokens on a small
    /// model), the logits are bounded by `max_unembed_rows`.
    pub max_batch_tokens: usize,
    /// Rows per forward pass at most.
    pub max_batch_rows: usize,
    /// Positions unembedded at once: about `2 × max_unembed_rows × vocab × 4` bytes.
    pub max_unembed_rows: usize,
}

impl Default for LoglikOptions {
    fn default() -> Self {
        Self {
            // Larger batches were slower on a 2-core CPU (4096 tokens: 99 s against 61 s on
            // CrowS-Pairs disability, SmolLM2): the activations leave the cache.
            max_batch_tokens: 1024,
            max_batch_rows: 64,
            max_unembed_rows: 1024,
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
    let from = vec![0; rows.len()];
    let scored = target_log_probs(model, rows, &from, opts, |_, _| Ok(NoHook), &mut |_| {})?;
    Ok(scored.iter().map(|r| sum(r)).collect())
}

/// The two total log-likelihoods of each pair of rows `[a, b]`, each forward pass made with
/// the hook `make_hook(rows, width)` returns. Exact sharing: the targets of `b` inside the
/// token prefix it shares with `a` have the same log-probabilities as `a`'s (same tokens
/// before them, a causal model), so they are taken from `a` and not unembedded twice.
/// `progress` is told how many sentences each batch finished (`2 × pairs.len()` in all).
pub fn pair_log_likelihoods<H, F>(
    model: &HookedTransformer,
    pairs: &[[Vec<u32>; 2]],
    opts: &LoglikOptions,
    make_hook: F,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<[f64; 2]>>
where
    H: Hook,
    F: FnMut(usize, usize) -> Result<H>,
{
    let mut rows = Vec::with_capacity(2 * pairs.len());
    let mut from = Vec::with_capacity(2 * pairs.len());
    for [a, b] in pairs {
        let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        rows.push(a.clone());
        rows.push(b.clone());
        from.push(0);
        // Targets t < common - 1 predict a token of the shared prefix from shared tokens;
        // `a` must have them too (it is at least `common` long).
        from.push(common.saturating_sub(1));
    }
    let scored = target_log_probs(model, &rows, &from, opts, make_hook, progress)?;
    Ok(pairs
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let (a, b) = (&scored[2 * i], &scored[2 * i + 1]);
            let shared = from[2 * i + 1];
            [sum(a), sum(&a[..shared.min(a.len())]) + sum(b)]
        })
        .collect())
}

fn sum(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x)).sum()
}

/// Per row `i`, the log-probabilities of targets `from[i] ..` (target `t` is `ids[t + 1]`
/// given `ids[..= t]`); `progress` is told how many rows each batch finished (rows with
/// nothing to score count at the end), `rows.len()` in all.
fn target_log_probs<H, F>(
    model: &HookedTransformer,
    rows: &[Vec<u32>],
    from: &[usize],
    opts: &LoglikOptions,
    mut make_hook: F,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<f32>>>
where
    H: Hook,
    F: FnMut(usize, usize) -> Result<H>,
{
    if let Some(i) = rows.iter().position(|r| r.is_empty()) {
        return Err(EngineError::Metric(format!(
            "sentence {i} has no tokens: nothing to score"
        )));
    }
    let mut out = vec![Vec::new(); rows.len()];
    let mut order: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].len() >= 2 && from[i] + 1 < rows[i].len())
        .collect();
    order.sort_by_key(|&i| std::cmp::Reverse(rows[i].len()));
    let mut start = 0;
    while start < order.len() {
        let width = rows[order[start]].len();
        let fit = (opts.max_batch_tokens / width).clamp(1, opts.max_batch_rows.max(1));
        let batch = &order[start..(start + fit).min(order.len())];
        let mut hook = make_hook(batch.len(), width)?;
        let scored = batch_log_probs(model, rows, from, batch, width, opts, &mut hook)?;
        for (&i, values) in batch.iter().zip(scored) {
            out[i] = values;
        }
        start += batch.len();
        progress(batch.len());
    }
    if order.len() < rows.len() {
        progress(rows.len() - order.len());
    }
    Ok(out)
}

/// One forward pass over `batch` (indices into `rows`), every row padded to `width`; the
/// scored positions unembedded in chunks.
fn batch_log_probs(
    model: &HookedTransformer,
    rows: &[Vec<u32>],
    from: &[usize],
    batch: &[usize],
    width: usize,
    opts: &LoglikOptions,
    hook: &mut dyn Hook,
) -> Result<Vec<Vec<f32>>> {
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
    let out = model.forward(
        Input::Tokens(&tokens),
        hook,
        Forward {
            unembed: Unembed::None,
            ..Forward::default()
        },
    )?;
    let d = out.residual.dim(2)?;
    let resid = out.residual.reshape((batch.len() * width, d))?;
    // (flat position, target id) of every scored position, row by row.
    let mut positions = Vec::new();
    let mut targets = Vec::new();
    for (r, &i) in batch.iter().enumerate() {
        for t in from[i]..rows[i].len() - 1 {
            positions.push((r * width + t) as u32);
            targets.push(rows[i][t + 1]);
        }
    }
    let mut picked: Vec<f32> = Vec::with_capacity(positions.len());
    let chunk = opts.max_unembed_rows.max(1);
    for (pos, tgt) in positions.chunks(chunk).zip(targets.chunks(chunk)) {
        let idx = Tensor::new(pos, resid.device())?;
        let gathered = resid.index_select(&idx, 0)?.unsqueeze(0)?;
        let logits = model
            .forward(
                Input::Residual {
                    layer: model.cfg.n_layers,
                    resid_pre: &gathered,
                },
                &mut NoHook,
                Forward::default(),
            )?
            .logits
            .ok_or_else(|| EngineError::Metric("the unembedding returned no logits".into()))?
            .squeeze(0)?;
        let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let tgt = Tensor::new(tgt, resid.device())?.unsqueeze(1)?;
        picked.extend(log_probs.gather(&tgt, 1)?.squeeze(1)?.to_vec1::<f32>()?);
    }
    let mut values = picked.into_iter();
    Ok(batch
        .iter()
        .map(|&i| values.by_ref().take(rows[i].len() - 1 - from[i]).collect())
        .collect())
}
