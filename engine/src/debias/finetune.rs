//! Targeted fine-tuning with counterfactual data augmentation (CDA).
//!
//! # Data
//! Every selection-split clean prompt ("The nurse said that") is paired with every answer
//! word of both sides of the metric (" he", " she"): the sentence the model would complete
//! stereotypically and its gender-swapped counterpart appear equally often. Only the answer
//! token at the prompt's last position is scored, so nothing else in the prompt is learned.
//!
//! # Loss
//! The mean over examples of `-log q(answer | prompt)`, where `q` is, by
//! [`CdaLoss`](super::config::CdaLoss):
//! - `full_vocab` (default): the softmax over the whole vocabulary, i.e. ordinary
//!   next-token cross-entropy. For one prompt with answers he/she its value is
//!   `-½ (log p_he + log p_she) = -log(p_he + p_she) + ½ H2` where `H2 = -(log r + log(1-r))`
//!   depends only on the split `r = p_he / (p_he + p_she)` (minimal at `r = ½`). So it has two
//!   parts: the bias part (`H2`), and the **pronoun mass** part, which falls as the model puts
//!   more probability on the answer words whatever their ratio. Training can thus lower the
//!   loss by making " he"/" she" more likely after every prompt — a change in the model's
//!   behaviour on unrelated text that the bias metrics do not see (logit differences are
//!   blind to it), and that perplexity on neutral text only partly shows.
//! - `answer_set`: the softmax over the pair's answer words only (positive ∪ negative set).
//!   Its value depends only on the answers' logit differences, so it measures the bias part
//!   alone: minimal (`ln 2` for he/she) exactly when the model has no preference, and
//!   unchanged when both answers gain probability together.
//!
//! # Corpus sentences
//! With a corpus ([`super::corpus`]) the examples are whole sentences and the loss is the
//! causal-LM loss: the mean over every predicted token of the batch of
//! `-log p(token | prefix)`, for every token after the first (after the BOS token when the
//! model prepends one). Sentences of a batch are right-padded to the longest and the padded
//! positions are left out of the mean; causal attention keeps a sentence's own positions
//! blind to its padding, so padding changes nothing else.
//!
//! # Training
//! Only the deltas of the parameters the selected components own (see [`super::deltas`])
//! are variables: for `mlp_out L` the layer's `gate_proj`, `up_proj` and `down_proj`; for
//! `attn_out L` the whole `o_proj`; for a head only its columns of `o_proj` (its path into
//! the residual stream; its `q`/`k`/`v` rows stay, as `k`/`v` are shared by a group of
//! heads in grouped-query attention). AdamW (candle-nn) updates them; the example order
//! comes from the seed.
//! The base model is never modified: every step builds a tuned copy that shares all other
//! tensors with it.

use std::collections::BTreeMap;

use candle_core::{Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use patchsweep_model::{Forward, HookedTransformer, Input, NoHook, Unembed};

use super::batch::by_length;
use super::config::{CdaLoss, FinetuneConfig};
use super::deltas::{compose_weights, tuned_keys, TunedKey};
use super::error::{DebiasError, Result};
use super::rng::SeededRng;
use super::split::DebiasPair;
use super::target::Target;

/// One training example: a prompt and the token that should follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdaExample {
    pub ids: Vec<u32>,
    pub target: u32,
    /// Every answer token of the pair (both sides, `target` among them): what the
    /// `answer_set` loss normalises over.
    pub answers: Vec<u32>,
}

