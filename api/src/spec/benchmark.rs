//! `[[benchmark]]` sections: bias benchmarks scored by sentence preference on the sweep's
//! model (`base`) and after every debias intervention.
//!
//! ```toml
//! [[benchmark]]
//! name = "crows-gender"
//! source = "crows_pairs"          # crows_pairs | winobias | professions | { jsonl = PATH }
//! subsets = ["gender"]            # optional: keep these subsets only
//! split = "test"                  # winobias only: dev | test (default both)
//! pairs_per_task = 256            # pairs per benchmark task (default 256)
//! control_sets = 3                # control sets of each debias section it is scored on
//! ```
//!
//! A `{ jsonl = PATH }` source is read by the submitting client and travels inline as
//! `{ jsonl_inline = { name, text } }` ([`crate::spec_files`]); a path left here is refused.
//! Every pair is read and selected when the spec is parsed (no model needed), so an unknown
//! subset or a malformed line is refused at submit, before anything is stored; the
//! sentences are tokenized and checked against the model's context when the sweep is
//! prepared.

use std::collections::HashSet;

use patchsweep_engine::benchmark::{
    self, jsonl, tokenize_pairs, BenchmarkPair, BenchmarkSource, Selection,
};
use patchsweep_model::LoadedModel;
use serde::Deserialize;

use super::{field, SpecError};

/// One `[[benchmark]]` section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkSpec {
    pub name: String,
    /// `"crows_pairs" | "winobias" | "professions" | { jsonl = PATH }` (inlined as
    /// `{ jsonl_inline = { name, text } }`).
    pub source: toml::Value,
    /// Keep only these subsets (CrowS-Pairs bias types, WinoBias `type1`/`type2`,
    /// Professions `female`/`male`, a JSONL's own); default all.
    pub subsets: Option<Vec<String>>,
    /// WinoBias only: `dev` or `test`; default both.
    pub split: Option<String>,
    /// Pairs per benchmark task.
    #[serde(default = "default_pairs_per_task")]
    pub pairs_per_task: usize,
    /// On how many control sets of each debias section (the first ones) the benchmark is
    /// scored after each intervention; each costs one scoring of every pair.
    #[serde(default = "default_control_sets")]
    pub control_sets: usize,
}

fn default_pairs_per_task() -> usize {
    256
}

fn default_control_sets() -> usize {
    3
}

/// A benchmark section with its pairs read and selected.
#[derive(Debug, Clone)]
pub struct LoadedBenchmark {
    pub name: String,
    /// `crows_pairs`, `winobias`, `professions` or `jsonl`.
    pub source: &'static str,
    pub pairs: Vec<BenchmarkPair>,
    pub pairs_per_task: usize,
    pub control_sets: usize,
}

/// A benchmark's pairs tokenized for the model: `[stereo, anti]` ids per pair.
#[derive(Debug, Clone)]
pub struct TokenizedBenchmark {
    pub name: String,
    pub rows: Vec<[Vec<u32>; 2]>,
}

const BUILTIN: &[&str] = &["crows_pairs", "winobias", "professions"];

