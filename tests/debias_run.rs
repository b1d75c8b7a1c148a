//! A sweep with a `[[debias]]` section, end to end on the tiny model through `patchsweep
//! run`: debias tasks wait for the patching, select from the selection split only, and
//! store before/after/control figures; the stored split never overlaps; a second run of
//! the same spec gives the same numbers.

mod cluster;

use std::path::Path;
use std::process::Command;

use cluster::tiny_spec::{labelled_pairs, tiny_spec, WORDS};
use cluster::{bin, debias_rows, sweep_rows};

fn spec(dir: &Path) -> std::path::PathBuf {
    let rest = r#"
[[experiment]]
name = "heads"
method = "activation"
components = ["head_out", "mlp_out"]
positions = "joint"

[[debias]]
name = "top"
experiment = "heads"

[debias.select]
component = "head_out"
top_k = 2

[debias.split]
heldout_professions = 0.4
seed = 3

[debias.neutral]
max_chunks = 2

[[debias.intervention]]
kind = "ablation"
mode = "zero"

[[debias.intervention]]
kind = "steering"

[[debias.intervention]]
kind = "finetune"
steps = 3
lr = 0.01
"#;
    let text = tiny_spec("tiny-debias", &(labelled_pairs(&WORDS) + rest));
    let path = dir.join("debias.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(spec: &Path, db: &str, deltas: &Path) {
    let out = Command::new(bin())
        .arg("run")
        .arg(spec)
        .args(["--db", db])
        .env("PATCHSWEEP_DELTAS_DIR", deltas)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("debiasing, before and after"), "{stdout}");
    assert_eq!(
        stdout.matches("debiasing, before and after").count(),
        1,
        "{stdout}"
    );
    // The patching rate leaves the debias time out and names it (issue 16).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("patches/s); then") && stderr.contains("s for the debias sections"),
        "{stderr}"
    );
}

