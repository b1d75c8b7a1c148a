//! `corpus = "hf-dataset:OWNER/NAME"` without a network: a dataset repository in the
//! standard hf-hub cache layout under `HF_HOME` (`hub/datasets--OWNER--NAME/refs/main`,
//! `snapshots/COMMIT/…`) is read with `HF_HUB_OFFLINE=1`, every `.jsonl` file or a named
//! one; an absent repository or file fails with an error that says so. (One test: it sets
//! process environment variables.)

use patchsweep_engine::debias::CorpusConfig;

const COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";

fn row(original: &str, perturbed: &str, attribute: &str) -> String {
    format!(
        "{{\"original\": \"{original}\", \"perturbed\": \"{perturbed}\", \
         \"selected_word\": \"x\", \"target_attribute\": \"{attribute}\"}}\n"
    )
}

fn corpus(spec: &str) -> CorpusConfig {
    spec.parse().map(CorpusConfig::HfDataset).unwrap()
}

#[test]
fn a_cached_hub_dataset_is_read_offline_and_misses_are_named() {
    let home = std::env::temp_dir().join(format!("patchsweep-hf-data-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let repo = home.join("hub").join("datasets--tiny-org--panda-sample");
    let snapshot = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(snapshot.join("data")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), COMMIT).unwrap();
    std::fs::write(
        snapshot.join("data").join("train.jsonl"),
        row("He sang.", "She sang.", "woman") + &row("A cat.", "A dog.", "young"),
    )
    .unwrap();
    std::fs::write(
        snapshot.join("valid.jsonl"),
        row("Her aunt ran.", "His uncle ran.", "man"),
    )
    .unwrap();
    std::fs::write(snapshot.join("README.md"), "not data").unwrap();
    std::env::set_var("HF_HOME", &home);
    std::env::set_var("HF_HUB_OFFLINE", "1");

    let all = corpus("hf-dataset:tiny-org/panda-sample")
        .sentences("corpus")
        .unwrap()
        .unwrap();
    // Every .jsonl file, sorted by path; gender rows only.
    assert_eq!(
        all,
        ["He sang.", "She sang.", "Her aunt ran.", "His uncle ran."]
    );
    let one = corpus(&format!(
        "hf-dataset:tiny-org/panda-sample@{COMMIT}:valid.jsonl"
    ))
    .sentences("corpus")
    .unwrap()
    .unwrap();
    assert_eq!(one, ["Her aunt ran.", "His uncle ran."]);

    let err = |spec: &str| corpus(spec).sentences("corpus").unwrap_err().to_string();
    let e = err("hf-dataset:tiny-org/absent");
    assert!(
        e.contains("tiny-org/absent") && e.contains("HF_HUB_OFFLINE"),
        "{e}"
    );
    let e = err("hf-dataset:tiny-org/panda-sample:test.jsonl");
    assert!(
        e.contains("test.jsonl") && e.contains("not in the cache"),
        "{e}"
    );
    let e = err("hf-dataset:tiny-org/panda-sample@v2");
    assert!(e.contains("\"v2\""), "{e}");
    // A malformed line names the cached file and the line.
    std::fs::write(snapshot.join("valid.jsonl"), "{\"original\": 1}\n").unwrap();
    let e = err("hf-dataset:tiny-org/panda-sample");
    assert!(e.contains("valid.jsonl:1"), "{e}");
    // No JSONL at all: the files there are listed.
    std::fs::remove_file(snapshot.join("valid.jsonl")).unwrap();
    std::fs::remove_file(snapshot.join("data").join("train.jsonl")).unwrap();
    let e = err("hf-dataset:tiny-org/panda-sample");
    assert!(
        e.contains("no .jsonl file") && e.contains("README.md"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&home);
}
