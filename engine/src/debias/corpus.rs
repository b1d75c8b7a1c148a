//! The corpus a fine-tuning intervention trains on (`corpus = …` in its table).
//!
//! ```toml
//! corpus = "templates"                                  # default: the selection prompts (CDA)
//! corpus = { text = "corpus.txt" }                      # a text file + WinoBias swap lists
//! corpus = { text = "corpus.txt", swaps = "swaps.txt" } # … + your own swap list
//! corpus = { panda = "panda.jsonl" }                    # PANDA-format JSONL
//! corpus = "hf-dataset:facebook/panda"                  # PANDA from the Hugging Face Hub
//! corpus = "hf-dataset:facebook/panda@main:train.jsonl" # … a revision and one file
//! ```
//!
//! - `templates`: prompt-completion CDA on the selection split's prompts (see
//!   [`super::finetune`]).
//! - `text` (+ `swaps`): one training text per non-blank line, each with its gender-swapped
//!   copy ([`super::cda`]); the default swap lists are WinoBias's.
//! - `panda`: JSON lines with `original`, `perturbed`, `selected_word` and
//!   `target_attribute`; rows whose attribute is on PANDA's gender axis (`man`, `woman`,
//!   `non-binary`) are kept, and both their `original` and `perturbed` text train.
//! - `hf-dataset:OWNER/NAME[@REVISION][:FILE]`: a dataset repository in the standard
//!   Hugging Face cache, read as PANDA JSONL (every `.jsonl` file of the repository unless
//!   one is named); fetched once through hf-hub, then offline (`HF_HUB_OFFLINE=1` reads only
//!   the cache). It is resolved where the fine-tuning runs (the worker), as models are.
//!
//! Files a spec names travel inside the spec: the submitting client reads them (bounded,
//! regular files only) and replaces each path by `{ name, content }`
//! (`patchsweep_api::spec_files`); a path that was not inlined is refused, so workers never
//! open a path a submitter chose.

use std::collections::BTreeMap;

use patchsweep_model::Tokenizer;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::cda::{augment, SwapList};
use super::config::{DebiasConfig, InterventionConfig};
use super::error::{config, DebiasError, Result};

/// PANDA's gender-axis target attributes.
pub const PANDA_GENDER_ATTRIBUTES: &[&str] = &["man", "woman", "non-binary"];

/// A file named in a spec: a path (before the client inlines it) or its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRef {
    Path(String),
    Inline { name: String, content: String },
}

impl FileRef {
    /// The file's name for messages.
    pub fn name(&self) -> &str {
        match self {
            FileRef::Path(p) => p,
            FileRef::Inline { name, .. } => name,
        }
    }

    /// The inlined content; a bare path is an error naming `field`.
    pub fn content(&self, field: &str) -> Result<&str> {
        match self {
            FileRef::Inline { content, .. } => Ok(content),
            FileRef::Path(p) => Err(config(
                field,
                format!(
                    "{p:?} was not sent with the spec: `patchsweep submit` and `patchsweep run` \
                     read the files a spec names and send their content; a path alone is never \
                     opened by a worker"
                ),
            )),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum FileRepr {
    Path(String),
    Inline { name: String, content: String },
}

impl<'de> Deserialize<'de> for FileRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(match FileRepr::deserialize(d)? {
            FileRepr::Path(p) => FileRef::Path(p),
            FileRepr::Inline { name, content } => FileRef::Inline { name, content },
        })
    }
}

impl Serialize for FileRef {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            FileRef::Path(p) => FileRepr::Path(p.clone()),
            FileRef::Inline { name, content } => FileRepr::Inline {
                name: name.clone(),
                content: content.clone(),
            },
        }
        .serialize(s)
    }
}

/// A dataset repository on the Hub: `hf-dataset:OWNER/NAME[@REVISION][:FILE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfDataset {
    pub repo: String,
    pub revision: Option<String>,
    pub file: Option<String>,
}

const HF_PREFIX: &str = "hf-dataset:";

