//! Tokenizing pairs and labelling positions.
//!
//! # Position labels
//! Labels come from the clean prompt, token by token (`offsets` are byte spans in it):
//! 1. an added BOS (position 0, zero-width span, the tokenizer's BOS id) is `bos`;
//! 2. a token whose span overlaps a slot's span gets the slot's name (the slot it overlaps
//!    most; on a tie the earlier one), so every token of a multi-token filler is labelled;
//! 3. a token that ends at or before the start of the first slot is `prefix`;
//! 4. any other token gets the name of the nearest *fixed* slot (fewest bytes away; on a tie
//!    the earlier one), or `other` if there is none. A slot counts as fixed for a pair when it
//!    covers at least one token and its tokens have the same ids in both prompts (the verb of
//!    "The nurse said that" / "The man said that"; not the subject);
//! 5. the final token is `end`, whatever the rules above gave it.
//!
//! Pairs without slots (JSONL) get an implicit slot `diff`: the positions whose token ids
//! differ between the prompts. So "The nurse said that" / "The man said that" read
//! `prefix, diff, other, other` → `prefix, diff, other, end`.

use std::ops::Range;

use patchsweep_model::Tokenizer;

use super::{DatasetError, Dropped, DroppedPair, PairSpec, TokenizedPair};

/// Tokenizes every pair (`prepend_bos: None` follows the tokenizer), dropping pairs whose
/// prompts differ in token count (`token_count_mismatch`) or tokenize identically
/// (`identical_prompts`); the rest keep their order. Errors if the tokenizer fails or a
/// prompt has no tokens at all.
pub fn tokenize_pairs(
    pairs: &[PairSpec],
    tok: &Tokenizer,
    prepend_bos: Option<bool>,
) -> Result<(Vec<TokenizedPair>, Dropped), DatasetError> {
    let mut kept = Vec::with_capacity(pairs.len());
    let mut dropped = Dropped::default();
    for pair in pairs {
        let encode_err = |text: &str| {
            let (id, text) = (pair.id.clone(), text.to_string());
            move |source| DatasetError::Tokenizer {
                id,
                text,
                source: Box::new(source),
            }
        };
        let (clean_ids, offsets) = tok
            .encode_with_offsets(&pair.clean, prepend_bos)
            .map_err(encode_err(&pair.clean))?;
        let corrupt_ids = tok
            .encode(&pair.corrupt, prepend_bos)
            .map_err(encode_err(&pair.corrupt))?;
        for (which, ids, text) in [
            ("clean", &clean_ids, &pair.clean),
            ("corrupted", &corrupt_ids, &pair.corrupt),
        ] {
            if ids.is_empty() {
                return Err(DatasetError::EmptyPrompt {
                    id: pair.id.clone(),
                    which,
                    text: text.clone(),
                });
            }
        }
        let reason = if clean_ids.len() != corrupt_ids.len() {
            Some(Dropped::TOKEN_COUNT_MISMATCH)
        } else if clean_ids == corrupt_ids {
            Some(Dropped::IDENTICAL_PROMPTS)
        } else {
            None
        };
        if let Some(reason) = reason {
            tracing::debug!(pair = %pair.id, reason, "dropping prompt pair");
            dropped.add(DroppedPair {
                id: pair.id.clone(),
                reason: reason.to_string(),
                clean: pair.clean.clone(),
                corrupt: pair.corrupt.clone(),
                clean_tokens: clean_ids.len(),
                corrupt_tokens: corrupt_ids.len(),
            });
            continue;
        }
        let bos_added = offsets.first() == Some(&(0, 0))
            && !clean_ids.is_empty()
            && clean_ids.first() == tok.bos_id().as_ref();
        let position_labels =
            position_labels(&clean_ids, &corrupt_ids, &offsets, bos_added, &pair.slots);
        kept.push(TokenizedPair {
            spec: pair.clone(),
            clean_ids,
            corrupt_ids,
            position_labels,
        });
    }
    Ok((kept, dropped))
}

fn overlap(tok: (usize, usize), slot: &Range<usize>) -> usize {
    let (s, e) = tok;
    e.min(slot.end).saturating_sub(s.max(slot.start))
}

fn distance(tok: (usize, usize), slot: &Range<usize>) -> usize {
    let (s, e) = tok;
    slot.start.saturating_sub(e) + s.saturating_sub(slot.end)
}

/// One label per position of the clean prompt, by the rule in the module doc. `clean_ids`,
/// `corrupt_ids` and `offsets` have one entry per position; `bos_added` says position 0 is an
/// added BOS; `slots` are byte ranges of the clean prompt.
pub fn position_labels(
    clean_ids: &[u32],
    corrupt_ids: &[u32],
    offsets: &[(usize, usize)],
    bos_added: bool,
    slots: &[(String, Range<usize>)],
) -> Vec<String> {
    let n = clean_ids.len().min(corrupt_ids.len()).min(offsets.len());
    let is_bos = |p: usize| p == 0 && bos_added;
    let mut labels: Vec<Option<String>> = vec![None; n];
    if slots.is_empty() {
        let differs: Vec<usize> = (0..n)
            .filter(|&p| !is_bos(p) && clean_ids[p] != corrupt_ids[p])
            .collect();
        let first = differs.first().copied().unwrap_or(n);
        for (p, label) in labels.iter_mut().enumerate() {
            *label = Some(
                if is_bos(p) {
                    "bos"
                } else if differs.contains(&p) {
                    "diff"
                } else if p < first {
                    "prefix"
                } else {
                    "other"
                }
                .to_string(),
            );
        }
    } else {
        // Rule 2: the slot each token overlaps most.
        let mut slot_of: Vec<Option<usize>> = vec![None; n];
        for p in (0..n).filter(|&p| !is_bos(p)) {
            let best = slots
                .iter()
                .enumerate()
                .map(|(i, (_, r))| (overlap(offsets[p], r), i))
                .filter(|&(o, _)| o > 0)
                .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            slot_of[p] = best.map(|(_, i)| i);
        }
        let fixed: Vec<bool> = (0..slots.len())
            .map(|i| {
                let mut ps = (0..n).filter(|&p| slot_of[p] == Some(i)).peekable();
                ps.peek().is_some() && ps.all(|p| clean_ids[p] == corrupt_ids[p])
            })
            .collect();
        let first_start = slots.iter().map(|(_, r)| r.start).min().unwrap_or(0);
        for p in 0..n {
            labels[p] = Some(if is_bos(p) {
                "bos".to_string()
            } else if let Some(i) = slot_of[p] {
                slots[i].0.clone()
            } else if offsets[p].1 <= first_start {
                "prefix".to_string()
            } else {
                (0..slots.len())
                    .filter(|&i| fixed[i])
                    .min_by_key(|&i| (distance(offsets[p], &slots[i].1), slots[i].1.start))
                    .map(|i| slots[i].0.clone())
                    .unwrap_or_else(|| "other".to_string())
            });
        }
    }
    let mut out: Vec<String> = labels
        .into_iter()
        .map(|l| l.unwrap_or_else(|| "other".into()))
        .collect();
    if let Some(last) = out.last_mut() {
        *last = "end".to_string();
    }
    out
}

#[cfg(test)]
#[path = "tokenize_tests.rs"]
mod tests;
