//! Which local model files a worker opens (`--model-root`): a sweep's spec comes from whoever
//! holds the coordinator's token, so a worker can be told to open local paths only under one
//! folder. Hub models (`hf:ORG/NAME`) are unaffected; without a root any path is opened.

use std::path::{Path, PathBuf};

use patchsweep_model::ModelSpec;

/// Refuses a local model path outside `root` (after resolving `..` and symbolic links).
pub fn check(spec: &ModelSpec, root: Option<&Path>) -> Result<(), String> {
    let (Some(root), Some(path)) = (root, local_path(spec)) else {
        return Ok(());
    };
    let root = root
        .canonicalize()
        .map_err(|e| format!("--model-root {}: {e}", root.display()))?;
    // A missing file is reported by the loader as missing; only an existing path can escape.
    let Ok(resolved) = path.canonicalize() else {
        return Ok(());
    };
    if resolved.starts_with(&root) {
        Ok(())
    } else {
        Err(format!(
            "model {spec}: this worker opens local models only under {} (--model-root); \
             {} is outside it (use hf:ORG/NAME, or a path under the root)",
            root.display(),
            resolved.display()
        ))
    }
}

fn local_path(spec: &ModelSpec) -> Option<PathBuf> {
    match spec {
        ModelSpec::Folder(p) | ModelSpec::Gguf(p) => Some(p.clone()),
        ModelSpec::Hub { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_root_are_refused_and_the_hub_is_not() {
        let root = tempfile::tempdir().unwrap();
        let inside = root.path().join("m.gguf");
        std::fs::write(&inside, b"x").unwrap();
        let spec = |s: String| s.parse::<ModelSpec>().unwrap();
        let inside_spec = spec(format!("gguf:{}", inside.display()));
        assert!(check(&inside_spec, Some(root.path())).is_ok());
        let escape = spec(format!("gguf:{}/../../etc/passwd", root.path().display()));
        let err = check(&escape, Some(root.path())).unwrap_err();
        assert!(
            err.contains("only under") && err.contains("/etc/passwd"),
            "{err}"
        );
        assert!(check(&spec("hf:org/name".into()), Some(root.path())).is_ok());
        assert!(check(&escape, None).is_ok());
    }
}