impl std::str::FromStr for HfDataset {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let rest = s
            .strip_prefix(HF_PREFIX)
            .ok_or_else(|| format!("{s:?} does not start with {HF_PREFIX}"))?;
        let (repo_rev, file) = match rest.split_once(':') {
            Some((r, f)) => (r, Some(f)),
            None => (rest, None),
        };
        let (repo, revision) = match repo_rev.split_once('@') {
            Some((r, v)) => (r, Some(v)),
            None => (repo_rev, None),
        };
        let ok_part = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match repo.split_once('/') {
            Some((o, n)) if ok_part(o) && ok_part(n) => {}
            _ => return Err(format!("{s:?}: the repository must be OWNER/NAME")),
        }
        if revision.is_some_and(|r| r.trim().is_empty()) {
            return Err(format!("{s:?}: an empty revision after @"));
        }
        // A revision names a file under the cache's `refs/` offline: no path may escape it.
        if revision.is_some_and(|r| {
            r.starts_with('/') || r.contains('\\') || r.split('/').any(|p| p == "..")
        }) {
            return Err(format!(
                "{s:?}: a revision is a branch, tag or commit, not a path with `..`, `\\` or a leading `/`"
            ));
        }
        if let Some(f) = file {
            if f.is_empty() || f.starts_with('/') || f.split('/').any(|p| p == "..") {
                return Err(format!(
                    "{s:?}: the file must be a path inside the repository"
                ));
            }
        }
        Ok(Self {
            repo: repo.to_string(),
            revision: revision.map(str::to_string),
            file: file.map(str::to_string),
        })
    }
}

impl std::fmt::Display for HfDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{HF_PREFIX}{}", self.repo)?;
        if let Some(r) = &self.revision {
            write!(f, "@{r}")?;
        }
        if let Some(file) = &self.file {
            write!(f, ":{file}")?;
        }
        Ok(())
    }
}

/// What a fine-tuning intervention trains on (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CorpusConfig {
    /// Prompt-completion CDA on the selection split's prompts.
    #[default]
    Templates,
    /// A text file, each line with its swapped copy (`swaps`: `None` = WinoBias's lists).
    Text {
        text: FileRef,
        swaps: Option<FileRef>,
    },
    /// A PANDA-format JSONL file.
    Panda { panda: FileRef },
    /// PANDA-format JSONL from a Hub dataset repository.
    HfDataset(HfDataset),
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum CorpusRepr {
    Word(String),
    Table(CorpusTable),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusTable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<FileRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    swaps: Option<FileRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    panda: Option<FileRef>,
}

impl<'de> Deserialize<'de> for CorpusConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error;
        let expected = "corpus: expected \"templates\", \"hf-dataset:OWNER/NAME\", \
                        { text = FILE[, swaps = FILE] } or { panda = FILE }";
        let repr = CorpusRepr::deserialize(d).map_err(|_| D::Error::custom(expected))?;
        Ok(match repr {
            CorpusRepr::Word(w) if w == "templates" => CorpusConfig::Templates,
            CorpusRepr::Word(w) if w.starts_with(HF_PREFIX) => {
                CorpusConfig::HfDataset(w.parse().map_err(D::Error::custom)?)
            }
            CorpusRepr::Word(w) => {
                return Err(D::Error::custom(format!("{expected}; found {w:?}")))
            }
            CorpusRepr::Table(t) => match (t.text, t.swaps, t.panda) {
                (Some(text), swaps, None) => CorpusConfig::Text { text, swaps },
                (None, None, Some(panda)) => CorpusConfig::Panda { panda },
                _ => return Err(D::Error::custom(expected)),
            },
        })
    }
}

impl Serialize for CorpusConfig {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            CorpusConfig::Templates => CorpusRepr::Word("templates".into()),
            CorpusConfig::HfDataset(h) => CorpusRepr::Word(h.to_string()),
            CorpusConfig::Text { text, swaps } => CorpusRepr::Table(CorpusTable {
                text: Some(text.clone()),
                swaps: swaps.clone(),
                panda: None,
            }),
            CorpusConfig::Panda { panda } => CorpusRepr::Table(CorpusTable {
                text: None,
                swaps: None,
                panda: Some(panda.clone()),
            }),
        }
        .serialize(s)
    }
}

/// The sentences of a PANDA-format JSONL text (see the module doc): each kept row's
/// `original` then `perturbed`. Errors name `name:line`.
pub fn panda_sentences(name: &str, text: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |reason: String| DebiasError::Corpus {
            file: name.to_string(),
            line: Some(i + 1),
            reason,
        };
        let row: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        let field = |key: &str| -> Result<&str> {
            match row.get(key) {
                Some(serde_json::Value::String(s)) => Ok(s),
                Some(_) => Err(bad(format!("`{key}` is not a string"))),
                None => Err(bad(format!(
                    "no `{key}` (a PANDA row has original, perturbed, selected_word and \
                     target_attribute)"
                ))),
            }
        };
        if !row.is_object() {
            return Err(bad("not a JSON object".into()));
        }
        let (original, perturbed) = (field("original")?, field("perturbed")?);
        field("selected_word")?;
        let attribute = field("target_attribute")?.trim().to_lowercase();
        if !PANDA_GENDER_ATTRIBUTES.contains(&attribute.as_str()) {
            continue;
        }
        for s in [original, perturbed] {
            let s = s.trim();
            if !s.is_empty() {
                out.push(s.to_string());
            }
        }
    }
    if out.is_empty() {
        return Err(DebiasError::Corpus {
            file: name.to_string(),
            line: None,
            reason: format!(
                "the corpus is empty: no row with a gender target_attribute ({})",
                PANDA_GENDER_ATTRIBUTES.join(", ")
            ),
        });
    }
    Ok(out)
}

