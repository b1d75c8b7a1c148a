//! `patchsweep submit | status | watch | cancel | resume`: a client of a coordinator.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use patchsweep_api::client::SweepApi;
use patchsweep_api::spec::SweepSpec;
use patchsweep_api::spec_files;
use patchsweep_api::SweepProgress;

use crate::cluster::RemoteArgs;
use crate::progress::Progress;
use crate::sweep_view;

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// A client; call inside the runtime (the channel's connection task needs it).
fn client(rt: &tokio::runtime::Runtime, remote: &RemoteArgs) -> Result<SweepApi> {
    let _inside = rt.enter();
    Ok(SweepApi::new(&remote.target()?)?)
}

#[derive(Args)]
pub struct SubmitArgs {
    /// The sweep spec (TOML).
    spec: PathBuf,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Follow the sweep until it ends, like `watch`.
    #[arg(long)]
    watch: bool,
    #[command(flatten)]
    files: SpecFileArgs,
}

/// How the client reads the spec and the files it names.
#[derive(Args)]
pub struct SpecFileArgs {
    /// Largest spec or dataset file read, e.g. 64MiB (only regular files are read).
    #[arg(long, default_value = "256MiB", value_parser = patchsweep_api::byte_size::parse_bytes)]
    pub max_file_bytes: u64,
}

impl SpecFileArgs {
    /// The spec at `path` with the dataset files it names read and inlined: what travels.
    pub fn read_spec(&self, path: &std::path::Path) -> Result<String> {
        let text = spec_files::read_bounded(path, self.max_file_bytes, "a spec")?;
        let dir = path.parent().unwrap_or(std::path::Path::new(""));
        Ok(spec_files::inline_files(&text, self.max_file_bytes, dir)?)
    }
}

pub fn submit(args: SubmitArgs) -> Result<()> {
    let text = args.files.read_spec(&args.spec)?;
    let origin = args.spec.display().to_string();
    // Check here first: a bad spec is refused before it travels.
    SweepSpec::parse(&text, &origin)?;
    let rt = runtime()?;
    let c = client(&rt, &args.remote)?;
    let id = rt.block_on(c.submit(&text, &origin))?;
    println!("{id}");
    if args.watch {
        rt.block_on(follow(&c, id, 1.0))?;
    }
    Ok(())
}

#[derive(Args)]
pub struct StatusArgs {
    /// The sweep id (as `submit` printed it); without it, the 20 most recent sweeps.
    sweep_id: Option<i64>,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct WatchArgs {
    /// The sweep id (as `submit` printed it).
    sweep_id: i64,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Seconds between updates.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
}

/// `cancel` and `resume`: one sweep, by id.
#[derive(Args)]
pub struct OneSweepArgs {
    /// The sweep id (as `submit` printed it; `status` lists them).
    sweep_id: i64,
    #[command(flatten)]
    remote: RemoteArgs,
}

fn json(p: &SweepProgress) -> serde_json::Value {
    serde_json::json!({
        "sweep_id": p.sweep_id, "name": p.name, "model": p.model, "state": p.state,
        "error": p.error, "tasks": {"queued": p.tasks.queued, "leased": p.tasks.leased,
        "done": p.tasks.done, "failed": p.tasks.failed, "cancelled": p.tasks.cancelled},
        "patches_total": p.patches_total, "patches_done": p.patches_done,
        "patches_in_progress": p.patches_in_progress,
        "effects_stored": p.effects_stored, "patches_per_second": p.patches_per_second(),
        "eta_seconds": p.eta_seconds(), "workers": p.workers, "retries": p.retries,
        "stale_results": p.stale_results, "lease_expirations": p.lease_expirations,
        "failures": p.failures.iter().map(|f| serde_json::json!({"task_id": f.task_id,
            "description": f.description, "error": f.error, "attempts": f.attempts})).collect::<Vec<_>>(),
    })
}

pub fn status(args: StatusArgs) -> Result<()> {
    let rt = runtime()?;
    let c = client(&rt, &args.remote)?;
    let sweeps: Vec<SweepProgress> = match args.sweep_id {
        Some(id) => vec![rt.block_on(c.get(id))?],
        None => rt.block_on(c.list(20))?,
    };
    if args.json {
        let v: Vec<_> = sweeps.iter().map(json).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for p in &sweeps {
            print!("{}", sweep_view::block(p));
        }
    }
    Ok(())
}

/// Follows a sweep until it ends: a bar on a terminal, lines otherwise.
async fn follow(c: &SweepApi, id: i64, interval: f64) -> Result<SweepProgress> {
    let mut stream = c.watch(id, interval).await?;
    let mut bar: Option<Progress> = None;
    let mut last = None;
    while let Some(p) = stream.next().await? {
        let b = bar.get_or_insert_with(|| Progress::new(&format!("sweep {id}"), 0, "patches"));
        b.set(p.patches_reached() as u64, p.patches_total as u64);
        tracing::debug!("{}", sweep_view::line(&p));
        last = Some(p);
    }
    if let Some(b) = bar {
        b.finish();
    }
    let p = last.context("the coordinator ended the watch without a status")?;
    eprint!("{}", sweep_view::block(&p));
    Ok(p)
}

pub fn watch(args: WatchArgs) -> Result<()> {
    let id = args.sweep_id;
    let rt = runtime()?;
    let c = client(&rt, &args.remote)?;
    let p = rt.block_on(follow(&c, id, args.interval))?;
    if p.state != "done" {
        bail!("sweep {id} ended {}", p.state);
    }
    Ok(())
}

pub fn cancel(args: OneSweepArgs) -> Result<()> {
    let id = args.sweep_id;
    let rt = runtime()?;
    let c = client(&rt, &args.remote)?;
    let p = rt.block_on(c.cancel(id))?;
    print!("{}", sweep_view::block(&p));
    Ok(())
}

pub fn resume(args: OneSweepArgs) -> Result<()> {
    let id = args.sweep_id;
    let rt = runtime()?;
    let c = client(&rt, &args.remote)?;
    let p = rt.block_on(c.resume(id))?;
    print!("{}", sweep_view::block(&p));
    Ok(())
}
