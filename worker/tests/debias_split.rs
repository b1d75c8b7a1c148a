//! A debias task runs on the split its arguments carry (the one the prepare task drew and
//! the store kept, attached at lease time), never on a split it draws itself: handed a
//! split with selection and held-out swapped, it evaluates on the swapped pairs.

use std::collections::BTreeMap;

use patchsweep_api::{
    spec_digest, DebiasRow, DebiasTask, LeasedTask, PrepareTask, PreparedSweep, StoredSplit,
    TaskArgs, TaskOutput,
};
use patchsweep_worker::executor::{Executor, TaskError, TaskProgress};
use patchsweep_worker::faults::Faults;
use patchsweep_worker::model_executor::ModelExecutor;

#[path = "../../tests/fixtures/tiny_spec.rs"]
mod tiny_spec;
use tiny_spec::{labelled_pairs, tiny_spec, WORDS};

fn spec() -> String {
    let rest = r#"
[[experiment]]
name = "heads"
method = "activation"
components = ["head_out"]
positions = "joint"

[[debias]]
name = "top"
experiment = "heads"
evaluate_selection = true

[debias.select]
components = ["head L0H0", "head L1H2"]

[debias.split]
heldout_professions = 0.4
heldout_templates = 0
seed = 3

[debias.neutral]
max_chunks = 1

[[debias.intervention]]
kind = "ablation"
mode = "zero"
"#;
    tiny_spec("stored-split", &(labelled_pairs(&WORDS[..6]) + rest))
}

fn leased(spec_toml: Option<&str>, args: TaskArgs) -> LeasedTask {
    let kind = args.kind();
    LeasedTask {
        task_id: 1,
        attempt: 1,
        sweep_id: 1,
        model: String::new(),
        spec_toml: spec_toml.map(str::to_string),
        spec_digest: spec_digest(&spec()),
        args,
        description: format!("{kind} task"),
    }
}

/// A prepared sweep on a fresh executor: the executor, the prepare output, the stored
/// split (as the store would read it back) and the debias task's arguments as stored.
fn prepared() -> (ModelExecutor, PreparedSweep, StoredSplit, DebiasTask) {
    let mut exec = ModelExecutor::new(None, Faults::default());
    let text = spec();
    let out = exec
        .execute(
            &leased(Some(&text), TaskArgs::Prepare(PrepareTask {})),
            &TaskProgress::default(),
        )
        .expect("prepare");
    let TaskOutput::Prepare(p) = out else {
        panic!("a prepare task answers a prepared sweep");
    };
    let mut split = StoredSplit::default();
    for (debias, pair_id, part) in &p.splits {
        assert_eq!(debias, "top");
        split.push(pair_id.clone(), part).unwrap();
    }
    let args = p
        .tasks
        .iter()
        .find_map(|t| match &t.args {
            TaskArgs::Debias(args) => Some(args.clone()),
            _ => None,
        })
        .expect("a debias task");
    (exec, p, split, args)
}

fn run(
    exec: &mut ModelExecutor,
    args: &DebiasTask,
    split: Option<StoredSplit>,
) -> Result<Vec<DebiasRow>, TaskError> {
    let args = DebiasTask {
        split,
        ..args.clone()
    };
    match exec.execute(
        &leased(None, TaskArgs::Debias(args)),
        &TaskProgress::default(),
    )? {
        TaskOutput::Debias { rows, .. } => Ok(rows),
        other => panic!("a debias task answers debias rows, not {other:?}"),
    }
}

/// (split, metric) → (before, after) of the bias rows.
fn figures(rows: &[DebiasRow]) -> BTreeMap<(String, String), (f64, f64)> {
    rows.iter()
        .filter(|r| r.split == "heldout" || r.split == "selection")
        .map(|r| ((r.split.clone(), r.metric.clone()), (r.before, r.after)))
        .collect()
}

#[test]
fn a_debias_task_evaluates_on_the_split_it_is_handed() {
    let (mut exec, _, stored, args) = prepared();
    assert!(!stored.selection.is_empty() && !stored.heldout.is_empty());
    let as_stored = figures(&run(&mut exec, &args, Some(stored.clone())).unwrap());
    let swapped_split = StoredSplit {
        selection: stored.heldout.clone(),
        heldout: stored.selection.clone(),
        unused: stored.unused.clone(),
    };
    let swapped = figures(&run(&mut exec, &args, Some(swapped_split)).unwrap());
    assert!(!as_stored.is_empty());
    let mut compared = 0;
    for ((part, metric), figure) in &as_stored {
        let other = if part == "heldout" {
            "selection"
        } else {
            "heldout"
        };
        assert_eq!(
            swapped.get(&(other.to_string(), metric.clone())),
            Some(figure),
            "{part} {metric}: the swapped split's {other} pairs are the stored {part} pairs"
        );
        compared += 1;
    }
    assert!(compared >= 2, "{as_stored:?}");
    assert_ne!(
        as_stored, swapped,
        "the two parts differ, so a run that drew its own split would be caught"
    );
}

#[test]
fn a_debias_task_without_a_usable_stored_split_fails_permanently() {
    let (mut exec, _, stored, args) = prepared();
    let err = run(&mut exec, &args, None).unwrap_err();
    assert!(
        err.permanent && err.message.contains("carries no stored split"),
        "{err}"
    );
    let mut unknown = stored.clone();
    unknown.heldout.push("no-such-pair".into());
    let err = run(&mut exec, &args, Some(unknown)).unwrap_err();
    assert!(
        err.permanent && err.message.contains("`no-such-pair`"),
        "{err}"
    );
    let empty = StoredSplit {
        heldout: Vec::new(),
        ..stored
    };
    let err = run(&mut exec, &args, Some(empty)).unwrap_err();
    assert!(err.permanent && err.message.contains("0 held-out"), "{err}");
}
