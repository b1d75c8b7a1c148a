//! Shared fixtures of the debias tests: the tiny random checkpoints and synthetic
//! professions-like pairs on their vocabulary.

#![allow(dead_code)]

use std::path::PathBuf;

use patchsweep_engine::debias::{AnswerSide, DebiasPair};
use patchsweep_engine::experiment::PairInput;
use patchsweep_engine::metric::{Metric, MetricKind, Reduce};
use patchsweep_model::{load, LoadOptions, LoadedModel, ModelSpec};

pub fn tiny(name: &str) -> LoadedModel {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("model/tests/data")
        .join(name);
    load(&ModelSpec::Folder(dir), &LoadOptions::default()).unwrap()
}

pub fn metric() -> Metric {
    Metric {
        kind: MetricKind::LogitDiff,
        reduce: Reduce::Mean,
        positive: vec![5],
        negative: vec![7],
    }
}

/// `n_prof` professions × `n_tmpl` templates; the subject token sits at position 2; even
/// templates give 5 tokens, odd ones 6. Female-stereotyped professions are corrupted to
/// token 50 ("man"), male ones to 51 ("woman"), neutral ones to 50.
pub fn pairs(n_prof: usize, n_tmpl: usize) -> Vec<DebiasPair> {
    let mut out = Vec::new();
    for t in 0..n_tmpl {
        for p in 0..n_prof {
            let stereo = ["female", "male", "neutral"][p % 3];
            let subject = 100 + p as u32;
            let mut clean = vec![10 + t as u32, 20 + t as u32, subject, 200 + t as u32];
            let mut labels: Vec<String> = ["prefix", "prefix", "subject", "verb"]
                .map(String::from)
                .to_vec();
            if t % 2 == 1 {
                clean.push(220 + t as u32);
                labels.push("verb".into());
            }
            clean.push(250 + t as u32);
            labels.push("end".into());
            let mut corrupt = clean.clone();
            corrupt[2] = if stereo == "male" { 51 } else { 50 };
            out.push(DebiasPair {
                input: PairInput {
                    id: format!("t{t}/p{p}"),
                    clean_ids: clean,
                    corrupt_ids: corrupt,
                    position_labels: labels,
                    metric: metric(),
                },
                profession: Some(format!("p{p}")),
                corrupt_profession: None,
                template: Some(format!("t{t}")),
                stereotype: Some(stereo.to_string()),
                stereotyped: match stereo {
                    "male" => Some(AnswerSide::Positive),
                    "female" => Some(AnswerSide::Negative),
                    _ => None,
                },
                anti_stereotypical_swap: stereo != "neutral",
            });
        }
    }
    out
}

/// Like [`pairs`], but every corrupted prompt names another profession, as
/// `opposite_profession` does (one partner per profession, the same in every template):
/// profession `p` is paired with `(p + 1) % n_prof`, so each profession is also the
/// corrupted side of another profession's pairs.
pub fn opposite_profession_pairs(n_prof: usize, n_tmpl: usize) -> Vec<DebiasPair> {
    let mut out = pairs(n_prof, n_tmpl);
    for (i, p) in out.iter_mut().enumerate() {
        let partner = (i % n_prof + 1) % n_prof;
        p.input.corrupt_ids[2] = 100 + partner as u32;
        p.corrupt_profession = Some(format!("p{partner}"));
    }
    out
}
