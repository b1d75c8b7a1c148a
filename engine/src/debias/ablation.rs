//! Ablation of the selected components: their output replaced by zeros, or by its mean
//! over a reference set of prompts, at chosen positions.
//!
//! # Mean ablation
//! The mean is taken **per position label** ([`label_means`]): an ablated position labelled
//! `subject` gets the component's mean output over the reference's `subject` positions, one
//! labelled `end` the mean over `end` positions, so the replacement is a typical value for
//! that role in the prompt rather than an average over unlike positions. A position whose
//! label the reference lacks, and every position of unlabelled text (the neutral chunks, or
//! a neutral reference), gets the mean over all the reference's positions.
//!
//! **Position 0 is left out** unless `include_first_position` is set: it is neither averaged
//! nor edited. LLaMA-family models put outlier activations on the first token (an attention
//! sink), which would dominate every mean; and every prompt starts with the same token (BOS,
//! or "The"), whose output is the same in every prompt, so a per-label mean there is the
//! value itself and ablating it would change nothing.

use std::collections::BTreeMap;

use candle_core::{DType, Tensor, D};
use patchsweep_model::{HookPoint, HookedTransformer, Unembed};

use super::batch::{by_length, run_edited, Rows};
use super::config::{AblationConfig, AblationMode, PositionsConfig};
use super::edit::{Edit, EditOp, EditPositions};
use super::error::{DebiasError, Result};
use super::target::{Target, TargetKind};

/// Where an edit for `target` applies under `positions`.
pub fn edit_positions(target: &Target, positions: &PositionsConfig) -> EditPositions {
    match positions {
        PositionsConfig::All => EditPositions::All,
        PositionsConfig::List(l) => EditPositions::Refs(l.clone()),
        PositionsConfig::Component => match &target.position {
            Some(label) => {
                EditPositions::Refs(vec![crate::grid::PositionRef::Label(label.clone())])
            }
            None => EditPositions::All,
        },
    }
}

/// Mean value of each target's output over `reference` prompts: `[d_head]` for a head,
/// `[d_model]` otherwise, keyed by (hook point, head).
pub fn mean_outputs(
    model: &HookedTransformer,
    targets: &[Target],
    reference: &[&[u32]],
    max_batch: usize,
) -> Result<BTreeMap<(HookPoint, Option<usize>), Tensor>> {
    if reference.is_empty() {
        return Err(DebiasError::Evaluation(
            "mean ablation needs at least one reference prompt".into(),
        ));
    }
    let points: Vec<HookPoint> = targets.iter().map(Target::hook).collect();
    let lens: Vec<usize> = reference.iter().map(|r| r.len()).collect();
    let mut sums: BTreeMap<(HookPoint, Option<usize>), Tensor> = BTreeMap::new();
    let mut count = 0usize;
    for group in by_length(&lens, max_batch) {
        let rows = Rows {
            ids: group.iter().map(|&i| reference[i]).collect(),
            labels: vec![None; group.len()],
        };
        let run = run_edited(model, &[], &rows, Unembed::None, &points)?;
        count += group.len() * lens[group[0]];
        for t in targets {
            let v = run.cache.get(t.hook())?.to_dtype(DType::F32)?;
            // [b, p, (h,) d] -> sum over b and p.
            let s = v.sum(0)?.sum(0)?;
            let s = match (t.kind, t.head) {
                (TargetKind::Head, Some(h)) => s.get(h)?,
                _ => s,
            };
            let key = (t.hook(), t.head);
            let acc = match sums.remove(&key) {
                Some(a) => (a + s)?,
                None => s,
            };
            sums.insert(key, acc);
        }
    }
    sums.into_iter()
        .map(|(k, s)| Ok((k, (s / count as f64)?)))
        .collect()
}

/// Mean outputs of one target over a reference: per position label, and over every
/// position (`[d_head]` for a head, `[d_model]` otherwise, f32).
#[derive(Debug, Clone)]
pub struct LabelMeans {
    pub by_label: BTreeMap<String, Tensor>,
    pub overall: Tensor,
}

/// A reference prompt and its position labels (`None`: unlabelled text).
pub type ReferencePrompt<'a> = (&'a [u32], Option<&'a [String]>);