/// The CDA examples of `pairs`: each clean prompt with each answer token of both sides.
pub fn cda_examples(pairs: &[&DebiasPair]) -> Vec<CdaExample> {
    pairs
        .iter()
        .flat_map(|p| {
            let m = &p.input.metric;
            let mut answers: Vec<u32> = m.positive.iter().chain(&m.negative).copied().collect();
            answers.sort_unstable();
            answers.dedup();
            m.positive
                .iter()
                .chain(&m.negative)
                .map(|&target| CdaExample {
                    ids: p.input.clean_ids.clone(),
                    target,
                    answers: answers.clone(),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What fine-tuning produced.
#[derive(Debug, Clone)]
pub struct FinetuneOutcome {
    /// The learned deltas (tuned = base + delta).
    pub deltas: BTreeMap<TunedKey, Tensor>,
    /// The training loss at each step (before that step's update).
    pub losses: Vec<f32>,
}

/// Mean CDA loss of last-position `logits` `[rows, vocab]` for `examples` (one per row),
/// normalised as `loss` says (see the module doc); differentiable.
pub fn cda_loss(logits: &Tensor, examples: &[&CdaExample], loss: CdaLoss) -> Result<Tensor> {
    let dev = logits.device();
    match loss {
        CdaLoss::FullVocab => {
            let targets: Vec<u32> = examples.iter().map(|e| e.target).collect();
            let targets = Tensor::new(targets.as_slice(), dev)?;
            Ok(candle_nn::loss::cross_entropy(logits, &targets)?)
        }
        CdaLoss::AnswerSet => {
            let mut total: Option<Tensor> = None;
            for (r, e) in examples.iter().enumerate() {
                let at = e
                    .answers
                    .iter()
                    .position(|&a| a == e.target)
                    .ok_or_else(|| {
                        DebiasError::Finetune(format!(
                            "target {} is not among the answers {:?}",
                            e.target, e.answers
                        ))
                    })?;
                let idx = Tensor::new(e.answers.as_slice(), dev)?;
                let picked = logits.get(r)?.index_select(&idx, 0)?;
                let lsm = candle_nn::ops::log_softmax(&picked, D::Minus1)?;
                let nll = lsm.get(at)?.neg()?;
                total = Some(match total {
                    Some(t) => (t + nll)?,
                    None => nll,
                });
            }
            let total = total.ok_or_else(|| DebiasError::Finetune("an empty batch".into()))?;
            Ok((total / examples.len() as f64)?)
        }
    }
}

/// Mean loss of the targets of `batch` under `model` (differentiable).
fn batch_loss(
    model: &HookedTransformer,
    examples: &[CdaExample],
    batch: &[usize],
    loss: CdaLoss,
) -> Result<Tensor> {
    let lens: Vec<usize> = batch.iter().map(|&i| examples[i].ids.len()).collect();
    let mut total: Option<Tensor> = None;
    for group in by_length(&lens, usize::MAX) {
        let rows: Vec<Vec<u32>> = group
            .iter()
            .map(|&g| examples[batch[g]].ids.clone())
            .collect();
        let chosen: Vec<&CdaExample> = group.iter().map(|&g| &examples[batch[g]]).collect();
        let tokens = model.tokens_tensor(&rows)?;
        let out = model.forward(
            Input::Tokens(&tokens),
            &mut NoHook,
            Forward {
                unembed: Unembed::Last,
                differentiable: true,
                ..Forward::default()
            },
        )?;
        let logits = out
            .logits
            .ok_or_else(|| DebiasError::Finetune("the forward pass returned no logits".into()))?
            .squeeze(1)?;
        let ce = (cda_loss(&logits, &chosen, loss)? * (group.len() as f64 / batch.len() as f64))?;
        total = Some(match total {
            Some(t) => (t + ce)?,
            None => ce,
        });
    }
    total.ok_or_else(|| DebiasError::Finetune("an empty batch".into()))
}

/// One training step done, as `on_step` callbacks see it.
#[derive(Debug, Clone, Copy)]
pub struct FinetuneStep {
    /// Steps done (1-based: the step just finished).
    pub step: usize,
    pub steps: usize,
    pub loss: f32,
    /// Since training started.
    pub elapsed: std::time::Duration,
}

impl FinetuneStep {
    /// Logs a progress line at every tenth of the steps and at the last (the fine-tuning of
    /// the selected components: a control set's would repeat it once per set).
    pub fn log_at_tenths(&self) {
        let every = (self.steps / 10).max(1);
        if self.step.is_multiple_of(every) || self.step == self.steps {
            let per_step = self.elapsed.as_secs_f64() / self.step as f64;
            tracing::info!(
                "fine-tuning: step {}/{}, loss {:.4}, {per_step:.2} s/step, {:.0} s left",
                self.step,
                self.steps,
                self.loss,
                per_step * (self.steps - self.step) as f64
            );
        }
    }
}

/// Fine-tunes only the parameters `targets` own on `examples` (template prompts), calling
/// `on_step` after each step.
pub fn finetune(
    model: &HookedTransformer,
    targets: &[Target],
    examples: &[CdaExample],
    cfg: &FinetuneConfig,
    on_step: &mut dyn FnMut(FinetuneStep),
) -> Result<FinetuneOutcome> {
    train(
        model,
        targets,
        examples.len(),
        cfg,
        |tuned, batch| batch_loss(tuned, examples, batch, cfg.loss),
        on_step,
    )
}

/// Fine-tunes only the parameters `targets` own on corpus `sentences` (token ids) with the
/// causal-LM loss (see the module doc), calling `on_step` after each step.
pub fn finetune_on_sentences(
    model: &HookedTransformer,
    targets: &[Target],
    sentences: &[Vec<u32>],
    cfg: &FinetuneConfig,
    on_step: &mut dyn FnMut(FinetuneStep),
) -> Result<FinetuneOutcome> {
    if let Some(i) = sentences.iter().position(|s| s.len() < 2) {
        return Err(DebiasError::Finetune(format!(
            "corpus sentence {i} has {} token(s); at least 2 are needed",
            sentences[i].len()
        )));
    }
    train(
        model,
        targets,
        sentences.len(),
        cfg,
        |tuned, batch| {
            let rows: Vec<&[u32]> = batch.iter().map(|&i| sentences[i].as_slice()).collect();
            sentence_loss(tuned, &rows)
        },
        on_step,
    )
}

/// Mean causal-LM loss over every predicted token of `rows` (right-padded; differentiable).
pub fn sentence_loss(model: &HookedTransformer, rows: &[&[u32]]) -> Result<Tensor> {
    let width = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    if width < 2 {
        return Err(DebiasError::Finetune(
            "no sentence of 2 tokens or more in the batch".into(),
        ));
    }
    let padded: Vec<Vec<u32>> = rows
        .iter()
        .map(|r| {
            let mut v = r.to_vec();
            v.resize(width, r[0]);
            v
        })
        .collect();
    let (mut targets, mut mask) = (Vec::new(), Vec::new());
    for (r, p) in rows.iter().zip(&padded) {
        targets.push(p[1..].to_vec());
        mask.extend((1..width).map(|t| if t < r.len() { 1f32 } else { 0f32 }));
    }
    let count: f32 = mask.iter().sum();
    let tokens = model.tokens_tensor(&padded)?;
    let out = model.forward(
        Input::Tokens(&tokens),
        &mut NoHook,
        Forward {
            unembed: Unembed::All,
            differentiable: true,
            ..Forward::default()
        },
    )?;
    let logits = out
        .logits
        .ok_or_else(|| DebiasError::Finetune("the forward pass returned no logits".into()))?;
    let dev = logits.device();
    let lsm = candle_nn::ops::log_softmax(&logits.narrow(1, 0, width - 1)?, D::Minus1)?;
    let targets = Tensor::new(targets, dev)?.unsqueeze(2)?;
    let picked = lsm.gather(&targets, 2)?.squeeze(2)?;
    let mask = Tensor::from_vec(mask, (rows.len(), width - 1), dev)?.to_dtype(picked.dtype())?;
    Ok((picked.mul(&mask)?.sum_all()?.neg()? / f64::from(count))?)
}

/// The training loop: `loss(tuned, batch)` is the differentiable loss of the examples
/// `batch` (indices below `n`) under the tuned model.
fn train(
    model: &HookedTransformer,
    targets: &[Target],
    n: usize,
    cfg: &FinetuneConfig,
    loss: impl Fn(&HookedTransformer, &[usize]) -> Result<Tensor>,
    on_step: &mut dyn FnMut(FinetuneStep),
) -> Result<FinetuneOutcome> {
    if n == 0 {
        return Err(DebiasError::Finetune("no training examples".into()));
    }
    if cfg.steps == 0 || cfg.batch_size == 0 {
        return Err(DebiasError::Finetune(
            "steps and batch_size must be at least 1".into(),
        ));
    }
    let keys = tuned_keys(targets, &model.cfg)?;
    let vars: Vec<(TunedKey, Var)> = keys
        .into_iter()
        .map(|k| {
            let v = Var::zeros(k.shape(&model.cfg), model.dtype(), model.device())?;
            Ok((k, v))
        })
        .collect::<Result<_>>()?;
    let mut opt = AdamW::new(
        vars.iter().map(|(_, v)| v.clone()).collect(),
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    let mut rng = SeededRng::new(cfg.seed, 0);
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let mut cursor = 0;
    let mut losses = Vec::with_capacity(cfg.steps);
    let started = std::time::Instant::now();
    for step in 0..cfg.steps {
        let mut batch = Vec::with_capacity(cfg.batch_size);
        while batch.len() < cfg.batch_size.min(n) {
            if cursor == order.len() {
                rng.shuffle(&mut order);
                cursor = 0;
            }
            batch.push(order[cursor]);
            cursor += 1;
        }
        let deltas: BTreeMap<TunedKey, Tensor> = vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        let weights = compose_weights(&model.weights, &model.cfg, &deltas)?;
        let tuned = HookedTransformer::new(
            model.cfg.clone(),
            weights,
            model.device().clone(),
            model.dtype(),
        );
        let loss = loss(&tuned, &batch)?;
        let value = loss.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Err(DebiasError::Finetune(format!(
                "the loss is {value} at step {step}; lower lr"
            )));
        }
        losses.push(value);
        opt.backward_step(&loss)?;
        on_step(FinetuneStep {
            step: step + 1,
            steps: cfg.steps,
            loss: value,
            elapsed: started.elapsed(),
        });
    }
    tracing::debug!(first = ?losses.first(), last = ?losses.last(), "fine-tuning done");
    Ok(FinetuneOutcome {
        deltas: vars
            .into_iter()
            .map(|(k, v)| Ok((k, v.as_tensor().detach().copy()?)))
            .collect::<Result<_>>()?,
        losses,
    })
}