impl CorpusConfig {
    /// Checks what needs no Hub: files inlined, swap lists and PANDA rows well formed, the
    /// corpus not empty. `field` names the intervention's `corpus` in errors.
    pub fn validate(&self, field: &str) -> Result<()> {
        match self {
            CorpusConfig::Templates | CorpusConfig::HfDataset(_) => Ok(()),
            _ => self.sentences(field).map(|_| ()),
        }
    }

    /// The training sentences (`None` for `templates`); a Hub dataset is resolved here.
    pub fn sentences(&self, field: &str) -> Result<Option<Vec<String>>> {
        Ok(Some(match self {
            CorpusConfig::Templates => return Ok(None),
            CorpusConfig::Text { text, swaps } => {
                let list = match swaps {
                    Some(f) => {
                        SwapList::parse(&[(f.name(), f.content(&format!("{field}.swaps"))?)])?
                    }
                    None => SwapList::winobias(),
                };
                augment(text.name(), text.content(&format!("{field}.text"))?, &list)?
            }
            CorpusConfig::Panda { panda } => {
                panda_sentences(panda.name(), panda.content(&format!("{field}.panda"))?)?
            }
            CorpusConfig::HfDataset(h) => {
                let files = patchsweep_model::load::hub_dataset_files(
                    &h.repo,
                    h.revision.as_deref(),
                    h.file.as_deref(),
                    ".jsonl",
                )?;
                let mut all = Vec::new();
                for path in files {
                    let shown = path.display().to_string();
                    let text = std::fs::read_to_string(&path).map_err(|e| DebiasError::Corpus {
                        file: shown.clone(),
                        line: None,
                        reason: format!("cannot read ({h}): {e}"),
                    })?;
                    all.extend(panda_sentences(&shown, &text)?);
                }
                all
            }
        }))
    }
}

/// Tokenized corpus sentences per fine-tuning intervention name (only those with a corpus
/// other than `templates`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Corpora(pub BTreeMap<String, Vec<Vec<u32>>>);

impl Corpora {
    pub fn get(&self, intervention: &str) -> Option<&[Vec<u32>]> {
        self.0.get(intervention).map(Vec::as_slice)
    }
}

/// `sentences` as token ids (`prepend_bos` as for prompts), each cut to `max_tokens`;
/// sentences of fewer than 2 tokens (nothing to predict) are dropped.
pub fn tokenize_sentences(
    tok: &Tokenizer,
    sentences: &[String],
    prepend_bos: Option<bool>,
    max_tokens: usize,
) -> Result<Vec<Vec<u32>>> {
    let mut out = Vec::with_capacity(sentences.len());
    for s in sentences {
        let mut ids = tok.encode(s, prepend_bos)?;
        ids.truncate(max_tokens);
        if ids.len() >= 2 {
            out.push(ids);
        }
    }
    Ok(out)
}

/// Loads and tokenizes the corpus of every fine-tuning intervention of `cfg` that has one.
pub fn load_corpora(
    cfg: &DebiasConfig,
    tok: &Tokenizer,
    prepend_bos: Option<bool>,
) -> Result<Corpora> {
    let mut out = BTreeMap::new();
    for (i, iv) in cfg.interventions.iter().enumerate() {
        let InterventionConfig::Finetune(f) = iv else {
            continue;
        };
        let field = format!("intervention[{i}].corpus");
        let Some(sentences) = f.corpus.sentences(&field)? else {
            continue;
        };
        let ids = tokenize_sentences(tok, &sentences, prepend_bos, f.max_tokens)?;
        if ids.is_empty() {
            return Err(DebiasError::Corpus {
                file: field,
                line: None,
                reason: "no sentence has 2 tokens or more".into(),
            });
        }
        tracing::info!(debias = %cfg.name, intervention = %iv.name(), sentences = ids.len(), "corpus loaded");
        out.insert(iv.name(), ids);
    }
    Ok(Corpora(out))
}
