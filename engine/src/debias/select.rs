//! Choosing components from a sweep's stored effects, and the random control set.
//!
//! The store aggregates effects in SQL (one row per component, layer, head and position
//! label over the selection pairs, the normalized effect as `cells_v` forms it: a ratio of
//! sums over the pairs whose clean and corrupted metrics differ by at least `min_span`);
//! [`select_components`] ranks those rows by |score|.
//!
//! The score is direction-aware: for a `denoise` experiment it is the normalized effect (the
//! share of the clean-corrupt difference a component restores), for a `noise` experiment
//! `1 - normalized` (the share lost when the component alone is corrupted). Ranking a noise
//! experiment by |normalized| would pick exactly the components that do nothing
//! (normalized ≈ 1). [`random_control`] draws components of the same kinds and number at random.

use std::collections::{BTreeMap, BTreeSet};

use patchsweep_model::ModelConfig;
use serde::{Deserialize, Serialize};

use super::config::SelectionConfig;
use super::error::{config, DebiasError, Result};
use super::rng::SeededRng;
use super::target::{Target, TargetKind};

/// One aggregated effect from a sweep, as the store returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregatedEffect {
    /// The sweep component name (`head_out`, `attn_out`, `mlp_out`, …).
    pub component: String,
    pub layer: usize,
    pub head: Option<usize>,
    /// Position label of the effect, `None` for effects measured at all positions jointly.
    pub position_label: Option<String>,
    /// The component's share of the clean-corrupt difference over the selection pairs:
    /// `normalized` (denoise) or `1 - normalized` (noise); ranking uses its absolute value.
    pub score: f64,
}

/// The selected components, most important first (explicit lists keep their order).
pub fn select_components(
    rows: &[AggregatedEffect],
    cfg: &SelectionConfig,
    model: &ModelConfig,
) -> Result<Vec<Target>> {
    cfg.validate()?;
    if let Some(list) = &cfg.components {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for s in list {
            let t: Target = s.parse()?;
            t.validate(model)?;
            if seen.insert(t.clone()) {
                out.push(t);
            }
        }
        return Ok(out);
    }
    let (Some(component), Some(top_k)) = (cfg.component, cfg.top_k) else {
        return Err(config(
            "select",
            "top-k selection needs `component` and `top_k`",
        ));
    };
    let kind = TargetKind::from_component(component)?;
    let mut candidates: Vec<(f64, Target)> = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, r) in rows.iter().enumerate() {
        if TargetKind::parse(&r.component) != Some(kind) {
            continue;
        }
        if cfg.position.is_some() && r.position_label != cfg.position {
            continue;
        }
        let bad = |reason: String| DebiasError::AggregatedEffect { row: i, reason };
        if !r.score.is_finite() {
            return Err(bad(format!(
                "{} L{} has a non-finite score {}",
                r.component, r.layer, r.score
            )));
        }
        let t = Target {
            kind,
            layer: r.layer,
            head: r.head,
            position: r.position_label.clone(),
        };
        t.validate(model).map_err(|e| bad(e.to_string()))?;
        if !seen.insert(t.clone()) {
            return Err(bad(format!("{t} appears twice")));
        }
        if cfg.threshold.is_none_or(|th| r.score.abs() >= th) {
            candidates.push((r.score.abs(), t));
        }
    }
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    Ok(candidates.into_iter().take(top_k).map(|(_, t)| t).collect())
}

/// Every (layer, head) site of a kind in the model.
fn all_sites(kind: TargetKind, model: &ModelConfig) -> Vec<(usize, Option<usize>)> {
    (0..model.n_layers)
        .flat_map(|l| match kind {
            TargetKind::Head => (0..model.n_heads).map(|h| (l, Some(h))).collect::<Vec<_>>(),
            _ => vec![(l, None)],
        })
        .collect()
}

/// A random control: for each selected component, one of the same kind (and the same
/// position label) drawn without replacement from the sites the selection does not use.
/// The draw depends only on `seed`, the selection and the model's dimensions.
pub fn random_control(selected: &[Target], seed: u64, model: &ModelConfig) -> Result<Vec<Target>> {
    let used: BTreeSet<_> = selected.iter().map(Target::site).collect();
    let mut need: BTreeMap<TargetKind, usize> = BTreeMap::new();
    for t in selected {
        *need.entry(t.kind).or_default() += 1;
    }
    let mut pools: BTreeMap<TargetKind, Vec<(usize, Option<usize>)>> = BTreeMap::new();
    for (&kind, &n) in &need {
        let mut pool: Vec<_> = all_sites(kind, model)
            .into_iter()
            .filter(|&(l, h)| !used.contains(&(kind, l, h)))
            .collect();
        if pool.len() < n {
            return Err(DebiasError::Control(format!(
                "{n} {} components selected but only {} others exist in the model",
                kind.name(),
                pool.len()
            )));
        }
        let stream = match kind {
            TargetKind::Head => 1,
            TargetKind::AttnOut => 2,
            TargetKind::MlpOut => 3,
        };
        SeededRng::new(seed, stream).shuffle(&mut pool);
        pool.reverse();
        pools.insert(kind, pool);
    }
    selected
        .iter()
        .map(|t| {
            let (layer, head) = pools
                .get_mut(&t.kind)
                .and_then(Vec::pop)
                .ok_or_else(|| DebiasError::Control(format!("no {} left", t.kind.name())))?;
            Ok(Target {
                kind: t.kind,
                layer,
                head,
                position: t.position.clone(),
            })
        })
        .collect()
}
