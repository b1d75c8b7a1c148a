//! `patchsweep logits`: a prompt's token ids and the top-k next-token logits.

use anyhow::Result;
use clap::Args;

use crate::model_args::ModelArgs;
use serde::Serialize;

#[derive(Args)]
pub struct LogitsArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt to run.
    #[arg(long)]
    prompt: String,
    /// How many of the largest logits to print.
    #[arg(long, default_value_t = 10)]
    top_k: usize,
    /// Print JSON: {"tokens":[{"id","text"}],"top":[{"id","text","logit"}]}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct TokenOut {
    id: u32,
    text: String,
}

#[derive(Serialize)]
struct TopOut {
    id: u32,
    text: String,
    logit: f32,
}

#[derive(Serialize)]
struct LogitsOut {
    tokens: Vec<TokenOut>,
    top: Vec<TopOut>,
}

pub fn run(args: LogitsArgs) -> Result<()> {
    let loaded = args.model.load()?;
    let ids = loaded
        .tokenizer
        .encode(&args.prompt, args.model.prepend_bos)?;
    let logits: Vec<f32> = loaded
        .model
        .last_logits(std::slice::from_ref(&ids), None)?
        .flatten_all()?
        .to_vec1()?;
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let tok = &loaded.tokenizer;
    let result = LogitsOut {
        tokens: ids
            .iter()
            .map(|&id| TokenOut {
                id,
                text: tok.token_text(id),
            })
            .collect(),
        top: order
            .iter()
            .take(args.top_k)
            .map(|&i| TopOut {
                id: i as u32,
                text: tok.token_text(i as u32),
                logit: logits[i],
            })
            .collect(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
        return Ok(());
    }
    println!("model {}: {} tokens", loaded.spec, result.tokens.len());
    for (i, t) in result.tokens.iter().enumerate() {
        println!("  {i:>3} {:>7} {:?}", t.id, t.text);
    }
    println!("top {} next-token logits:", result.top.len());
    for t in &result.top {
        println!("  {:>7} {:>10.4} {:?}", t.id, t.logit, t.text);
    }
    Ok(())
}
