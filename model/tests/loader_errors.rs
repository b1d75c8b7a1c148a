//! Every loader error names its problem; none panics. Also the sharded-safetensors path.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use common::*;
use patchsweep_model::{load, Forward, Input, LoadOptions, ModelError, ModelSpec, NoHook};

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("patchsweep-loader-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A copy of a tiny model folder to damage.
fn copy_tiny(name: &str, tag: &str) -> PathBuf {
    let dir = temp_dir(tag);
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(tiny_path(name).join(f), dir.join(f)).unwrap();
    }
    dir
}

fn load_err(spec: ModelSpec) -> String {
    match load(&spec, &LoadOptions::default()) {
        Ok(_) => panic!("loading {spec} should fail"),
        Err(e) => e.to_string(),
    }
}

fn edit_config(dir: &Path, from: &str, to: &str) {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "config lacks {from}");
    std::fs::write(&path, text.replace(from, to)).unwrap();
}

#[test]
fn missing_files_are_named() {
    let dir = copy_tiny("tiny-llama2", "nocfg");
    std::fs::remove_file(dir.join("config.json")).unwrap();
    let msg = load_err(ModelSpec::Folder(dir.clone()));
    assert!(
        msg.starts_with("missing file") && msg.contains("config.json"),
        "{msg}"
    );

    let dir = copy_tiny("tiny-llama2", "noweights");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let msg = load_err(ModelSpec::Folder(dir));
    assert!(
        msg.contains("missing file") && msg.contains("model.safetensors"),
        "{msg}"
    );

    let msg = load_err(ModelSpec::Folder("/nonexistent/model/dir".into()));
    assert!(
        msg.contains("missing file") && msg.contains("/nonexistent/model/dir"),
        "{msg}"
    );

    let msg = load_err(ModelSpec::Gguf("/nonexistent/model.gguf".into()));
    assert!(
        msg.contains("missing file") && msg.contains("/nonexistent/model.gguf"),
        "{msg}"
    );
}

#[test]
fn truncated_safetensors_is_reported() {
    let dir = copy_tiny("tiny-llama2", "trunc-st");
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let msg = load_err(ModelSpec::Folder(dir));
    assert!(
        msg.contains("corrupt or truncated") && msg.contains("model.safetensors"),
        "{msg}"
    );
}

