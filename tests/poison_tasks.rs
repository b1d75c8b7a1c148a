//! Tasks no worker can compute, through a real coordinator with two worker processes: a
//! model that outputs NaN and a prompt longer than the model's context each fail their sweep
//! with the reason, at the first attempt; both workers keep serving, and a good sweep
//! submitted afterwards completes.

mod cluster;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cluster::common::nan_model;
use cluster::{bin, root, write_spec, Cluster};

/// The cluster test spec with another model or another dataset.
fn variant(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> std::path::PathBuf {
    let text = std::fs::read_to_string(write_spec(dir)).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// `patchsweep status ID` as a user reads it.
fn status(cluster: &Cluster, sweep: i64) -> String {
    let out = Command::new(bin())
        .args([
            "status",
            &sweep.to_string(),
            "--coordinator",
            &cluster.url(),
        ])
        .env_remove("PATCHSWEEP_TOKEN")
        .output()
        .expect("status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_workers_alive(cluster: &mut Cluster) {
    let logs = cluster.logs();
    for (name, child) in &mut cluster.workers {
        let exited = child.try_wait().unwrap();
        assert!(
            exited.is_none(),
            "worker {name} exited ({exited:?})\n{logs}"
        );
    }
}

#[test]
fn bad_sweeps_fail_with_the_reason_and_the_workers_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("poison.db").display());
    let mut cluster = Cluster::new(&db);
    cluster.start_coordinator();
    cluster.start_worker("w1", None, &[]);
    cluster.start_worker("w2", None, &[]);
    let tiny = root().join("model/tests/data/tiny-llama2");

    let nan = nan_model(dir.path());
    let nan_spec = variant(dir.path(), "nan", |t| {
        t.replace(&tiny.display().to_string(), &nan.display().to_string())
    });
    // 20,000 words before the swapped word: far beyond the tiny model's 128 positions.
    let prefix = "word ".repeat(20_000);
    let long_spec = variant(dir.path(), "long", |t| {
        t.replace(
            "\"The cat said that\"",
            &format!("\"{prefix}The cat said that\""),
        )
        .replace(
            "\"The bat said that\"",
            &format!("\"{prefix}The bat said that\""),
        )
    });

    for (spec, reason) in [
        (&nan_spec, "not finite"),
        (&long_spec, "at most 128 (max_position_embeddings)"),
    ] {
        let sweep = cluster.submit(spec);
        let state = cluster.wait_final(sweep, Duration::from_secs(120));
        let shown = status(&cluster, sweep);
        assert_eq!(state, "failed", "{shown}\n{}", cluster.logs());
        assert!(shown.contains(reason), "{shown}");
        assert!(shown.contains("after 1 attempt(s)"), "{shown}");
        assert!(!shown.contains("lease expired"), "{shown}");
        assert_workers_alive(&mut cluster);
    }

    let good = cluster.submit(&write_spec(dir.path()));
    let state = cluster.wait_final(good, Duration::from_secs(180));
    assert_eq!(
        state,
        "done",
        "{}\n{}",
        status(&cluster, good),
        cluster.logs()
    );
    assert_workers_alive(&mut cluster);
}
