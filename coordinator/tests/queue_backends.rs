//! The task queue's semantics, run against both backends: leases, fencing, exactly-once
//! results, expiry, retries with backoff, permanent failures, cancel and resume, and
//! concurrent leasing.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use patchsweep_api::{
    spec_digest, DebiasTask, DroppedPair, HeldLease, PatchTask, PrepareTask, StoredSplit, TaskArgs,
    WorkerStatus,
};
use patchsweep_coordinator::store::{
    DebiasRow, EffectRow, HeldSweep, LeaseScope, LeasedTask, NewTask, PairRow, PreparedSweep,
    QueuePolicy, Settled, Store, SweepSelection, TaskOutput, WorkerInfo,
};

#[macro_use]
#[path = "common/testdb.rs"]
mod testdb;
use testdb::*;
#[path = "common/prepared.rs"]
mod prepared;
use prepared::policy_with_lease as policy;

/// Arguments of a `kind` task, told apart by `n`.
fn args(kind: &str, n: usize) -> TaskArgs {
    match kind {
        "prepare" => TaskArgs::Prepare(PrepareTask {}),
        "debias" => TaskArgs::Debias(DebiasTask {
            name: "d".into(),
            experiment: "exp".into(),
            ..Default::default()
        }),
        _ => TaskArgs::Patch(PatchTask {
            experiment: format!("e{n}"),
            ..Default::default()
        }),
    }
}

fn task(kind: &str, n: usize, waits: bool) -> NewTask {
    NewTask {
        args: args(kind, n),
        description: format!("{kind} {n}"),
        cost: 10,
        stage: u32::from(waits),
    }
}

fn pair(id: &str) -> PairRow {
    PairRow {
        pair_id: id.into(),
        template: None,
        clean_prompt: "a b".into(),
        corrupt_prompt: "a c".into(),
        clean_ids: vec![1, 2],
        corrupt_ids: vec![1, 3],
        labels: BTreeMap::new(),
        clean_metric: 1.0,
        corrupt_metric: 0.0,
        toward_stereotype: 0,
        position_labels: vec![],
        clean_tokens: vec![],
        corrupt_tokens: vec![],
    }
}

fn effects(pair_id: &str, layers: std::ops::Range<u32>) -> Vec<EffectRow> {
    layers
        .map(|l| EffectRow {
            experiment: "exp".into(),
            component: "resid_pre".into(),
            layer: Some(l),
            head: None,
            position: Some(1),
            neuron: None,
            pair_id: pair_id.into(),
            value: l as f64,
            effect: 0.5,
            normalized: Some(0.5),
        })
        .collect()
}

async fn worker(store: &Store, id: &str) -> String {
    store
        .register_worker(&WorkerInfo {
            id: id.into(),
            ..WorkerInfo::new(id, "cpu")
        })
        .await
        .unwrap();
    id.to_string()
}

async fn lease_one(store: &Store, w: &str, p: &QueuePolicy) -> Option<LeasedTask> {
    store
        .lease_tasks(w, "", 1, p)
        .await
        .unwrap()
        .into_iter()
        .next()
}

/// A sweep whose prepare task completed with `patches` patch tasks (and one waiting
/// debias task `d` when `debias`, its split: p0 selection, p1 held out); answers the sweep
/// id.
async fn prepared_sweep(store: &Store, p: &QueuePolicy, patches: usize, debias: bool) -> i64 {
    let id = store
        .submit_sweep(
            "s",
            "spec",
            "gguf:m",
            0.0,
            0.0,
            &[task("prepare", 0, false)],
            p,
        )
        .await
        .unwrap();
    let w = worker(store, "preparer").await;
    let prep = lease_one(store, &w, p).await.expect("the prepare task");
    assert_eq!(
        (
            prep.kind().as_str(),
            prep.attempt,
            prep.spec_toml.as_deref()
        ),
        ("prepare", 1, Some("spec"))
    );
    let mut tasks: Vec<NewTask> = (0..patches).map(|n| task("patch", n, false)).collect();
    if debias {
        tasks.push(task("debias", 99, true));
    }
    let out = TaskOutput::Prepare(PreparedSweep {
        pairs: vec![pair("p0"), pair("p1")],
        dropped: vec![("token_count_mismatch".into(), 1)],
        dropped_pairs: vec![DroppedPair {
            id: "p9".into(),
            reason: "token_count_mismatch".into(),
            clean: "The carpenter said that".into(),
            corrupt: "The woman said that".into(),
            clean_tokens: 5,
            corrupt_tokens: 4,
        }],
        experiments: vec![("exp".into(), "activation".into(), "denoise".into())],
        tasks,
        splits: if debias {
            vec![
                ("d".into(), "p0".into(), "selection".into()),
                ("d".into(), "p1".into(), "heldout".into()),
            ]
        } else {
            vec![]
        },
    });
    let settled = store
        .complete_task(&w, prep.task_id, prep.attempt, &out, p)
        .await
        .unwrap();
    assert_eq!(settled, Settled::Completed { rows: 2 });
    id
}

