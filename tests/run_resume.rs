//! `patchsweep run` on a database it shares: it works on its own sweep only, an interrupted
//! run hands its lease back and is continued by running the same spec again (the result
//! equals an uninterrupted run), and a NaN-producing model fails the run instead of hanging.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{nan_model, patchsweep, root};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("run-resume-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A sweep of the tiny LLaMA-2-shaped checkpoint cut into many small tasks.
fn spec(name: &str, model: &Path) -> String {
    format!(
        r#"name = "{name}"
model = "{}"
[metric]
kind = "logit_diff"
positive = [" to"]
negative = [" the"]
[dataset.templates]
templates = [{{ name = "t", text = "The {{subject}} said that" }}]
fillers = [
  {{ clean = {{ subject = "cat" }}, corrupt = {{ subject = "bat" }}, id = "cat" }},
  {{ clean = {{ subject = "dog" }}, corrupt = {{ subject = "log" }}, id = "dog" }},
  {{ clean = {{ subject = "hat" }}, corrupt = {{ subject = "mat" }}, id = "hat" }},
  {{ clean = {{ subject = "pen" }}, corrupt = {{ subject = "ten" }}, id = "pen" }},
]
[tasks]
pairs_per_task = 1
layers_per_task = 1
[[experiment]]
name = "resid"
method = "activation"
components = ["resid_pre", "mlp_out"]
"#,
        model.display()
    )
}

fn tiny() -> PathBuf {
    root().join("model/tests/data/tiny-llama2")
}

/// A query's CSV, with plain `\n` line ends.
fn csv(db: &str, sql: &str) -> String {
    let out = patchsweep(&["query", "--db", db, "--format", "csv", sql]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().replace("\r\n", "\n")
}

/// The one number a single-cell query answers; -1 when the query fails (a database still
/// being created, while waiting).
fn number(db: &str, sql: &str) -> i64 {
    let out = patchsweep(&["query", "--db", db, "--format", "csv", sql]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(-1)
}

/// `patchsweep run SPEC --db DB` in the background, each patch task delayed by `delay_ms`.
fn spawn_run(spec: &str, db: &str, delay_ms: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_patchsweep"))
        .args(["run", spec, "--db", db, "--fault-task-delay-ms", delay_ms])
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (up to 2 min) until `ready` holds, polling.
fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Ctrl-C to a background run; its output once it has stopped.
fn interrupt(child: std::process::Child) -> std::process::Output {
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    child.wait_with_output().unwrap()
}

const EFFECTS: &str = "SELECT experiment, component, layer, position, pair_id, value \
                       FROM effects_v ORDER BY experiment, component, layer, position, pair_id";

fn run_ok(args: &[&str]) -> String {
    let out = patchsweep(args);
    assert!(
        out.status.success(),
        "patchsweep {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn an_interrupted_run_is_continued_and_equals_an_uninterrupted_one() {
    let dir = scratch("interrupt");
    let spec_path = dir.join("sweep.toml");
    std::fs::write(&spec_path, spec("resumable", &tiny())).unwrap();
    let spec_arg = spec_path.to_str().unwrap();

    let reference = format!("sqlite://{}", dir.join("reference.db").display());
    run_ok(&["run", spec_arg, "--db", &reference]);

    let db = format!("sqlite://{}", dir.join("interrupted.db").display());
    let child = spawn_run(spec_arg, &db, "150");
    // Interrupt once a few patch tasks are done.
    let done = "SELECT COUNT(*) FROM tasks WHERE kind = 'patch' AND state = 'done'";
    wait_for("two finished tasks", || {
        dir.join("interrupted.db").exists() && number(&db, done) >= 2
    });
    let out = interrupt(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: sweep 1 left unfinished"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("patchsweep run {spec_arg} --db {db}")),
        "{stderr}"
    );
    let leased = number(&db, "SELECT COUNT(*) FROM tasks WHERE state = 'leased'");
    assert_eq!(leased, 0, "Ctrl-C hands the lease back");
    let left = number(&db, "SELECT COUNT(*) FROM tasks WHERE state = 'queued'");
    assert!(left > 0, "the run was interrupted mid-sweep");

    let stderr = run_ok(&["run", spec_arg, "--db", &db]);
    assert!(stderr.contains("continuing sweep 1"), "{stderr}");
    assert_eq!(
        number(&db, "SELECT COUNT(*) FROM sweeps"),
        1,
        "no second sweep"
    );
    assert_eq!(
        number(&db, "SELECT MAX(attempt) FROM tasks"),
        1,
        "no task ran twice"
    );
    assert_eq!(csv(&db, EFFECTS), csv(&reference, EFFECTS));

    // Running the finished spec again starts a new sweep; --new always does.
    let stderr = run_ok(&["run", spec_arg, "--db", &db, "--new"]);
    assert!(!stderr.contains("continuing"), "{stderr}");
    assert_eq!(number(&db, "SELECT COUNT(*) FROM sweeps"), 2);
}

#[test]
fn a_run_leaves_other_sweeps_of_its_database_alone() {
    let dir = scratch("foreign");
    let db = format!("sqlite://{}", dir.join("shared.db").display());
    // A foreign sweep left unfinished: a run of another spec, interrupted once planned.
    let foreign = dir.join("foreign.toml");
    std::fs::write(&foreign, spec("foreign", &tiny())).unwrap();
    let child = spawn_run(foreign.to_str().unwrap(), &db, "1000");
    wait_for("the foreign sweep's plan", || {
        dir.join("shared.db").exists()
            && number(&db, "SELECT COUNT(*) FROM tasks WHERE kind = 'patch'") > 0
    });
    let out = interrupt(child);
    assert_eq!(out.status.code(), Some(130));
    let foreign_done = number(
        &db,
        "SELECT COUNT(*) FROM tasks WHERE sweep_id = 1 AND state = 'done'",
    );

    let own = dir.join("own.toml");
    std::fs::write(&own, spec("own", &tiny())).unwrap();
    let stderr = run_ok(&["run", own.to_str().unwrap(), "--db", &db]);
    assert!(
        stderr.contains("holds 1 other unfinished sweep(s) (id 1); this run leaves them alone"),
        "{stderr}"
    );
    assert_eq!(
        number(
            &db,
            "SELECT COUNT(*) FROM tasks WHERE sweep_id = 1 AND state = 'done'"
        ),
        foreign_done,
        "the foreign sweep's tasks were not run"
    );
    assert_eq!(
        csv(&db, "SELECT id, status FROM sweeps ORDER BY id"),
        "id,status\n1,running\n2,done\n"
    );
}

#[test]
fn a_model_that_outputs_nan_fails_the_run_with_the_reason() {
    let dir = scratch("nan");
    let spec_path = dir.join("nan.toml");
    std::fs::write(&spec_path, spec("nan", &nan_model(&dir))).unwrap();
    let db = format!("sqlite://{}", dir.join("nan.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_patchsweep"))
        .args(["run", spec_path.to_str().unwrap(), "--db", &db])
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run hangs on a model that outputs NaN");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("not finite"), "{stderr}");
    assert_eq!(
        csv(&db, "SELECT status FROM sweeps"),
        "status\nfailed\n",
        "{stderr}"
    );
}
