//! Bias benchmarks scored by sentence preference: CrowS-Pairs, WinoBias, Professions, or a
//! JSONL of sentence pairs.
//!
//! Each benchmark is a list of [`BenchmarkPair`]s: a stereotypical sentence, its
//! counterpart, and a subset (CrowS-Pairs bias type, WinoBias type, the profession's
//! stereotype label). [`loglik`] gives each sentence's total log-likelihood under the model;
//! [`score`] turns a benchmark's pairs into the share of pairs whose stereotypical sentence
//! is more likely, with a Wilson 95% interval, per subset and over all pairs.
//!
//! # Readers
//! - [`crows_pairs`]: the published CSV (vendored; `sent_more` is the stereotypical side).
//! - [`winobias`]: the published pro/anti files, types 1 and 2, dev and test (vendored).
//! - [`professions`]: the built-in templates × the project's stereotyped professions.
//! - [`jsonl`]: `{"stereo", "anti", "subset", "id"}` per line.
//!
//! The vendored files are compiled in (`engine/data/benchmarks/`, with their licences and
//! sources); `read`/`read_dir` take a published file or folder instead, e.g. one fetched by
//! `scripts/fetch-benchmarks.sh`.

pub mod crows_pairs;
mod csv;
mod error;
pub mod jsonl;
pub mod loglik;
pub mod professions;
pub mod score;
pub mod winobias;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use error::BenchmarkError;
pub use loglik::{pair_log_likelihoods, sentence_log_likelihoods, LoglikOptions};
pub use score::{score_pairs, score_tokenized, summarize, tokenize_pairs, PairScore, SubsetScore};

/// The subset name of the score over every pair of a benchmark.
pub const ALL_SUBSETS: &str = "all";

/// One pair of sentences: the stereotypical one and its counterpart.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BenchmarkPair {
    /// Unique within the benchmark, e.g. `crows_pairs/12`, `winobias/type1/dev/27`.
    pub id: String,
    /// Bias type, WinoBias type, stereotype label, or the JSONL's own.
    pub subset: String,
    /// The stereotypical sentence.
    pub stereo: String,
    /// The anti-stereotypical (or less stereotypical) counterpart.
    pub anti: String,
    /// Extra facts per reader, e.g. CrowS-Pairs `direction`, WinoBias `split`.
    pub labels: BTreeMap<String, String>,
}

/// Which benchmark: `"crows_pairs" | "winobias" | "professions" | { jsonl = PATH }`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BenchmarkSource {
    CrowsPairs,
    Winobias,
    Professions,
    Jsonl(PathBuf),
}

impl BenchmarkSource {
    /// The source's name: `crows_pairs`, `winobias`, `professions`, `jsonl`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CrowsPairs => "crows_pairs",
            Self::Winobias => "winobias",
            Self::Professions => "professions",
            Self::Jsonl(_) => "jsonl",
        }
    }

    /// Parses a command-line name: one of the built-in names, or a path ending in `.jsonl`.
    pub fn from_cli(text: &str) -> Result<Self, BenchmarkError> {
        match text {
            "crows_pairs" => Ok(Self::CrowsPairs),
            "winobias" => Ok(Self::Winobias),
            "professions" => Ok(Self::Professions),
            path if path.ends_with(".jsonl") => Ok(Self::Jsonl(PathBuf::from(path))),
            other => Err(BenchmarkError::BadOption {
                benchmark: other.into(),
                field: "benchmark".into(),
                message: "expected crows_pairs, winobias, professions or a .jsonl file".into(),
            }),
        }
    }

    /// The splits the source has (empty: it has none).
    pub fn splits(&self) -> &'static [&'static str] {
        match self {
            Self::Winobias => winobias::SPLITS,
            _ => &[],
        }
    }

    /// Every pair of the benchmark, in the reader's order.
    pub fn pairs(&self) -> Result<Vec<BenchmarkPair>, BenchmarkError> {
        match self {
            Self::CrowsPairs => crows_pairs::builtin(),
            Self::Winobias => winobias::builtin(),
            Self::Professions => professions::builtin(),
            Self::Jsonl(path) => jsonl::read(path),
        }
    }
}

/// What to keep of a benchmark: some subsets (default all), one split (default all).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Selection {
    pub subsets: Option<Vec<String>>,
    pub split: Option<String>,
}

/// The pairs of `source` that `selection` keeps. Unknown subsets and splits are errors that
/// list the known ones; so is a selection that keeps nothing.
pub fn load(
    source: &BenchmarkSource,
    selection: &Selection,
) -> Result<Vec<BenchmarkPair>, BenchmarkError> {
    select(source.name(), source.splits(), source.pairs()?, selection)
}

/// The pairs of `all` (benchmark `name`, whose splits are `splits`) that `selection` keeps;
/// errors as [`load`]'s.
pub fn select(
    name: &str,
    splits: &[&str],
    all: Vec<BenchmarkPair>,
    selection: &Selection,
) -> Result<Vec<BenchmarkPair>, BenchmarkError> {
    if let Some(split) = &selection.split {
        let known = splits;
        if known.is_empty() {
            return Err(BenchmarkError::BadOption {
                benchmark: name.into(),
                field: "split".into(),
                message: format!("{name} has no splits"),
            });
        }
        if !known.contains(&split.as_str()) {
            return Err(BenchmarkError::BadOption {
                benchmark: name.into(),
                field: "split".into(),
                message: format!("unknown split {split:?}; known: {}", known.join(", ")),
            });
        }
    }
    let known: BTreeSet<&str> = all.iter().map(|p| p.subset.as_str()).collect();
    if let Some(subsets) = &selection.subsets {
        if subsets.is_empty() {
            return Err(BenchmarkError::BadOption {
                benchmark: name.into(),
                field: "subsets".into(),
                message: "is an empty list (omit it to keep every subset)".into(),
            });
        }
        for s in subsets {
            if !known.contains(s.as_str()) {
                return Err(BenchmarkError::UnknownSubset {
                    benchmark: name.into(),
                    subset: s.clone(),
                    known: known.iter().copied().collect::<Vec<_>>().join(", "),
                });
            }
        }
    }
    let kept: Vec<BenchmarkPair> = all
        .into_iter()
        .filter(|p| {
            selection
                .subsets
                .as_ref()
                .is_none_or(|s| s.contains(&p.subset))
        })
        .filter(|p| {
            selection
                .split
                .as_ref()
                .is_none_or(|s| p.labels.get("split") == Some(s))
        })
        .collect();
    if kept.is_empty() {
        return Err(BenchmarkError::Empty {
            benchmark: name.into(),
            reason: "the selection keeps no pair".into(),
        });
    }
    Ok(kept)
}

/// Reads a benchmark file as UTF-8 text, naming it on failure.
pub(crate) fn read_text(path: &Path) -> Result<String, BenchmarkError> {
    std::fs::read_to_string(path).map_err(|source| BenchmarkError::Io {
        path: path.display().to_string(),
        source,
    })
}
