//! The Hub path without a network: a model in the standard hf-hub cache layout under
//! `HF_HOME` loads with `HF_HUB_OFFLINE=1`, by branch or by pinned commit; an absent one
//! fails with an error that says so. (One test: it sets process environment variables.)

mod common;

use common::*;
use patchsweep_model::{load, Forward, Input, LoadOptions, ModelSpec, NoHook};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

#[test]
fn offline_hub_cache_loads_and_misses_are_named() {
    let home = std::env::temp_dir().join(format!("patchsweep-hf-home-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let repo_dir = home.join("hub").join("models--tiny-org--tiny-llama2");
    let snapshot = repo_dir.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
    std::fs::write(repo_dir.join("refs").join("main"), COMMIT).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(tiny_path("tiny-llama2").join(f), snapshot.join(f)).unwrap();
    }
    std::env::set_var("HF_HOME", &home);
    std::env::set_var("HF_HUB_OFFLINE", "1");

    let reference = load_tiny("tiny-llama2");
    let ids = reference
        .tokenizer
        .encode("The nurse said that", None)
        .unwrap();
    let t = reference.model.tokens_tensor(&[ids]).unwrap();
    let expect = reference
        .model
        .forward(Input::Tokens(&t), &mut NoHook, Forward::default())
        .unwrap()
        .logits
        .unwrap();
    for spec in [
        "hf:tiny-org/tiny-llama2",
        "tiny-org/tiny-llama2@main",
        &format!("hf:tiny-org/tiny-llama2@{COMMIT}"),
    ] {
        let spec: ModelSpec = spec.parse().unwrap();
        let m = load(&spec, &LoadOptions::default()).unwrap_or_else(|e| panic!("{spec}: {e}"));
        let got = m
            .model
            .forward(Input::Tokens(&t), &mut NoHook, Forward::default())
            .unwrap()
            .logits
            .unwrap();
        assert_eq!(max_abs_diff(&got, &expect), 0.0, "{spec}");
    }

    let err = load(
        &"hf:tiny-org/absent-model".parse().unwrap(),
        &LoadOptions::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("tiny-org/absent-model") && err.contains("HF_HUB_OFFLINE"),
        "{err}"
    );
    let err = load(
        &"hf:tiny-org/tiny-llama2@v9".parse().unwrap(),
        &LoadOptions::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("\"v9\"") && err.contains("not in the cache"),
        "{err}"
    );
    std::fs::remove_file(snapshot.join("tokenizer.json")).unwrap();
    let err = load(
        &"hf:tiny-org/tiny-llama2".parse().unwrap(),
        &LoadOptions::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
    let _ = std::fs::remove_dir_all(&home);
}
