//! The arguments of each kind of task: [`TaskArgs`], typed on the wire, stored as JSON in
//! `tasks.payload` (this module is the only place that writes or reads that JSON).

use crate::task::TaskKind;
use patchsweep_engine::experiment::Baseline;
pub use patchsweep_engine::grid::PositionRef;
pub use patchsweep_engine::selection::{selected_cell_name, PathwaySelection, RankBy, RankedSite};
use serde::{Deserialize, Serialize};

/// The arguments of a prepare task: none (the spec says everything); stored as `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareTask {}

/// The arguments of a patch task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

/// A task's arguments, one variant per [`TaskKind`]: the kind of a task is the kind of
/// its arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskArgs {
    Prepare(PrepareTask),
    Patch(PatchTask),
    Debias(DebiasTask),
    Generate(GenerateTask),
    Benchmark(BenchmarkTask),
}

/// Stored arguments that do not read as their task's kind.
#[derive(Debug, thiserror::Error)]
#[error("the stored arguments of a {kind} task do not read: {reason}")]
pub struct UnreadableArgs {
    pub kind: TaskKind,
    pub reason: String,
}

impl TaskArgs {
    pub fn kind(&self) -> TaskKind {
        match self {
            TaskArgs::Prepare(_) => TaskKind::Prepare,
            TaskArgs::Patch(_) => TaskKind::Patch,
            TaskArgs::Debias(_) => TaskKind::Debias,
            TaskArgs::Generate(_) => TaskKind::Generate,
            TaskArgs::Benchmark(_) => TaskKind::Benchmark,
        }
    }

    /// The stored form: JSON of the variant's arguments (the `tasks.payload` column).
    pub fn to_stored(&self) -> String {
        let json = match self {
            TaskArgs::Prepare(a) => serde_json::to_string(a),
            TaskArgs::Patch(a) => serde_json::to_string(a),
            TaskArgs::Debias(a) => serde_json::to_string(a),
            TaskArgs::Generate(a) => serde_json::to_string(a),
            TaskArgs::Benchmark(a) => serde_json::to_string(a),
        };
        json.expect("plain data serializes")
    }

    /// Reads the stored form of a `kind` task's arguments.
    pub fn from_stored(kind: TaskKind, json: &str) -> Result<Self, UnreadableArgs> {
        fn read<T: serde::de::DeserializeOwned>(
            kind: TaskKind,
            json: &str,
        ) -> Result<T, UnreadableArgs> {
            serde_json::from_str(json).map_err(|e| UnreadableArgs {
                kind,
                reason: e.to_string(),
            })
        }
        Ok(match kind {
            TaskKind::Prepare => TaskArgs::Prepare(read(kind, json)?),
            TaskKind::Patch => TaskArgs::Patch(read(kind, json)?),
            TaskKind::Debias => TaskArgs::Debias(read(kind, json)?),
            TaskKind::Generate => TaskArgs::Generate(read(kind, json)?),
            TaskKind::Benchmark => TaskArgs::Benchmark(read(kind, json)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_as_stored_before() {
        assert_eq!(TaskArgs::Prepare(PrepareTask::default()).to_stored(), "{}");
        let stored = r#"{"name":"d","experiment":"exp"}"#;
        let TaskArgs::Debias(d) = TaskArgs::from_stored(TaskKind::Debias, stored).unwrap() else {
            panic!("a debias task's arguments")
        };
        assert!(d.effects.is_empty());
        assert_eq!(d.split, None);
        // Stored before lease time without a split, as before.
        assert_eq!(
            TaskArgs::Debias(d).to_stored(),
            r#"{"name":"d","experiment":"exp","effects":[]}"#
        );
    }

    #[test]
    fn arguments_of_another_kind_do_not_read() {
        let err =
            TaskArgs::from_stored(TaskKind::Patch, r#"{"name":"d","experiment":"e"}"#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the stored arguments of a patch task do not read: missing field"),
            "{err}"
        );
        let generate = TaskArgs::Generate(GenerateTask {
            experiment: "e".into(),
            pairs: vec!["p1".into()],
            tokens: 4,
        });
        let back = TaskArgs::from_stored(TaskKind::Generate, &generate.to_stored()).unwrap();
        assert_eq!((back.kind(), back), (TaskKind::Generate, generate));
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
