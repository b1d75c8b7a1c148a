//! `patchsweep score`: a model's sentence-preference score on one benchmark (CrowS-Pairs,
//! WinoBias, Professions or a JSONL of pairs), per subset with Wilson 95% intervals, without
//! a sweep or a database.

use std::time::Instant;

use anyhow::Result;
use clap::Args;
use patchsweep_engine::benchmark::{
    load as load_benchmark, score_pairs, summarize, BenchmarkSource, LoglikOptions, Selection,
    SubsetScore,
};
use serde::Serialize;

use crate::model_args::ModelArgs;
use crate::progress::Progress;

#[derive(Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// crows_pairs, winobias, professions, or a .jsonl file of {"stereo","anti","subset"} lines.
    #[arg(long)]
    benchmark: String,
    /// Keep only these subsets (repeat or comma-separate): a CrowS-Pairs bias type, type1/type2
    /// for WinoBias, female/male for Professions.
    #[arg(long, value_delimiter = ',')]
    subset: Vec<String>,
    /// WinoBias only: dev or test (default both).
    #[arg(long)]
    split: Option<String>,
    /// Padded tokens per forward pass (the logits of at most 1,024 positions are held at once).
    #[arg(long, default_value_t = LoglikOptions::default().max_batch_tokens)]
    batch_tokens: usize,
    /// Print JSON: {"model","benchmark","pairs","seconds","scores":[{"subset","n",
    /// "stereo_preferred","score","ci_low","ci_high"}]}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct ScoreOut<'a> {
    model: String,
    benchmark: &'a str,
    pairs: usize,
    seconds: f64,
    scores: Vec<SubsetScore>,
}

pub fn run(args: ScoreArgs) -> Result<()> {
    let source = BenchmarkSource::from_cli(&args.benchmark)?;
    let selection = Selection {
        subsets: (!args.subset.is_empty()).then(|| args.subset.clone()),
        split: args.split.clone(),
    };
    let pairs = load_benchmark(&source, &selection)?;
    let loaded = args.model.load()?;
    let batching = LoglikOptions {
        max_batch_tokens: args.batch_tokens.max(1),
        ..LoglikOptions::default()
    };
    let started = Instant::now();
    let mut bar = Progress::new(
        &format!("scoring {}", args.benchmark),
        2 * pairs.len() as u64,
        "sentences",
    );
    let scores = score_pairs(
        &loaded.model,
        &loaded.tokenizer,
        &pairs,
        args.model.prepend_bos,
        &batching,
        &mut |n| bar.advance(n),
    )?;
    bar.finish();
    let out = ScoreOut {
        model: loaded.spec.to_string(),
        benchmark: &args.benchmark,
        pairs: pairs.len(),
        seconds: started.elapsed().as_secs_f64(),
        scores: summarize(&scores),
    };
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    println!(
        "{} on {}: {} pairs scored in {:.1} s",
        out.benchmark, out.model, out.pairs, out.seconds
    );
    println!("share of pairs whose stereotypical sentence is more likely (0.5 = no preference):");
    println!(
        "  {:<22} {:>6} {:>8} {:>7}  95% interval",
        "subset", "pairs", "stereo", "score"
    );
    for s in &out.scores {
        println!(
            "  {:<22} {:>6} {:>8} {:>7.3}  [{:.3}, {:.3}]",
            s.subset, s.n, s.stereo_preferred, s.score, s.ci_low, s.ci_high
        );
    }
    Ok(())
}
