//! The `patchsweep` command line.
//!
//! # Layout
//! - `main.rs`: argument parsing, logging setup, dispatch.
//! - `logits.rs`: `patchsweep logits`, for checking a model by hand; `generate.rs`:
//!   `patchsweep generate`, a prompt's greedy continuation.
//! - `score.rs`: `patchsweep score`, a benchmark's sentence-preference score without a sweep.
//! - `run.rs`: `patchsweep run`, a whole sweep in one process (embedded coordinator and
//!   worker); `local_link.rs` the worker's link to the coordinator there (a direct call);
//!   `progress.rs` its progress bar.
//! - `cluster.rs`: `patchsweep coordinator` and `patchsweep worker`.
//! - `remote.rs`: `patchsweep submit | status | watch | cancel | resume`, clients of a
//!   coordinator; `sweep_view.rs` how progress reads.
//! - `query.rs`: `patchsweep query`, read-only SQL over the results.
//! - `metrics.rs`: Prometheus metrics over HTTP for the coordinator and workers.
//! - `plot/`: `patchsweep plot`, heatmaps, scatters and debias bars as SVG and PNG.
//! - `report.rs`: `patchsweep report`, one self-contained HTML page of pictures and tables.
//! - `export.rs`: `patchsweep export`, a view as typed Parquet, CSV or JSON lines.
//! - `lens_line.rs`: the line `run` prints for a logit-lens experiment.

mod baseline_groups;
mod benchmark_table;
mod cluster;
mod export;
mod feature_map;
mod generate;
mod lens_line;
mod local_link;
mod logits;
mod metrics;
mod model_args;
mod plot;
mod progress;
mod query;
mod remote;
mod report;
mod reversal_table;
mod run;
mod score;
mod sweep_view;

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
    /// Continue a prompt greedily (the decode a sweep's generation check uses).
    Generate(generate::GenerateArgs),
    /// Score a model on a bias benchmark (CrowS-Pairs, WinoBias, Professions, JSONL): the share
    /// of pairs whose stereotypical sentence is more likely, per subset, with 95% intervals.
    Score(score::ScoreArgs),
    /// Run a sweep spec on this machine and store its effects.
    Run(run::RunArgs),
    /// Answer read-only SQL over the results (views effects_v, pairs_v, tasks_v, ...).
    Query(query::QueryArgs),
    /// Draw heatmaps, attribution-vs-activation scatters and debias bars (SVG and PNG).
    Plot(plot::PlotArgs),
    /// Write one self-contained HTML page with every picture and summary table.
    Report(report::ReportArgs),
    /// Write a view (effects_v, pairs_v, ...) as typed Parquet, CSV or JSON lines.
    Export(export::ExportArgs),
    /// Serve sweeps to workers over gRPC, keeping all state in the database.
    Coordinator(cluster::CoordinatorArgs),
    /// Hold a model and compute tasks leased from a coordinator.
    Worker(cluster::WorkerArgs),
    /// Submit a sweep spec to a coordinator; prints the sweep id.
    Submit(remote::SubmitArgs),
    /// Show a sweep (or the recent sweeps): progress, workers, failures.
    Status(remote::StatusArgs),
    /// Follow a sweep's progress until it ends.
    Watch(remote::WatchArgs),
    /// Cancel a sweep: its tasks stop being handed out.
    Cancel(remote::OneSweepArgs),
    /// Queue a sweep's failed and cancelled tasks again.
    Resume(remote::OneSweepArgs),
}

fn main() -> std::process::ExitCode {
    patchsweep_model::cpu_pool::defaults_unless_set();
    let cli = Cli::parse();
    // Services log each task and its steps (downloads, fine-tuning, benchmark scoring) by
    // default; `run` its long steps; other one-shot commands what went wrong and, off a
    // terminal, a model download's progress lines.
    let default_filter = match cli.command {
        Command::Coordinator(_) | Command::Worker(_) => {
            "warn,patchsweep=info,patchsweep_worker=info,patchsweep_coordinator=info,\
             patchsweep_engine=info,patchsweep_model=info"
        }
        Command::Run(_) => "warn,patchsweep_engine=info,patchsweep_model=info",
        _ => "warn,patchsweep_model=info",
    };
    let filter =
        EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if cli.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    let result = match cli.command {
        Command::Logits(args) => logits::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Score(args) => score::run(args),
        Command::Run(args) => run::run(args),
        Command::Query(args) => query::run(args),
        Command::Plot(args) => plot::run(args),
        Command::Report(args) => report::run(args),
        Command::Export(args) => export::run(args),
        Command::Coordinator(args) => cluster::coordinator(args),
        Command::Worker(args) => cluster::worker(args),
        Command::Submit(args) => remote::submit(args),
        Command::Status(args) => remote::status(args),
        Command::Watch(args) => remote::watch(args),
        Command::Cancel(args) => remote::cancel(args),
        Command::Resume(args) => remote::resume(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