/// Runs a statement on the database behind the store, as an operator (or a bug) might.
async fn tamper(url: &str, statement: &str) {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(statement).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(statement).execute(&mut c).await.unwrap();
    }
}

async fn count(store: &Store, sql: &str) -> i64 {
    let r = store.query_readonly(sql).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    v[0].as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_i64()
        .unwrap()
}

mod suite {
    use super::*;

    pub async fn results_land_once_and_the_sweep_ends(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let p = policy(30.0);
        let sweep = prepared_sweep(&store, &p, 2, true).await;
        let w = worker(&store, "w1").await;
        let a = lease_one(&store, &w, &p).await.unwrap();
        let b = lease_one(&store, &w, &p).await.unwrap();
        assert_eq!((a.kind().as_str(), b.kind().as_str()), ("patch", "patch"));
        // The debias task waits for the patch tasks.
        assert!(lease_one(&store, &w, &p).await.is_none());
        let out = TaskOutput::Patch(effects("p0", 0..5));
        assert_eq!(
            store
                .complete_task(&w, a.task_id, a.attempt, &out, &p)
                .await
                .unwrap(),
            Settled::Completed { rows: 5 }
        );
        // A re-delivered result is refused and lands nowhere.
        let again = store
            .complete_task(&w, a.task_id, a.attempt, &out, &p)
            .await
            .unwrap();
        assert!(matches!(again, Settled::Stale { .. }), "{again:?}");
        let out_b = TaskOutput::Patch(effects("p1", 0..5));
        store
            .complete_task(&w, b.task_id, b.attempt, &out_b, &p)
            .await
            .unwrap();
        let d = lease_one(&store, &w, &p)
            .await
            .expect("the debias task, now released");
        assert_eq!(d.kind().as_str(), "debias");
        let rows = vec![DebiasRow {
            debias: "d".into(),
            intervention: "ablation-zero".into(),
            components: "mlp_out L0".into(),
            split: "heldout".into(),
            metric: "mean_logit_diff".into(),
            before: 1.0,
            after: 0.25,
            control_after: Some(0.9),
            control_components: Some("mlp_out L3".into()),
            control_sets: Some(20),
            control_p05: Some(0.7),
            control_p95: Some(1.1),
            control_percentile: Some(2.5),
            n: Some(6),
            before_ci: Some((0.5, 1.5)),
            after_ci: Some((-0.25, 0.75)),
            control_ci: Some((0.8, 1.0)),
        }];
        let settled = store
            .complete_task(
                &w,
                d.task_id,
                d.attempt,
                &TaskOutput::Debias {
                    rows,
                    benchmarks: Vec::new(),
                },
                &p,
            )
            .await
            .unwrap();
        assert_eq!(settled, Settled::Completed { rows: 1 });
        let prog = store.sweep_progress(sweep, &p).await.unwrap();
        assert_eq!(prog.state, "done");
        assert_eq!((prog.tasks.done, prog.tasks.total()), (4, 4));
        assert_eq!((prog.patches_done, prog.patches_total), (40, 40));
        assert_eq!(prog.effects_stored, 10);
        assert_eq!(prog.stale_results, 1);
        // status/watch carry each figure's n and intervals.
        let f = &prog.debias[0];
        assert_eq!(
            (f.n, f.before_ci, f.after_ci, f.control_ci),
            (
                Some(6),
                Some((0.5, 1.5)),
                Some((-0.25, 0.75)),
                Some((0.8, 1.0))
            )
        );
        assert_eq!(count(&store, "SELECT COUNT(*) FROM effects_v").await, 10);
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM debias_v WHERE delta = -0.75").await,
            1
        );
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM debias_v WHERE n = 6 AND before_ci_low = 0.5 \
                 AND before_ci_high = 1.5 AND after_ci_low = -0.25 AND after_ci_high = 0.75 \
                 AND control_ci_low = 0.8 AND control_ci_high = 1.0"
            )
            .await,
            1,
            "n and the intervals are stored"
        );
        // The matched control's summary round-trips on both backends.
        let stored = store.debias_rows(sweep).await.unwrap();
        assert_eq!(
            (
                stored[0].control_sets,
                stored[0].control_p05,
                stored[0].control_p95,
                stored[0].control_percentile,
                stored[0].control_ci
            ),
            (Some(20), Some(0.7), Some(1.1), Some(2.5), Some((0.8, 1.0)))
        );
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM tasks_v WHERE state = 'done'").await,
            4
        );
        assert_eq!(count(&store, "SELECT COUNT(*) FROM workers_v").await, 2);
    }

    pub async fn expired_leases_are_fenced(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let p = policy(0.3);
        let sweep = prepared_sweep(&store, &p, 1, false).await;
        let (a, b) = (worker(&store, "a").await, worker(&store, "b").await);
        let first = lease_one(&store, &a, &p).await.unwrap();
        assert!(
            lease_one(&store, &b, &p).await.is_none(),
            "the lease is held"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The heartbeat comes too late: the lease already went back to the queue.
        let second = lease_one(&store, &b, &p)
            .await
            .expect("expired lease, leased again");
        assert_eq!((second.task_id, second.attempt), (first.task_id, 2));
        let lost = store
            .heartbeat(
                &a,
                &WorkerStatus::default(),
                &[HeldLease::new(first.task_id, first.attempt)],
                &p,
            )
            .await
            .unwrap();
        assert_eq!(lost, vec![(first.task_id, 1)]);
        let out = TaskOutput::Patch(effects("p0", 0..3));
        let stale = store
            .complete_task(&a, first.task_id, 1, &out, &p)
            .await
            .unwrap();
        assert!(matches!(stale, Settled::Stale { .. }), "{stale:?}");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM effects").await, 0);
        let ok = store
            .complete_task(&b, second.task_id, 2, &out, &p)
            .await
            .unwrap();
        assert_eq!(ok, Settled::Completed { rows: 3 });
        let prog = store.sweep_progress(sweep, &p).await.unwrap();
        assert_eq!(
            (
                prog.state.as_str(),
                prog.retries,
                prog.stale_results,
                prog.lease_expirations
            ),
            ("done", 1, 1, 1)
        );
    }

    pub async fn heartbeats_keep_leases(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let p = policy(0.4);
        prepared_sweep(&store, &p, 1, false).await;
        let (a, b) = (worker(&store, "a").await, worker(&store, "b").await);
        let t = lease_one(&store, &a, &p).await.unwrap();
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let lost = store
                .heartbeat(
                    &a,
                    &WorkerStatus::default(),
                    &[HeldLease::new(t.task_id, t.attempt)],
                    &p,
                )
                .await
                .unwrap();
            assert!(lost.is_empty());
            assert!(
                lease_one(&store, &b, &p).await.is_none(),
                "kept by heartbeats"
            );
        }
    }

    pub async fn failures_retry_then_fail_and_the_sweep_goes_on(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let p = policy(30.0);
        let sweep = prepared_sweep(&store, &p, 2, false).await;
        let w = worker(&store, "w").await;
        let bad = lease_one(&store, &w, &p).await.unwrap();
        let r = store
            .fail_task(&w, bad.task_id, 1, "boom 1", false, &p)
            .await
            .unwrap();
        assert!(matches!(r, Settled::Requeued { .. }), "{r:?}");
        let good = lease_one(&store, &w, &p).await.unwrap();
        assert_ne!(
            good.task_id, bad.task_id,
            "the failed task waits out its backoff"
        );
        let out = TaskOutput::Patch(effects("p0", 0..2));
        store
            .complete_task(&w, good.task_id, good.attempt, &out, &p)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let again = lease_one(&store, &w, &p).await.unwrap();
        assert_eq!((again.task_id, again.attempt), (bad.task_id, 2));
        let r = store
            .fail_task(&w, bad.task_id, 2, "boom 2", false, &p)
            .await
            .unwrap();
        assert_eq!(r, Settled::Failed);
        let prog = store.sweep_progress(sweep, &p).await.unwrap();
        assert_eq!(prog.state, "partial");
        assert_eq!(prog.failures.len(), 1);
        assert_eq!(prog.failures[0].error, "boom 2");
        assert_eq!(prog.failures[0].attempts, 2);
    }

    pub async fn permanent_prepare_failure_fails_the_sweep(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let p = policy(30.0);
        let sweep = store
            .submit_sweep("s", "spec", "m", 0.0, 0.0, &[task("prepare", 0, false)], &p)
            .await
            .unwrap();
        let w = worker(&store, "w").await;
        let t = lease_one(&store, &w, &p).await.unwrap();
        let msg = "spec field `metric`: \" he\" is not a single token";
        let r = store
            .fail_task(&w, t.task_id, 1, msg, true, &p)
            .await
            .unwrap();
        assert_eq!(r, Settled::Failed);
        let prog = store.sweep_progress(sweep, &p).await.unwrap();
        assert_eq!(
            (prog.state.as_str(), prog.error.as_deref()),
            ("failed", Some(msg))
        );
    }

    pub async fn cancel_stops_and_resume_requeues(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let p = policy(30.0);
        let sweep = prepared_sweep(&store, &p, 3, false).await;
        let w = worker(&store, "w").await;
        let held = lease_one(&store, &w, &p).await.unwrap();
        let prog = store.cancel_sweep(sweep, &p).await.unwrap();
        assert_eq!(
            (prog.state.as_str(), prog.tasks.cancelled),
            ("cancelled", 3)
        );
        assert!(lease_one(&store, &w, &p).await.is_none());
        let out = TaskOutput::Patch(effects("p0", 0..1));
        let r = store
            .complete_task(&w, held.task_id, held.attempt, &out, &p)
            .await
            .unwrap();
        assert!(matches!(r, Settled::Stale { .. }));
        let prog = store.resume_sweep(sweep, &p).await.unwrap();
        assert_eq!((prog.state.as_str(), prog.tasks.queued), ("running", 3));
        for _ in 0..3 {
            let t = lease_one(&store, &w, &p).await.unwrap();
            assert_eq!(t.attempt, 1);
            store
                .complete_task(&w, t.task_id, t.attempt, &out, &p)
                .await
                .unwrap();
        }
        assert_eq!(store.sweep_progress(sweep, &p).await.unwrap().state, "done");
    }

    /// A selected set (stage 1) never runs on part of the experiment it ranks: when a
    /// stage-0 task fails for good, the waiting set fails saying so; resume runs the failed
    /// task first and the set after it.
    pub async fn a_later_stage_waits_for_a_failed_earlier_one(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let p = policy(30.0);
        let sweep = store
            .submit_sweep(
                "s",
                "spec",
                "m",
                0.0,
                0.0,
                &[task("patch", 0, false), task("patch", 1, true)],
                &p,
            )
            .await
            .unwrap();
        let w = worker(&store, "w").await;
        let first = lease_one(&store, &w, &p).await.unwrap();
        assert_eq!(first.description, "patch 0");
        assert!(lease_one(&store, &w, &p).await.is_none(), "stage 1 waits");
        store
            .fail_task(&w, first.task_id, first.attempt, "boom", true, &p)
            .await
            .unwrap();
        let prog = store.sweep_progress(sweep, &p).await.unwrap();
        assert_eq!((prog.state.as_str(), prog.tasks.failed), ("partial", 2));
        assert!(lease_one(&store, &w, &p).await.is_none());
        store.resume_sweep(sweep, &p).await.unwrap();
        let again = lease_one(&store, &w, &p).await.unwrap();
        assert_eq!(again.description, "patch 0");
        assert!(
            lease_one(&store, &w, &p).await.is_none(),
            "stage 1 waits again"
        );
        let out = TaskOutput::Patch(vec![]);
        store
            .complete_task(&w, again.task_id, again.attempt, &out, &p)
            .await
            .unwrap();
        let set = lease_one(&store, &w, &p).await.unwrap();
        assert_eq!(set.description, "patch 1");
        store
            .complete_task(&w, set.task_id, set.attempt, &out, &p)
            .await
            .unwrap();
        assert_eq!(store.sweep_progress(sweep, &p).await.unwrap().state, "done");
    }

    pub async fn release_hands_back_without_counting(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let p = policy(30.0);
        prepared_sweep(&store, &p, 1, false).await;
        let (a, b) = (worker(&store, "a").await, worker(&store, "b").await);
        let t = lease_one(&store, &a, &p).await.unwrap();
        assert!(
            !store.release_task(&b, t.task_id, t.attempt).await.unwrap(),
            "not b's"
        );
        assert!(store.release_task(&a, t.task_id, t.attempt).await.unwrap());
        let again = lease_one(&store, &b, &p).await.unwrap();
        assert_eq!((again.task_id, again.attempt), (t.task_id, 1));
    }

    pub async fn concurrent_workers_never_share_a_lease(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let p = policy(30.0);
        let sweep = prepared_sweep(&store, &p, 48, false).await;
        let mut handles = Vec::new();
        for k in 0..8 {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                let w = worker(&store, &format!("w{k}")).await;
                let mut got = Vec::new();
                loop {
                    // Under row locks a lease may come back empty while work remains.
                    let Some(t) = lease_one(&store, &w, &p).await else {
                        let prog = store.sweep_progress(sweep, &p).await.unwrap();
                        if prog.tasks.queued + prog.tasks.leased == 0 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    };
                    store
                        .complete_task(&w, t.task_id, t.attempt, &TaskOutput::Patch(vec![]), &p)
                        .await
                        .unwrap();
                    got.push(t.task_id);
                }
                got
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.unwrap());
        }
        let unique: HashSet<i64> = all.iter().copied().collect();
        assert_eq!(
            (all.len(), unique.len()),
            (48, 48),
            "each task leased exactly once"
        );
        let prog = store.sweep_progress(sweep, &p).await.unwrap();
        assert_eq!((prog.state.as_str(), prog.retries), ("done", 0));
    }

    /// `workers.last_seen_at` moves on every call a worker makes, not only on heartbeats.
    /// A worker registers before it loads a model; the models its lease requests name are
    /// what `workers_v.models` shows.
    pub async fn a_lease_records_the_workers_models(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let p = policy(60.0);
        prepared_sweep(&store, &p, 1, false).await;
        let w = worker(&store, "w1").await;
        let with = |models: &str| {
            format!("SELECT COUNT(*) FROM workers WHERE id = '{w}' AND models = '{models}'")
        };
        assert_eq!(count(&store, &with("[]")).await, 1);
        let models = vec!["gguf:m".to_string()];
        let scope = LeaseScope {
            model: "gguf:m",
            models: Some(&models),
            only_sweep: None,
            held: &[],
            max: 1,
        };
        store.lease_scoped(&w, &scope, &p).await.unwrap();
        assert_eq!(count(&store, &with("[\"gguf:m\"]")).await, 1);
    }

    /// A heartbeat records the models and the GPU memory peak the worker reports, and
    /// `workers_v` shows them.
    pub async fn a_heartbeat_records_the_device_memory_peak(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let p = policy(60.0);
        prepared_sweep(&store, &p, 1, false).await;
        let w = worker(&store, "w1").await;
        let peak = |store: Store| async move {
            count(
                &store,
                "SELECT device_memory_peak_bytes FROM workers_v WHERE worker_id = 'w1'",
            )
            .await
        };
        assert_eq!(peak(store.clone()).await, 0, "nothing reported yet");
        let status = WorkerStatus {
            models: vec!["gguf:m".into()],
            device_memory_peak_bytes: 17_179_869_184,
        };
        let t = lease_one(&store, &w, &p).await.unwrap();
        store
            .heartbeat(&w, &status, &[HeldLease::new(t.task_id, t.attempt)], &p)
            .await
            .unwrap();
        assert_eq!(peak(store.clone()).await, 17_179_869_184);
        let with_models = format!(
            "SELECT COUNT(*) FROM workers_v WHERE worker_id = '{w}' AND models = '[\"gguf:m\"]'"
        );
        assert_eq!(count(&store, &with_models).await, 1);
    }

    /// A heartbeat's share done moves the sweep's progress within a task: only forward
    /// within an attempt, clamped to [0, 1], from 0 again when the task is leased anew, and
    /// into `patches_done` (not counted twice) once the task completes.
    pub async fn a_heartbeat_moves_progress_within_a_task(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let p = policy(0.4);
        let sweep = prepared_sweep(&store, &p, 1, false).await;
        let (a, b) = (worker(&store, "a").await, worker(&store, "b").await);
        let t = lease_one(&store, &a, &p).await.unwrap();
        let beat = |store: Store, w: String, attempt: i64, share: f64| async move {
            let lease = HeldLease {
                fraction_done: share,
                ..HeldLease::new(t.task_id, attempt)
            };
            store
                .heartbeat(&w, &WorkerStatus::default(), &[lease], &p)
                .await
                .unwrap()
        };
        // (done, in progress, reached), less the prepare task's cost (10, done already).
        let at = |store: Store| async move {
            let g = store.sweep_progress(sweep, &p).await.unwrap();
            (
                g.patches_done - 10,
                g.patches_in_progress,
                g.patches_reached() - 10,
            )
        };
        assert_eq!(at(store.clone()).await, (0, 0, 0));
        assert!(beat(store.clone(), a.clone(), 1, 0.5).await.is_empty());
        assert_eq!(
            at(store.clone()).await,
            (0, 5, 5),
            "half of a 10-patch task"
        );
        beat(store.clone(), a.clone(), 1, 0.2).await;
        assert_eq!(at(store.clone()).await, (0, 5, 5), "never backwards");
        beat(store.clone(), a.clone(), 1, 7.0).await;
        assert_eq!(at(store.clone()).await, (0, 10, 10), "clamped to the task");
        // The lease expires; the next attempt starts from nothing.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let again = lease_one(&store, &b, &p).await.unwrap();
        assert_eq!((again.task_id, again.attempt), (t.task_id, 2));
        assert_eq!(
            at(store.clone()).await,
            (0, 0, 0),
            "a new attempt starts at 0"
        );
        let lost = beat(store.clone(), a.clone(), 1, 0.9).await;
        assert_eq!(lost, [(t.task_id, 1)], "a stale lease moves nothing");
        assert_eq!(at(store.clone()).await, (0, 0, 0));
        beat(store.clone(), b.clone(), 2, f64::NAN).await;
        assert_eq!(
            at(store.clone()).await,
            (0, 0, 0),
            "NaN reads as nothing done"
        );
        beat(store.clone(), b.clone(), 2, 0.3).await;
        assert_eq!(at(store.clone()).await, (0, 3, 3));
        let out = TaskOutput::Patch(effects("p0", 0..3));
        store
            .complete_task(&b, t.task_id, 2, &out, &p)
            .await
            .unwrap();
        assert_eq!(
            at(store.clone()).await,
            (10, 0, 10),
            "counted once, as done"
        );
        assert_eq!(
            count(
                &store,
                &format!(
                    "SELECT CAST(progress AS BIGINT) FROM tasks_v WHERE task_id = {}",
                    t.task_id
                )
            )
            .await,
            1,
            "tasks_v shows a done task as all done"
        );
    }

    /// Every call a worker makes marks it seen, to within a second: a call within a second
    /// of the last mark writes nothing (a busy fleet would write its rows twice per task).
    pub async fn every_worker_call_marks_the_worker_seen(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let p = policy(60.0);
        prepared_sweep(&store, &p, 1, false).await;
        let w = worker(&store, "w1").await;
        let seen = |store: Store| async move {
            count(
                &store,
                "SELECT CAST(ROUND(last_seen_at * 1000) AS BIGINT) FROM workers WHERE id = 'w1'",
            )
            .await
        };
        // Before each call the mark is set 5 s back: the call must bring it to now.
        let backdate = || tamper(url, "UPDATE workers SET last_seen_at = last_seen_at - 5");
        let moved = |before: i64, now: i64, what: &str| {
            assert!(
                now >= before + 4_000,
                "{what} did not mark the worker seen ({now} vs {before} before)"
            );
        };
        backdate().await;
        let before = seen(store.clone()).await;
        let t = lease_one(&store, &w, &p).await.expect("a patch task");
        moved(before, seen(store.clone()).await, "lease");
        // Within the second a lease (none is left) writes nothing; a release (rare: a
        // draining worker) always does.
        let marked = seen(store.clone()).await;
        assert!(lease_one(&store, &w, &p).await.is_none());
        assert_eq!(
            seen(store.clone()).await,
            marked,
            "a second mark within 1 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        store.release_task(&w, t.task_id, t.attempt).await.unwrap();
        assert!(seen(store.clone()).await > marked, "release");
        backdate().await;
        let before = seen(store.clone()).await;
        let t = lease_one(&store, &w, &p)
            .await
            .expect("the patch task again");
        moved(before, seen(store.clone()).await, "lease");
        backdate().await;
        let before = seen(store.clone()).await;
        store
            .fail_task(&w, t.task_id, t.attempt, "boom", false, &p)
            .await
            .unwrap();
        moved(before, seen(store.clone()).await, "fail");
        backdate().await;
        let before = seen(store.clone()).await;
        store
            .complete_task(&w, t.task_id, t.attempt, &TaskOutput::Patch(vec![]), &p)
            .await
            .unwrap();
        moved(before, seen(store.clone()).await, "complete (stale)");
        backdate().await;
        let before = seen(store.clone()).await;
        let _ = lease_one(&store, &w, &p).await;
        moved(before, seen(store.clone()).await, "lease after the retry");
    }

    /// A leased debias task's arguments carry its section's split as stored (read back at
    /// lease time, not drawn again) and the effects of the stored selection pairs only.
    pub async fn a_leased_debias_task_carries_the_stored_split(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let p = policy(30.0);
        let sweep = prepared_sweep(&store, &p, 1, true).await;
        let w = worker(&store, "w1").await;
        let patch = lease_one(&store, &w, &p).await.unwrap();
        let mut rows = effects("p0", 0..2);
        // p1's cells restore 0.9 of its clean - corrupt span of 1 (p0's restore 0 and 1).
        for mut e in effects("p1", 0..2) {
            e.value = 0.9;
            e.normalized = Some(0.9);
            rows.push(e);
        }
        store
            .complete_task(
                &w,
                patch.task_id,
                patch.attempt,
                &TaskOutput::Patch(rows),
                &p,
            )
            .await
            .unwrap();
        // The stored split is changed behind the coordinator's back: the lease reads it.
        tamper(
            url,
            &format!(
                "UPDATE debias_splits SET part = CASE part WHEN 'selection' THEN 'heldout' \
                 ELSE 'selection' END WHERE sweep_id = {sweep}"
            ),
        )
        .await;
        let d = lease_one(&store, &w, &p).await.expect("the debias task");
        let TaskArgs::Debias(args) = d.args else {
            panic!("the debias task: {d:?}");
        };
        assert_eq!(
            args.split,
            Some(StoredSplit {
                selection: vec!["p1".into()],
                heldout: vec!["p0".into()],
                unused: vec![],
            })
        );
        let scores: Vec<f64> = args.effects.iter().map(|e| e.4).collect();
        assert_eq!(scores.len(), 2, "{:?}", args.effects);
        assert!(
            scores.iter().all(|s| (s - 0.9).abs() < 1e-9),
            "the selection (now p1) alone informs the effects: {scores:?}"
        );
    }

    /// The pairs a prepare task dropped are stored with their prompts and token counts
    /// (`dropped_pairs_v`), next to the counts by reason.
    pub async fn dropped_pairs_are_listed(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let p = policy(30.0);
        let sweep = prepared_sweep(&store, &p, 1, false).await;
        let listed = store.dropped_pairs(sweep).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (
                listed[0].id.as_str(),
                listed[0].clean_tokens,
                listed[0].corrupt_tokens
            ),
            ("p9", 5, 4)
        );
        assert_eq!(listed[0].corrupt, "The woman said that");
        let counts = store.dropped_counts(sweep).await.unwrap();
        assert_eq!(
            (counts[0].reason.as_str(), counts[0].count),
            ("token_count_mismatch", 1)
        );
    }

    /// A task whose stored arguments do not read (a row damaged by hand, or written by
    /// another version) is failed by the lease with the reason, and the lease goes on to
    /// hand out the good tasks: one bad row never blocks a fleet.
    pub async fn an_unreadable_task_fails_at_lease_and_the_rest_lease(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let p = policy(30.0);
        let sweep = prepared_sweep(&store, &p, 3, false).await;
        tamper(
            url,
            &format!(
                "UPDATE tasks SET payload = '{{\"experiment\": 3}}' WHERE id = \
                 (SELECT MIN(id) FROM tasks WHERE sweep_id = {sweep} AND kind = 'patch')"
            ),
        )
        .await;
        let w = worker(&store, "w1").await;
        let leased = store.lease_tasks(&w, "", 5, &p).await.unwrap();
        assert_eq!(leased.len(), 2, "the two good patch tasks: {leased:?}");
        let prog = store.sweep_progress(sweep, &p).await.unwrap();
        assert_eq!((prog.tasks.failed, prog.tasks.leased), (1, 2));
        let failure = &prog.failures[0];
        assert!(
            failure
                .error
                .starts_with("the stored arguments of a patch task do not read: invalid type"),
            "{failure:?}"
        );
    }

    /// A task of a sweep the worker names as held, under the stored spec's digest, comes
    /// without its spec text; under another digest (another database's sweep of the same
    /// id) it comes with it.
    pub async fn a_held_sweeps_tasks_come_without_their_spec(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let p = policy(30.0);
        let sweep = prepared_sweep(&store, &p, 3, false).await;
        let w = worker(&store, "w1").await;
        let lease = |held: Vec<HeldSweep>| {
            let (store, w) = (&store, &w);
            async move {
                let scope = LeaseScope {
                    model: "",
                    models: None,
                    only_sweep: None,
                    held: &held,
                    max: 1,
                };
                store.lease_scoped(w, &scope, &p).await.unwrap().remove(0)
            }
        };
        let held = |digest: String| {
            vec![HeldSweep {
                sweep_id: sweep,
                spec_digest: digest,
            }]
        };
        let first = lease(vec![]).await;
        assert_eq!(first.spec_toml.as_deref(), Some("spec"));
        assert_eq!(first.spec_digest, spec_digest("spec"));
        let second = lease(held(spec_digest("spec"))).await;
        assert_eq!(
            (second.spec_toml, second.spec_digest),
            (None, spec_digest("spec"))
        );
        let third = lease(held(spec_digest("another spec"))).await;
        assert_eq!(third.spec_toml.as_deref(), Some("spec"));
    }

    /// A task whose every lease expired (its workers died on it) fails saying so.
    pub async fn a_task_that_keeps_losing_its_workers_fails_saying_so(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let p = policy(0.2);
        let sweep = prepared_sweep(&store, &p, 1, false).await;
        let w = worker(&store, "doomed").await;
        for attempt in 1..=p.max_attempts {
            let t = lease_one(&store, &w, &p).await.expect("the patch task");
            assert_eq!(t.attempt, attempt);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        store.expire_leases().await.unwrap();
        let r = store
            .query_readonly("SELECT state, error FROM tasks WHERE kind = 'patch'")
            .await
            .unwrap();
        let rows: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(rows[0]["state"], "failed", "{rows}");
        let error = rows[0]["error"].as_str().unwrap();
        assert!(
            error.starts_with("the worker running this task was lost 2 times")
                && error.contains("last worker doomed"),
            "{error}"
        );
        let prog = store.sweep_progress(sweep, &p).await.unwrap();
        assert!(prog.is_final() && prog.state != "done", "{}", prog.state);
    }

    /// Every timestamp a user reads (progress, the sweep list, the tables and views) has
    /// one format on both backends.
    pub async fn timestamps_read_the_same_on_both_backends(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let p = policy(30.0);
        let sweep = prepared_sweep(&store, &p, 1, false).await;
        let w = worker(&store, "clock").await;
        let t = lease_one(&store, &w, &p).await.expect("the patch task");
        store
            .complete_task(&w, t.task_id, t.attempt, &TaskOutput::Patch(vec![]), &p)
            .await
            .unwrap();
        let prog = store.sweep_progress(sweep, &p).await.unwrap();
        assert_eq!(prog.state, "done");
        let mut seen = vec![prog.created_at, prog.finished_at.expect("finished")];
        let row = store
            .sweeps(SweepSelection::Id(sweep))
            .await
            .unwrap()
            .remove(0);
        seen.push(row.created_at);
        seen.push(row.finished_at.expect("finished"));
        for sql in [
            "SELECT created_at, finished_at FROM sweeps",
            "SELECT created_at, started_at, finished_at FROM tasks_v",
            "SELECT registered_at, last_seen_at FROM workers_v",
        ] {
            let r = store.query_readonly(sql).await.unwrap();
            let rows: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
            for row in rows.as_array().unwrap() {
                for v in row.as_object().unwrap().values() {
                    seen.push(v.as_str().unwrap_or_else(|| panic!("{sql}: {row}")).into());
                }
            }
        }
        for s in &seen {
            assert!(
                iso_millis_utc(s),
                "{s:?} is not YYYY-MM-DDTHH:MM:SS.mmmZ ({seen:?})"
            );
        }
    }
}

