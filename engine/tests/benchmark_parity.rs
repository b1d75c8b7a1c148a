//! Sentence log-likelihoods equal Hugging Face transformers' (golden from
//! `reference/sentence_loglik.py`) on SmolLM2 and two tiny checkpoints, batched with padding as
//! well as one sentence at a time; and a benchmark scores end to end on a tiny model.

use std::path::PathBuf;

use patchsweep_engine::benchmark::{
    load, pair_log_likelihoods, score_pairs, sentence_log_likelihoods, summarize, BenchmarkSource,
    LoglikOptions, Selection, ALL_SUBSETS,
};
use patchsweep_model::{load as load_model, LoadOptions, LoadedModel, ModelSpec, NoHook};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn golden() -> serde_json::Value {
    let path = root().join("engine/tests/golden/sentence_loglik.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn model(spec: &str) -> LoadedModel {
    let spec = if let Some(path) = spec.strip_prefix("gguf:") {
        let path = root().join(path);
        assert!(
            path.exists(),
            "{} is missing: run scripts/fetch-demo-model.sh",
            path.display()
        );
        ModelSpec::Gguf(path)
    } else {
        ModelSpec::Folder(root().join(spec))
    };
    load_model(&spec, &LoadOptions::default()).unwrap()
}

#[test]
fn log_likelihoods_equal_transformers_batched_and_alone() {
    let golden = golden();
    let models = golden["models"].as_object().unwrap();
    assert_eq!(models.len(), 3);
    for (name, m) in models {
        let loaded = model(m["spec"].as_str().unwrap());
        let sentences = m["sentences"].as_array().unwrap();
        assert_eq!(sentences.len(), 20);
        let mut rows = Vec::new();
        for s in sentences {
            let text = s["text"].as_str().unwrap();
            let ids = loaded.tokenizer.encode(text, None).unwrap();
            let expected: Vec<u32> = s["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(ids, expected, "{name}: token ids of {text:?}");
            rows.push(ids);
        }
        // Several padded batches (lengths differ within each), and one row per forward.
        let batched = LoglikOptions {
            max_batch_tokens: 160,
            max_batch_rows: 8,
            max_unembed_rows: 7,
        };
        let alone = LoglikOptions {
            max_batch_tokens: 1,
            max_batch_rows: 1,
            max_unembed_rows: 1,
        };
        let got = sentence_log_likelihoods(&loaded.model, &rows, &batched).unwrap();
        let got_alone = sentence_log_likelihoods(&loaded.model, &rows, &alone).unwrap();
        let mut worst: f64 = 0.0;
        for ((s, g), a) in sentences.iter().zip(&got).zip(&got_alone) {
            let want = s["loglik"].as_f64().unwrap();
            let err = (g - want).abs();
            worst = worst.max(err);
            assert!(
                err <= 1e-3,
                "{name}: {:?}: {g} vs transformers {want}",
                s["text"]
            );
            assert!((g - a).abs() <= 1e-3, "{name}: batched {g} vs alone {a}");
        }
        println!("{name}: max |log-likelihood error| vs transformers {worst:.2e}");
        // Pairs share their token prefix (at least the BOS; a sentence and its own prefix
        // share all of the shorter one): scored once, the totals are each sentence's own.
        let mut pairs: Vec<[Vec<u32>; 2]> = rows
            .chunks(2)
            .map(|c| [c[0].clone(), c[1].clone()])
            .collect();
        pairs.extend(rows.iter().filter(|r| r.len() > 3).map(|r| {
            let mut other = r.clone();
            *other.last_mut().unwrap() = r[1];
            [r.clone(), other]
        }));
        pairs.push([rows[0].clone(), rows[0][..2].to_vec()]);
        pairs.push([rows[0].clone(), rows[0].clone()]);
        let flat: Vec<Vec<u32>> = pairs.iter().flat_map(|p| p.clone()).collect();
        let alone = sentence_log_likelihoods(&loaded.model, &flat, &batched).unwrap();
        let mut sentences = 0;
        let shared = pair_log_likelihoods(
            &loaded.model,
            &pairs,
            &batched,
            |_, _| Ok(NoHook),
            &mut |n| sentences += n,
        )
        .unwrap();
        // Progress counts every sentence once, those with nothing to score included.
        assert_eq!(sentences, 2 * pairs.len(), "{name}: sentences counted");
        for (p, (s, a)) in pairs.iter().zip(shared.iter().zip(alone.chunks(2))) {
            for k in 0..2 {
                assert!(
                    (s[k] - a[k]).abs() <= 1e-4,
                    "{name}: pair {p:?} sentence {k}: shared {} vs alone {}",
                    s[k],
                    a[k]
                );
            }
        }
    }
}

#[test]
fn a_benchmark_scores_on_a_tiny_model_with_intervals_per_subset() {
    let loaded = model("model/tests/data/tiny-llama2");
    let pairs = load(
        &BenchmarkSource::Winobias,
        &Selection {
            subsets: None,
            split: Some("dev".into()),
        },
    )
    .unwrap();
    let pairs: Vec<_> = pairs.into_iter().step_by(20).collect();
    let scores = score_pairs(
        &loaded.model,
        &loaded.tokenizer,
        &pairs,
        None,
        &LoglikOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(scores.len(), pairs.len());
    for s in &scores {
        assert!(
            s.stereo.is_finite() && s.stereo < 0.0 && s.anti < 0.0,
            "{s:?}"
        );
    }
    let summary = summarize(&scores);
    let subsets: Vec<&str> = summary.iter().map(|s| s.subset.as_str()).collect();
    assert_eq!(subsets, ["type1", "type2", ALL_SUBSETS]);
    let all = summary.last().unwrap();
    assert_eq!(all.n, pairs.len());
    assert_eq!(
        all.stereo_preferred,
        scores.iter().filter(|s| s.stereo > s.anti).count()
    );
    assert!(all.ci_low <= all.score && all.score <= all.ci_high);
}

#[test]
fn a_one_token_sentence_without_bos_is_refused_by_name() {
    let loaded = model("model/tests/data/tiny-qwen2"); // adds no BOS
    let pairs = patchsweep_engine::benchmark::jsonl::parse(
        "{\"stereo\": \"a\", \"anti\": \"The man said that\", \"id\": \"short\"}",
        "p.jsonl",
    )
    .unwrap();
    let msg = score_pairs(
        &loaded.model,
        &loaded.tokenizer,
        &pairs,
        None,
        &LoglikOptions::default(),
        &mut |_| {},
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        msg.starts_with("pair \"short\": sentence \"a\": 1 token(s)"),
        "{msg}"
    );
    // With BOS prepended the same sentence has a token to score.
    let scores = score_pairs(
        &loaded.model,
        &loaded.tokenizer,
        &pairs,
        Some(true),
        &LoglikOptions::default(),
        &mut |_| {},
    );
    assert!(scores.is_ok(), "{scores:?}");
}
