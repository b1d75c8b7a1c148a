//! A worker parses and prepares a sweep once: later tasks of the same sweep reuse it, so
//! their spec text is not read again (no per-task parse, dataset read or tokenizing).

use patchsweep_api::{LeasedTask, TaskKind, TaskOutput};
use patchsweep_worker::executor::Executor;
use patchsweep_worker::faults::Faults;
use patchsweep_worker::model_executor::ModelExecutor;

fn spec() -> String {
    let model = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../model/tests/data/tiny-llama2"
    );
    format!(
        r#"name = "parse-once"
model = "{model}"

[metric]
kind = "logit_diff"
positive = [" to"]
negative = [" the"]

[dataset]
pairs = [
  {{ clean = "The cat said that", corrupt = "The bat said that" }},
  {{ clean = "The dog said that", corrupt = "The log said that" }},
]

[tasks]
pairs_per_task = 1
layers_per_task = 1

[[experiment]]
name = "resid"
method = "activation"
components = ["resid_pre"]
"#
    )
}

fn leased(sweep_id: i64, kind: TaskKind, spec_toml: &str, payload: &str) -> LeasedTask {
    LeasedTask {
        task_id: 1,
        attempt: 1,
        sweep_id,
        kind,
        model: String::new(),
        spec_toml: spec_toml.into(),
        payload: payload.into(),
        description: format!("{kind} task"),
    }
}

#[test]
fn later_tasks_of_a_prepared_sweep_do_not_parse_its_spec_again() {
    let mut exec = ModelExecutor::new(None, Faults::default());
    let prepared = exec
        .execute(&leased(1, TaskKind::Prepare, &spec(), "{}"))
        .expect("prepare");
    let TaskOutput::Prepare(prepared) = prepared else {
        panic!("a prepare task answers a prepared sweep");
    };
    let patch = prepared
        .tasks
        .iter()
        .find(|t| t.kind == TaskKind::Patch && !t.waits)
        .expect("a patch task");
    // The spec text of a later task is not read: the prepared sweep is reused.
    let out = exec
        .execute(&leased(1, TaskKind::Patch, "not a spec", &patch.payload))
        .expect("patch task of a prepared sweep");
    let TaskOutput::Patch(effects) = out else {
        panic!("a patch task answers effects");
    };
    assert!(!effects.is_empty());
    // Another sweep's spec is parsed (and refused, permanently, when it is not one).
    let err = exec
        .execute(&leased(2, TaskKind::Patch, "not a spec", &patch.payload))
        .unwrap_err();
    assert!(err.permanent, "{err}");
}

#[test]
fn an_adopted_sweep_is_never_parsed_by_the_executor() {
    // The embedded `run` parses and prepares once and hands both to its executor.
    let mut exec = ModelExecutor::new(None, Faults::default());
    let parsed = patchsweep_api::spec::SweepSpec::parse(&spec(), "test").unwrap();
    let model = exec.model_for(&parsed.spec).unwrap();
    let prepared = parsed.prepare(&model).unwrap();
    exec.adopt(7, parsed, prepared);
    let out = exec
        .execute(&leased(7, TaskKind::Prepare, "not a spec", "{}"))
        .expect("the adopted sweep's prepare task reads no spec text");
    let TaskOutput::Prepare(prepared) = out else {
        panic!("a prepare task answers a prepared sweep");
    };
    assert_eq!(prepared.pairs.len(), 2);
}
