//! The `Coordinator` core itself (what the gRPC server and the embedded `run` both call),
//! on a temporary SQLite store: a sweep from submit to done through its own calls; bad
//! requests refused; cancel and resume; a held sweep's tasks without their spec text.

use std::collections::BTreeMap;

use patchsweep_api::{
    spec_digest, EffectRow, HeldLease, HeldSweep, NewTask, PairRow, PatchTask, PreparedSweep,
    Settled, TaskArgs, TaskOutput, WorkerInfo, WorkerStatus,
};
use patchsweep_coordinator::service::{Coordinator, CoordinatorError};
use patchsweep_coordinator::store::{QueuePolicy, Store};

#[path = "../../tests/fixtures/tiny_spec.rs"]
mod tiny_spec;
use tiny_spec::{said_pairs, tiny_spec};

fn spec() -> String {
    let rest = "\n[[experiment]]\nname = \"resid\"\nmethod = \"activation\"\n\
                components = [\"resid_pre\"]\n";
    tiny_spec(
        "core",
        &(said_pairs(&[("cat", "bat"), ("dog", "log")]) + rest),
    )
}

/// A coordinator on a fresh SQLite file (kept while the folder lives).
async fn coordinator() -> (Coordinator, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("core.db").display());
    let policy = QueuePolicy {
        lease_seconds: 30.0,
        backoff_base_seconds: 0.01,
        backoff_max_seconds: 0.01,
        max_attempts: 2,
    };
    (
        Coordinator::new(Store::connect(&url).await.unwrap(), policy),
        dir,
    )
}

async fn worker(c: &Coordinator, name: &str) -> String {
    let reg = c.register(WorkerInfo::new(name, "cpu")).await.unwrap();
    assert!(reg.worker_id.starts_with(&format!("{name}-")), "{reg:?}");
    assert_eq!(reg.heartbeat_seconds, reg.lease_seconds / 4.0);
    reg.worker_id
}

fn pair(id: &str) -> PairRow {
    PairRow {
        pair_id: id.into(),
        template: None,
        clean_prompt: "The cat said that".into(),
        corrupt_prompt: "The bat said that".into(),
        clean_ids: vec![1, 2, 3, 4],
        corrupt_ids: vec![1, 5, 3, 4],
        labels: BTreeMap::new(),
        clean_metric: 1.0,
        corrupt_metric: -1.0,
        position_labels: vec![],
        clean_tokens: vec![],
        corrupt_tokens: vec![],
        toward_stereotype: 0,
    }
}

/// What a prepare task of the spec answers: two pairs, one patch task each.
fn prepared() -> PreparedSweep {
    let tasks = ["p0", "p1"]
        .into_iter()
        .map(|id| {
            let args = PatchTask {
                experiment: "resid".into(),
                pairs: vec![id.into()],
                baselines: vec![[1.0, -1.0]],
                layers: None,
                pathways: false,
                selected: false,
                rankings: Vec::new(),
            };
            NewTask {
                args: TaskArgs::Patch(args),
                description: format!("resid {id}"),
                cost: 8,
                stage: 0,
            }
        })
        .collect();
    PreparedSweep {
        pairs: vec![pair("p0"), pair("p1")],
        dropped_pairs: vec![],
        dropped: vec![],
        experiments: vec![("resid".into(), "activation".into(), "denoise".into())],
        tasks,
        splits: vec![],
    }
}

fn effects(pair_id: &str) -> Vec<EffectRow> {
    (0..2)
        .map(|layer| EffectRow {
            experiment: "resid".into(),
            component: "resid_pre".into(),
            layer: Some(layer),
            head: None,
            position: Some(1),
            neuron: None,
            pair_id: pair_id.into(),
            value: 0.5,
            effect: 0.5,
            normalized: Some(0.25),
        })
        .collect()
}

#[tokio::test]
async fn a_sweep_goes_from_submit_to_done() {
    let (c, _dir) = coordinator().await;
    let text = spec();
    let sweep = c.submit(&text, "test").await.unwrap();
    let p = c.progress(sweep).await.unwrap();
    assert_eq!((p.name.as_str(), p.state.as_str()), ("core", "queued"));
    assert_eq!((p.tasks.queued, p.tasks.total()), (1, 1));

    let w = worker(&c, "w").await;
    let prep = c.lease(&w, &[], &[], 5).await.unwrap();
    assert_eq!(prep.len(), 1, "only the prepare task exists yet");
    let prep = &prep[0];
    assert_eq!(prep.kind().as_str(), "prepare");
    assert_eq!(prep.spec_toml.as_deref(), Some(text.as_str()));
    assert_eq!(c.progress(sweep).await.unwrap().state, "running");
    let out = TaskOutput::Prepare(prepared());
    assert_eq!(
        c.complete(&w, prep.task_id, prep.attempt, &out)
            .await
            .unwrap(),
        Settled::Completed { rows: 2 }
    );
    let p = c.progress(sweep).await.unwrap();
    assert_eq!((p.tasks.done, p.tasks.queued), (1, 2));
    assert_eq!(p.patches_total, 16);

    // The worker now holds the sweep: its patch tasks come without the spec text.
    let held = [HeldSweep {
        sweep_id: sweep,
        spec_digest: spec_digest(&text),
    }];
    let patches = c.lease(&w, &[], &held, 5).await.unwrap();
    assert_eq!(patches.len(), 2);
    for t in &patches {
        assert_eq!(t.spec_toml, None);
        let TaskArgs::Patch(args) = &t.args else {
            panic!("a patch task: {t:?}");
        };
        let out = TaskOutput::Patch(effects(&args.pairs[0]));
        assert_eq!(
            c.complete(&w, t.task_id, t.attempt, &out).await.unwrap(),
            Settled::Completed { rows: 2 }
        );
    }
    let p = c.progress(sweep).await.unwrap();
    assert_eq!(p.state, "done");
    assert_eq!((p.tasks.done, p.effects_stored), (3, 4));
    assert!(p.is_final() && p.finished_at.is_some());
    assert!(c.lease(&w, &[], &[], 1).await.unwrap().is_empty());
    assert_eq!(c.list(10).await.unwrap()[0].sweep_id, sweep);
}

