//! Helpers shared by the model runtime's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use candle_core::Tensor;
use patchsweep_model::{load, LoadOptions, LoadedModel, ModelSpec};
use serde::Deserialize;

pub const TINY_MODELS: &[&str] = &["tiny-llama2", "tiny-llama3", "tiny-mistral", "tiny-qwen2"];

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn demo_model_path() -> PathBuf {
    let p = repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "the demo model {} is missing: run scripts/fetch-demo-model.sh",
        p.display()
    );
    p
}

pub fn tiny_path(name: &str) -> PathBuf {
    repo_root().join("model/tests/data").join(name)
}

pub fn load_tiny(name: &str) -> LoadedModel {
    load(&ModelSpec::Folder(tiny_path(name)), &LoadOptions::default()).unwrap()
}

#[derive(Debug, Deserialize)]
pub struct Golden {
    pub model: String,
    pub source: String,
    pub prompts: Vec<GoldenPrompt>,
}

#[derive(Debug, Deserialize)]
pub struct GoldenPrompt {
    pub text: String,
    pub token_ids: Vec<u32>,
    pub top_logits: Vec<GoldenLogit>,
    pub hooks: std::collections::BTreeMap<String, GoldenHook>,
}

#[derive(Debug, Deserialize)]
pub struct GoldenLogit {
    pub id: u32,
    pub logit: f32,
}

#[derive(Debug, Deserialize)]
pub struct GoldenHook {
    pub norms: Vec<f64>,
    pub last_slice: Vec<f32>,
}

pub fn golden(name: &str) -> Golden {
    let path = repo_root()
        .join("model/tests/golden")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

pub fn max_abs(a: &Tensor) -> f32 {
    a.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}
