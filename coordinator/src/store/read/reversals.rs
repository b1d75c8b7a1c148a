//! Reversal rates (`reversals_v`): per cell, how many pairs' answer order the patch flips,
//! and the sites each selected set patched (`pathway_sites_v`).

use super::cells::decode;
use super::exec::Param;
use crate::store::{Store, StoreError};

/// One cell's reversals over the pairs of one stereotype label (or `all` of them).
#[derive(Clone, Debug, PartialEq)]
pub struct Reversal {
    pub experiment: String,
    pub direction: String,
    pub component: String,
    pub layer: Option<i64>,
    pub head: Option<i64>,
    pub position_label: Option<String>,
    pub neuron: Option<i64>,
    /// The size of a selected set.
    pub k: Option<i64>,
    /// `all`, or the pairs' stereotype label.
    pub stereotype: String,
    /// Measurements (one per pair, or per pair and position when a label covers several).
    pub pairs: i64,
    pub reversed: i64,
}

impl Reversal {
    pub fn share(&self) -> f64 {
        if self.pairs == 0 {
            0.0
        } else {
            self.reversed as f64 / self.pairs as f64
        }
    }
}

/// One site of a selected set, in rank order.
#[derive(Clone, Debug, PartialEq)]
pub struct SelectedSite {
    pub experiment: String,
    pub pathway: String,
    pub k: i64,
    pub site: i64,
    pub source: String,
    pub component: String,
    pub layer: i64,
    pub head: Option<i64>,
    pub position_label: Option<String>,
    pub score: f64,
}

impl Store {
    /// The reversal rates of a sweep's cells; with `pathways_only`, of its pathway cells
    /// (listed and selected sets) only. Ordered by experiment, cell, k, coordinates, label.
    pub async fn reversals(
        &self,
        sweep_id: i64,
        pathways_only: bool,
    ) -> Result<Vec<Reversal>, StoreError> {
        let r = self
            .fetch(
                "SELECT experiment, direction, component, layer, head, position_label, neuron, \
                 k, stereotype, pairs, reversed FROM reversals_v \
                 WHERE sweep_id = $1 AND ($2 = 0 OR component LIKE 'pathway:%') \
                 ORDER BY experiment, CASE WHEN k IS NULL THEN 0 ELSE 1 END, k, component, \
                 CASE WHEN layer IS NULL THEN 0 ELSE 1 END, layer, \
                 CASE WHEN head IS NULL THEN 0 ELSE 1 END, head, \
                 CASE WHEN position_label IS NULL THEN 0 ELSE 1 END, position_label, neuron, \
                 CASE WHEN stereotype = 'all' THEN 0 ELSE 1 END, stereotype",
                &[Param::Int(sweep_id), Param::Int(i64::from(pathways_only))],
            )
            .await?;
        decode(&r, |c| {
            Ok(Reversal {
                experiment: c.text("experiment")?,
                direction: c.text("direction")?,
                component: c.text("component")?,
                layer: c.opt_int("layer")?,
                head: c.opt_int("head")?,
                position_label: c.opt_text("position_label")?,
                neuron: c.opt_int("neuron")?,
                k: c.opt_int("k")?,
                stereotype: c.text("stereotype")?,
                pairs: c.int("pairs")?,
                reversed: c.int("reversed")?,
            })
        })
    }

    /// The sites each selected set of a sweep patched, by experiment, set and rank.
    pub async fn selected_sites(&self, sweep_id: i64) -> Result<Vec<SelectedSite>, StoreError> {
        let r = self
            .fetch(
                "SELECT experiment, pathway, k, site, source, component, layer, head, \
                 position_label, score FROM pathway_sites_v WHERE sweep_id = $1 \
                 ORDER BY experiment, k, pathway, site",
                &[Param::Int(sweep_id)],
            )
            .await?;
        decode(&r, |c| {
            Ok(SelectedSite {
                experiment: c.text("experiment")?,
                pathway: c.text("pathway")?,
                k: c.int("k")?,
                site: c.int("site")?,
                source: c.text("source")?,
                component: c.text("component")?,
                layer: c.int("layer")?,
                head: c.opt_int("head")?,
                position_label: c.opt_text("position_label")?,
                score: c.float("score")?,
            })
        })
    }
}