/// `2026-11-30T09:28:50.123Z`: the one timestamp format of both backends.
fn iso_millis_utc(s: &str) -> bool {
    let b = s.as_bytes();
    let digit = |i: usize| b[i].is_ascii_digit();
    b.len() == 24
        && [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (23, b'Z'),
        ]
        .iter()
        .all(|&(i, c)| b[i] == c)
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22]
            .iter()
            .all(|&i| digit(i))
}

macro_rules! both_backends {
    ([$($test:ident),* $(,)?]) => {
        backend_tests!(sqlite, sqlite_db, [$($test),*]);
        backend_tests!(postgres, postgres_db, [$($test),*]);
    };
}

both_backends!([
    results_land_once_and_the_sweep_ends,
    expired_leases_are_fenced,
    heartbeats_keep_leases,
    failures_retry_then_fail_and_the_sweep_goes_on,
    permanent_prepare_failure_fails_the_sweep,
    cancel_stops_and_resume_requeues,
    a_later_stage_waits_for_a_failed_earlier_one,
    release_hands_back_without_counting,
    concurrent_workers_never_share_a_lease,
    every_worker_call_marks_the_worker_seen,
    a_lease_records_the_workers_models,
    a_heartbeat_records_the_device_memory_peak,
    a_heartbeat_moves_progress_within_a_task,
    a_task_that_keeps_losing_its_workers_fails_saying_so,
    timestamps_read_the_same_on_both_backends,
    a_leased_debias_task_carries_the_stored_split,
    a_held_sweeps_tasks_come_without_their_spec,
    an_unreadable_task_fails_at_lease_and_the_rest_lease,
    dropped_pairs_are_listed,
]);
