//! Files a spec names, read by the client that submits it (`patchsweep submit`, `run`):
//! the spec file itself, `dataset.jsonl`, a `[[benchmark]]`'s `source = { jsonl }` and the
//! files of fine-tuning corpora. Their content travels inside the spec text (`dataset.jsonl`
//! becomes `dataset.jsonl_inline = { name, text }`, a corpus's `text`/`swaps`/`panda = PATH`
//! becomes `{ name, content }`), so the coordinator
//! and workers never open a path a submitter chose; [`crate::spec::SweepSpec::parse`]
//! refuses a `dataset.jsonl` path that was not inlined.
//!
//! Reading is bounded: only regular files (a device such as `/dev/zero`, a FIFO or a folder
//! is refused before any byte is read), at most a limit (default
//! [`DEFAULT_MAX_FILE_BYTES`], `--max-file-bytes`), and never more than the limit plus one
//! byte even when the file grows meanwhile. Errors name the file and never show its bytes.
//!
//! Model paths (`gguf:PATH`, a folder) are not inlined: a worker opens the model it loads.

use std::io::Read;
use std::path::Path;

use crate::spec::SpecError;

/// Default limit on one file a spec names: 256 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 256 << 20;

/// Why a file could not be read; names the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum SpecFileError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a regular file (a device, FIFO or folder cannot be read as {what})")]
    NotRegular { path: String, what: &'static str },
    #[error("{path} is larger than the limit of {limit} bytes for {what} (--max-file-bytes)")]
    TooLarge {
        path: String,
        limit: u64,
        what: &'static str,
    },
    #[error("{path} is not UTF-8 text (first invalid byte at offset {offset})")]
    NotText { path: String, offset: usize },
}

