//! `patchsweep run SPEC`: the embedded mode — the same coordinator core and the same
//! worker loop as a cluster, wired in one process (no sockets), on SQLite by default.
//!
//! Order matters for "bad input never costs stored work": the spec is parsed and checked,
//! the model is loaded and the spec checked against it, and the database is reached — all
//! before the sweep is stored.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use patchsweep_api::spec::{ParsedSpec, Prepared, SweepSpec};
use patchsweep_api::SweepProgress;
use patchsweep_coordinator::service::Coordinator;
use patchsweep_coordinator::store::{
    values, QueryResult, QueuePolicy, Rounding, Store, EXAMPLE_QUERY,
};
use patchsweep_worker::executor::ComputeThread;
use patchsweep_worker::faults::Faults;
use patchsweep_worker::model_executor::ModelExecutor;
use patchsweep_worker::worker_loop::{run_worker, Controls, WorkerOptions};
use serde_json::Value;
use tokio::sync::watch;

use crate::local_link::LocalLink;
use crate::progress::Progress;
use crate::sweep_view;

#[derive(Args)]
pub struct RunArgs {
    /// The sweep spec (TOML).
    spec: PathBuf,
    /// Database URL: sqlite://FILE (created if absent) or postgres://...
    #[arg(long, env = "PATCHSWEEP_DB", default_value = "sqlite://patchsweep.db")]
    db: String,
    /// How many top components to print per experiment.
    #[arg(long, default_value_t = 10)]
    top: usize,
}

/// The embedded queue policy: one local worker, so leases only matter if the process
/// dies; failures retry quickly.
fn embedded_policy() -> QueuePolicy {
    QueuePolicy {
        lease_seconds: 120.0,
        backoff_base_seconds: 0.5,
        backoff_max_seconds: 10.0,
        max_attempts: 3,
    }
}

pub fn run(args: RunArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.spec)
        .with_context(|| format!("reading spec {}", args.spec.display()))?;
    let origin = args.spec.display().to_string();
    let parsed = SweepSpec::parse(&text, &origin)?;
    let spec = &parsed.spec;
    let mut executor = ModelExecutor::new(None, Faults::default());
    let loaded = crate::progress::spin(
        &format!("loading model {} on {}", spec.model, spec.device),
        || executor.model_for(spec),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let prepared = parsed.prepare(&loaded)?;
    report_dataset(&prepared);
    // The debias splits must be possible on the pairs kept: check before storing anything.
    patchsweep_api::plan::plan_debias(&parsed, &prepared)?;
    drop(loaded);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let final_state = rt.block_on(async {
        let store = Store::connect(&args.db).await?;
        let coordinator = Coordinator::new(store.clone(), embedded_policy());
        let sweep_id = coordinator.submit(&text, &origin).await?;
        let compute = ComputeThread::spawn(Box::new(executor));
        let (drain_tx, drain) = watch::channel(false);
        let (_abort_tx, abort) = watch::channel(false);
        let link = Arc::new(LocalLink {
            coordinator: coordinator.clone(),
        });
        let worker = tokio::spawn(run_worker(
            link,
            compute,
            WorkerOptions::new(
                format!("embedded-{}", std::process::id()),
                spec.device.clone(),
            ),
            Controls { drain, abort },
        ));
        let progress = follow(&coordinator, sweep_id).await;
        let _ = drain_tx.send(true);
        worker.await.context("the local worker")??;
        let progress = progress?;
        eprint!("{}", sweep_view::block(&progress));
        if progress.state != "failed" {
            print_summary(&store, sweep_id, &parsed, args.top).await?;
        }
        anyhow::Ok(progress)
    })?;
    println!(
        "\nresults: sweep id {} in {}; try: patchsweep query --db {} \"{EXAMPLE_QUERY}\"",
        final_state.sweep_id, args.db, args.db
    );
    match final_state.state.as_str() {
        "done" => Ok(()),
        other => anyhow::bail!("sweep {} ended {other}", final_state.sweep_id),
    }
}

