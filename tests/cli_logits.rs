//! `patchsweep logits` as a user runs it, on the real SmolLM2 GGUF, against HF's goldens.

mod common;

use common::{patchsweep, root};
use serde_json::Value;

const DEMO: &str = "gguf:models/SmolLM2-135M-Instruct.Q4_1.gguf";

#[test]
fn logits_json_matches_hf_goldens() {
    assert!(
        root()
            .join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
            .is_file(),
        "demo model missing: run scripts/fetch-demo-model.sh"
    );
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("model/tests/golden/smollm2.json")).unwrap(),
    )
    .unwrap();
    for prompt in golden["prompts"].as_array().unwrap().iter().take(3) {
        let text = prompt["text"].as_str().unwrap();
        let out = patchsweep(&[
            "logits", "--model", DEMO, "--prompt", text, "--top-k", "5", "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        let ids: Vec<u64> = got["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_u64().unwrap())
            .collect();
        let want: Vec<u64> = prompt["token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap())
            .collect();
        assert_eq!(ids, want, "{text}");
        let top = got["top"].as_array().unwrap();
        assert_eq!(top.len(), 5);
        for (ours, theirs) in top.iter().zip(prompt["top_logits"].as_array().unwrap()) {
            assert_eq!(ours["id"], theirs["id"], "{text}");
            let err = (ours["logit"].as_f64().unwrap() - theirs["logit"].as_f64().unwrap()).abs();
            assert!(err <= 1e-3, "{text}: logit error {err}");
            assert!(ours["text"].is_string());
        }
    }
}

#[test]
fn prepend_bos_overrides_the_tokenizer_default() {
    let out = patchsweep(&[
        "logits",
        "--model",
        DEMO,
        "--prompt",
        "The nurse said that",
        "--prepend-bos",
        "true",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<u64> = got["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 504, 12996, 1137, 338]);
}

#[test]
fn bad_model_specs_fail_with_a_named_problem() {
    let out = patchsweep(&[
        "logits",
        "--model",
        "gguf:models/absent.gguf",
        "--prompt",
        "x",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing file") && err.contains("models/absent.gguf"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let out = patchsweep(&["logits", "--model", "not a model", "--prompt", "x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not understood"), "{err}");

    let out = patchsweep(&[
        "logits", "--model", DEMO, "--prompt", "x", "--device", "cuda:0",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cuda"), "{err}");
}
