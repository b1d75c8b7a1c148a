//! Choosing components from a sweep's stored effects.
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
//! (normalized ≈ 1). The matched random control is in [`super::control`].

use std::collections::BTreeSet;

use patchsweep_model::ModelConfig;
use serde::{Deserialize, Serialize};

use super::config::SelectionConfig;
use super::error::{config, DebiasError, Result};
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
