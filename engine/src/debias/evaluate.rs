//! Measurements before and after an intervention.
//!
//! # Bias, on the held-out pairs
//! With `ld(u) = reduce(logit[positive]) - reduce(logit[negative])` at the last position of
//! prompt `u` (each pair's own answer sets, e.g. " he" vs " she", oriented per pair when
//! `[metric] orient = "stereotype"`):
//! - `mean_logit_diff`: mean of `ld(clean)` over distinct clean prompts (a neutral
//!   profession's prompt, the clean side of both its "man" and its "woman" pair, counts once);
//! - `mean_abs_logit_diff`: mean of `|ld(clean)|` over the same prompts, the size of the
//!   preference whatever its sign;
//! - `stereotype_win_share`: share of the distinct clean prompts with a stereotyped side (see
//!   [`crate::stereotype`]: the answer a `stereotyped_answer` label names, as household pairs
//!   carry, else professions labelled `male` or `female` with gendered answers) whose clean
//!   prompt prefers the stereotyped answer (`ld` strictly on that side);
//! - `total_effect`: Vig et al. (2020)'s total effect of setting the gender,
//!   `y(corrupt) / y(clean) - 1` with `y = p(anti-stereotypical) / p(stereotypical)`
//!   (probabilities summed over each answer set), averaged over the pairs with a stereotyped
//!   side whose counterfactual is an anti-stereotypical swap ("nurse" → "man", "carpenter" →
//!   "woman", as Vig et al.'s set-gender; see [`crate::stereotype::is_anti_stereotypical_swap`]);
//!   pro-stereotypical swaps of the `man`/`woman`/`both` counterfactuals are left out. It is
//!   large when the model's prediction moves a lot between "The nurse" and "The man"; a model
//!   whose clean prompts are already neutral has a smaller one.
//!
//! Each bias figure comes with its n (distinct clean prompts for the means, stereotyped
//! pairs for the share, anti-stereotypical swaps for the total effect) and a 95% interval
//! ([`crate::interval`]: Student's t over the per-prompt or per-pair values, Wilson for the
//! share).
//!
//! # Capability, on the neutral text
//! - `perplexity`: `exp(mean next-token negative log-likelihood)` over every position of
//!   every chunk;
//! - `top1_agreement`: share of positions whose arg-max next token equals the unmodified
//!   model's (1 before any intervention).
//!
//! Their n is the number of chunks, and their 95% intervals are Student's t over the chunks,
//! taken as independent blocks of the text: over the chunks' mean negative log-likelihoods,
//! exponentiated, for the perplexity; over the chunks' shares for the agreement.

use candle_core::{Tensor, D};
use patchsweep_model::{HookedTransformer, Unembed};

use super::batch::{by_length, run_edited, Rows};
use super::edit::Edit;
use super::error::{DebiasError, Result};
use super::split::{AnswerSide, DebiasPair};
use crate::interval::{mean_interval, wilson_interval};
use crate::metric::Reduce;

/// Bias metrics on a set of pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct BiasMetrics {
    pub n_pairs: usize,
    /// Distinct clean prompts (with their answer sets) of the pairs with a stereotyped side:
    /// `stereotype_win_share` averages over these, since a win reads the clean prompt only.
    pub n_stereotyped: usize,
    /// Pairs with a stereotyped side and an anti-stereotypical swap (`total_effect` averages
    /// over these: each pair's swap moves the prediction its own way).
    pub n_anti_swaps: usize,
    /// Distinct clean prompts (the two means average over these).
    pub n_clean_prompts: usize,
    pub mean_logit_diff: f64,
    pub mean_abs_logit_diff: f64,
    pub stereotype_win_share: Option<f64>,
    pub total_effect: Option<f64>,
    /// 95% intervals (see [`crate::interval`]): Student's t for the means (`None` below two
    /// values), Wilson's for the share.
    pub mean_logit_diff_ci: Option<(f64, f64)>,
    pub mean_abs_logit_diff_ci: Option<(f64, f64)>,
    pub stereotype_win_share_ci: Option<(f64, f64)>,
    pub total_effect_ci: Option<(f64, f64)>,
    /// The values the figures average, in the pairs' order: `ld(clean)` per distinct clean
    /// prompt (the two means), 1 or 0 per stereotyped clean prompt (won or not: the share)
    /// and the total effect per anti-stereotypical swap. Two model states measured on the
    /// same pairs have them unit for unit (the control's per-prompt interval needs that).
    pub clean_logit_diffs: Vec<f64>,
    pub stereotype_wins: Vec<f64>,
    pub total_effects: Vec<f64>,
}

