//! Reliability of a real cluster: a coordinator and three worker processes on a tiny
//! random model, under faults, on SQLite and on PostgreSQL. Each scenario checks that the
//! final effects equal a fault-free `patchsweep run` of the same spec (same keys, values
//! within 1e-6), with no duplicates and no task lost, and prints its counts.

mod cluster;
#[path = "../coordinator/tests/common/testdb.rs"]
mod testdb;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use cluster::proxy::Proxy;
use cluster::{effects, sweep_rows, wait_for, write_spec, Cluster, EffectKey};

/// One scenario at a time: each starts four processes on a two-core machine.
static SERIAL: Mutex<()> = Mutex::new(());
const FINISH: Duration = Duration::from_secs(180);

struct Reference {
    _dir: tempfile::TempDir,
    spec: PathBuf,
    effects: BTreeMap<EffectKey, f64>,
}

/// The fault-free result: the embedded `patchsweep run` of the same spec.
fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let spec = write_spec(dir.path());
        let db = format!("sqlite://{}", dir.path().join("reference.db").display());
        let out = Command::new(cluster::bin())
            .arg("run")
            .arg(&spec)
            .args(["--db", &db])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (effects, n) = effects(&db, 1);
        assert!(n > 100, "the reference sweep stored only {n} effects");
        Reference {
            _dir: dir,
            spec,
            effects,
        }
    })
}

/// Compares a finished sweep with the reference and prints the counts. `failed_experiment`
/// names an experiment whose tasks were made to fail: its effects must be absent.
fn check(c: &Cluster, sweep: i64, scenario: &str, failed_experiment: Option<&str>) {
    let r = reference();
    let (got, rows) = effects(&c.db, sweep);
    let expected: BTreeMap<&EffectKey, f64> = r
        .effects
        .iter()
        .filter(|(k, _)| Some(k.0.as_str()) != failed_experiment)
        .map(|(k, v)| (k, *v))
        .collect();
    let missing = expected.keys().filter(|k| !got.contains_key(**k)).count();
    let extra = got.keys().filter(|k| !expected.contains_key(k)).count();
    let worst = expected
        .iter()
        .filter_map(|(k, v)| got.get(*k).map(|g| (g - v).abs()))
        .fold(0.0, f64::max);
    let tasks = sweep_rows(&c.db, "tasks_v", sweep);
    let int = |t: &serde_json::Map<String, serde_json::Value>, k: &str| t[k].as_i64().unwrap_or(0);
    let state = |t: &serde_json::Map<String, serde_json::Value>| {
        t["state"].as_str().unwrap_or("").to_string()
    };
    let counts: BTreeMap<&str, i64> = BTreeMap::from([
        ("tasks", tasks.len() as i64),
        (
            "retried",
            tasks.iter().filter(|t| int(t, "attempts") > 1).count() as i64,
        ),
        ("stale", tasks.iter().map(|t| int(t, "stale_results")).sum()),
        (
            "expired",
            tasks.iter().map(|t| int(t, "lease_expirations")).sum(),
        ),
        (
            "failed",
            tasks.iter().filter(|t| state(t) == "failed").count() as i64,
        ),
        (
            "lost",
            tasks
                .iter()
                .filter(|t| !matches!(state(t).as_str(), "done" | "failed"))
                .count() as i64,
        ),
    ]);
    let n = |k: &str| counts[k];
    let duplicates = rows - got.len();
    println!(
        "{scenario}: tasks {}, retried {}, lease expirations {}, stale results refused {}, \
         failed {}, duplicates {duplicates}, lost {} (tasks) / {missing} (effects), \
         effects {} , max |value - fault-free| {worst:.2e}",
        n("tasks"),
        n("retried"),
        n("expired"),
        n("stale"),
        n("failed"),
        n("lost"),
        got.len()
    );
    let logs = c.logs();
    assert_eq!(duplicates, 0, "{logs}");
    assert_eq!(n("lost"), 0, "{logs}");
    assert_eq!((missing, extra), (0, 0), "{logs}");
    assert!(worst <= 1e-6, "values differ by {worst}");
    if failed_experiment.is_none() {
        assert_eq!(n("failed"), 0, "{logs}");
    }
}

fn start(db: &str, workers: &[&str]) -> Cluster {
    let mut c = Cluster::new(db);
    c.start_coordinator();
    for w in workers {
        c.start_worker(w, None, &[]);
    }
    c
}

/// The first task `worker` holds a lease on, once it holds one.
fn leased_by(c: &Cluster, sweep: i64, worker: &str) -> i64 {
    let mut task = 0;
    wait_for(
        Duration::from_secs(60),
        "a lease held by the worker",
        || {
            let mut rows: Vec<_> = sweep_rows(&c.db, "tasks_v", sweep)
                .into_iter()
                .filter(|t| {
                    t["state"] == "leased" && t["kind"] == "patch" && t["worker_name"] == worker
                })
                .collect();
            rows.sort_by_key(|t| t["task_id"].as_i64());
            task = rows
                .first()
                .and_then(|r| r["task_id"].as_i64())
                .unwrap_or(0);
            task > 0
        },
    );
    task
}

