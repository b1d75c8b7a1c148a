//! The `patchsweep` command line.
//!
//! # Layout
//! - `main.rs`: argument parsing, logging setup, dispatch.
//! - `logits.rs`: `patchsweep logits`, for checking a model by hand.
//! - `run.rs`: `patchsweep run`, a whole sweep on this machine; `progress.rs` its progress.
//! - `query.rs`: `patchsweep query`, read-only SQL over the results.

mod logits;
mod progress;
mod query;
mod run;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "patchsweep",
    version,
    about = "Locate and remove social bias inside language models"
)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, env = "PATCHSWEEP_LOG_JSON", global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a prompt's tokens and the top next-token logits.
    Logits(logits::LogitsArgs),
    /// Run a sweep spec on this machine and store its effects.
    Run(run::RunArgs),
    /// Answer read-only SQL over the results (views effects_v, pairs_v).
    Query(query::QueryArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    let result = match cli.command {
        Command::Logits(args) => logits::run(args),
        Command::Run(args) => run::run(args),
        Command::Query(args) => query::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
