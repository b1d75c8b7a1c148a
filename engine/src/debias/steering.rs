//! Steering: remove the projection of the residual stream on a gender direction, after
//! each layer the selected components live in (`hook_resid_post`).
//!
//! The direction at layer `L` is the mean over the selection pairs of the residual
//! difference between the two prompts of a pair, `resid_post(corrupt) - resid_post(clean)`,
//! over the positions from the first differing token on (earlier positions are identical),
//! each pair's difference signed so that it points toward a *higher* metric (the corrupted
//! run's metric minus the clean one's gives the sign). Professions pairs replace a
//! female-stereotyped profession by "man" and a male one by "woman", so unsigned differences
//! would cancel; signed, they all point from the "she" side to the "he" side. The direction
//! is normalised to unit length.

use std::collections::{BTreeMap, BTreeSet};

use candle_core::{DType, Tensor};
use patchsweep_model::{HookPoint, HookedTransformer, Unembed};

use super::batch::{by_length, run_edited, Rows};
use super::edit::{Edit, EditOp, EditPositions};
use super::error::{DebiasError, Result};
use super::split::DebiasPair;
use super::target::Target;
use crate::metric::values_per_row;

/// The layers steering acts after: those of the targets, ascending, each once.
pub fn steering_layers(targets: &[Target]) -> Vec<usize> {
    targets
        .iter()
        .map(|t| t.layer)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Metric values (last position) and `resid_post` at `layers` for one prompt side.
fn side(
    model: &HookedTransformer,
    pairs: &[&DebiasPair],
    group: &[usize],
    clean: bool,
    layers: &[usize],
) -> Result<(Vec<f32>, BTreeMap<usize, Tensor>)> {
    let rows = Rows {
        ids: group
            .iter()
            .map(|&i| {
                let p = &pairs[i].input;
                if clean {
                    p.clean_ids.as_slice()
                } else {
                    p.corrupt_ids.as_slice()
                }
            })
            .collect(),
        labels: vec![None; group.len()],
    };
    let points: Vec<HookPoint> = layers.iter().map(|&l| HookPoint::ResidPost(l)).collect();
    let run = run_edited(model, &[], &rows, Unembed::Last, &points)?;
    let metrics: Vec<_> = group.iter().map(|&i| &pairs[i].input.metric).collect();
    let values: Vec<f32> = values_per_row(&run.logits, &metrics)?.to_vec1()?;
    let mut resid = BTreeMap::new();
    for &l in layers {
        resid.insert(
            l,
            run.cache
                .get(HookPoint::ResidPost(l))?
                .to_dtype(DType::F32)?,
        );
    }
    Ok((values, resid))
}

/// The unit gender direction at each layer, from `pairs` (the selection split).
pub fn gender_directions(
    model: &HookedTransformer,
    layers: &[usize],
    pairs: &[&DebiasPair],
    max_batch: usize,
) -> Result<BTreeMap<usize, Tensor>> {
    if let Some(&l) = layers.iter().find(|&&l| l >= model.cfg.n_layers) {
        return Err(DebiasError::Steering(format!(
            "layer {l} does not exist (the model has {})",
            model.cfg.n_layers
        )));
    }
    let lens: Vec<usize> = pairs.iter().map(|p| p.input.clean_ids.len()).collect();
    let mut sums: BTreeMap<usize, Tensor> = BTreeMap::new();
    let mut used = 0usize;
    for group in by_length(&lens, max_batch) {
        let (mc, rc) = side(model, pairs, &group, true, layers)?;
        let (mk, rk) = side(model, pairs, &group, false, layers)?;
        for (r, &i) in group.iter().enumerate() {
            let sign = (mk[r] - mc[r]).signum();
            if mk[r] == mc[r] || !sign.is_finite() {
                continue;
            }
            let p = &pairs[i].input;
            let first = p
                .clean_ids
                .iter()
                .zip(&p.corrupt_ids)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            let n = p.clean_ids.len() - first;
            used += n;
            for &l in layers {
                let d =
                    (rk[&l].get(r)?.narrow(0, first, n)? - rc[&l].get(r)?.narrow(0, first, n)?)?;
                let d = (d.sum(0)? * f64::from(sign))?;
                let acc = match sums.remove(&l) {
                    Some(a) => (a + d)?,
                    None => d,
                };
                sums.insert(l, acc);
            }
        }
    }
    if used == 0 {
        return Err(DebiasError::Steering(
            "no selection pair changes the metric between its prompts".into(),
        ));
    }
    let mut out = BTreeMap::new();
    for (l, s) in sums {
        let norm = s.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
        if !(norm.is_finite() && norm > 1e-12) {
            return Err(DebiasError::Steering(format!(
                "the mean residual difference at layer {l} is zero"
            )));
        }
        out.insert(l, (s / f64::from(norm))?);
    }
    Ok(out)
}

/// Projection-removal edits at `hook_resid_post` of each layer with a direction.
pub fn steering_edits(directions: &BTreeMap<usize, Tensor>, positions: EditPositions) -> Vec<Edit> {
    directions
        .iter()
        .map(|(&l, u)| Edit {
            point: HookPoint::ResidPost(l),
            head: None,
            positions: positions.clone(),
            op: EditOp::ProjectOut(u.clone()),
        })
        .collect()
}