fn two_workers_equal_run(db: &str, backend: &str) {
    let mut c = start(db, &["w1", "w2"]);
    let sweep = c.submit(&reference().spec);
    assert_eq!(c.wait_final(sweep, FINISH), "done", "{}", c.logs());
    check(
        &c,
        sweep,
        &format!("[{backend}] two workers, no faults"),
        None,
    );
    c.workers.clear();
}

fn worker_killed_mid_task(db: &str, backend: &str) {
    let c = start(db, &["w1", "w2", "w3"]);
    let sweep = c.submit(&reference().spec);
    leased_by(&c, sweep, "w1");
    c.signal_worker("w1", libc::SIGKILL);
    assert_eq!(c.wait_final(sweep, FINISH), "done", "{}", c.logs());
    check(
        &c,
        sweep,
        &format!("[{backend}] kill -9 of a worker mid-task"),
        None,
    );
}

fn worker_stopped_past_its_lease(db: &str, backend: &str) {
    let c = start(db, &["w1", "w2", "w3"]);
    let sweep = c.submit(&reference().spec);
    let task = leased_by(&c, sweep, "w1");
    c.signal_worker("w1", libc::SIGSTOP);
    wait_for(FINISH, "another worker to finish the task", || {
        let r: Vec<_> = sweep_rows(&c.db, "tasks_v", sweep)
            .into_iter()
            .filter(|t| t["task_id"] == task)
            .collect();
        r[0]["state"] == "done" && r[0]["worker_name"] != "w1"
    });
    c.signal_worker("w1", libc::SIGCONT);
    wait_for(
        Duration::from_secs(60),
        "the stale result to be refused",
        || {
            let r: Vec<_> = sweep_rows(&c.db, "tasks_v", sweep)
                .into_iter()
                .filter(|t| t["task_id"] == task)
                .collect();
            r[0]["stale_results"].as_i64().unwrap_or(0) >= 1
        },
    );
    assert_eq!(c.wait_final(sweep, FINISH), "done", "{}", c.logs());
    check(
        &c,
        sweep,
        &format!("[{backend}] SIGSTOP past the lease, SIGCONT"),
        None,
    );
}

fn coordinator_killed_and_restarted(db: &str, backend: &str) {
    let mut c = start(db, &["w1", "w2", "w3"]);
    let sweep = c.submit(&reference().spec);
    wait_for(FINISH, "some tasks to finish", || {
        let done = sweep_rows(&c.db, "tasks_v", sweep)
            .iter()
            .filter(|t| t["state"] == "done")
            .count();
        done >= 3
    });
    c.kill_coordinator();
    std::thread::sleep(Duration::from_millis(1500));
    c.start_coordinator();
    assert_eq!(c.wait_final(sweep, FINISH), "done", "{}", c.logs());
    check(
        &c,
        sweep,
        &format!("[{backend}] kill -9 of the coordinator, restart"),
        None,
    );
}

fn worker_cut_off_for_a_while(db: &str, backend: &str) {
    let mut c = start(db, &["w2", "w3"]);
    let proxy = Proxy::start(c.port);
    c.start_worker("w1", Some(proxy.url()), &[]);
    let sweep = c.submit(&reference().spec);
    leased_by(&c, sweep, "w1");
    proxy.block();
    std::thread::sleep(Duration::from_secs(5));
    proxy.unblock();
    assert_eq!(c.wait_final(sweep, FINISH), "done", "{}", c.logs());
    check(
        &c,
        sweep,
        &format!("[{backend}] a worker cut off for 5 s"),
        None,
    );
}

fn a_task_that_always_fails(db: &str, backend: &str) {
    let mut c = Cluster::new(db);
    c.start_coordinator();
    for w in ["w1", "w2", "w3"] {
        c.start_worker(w, None, &["--fault-fail-experiment", "heads"]);
    }
    let sweep = c.submit(&reference().spec);
    assert_eq!(c.wait_final(sweep, FINISH), "partial", "{}", c.logs());
    let failed: Vec<_> = sweep_rows(&c.db, "tasks_v", sweep)
        .into_iter()
        .filter(|t| t["state"] == "failed")
        .collect();
    assert!(!failed.is_empty());
    for f in &failed {
        assert!(
            f["description"].as_str().unwrap().starts_with("heads"),
            "{f:?}"
        );
        assert_eq!(f["attempts"].as_i64(), Some(3), "{f:?}");
        assert!(
            f["error"].as_str().unwrap().contains("injected fault"),
            "{f:?}"
        );
    }
    check(
        &c,
        sweep,
        &format!("[{backend}] the tasks of one experiment always fail"),
        Some("heads"),
    );
}

macro_rules! scenarios {
    ($backend:ident, $make:path, [$($s:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[test]
                fn $s() {
                    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
                    reference();
                    let db = tokio::runtime::Runtime::new().unwrap().block_on($make());
                    super::$s(&db.url, stringify!($backend));
                }
            )*
        }
    };
}

macro_rules! on_both {
    ([$($s:ident),* $(,)?]) => {
        scenarios!(sqlite, testdb::sqlite_db, [$($s),*]);
        scenarios!(postgres, testdb::postgres_db, [$($s),*]);
    };
}

on_both!([
    two_workers_equal_run,
    worker_killed_mid_task,
    worker_stopped_past_its_lease,
    coordinator_killed_and_restarted,
    worker_cut_off_for_a_while,
    a_task_that_always_fails,
]);