/// Mean value of each target's output over `reference` prompts, per position label and
/// overall, position 0 left out unless `include_first` (see the module doc); keyed by
/// (hook point, head).
pub fn label_means(
    model: &HookedTransformer,
    targets: &[Target],
    reference: &[ReferencePrompt],
    include_first: bool,
    max_batch: usize,
) -> Result<BTreeMap<(HookPoint, Option<usize>), LabelMeans>> {
    let points: Vec<HookPoint> = targets.iter().map(Target::hook).collect();
    let lens: Vec<usize> = reference.iter().map(|r| r.0.len()).collect();
    let first = usize::from(!include_first);
    if lens.iter().all(|&n| n <= first) {
        return Err(DebiasError::Evaluation(
            "mean ablation needs at least one reference position (position 0 is left out \
             unless include_first_position is set)"
                .into(),
        ));
    }
    // Per key: label → (sum, count), and the overall (sum, count).
    type Sums = (BTreeMap<String, (Tensor, usize)>, Option<(Tensor, usize)>);
    let mut sums: BTreeMap<(HookPoint, Option<usize>), Sums> = BTreeMap::new();
    let add = |acc: Option<(Tensor, usize)>, s: Tensor, n: usize| -> Result<(Tensor, usize)> {
        Ok(match acc {
            Some((a, m)) => ((a + s)?, m + n),
            None => (s, n),
        })
    };
    for group in by_length(&lens, max_batch) {
        let n = lens[group[0]];
        if n <= first {
            continue;
        }
        let rows = Rows {
            ids: group.iter().map(|&i| reference[i].0).collect(),
            labels: vec![None; group.len()],
        };
        let run = run_edited(model, &[], &rows, Unembed::None, &points)?;
        // Rows (row, position) of the flattened [b * p, d] value, per label.
        let mut at: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for (r, &i) in group.iter().enumerate() {
            if let Some(labels) = reference[i].1 {
                for (p, label) in labels.iter().enumerate().take(n).skip(first) {
                    at.entry(label).or_default().push((r * n + p) as u32);
                }
            }
        }
        for t in targets {
            // [b, p, d] for this target (one head of [b, p, h, d] for a head), f32.
            let full = run.cache.get(t.hook())?.to_dtype(DType::F32)?;
            let full = match (t.kind, t.head) {
                (TargetKind::Head, Some(h)) => full.narrow(2, h, 1)?.squeeze(2)?,
                _ => full,
            };
            let width = full.dim(D::Minus1)?;
            let entry = sums.entry((t.hook(), t.head)).or_default();
            entry.1 = Some(add(
                entry.1.take(),
                full.narrow(1, first, n - first)?.sum(0)?.sum(0)?,
                group.len() * (n - first),
            )?);
            let flat = full.reshape(((), width))?;
            for (label, idx) in &at {
                let ix = Tensor::new(idx.as_slice(), flat.device())?;
                let s = flat.index_select(&ix, 0)?.sum(0)?;
                let old = entry.0.remove(*label);
                entry.0.insert(label.to_string(), add(old, s, idx.len())?);
            }
        }
    }
    sums.into_iter()
        .map(|(k, (by_label, overall))| {
            let (sum, count) = overall.ok_or_else(|| {
                DebiasError::Evaluation("mean ablation found no reference positions".into())
            })?;
            let by_label = by_label
                .into_iter()
                .map(|(l, (s, c))| Ok((l, (s / c as f64)?)))
                .collect::<Result<_>>()?;
            Ok((
                k,
                LabelMeans {
                    by_label,
                    overall: (sum / count as f64)?,
                },
            ))
        })
        .collect()
}

/// The edits of an ablation of `targets`; `reference` (unlabelled prompts) is used by mean
/// ablation only, which then replaces by the mean over all positions. Use
/// [`ablation_edits_labelled`] for per-label means.
pub fn ablation_edits(
    model: &HookedTransformer,
    targets: &[Target],
    cfg: &AblationConfig,
    reference: &[&[u32]],
    max_batch: usize,
) -> Result<Vec<Edit>> {
    let reference: Vec<ReferencePrompt> = reference.iter().map(|&ids| (ids, None)).collect();
    ablation_edits_labelled(model, targets, cfg, &reference, max_batch)
}

/// The edits of an ablation of `targets`; mean ablation averages over `reference` per
/// position label (see the module doc).
pub fn ablation_edits_labelled(
    model: &HookedTransformer,
    targets: &[Target],
    cfg: &AblationConfig,
    reference: &[ReferencePrompt],
    max_batch: usize,
) -> Result<Vec<Edit>> {
    let means = match cfg.mode {
        AblationMode::Mean if !targets.is_empty() => {
            if reference.is_empty() {
                return Err(DebiasError::Evaluation(
                    "mean ablation needs at least one reference prompt".into(),
                ));
            }
            Some(label_means(
                model,
                targets,
                reference,
                cfg.include_first_position,
                max_batch,
            )?)
        }
        _ => None,
    };
    let c = &model.cfg;
    targets
        .iter()
        .map(|t| {
            t.validate(c)?;
            let width = match t.kind {
                TargetKind::Head => c.d_head,
                _ => c.d_model,
            };
            let op = match &means {
                Some(m) => {
                    let m = m
                        .get(&(t.hook(), t.head))
                        .cloned()
                        .ok_or_else(|| DebiasError::Evaluation(format!("no mean for {t}")))?;
                    EditOp::ReplaceByLabel {
                        by_label: m.by_label,
                        fallback: m.overall,
                        skip_first: !cfg.include_first_position,
                    }
                }
                None => EditOp::Replace(Tensor::zeros(width, DType::F32, model.device())?),
            };
            Ok(Edit {
                point: t.hook(),
                head: t.head,
                positions: edit_positions(t, &cfg.positions),
                op,
            })
        })
        .collect()
}
