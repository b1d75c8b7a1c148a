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
//! # The edit, and why it is centred
//! The edit is `x - s ((x·u) - c) u` at every edited position but the first: the
//! position's coordinate along `u` is moved (with `s = 1`: set) to a centre `c`, not to 0.
//! The residual stream's coordinate along `u` is far from 0 for prompts of both sides (on
//! the SmolLM2 demo about −80 at layers 25–27, with 63–80 between a pair's two prompts),
//! so the old edit `x - (x·u) u` moved every prompt about 80 along the "he" direction: the
//! selection split's mean logit difference went from +0.07 to +7.2 and the held-out one
//! from −1.28 to +5.55. (The old calibration of `s` only refused a change of sign, so it
//! kept `s = 1` there.)
//!
//! The centre of a position is the mean coordinate, at its position label, of both prompts
//! of every selection pair — the gender-balanced point, since every pair has a prompt of
//! each side (`fallback`: the mean over every labelled position but the first, for labels
//! the selection lacks and for unlabelled text such as the neutral chunks and benchmark
//! sentences). Position 0 is never edited: its coordinate is an outlier (about −960 on
//! SmolLM2) and is the same in both prompts of a pair.
//!
//! # Strength and calibration
//! By default (`strength = "calibrated"`) the whole projection is removed (`s = 1`) and
//! the centres are **calibrated on the selection split** — never on the held-out pairs —
//! so that its mean logit difference is 0: every layer's centre moves by `t` times its
//! [`Direction::gap`] (the mean distance between a pair's prompts along `u`), and
//! [`calibrate`] finds `t` (steps from 0 that double until the mean changes sign, then
//! bisection to within [`CALIBRATION_TOLERANCE`]). The held-out pairs' templates and
//! professions differ, so their mean after steering is not 0; that is what the held-out
//! rows measure. A number (`strength = 0.5`) fixes `s` with the centres where they are
//! (`t = 0`) instead.

use std::collections::{BTreeMap, BTreeSet};

use candle_core::{DType, Tensor};
use patchsweep_model::{HookPoint, HookedTransformer, Unembed};

use super::batch::{by_length, run_edited, Rows};
use super::edit::{Centre, Edit, EditOp, EditPositions};
use super::error::{DebiasError, Result};
use super::evaluate::mean_logit_diff;
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

/// A layer's steering direction: the unit vector `u` and the centre the edit moves each
/// position's coordinate along it to (see the module doc).
#[derive(Debug, Clone)]
pub struct Direction {
    pub unit: Tensor,
    /// The mean coordinate along `u` of both prompts of every selection pair, per position
    /// label (position 0 left out).
    pub centre: Centre,
    /// The mean distance along `u` between a pair's prompts, per position from the first
    /// differing token on: the unit the calibration steps in.
    pub gap: f64,
}

/// Sums of residual vectors of one layer over every position but the first (which steering
/// never edits): per position label, and all together (the fallback's).
#[derive(Default)]
struct ResidualSums {
    by_label: BTreeMap<String, (Tensor, usize)>,
    rest: Option<(Tensor, usize)>,
}

fn add(acc: Option<(Tensor, usize)>, v: Tensor, n: usize) -> Result<(Tensor, usize)> {
    Ok(match acc {
        Some((a, k)) => ((a + v)?, k + n),
        None => (v, n),
    })
}

impl ResidualSums {
    /// Adds one prompt's residual `[positions, d_model]` with its position labels.
    fn add_prompt(&mut self, resid: &Tensor, labels: &[String]) -> Result<()> {
        let n = resid.dim(0)?;
        if n > 1 {
            let rest = resid.narrow(0, 1, n - 1)?.sum(0)?;
            self.rest = Some(add(self.rest.take(), rest, n - 1)?);
        }
        for (p, label) in labels.iter().enumerate().take(n).skip(1) {
            let v = resid.get(p)?;
            let acc = self.by_label.remove(label);
            self.by_label.insert(label.clone(), add(acc, v, 1)?);
        }
        Ok(())
    }

    /// The centre along the unit vector `u`: each mean's coordinate.
    fn centre(&self, u: &Tensor) -> Result<Centre> {
        let coordinate = |(sum, k): &(Tensor, usize)| -> Result<f64> {
            let dot = (sum * u)?.sum_all()?.to_scalar::<f32>()?;
            Ok(f64::from(dot) / *k as f64)
        };
        let mut by_label = BTreeMap::new();
        for (label, acc) in &self.by_label {
            by_label.insert(label.clone(), coordinate(acc)?);
        }
        let fallback = match &self.rest {
            Some(acc) => coordinate(acc)?,
            None => 0.0,
        };
        Ok(Centre { by_label, fallback })
    }
}

