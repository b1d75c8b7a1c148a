//! Real processes for the cluster tests: a coordinator and workers of the built
//! `patchsweep` binary on a tiny random model, a TCP proxy that can cut a worker off, and
//! reads of the results database.
#![allow(dead_code)]

#[path = "../common/mod.rs"]
pub mod common;
pub mod proxy;
#[path = "../fixtures/tiny_spec.rs"]
pub mod tiny_spec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use patchsweep_coordinator::store::{DebiasRow, Store, SweepSelection};
use serde_json::Value;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_patchsweep")
}

pub use common::root;

/// A free loopback port (bound and released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The test sweep: 8 pairs on the tiny LLaMA-2-shaped model, two experiments, cut into
/// small tasks (2 pairs × 1 layer) so that faults land mid-sweep.
pub fn write_spec(dir: &Path) -> PathBuf {
    let rest = r#"
[tasks]
pairs_per_task = 2
layers_per_task = 1

[[experiment]]
name = "resid"
method = "activation"
components = ["resid_pre", "attn_out", "mlp_out"]

[[experiment]]
name = "heads"
method = "activation"
components = ["head_out"]
positions = "joint"
"#;
    let text = tiny_spec::tiny_spec(
        "cluster-test",
        &(tiny_spec::said_pairs(&tiny_spec::WORDS) + rest),
    );
    let path = dir.join("cluster-test.toml");
    std::fs::write(&path, text).expect("write spec");
    path
}

/// Runs `f` on the results database from a fresh runtime.
fn with_store<T>(db: &str, f: impl AsyncFnOnce(&Store) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::connect(db).await.expect("connect to the results");
        let out = f(&store).await;
        store.close().await;
        out
    })
}

/// Runs a user's SQL against the results database (as `patchsweep query` does), one JSON
/// object per row: for checks of the user-facing views and tables themselves.
pub fn query(db: &str, sql: &str) -> Vec<Value> {
    with_store(db, async |store| {
        let r = store.query_readonly(sql).await.expect("query");
        serde_json::from_str::<Value>(&r.to_json())
            .expect("json")
            .as_array()
            .cloned()
            .unwrap_or_default()
    })
}

/// One sweep's rows of a view or table, read whole through the read model (the export's
/// query), one JSON object per row.
pub fn sweep_rows(db: &str, view: &str, sweep: i64) -> Vec<serde_json::Map<String, Value>> {
    let r = with_store(db, async |store| store.export_view(view, Some(sweep)).await)
        .unwrap_or_else(|e| panic!("read {view}: {e}"));
    r.rows
        .iter()
        .map(|row| r.columns.iter().cloned().zip(row.iter().cloned()).collect())
        .collect()
}

/// The debias results of a sweep (the read model's).
pub fn debias_rows(db: &str, sweep: i64) -> Vec<DebiasRow> {
    with_store(db, async |store| {
        store.debias_rows(sweep).await.expect("debias results")
    })
}

/// A sweep's status (empty when there is no such sweep).
pub fn sweep_status(db: &str, sweep: i64) -> String {
    with_store(db, async |store| {
        store.sweeps(SweepSelection::Id(sweep)).await
    })
    .expect("read the sweep")
    .pop()
    .map(|s| s.status)
    .unwrap_or_default()
}

pub type EffectKey = (String, String, i64, i64, i64, i64, String);

/// The stored effects of a sweep, by key (-1 for coordinates that do not apply).
pub fn effects(db: &str, sweep: i64) -> (BTreeMap<EffectKey, f64>, usize) {
    let r = with_store(db, async |store| {
        store.export_view("effects_v", Some(sweep)).await
    })
    .expect("read the effects");
    let column = |name: &str| r.columns.iter().position(|c| c == name).expect(name);
    let [experiment, component, layer, head, position, neuron, pair_id, value] = [
        "experiment",
        "component",
        "layer",
        "head",
        "position",
        "neuron",
        "pair_id",
        "value",
    ]
    .map(column);
    let n = r.rows.len();
    let map = r
        .rows
        .iter()
        .map(|row| {
            let s = |c: usize| row[c].as_str().unwrap().to_string();
            let i = |c: usize| row[c].as_i64().unwrap_or(-1);
            (
                (
                    s(experiment),
                    s(component),
                    i(layer),
                    i(head),
                    i(position),
                    i(neuron),
                    s(pair_id),
                ),
                row[value].as_f64().unwrap(),
            )
        })
        .collect();
    (map, n)
}

