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
//!
//! # Strength
//! The edit is `x - s (x·u) u`. Removing the whole projection (`s = 1`) overshoots: the
//! residual stream's component along `u` is not zero for a neutral prompt, so setting it to
//! zero pushes every prompt past neutral (on SmolLM2 the held-out mean logit difference went
//! from −1.18 to +2.31). By default (`strength = "calibrated"`) `s` is **calibrated on the
//! selection split** — never on the held-out pairs — by [`calibrate`]: with
//! `m(s)` the selection split's mean logit difference under strength `s`, `s = 1` when
//! `m(1)` has the sign of `m(0)` (or is 0: full removal does not overshoot); otherwise the
//! largest `s` in `[0, 1]` found by bisection whose `m(s)` keeps the sign of `m(0)`, stopping
//! when `|m(s)| <= 1% of |m(0)|` (at most [`CALIBRATION_STEPS`] halvings). So on the
//! selection split steering moves the mean toward 0 and never flips its sign. A number
//! (`strength = 1.0`) fixes `s` instead.

use std::collections::{BTreeMap, BTreeSet};

use candle_core::{DType, Tensor};
use patchsweep_model::{HookPoint, HookedTransformer, Unembed};

use super::batch::{by_length, run_edited, Rows};
use super::edit::{Edit, EditOp, EditPositions};
use super::error::{DebiasError, Result};
use super::evaluate::bias_metrics;
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
    steering_edits_scaled(directions, positions, 1.0)
}

/// [`steering_edits`] removing `strength` times the projection.
pub fn steering_edits_scaled(
    directions: &BTreeMap<usize, Tensor>,
    positions: EditPositions,
    strength: f64,
) -> Vec<Edit> {
    directions
        .iter()
        .map(|(&l, u)| Edit {
            point: HookPoint::ResidPost(l),
            head: None,
            positions: positions.clone(),
            op: EditOp::ProjectOut {
                direction: u.clone(),
                strength,
            },
        })
        .collect()
}

/// Most halvings of the strength interval a calibration makes.
pub const CALIBRATION_STEPS: usize = 20;

/// Calibration stops once `|m(s)|` is at most this share of `|m(0)|`.
const CALIBRATION_TOLERANCE: f64 = 0.01;

/// What a calibration chose: the strength, and the mean logit difference on the split it
/// was calibrated on without steering (`before`) and with it (`after`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Calibration {
    pub strength: f64,
    pub before: f64,
    pub after: f64,
}

/// The strength rule of the module doc for a mean `m(s)` (`mean`), evaluated at most
/// `CALIBRATION_STEPS + 2` times.
pub fn calibrate(mut mean: impl FnMut(f64) -> Result<f64>) -> Result<Calibration> {
    let mut eval = |s: f64| -> Result<f64> {
        let m = mean(s)?;
        if m.is_finite() {
            Ok(m)
        } else {
            Err(DebiasError::Steering(format!(
                "the selection mean logit difference is {m} at strength {s}"
            )))
        }
    };
    let before = eval(0.0)?;
    if before == 0.0 {
        return Ok(Calibration {
            strength: 0.0,
            before,
            after: before,
        });
    }
    let full = eval(1.0)?;
    if full == 0.0 || full.signum() == before.signum() {
        return Ok(Calibration {
            strength: 1.0,
            before,
            after: full,
        });
    }
    let (mut lo, mut at_lo, mut hi) = (0.0, before, 1.0);
    for _ in 0..CALIBRATION_STEPS {
        if at_lo.abs() <= CALIBRATION_TOLERANCE * before.abs() {
            break;
        }
        let mid = 0.5 * (lo + hi);
        let m = eval(mid)?;
        if m == 0.0 || m.signum() == before.signum() {
            (lo, at_lo) = (mid, m);
        } else {
            hi = mid;
        }
    }
    Ok(Calibration {
        strength: lo,
        before,
        after: at_lo,
    })
}

/// Calibrates the steering strength of `directions` at `positions` on `selection` (see the
/// module doc).
pub fn calibrate_strength(
    model: &HookedTransformer,
    directions: &BTreeMap<usize, Tensor>,
    positions: &EditPositions,
    selection: &[&DebiasPair],
    max_batch: usize,
) -> Result<Calibration> {
    calibrate(|s| {
        let edits = if s == 0.0 {
            Vec::new()
        } else {
            steering_edits_scaled(directions, positions.clone(), s)
        };
        Ok(bias_metrics(model, &edits, selection, max_batch)?.mean_logit_diff)
    })
}
