//! WinoBias (Zhao et al., NAACL 2018): pro- and anti-stereotyped sentences, types 1 and 2,
//! dev and test (vendored in `engine/data/benchmarks/winobias/`).
//!
//! Line N of `pro_stereotyped_typeT.txt.S` pairs with line N of `anti_stereotyped_typeT.txt.S`;
//! both start with the number N (checked). The number and the brackets that mark the entity
//! and its pronoun are removed, and runs of whitespace become one space. The pro-stereotyped
//! sentence is the stereotypical one. Subsets `type1`, `type2`; splits `dev`, `test`; ids
//! `winobias/{type}/{split}/{N}`. A few pairs differ in more than the pronoun (typos in the
//! published files); they are kept as published.

use std::collections::BTreeMap;
use std::path::Path;

use super::{read_text, BenchmarkError, BenchmarkPair};

/// The subsets (WinoBias types).
pub const TYPES: &[&str] = &["type1", "type2"];
/// The splits.
pub const SPLITS: &[&str] = &["dev", "test"];

/// Where the vendored copies live (and what errors about them name).
pub const VENDORED_DIR: &str = "engine/data/benchmarks/winobias";

macro_rules! vendored {
    ($kind:literal, $type:literal, $split:literal) => {
        include_str!(concat!(
            "../../data/benchmarks/winobias/",
            $kind,
            "_stereotyped_",
            $type,
            ".txt.",
            $split
        ))
    };
}

/// `(type, split, pro text, anti text)` of the vendored files.
const VENDORED: &[(&str, &str, &str, &str)] = &[
    (
        "type1",
        "dev",
        vendored!("pro", "type1", "dev"),
        vendored!("anti", "type1", "dev"),
    ),
    (
        "type1",
        "test",
        vendored!("pro", "type1", "test"),
        vendored!("anti", "type1", "test"),
    ),
    (
        "type2",
        "dev",
        vendored!("pro", "type2", "dev"),
        vendored!("anti", "type2", "dev"),
    ),
    (
        "type2",
        "test",
        vendored!("pro", "type2", "test"),
        vendored!("anti", "type2", "test"),
    ),
];

/// The file name of one side of one type and split, e.g. `pro_stereotyped_type1.txt.dev`.
pub fn file_name(kind: &str, wino_type: &str, split: &str) -> String {
    format!("{kind}_stereotyped_{wino_type}.txt.{split}")
}

/// Every pair of the vendored copies: type 1 dev, type 1 test, type 2 dev, type 2 test.
pub fn builtin() -> Result<Vec<BenchmarkPair>, BenchmarkError> {
    let mut out = Vec::new();
    for (wino_type, split, pro, anti) in VENDORED {
        let name = |kind| format!("{VENDORED_DIR}/{}", file_name(kind, wino_type, split));
        out.extend(parse_pair_files(
            (pro, &name("pro")),
            (anti, &name("anti")),
            wino_type,
            split,
        )?);
    }
    Ok(out)
}

/// Every pair of the eight files in a folder laid out as the published one.
pub fn read_dir(dir: &Path) -> Result<Vec<BenchmarkPair>, BenchmarkError> {
    let mut out = Vec::new();
    for wino_type in TYPES {
        for split in SPLITS {
            let pro = dir.join(file_name("pro", wino_type, split));
            let anti = dir.join(file_name("anti", wino_type, split));
            out.extend(parse_pair_files(
                (&read_text(&pro)?, &pro.display().to_string()),
                (&read_text(&anti)?, &anti.display().to_string()),
                wino_type,
                split,
            )?);
        }
    }
    Ok(out)
}

/// Pairs line N of the pro file with line N of the anti file; `(text, path)` each, the paths
/// for error messages.
pub fn parse_pair_files(
    pro: (&str, &str),
    anti: (&str, &str),
    wino_type: &str,
    split: &str,
) -> Result<Vec<BenchmarkPair>, BenchmarkError> {
    let pro_lines = sentences(pro.0, pro.1)?;
    let anti_lines = sentences(anti.0, anti.1)?;
    if pro_lines.len() != anti_lines.len() {
        let n = pro_lines.len().min(anti_lines.len());
        let (longer, path, other) = if pro_lines.len() > anti_lines.len() {
            (&pro_lines, pro.1, anti.1)
        } else {
            (&anti_lines, anti.1, pro.1)
        };
        let (number, _, line) = &longer[n];
        return Err(BenchmarkError::Parse {
            path: path.into(),
            line: *line,
            message: format!("sentence {number} has no partner in {other} ({n} sentences there)"),
        });
    }
    let mut out = Vec::with_capacity(pro_lines.len());
    for ((number, stereo, line), (anti_number, anti_text, _)) in
        pro_lines.into_iter().zip(anti_lines)
    {
        if number != anti_number {
            return Err(BenchmarkError::Parse {
                path: pro.1.into(),
                line,
                message: format!(
                    "sentence {number} pairs with sentence {anti_number} of {}",
                    anti.1
                ),
            });
        }
        out.push(BenchmarkPair {
            id: format!("winobias/{wino_type}/{split}/{number}"),
            subset: wino_type.to_string(),
            stereo,
            anti: anti_text,
            labels: BTreeMap::from([("split".to_string(), split.to_string())]),
        });
    }
    Ok(out)
}

/// `(sentence number, cleaned sentence, line)` for every non-blank line.
fn sentences(text: &str, path: &str) -> Result<Vec<(usize, String, usize)>, BenchmarkError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let err = |message: String| BenchmarkError::Parse {
            path: path.into(),
            line,
            message,
        };
        let mut words = raw.split_whitespace();
        let number = words.next().unwrap_or_default();
        let number: usize = number.parse().map_err(|_| {
            err(format!(
                "expected a sentence number first, found {number:?}"
            ))
        })?;
        let sentence = words
            .map(|w| w.replace(['[', ']'], ""))
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if sentence.is_empty() {
            return Err(err(format!("sentence {number} is empty")));
        }
        out.push((number, sentence, line));
    }
    Ok(out)
}
