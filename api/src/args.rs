//! The arguments of each kind of task, stored as the task's JSON payload.

use patchsweep_engine::experiment::Baseline;
pub use patchsweep_engine::grid::PositionRef;
pub use patchsweep_engine::selection::{selected_cell_name, PathwaySelection, RankBy, RankedSite};
use serde::{Deserialize, Serialize};

/// The arguments of a prepare task: none (the spec says everything); stored as `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareTask {}

/// The arguments of a patch task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchTask {
    pub experiment: String,
    /// Pair ids, all of one token length.
    pub pairs: Vec<String>,
    /// `[clean, corrupted]` metric of each pair, measured once by the prepare task.
    pub baselines: Vec<[f32; 2]>,
    /// The layers of the experiment's grid this task covers; `None`: all of them.
    pub layers: Option<Vec<usize>>,
    /// Whether the experiment's pathways belong to this task.
    pub pathways: bool,
    /// Whether this task measures the experiment's selected pathways (and nothing else):
    /// it waits for the experiments they rank, and `rankings` is filled at lease time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub selected: bool,
    /// The experiment's selections; the store adds each one's ranking when it leases the
    /// task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rankings: Vec<SelectionRanking>,
}

/// The arguments of a benchmark task: consecutive pairs of one `[[benchmark]]` section,
/// scored on the sweep's model as it is (`base`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BenchmarkTask {
    /// The section's name.
    pub benchmark: String,
    /// The first pair's place among the section's selected pairs.
    pub first: usize,
    /// The pairs' ids, from `first` on (the worker checks its pairs are these).
    pub pairs: Vec<String>,
}

/// One selected pathway (its `top_k` clamped by the planner to the sites the ranked
/// experiment measures) and, from lease time, the ranking: that experiment's sites, best
/// first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionRanking {
    pub selection: PathwaySelection,
    #[serde(default)]
    pub sites: Vec<RankedSite>,
}

impl PatchTask {
    pub fn baselines(&self) -> Vec<Baseline> {
        self.baselines
            .iter()
            .map(|&[clean, corrupt]| Baseline { clean, corrupt })
            .collect()
    }
}

/// The arguments of a generate task: the generation check of one experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateTask {
    pub experiment: String,
    /// The pairs that get generations (the sweep's first, in dataset order).
    pub pairs: Vec<String>,
    /// Tokens generated per continuation.
    pub tokens: usize,
}

/// One component's score over a debias section's selection split:
/// `(component, layer, head, position_label, score)`, the score being the normalized effect
/// as `cells_v` forms it (strong pairs only), `1 - normalized` for a `noise` experiment.
pub type SelectionEffect = (String, i64, Option<i64>, Option<String>, f64);

/// A debias section's split as the prepare task stored it (`debias_splits`): the pair ids
/// of each part, in pair-id order. The split is drawn once, when the sweep is prepared; a
/// debias task runs on this stored split and never draws it again (a sweep prepared by an
/// older version keeps the split it was prepared with).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSplit {
    /// Pairs components are selected on (and directions, means, fine-tuning data come from).
    pub selection: Vec<String>,
    /// Pairs the evaluation runs on.
    pub heldout: Vec<String>,
    /// Pairs in neither.
    pub unused: Vec<String>,
}

impl StoredSplit {
    /// Adds a stored member; `part` is `selection`, `heldout` or `unused`.
    pub fn push(&mut self, pair_id: String, part: &str) -> Result<(), crate::UnknownName> {
        match part {
            "selection" => self.selection.push(pair_id),
            "heldout" => self.heldout.push(pair_id),
            "unused" => self.unused.push(pair_id),
            other => {
                return Err(crate::UnknownName {
                    what: "split part",
                    name: other.to_string(),
                })
            }
        }
        Ok(())
    }
}

/// The arguments of a debias task. At lease time the store adds `effects` (the
/// experiment's score per component, [`SelectionEffect`], over the selection split only) and
/// `split` (the section's stored split).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DebiasTask {
    /// The `[[debias]]` section's name.
    pub name: String,
    pub experiment: String,
    /// Filled in at lease time.
    #[serde(default)]
    pub effects: Vec<SelectionEffect>,
    /// Filled in at lease time; `None` as stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<StoredSplit>,
}

/// The JSON payload of a task's arguments.
pub fn payload<T: Serialize>(args: &T) -> String {
    serde_json::to_string(args).expect("plain data serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_as_stored_before() {
        assert_eq!(payload(&PrepareTask::default()), "{}");
        let d: DebiasTask = serde_json::from_str(r#"{"name":"d","experiment":"exp"}"#).unwrap();
        assert!(d.effects.is_empty());
        assert_eq!(d.split, None);
        // Stored before lease time without a split, as before.
        assert_eq!(
            payload(&d),
            r#"{"name":"d","experiment":"exp","effects":[]}"#
        );
    }

    #[test]
    fn stored_split_parts_are_named_as_stored() {
        let mut s = StoredSplit::default();
        s.push("a".into(), "selection").unwrap();
        s.push("b".into(), "heldout").unwrap();
        s.push("c".into(), "unused").unwrap();
        assert_eq!(
            (s.selection.len(), s.heldout.len(), s.unused.len()),
            (1, 1, 1)
        );
        let err = s.push("d".into(), "train").unwrap_err();
        assert_eq!(err.to_string(), "unknown split part `train`");
    }
}
