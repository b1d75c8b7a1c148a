//! Effects as the pictures and summaries show them: averaged per cell for heatmaps, the
//! tokens at each position, activation against attribution per cell and pair, and the
//! components with the largest mean normalized effect.

use super::cells::decode;
use super::exec::Param;
use super::rounded;
use super::sweeps::Rounding;
use crate::store::{Store, StoreError};

/// Effects of one experiment, component and coordinate averaged over the pairs of one length.
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
    /// Mean normalized effect; `None` when every normalized value was NULL.
    pub mean: Option<f64>,
    /// How many non-NULL normalized values the mean is over.
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
    /// The position label, or (where [`Store::top_components`] says so) the position index
    /// as text.
    pub position: Option<String>,
    /// Pairs (effects with a normalized value) averaged over.
    pub pairs: i64,
    pub mean_normalized: f64,
    pub mean_effect: f64,
}

impl Store {
    /// Normalized effects averaged per (experiment, component, layer, head, neuron,
    /// position, label, pair length), in no particular order.
    pub async fn cell_means(&self, sweep_id: i64) -> Result<Vec<CellMean>, StoreError> {
        let r = self
            .fetch(
                "SELECT e.experiment, e.method, e.component, e.layer, e.head, e.neuron, \
                 e.position, e.position_label, p.n_tokens, AVG(e.normalized), \
                 COUNT(e.normalized), COUNT(DISTINCT e.pair_id) \
                 FROM effects_v e JOIN pairs_v p ON p.sweep_id = e.sweep_id AND p.pair_id = e.pair_id \
                 WHERE e.sweep_id = $1 \
                 GROUP BY e.experiment, e.method, e.component, e.layer, e.head, e.neuron, \
                 e.position, e.position_label, p.n_tokens",
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
                mean: c.opt_float("mean")?,
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

    /// The `limit` components of an experiment with the largest |mean normalized effect|
    /// over pairs, effects without a normalized value left out; a component's positions
    /// are grouped by label where they have one, else by index (`position` is then the
    /// index as text).
    pub async fn top_components(
        &self,
        sweep_id: i64,
        experiment: &str,
        limit: i64,
    ) -> Result<Vec<TopComponent>, StoreError> {
        let r = self
            .fetch(
                &format!("SELECT component, layer, head, neuron, \
                 COALESCE(position_label, CAST(position AS TEXT)), COUNT(*), \
                 AVG(normalized), AVG(effect) \
                 FROM effects_v WHERE sweep_id = $1 AND experiment = $2 AND normalized IS NOT NULL \
                 GROUP BY component, layer, head, neuron, COALESCE(position_label, CAST(position AS TEXT)) \
                 ORDER BY ABS(AVG(normalized)) DESC LIMIT {limit}"),
                &[Param::Int(sweep_id), Param::Text(experiment)],
            )
            .await?;
        decode(&r, top_component)
    }

    /// Like [`Store::top_components`], but positions are grouped by label only (effects
    /// without one form one group per component, `position` `None`), and the means come
    /// as `rounding` says.
    pub async fn top_components_by_label(
        &self,
        sweep_id: i64,
        experiment: &str,
        limit: i64,
        rounding: Rounding,
    ) -> Result<Vec<TopComponent>, StoreError> {
        let sql = format!(
            "SELECT component, layer, head, neuron, position_label, COUNT(*), {}, {} \
             FROM effects_v WHERE sweep_id = $1 AND experiment = $2 AND normalized IS NOT NULL \
             GROUP BY component, layer, head, position_label, neuron \
             ORDER BY ABS(AVG(normalized)) DESC LIMIT {limit}",
            rounded("AVG(normalized)", rounding),
            rounded("AVG(effect)", rounding),
        );
        let r = self
            .fetch(&sql, &[Param::Int(sweep_id), Param::Text(experiment)])
            .await?;
        decode(&r, top_component)
    }
}

fn top_component(c: &mut super::cells::Cells<'_>) -> Result<TopComponent, StoreError> {
    Ok(TopComponent {
        component: c.text("component")?,
        layer: c.opt_int("layer")?,
        head: c.opt_int("head")?,
        neuron: c.opt_int("neuron")?,
        position: c.opt_text("position")?,
        pairs: c.int("pairs")?,
        mean_normalized: c.float("mean_normalized")?,
        mean_effect: c.float("mean_effect")?,
    })
}