#[test]
fn truncated_and_corrupt_gguf_are_reported() {
    let real = demo_model_path();
    let bytes = std::fs::read(&real).unwrap();
    let dir = temp_dir("gguf");
    // Header intact, tensor data cut short: names the first tensor that does not fit.
    let half = dir.join("half.gguf");
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    let msg = load_err(ModelSpec::Gguf(half));
    assert!(
        msg.contains("truncated") && msg.contains("half.gguf") && msg.contains("tensor"),
        "{msg}"
    );
    // Cut inside the metadata.
    let head = dir.join("head.gguf");
    std::fs::write(&head, &bytes[..4096]).unwrap();
    let msg = load_err(ModelSpec::Gguf(head));
    assert!(
        msg.contains("corrupt or truncated") && msg.contains("head.gguf"),
        "{msg}"
    );
    // Not a GGUF at all: named, without echoing any of its bytes (a model path may name any
    // file the worker can read, e.g. `gguf:/etc/passwd`).
    let text = dir.join("text.gguf");
    std::fs::write(&text, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    let msg = load_err(ModelSpec::Gguf(text));
    assert!(
        msg.contains("not a GGUF file") && msg.contains("text.gguf"),
        "{msg}"
    );
    for leaked in ["root", "726f6f74", "746f6f72", "0x"] {
        assert!(
            !msg.contains(leaked),
            "the error shows file bytes ({leaked}): {msg}"
        );
    }
    // A device or a folder is refused before anything is read (`/dev/zero` would never end).
    let msg = load_err(ModelSpec::Gguf("/dev/zero".into()));
    assert!(msg.contains("not a regular file"), "{msg}");
}

#[test]
fn unsupported_architecture_is_named_with_the_supported_ones() {
    let dir = copy_tiny("tiny-llama2", "arch");
    edit_config(&dir, "LlamaForCausalLM", "GPTNeoXForCausalLM");
    let msg = load_err(ModelSpec::Folder(dir));
    assert!(msg.contains("GPTNeoXForCausalLM"), "{msg}");
    for supported in patchsweep_model::error::SUPPORTED_ARCHITECTURES {
        assert!(msg.contains(supported), "{msg}");
    }
}

#[test]
fn shape_mismatch_names_the_tensor() {
    let dir = copy_tiny("tiny-llama2", "shape");
    edit_config(
        &dir,
        "\"intermediate_size\": 64",
        "\"intermediate_size\": 48",
    );
    let msg = load_err(ModelSpec::Folder(dir));
    assert!(
        msg.contains("model.layers.0.mlp.gate_proj.weight")
            && msg.contains("[64, 32]")
            && msg.contains("[48, 32]"),
        "{msg}"
    );
}

#[test]
fn missing_tensor_is_named() {
    let dir = copy_tiny("tiny-llama2", "layers");
    edit_config(&dir, "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
    let msg = load_err(ModelSpec::Folder(dir));
    assert!(
        msg.contains("model.layers.2.input_layernorm.weight") && msg.contains("missing"),
        "{msg}"
    );
}

#[test]
fn malformed_config_is_reported() {
    let dir = copy_tiny("tiny-llama2", "json");
    std::fs::write(dir.join("config.json"), "{\"hidden_size\": 32,").unwrap();
    let msg = load_err(ModelSpec::Folder(dir));
    assert!(
        msg.contains("invalid model config") && msg.contains("config.json"),
        "{msg}"
    );
}

#[test]
fn token_outside_the_vocabulary_is_an_error() {
    let m = load_tiny("tiny-llama2");
    match m.model.tokens_tensor(&[vec![1, 2, 100_000]]) {
        Err(ModelError::BadInput(msg)) => assert!(msg.contains("100000"), "{msg}"),
        other => panic!("expected BadInput, got {other:?}"),
    }
}

#[test]
fn sharded_checkpoints_load_through_the_index() {
    let dir = copy_tiny("tiny-llama3", "shards");
    let path = dir.join("model.safetensors");
    let all = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    std::fs::remove_file(&path).unwrap();
    let mut names: Vec<&String> = all.keys().collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let mut map = serde_json::Map::new();
    for (shard, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let tensors: std::collections::HashMap<String, Tensor> = part
            .iter()
            .map(|n| ((*n).clone(), all[*n].clone()))
            .collect();
        candle_core::safetensors::save(&tensors, dir.join(shard)).unwrap();
        for n in part {
            map.insert((*n).clone(), serde_json::Value::String(shard.into()));
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();

    let sharded = load(&ModelSpec::Folder(dir), &LoadOptions::default()).unwrap();
    let single = load_tiny("tiny-llama3");
    let ids = single
        .tokenizer
        .encode("The nurse said that", None)
        .unwrap();
    let t = single.model.tokens_tensor(&[ids]).unwrap();
    let a = single
        .model
        .forward(Input::Tokens(&t), &mut NoHook, Forward::default())
        .unwrap()
        .logits
        .unwrap();
    let b = sharded
        .model
        .forward(Input::Tokens(&t), &mut NoHook, Forward::default())
        .unwrap()
        .logits
        .unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
}

#[test]
fn a_shard_named_by_the_index_but_absent_is_named() {
    let dir = copy_tiny("tiny-llama2", "badindex");
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        r#"{"weight_map": {"model.norm.weight": "model-00009-of-00009.safetensors"}}"#,
    )
    .unwrap();
    let msg = load_err(ModelSpec::Folder(dir));
    assert!(
        msg.contains("missing file") && msg.contains("model-00009-of-00009.safetensors"),
        "{msg}"
    );
}