/// The answer-set readings of one prompt: `ld` and `log p(pos)/p(neg)`.
#[derive(Debug, Clone, Copy)]
struct Reading {
    logit_diff: f64,
    log_odds: f64,
}

fn lse(xs: &[f64]) -> f64 {
    let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Readings of the last-position logits of `ids[i]` for each pair `i`.
fn readings(
    model: &HookedTransformer,
    edits: &[Edit],
    pairs: &[&DebiasPair],
    clean: bool,
    max_batch: usize,
) -> Result<Vec<Reading>> {
    let ids: Vec<&[u32]> = pairs
        .iter()
        .map(|p| {
            if clean {
                p.input.clean_ids.as_slice()
            } else {
                p.input.corrupt_ids.as_slice()
            }
        })
        .collect();
    let lens: Vec<usize> = ids.iter().map(|r| r.len()).collect();
    let mut out = vec![
        Reading {
            logit_diff: 0.0,
            log_odds: 0.0
        };
        pairs.len()
    ];
    for chunk in by_length(&lens, max_batch) {
        let rows = Rows {
            ids: chunk.iter().map(|&i| ids[i]).collect(),
            labels: chunk
                .iter()
                .map(|&i| Some(pairs[i].input.position_labels.as_slice()))
                .collect(),
        };
        let run = run_edited(model, edits, &rows, Unembed::Last, &[])?;
        let logits = run.logits.squeeze(1)?;
        for (r, &i) in chunk.iter().enumerate() {
            let m = &pairs[i].input.metric;
            let row = logits.get(r)?;
            let take = |set: &[u32]| -> Result<Vec<f64>> {
                let idx = Tensor::new(set, row.device())?;
                let v: Vec<f32> = row.index_select(&idx, 0)?.to_vec1()?;
                Ok(v.into_iter().map(f64::from).collect())
            };
            let (pos, neg) = (take(&m.positive)?, take(&m.negative)?);
            if pos.is_empty() || neg.is_empty() {
                return Err(DebiasError::Evaluation(format!(
                    "pair {:?} has an empty answer set",
                    pairs[i].input.id
                )));
            }
            let reduce = |xs: &[f64]| {
                let s: f64 = xs.iter().sum();
                match m.reduce {
                    Reduce::Mean => s / xs.len() as f64,
                    Reduce::Sum => s,
                }
            };
            out[i] = Reading {
                logit_diff: reduce(&pos) - reduce(&neg),
                log_odds: lse(&pos) - lse(&neg),
            };
        }
    }
    Ok(out)
}

/// The clean logit differences the two means average: each distinct clean prompt (with its
/// answer sets) counts once.
fn distinct_clean(pairs: &[&DebiasPair], clean: &[Reading]) -> Vec<f64> {
    let mut seen = std::collections::HashSet::new();
    pairs
        .iter()
        .zip(clean)
        .filter(|(p, _)| {
            let m = &p.input.metric;
            seen.insert((&p.input.clean_ids, &m.positive, &m.negative))
        })
        .map(|(_, r)| r.logit_diff)
        .collect()
}

/// [`BiasMetrics::mean_logit_diff`] alone (only the clean prompts run).
pub fn mean_logit_diff(
    model: &HookedTransformer,
    edits: &[Edit],
    pairs: &[&DebiasPair],
    max_batch: usize,
) -> Result<f64> {
    if pairs.is_empty() {
        return Err(DebiasError::Evaluation("no pairs to evaluate on".into()));
    }
    let clean = readings(model, edits, pairs, true, max_batch)?;
    let distinct = distinct_clean(pairs, &clean);
    Ok(distinct.iter().sum::<f64>() / distinct.len() as f64)
}

/// Bias metrics of `model` with `edits` on `pairs`.
pub fn bias_metrics(
    model: &HookedTransformer,
    edits: &[Edit],
    pairs: &[&DebiasPair],
    max_batch: usize,
) -> Result<BiasMetrics> {
    if pairs.is_empty() {
        return Err(DebiasError::Evaluation("no pairs to evaluate on".into()));
    }
    let clean = readings(model, edits, pairs, true, max_batch)?;
    let corrupt = readings(model, edits, pairs, false, max_batch)?;
    let distinct = distinct_clean(pairs, &clean);
    let (mean_logit_diff, mean_logit_diff_ci) = mean_interval(&distinct);
    let abs: Vec<f64> = distinct.iter().map(|x| x.abs()).collect();
    let (mean_abs_logit_diff, mean_abs_logit_diff_ci) = mean_interval(&abs);
    let mut won = Vec::new();
    // A win reads the clean prompt only: a prompt with its answer sets counts once, however
    // many counterfactuals it has (its pairs would repeat the same outcome).
    let mut seen = std::collections::HashSet::new();
    let mut effects = Vec::new();
    for ((p, c), k) in pairs.iter().zip(&clean).zip(&corrupt) {
        let Some(side) = p.stereotyped else { continue };
        // Sign that turns "toward positive" into "toward the stereotyped answer".
        let s = match side {
            AnswerSide::Positive => 1.0,
            AnswerSide::Negative => -1.0,
        };
        let m = &p.input.metric;
        if seen.insert((&p.input.clean_ids, &m.positive, &m.negative)) {
            won.push(if s * c.logit_diff > 0.0 { 1.0 } else { 0.0 });
        }
        if p.anti_stereotypical_swap {
            // y = p(anti)/p(stereo) = exp(-s * log_odds).
            effects.push((-s * (k.log_odds - c.log_odds)).exp() - 1.0);
        }
    }
    let total = (!effects.is_empty()).then(|| mean_interval(&effects));
    let (wins, n_st) = (won.iter().filter(|&&w| w > 0.0).count(), won.len());
    Ok(BiasMetrics {
        n_pairs: pairs.len(),
        n_stereotyped: n_st,
        n_anti_swaps: effects.len(),
        n_clean_prompts: distinct.len(),
        mean_logit_diff,
        mean_abs_logit_diff,
        stereotype_win_share: (n_st > 0).then(|| wins as f64 / n_st as f64),
        total_effect: total.map(|t| t.0),
        mean_logit_diff_ci,
        mean_abs_logit_diff_ci,
        stereotype_win_share_ci: (n_st > 0).then(|| wilson_interval(wins, n_st)),
        total_effect_ci: total.and_then(|t| t.1),
        clean_logit_diffs: distinct,
        stereotype_wins: won,
        total_effects: effects,
    })
}

/// Perplexity and arg-max next tokens on the neutral chunks.
#[derive(Debug, Clone, PartialEq)]
pub struct CapabilityRun {
    pub perplexity: f64,
    /// The arg-max next token at every position of every chunk, chunk after chunk.
    pub top1: Vec<u32>,
    /// Next-token predictions scored.
    pub predictions: usize,
    /// Each chunk's mean next-token negative log-likelihood (chunks of 2 tokens or more):
    /// the units of the perplexity's interval.
    pub chunk_nll: Vec<f64>,
    /// Each chunk's number of positions, in `top1`'s order.
    pub chunk_positions: Vec<usize>,
}

impl CapabilityRun {
    /// A 95% interval of the perplexity: Student's t over the chunks' mean negative
    /// log-likelihoods, exponentiated. The chunks are consecutive pieces of one text, taken as
    /// independent blocks (as a block bootstrap would); `None` below two chunks.
    pub fn perplexity_interval(&self) -> Option<(f64, f64)> {
        mean_interval(&self.chunk_nll)
            .1
            .map(|(lo, hi)| (lo.exp(), hi.exp()))
    }

    /// The share of each chunk's positions whose arg-max token equals `base`'s there (`base`:
    /// the unmodified model's run on the same chunks).
    pub fn top1_agreement_by_chunk(&self, base: &[u32]) -> Result<Vec<f64>> {
        same_positions(&self.top1, base)?;
        let mut at = 0;
        Ok(self
            .chunk_positions
            .iter()
            .map(|&n| {
                let (a, b) = (&self.top1[at..at + n], &base[at..at + n]);
                at += n;
                a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / n.max(1) as f64
            })
            .collect())
    }
}

/// Runs the neutral chunks with `edits` (at every position: chunks carry no labels).
pub fn capability(
    model: &HookedTransformer,
    edits: &[Edit],
    chunks: &[Vec<u32>],
    max_batch: usize,
) -> Result<CapabilityRun> {
    if chunks.is_empty() {
        return Err(DebiasError::Evaluation("no neutral chunks".into()));
    }
    let lens: Vec<usize> = chunks.iter().map(Vec::len).collect();
    let mut top1: Vec<Vec<u32>> = vec![Vec::new(); chunks.len()];
    let mut chunk_nll: Vec<Option<f64>> = vec![None; chunks.len()];
    let (mut nll, mut count) = (0f64, 0usize);
    for group in by_length(&lens, max_batch) {
        let rows = Rows {
            ids: group.iter().map(|&i| chunks[i].as_slice()).collect(),
            labels: vec![None; group.len()],
        };
        let p = lens[group[0]];
        let logits = run_edited(model, edits, &rows, Unembed::All, &[])?.logits;
        let argmax: Vec<Vec<u32>> = logits.argmax(D::Minus1)?.to_vec2()?;
        for (r, &i) in group.iter().enumerate() {
            top1[i] = argmax[r].clone();
        }
        if p < 2 {
            continue;
        }
        let lsm = candle_nn::ops::log_softmax(&logits.narrow(1, 0, p - 1)?, D::Minus1)?;
        let targets: Vec<Vec<u32>> = group.iter().map(|&i| chunks[i][1..].to_vec()).collect();
        let targets = Tensor::new(targets, logits.device())?.unsqueeze(2)?;
        let picked: Vec<Vec<f32>> = lsm.gather(&targets, 2)?.squeeze(2)?.to_vec2()?;
        for (row, &i) in picked.iter().zip(&group) {
            let sum: f64 = row.iter().map(|&x| f64::from(x)).sum();
            nll -= sum;
            count += row.len();
            chunk_nll[i] = Some(-sum / row.len() as f64);
        }
    }
    if count == 0 {
        return Err(DebiasError::Evaluation(
            "the neutral chunks hold no next-token prediction".into(),
        ));
    }
    Ok(CapabilityRun {
        perplexity: (nll / count as f64).exp(),
        chunk_positions: top1.iter().map(Vec::len).collect(),
        top1: top1.concat(),
        predictions: count,
        chunk_nll: chunk_nll.into_iter().flatten().collect(),
    })
}

/// Share of positions where two runs' arg-max tokens agree.
pub fn top1_agreement(a: &[u32], b: &[u32]) -> Result<f64> {
    same_positions(a, b)?;
    Ok(a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64)
}

/// Two runs' arg-max tokens can be compared: the same positive number of positions.
fn same_positions(a: &[u32], b: &[u32]) -> Result<()> {
    if a.len() != b.len() || a.is_empty() {
        return Err(DebiasError::Evaluation(format!(
            "top-1 agreement of runs with {} and {} positions",
            a.len(),
            b.len()
        )));
    }
    Ok(())
}
