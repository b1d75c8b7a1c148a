//! What the SmolLM2 parity tests share: the demo model and a golden file written by a
//! `reference/` script.
#![allow(dead_code)]

use std::path::PathBuf;

use patchsweep_model::{load, LoadOptions, LoadedModel, ModelSpec};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the engine crate sits in the workspace")
        .to_path_buf()
}

/// The demo model (`scripts/fetch-demo-model.sh` fetches it).
pub fn smollm2() -> LoadedModel {
    let gguf = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        gguf.is_file(),
        "demo model missing: run scripts/fetch-demo-model.sh"
    );
    load(&ModelSpec::Gguf(gguf), &LoadOptions::default()).expect("load SmolLM2")
}

/// `engine/tests/golden/NAME`, parsed.
pub fn golden(name: &str) -> Value {
    let path = root().join("engine/tests/golden").join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// A JSON array of token ids.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("an array of token ids")
        .iter()
        .map(|x| x.as_u64().expect("a token id") as u32)
        .collect()
}
