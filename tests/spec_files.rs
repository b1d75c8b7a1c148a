//! Files a spec names are read by the client (`submit`, `run`), bounded, and sent inline:
//! devices and over-limit files are refused at once, errors never show a file's bytes, and
//! an inlined JSONL dataset runs.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{patchsweep, root};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("spec-files-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A spec of the tiny model whose dataset is the JSONL file `jsonl`.
fn spec_with_jsonl(dir: &Path, jsonl: &str) -> PathBuf {
    let text = format!(
        r#"name = "jsonl"
model = "{}"
[metric]
kind = "logit_diff"
positive = [" to"]
negative = [" the"]
[dataset]
jsonl = "{jsonl}"
[[experiment]]
name = "resid"
method = "activation"
components = ["resid_pre"]
"#,
        root().join("model/tests/data/tiny-llama2").display()
    );
    let path = dir.join("spec.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the CLI, expecting a failure within `within`; answers its stderr.
fn fails_fast(args: &[&str], within: Duration) -> String {
    let started = Instant::now();
    let out = patchsweep(args);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} should fail: {stderr}");
    assert!(took < within, "{args:?} took {took:?}: {stderr}");
    stderr
}

#[test]
fn devices_and_files_over_the_limit_are_refused_before_reading() {
    let dir = scratch("limits");
    let db = format!("sqlite://{}", dir.join("r.db").display());
    // Nothing listens there: every error below comes before any connection.
    let nowhere = "http://127.0.0.1:9";
    let fast = Duration::from_secs(10);
    let zero = spec_with_jsonl(&dir, "/dev/zero");
    let zero = zero.to_str().unwrap();
    for args in [
        vec!["run", zero, "--db", &db],
        vec!["submit", zero, "--coordinator", nowhere],
    ] {
        let e = fails_fast(&args, fast);
        assert!(
            e.contains("dataset.jsonl") && e.contains("/dev/zero is not a regular file"),
            "{e}"
        );
    }
    // The spec file itself.
    let e = fails_fast(&["submit", "/dev/zero", "--coordinator", nowhere], fast);
    assert!(e.contains("/dev/zero is not a regular file"), "{e}");
    // Larger than the limit.
    let big = dir.join("big.jsonl");
    let line = r#"{"clean": "The cat said that", "corrupt": "The bat said that"}"#;
    std::fs::write(&big, format!("{line}\n").repeat(64)).unwrap();
    let spec = spec_with_jsonl(&dir, big.to_str().unwrap());
    let e = fails_fast(
        &[
            "run",
            spec.to_str().unwrap(),
            "--db",
            &db,
            "--max-file-bytes",
            "1KiB",
        ],
        fast,
    );
    assert!(e.contains("larger than the limit of 1024 bytes"), "{e}");
    assert!(
        !dir.join("r.db").exists(),
        "nothing is created for a refused spec"
    );
}

#[test]
fn errors_about_a_file_never_show_its_bytes() {
    let dir = scratch("secret");
    let secret = dir.join("passwd");
    std::fs::write(&secret, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    let spec = spec_with_jsonl(&dir, secret.to_str().unwrap());
    let db = format!("sqlite://{}", dir.join("r.db").display());
    let e = fails_fast(
        &["run", spec.to_str().unwrap(), "--db", &db],
        Duration::from_secs(60),
    );
    assert!(
        e.contains("passwd:1:"),
        "the error names the file and line: {e}"
    );
    assert!(
        !e.contains("root"),
        "the error shows the file's content: {e}"
    );
    // A model path naming a file that is no model: named, its bytes not shown.
    let text = format!(
        r#"name = "not-a-model"
model = "gguf:{}"
[metric]
kind = "logit_diff"
positive = [" to"]
negative = [" the"]
[dataset]
pairs = [{{ clean = "The cat said that", corrupt = "The bat said that" }}]
[[experiment]]
name = "resid"
method = "activation"
components = ["resid_pre"]
"#,
        secret.display()
    );
    let model_spec = dir.join("model.toml");
    std::fs::write(&model_spec, text).unwrap();
    let e = fails_fast(
        &["run", model_spec.to_str().unwrap(), "--db", &db],
        Duration::from_secs(60),
    );
    assert!(e.contains("not a GGUF file"), "{e}");
    assert!(
        !e.contains("root") && !e.contains("0x"),
        "the error shows file bytes: {e}"
    );
}

#[test]
fn an_inlined_jsonl_dataset_runs() {
    let dir = scratch("inlined");
    let pairs = dir.join("pairs.jsonl");
    std::fs::write(
        &pairs,
        concat!(
            r#"{"clean": "The cat said that", "corrupt": "The bat said that", "id": "cat"}"#,
            "\n",
            r#"{"clean": "The dog said that", "corrupt": "The log said that", "id": "dog"}"#,
            "\n"
        ),
    )
    .unwrap();
    let spec = spec_with_jsonl(&dir, pairs.to_str().unwrap());
    let db = format!("sqlite://{}", dir.join("r.db").display());
    let out = patchsweep(&["run", spec.to_str().unwrap(), "--db", &db]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("dataset: 2 pairs kept"), "{stderr}");
    // The file is no longer needed: the stored spec carries its content.
    std::fs::remove_file(&pairs).unwrap();
    let out = patchsweep(&["run", "--db", &db, "--resume", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