/// The source's pairs: a built-in benchmark, or an inlined JSONL's.
fn source_pairs(
    at: &str,
    source: &toml::Value,
) -> Result<(&'static str, &'static [&'static str], Vec<BenchmarkPair>), SpecError> {
    let f = format!("{at}.source");
    let read = |s: BenchmarkSource| s.pairs().map_err(|e| field(&f, e));
    match source {
        toml::Value::String(name) => {
            let s = match name.as_str() {
                "crows_pairs" => BenchmarkSource::CrowsPairs,
                "winobias" => BenchmarkSource::Winobias,
                "professions" => BenchmarkSource::Professions,
                other => {
                    return Err(field(
                        &f,
                        format!(
                            "unknown benchmark {other:?}; built in: {}, or {{ jsonl = PATH }} \
                             for a file of {{\"stereo\", \"anti\", \"subset\"}} lines",
                            BUILTIN.join(", ")
                        ),
                    ))
                }
            };
            Ok((s.name(), s.splits(), read(s.clone())?))
        }
        toml::Value::Table(t) => {
            let keys: Vec<&str> = t.keys().map(String::as_str).collect();
            match keys.as_slice() {
                ["jsonl"] => Err(field(
                    format!("{f}.jsonl"),
                    format!(
                        "names the file {} that was not sent with the spec: `patchsweep \
                         submit` and `run` read benchmark files and send their content; a \
                         coordinator or worker never opens a path from a spec",
                        t["jsonl"]
                    ),
                )),
                ["jsonl_inline"] => {
                    let file = t["jsonl_inline"].as_table();
                    let get = |k: &str| file.and_then(|t| t.get(k)).and_then(|v| v.as_str());
                    let (Some(name), Some(text)) = (get("name"), get("text")) else {
                        return Err(field(
                            format!("{f}.jsonl_inline"),
                            "expected { name = \"FILE\", text = \"CONTENT\" }",
                        ));
                    };
                    let pairs = jsonl::parse(text, name).map_err(|e| field(&f, e))?;
                    Ok(("jsonl", &[], pairs))
                }
                _ => Err(field(
                    &f,
                    format!(
                        "expected one of {} or {{ jsonl = PATH }}, not a table with keys {keys:?}",
                        BUILTIN.join(", ")
                    ),
                )),
            }
        }
        other => Err(field(
            &f,
            format!(
                "expected one of {} or {{ jsonl = PATH }}, not {other}",
                BUILTIN.join(", ")
            ),
        )),
    }
}

impl BenchmarkSpec {
    /// Reads and selects the pairs (no model needed); errors name `benchmark[i].FIELD`.
    pub fn load(&self, i: usize) -> Result<LoadedBenchmark, SpecError> {
        let at = format!("benchmark[{i}]");
        if self.name.trim().is_empty() {
            return Err(field(format!("{at}.name"), "must not be empty"));
        }
        if self.pairs_per_task == 0 {
            return Err(field(format!("{at}.pairs_per_task"), "must be at least 1"));
        }
        let (source, splits, all) = source_pairs(&at, &self.source)?;
        let selection = Selection {
            subsets: self.subsets.clone(),
            split: self.split.clone(),
        };
        let pairs = benchmark::select(source, splits, all, &selection).map_err(|e| {
            let f = match &e {
                benchmark::BenchmarkError::UnknownSubset { .. } => "subsets".to_string(),
                benchmark::BenchmarkError::BadOption { field, .. } => field.clone(),
                _ => "source".to_string(),
            };
            field(format!("{at}.{f}"), e)
        })?;
        Ok(LoadedBenchmark {
            name: self.name.clone(),
            source,
            pairs,
            pairs_per_task: self.pairs_per_task,
            control_sets: self.control_sets,
        })
    }
}

/// Every section loaded; names must be distinct.
pub fn load_all(specs: &[BenchmarkSpec]) -> Result<Vec<LoadedBenchmark>, SpecError> {
    let mut names = HashSet::new();
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if !names.insert(s.name.clone()) {
                return Err(field(
                    format!("benchmark[{i}].name"),
                    format!("{:?} is used twice", s.name),
                ));
            }
            s.load(i)
        })
        .collect()
}

