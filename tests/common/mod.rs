//! Helpers shared by the CLI tests: run the built `patchsweep` binary from the repo root.
#![allow(dead_code)]

use std::path::PathBuf;
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
