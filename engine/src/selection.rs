//! Component sets chosen from another experiment's stored effects: the top k sites of its
//! ranking, patched jointly, one pathway cell per k (the paper's "top 90 copying heads").
//!
//! The ranking is read from the store when the dependent task is leased (after the ranked
//! experiment has ended); [`PathwaySelection::pathways`] turns it into concrete pathways.

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::grid::{Component, Pathway, PathwaySite, PositionRef, SiteHeads};

/// How a selection ranks the sites of the experiment it reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    /// Mean over the strong pairs (`|clean - corrupt| >= min_span`) of the per-pair
    /// |normalized effect| (for a `noise` experiment |1 - normalized|: the share of the
    /// difference lost); weak pairs are left out, so it cannot blow up.
    #[default]
    MeanAbsNormalized,
    /// |normalized| of the cell as `cells_v` forms it (ratio of sums over strong pairs;
    /// `1 - normalized` for noise): effects of opposite sign on different pairs cancel.
    Normalized,
    /// Mean |effect| over every pair, in the metric's units.
    AbsEffect,
}

impl RankBy {
    pub const ALL: [RankBy; 3] = [
        RankBy::MeanAbsNormalized,
        RankBy::Normalized,
        RankBy::AbsEffect,
    ];

    /// The ranking a [`RankBy::name`] names.
    pub fn from_name(name: &str) -> Option<RankBy> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    pub fn name(&self) -> &'static str {
        match self {
            RankBy::MeanAbsNormalized => "mean_abs_normalized",
            RankBy::Normalized => "normalized",
            RankBy::AbsEffect => "abs_effect",
        }
    }
}

/// A pathway whose sites are the top k of another experiment's ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathwaySelection {
    pub name: String,
    /// The experiment whose stored effects are ranked.
    pub experiment: String,
    pub component: Component,
    /// One cell per k, ascending, without repeats.
    pub top_k: Vec<usize>,
    /// Only sites at this position (a label, or an index counted per pair).
    pub position: Option<PositionRef>,
    pub rank_by: RankBy,
}

/// One site of a ranking, best first, as the store reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedSite {
    pub layer: usize,
    pub head: Option<usize>,
    pub neuron: Option<usize>,
    pub position_label: Option<String>,
    /// Whether the ranked effects were measured at one position (`false`: every position at
    /// once, `positions = "joint"`).
    pub positioned: bool,
    pub score: f64,
}

/// The cell name of a selection's top-k set (its effects' component is `pathway:` + this).
pub fn selected_cell_name(pathway: &str, k: usize) -> String {
    format!("{pathway}/k={k}")
}

impl PathwaySelection {
    /// The `k`s this ranking can fill: each clamped to the sites ranked, repeats dropped.
    pub fn effective_k(&self, ranked: usize) -> Vec<usize> {
        let mut ks: Vec<usize> = self.top_k.iter().map(|&k| k.min(ranked)).collect();
        ks.retain(|&k| k > 0);
        ks.dedup();
        ks
    }

    /// One pathway per k from a ranking (best first): the first k sites, patched together.
    pub fn pathways(&self, ranked: &[RankedSite]) -> Result<Vec<(usize, Pathway)>> {
        if ranked.is_empty() {
            return Err(EngineError::Grid(format!(
                "pathway {}: experiment {:?} stored no {} effects to rank{}",
                self.name,
                self.experiment,
                self.component,
                match &self.position {
                    Some(p) => format!(" at position {p:?}"),
                    None => String::new(),
                }
            )));
        }
        let sites = ranked
            .iter()
            .map(|r| self.site(r))
            .collect::<Result<Vec<_>>>()?;
        Ok(self
            .effective_k(ranked.len())
            .into_iter()
            .map(|k| {
                (
                    k,
                    Pathway {
                        name: selected_cell_name(&self.name, k),
                        sites: sites[..k].to_vec(),
                    },
                )
            })
            .collect())
    }

    fn site(&self, r: &RankedSite) -> Result<PathwaySite> {
        let position = match (&r.position_label, r.positioned) {
            // An index names the same place in every pair; its label might not.
            _ if r.positioned && matches!(self.position, Some(PositionRef::Index(_))) => {
                self.position.clone()
            }
            (Some(label), _) => Some(PositionRef::Label(label.clone())),
            (None, false) => None,
            (None, true) => match &self.position {
                Some(p @ PositionRef::Index(_)) => Some(p.clone()),
                _ => {
                    return Err(EngineError::Grid(format!(
                        "pathway {}: experiment {:?} measured positions without labels; \
                         give the selection a position index (`position = -1`)",
                        self.name, self.experiment
                    )))
                }
            },
        };
        Ok(PathwaySite {
            component: self.component,
            layers: Some(vec![r.layer]),
            heads: r.head.map_or(SiteHeads::None, |h| SiteHeads::List(vec![h])),
            position,
            neuron: r.neuron,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(n: usize) -> Vec<RankedSite> {
        (0..n)
            .map(|i| RankedSite {
                layer: i / 4,
                head: Some(i % 4),
                neuron: None,
                position_label: Some("end".into()),
                positioned: true,
                score: 1.0 / (i + 1) as f64,
            })
            .collect()
    }

    fn selection(top_k: Vec<usize>) -> PathwaySelection {
        PathwaySelection {
            name: "copying".into(),
            experiment: "heads-attr".into(),
            component: Component::HeadOut,
            top_k,
            position: None,
            rank_by: RankBy::default(),
        }
    }

    #[test]
    fn each_k_takes_exactly_the_first_k_ranked_sites() {
        let r = ranked(10);
        let ps = selection(vec![1, 3, 7]).pathways(&r).unwrap();
        assert_eq!(ps.len(), 3);
        for (k, p) in &ps {
            assert_eq!(p.name, format!("copying/k={k}"));
            let got: Vec<_> = p
                .sites
                .iter()
                .map(|s| (s.layers.clone().unwrap()[0], s.heads.clone()))
                .collect();
            let want: Vec<_> = r[..*k]
                .iter()
                .map(|s| (s.layer, SiteHeads::List(vec![s.head.unwrap()])))
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn k_beyond_the_ranking_is_clamped_once() {
        assert_eq!(selection(vec![5, 10, 30, 90]).effective_k(12), [5, 10, 12]);
        let ps = selection(vec![30, 90]).pathways(&ranked(12)).unwrap();
        assert_eq!(ps.len(), 1);
        assert_eq!(ps[0].0, 12);
    }

    #[test]
    fn an_empty_ranking_names_the_experiment() {
        let err = selection(vec![5]).pathways(&[]).unwrap_err().to_string();
        assert!(
            err.contains("heads-attr") && err.contains("head_out"),
            "{err}"
        );
    }

    #[test]
    fn unlabelled_positions_need_an_index() {
        let mut r = ranked(2);
        r[0].position_label = None;
        let err = selection(vec![2]).pathways(&r).unwrap_err().to_string();
        assert!(err.contains("position = -1"), "{err}");
        let mut s = selection(vec![2]);
        s.position = Some(PositionRef::Index(-1));
        let ps = s.pathways(&r).unwrap();
        assert_eq!(ps[0].1.sites[0].position, Some(PositionRef::Index(-1)));
    }
}
