//! A worker parses and prepares a sweep once: later tasks of the same sweep reuse it, and
//! come without their spec text (no per-task parse, dataset read or tokenizing).

use patchsweep_api::{
    spec_digest, HeldSweep, LeasedTask, PrepareTask, TaskArgs, TaskKind, TaskOutput,
};
use patchsweep_worker::executor::{Executor, TaskProgress};
use patchsweep_worker::faults::Faults;
use patchsweep_worker::model_executor::ModelExecutor;

#[path = "../../tests/fixtures/tiny_spec.rs"]
mod tiny_spec;
use tiny_spec::{said_pairs, tiny_spec};

fn spec() -> String {
    let rest = "[tasks]\npairs_per_task = 1\nlayers_per_task = 1\n\n[[experiment]]\n\
                name = \"resid\"\nmethod = \"activation\"\ncomponents = [\"resid_pre\"]\n";
    tiny_spec(
        "parse-once",
        &(said_pairs(&[("cat", "bat"), ("dog", "log")]) + "\n" + rest),
    )
}

const PREPARE: TaskArgs = TaskArgs::Prepare(PrepareTask {});

fn leased(sweep_id: i64, spec_toml: Option<&str>, digest: &str, args: &TaskArgs) -> LeasedTask {
    let kind = args.kind();
    LeasedTask {
        task_id: 1,
        attempt: 1,
        sweep_id,
        model: String::new(),
        spec_toml: spec_toml.map(str::to_string),
        spec_digest: digest.into(),
        args: args.clone(),
        description: format!("{kind} task"),
    }
}

#[test]
fn later_tasks_of_a_held_sweep_come_and_run_without_its_spec() {
    let mut exec = ModelExecutor::new(None, Faults::default());
    let text = spec();
    let digest = spec_digest(&text);
    assert!(exec.held_sweeps().is_empty());
    let prepared = exec
        .execute(
            &leased(1, Some(&text), &digest, &PREPARE),
            &TaskProgress::default(),
        )
        .expect("prepare");
    let TaskOutput::Prepare(prepared) = prepared else {
        panic!("a prepare task answers a prepared sweep");
    };
    // The worker names the sweep when it leases, so its tasks come without the text.
    assert_eq!(
        exec.held_sweeps(),
        [HeldSweep {
            sweep_id: 1,
            spec_digest: digest.clone()
        }]
    );
    let patch = prepared
        .tasks
        .iter()
        .find(|t| t.kind() == TaskKind::Patch && t.stage == 0)
        .expect("a patch task");
    let progress = TaskProgress::default();
    let out = exec
        .execute(&leased(1, None, &digest, &patch.args), &progress)
        .expect("patch task of a held sweep, without spec text");
    assert_eq!(
        progress.fraction(),
        1.0,
        "a finished patch task moved its progress to the end"
    );
    let TaskOutput::Patch(effects) = out else {
        panic!("a patch task answers effects");
    };
    assert!(!effects.is_empty());
    // The same sweep id under another digest (another database's sweep 1) is not reused:
    // its own text is parsed (and refused, permanently, when it is not a spec).
    let err = exec
        .execute(
            &leased(1, Some("not a spec"), "other", &patch.args),
            &TaskProgress::default(),
        )
        .unwrap_err();
    assert!(err.permanent, "{err}");
    // A sweep this worker does not hold, sent without its text: a transient error (the
    // next lease, which does not name it, brings the text).
    let err = exec
        .execute(
            &leased(2, None, &digest, &patch.args),
            &TaskProgress::default(),
        )
        .unwrap_err();
    assert!(!err.permanent, "{err}");
    assert!(
        err.message.contains("sweep 2's spec text was not sent"),
        "{err}"
    );
}

#[test]
fn an_adopted_sweep_is_never_parsed_by_the_executor() {
    // The embedded `run` parses and prepares once and hands both to its executor.
    let mut exec = ModelExecutor::new(None, Faults::default());
    let text = spec();
    let parsed = patchsweep_api::spec::SweepSpec::parse(&text, "test").unwrap();
    let model = exec.model_for(&parsed.spec).unwrap();
    let prepared = parsed.prepare(&model).unwrap();
    exec.adopt(7, spec_digest(&text), parsed, prepared);
    assert_eq!(exec.held_sweeps()[0].sweep_id, 7);
    let out = exec
        .execute(
            &leased(7, None, &spec_digest(&text), &PREPARE),
            &TaskProgress::default(),
        )
        .expect("the adopted sweep's prepare task needs no spec text");
    let TaskOutput::Prepare(prepared) = out else {
        panic!("a prepare task answers a prepared sweep");
    };
    assert_eq!(prepared.pairs.len(), 2);
}