/// The gender direction at each layer, from `pairs` (the selection split): its unit vector
/// and its centre, the mean coordinate of both prompts of every pair per position label.
pub fn gender_directions(
    model: &HookedTransformer,
    layers: &[usize],
    pairs: &[&DebiasPair],
    max_batch: usize,
) -> Result<BTreeMap<usize, Direction>> {
    if let Some(&l) = layers.iter().find(|&&l| l >= model.cfg.n_layers) {
        return Err(DebiasError::Steering(format!(
            "layer {l} does not exist (the model has {})",
            model.cfg.n_layers
        )));
    }
    if pairs.is_empty() {
        return Err(DebiasError::Steering("no selection pairs".into()));
    }
    let lens: Vec<usize> = pairs.iter().map(|p| p.input.clean_ids.len()).collect();
    let mut sums: BTreeMap<usize, Tensor> = BTreeMap::new();
    let mut residuals: BTreeMap<usize, ResidualSums> = BTreeMap::new();
    let mut used = 0usize;
    for group in by_length(&lens, max_batch) {
        let (mc, rc) = side(model, pairs, &group, true, layers)?;
        let (mk, rk) = side(model, pairs, &group, false, layers)?;
        for (r, &i) in group.iter().enumerate() {
            let p = &pairs[i].input;
            for &l in layers {
                let sums = residuals.entry(l).or_default();
                sums.add_prompt(&rc[&l].get(r)?, &p.position_labels)?;
                sums.add_prompt(&rk[&l].get(r)?, &p.position_labels)?;
            }
            let sign = (mk[r] - mc[r]).signum();
            if mk[r] == mc[r] || !sign.is_finite() {
                continue;
            }
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
        let unit = (s / f64::from(norm))?;
        let centre = residuals[&l].centre(&unit)?;
        let gap = f64::from(norm) / used as f64;
        out.insert(l, Direction { unit, centre, gap });
    }
    Ok(out)
}

/// Steering edits at `hook_resid_post` of each layer with a direction: `x - s ((x·u) - c) u`
/// with `s = strength` and `c` the direction's centre moved by `offset` times its
/// [`Direction::gap`] along `u`, position 0 left as it is.
pub fn steering_edits(
    directions: &BTreeMap<usize, Direction>,
    positions: EditPositions,
    strength: f64,
    offset: f64,
) -> Vec<Edit> {
    directions
        .iter()
        .map(|(&l, d)| Edit {
            point: HookPoint::ResidPost(l),
            head: None,
            positions: positions.clone(),
            op: EditOp::ProjectOut {
                direction: d.unit.clone(),
                strength,
                centre: d.centre.shifted(offset * d.gap),
                skip_first: true,
            },
        })
        .collect()
}

/// Calibration stops once `|m(t)|` is at most this (in logits).
pub const CALIBRATION_TOLERANCE: f64 = 0.01;

/// The calibration's first step, in gaps.
pub const FIRST_STEP: f64 = 0.25;

/// Most doublings of the step while looking for an offset with the other sign.
const BRACKET_STEPS: usize = 24;

/// Most halvings of the bracket.
const BISECTION_STEPS: usize = 40;

/// What a calibration chose: the offset `t` of the centres (in gaps), and the mean logit difference
/// on the split it was calibrated on without steering (`before`), with the centres where
/// they are (`at_centre`, `t = 0`) and at `t` (`after`). `zero_found` is false when no
/// offset within the search brought the mean to the other sign or within the tolerance:
/// then `t` is the offset with the smallest `|m(t)|` seen.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Calibration {
    pub offset: f64,
    pub before: f64,
    pub at_centre: f64,
    pub after: f64,
    pub zero_found: bool,
}

/// A zero of `m(t)` (the selection mean logit difference with the centres moved by `t`
/// gaps), found by steps from 0 that double (the first [`FIRST_STEP`] long) until the sign
/// changes, then bisection, stopping within [`CALIBRATION_TOLERANCE`]. The steps go toward
/// `+u` when `m(0) < 0`: the direction points toward a higher metric. `before` is the mean
/// without steering (only reported).
pub fn calibrate(before: f64, mut mean: impl FnMut(f64) -> Result<f64>) -> Result<Calibration> {
    let mut eval = |t: f64| -> Result<f64> {
        let m = mean(t)?;
        if m.is_finite() {
            Ok(m)
        } else {
            Err(DebiasError::Steering(format!(
                "the selection mean logit difference is {m} with the centres moved by {t}"
            )))
        }
    };
    let at_centre = eval(0.0)?;
    let done = |offset: f64, after: f64, zero_found: bool| Calibration {
        offset,
        before,
        at_centre,
        after,
        zero_found,
    };
    if at_centre.abs() <= CALIBRATION_TOLERANCE {
        return Ok(done(0.0, at_centre, true));
    }
    let toward = if at_centre < 0.0 { 1.0 } else { -1.0 };
    // `lo` keeps the sign of m(0), `hi` the other.
    let (mut lo, mut at_lo) = (0.0, at_centre);
    let mut hi = None;
    let mut t = FIRST_STEP;
    for _ in 0..BRACKET_STEPS {
        let m = eval(toward * t)?;
        if m.abs() <= CALIBRATION_TOLERANCE {
            return Ok(done(toward * t, m, true));
        }
        if m.signum() != at_centre.signum() {
            hi = Some((toward * t, m));
            break;
        }
        if m.abs() < at_lo.abs() {
            (lo, at_lo) = (toward * t, m);
        }
        t *= 2.0;
    }
    let Some((mut hi, mut at_hi)) = hi else {
        return Ok(done(lo, at_lo, false));
    };
    for _ in 0..BISECTION_STEPS {
        let mid = 0.5 * (lo + hi);
        let m = eval(mid)?;
        if m.abs() <= CALIBRATION_TOLERANCE {
            return Ok(done(mid, m, true));
        }
        if m.signum() == at_centre.signum() {
            (lo, at_lo) = (mid, m);
        } else {
            (hi, at_hi) = (mid, m);
        }
    }
    Ok(if at_lo.abs() <= at_hi.abs() {
        done(lo, at_lo, true)
    } else {
        done(hi, at_hi, true)
    })
}

/// Calibrates the centres' offset of full removal (`s = 1`) of `directions` at `positions`
/// on `selection` (see the module doc).
pub fn calibrate_offset(
    model: &HookedTransformer,
    directions: &BTreeMap<usize, Direction>,
    positions: &EditPositions,
    selection: &[&DebiasPair],
    max_batch: usize,
) -> Result<Calibration> {
    let before = mean_logit_diff(model, &[], selection, max_batch)?;
    calibrate(before, |t| {
        let edits = steering_edits(directions, positions.clone(), 1.0, t);
        mean_logit_diff(model, &edits, selection, max_batch)
    })
}