/// Tokenizes every benchmark's pairs for the model and checks they fit its context.
pub fn tokenize_all(
    benchmarks: &[LoadedBenchmark],
    model: &LoadedModel,
    prepend_bos: Option<bool>,
) -> Result<Vec<TokenizedBenchmark>, SpecError> {
    benchmarks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let at = format!("benchmark[{i}] ({})", b.name);
            let rows = tokenize_pairs(&model.tokenizer, &b.pairs, prepend_bos)
                .map_err(|e| field(&at, e))?;
            if let Some(most) = model.model.cfg.max_positions {
                for (p, [s, a]) in b.pairs.iter().zip(&rows) {
                    let len = s.len().max(a.len());
                    if len > most {
                        return Err(field(
                            &at,
                            format!(
                                "pair {:?} has a sentence of {len} tokens but the model takes at \
                                 most {most} (max_position_embeddings)",
                                p.id
                            ),
                        ));
                    }
                }
            }
            Ok(TokenizedBenchmark {
                name: b.name.clone(),
                rows,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::plan::plan_benchmarks;
    use crate::spec::SweepSpec;
    use crate::spec_files::{inline_files, DEFAULT_MAX_FILE_BYTES};
    use crate::task::TaskKind;

    fn spec(benchmarks: &str) -> String {
        format!(
            "name = \"b\"\nmodel = \"gguf:m.gguf\"\n\
             [dataset]\npairs = [{{ clean = \"The nurse said\", corrupt = \"The man said\" }}]\n\
             [metric]\nkind = \"logit_diff\"\npositive = [\" he\"]\nnegative = [\" she\"]\n\
             [[experiment]]\nname = \"resid\"\nmethod = \"activation\"\n\
             components = [\"resid_pre\"]\n{benchmarks}"
        )
    }

    fn refused(benchmarks: &str) -> String {
        SweepSpec::parse(&spec(benchmarks), "t")
            .unwrap_err()
            .to_string()
    }

    fn dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("spec-bench-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn sections_read_their_pairs_and_are_cut_into_tasks() {
        let parsed = SweepSpec::parse(
            &spec(
                "[[benchmark]]\nname = \"crows\"\nsource = \"crows_pairs\"\n\
                 subsets = [\"gender\"]\npairs_per_task = 100\n\
                 [[benchmark]]\nname = \"wino\"\nsource = \"winobias\"\nsplit = \"test\"\n\
                 subsets = [\"type1\"]\n",
            ),
            "t",
        )
        .unwrap();
        let [crows, wino] = &parsed.benchmarks[..] else {
            panic!("two benchmarks: {:?}", parsed.benchmarks.len());
        };
        assert_eq!((crows.source, crows.pairs.len()), ("crows_pairs", 262));
        assert!(crows.pairs.iter().all(|p| p.subset == "gender"));
        assert!(wino
            .pairs
            .iter()
            .all(|p| p.subset == "type1" && p.labels["split"] == "test"));
        let tasks = plan_benchmarks(&parsed);
        let crows_tasks = 262_usize.div_ceil(100);
        let wino_tasks = wino.pairs.len().div_ceil(256);
        assert_eq!(tasks.len(), crows_tasks + wino_tasks);
        assert!(tasks
            .iter()
            .all(|t| t.kind() == TaskKind::Benchmark && t.stage == 0));
        assert_eq!(
            tasks.iter().map(|t| t.cost).sum::<i64>() as usize,
            262 + wino.pairs.len()
        );
        let crate::args::TaskArgs::Benchmark(last) = &tasks[crows_tasks - 1].args else {
            panic!("a benchmark task");
        };
        assert_eq!((last.first, last.pairs.len()), (200, 62));
        assert_eq!(last.pairs[0], crows.pairs[200].id);
    }

    #[test]
    fn bad_sections_are_refused_naming_the_field() {
        for (section, says) in [
            (
                "source = \"crows_pairs\"\nsubsets = [\"gender\", \"astrology\"]",
                "`benchmark[0].subsets`: benchmark crows_pairs: unknown subset \"astrology\"; known: age,",
            ),
            ("source = \"crowspairs\"", "`benchmark[0].source`: unknown benchmark \"crowspairs\""),
            ("source = \"crows_pairs\"\nsplit = \"dev\"", "`benchmark[0].split`: benchmark crows_pairs: option split: crows_pairs has no splits"),
            ("source = \"winobias\"\nsplit = \"train\"", "`benchmark[0].split`"),
            ("source = \"crows_pairs\"\nsubsets = []", "`benchmark[0].subsets`"),
            ("source = 3", "`benchmark[0].source`: expected one of crows_pairs"),
            ("source = { csv = \"x.csv\" }", "`benchmark[0].source`"),
            ("source = { jsonl = \"x.jsonl\" }", "`benchmark[0].source.jsonl`: names the file"),
            ("source = \"professions\"\npairs_per_task = 0", "`benchmark[0].pairs_per_task`"),
            ("source = \"professions\"\nsamples = 3", "unknown field `samples`"),
        ] {
            let err = refused(&format!("[[benchmark]]\nname = \"x\"\n{section}\n"));
            assert!(err.contains(says), "{section}: {err}");
        }
        let twice = "[[benchmark]]\nname = \"x\"\nsource = \"professions\"\n";
        let err = refused(&format!("{twice}{twice}"));
        assert!(
            err.contains("`benchmark[1].name`: \"x\" is used twice"),
            "{err}"
        );
    }

    #[test]
    fn a_jsonl_file_travels_inline_and_its_errors_name_the_file_and_line() {
        let dir = dir();
        std::fs::write(
            dir.join("pairs.jsonl"),
            "{\"stereo\": \"He is strong\", \"anti\": \"She is strong\", \"subset\": \"g\"}\n\
             {\"stereo\": \"She cooks\", \"anti\": \"He cooks\"}\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("bad.jsonl"),
            "{\"stereo\": \"He is strong\", \"anti\": \"She is strong\"}\n\n{\"stereo\": 3}\n",
        )
        .unwrap();
        let section = |file: &str, extra: &str| {
            spec(&format!(
                "[[benchmark]]\nname = \"mine\"\nsource = {{ jsonl = \"{file}\" }}\n{extra}"
            ))
        };
        let text = inline_files(&section("pairs.jsonl", ""), DEFAULT_MAX_FILE_BYTES, &dir).unwrap();
        assert!(text.contains("jsonl_inline"), "{text}");
        let parsed = SweepSpec::parse(&text, "t").unwrap();
        let subsets: Vec<&str> = parsed.benchmarks[0]
            .pairs
            .iter()
            .map(|p| p.subset.as_str())
            .collect();
        assert_eq!(subsets, ["g", "default"]);

        let text = inline_files(&section("bad.jsonl", ""), DEFAULT_MAX_FILE_BYTES, &dir).unwrap();
        let err = SweepSpec::parse(&text, "t").unwrap_err().to_string();
        assert!(
            err.contains("`benchmark[0].source`") && err.contains("bad.jsonl:3:"),
            "{err}"
        );
        let text = inline_files(
            &section("pairs.jsonl", "subsets = [\"h\"]"),
            DEFAULT_MAX_FILE_BYTES,
            &dir,
        )
        .unwrap();
        let err = SweepSpec::parse(&text, "t").unwrap_err().to_string();
        assert!(
            err.contains("unknown subset \"h\"; known: default, g"),
            "{err}"
        );
        let err = inline_files(&section("missing.jsonl", ""), DEFAULT_MAX_FILE_BYTES, &dir)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`benchmark[0].source.jsonl`") && err.contains("missing.jsonl"),
            "{err}"
        );
        let err = inline_files(
            &section("/dev/zero", ""),
            DEFAULT_MAX_FILE_BYTES,
            Path::new("/"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
