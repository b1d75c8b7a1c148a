//! Greedy generation on the real SmolLM2 equals transformers' `generate(do_sample=False)`
//! (engine/tests/golden/greedy_smollm2.json, from reference/greedy_generate.py).

use std::path::PathBuf;

use patchsweep_engine::generate::greedy;
use patchsweep_model::{load, LoadOptions, ModelSpec, NoHook};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn greedy_tokens_match_transformers_on_smollm2() {
    let gguf = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        gguf.is_file(),
        "demo model missing: run scripts/fetch-demo-model.sh"
    );
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("engine/tests/golden/greedy_smollm2.json")).unwrap(),
    )
    .unwrap();
    let loaded = load(&ModelSpec::Gguf(gguf), &LoadOptions::default()).unwrap();
    for case in golden["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let prompt_ids = loaded.tokenizer.encode(prompt, None).unwrap();
        assert_eq!(prompt_ids, ids(&case["ids"]), "{prompt}");
        let expected = ids(&case["generated"]);
        let got = greedy(&loaded.model, &[prompt_ids], expected.len(), &mut NoHook)
            .unwrap()
            .remove(0);
        assert_eq!(got, expected, "{prompt}");
        assert_eq!(
            loaded.tokenizer.decode(&got).unwrap(),
            case["text"].as_str().unwrap(),
            "{prompt}"
        );
    }
}
