//! Load benchmark of the coordinator (not a test): a simulated fleet of workers (no model;
//! synthetic results of realistic size) against one coordinator over gRPC on loopback.
//!
//! Reports task completions/s, effect rows/s ingested, and p50/p99 lease latency.
//!
//! ```text
//! cargo run --release -p patchsweep-coordinator --example fleet_bench -- \
//!     --db postgres://postgres@127.0.0.1:5432/test --workers 64 --tasks 4000 --effects 200
//! ```
//! The database should be empty (a fresh SQLite file or a fresh PostgreSQL schema).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use patchsweep_api::client::{SweepApi, Target, WorkerApi};
use patchsweep_api::{
    spec_digest, EffectRow, HeldSweep, NewTask, PairRow, PatchTask, PreparedSweep, Settled,
    TaskArgs, TaskOutput, WorkerInfo,
};
use patchsweep_coordinator::server::{self, ServeOptions};
use patchsweep_coordinator::service::Coordinator;
use patchsweep_coordinator::store::{QueuePolicy, Store};
use tokio::sync::Mutex;

struct Args {
    db: String,
    workers: usize,
    tasks: usize,
    effects: usize,
}

fn args() -> Args {
    let mut a = Args {
        db: "sqlite:///tmp/patchsweep-fleet-bench.db".into(),
        workers: 64,
        tasks: 2000,
        effects: 200,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    for pair in v.chunks(2) {
        let val = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--db" => a.db = val,
            "--workers" => a.workers = val.parse().expect("--workers N"),
            "--tasks" => a.tasks = val.parse().expect("--tasks N"),
            "--effects" => a.effects = val.parse().expect("--effects N"),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

const PAIRS: usize = 4;

const SPEC: &str = r#"name = "fleet-bench"
model = "gguf:models/none.gguf"
[metric]
kind = "logit_diff"
positive = [" he"]
negative = [" she"]
[dataset]
pairs = [{ clean = "a b", corrupt = "a c" }]
[[experiment]]
name = "exp"
method = "activation"
components = ["resid_pre"]
"#;

fn pair(i: usize) -> PairRow {
    PairRow {
        pair_id: format!("p{i}"),
        template: None,
        clean_prompt: "a b".into(),
        corrupt_prompt: "a c".into(),
        clean_ids: vec![1; 64],
        corrupt_ids: vec![2; 64],
        labels: BTreeMap::new(),
        clean_metric: 1.0,
        corrupt_metric: 0.0,
        toward_stereotype: 0,
        position_labels: vec![],
        clean_tokens: vec![],
        corrupt_tokens: vec![],
    }
}

/// `n` effects of task `t`, keys unique across tasks.
fn effects(t: i64, n: usize) -> Vec<EffectRow> {
    (0..n)
        .map(|k| EffectRow {
            experiment: "exp".into(),
            component: "resid_pre".into(),
            layer: Some((t / 1000) as u32),
            head: Some((t % 1000) as u32),
            position: Some((k / PAIRS) as u32),
            neuron: None,
            pair_id: format!("p{}", k % PAIRS),
            value: k as f64 * 0.001,
            effect: 0.5,
            normalized: Some(0.25),
        })
        .collect()
}

/// A simulated worker as it registers.
fn sim_worker(name: &str) -> WorkerInfo {
    WorkerInfo::new(name, "cpu")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = args();
    let store = Store::connect(&a.db).await.expect("database");
    let policy = QueuePolicy::default();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = ServeOptions {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        token: None,
        tls: None,
        max_message_bytes: server::MAX_MESSAGE_BYTES,
    };
    tokio::spawn(server::serve(
        Coordinator::new(store.clone(), policy),
        opts,
        std::future::pending(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let target = Target {
        url: format!("http://127.0.0.1:{port}"),
        token: None,
        tls_ca: None,
    };
    let sweeps = SweepApi::new(&target).unwrap();
    let sweep_id = sweeps.submit(SPEC, "bench").await.expect("submit");
    // Play the prepare task: store pairs and the synthetic plan.
    let w = WorkerApi::new(&target).unwrap();
    let id = w.register(sim_worker("planner")).await.unwrap().worker_id;
    let prep = w.lease(&id, &[], &[], 1).await.unwrap().remove(0);
    let plan = PreparedSweep {
        pairs: (0..PAIRS).map(pair).collect(),
        dropped_pairs: vec![],
        dropped: vec![],
        experiments: vec![("exp".into(), "activation".into(), "denoise".into())],
        tasks: (0..a.tasks)
            .map(|i| NewTask {
                args: TaskArgs::Patch(PatchTask {
                    experiment: format!("synthetic {i}"),
                    ..Default::default()
                }),
                description: format!("synthetic {i}"),
                cost: a.effects as i64,
                stage: 0,
            })
            .collect(),
        splits: vec![],
    };
    w.complete(&id, &prep, &TaskOutput::Prepare(plan), 0.0)
        .await
        .expect("prepare");

    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let started = Instant::now();
    let mut fleet = Vec::new();
    for k in 0..a.workers {
        let target = target.clone();
        let latencies = latencies.clone();
        let n = a.effects;
        // Simulated workers hold the sweep prepared, as real ones do after its first task:
        // its tasks come without the spec text.
        let held = [HeldSweep {
            sweep_id,
            spec_digest: spec_digest(SPEC),
        }];
        fleet.push(tokio::spawn(async move {
            let c = WorkerApi::new(&target).unwrap();
            let id = c
                .register(sim_worker(&format!("sim{k}")))
                .await
                .unwrap()
                .worker_id;
            let mut mine = Vec::new();
            let mut done = 0u64;
            loop {
                let t0 = Instant::now();
                let tasks = c.lease(&id, &[], &held, 1).await.expect("lease");
                mine.push(t0.elapsed().as_secs_f64());
                let Some(t) = tasks.into_iter().next() else {
                    break;
                };
                let output = TaskOutput::Patch(effects(t.task_id, n));
                let r = c.complete(&id, &t, &output, 0.0).await.expect("complete");
                assert!(matches!(r, Settled::Completed { .. }), "{r:?}");
                done += 1;
            }
            latencies.lock().await.extend(mine);
            done
        }));
    }
    let mut completed = 0;
    for f in fleet {
        completed += f.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let mut lat = latencies.lock().await.clone();
    lat.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let progress = store.sweep_progress(sweep_id, &policy).await.unwrap();
    println!(
        "backend {:?}: {} workers, {completed} tasks × {} effects in {secs:.2}s: \
         {:.0} task completions/s, {:.0} effect rows/s; lease latency p50 {:.1} ms, p99 {:.1} ms; \
         sweep {} with {} effects stored",
        store.backend(),
        a.workers,
        a.effects,
        completed as f64 / secs,
        (completed as usize * a.effects) as f64 / secs,
        percentile(&lat, 0.5) * 1e3,
        percentile(&lat, 0.99) * 1e3,
        progress.state,
        progress.effects_stored,
    );
}
