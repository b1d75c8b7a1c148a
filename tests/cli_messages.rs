//! The messages a new user meets first (issue 16): each names what was looked for and what to
//! do next, instead of a DNS error, a serde variant list or a refused write.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{patchsweep, root};

fn stderr_of_failure(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn tiny() -> PathBuf {
    root().join("model/tests/data/tiny-llama2")
}

/// A spec on the tiny model with `experiment` as its one experiment's extra lines and
/// `pairs` as its inline pairs.
fn spec(dir: &std::path::Path, name: &str, pairs: &str, experiment: &str) -> PathBuf {
    let text = format!(
        r#"name = "messages"
model = "{}"
prepend_bos = false
[metric]
kind = "logit_diff"
positive = [" to"]
negative = [" the"]
[dataset]
pairs = [{pairs}]
[[experiment]]
name = "resid"
method = "activation"
components = ["resid_pre"]
{experiment}
"#,
        tiny().display()
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const PAIRS: &str = r#"{ clean = "The cat said that", corrupt = "The bat said that", id = "cat" }"#;

fn run_fails(spec: &std::path::Path, dir: &std::path::Path) -> String {
    let db = format!("sqlite://{}", dir.join("m.db").display());
    stderr_of_failure(&patchsweep(&["run", spec.to_str().unwrap(), "--db", &db]))
}

#[test]
fn a_mistyped_local_model_path_is_not_only_a_hub_error() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_patchsweep"))
        .args(["logits", "--model", "model/nope", "--prompt", "hi"])
        .current_dir(root())
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", home.path())
        .output()
        .unwrap();
    let err = stderr_of_failure(&out);
    assert!(
        err.contains("there is no file or folder \"model/nope\" here")
            && err.contains("there is a folder \"model\"")
            && err.contains("dir:model/nope"),
        "{err}"
    );
}

#[test]
fn a_missing_demo_model_says_how_to_fetch_it() {
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_patchsweep"))
        .args([
            "logits",
            "--model",
            "gguf:models/SmolLM2-135M-Instruct.Q4_1.gguf",
            "--prompt",
            "hi",
        ])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    let err = stderr_of_failure(&out);
    assert!(
        err.contains("missing file") && err.contains("scripts/fetch-demo-model.sh"),
        "{err}"
    );
}

#[test]
fn layer_and_position_mistakes_show_the_accepted_forms() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let err = run_fails(&spec(d, "range.toml", PAIRS, "layers = \"0..40\""), d);
    assert!(
        err.contains("layer 2 does not exist: the model has 2 layers, numbered 0..=1"),
        "{err}"
    );
    let err = run_fails(&spec(d, "int.toml", PAIRS, "layers = 3"), d);
    assert!(
        err.contains("a single number (3) is not a layer selection")
            && err.contains("\"A..=B\"")
            && err.contains("one layer: [3]"),
        "{err}"
    );
    assert!(!err.contains("untagged"), "{err}");
    let err = run_fails(&spec(d, "float.toml", PAIRS, "positions = 3.5"), d);
    assert!(
        err.contains("positions") && err.contains("\"joint\"") && err.contains("[-1, \"subject\"]"),
        "{err}"
    );
    let err = run_fails(&spec(d, "list.toml", PAIRS, "positions = [1.5]"), d);
    assert!(
        err.contains("a position: an index") && !err.contains("untagged"),
        "{err}"
    );
    let err = run_fails(&spec(d, "neg.toml", PAIRS, "layers = [-1]"), d);
    assert!(err.contains("layer -1 is negative"), "{err}");
}

#[test]
fn an_empty_prompt_without_bos_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pairs = format!("{PAIRS}, {{ clean = \"\", corrupt = \"x\", id = \"blank\" }}");
    let err = run_fails(&spec(d, "empty.toml", &pairs, ""), d);
    assert!(
        err.contains("pair \"blank\": the clean prompt \"\" has no tokens")
            && err.contains("prepend_bos = true"),
        "{err}"
    );
}

#[test]
fn sweep_commands_have_their_own_help_and_require_an_id() {
    let help = |cmd: &str| {
        let out = patchsweep(&[cmd, "--help"]);
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(help("status").contains("--json") && !help("status").contains("--interval"));
    assert!(help("watch").contains("--interval") && !help("watch").contains("--json"));
    assert!(!help("cancel").contains("--interval") && !help("cancel").contains("--json"));
    for cmd in ["cancel", "resume", "watch"] {
        let out = patchsweep(&[cmd]);
        assert_eq!(out.status.code(), Some(2), "{cmd}: not a usage error");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("<SWEEP_ID>"), "{cmd}: {err}");
    }
}

#[test]
fn status_without_a_coordinator_names_the_address() {
    let out = patchsweep(&["status", "--coordinator", "http://127.0.0.1:9"]);
    let err = stderr_of_failure(&out);
    assert!(
        err.contains("cannot reach the coordinator at http://127.0.0.1:9"),
        "{err}"
    );
}

#[test]
fn the_same_answer_on_both_sides_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = spec(d, "same.toml", PAIRS, "");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("negative = [\" the\"]", "negative = [\" to\"]");
    std::fs::write(&path, text).unwrap();
    let err = run_fails(&path, d);
    assert!(err.contains("the same answer tokens"), "{err}");
}
