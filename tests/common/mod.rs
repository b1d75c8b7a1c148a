//! Helpers shared by the CLI tests: run the built `patchsweep` binary from the repo root.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn patchsweep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_patchsweep"))
        .args(args)
        .current_dir(root())
        .env_remove("RUST_BACKTRACE")
        .env_remove("PATCHSWEEP_DB")
        .output()
        .expect("run patchsweep")
}

/// A copy of the tiny checkpoint whose layer-0 `o_proj` holds NaN.
pub fn nan_model(dir: &Path) -> PathBuf {
    let model = dir.join("tiny-nan");
    std::fs::create_dir_all(&model).unwrap();
    for entry in std::fs::read_dir(root().join("model/tests/data/tiny-llama2")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
    }
    let file = model.join("model.safetensors");
    let mut bytes = std::fs::read(&file).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let tensor = &header["model.layers.0.self_attn.o_proj.weight"];
    assert_eq!(tensor["dtype"], "F32", "{tensor}");
    let [from, to] = [0, 1].map(|i| tensor["data_offsets"][i].as_u64().unwrap() as usize);
    let data = 8 + header_len;
    for chunk in bytes[data + from..data + to].chunks_exact_mut(4) {
        chunk.copy_from_slice(&f32::NAN.to_le_bytes());
    }
    std::fs::write(&file, bytes).unwrap();
    model
}
