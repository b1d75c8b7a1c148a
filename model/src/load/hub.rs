//! Hugging Face Hub repositories through hf-hub: the standard cache (`HF_HOME`, default
//! `~/.cache/huggingface/hub`), `HF_TOKEN`, `HF_ENDPOINT`, revision pinning, and
//! `HF_HUB_OFFLINE=1`, under which only the cache is read, so a model downloaded once loads
//! without a network. Dataset repositories (`datasets--OWNER--NAME` in the same cache) are
//! resolved the same way ([`hub_dataset_files`]).

use std::path::PathBuf;

use hf_hub::api::sync::{Api, ApiBuilder};
use hf_hub::{Cache, Repo, RepoType};

use super::download_lines::DownloadLines;
use super::folder::{weight_files, FolderFiles};
use crate::error::{ModelError, Result};

fn on_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

enum Fetcher {
    Online(Box<Api>, Repo),
    /// The cache folder of the repo and the snapshot (commit) to read.
    Offline {
        snapshot: PathBuf,
    },
}

impl Fetcher {
    fn new(repo_id: &str, revision: &str, kind: RepoType) -> Result<Self> {
        let repo = Repo::with_revision(repo_id.to_string(), kind, revision.to_string());
        let hub_err = |reason: String| ModelError::Hub {
            repo: repo_id.to_string(),
            reason,
        };
        let cache = Cache::from_env();
        if offline() {
            let repo_dir = cache.path().join(repo.folder_name());
            let commit = std::fs::read_to_string(repo_dir.join("refs").join(revision))
                .map(|s| s.trim().to_string())
                .ok()
                .or_else(|| {
                    // A pinned commit hash has no ref file; its snapshot folder is enough.
                    let is_hash =
                        revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit());
                    is_hash.then(|| revision.to_string())
                })
                .ok_or_else(|| {
                    hub_err(format!(
                        "HF_HUB_OFFLINE is set and revision {revision:?} is not in the cache at {}",
                        cache.path().display()
                    ))
                })?;
            return Ok(Self::Offline {
                snapshot: repo_dir.join("snapshots").join(commit),
            });
        }
        // On a terminal hf-hub draws its bar; elsewhere `get` logs lines (DownloadLines).
        let mut builder = ApiBuilder::from_env().with_progress(on_terminal());
        if let Ok(token) = std::env::var("HF_TOKEN") {
            if !token.trim().is_empty() {
                builder = builder.with_token(Some(token.trim().to_string()));
            }
        }
        let api = builder.build().map_err(|e| hub_err(e.to_string()))?;
        Ok(Self::Online(Box::new(api), repo))
    }

    /// The local path of `file`, downloading it when online and absent from the cache.
    fn get(&self, repo_id: &str, file: &str) -> Result<PathBuf> {
        match self {
            Self::Offline { snapshot } => {
                let path = snapshot.join(file);
                if path.is_file() {
                    Ok(path)
                } else {
                    Err(ModelError::Hub {
                        repo: repo_id.to_string(),
                        reason: format!(
                            "HF_HUB_OFFLINE is set and {file} is not in the cache ({})",
                            path.display()
                        ),
                    })
                }
            }
            Self::Online(api, repo) => {
                let hub = api.repo(repo.clone());
                let cached = Cache::from_env().repo(repo.clone()).get(file);
                match cached {
                    Some(path) => Ok(path),
                    None if on_terminal() => hub.download(file),
                    None => hub.download_with_progress(file, DownloadLines::new()),
                }
                .map_err(|e| ModelError::Hub {
                    repo: repo_id.to_string(),
                    reason: format!("cannot fetch {file}: {e}"),
                })
            }
        }
    }

    fn try_get(&self, repo_id: &str, file: &str) -> Option<PathBuf> {
        self.get(repo_id, file).ok()
    }
}

/// Resolves (downloading if needed) the files of a Hub model.
pub fn hub_files(repo_id: &str, revision: Option<&str>) -> Result<FolderFiles> {
    let revision = revision.unwrap_or("main");
    let fetch = Fetcher::new(repo_id, revision, RepoType::Model)?;
    let config = fetch.get(repo_id, "config.json")?;
    let tokenizer = fetch.get(repo_id, "tokenizer.json")?;
    let index = fetch.try_get(repo_id, "model.safetensors.index.json");
    let weights = weight_files(
        index.as_deref(),
        || fetch.get(repo_id, "model.safetensors"),
        |name| fetch.get(repo_id, name),
    )?;
    Ok(FolderFiles {
        config,
        tokenizer,
        weights,
    })
}

/// The local paths of files of a Hub **dataset** repository (downloading them when online
/// and absent from the cache): `file` when given, otherwise every file of the repository
/// (at `revision`, default `main`) whose name ends with `extension`, sorted. Offline
/// (`HF_HUB_OFFLINE=1`), "every file" means those of the cached snapshot.
pub fn hub_dataset_files(
    repo_id: &str,
    revision: Option<&str>,
    file: Option<&str>,
    extension: &str,
) -> Result<Vec<PathBuf>> {
    let revision = revision.unwrap_or("main");
    let fetch = Fetcher::new(repo_id, revision, RepoType::Dataset)?;
    if let Some(file) = file {
        return Ok(vec![fetch.get(repo_id, file)?]);
    }
    let hub_err = |reason: String| ModelError::Hub {
        repo: repo_id.to_string(),
        reason,
    };
    let mut names: Vec<String> = match &fetch {
        Fetcher::Offline { snapshot } => {
            let mut found = Vec::new();
            list_files(snapshot, snapshot, &mut found).map_err(|e| {
                hub_err(format!(
                    "HF_HUB_OFFLINE is set and the cached snapshot {} cannot be read: {e}",
                    snapshot.display()
                ))
            })?;
            found
        }
        Fetcher::Online(api, repo) => api
            .repo(repo.clone())
            .info()
            .map_err(|e| hub_err(format!("cannot list the repository's files: {e}")))?
            .siblings
            .into_iter()
            .map(|s| s.rfilename)
            .collect(),
    };
    names.sort();
    let wanted: Vec<&String> = names.iter().filter(|n| n.ends_with(extension)).collect();
    if wanted.is_empty() {
        return Err(hub_err(format!(
            "no {extension} file at revision {revision:?} (files: {}); name one",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    }
    wanted.into_iter().map(|n| fetch.get(repo_id, n)).collect()
}

/// Files under `dir`, as paths relative to `root` with `/` separators.
fn list_files(
    root: &std::path::Path,
    dir: &std::path::Path,
    out: &mut Vec<String>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            list_files(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(parts.join("/"));
        }
    }
    Ok(())
}