/// Shows progress until the sweep ends.
async fn follow(coordinator: &Coordinator, sweep_id: i64) -> Result<SweepProgress> {
    let mut bar = Progress::new("sweep", 0, "patches");
    loop {
        let p = coordinator.progress(sweep_id).await?;
        bar.set(p.patches_done as u64, p.patches_total as u64);
        if p.is_final() {
            let secs = bar.finish();
            eprintln!(
                "{} patches in {secs:.1}s ({:.0} patches/s)",
                p.patches_done,
                p.patches_done as f64 / secs.max(1e-9)
            );
            return Ok(p);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn report_dataset(p: &Prepared) {
    let dropped: Vec<String> = p
        .dropped
        .counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    eprintln!(
        "dataset: {} pairs kept{}",
        p.pairs.len(),
        if dropped.is_empty() {
            String::new()
        } else {
            format!(", dropped: {}", dropped.join(", "))
        }
    );
}

async fn print_summary(
    store: &Store,
    sweep_id: i64,
    parsed: &ParsedSpec,
    top: usize,
) -> Result<()> {
    let spec = &parsed.spec;
    let base = store.baselines(sweep_id, Rounding::FourDecimals).await?;
    println!(
        "\nsweep {:?}: metric {:?} {:?} vs {:?}; baselines:",
        spec.name, spec.metric.kind, spec.metric.positive, spec.metric.negative
    );
    let baselines = QueryResult::from_rows(
        &["pairs", "mean_clean", "mean_corrupted", "mean_difference"],
        &[base],
        |b| {
            vec![
                Value::from(b.pairs),
                values::opt_float(b.mean_clean),
                values::opt_float(b.mean_corrupt),
                values::opt_float(b.mean_difference),
            ]
        },
    );
    print!("{}", baselines.to_table());
    for exp in &parsed.experiments {
        let rows = store
            .top_components_by_label(
                sweep_id,
                &exp.name,
                i64::try_from(top).unwrap_or(i64::MAX),
                Rounding::FourDecimals,
            )
            .await?;
        let result = QueryResult::from_rows(
            &[
                "component",
                "layer",
                "head",
                "position_label",
                "neuron",
                "pairs",
                "mean_normalized",
                "mean_effect",
            ],
            &rows,
            |c| {
                vec![
                    Value::from(c.component.as_str()),
                    Value::from(c.layer),
                    Value::from(c.head),
                    Value::from(c.position.clone()),
                    Value::from(c.neuron),
                    Value::from(c.pairs),
                    values::float(c.mean_normalized),
                    values::float(c.mean_effect),
                ]
            },
        );
        println!(
            "\ntop components of {} ({} {}), by |mean normalized effect| over pairs:",
            exp.name,
            exp.method.name(),
            exp.direction.name()
        );
        print!("{}", result.to_table());
    }
    if !spec.debias.is_empty() {
        let rows = store
            .debias_deltas(sweep_id, Rounding::FourDecimals)
            .await?;
        let deltas = QueryResult::from_rows(
            &[
                "debias",
                "intervention",
                "split",
                "metric",
                "before",
                "after",
                "delta",
                "control_after",
            ],
            &rows,
            |d| {
                vec![
                    Value::from(d.debias.as_str()),
                    Value::from(d.intervention.as_str()),
                    Value::from(d.split.as_str()),
                    Value::from(d.metric.as_str()),
                    values::float(d.before),
                    values::float(d.after),
                    values::float(d.delta),
                    values::opt_float(d.control_after),
                ]
            },
        );
        println!("\ndebiasing, before and after each intervention (control: the same on random components):");
        print!("{}", deltas.to_table());
        let rows = store.debias_components(sweep_id).await?;
        let components = QueryResult::from_rows(
            &["debias", "intervention", "components", "control_components"],
            &rows,
            |d| {
                vec![
                    Value::from(d.debias.as_str()),
                    Value::from(d.intervention.as_str()),
                    Value::from(d.components.as_str()),
                    Value::from(d.control_components.clone()),
                ]
            },
        );
        print!("{}", components.to_table());
    }
    Ok(())
}
