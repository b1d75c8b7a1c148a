//! The matched random control: component sets drawn like the selected ones, to tell what an
//! intervention does to *these* components from what it does to *any* components of the
//! same kind and depth.
//!
//! Each selected component is matched by one of the same kind and position label, drawn
//! uniformly: a head from the other heads of its layer while it has free ones; otherwise
//! (always for layer-level components: `mlp_out`, `attn_out`, a steered layer) from the free
//! sites within distance `d` of its layer, for the smallest `d` at which there are at least
//! [`MIN_CHOICES`] of them (or all the model has). No control component is a selected one or
//! appears twice in one set. Drawing from the nearest free site alone made every control set
//! of a block of adjacent layers the same set (the layers next to the block), whatever the
//! seed. Many sets are drawn (seeds `first_seed`, `first_seed + 1`, …) and an intervention's
//! figures are reported over them as a mean, a 5–95% range, and the
//! located set's percentile ([`ControlSummary`]).

use std::collections::BTreeSet;

use patchsweep_model::ModelConfig;
use serde::{Deserialize, Serialize};

use super::error::{DebiasError, Result};
use super::rng::SeededRng;
use super::target::{Target, TargetKind};
use crate::interval::mean_interval;

/// The free sites of `kind` at `layer` (every head for heads, the layer itself otherwise).
fn sites_at(kind: TargetKind, layer: usize, model: &ModelConfig) -> Vec<Option<usize>> {
    if layer >= model.n_layers {
        return Vec::new();
    }
    match kind {
        TargetKind::Head => (0..model.n_heads).map(Some).collect(),
        TargetKind::AttnOut | TargetKind::MlpOut => vec![None],
    }
}

/// The fewest free sites a control component from other layers is drawn from, where the
/// model has them.
pub const MIN_CHOICES: usize = 4;

/// One matched set for one seed (see the module doc).
pub fn matched_control(selected: &[Target], seed: u64, model: &ModelConfig) -> Result<Vec<Target>> {
    let mut taken: BTreeSet<_> = selected.iter().map(Target::site).collect();
    let mut rng = SeededRng::new(seed, 4);
    let mut out = Vec::with_capacity(selected.len());
    for t in selected {
        let free = |layer: usize, taken: &BTreeSet<(TargetKind, usize, Option<usize>)>| {
            sites_at(t.kind, layer, model)
                .into_iter()
                .filter(|&h| !taken.contains(&(t.kind, layer, h)))
                .map(|h| (layer, h))
                .collect::<Vec<_>>()
        };
        let mut candidates = free(t.layer, &taken);
        let mut distance = 1;
        let wanted = if candidates.is_empty() {
            MIN_CHOICES
        } else {
            1
        };
        while candidates.len() < wanted && distance < model.n_layers {
            let below = t.layer.checked_sub(distance);
            let above = Some(t.layer + distance).filter(|&l| l < model.n_layers);
            candidates.extend(below.into_iter().chain(above).flat_map(|l| free(l, &taken)));
            distance += 1;
        }
        if candidates.is_empty() {
            return Err(DebiasError::Control(format!(
                "no {} is left in the model to match {t}: {} components of that kind are \
                 selected and the model has no others",
                t.kind.name(),
                selected.iter().filter(|s| s.kind == t.kind).count()
            )));
        }
        let (layer, head) = candidates[rng.below(candidates.len())];
        taken.insert((t.kind, layer, head));
        out.push(Target {
            kind: t.kind,
            layer,
            head,
            position: t.position.clone(),
        });
    }
    Ok(out)
}

