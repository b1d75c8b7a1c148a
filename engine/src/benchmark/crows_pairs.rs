//! CrowS-Pairs (Nangia et al., EMNLP 2020): 1,508 sentence pairs over nine bias types, read
//! from `crows_pairs_anonymized.csv` (vendored in `engine/data/benchmarks/crows-pairs/`).
//!
//! `sent_more` is the stereotypical sentence and `sent_less` the other, in both directions:
//! `stereo_antistereo` says which sentence is about the historically disadvantaged group
//! (`stereo`: `sent_more` demonstrates a stereotype of it; `antistereo`: `sent_less` violates
//! one), and the authors' `metric.py` counts a pair as stereotyped when `sent_more` scores
//! higher either way. The direction is kept in [`BenchmarkPair::labels`]. The subset is the
//! `bias_type` column; ids are `crows_pairs/{first column}`.

use std::collections::BTreeMap;
use std::path::Path;

use super::csv::records;
use super::{read_text, BenchmarkError, BenchmarkPair};

/// The nine bias types, in the order of the paper's table.
pub const BIAS_TYPES: &[&str] = &[
    "race-color",
    "socioeconomic",
    "gender",
    "disability",
    "nationality",
    "sexual-orientation",
    "physical-appearance",
    "religion",
    "age",
];

/// Where the vendored copy lives (and what errors about it name).
pub const VENDORED_PATH: &str = "engine/data/benchmarks/crows-pairs/crows_pairs_anonymized.csv";
const VENDORED: &str = include_str!("../../data/benchmarks/crows-pairs/crows_pairs_anonymized.csv");

const COLUMNS: &[&str] = &["sent_more", "sent_less", "stereo_antistereo", "bias_type"];

/// Every pair of the vendored copy, in file order.
pub fn builtin() -> Result<Vec<BenchmarkPair>, BenchmarkError> {
    parse(VENDORED, VENDORED_PATH)
}

/// Every pair of a CrowS-Pairs CSV file, in file order.
pub fn read(path: &Path) -> Result<Vec<BenchmarkPair>, BenchmarkError> {
    parse(&read_text(path)?, &path.display().to_string())
}

/// Parses CrowS-Pairs CSV text; `path` is used in error messages only.
pub fn parse(text: &str, path: &str) -> Result<Vec<BenchmarkPair>, BenchmarkError> {
    let recs = records(text, path)?;
    let Some((header, rows)) = recs.split_first() else {
        return Err(BenchmarkError::Parse {
            path: path.into(),
            line: 1,
            message: "the file is empty (no header)".into(),
        });
    };
    let column = |name: &str| -> Result<usize, BenchmarkError> {
        header
            .fields
            .iter()
            .position(|f| f == name)
            .ok_or_else(|| BenchmarkError::Parse {
                path: path.into(),
                line: header.line,
                message: format!("the header has no column {name:?}"),
            })
    };
    let idx: Vec<usize> = COLUMNS
        .iter()
        .map(|c| column(c))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for rec in rows {
        let err = |message: String| BenchmarkError::Parse {
            path: path.into(),
            line: rec.line,
            message,
        };
        if rec.fields.len() != header.fields.len() {
            return Err(err(format!(
                "{} fields, the header has {}",
                rec.fields.len(),
                header.fields.len()
            )));
        }
        let field = |i: usize| rec.fields[idx[i]].as_str();
        let (more, less, direction, bias) = (field(0), field(1), field(2), field(3));
        for (name, value) in [("sent_more", more), ("sent_less", less)] {
            if value.trim().is_empty() {
                return Err(err(format!("column {name} is empty")));
            }
        }
        if !matches!(direction, "stereo" | "antistereo") {
            return Err(err(format!(
                "stereo_antistereo is {direction:?}, expected \"stereo\" or \"antistereo\""
            )));
        }
        if !BIAS_TYPES.contains(&bias) {
            return Err(err(format!(
                "bias_type {bias:?} is not one of {}",
                BIAS_TYPES.join(", ")
            )));
        }
        let key = rec.fields[0].trim();
        let id = if key.is_empty() {
            format!("crows_pairs/line{}", rec.line)
        } else {
            format!("crows_pairs/{key}")
        };
        out.push(BenchmarkPair {
            id,
            subset: bias.to_string(),
            stereo: more.to_string(),
            anti: less.to_string(),
            labels: BTreeMap::from([("direction".to_string(), direction.to_string())]),
        });
    }
    Ok(out)
}
