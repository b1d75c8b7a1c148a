//! Effects as the pictures and summaries show them: aggregated per cell for heatmaps, the
//! tokens at each position, activation against attribution per cell and pair, the
//! components with the largest normalized effect (`cells_v`), and the weak pairs.
//!
//! Aggregates never average per-pair normalized effects (a pair whose clean and corrupted
//! metrics nearly agree gives any value): they sum `effect_terms_v`'s `shift` and
//! `abs_span` over the pairs with `|clean - corrupt| >= min_span` and divide, as `cells_v`
//! does.

use super::cells::decode;
use super::exec::Param;
use super::rounded;
use super::sweeps::Rounding;
use crate::store::{Store, StoreError};

/// Effects of one experiment, component, coordinate and position aggregated over the pairs
/// of one length.
#[derive(Clone, Debug, PartialEq)]
pub struct CellMean {
    pub experiment: String,
    pub method: String,
    pub component: String,
    pub layer: Option<i64>,
    pub head: Option<i64>,
    pub neuron: Option<i64>,
    pub position: Option<i64>,
    pub label: Option<String>,
    pub n_tokens: i64,
    /// Normalized effect, `shift / span`; `None` when no pair is strong.
    pub mean: Option<f64>,
    /// Sum of `sign(clean - corrupt) * (value - corrupt)` over the strong pairs.
    pub shift: f64,
    /// Sum of `|clean - corrupt|` over the strong pairs (cells combine by adding both).
    pub span: f64,
    /// How many strong pairs (effects) the sums are over.
    pub count: i64,
    /// How many pairs.
    pub pairs: i64,
}

/// Which clean tokens sit at one position (or label) across the pairs of one length.
#[derive(Clone, Debug, PartialEq)]
pub struct PositionToken {
    pub n_tokens: i64,
    pub position: i64,
    pub label: Option<String>,
    pub token: String,
    pub pairs: i64,
}

/// One cell and pair measured by both an activation and an attribution experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct ScatterPoint {
    pub component: String,
    pub activation: f64,
    pub attribution: f64,
}

/// Activation and attribution experiments of one sweep over the same cells.
#[derive(Clone, Debug, PartialEq)]
pub struct ScatterSet {
    pub activation: String,
    pub attribution: String,
    pub points: Vec<ScatterPoint>,
}

/// A component and coordinate with its effects averaged over pairs.
#[derive(Clone, Debug, PartialEq)]
pub struct TopComponent {
    pub component: String,
    pub layer: Option<i64>,
    pub head: Option<i64>,
    pub neuron: Option<i64>,
    /// The position label (`None` for cells measured at all positions jointly, or pairs
    /// stored without labels).
    pub position: Option<String>,
    /// Pairs measured.
    pub pairs: i64,
    /// Strong pairs (`|clean - corrupt| >= min_span`) the normalized effect is over.
    pub pairs_used: i64,
    /// `cells_v.normalized`.
    pub normalized: f64,
    /// `cells_v.mean_effect`: oriented toward the stereotyped answer where pairs have one.
    pub mean_effect: f64,
}

/// The pairs of a sweep below its `min_span`.
#[derive(Clone, Debug, PartialEq)]
pub struct WeakPairs {
    pub min_span: f64,
    /// Pairs in the sweep.
    pub pairs: i64,
    /// `(pair_id, clean - corrupt)` of the weak pairs, smallest |span| first.
    pub weak: Vec<(String, f64)>,
}

impl Store {
    /// Effects aggregated per (experiment, component, layer, head, neuron, position, label,
    /// pair length), in no particular order.
    pub async fn cell_means(&self, sweep_id: i64) -> Result<Vec<CellMean>, StoreError> {
        let r = self
            .fetch(
                "SELECT experiment, method, component, layer, head, neuron, position, \
                 position_label, n_tokens, SUM(shift) / NULLIF(SUM(abs_span), 0), \
                 COALESCE(SUM(shift), 0), COALESCE(SUM(abs_span), 0), COUNT(shift), \
                 COUNT(DISTINCT pair_id) \
                 FROM effect_terms_v WHERE sweep_id = $1 \
                 GROUP BY experiment, method, component, layer, head, neuron, position, \
                 position_label, n_tokens",
                &[Param::Int(sweep_id)],
            )
            .await?;
        decode(&r, |c| {
            Ok(CellMean {
                experiment: c.text("experiment")?,
                method: c.text("method")?,
                component: c.text("component")?,
                layer: c.opt_int("layer")?,
                head: c.opt_int("head")?,
                neuron: c.opt_int("neuron")?,
                position: c.opt_int("position")?,
                label: c.opt_text("position_label")?,
                n_tokens: c.int("n_tokens")?,
                mean: c.opt_float("normalized")?,
                shift: c.float("shift")?,
                span: c.float("abs_span")?,
                count: c.int("count")?,
                pairs: c.int("pairs")?,
            })
        })
    }