/// The layers a steering control acts at, for seed `seed`: steering edits whole layers (the
/// selected components' layers), so a control of other heads *in the same layers* would steer
/// exactly as the selection does. Each selected layer is matched by another layer of about
/// its depth instead, drawn as for a layer-level component.
pub fn matched_steering_layers(
    layers: &[usize],
    seed: u64,
    model: &ModelConfig,
) -> Result<Vec<usize>> {
    let as_targets: Vec<Target> = layers
        .iter()
        .map(|&layer| Target {
            kind: TargetKind::MlpOut,
            layer,
            head: None,
            position: None,
        })
        .collect();
    let mut out: Vec<usize> = matched_control(&as_targets, seed, model)?
        .into_iter()
        .map(|t| t.layer)
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// `sets` matched sets, for seeds `first_seed .. first_seed + sets`.
pub fn matched_controls(
    selected: &[Target],
    first_seed: u64,
    sets: usize,
    model: &ModelConfig,
) -> Result<Vec<Vec<Target>>> {
    (0..sets as u64)
        .map(|i| matched_control(selected, first_seed.wrapping_add(i), model))
        .collect()
}

/// A metric over the control sets, next to the located set's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlSummary {
    /// How many control sets the figures are over.
    pub sets: usize,
    pub mean: f64,
    /// The 5th and 95th percentiles (linear interpolation between order statistics, as
    /// numpy's default).
    pub p05: f64,
    pub p95: f64,
    /// The located set's value as a percentile of the control values: 100 × (controls below
    /// it + half the ties) / sets. Near 0: the located set gives a lower value than almost
    /// every random set; near 100: a higher one.
    pub percentile: f64,
    /// A 95% interval of `mean` over the prompts: each prompt's (or pair's) value averaged
    /// over the sets, then Student's t over those averages ([`Self::prompt_interval`]), the
    /// same unit as the located set's `after` interval. `None` below two prompts.
    #[serde(default)]
    pub ci: Option<(f64, f64)>,
}

/// The `q` quantile (0..=1) of sorted values, numpy's default (linear) rule.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

impl ControlSummary {
    /// The summary of `controls` (finite values; `None` when there are none) for the
    /// located set's value `located`.
    pub fn of(controls: &[f64], located: f64) -> Option<Self> {
        let mut sorted: Vec<f64> = controls.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len() as f64;
        let below = sorted.iter().filter(|&&v| v < located).count() as f64;
        let ties = sorted.iter().filter(|&&v| v == located).count() as f64;
        Some(Self {
            sets: sorted.len(),
            mean: sorted.iter().sum::<f64>() / n,
            p05: quantile(&sorted, 0.05),
            p95: quantile(&sorted, 0.95),
            percentile: 100.0 * (below + ties / 2.0) / n,
            ci: None,
        })
    }

    /// The t interval over prompts of the per-prompt values averaged over the sets:
    /// `per_set[s][u]` is set `s`'s value for prompt (or pair) `u`, every set over the same
    /// units in the same order. `None` when the sets disagree on the units or have fewer
    /// than two.
    pub fn prompt_interval(per_set: &[&[f64]]) -> Option<(f64, f64)> {
        let units = per_set.first()?.len();
        if per_set.iter().any(|s| s.len() != units) {
            return None;
        }
        let averaged: Vec<f64> = (0..units)
            .map(|u| per_set.iter().map(|s| s[u]).sum::<f64>() / per_set.len() as f64)
            .collect();
        mean_interval(&averaged).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_interval_averages_each_prompt_over_the_sets() {
        // Two sets over three prompts: the per-prompt means are 1, 2, 3.
        let (a, b) = ([0.0, 2.0, 2.0], [2.0, 2.0, 4.0]);
        let ci = ControlSummary::prompt_interval(&[&a, &b]).unwrap();
        assert_eq!(ci, mean_interval(&[1.0, 2.0, 3.0]).1.unwrap());
        // mean 2, sd 1, t(2) = 4.3027 (as tabulated): 2 ± 4.3027 / √3.
        assert!((ci.1 - (2.0 + 4.3027 / 3f64.sqrt())).abs() < 1e-9, "{ci:?}");
        assert_eq!(ControlSummary::prompt_interval(&[&a, &b[..2]]), None);
        assert_eq!(ControlSummary::prompt_interval(&[&[1.0]]), None);
        assert_eq!(ControlSummary::prompt_interval(&[]), None);
    }

    #[test]
    fn quantiles_follow_numpys_linear_rule() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        // numpy.percentile(range(1, 21), [5, 95]) = [1.95, 19.05]
        let s = ControlSummary::of(&v, 10.0).unwrap();
        assert!(
            (s.p05 - 1.95).abs() < 1e-12 && (s.p95 - 19.05).abs() < 1e-12,
            "{s:?}"
        );
        assert_eq!(s.mean, 10.5);
        assert_eq!(s.percentile, 100.0 * 9.5 / 20.0);
        assert_eq!(ControlSummary::of(&v, 0.0).unwrap().percentile, 0.0);
        assert_eq!(ControlSummary::of(&v, 99.0).unwrap().percentile, 100.0);
        assert!(ControlSummary::of(&[f64::NAN], 1.0).is_none());
        let one = ControlSummary::of(&[2.0], 2.0).unwrap();
        assert_eq!((one.p05, one.p95, one.percentile), (2.0, 2.0, 50.0));
    }
}
