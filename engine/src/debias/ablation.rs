//! Ablation of the selected components: their output replaced by zeros, or by its mean
//! over a reference set of prompts (every row and every position), at chosen positions.

use std::collections::BTreeMap;

use candle_core::{DType, Tensor};
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

/// The edits of an ablation of `targets`; `reference` is used by mean ablation only.
pub fn ablation_edits(
    model: &HookedTransformer,
    targets: &[Target],
    cfg: &AblationConfig,
    reference: &[&[u32]],
    max_batch: usize,
) -> Result<Vec<Edit>> {
    let means = match cfg.mode {
        AblationMode::Mean if !targets.is_empty() => {
            Some(mean_outputs(model, targets, reference, max_batch)?)
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
            let value = match &means {
                Some(m) => m
                    .get(&(t.hook(), t.head))
                    .cloned()
                    .ok_or_else(|| DebiasError::Evaluation(format!("no mean for {t}")))?,
                None => Tensor::zeros(width, DType::F32, model.device())?,
            };
            Ok(Edit {
                point: t.hook(),
                head: t.head,
                positions: edit_positions(t, &cfg.positions),
                op: EditOp::Replace(value),
            })
        })
        .collect()
}
