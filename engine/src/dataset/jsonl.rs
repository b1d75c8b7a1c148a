//! Custom pairs from a JSONL file, one pair per line:
//! ```json
//! {"clean": "The nurse said that", "corrupt": "The man said that", "positive": [" she"], "negative": [" he"], "labels": {"stereotype": "female"}, "id": "n1", "template": "said_that"}
//! ```
//! `clean` and `corrupt` are required; `positive`, `negative`, `labels`, `id` and `template`
//! are optional; any other field is an error. Blank lines are skipped. A missing id becomes
//! `line{N}` (N counted from 1). Errors name the file and the line. JSONL pairs carry no slots,
//! so their positions are labelled `bos`/`prefix`/`other`/`end` only (see
//! [`tokenize`](mod@super::tokenize)).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::{DatasetError, PairSpec};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    clean: String,
    corrupt: String,
    #[serde(default)]
    positive: Option<Vec<String>>,
    #[serde(default)]
    negative: Option<Vec<String>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    template: Option<String>,
}

/// Reads a JSONL file of pairs (see the module doc for the line format).
pub fn from_jsonl(path: &Path) -> Result<Vec<PairSpec>, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_jsonl(&text, path)
}

/// Parses JSONL text; `path` is only used in error messages.
pub fn parse_jsonl(text: &str, path: &Path) -> Result<Vec<PairSpec>, DatasetError> {
    let err = |line: usize, message: String| DatasetError::Jsonl {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(raw).map_err(|e| err(n, e.to_string()))?;
        for (field, value) in [("clean", &line.clean), ("corrupt", &line.corrupt)] {
            if value.is_empty() {
                return Err(err(n, format!("field `{field}` is empty")));
            }
        }
        for (field, words) in [("positive", &line.positive), ("negative", &line.negative)] {
            match words {
                Some(w) if w.is_empty() => {
                    return Err(err(n, format!("field `{field}` is an empty list")))
                }
                Some(w) if w.iter().any(|x| x.is_empty()) => {
                    return Err(err(n, format!("field `{field}` holds an empty string")))
                }
                _ => {}
            }
        }
        let id = line.id.unwrap_or_else(|| format!("line{n}"));
        if id.is_empty() {
            return Err(err(n, "field `id` is empty".into()));
        }
        if let Some(first) = seen.insert(id.clone(), n) {
            return Err(err(
                n,
                format!("duplicate id {id:?} (first on line {first})"),
            ));
        }
        out.push(PairSpec {
            id,
            template: line.template,
            clean: line.clean,
            corrupt: line.corrupt,
            positive: line.positive,
            negative: line.negative,
            labels: line.labels,
            slots: Vec::new(),
        });
    }
    if out.is_empty() {
        return Err(DatasetError::Empty {
            dataset: path.display().to_string(),
            reason: Some("the file has no pair lines".into()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<PairSpec>, DatasetError> {
        parse_jsonl(text, Path::new("pairs.jsonl"))
    }

    #[test]
    fn parses_lines_skipping_blanks() {
        let text = "{\"clean\":\"The nurse said that\",\"corrupt\":\"The man said that\",\"positive\":[\" she\"],\"negative\":[\" he\"],\"labels\":{\"s\":\"f\"}}\n\n  \n{\"clean\":\"a b\",\"corrupt\":\"a c\",\"id\":\"x\",\"template\":\"t\"}\n";
        let pairs = parse(text).expect("parse");
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].id, "line1");
        assert_eq!(
            pairs[0].positive.as_deref(),
            Some(&[" she".to_string()][..])
        );
        assert_eq!(pairs[0].labels["s"], "f");
        assert_eq!(pairs[1].id, "x");
        assert_eq!(pairs[1].template.as_deref(), Some("t"));
        assert!(pairs[1].slots.is_empty());
    }

    #[test]
    fn errors_name_file_and_line() {
        let good = r#"{"clean":"a","corrupt":"b"}"#;
        let cases = [
            (
                format!("{good}\n\n{{\"clean\":\"a\",\"corrupt\":\"b\",\"extra\":1}}"),
                "pairs.jsonl:3:",
                "extra",
            ),
            (
                format!("{good}\n{{\"clean\":\"a\"}}"),
                "pairs.jsonl:2:",
                "corrupt",
            ),
            (format!("{good}\nnot json"), "pairs.jsonl:2:", ""),
            (
                format!("{good}\n{{\"clean\":\"a\",\"corrupt\":\"b\",\"positive\":[]}}"),
                "pairs.jsonl:2:",
                "positive",
            ),
            (
                format!("{good}\n{{\"clean\":\"\",\"corrupt\":\"b\"}}"),
                "pairs.jsonl:2:",
                "clean",
            ),
            (
                format!("{{\"clean\":\"a\",\"corrupt\":\"b\",\"id\":\"line2\"}}\n{good}"),
                "pairs.jsonl:2:",
                "first on line 1",
            ),
        ];
        for (text, at, what) in cases {
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.starts_with(at), "{e}");
            assert!(e.contains(what), "{e}");
        }
        assert!(parse("\n\n").unwrap_err().to_string().contains("no pairs"));
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let e = from_jsonl(Path::new("/nonexistent/pairs.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/pairs.jsonl"), "{e}");
    }
}