#[test]
fn debias_runs_after_the_sweep_and_repeats_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let (a, b) = (
        format!("sqlite://{}", dir.path().join("a.db").display()),
        format!("sqlite://{}", dir.path().join("b.db").display()),
    );
    run(&spec, &a, &dir.path().join("deltas-a"));
    run(&spec, &b, &dir.path().join("deltas-b"));

    let rows_a = debias_rows(&a, 1);
    assert_eq!(
        rows_a,
        debias_rows(&b, 1),
        "the same spec gives the same numbers"
    );
    let interventions: std::collections::BTreeSet<&str> =
        rows_a.iter().map(|r| r.intervention.as_str()).collect();
    assert_eq!(
        interventions.into_iter().collect::<Vec<_>>(),
        ["ablation_zero", "finetune", "steering"]
    );
    for r in &rows_a {
        if r.intervention == "steering" {
            // Steering edits whole layers; the tiny model's two are both selected, so no
            // layer is left for a control.
            assert_eq!((r.control_after, r.control_sets), (None, None), "{r:?}");
            continue;
        }
        assert!(r.control_after.is_some(), "{r:?}");
        assert_eq!(r.control_sets, Some(20), "{r:?}");
        assert_ne!(Some(&r.components), r.control_components.as_ref(), "{r:?}");
    }
    assert!(rows_a
        .iter()
        .any(|r| r.split == "heldout" && r.metric == "mean_logit_diff"));
    assert!(rows_a.iter().any(|r| r.metric == "perplexity"));

    // The stored split: both sides non-empty, no pair on both (professions: engine tests).
    let splits = sweep_rows(&a, "debias_splits", 1);
    let part_of = |part: &str| -> std::collections::BTreeSet<(String, String)> {
        splits
            .iter()
            .filter(|s| s["part"] == part)
            .map(|s| (s["debias"].to_string(), s["pair_id"].to_string()))
            .collect()
    };
    let (selection, heldout) = (part_of("selection"), part_of("heldout"));
    assert_eq!(selection.intersection(&heldout).count(), 0);
    assert!(!selection.is_empty());
    assert!(!heldout.is_empty());
    // The debias task ran after every patch task.
    let tasks = sweep_rows(&a, "tasks", 1);
    let times = |kind: &str, column: &str| -> Vec<f64> {
        tasks
            .iter()
            .filter(|t| t["kind"] == kind)
            .filter_map(|t| t[column].as_f64())
            .collect()
    };
    let debias_start = times("debias", "started_at")
        .into_iter()
        .fold(f64::INFINITY, f64::min);
    let patches_end = times("patch", "finished_at")
        .into_iter()
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(
        debias_start >= patches_end,
        "{debias_start} < {patches_end}"
    );
    // Fine-tuned deltas were saved where the run was told.
    let saved = std::fs::read_dir(dir.path().join("deltas-a/sweep-1"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(saved >= 2, "tuned and control deltas saved");
}

/// A spec whose fine-tuning trains on corpus files beside it (`corpus.txt` with `swaps`,
/// `panda.jsonl`), named relative to the spec's folder.
fn corpus_spec(dir: &Path, swaps: &str) -> std::path::PathBuf {
    std::fs::write(
        dir.join("corpus.txt"),
        "The man said that he was late.\nHer dog sat on the mat.\nThe cat was in the box.\n",
    )
    .unwrap();
    std::fs::write(dir.join("swaps.txt"), swaps).unwrap();
    std::fs::write(
        dir.join("panda.jsonl"),
        "{\"original\": \"He fed the dog.\", \"perturbed\": \"She fed the dog.\", \
         \"selected_word\": \"He\", \"target_attribute\": \"woman\"}\n",
    )
    .unwrap();
    let rest = r#"
[[experiment]]
name = "heads"
method = "activation"
components = ["head_out", "mlp_out"]
positions = "joint"

[[debias]]
name = "corpus"
experiment = "heads"
control_sets = 2

[debias.select]
components = ["mlp_out L0", "head L1H0"]

[debias.split]
heldout_professions = 0.4
seed = 3

[debias.neutral]
max_chunks = 2

[[debias.intervention]]
kind = "finetune"
name = "ft_text"
steps = 2
lr = 0.01
corpus = { text = "corpus.txt", swaps = "swaps.txt" }

[[debias.intervention]]
kind = "finetune"
name = "ft_panda"
steps = 2
lr = 0.01
corpus = { panda = "panda.jsonl" }
"#;
    let path = dir.join("corpus.toml");
    std::fs::write(
        &path,
        tiny_spec("tiny-corpus", &(labelled_pairs(&WORDS) + rest)),
    )
    .unwrap();
    path
}

#[test]
fn corpus_finetuning_reads_files_beside_the_spec_and_a_bad_swap_list_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = |spec: &Path, db: &str| {
        Command::new(bin())
            .arg("run")
            .arg(spec)
            .args(["--db", db])
            .env("PATCHSWEEP_DELTAS_DIR", dir.path().join("deltas"))
            .current_dir("/")
            .output()
            .unwrap()
    };
    let spec = corpus_spec(dir.path(), "he\tshe\nhis\ther\nman\twoman\n");
    let db = format!("sqlite://{}", dir.path().join("ok.db").display());
    let out = run(&spec, &db);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = debias_rows(&db, 1);
    for name in ["ft_text", "ft_panda"] {
        let held: Vec<_> = rows
            .iter()
            .filter(|r| r.intervention == name && r.split == "heldout")
            .collect();
        assert!(!held.is_empty(), "{name}: {rows:?}");
        assert!(held.iter().any(|r| r.after != r.before), "{name}: {held:?}");
        assert!(held.iter().all(|r| r.control_sets == Some(2)), "{held:?}");
    }
    let saved = std::fs::read_dir(dir.path().join("deltas/sweep-1"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(saved >= 4, "tuned and control deltas of both: {saved}");

    let spec = corpus_spec(dir.path(), "he\tshe\nhis her hers\n");
    let db = format!("sqlite://{}", dir.path().join("bad.db").display());
    let out = run(&spec, &db);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("swaps.txt:2"), "{stderr}");
    assert_eq!(cluster::sweep_status(&db, 1), "", "nothing stored");
}
