//! The arguments of each kind of task, stored as the task's JSON payload.

use patchsweep_engine::experiment::Baseline;
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
}

impl PatchTask {
    pub fn baselines(&self) -> Vec<Baseline> {
        self.baselines
            .iter()
            .map(|&[clean, corrupt]| Baseline { clean, corrupt })
            .collect()
    }
}

/// One component's score over a debias section's selection split:
/// `(component, layer, head, position_label, score)`, the score being the normalized effect
/// as `cells_v` forms it (strong pairs only), `1 - normalized` for a `noise` experiment.
pub type SelectionEffect = (String, i64, Option<i64>, Option<String>, f64);

/// The arguments of a debias task. At lease time the store adds `effects`: the
/// experiment's score per component ([`SelectionEffect`]) over the selection split only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DebiasTask {
    /// The `[[debias]]` section's name.
    pub name: String,
    pub experiment: String,
    /// Filled in at lease time.
    #[serde(default)]
    pub effects: Vec<SelectionEffect>,
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
    }
}