#[tokio::test]
async fn bad_requests_are_refused_and_store_nothing() {
    let (c, _dir) = coordinator().await;
    let err = c
        .submit(&spec().replace("logit_diff", "vibes"), "test")
        .await
        .unwrap_err();
    assert!(matches!(err, CoordinatorError::Spec(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("line 5") && msg.contains("`vibes`"), "{msg}");
    assert!(c.list(10).await.unwrap().is_empty());
    let err = c.register(WorkerInfo::new(" ", "cpu")).await.unwrap_err();
    assert_eq!(err.to_string(), "invalid request: worker name is empty");
    assert!(c.progress(42).await.is_err());
}

#[tokio::test]
async fn a_permanent_prepare_failure_fails_the_sweep_and_resume_runs_it_again() {
    let (c, _dir) = coordinator().await;
    let sweep = c.submit(&spec(), "test").await.unwrap();
    let w = worker(&c, "w").await;
    let t = c.lease(&w, &[], &[], 1).await.unwrap().remove(0);
    let settled = c
        .fail(&w, t.task_id, t.attempt, "does not fit the model", true)
        .await
        .unwrap();
    assert_eq!(settled, Settled::Failed);
    let p = c.progress(sweep).await.unwrap();
    assert_eq!(
        (p.state.as_str(), p.error.as_deref()),
        ("failed", Some("does not fit the model"))
    );
    let p = c.resume(sweep).await.unwrap();
    assert_eq!((p.state.as_str(), p.tasks.queued), ("running", 1));
    let again = c.lease(&w, &[], &[], 1).await.unwrap().remove(0);
    assert_eq!((again.task_id, again.attempt), (t.task_id, 1));
}

#[tokio::test]
async fn cancel_fences_the_held_lease_and_resume_requeues() {
    let (c, _dir) = coordinator().await;
    let sweep = c.submit(&spec(), "test").await.unwrap();
    let w = worker(&c, "w").await;
    let prep = c.lease(&w, &[], &[], 1).await.unwrap().remove(0);
    c.complete(
        &w,
        prep.task_id,
        prep.attempt,
        &TaskOutput::Prepare(prepared()),
    )
    .await
    .unwrap();
    let leased = c.lease(&w, &[], &[], 1).await.unwrap().remove(0);
    let p = c.cancel(sweep).await.unwrap();
    assert_eq!((p.state.as_str(), p.tasks.cancelled), ("cancelled", 2));
    assert!(c.lease(&w, &[], &[], 5).await.unwrap().is_empty());
    let late = c
        .complete(
            &w,
            leased.task_id,
            leased.attempt,
            &TaskOutput::Patch(effects("p0")),
        )
        .await
        .unwrap();
    assert!(matches!(late, Settled::Stale { .. }), "{late:?}");
    assert!(!c.release(&w, leased.task_id, leased.attempt).await.unwrap());

    let p = c.resume(sweep).await.unwrap();
    assert_eq!((p.state.as_str(), p.tasks.queued), ("running", 2));
    let again = c.lease(&w, &[], &[], 5).await.unwrap();
    assert_eq!(again.len(), 2);
    for t in &again {
        let TaskArgs::Patch(args) = &t.args else {
            panic!("a patch task: {t:?}");
        };
        c.complete(
            &w,
            t.task_id,
            t.attempt,
            &TaskOutput::Patch(effects(&args.pairs[0])),
        )
        .await
        .unwrap();
    }
    let p = c.progress(sweep).await.unwrap();
    assert_eq!((p.state.as_str(), p.effects_stored), ("done", 4));
}

#[tokio::test]
async fn a_released_lease_is_leased_again_and_lease_sizes_are_bounded() {
    let (c, _dir) = coordinator().await;
    c.submit(&spec(), "test").await.unwrap();
    let w = worker(&c, "w").await;
    let prep = c.lease(&w, &[], &[], 0).await.unwrap();
    assert_eq!(prep.len(), 1, "a lease of 0 asks for one");
    assert!(c
        .release(&w, prep[0].task_id, prep[0].attempt)
        .await
        .unwrap());
    let again = c.lease(&w, &[], &[], 1).await.unwrap().remove(0);
    assert_eq!(again.task_id, prep[0].task_id);
    let hb = c
        .heartbeat(
            &w,
            &WorkerStatus::default(),
            &[
                HeldLease::new(again.task_id, again.attempt),
                HeldLease::new(again.task_id, 99),
            ],
        )
        .await
        .unwrap();
    assert_eq!(hb, [(again.task_id, 99)], "only the lease held is extended");
}