    /// Clean tokens counted per (pair length, position, label, token), in no particular
    /// order.
    pub async fn position_tokens(&self, sweep_id: i64) -> Result<Vec<PositionToken>, StoreError> {
        let r = self
            .fetch(
                "SELECT p.n_tokens, pp.position, pp.label, pp.clean_token, COUNT(*) \
                 FROM pair_positions pp JOIN pairs p ON p.sweep_id = pp.sweep_id AND p.pair_id = pp.pair_id \
                 WHERE pp.sweep_id = $1 GROUP BY p.n_tokens, pp.position, pp.label, pp.clean_token",
                &[Param::Int(sweep_id)],
            )
            .await?;
        decode(&r, |c| {
            Ok(PositionToken {
                n_tokens: c.int("n_tokens")?,
                position: c.int("position")?,
                label: c.opt_text("label")?,
                token: c.opt_text("clean_token")?.unwrap_or_default(),
                pairs: c.int("pairs")?,
            })
        })
    }

    /// Every (activation, attribution) pair of experiments with the same direction, by
    /// name, with one point per cell and pair that both measured; sets without a common
    /// point are left out. The join is on the raw `effects` table, where the -1 sentinels
    /// make plain equality work on both backends and each point is one lookup of its
    /// primary key.
    pub async fn scatter_sets(&self, sweep_id: i64) -> Result<Vec<ScatterSet>, StoreError> {
        let r = self
            .fetch(
                "SELECT a.name, b.name FROM experiments a JOIN experiments b \
                 ON b.sweep_id = a.sweep_id AND b.direction = a.direction \
                 WHERE a.sweep_id = $1 AND a.method = 'activation' AND b.method = 'attribution' \
                 ORDER BY a.name, b.name",
                &[Param::Int(sweep_id)],
            )
            .await?;
        let pairs = decode(&r, |c| Ok((c.text("activation")?, c.text("attribution")?)))?;
        let mut sets = Vec::new();
        for (activation, attribution) in pairs {
            let r = self
                .fetch(
                    "SELECT a.component, a.effect, b.effect FROM effects a \
                     JOIN effects b ON b.sweep_id = a.sweep_id AND b.experiment = $2 \
                      AND b.component = a.component AND b.layer = a.layer AND b.head = a.head \
                      AND b.position = a.position AND b.neuron = a.neuron AND b.pair_id = a.pair_id \
                     WHERE a.sweep_id = $1 AND a.experiment = $3",
                    &[
                        Param::Int(sweep_id),
                        Param::Text(&attribution),
                        Param::Text(&activation),
                    ],
                    )
                .await?;
            let points = decode(&r, |c| {
                Ok(ScatterPoint {
                    component: c.text("component")?,
                    activation: c.float("activation effect")?,
                    attribution: c.float("attribution effect")?,
                })
            })?;
            if !points.is_empty() {
                sets.push(ScatterSet {
                    activation,
                    attribution,
                    points,
                });
            }
        }
        Ok(sets)
    }

    /// The `limit` cells of an experiment (`cells_v`: component, coordinate and position
    /// label) that matter most, cells without a strong pair left out; values as `rounding`
    /// says. Direction-aware, as debias selection: a `denoise` cell by |normalized| (what it
    /// restores), a `noise` cell by |1 − normalized| (what corrupting it alone loses: a
    /// component that does nothing has normalized ≈ 1 and comes last).
    pub async fn top_components(
        &self,
        sweep_id: i64,
        experiment: &str,
        limit: i64,
        rounding: Rounding,
    ) -> Result<Vec<TopComponent>, StoreError> {
        let sql = format!(
            "SELECT component, layer, head, neuron, position_label, pairs, pairs_used, {}, {} \
             FROM cells_v WHERE sweep_id = $1 AND experiment = $2 AND normalized IS NOT NULL \
             ORDER BY ABS(CASE WHEN direction = 'noise' THEN 1 - normalized ELSE normalized END) \
             DESC, component, layer, head, position_label, neuron \
             LIMIT {limit}",
            rounded("normalized", rounding),
            rounded("mean_effect", rounding),
        );
        let r = self
            .fetch(&sql, &[Param::Int(sweep_id), Param::Text(experiment)])
            .await?;
        decode(&r, |c| {
            Ok(TopComponent {
                component: c.text("component")?,
                layer: c.opt_int("layer")?,
                head: c.opt_int("head")?,
                neuron: c.opt_int("neuron")?,
                position: c.opt_text("position_label")?,
                pairs: c.int("pairs")?,
                pairs_used: c.int("pairs_used")?,
                normalized: c.float("normalized")?,
                mean_effect: c.float("mean_effect")?,
            })
        })
    }

    /// The sweep's weak pairs (`pairs_v.weak`), smallest |span| first.
    pub async fn weak_pairs(&self, sweep_id: i64) -> Result<WeakPairs, StoreError> {
        let head = self
            .fetch(
                "SELECT s.min_span, COUNT(p.pair_id) FROM sweeps s \
                 LEFT JOIN pairs p ON p.sweep_id = s.id WHERE s.id = $1 GROUP BY s.min_span",
                &[Param::Int(sweep_id)],
            )
            .await?;
        let (min_span, pairs) = decode(&head, |c| Ok((c.float("min_span")?, c.int("pairs")?)))?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Query {
                message: format!("no sweep {sweep_id}"),
            })?;
        let r = self
            .fetch(
                "SELECT pair_id, span FROM pairs_v WHERE sweep_id = $1 AND weak = 1 \
                 ORDER BY ABS(span), pair_id",
                &[Param::Int(sweep_id)],
            )
            .await?;
        let weak = decode(&r, |c| Ok((c.text("pair_id")?, c.float("span")?)))?;
        Ok(WeakPairs {
            min_span,
            pairs,
            weak,
        })
    }
}