pub struct Cluster {
    pub db: String,
    pub port: u16,
    pub coordinator: Option<Child>,
    pub workers: Vec<(String, Child)>,
    pub logs: tempfile::TempDir,
    pub coordinator_args: Vec<String>,
}

impl Cluster {
    pub fn new(db: &str) -> Self {
        Self {
            db: db.to_string(),
            port: free_port(),
            coordinator: None,
            workers: Vec::new(),
            logs: tempfile::tempdir().unwrap(),
            coordinator_args: vec![
                "--lease-seconds".into(),
                "2".into(),
                "--max-attempts".into(),
                "3".into(),
                "--backoff-seconds".into(),
                "0.2".into(),
                "--max-backoff-seconds".into(),
                "1".into(),
            ],
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self, name: &str) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.path().join(format!("{name}.log")))
            .unwrap()
    }

    pub fn start_coordinator(&mut self) {
        let child = Command::new(bin())
            .args(["coordinator", "--db", &self.db, "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(&self.coordinator_args)
            .env("RUST_LOG", "info")
            .env_remove("PATCHSWEEP_TOKEN")
            .stdout(Stdio::null())
            .stderr(self.log("coordinator"))
            .spawn()
            .expect("start coordinator");
        self.coordinator = Some(child);
        wait_for(Duration::from_secs(20), "the coordinator to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
    }

    /// Starts a worker; `via` overrides the coordinator URL (e.g. through a proxy).
    pub fn start_worker(&mut self, name: &str, via: Option<String>, extra: &[&str]) {
        let child = Command::new(bin())
            .args(["worker", "--name", name, "--coordinator"])
            .arg(via.unwrap_or_else(|| self.url()))
            .args(["--fault-task-delay-ms", "300"])
            .args(extra)
            .current_dir(root())
            .env("RUST_LOG", "info")
            .env_remove("PATCHSWEEP_TOKEN")
            .stdout(Stdio::null())
            .stderr(self.log(name))
            .spawn()
            .expect("start worker");
        self.workers.push((name.to_string(), child));
    }

    pub fn worker_pid(&self, name: &str) -> i32 {
        self.workers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.id() as i32)
            .expect("worker")
    }

    pub fn signal_worker(&self, name: &str, sig: i32) {
        unsafe {
            libc::kill(self.worker_pid(name), sig);
        }
    }

    pub fn kill_coordinator(&mut self) {
        if let Some(mut c) = self.coordinator.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }

    pub fn submit(&self, spec: &Path) -> i64 {
        let out = Command::new(bin())
            .args(["submit"])
            .arg(spec)
            .args(["--coordinator", &self.url()])
            .env_remove("PATCHSWEEP_TOKEN")
            .output()
            .expect("submit");
        assert!(
            out.status.success(),
            "submit failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("sweep id")
    }

    pub fn sweep_state(&self, sweep: i64) -> String {
        sweep_status(&self.db, sweep)
    }

    /// Waits until the sweep has ended; answers its state.
    pub fn wait_final(&self, sweep: i64, timeout: Duration) -> String {
        let mut state = String::new();
        wait_for(timeout, "the sweep to end", || {
            state = self.sweep_state(sweep);
            matches!(state.as_str(), "done" | "partial" | "failed" | "cancelled")
        });
        state
    }

    /// The logs of every process, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(dir) = std::fs::read_dir(self.logs.path()) {
            for e in dir.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                s.push_str(&format!("--- {} ---\n", e.path().display()));
                for l in tail.into_iter().rev() {
                    s.push_str(l);
                    s.push('\n');
                }
            }
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, c) in &mut self.workers {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGCONT);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.kill_coordinator();
    }
}

pub fn wait_for(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
