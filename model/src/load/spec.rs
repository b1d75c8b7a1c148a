//! The one model-spec string: `gguf:PATH`, `hf:ORG/NAME[@REVISION]`, or a plain path to a
//! Hugging Face model folder or a `.gguf` file (a non-existent `ORG/NAME` means the Hub).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::ModelError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// A folder with config.json, safetensors weights (single or sharded) and tokenizer.json.
    Folder(PathBuf),
    /// A GGUF file (dequantized on load; tokenizer from its metadata).
    Gguf(PathBuf),
    /// A Hugging Face Hub repository, optionally pinned to a branch, tag or commit.
    Hub {
        repo: String,
        revision: Option<String>,
    },
}

impl FromStr for ModelSpec {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, ModelError> {
        let bad = |reason: &str| ModelError::BadSpec {
            spec: s.to_string(),
            reason: reason.to_string(),
        };
        if s.trim().is_empty() {
            return Err(bad(
                "empty; expected gguf:PATH, hf:ORG/NAME[@REV] or a folder path",
            ));
        }
        if let Some(path) = s.strip_prefix("gguf:") {
            return Ok(Self::Gguf(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("hf:") {
            return parse_hub(rest)
                .ok_or_else(|| bad("expected hf:ORG/NAME or hf:ORG/NAME@REVISION"));
        }
        if let Some(path) = s.strip_prefix("dir:") {
            return Ok(Self::Folder(PathBuf::from(path)));
        }
        let path = Path::new(s);
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            return Ok(Self::Gguf(path.to_path_buf()));
        }
        if path.exists() || s.starts_with('.') || s.starts_with('/') {
            return Ok(Self::Folder(path.to_path_buf()));
        }
        parse_hub(s).ok_or_else(|| bad("not an existing path, and not ORG/NAME[@REVISION] either"))
    }
}

fn parse_hub(s: &str) -> Option<ModelSpec> {
    let (repo, revision) = match s.split_once('@') {
        Some((r, rev)) if !rev.is_empty() => (r, Some(rev.to_string())),
        Some(_) => return None,
        None => (s, None),
    };
    let parts: Vec<&str> = repo.split('/').collect();
    let ok = parts.len() == 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && !p.contains(char::is_whitespace));
    ok.then(|| ModelSpec::Hub {
        repo: repo.to_string(),
        revision,
    })
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Folder(p) => write!(f, "{}", p.display()),
            Self::Gguf(p) => write!(f, "gguf:{}", p.display()),
            Self::Hub {
                repo,
                revision: Some(r),
            } => write!(f, "hf:{repo}@{r}"),
            Self::Hub {
                repo,
                revision: None,
            } => write!(f, "hf:{repo}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(
            "gguf:m.gguf".parse::<ModelSpec>().unwrap(),
            ModelSpec::Gguf("m.gguf".into())
        );
        assert_eq!(
            "x/y.gguf".parse::<ModelSpec>().unwrap(),
            ModelSpec::Gguf("x/y.gguf".into())
        );
        assert_eq!(
            "hf:meta-llama/Llama-2-7b-hf@main"
                .parse::<ModelSpec>()
                .unwrap(),
            ModelSpec::Hub {
                repo: "meta-llama/Llama-2-7b-hf".into(),
                revision: Some("main".into())
            }
        );
        assert_eq!(
            "mistralai/Mistral-7B-v0.3".parse::<ModelSpec>().unwrap(),
            ModelSpec::Hub {
                repo: "mistralai/Mistral-7B-v0.3".into(),
                revision: None
            }
        );
        assert_eq!(
            "./some/dir".parse::<ModelSpec>().unwrap(),
            ModelSpec::Folder("./some/dir".into())
        );
    }

    #[test]
    fn rejects_nonsense_with_the_spec_named() {
        for s in ["", "hf:", "hf:a/b/c", "hf:a/b@", "not a model"] {
            let err = s.parse::<ModelSpec>().unwrap_err().to_string();
            assert!(err.contains(&format!("{s:?}")), "{err}");
        }
    }
}