/// Reads a regular UTF-8 file of at most `limit` bytes; `what` says what it is for errors.
pub fn read_bounded(path: &Path, limit: u64, what: &'static str) -> Result<String, SpecFileError> {
    let shown = path.display().to_string();
    let io = |source| SpecFileError::Io {
        path: shown.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(SpecFileError::NotRegular { path: shown, what });
    }
    let too_large = || SpecFileError::TooLarge {
        path: shown.clone(),
        limit,
        what,
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|e| SpecFileError::NotText {
        path: shown.clone(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// The spec text with every file it names read (bounded) and inlined: `dataset.jsonl`
/// and each `[[benchmark]]`'s `source = { jsonl = PATH }`. A relative path is taken from
/// `spec_dir`, the spec file's folder (as a spec's own paths are, wherever the command
/// runs). A text that is not valid TOML comes back unchanged: parsing it reports the error
/// with its position.
pub fn inline_files(text: &str, limit: u64, spec_dir: &Path) -> Result<String, SpecError> {
    let Ok(mut doc) = text.parse::<toml_edit::DocumentMut>() else {
        return Ok(text.to_string());
    };
    let mut changed = inline_corpus_files(&mut doc, limit, spec_dir)?;
    if let Some(dataset) = doc.get_mut("dataset").and_then(|d| d.as_table_like_mut()) {
        changed |= inline_jsonl(dataset, "dataset.jsonl", "a dataset file", limit, spec_dir)?;
    }
    if let Some(benchmarks) = doc
        .get_mut("benchmark")
        .and_then(|b| b.as_array_of_tables_mut())
    {
        for (i, b) in benchmarks.iter_mut().enumerate() {
            if let Some(source) = b.get_mut("source").and_then(|s| s.as_table_like_mut()) {
                changed |= inline_jsonl(
                    source,
                    &format!("benchmark[{i}].source.jsonl"),
                    "a benchmark file",
                    limit,
                    spec_dir,
                )?;
            }
        }
    }
    Ok(if changed {
        doc.to_string()
    } else {
        text.to_string()
    })
}

/// Replaces `jsonl = PATH` in `table` by `jsonl_inline = { name, text }`; whether it did.
fn inline_jsonl(
    table: &mut dyn toml_edit::TableLike,
    field: &str,
    what: &'static str,
    limit: u64,
    spec_dir: &Path,
) -> Result<bool, SpecError> {
    let Some(path) = table
        .get("jsonl")
        .and_then(|v| v.as_str())
        .map(str::to_string)
    else {
        return Ok(false);
    };
    let inline = read_inline(&path, "text", field, what, limit, spec_dir)?;
    table.remove("jsonl");
    table.insert(
        "jsonl_inline",
        toml_edit::Item::Value(toml_edit::Value::InlineTable(inline)),
    );
    Ok(true)
}

/// Reads the file `path` names (from `spec_dir`) as `{ name, TEXT_KEY = content }`; an
/// error names the spec's `field`.
fn read_inline(
    path: &str,
    text_key: &str,
    field: &str,
    what: &'static str,
    limit: u64,
    spec_dir: &Path,
) -> Result<toml_edit::InlineTable, SpecError> {
    let resolved = spec_dir.join(path);
    let content = read_bounded(&resolved, limit, what).map_err(|e| SpecError::Field {
        field: field.into(),
        reason: e.to_string(),
    })?;
    let mut inline = toml_edit::InlineTable::new();
    inline.insert("name", resolved.display().to_string().into());
    inline.insert(text_key, content.into());
    Ok(inline)
}

/// Inlines the files a fine-tuning corpus names (`corpus = { text = F, swaps = F }`,
/// `{ panda = F }` in `[[debias.intervention]]`): each path string becomes
/// `{ name, content }` (see `patchsweep_engine::debias::corpus`). Returns whether any was.
fn inline_corpus_files(
    doc: &mut toml_edit::DocumentMut,
    limit: u64,
    spec_dir: &Path,
) -> Result<bool, SpecError> {
    let mut changed = false;
    let Some(debias) = doc
        .get_mut("debias")
        .and_then(|d| d.as_array_of_tables_mut())
    else {
        return Ok(false);
    };
    for (i, section) in debias.iter_mut().enumerate() {
        let Some(ivs) = section
            .get_mut("intervention")
            .and_then(|v| v.as_array_of_tables_mut())
        else {
            continue;
        };
        for (j, iv) in ivs.iter_mut().enumerate() {
            let Some(corpus) = iv.get_mut("corpus").and_then(|c| c.as_table_like_mut()) else {
                continue;
            };
            for key in ["text", "swaps", "panda"] {
                let Some(path) = corpus.get(key).and_then(|v| v.as_str()).map(str::to_string)
                else {
                    continue;
                };
                let field = format!("debias[{i}].intervention[{j}].corpus.{key}");
                let what = "a fine-tuning corpus file";
                let inline = read_inline(&path, "content", &field, what, limit, spec_dir)?;
                corpus.insert(
                    key,
                    toml_edit::Item::Value(toml_edit::Value::InlineTable(inline)),
                );
                changed = true;
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SweepSpec;

    fn spec(dataset: &str) -> String {
        format!(
            "name = \"files\"\nmodel = \"gguf:m.gguf\"\n{dataset}\n\
             [metric]\nkind = \"logit_diff\"\npositive = [\" he\"]\nnegative = [\" she\"]\n\
             [[experiment]]\nname = \"resid\"\nmethod = \"activation\"\n\
             components = [\"resid_pre\"]\n"
        )
    }

    fn jsonl_file(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("spec-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(
            &path,
            "{\"clean\": \"The nurse said\", \"corrupt\": \"The man said\", \"id\": \"n\"}\n",
        )
        .unwrap();
        path
    }

    #[test]
    fn a_dataset_file_travels_inline_and_a_path_alone_is_refused() {
        let path = jsonl_file("pairs.jsonl");
        for dataset in [
            format!("[dataset]\njsonl = {:?}", path.display().to_string()),
            format!("dataset = {{ jsonl = {:?} }}", path.display().to_string()),
        ] {
            let text = spec(&dataset);
            let refused = SweepSpec::parse(&text, "t").unwrap_err().to_string();
            assert!(
                refused.contains("dataset.jsonl") && refused.contains("not sent with the spec"),
                "{refused}"
            );
            let inlined = inline_files(&text, DEFAULT_MAX_FILE_BYTES, Path::new(".")).unwrap();
            assert!(!inlined.contains("jsonl ="), "{inlined}");
            let parsed = SweepSpec::parse(&inlined, "t").expect("the inlined spec");
            let pairs = parsed.pairs.expect("jsonl pairs need no tokenizer");
            assert_eq!(pairs.len(), 1);
            assert_eq!(pairs[0].clean, "The nurse said");
        }
    }

    #[test]
    fn a_relative_dataset_path_is_taken_from_the_spec_folder() {
        let path = jsonl_file("relative.jsonl");
        let dir = path.parent().unwrap();
        let text = spec("[dataset]\njsonl = \"relative.jsonl\"");
        let inlined = inline_files(&text, DEFAULT_MAX_FILE_BYTES, dir).unwrap();
        let parsed = SweepSpec::parse(&inlined, "t").expect("the inlined spec");
        assert_eq!(parsed.pairs.expect("pairs").len(), 1);
        // From the working directory the same name is not found, and the error says where
        // it looked.
        let err = inline_files(&text, DEFAULT_MAX_FILE_BYTES, Path::new("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/relative.jsonl"), "{err}");
    }

    #[test]
    fn corpus_files_travel_inline_and_a_path_alone_is_refused() {
        let dir = jsonl_file("corpus-dir.jsonl")
            .parent()
            .unwrap()
            .to_path_buf();
        std::fs::write(dir.join("corpus.txt"), "He ran.\n").unwrap();
        std::fs::write(dir.join("swaps.txt"), "he\tshe\n").unwrap();
        std::fs::write(
            dir.join("panda.jsonl"),
            "{\"original\": \"He ran.\", \"perturbed\": \"She ran.\", \
             \"selected_word\": \"He\", \"target_attribute\": \"woman\"}\n",
        )
        .unwrap();
        let debias = |corpora: &[&str]| {
            let mut t = String::from(
                "[dataset]\njsonl = \"corpus-dir.jsonl\"\n[[debias]]\nname = \"d\"\n\
                 experiment = \"resid\"\n[debias.select]\ncomponents = [\"mlp_out L0\"]\n",
            );
            for (k, c) in corpora.iter().enumerate() {
                t.push_str(&format!(
                    "[[debias.intervention]]\nkind = \"finetune\"\nname = \"f{k}\"\n{c}\n"
                ));
            }
            spec(&t)
        };
        let text = debias(&[
            "corpus = { text = \"corpus.txt\", swaps = \"swaps.txt\" }",
            "[debias.intervention.corpus]\npanda = \"panda.jsonl\"",
            "corpus = \"hf-dataset:facebook/panda\"",
        ]);
        let refused = SweepSpec::parse(&text, "t").unwrap_err().to_string();
        assert!(refused.contains("not sent with the spec"), "{refused}");
        let inlined = inline_files(&text, DEFAULT_MAX_FILE_BYTES, &dir).unwrap();
        assert!(!inlined.contains("= \"corpus.txt\""), "{inlined}");
        let parsed = SweepSpec::parse(&inlined, "t").expect("the inlined spec");
        let ivs = &parsed.spec.debias[0].interventions;
        let json = serde_json::to_string(ivs).unwrap();
        assert!(
            json.contains("He ran.") && json.contains("he\\tshe") && json.contains("She ran."),
            "{json}"
        );
        assert!(json.contains("hf-dataset:facebook/panda"), "{json}");
        // A missing file names the field and the path looked at.
        let text = debias(&["corpus = { panda = \"absent.jsonl\" }"]);
        let err = inline_files(&text, DEFAULT_MAX_FILE_BYTES, &dir)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("debias[0].intervention[0].corpus.panda") && err.contains("absent.jsonl"),
            "{err}"
        );
        // A malformed swap list is refused when the inlined spec is parsed.
        std::fs::write(dir.join("bad-swaps.txt"), "he\tshe\nking\n").unwrap();
        let text = debias(&["corpus = { text = \"corpus.txt\", swaps = \"bad-swaps.txt\" }"]);
        let inlined = inline_files(&text, DEFAULT_MAX_FILE_BYTES, &dir).unwrap();
        let err = SweepSpec::parse(&inlined, "t").unwrap_err().to_string();
        assert!(err.contains("bad-swaps.txt:2"), "{err}");
    }

    #[test]
    fn reading_is_bounded_and_regular_files_only() {
        let path = jsonl_file("limit.jsonl");
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(read_bounded(&path, len, "x").is_ok());
        let e = read_bounded(&path, len - 1, "a dataset file").unwrap_err();
        assert!(matches!(e, SpecFileError::TooLarge { .. }), "{e}");
        for device in ["/dev/zero", "/dev/null", "/"] {
            let e = read_bounded(Path::new(device), 1 << 30, "a dataset file").unwrap_err();
            assert!(
                matches!(e, SpecFileError::NotRegular { .. }),
                "{device}: {e}"
            );
        }
        let binary = path.with_file_name("binary.jsonl");
        std::fs::write(&binary, b"ok\xffSECRET").unwrap();
        let e = read_bounded(&binary, 1 << 20, "x").unwrap_err().to_string();
        assert!(e.contains("offset 2") && !e.contains("SECRET"), "{e}");
    }
}
