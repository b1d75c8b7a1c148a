//! The neutral text set for the capability cost: plain English prose written for this
//! project (rivers, bread, weather, libraries, bridges, …; no people's gender), split into
//! chunks of the model's tokens.

use patchsweep_model::Tokenizer;

use super::error::{DebiasError, Result};

/// `engine/data/neutral.txt`, about 2,800 words (roughly 3,500 tokens for SmolLM2).
pub const NEUTRAL_TEXT: &str = include_str!("../../data/neutral.txt");

/// Consecutive chunks of `chunk_tokens` tokens of `text` (the last, shorter one is kept
/// when it has at least 2 tokens); `prepend_bos` as for prompts (`None`: the tokenizer's
/// own behaviour), applied to every chunk; at most `max_chunks` chunks.
pub fn neutral_chunks(
    tok: &Tokenizer,
    text: &str,
    chunk_tokens: usize,
    max_chunks: Option<usize>,
    prepend_bos: Option<bool>,
) -> Result<Vec<Vec<u32>>> {
    if chunk_tokens < 2 {
        return Err(DebiasError::Evaluation(
            "neutral chunks need at least 2 tokens each".into(),
        ));
    }
    let ids = tok.encode(text, Some(false))?;
    let bos = match prepend_bos {
        Some(true) => Some(tok.bos_id().ok_or_else(|| {
            DebiasError::Evaluation("prepend_bos is set but the model has no BOS token".into())
        })?),
        Some(false) => None,
        None if tok.adds_bos() => tok.bos_id(),
        None => None,
    };
    let body = chunk_tokens - usize::from(bos.is_some());
    let chunks: Vec<Vec<u32>> = ids
        .chunks(body.max(1))
        .filter(|c| c.len() + usize::from(bos.is_some()) >= 2)
        .take(max_chunks.unwrap_or(usize::MAX))
        .map(|c| bos.into_iter().chain(c.iter().copied()).collect())
        .collect();
    if chunks.is_empty() {
        return Err(DebiasError::Evaluation(
            "the neutral text gives no chunk of at least 2 tokens".into(),
        ));
    }
    Ok(chunks)
}
