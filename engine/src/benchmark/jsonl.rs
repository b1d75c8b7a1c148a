//! Custom sentence pairs, one JSON object per line:
//! ```json
//! {"stereo": "The nurse said that she", "anti": "The nurse said that he", "subset": "gender", "id": "n1"}
//! ```
//! `stereo` (the stereotypical sentence) and `anti` are required; `subset` (default
//! `default`; `all` is reserved for the overall score) and `id` (default `line{N}`) are
//! optional; any other field is an error. Blank lines are skipped; errors name the file and
//! the line.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::{read_text, BenchmarkError, BenchmarkPair, ALL_SUBSETS};

/// The subset of a line that names none.
pub const DEFAULT_SUBSET: &str = "default";

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    stereo: String,
    anti: String,
    #[serde(default)]
    subset: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

/// Reads a JSONL file of pairs (see the module doc for the line format).
pub fn read(path: &Path) -> Result<Vec<BenchmarkPair>, BenchmarkError> {
    parse(&read_text(path)?, &path.display().to_string())
}

/// Parses JSONL text; `path` is used in error messages only.
pub fn parse(text: &str, path: &str) -> Result<Vec<BenchmarkPair>, BenchmarkError> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let err = |message: String| BenchmarkError::Parse {
            path: path.into(),
            line: n,
            message,
        };
        if raw.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(raw).map_err(|e| err(e.to_string()))?;
        for (field, value) in [("stereo", &line.stereo), ("anti", &line.anti)] {
            if value.trim().is_empty() {
                return Err(err(format!("field `{field}` is empty")));
            }
        }
        let subset = line.subset.unwrap_or_else(|| DEFAULT_SUBSET.into());
        if subset.trim().is_empty() {
            return Err(err("field `subset` is empty".into()));
        }
        if subset == ALL_SUBSETS {
            return Err(err(format!(
                "subset {ALL_SUBSETS:?} is reserved for the score over every pair"
            )));
        }
        let id = line.id.unwrap_or_else(|| format!("line{n}"));
        if id.is_empty() {
            return Err(err("field `id` is empty".into()));
        }
        if let Some(first) = seen.insert(id.clone(), n) {
            return Err(err(format!("duplicate id {id:?} (first on line {first})")));
        }
        out.push(BenchmarkPair {
            id,
            subset,
            stereo: line.stereo,
            anti: line.anti,
            labels: BTreeMap::new(),
        });
    }
    if out.is_empty() {
        return Err(BenchmarkError::Empty {
            benchmark: path.into(),
            reason: "the file has no pairs".into(),
        });
    }
    Ok(out)
}
