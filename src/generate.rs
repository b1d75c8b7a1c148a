//! `patchsweep generate`: a prompt's greedy continuation (the engine's KV-cached decode, the
//! one a sweep's generation check uses), for checking a model by hand.

use anyhow::Result;
use clap::Args;
use patchsweep_engine::generate::greedy;
use patchsweep_model::NoHook;
use serde::Serialize;

use crate::model_args::ModelArgs;

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt to continue.
    #[arg(long)]
    prompt: String,
    /// How many tokens to generate (greedy; an end-of-text token does not stop it).
    #[arg(long, default_value_t = 16)]
    tokens: usize,
    /// Print JSON: {"prompt_ids":[..],"tokens":[{"id","text"}],"text"}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct TokenOut {
    id: u32,
    text: String,
}

#[derive(Serialize)]
struct GenerateOut {
    prompt_ids: Vec<u32>,
    tokens: Vec<TokenOut>,
    text: String,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let loaded = args.model.load()?;
    let tok = &loaded.tokenizer;
    let ids = tok.encode(&args.prompt, args.model.prepend_bos)?;
    let generated = greedy(
        &loaded.model,
        std::slice::from_ref(&ids),
        args.tokens,
        &mut NoHook,
    )?
    .remove(0);
    let out = GenerateOut {
        text: tok.decode(&generated)?,
        tokens: generated
            .iter()
            .map(|&id| TokenOut {
                id,
                text: tok.token_text(id),
            })
            .collect(),
        prompt_ids: ids,
    };
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    println!(
        "model {}: {} prompt tokens, {} generated (greedy)",
        loaded.spec,
        out.prompt_ids.len(),
        out.tokens.len()
    );
    println!("{}{}", args.prompt, out.text);
    Ok(())
}
