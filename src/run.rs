//! `patchsweep run SPEC`: the embedded mode — the same coordinator core and the same
//! worker loop as a cluster, wired in one process (no sockets), on SQLite by default.
//!
//! Order matters for "bad input never costs stored work": the spec is parsed and checked,
//! the model is loaded and the spec checked against it, and the database is reached — all
//! before the sweep is stored.
//!
//! A run works on its own sweep only (its worker leases nothing else of the database). Run
//! again with the same spec text on the same database, it continues that sweep if it has
//! not ended (`--new` starts over); `--resume ID` continues any sweep; Ctrl-C hands the
//! current lease back and prints how to continue.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use patchsweep_api::spec::{ParsedSpec, Prepared, SweepSpec};
use patchsweep_api::{spec_digest, DroppedPair, SweepProgress};
use patchsweep_coordinator::service::Coordinator;
use patchsweep_coordinator::store::{
    values, Baselines, QueryResult, QueuePolicy, Rounding, SelectedSite, Store, WeakPairs,
    EXAMPLE_QUERY,
};
use patchsweep_engine::experiment::Method;
use patchsweep_worker::executor::ComputeThread;
use patchsweep_worker::faults::Faults;
use patchsweep_worker::model_executor::ModelExecutor;
use patchsweep_worker::worker_loop::{
    run_worker, Controls, WorkerError, WorkerOptions, WorkerStats,
};
use serde_json::Value;
use tokio::sync::watch;

use crate::local_link::LocalLink;
use crate::plot::number::interval_sig3;
use crate::progress::Progress;
use crate::sweep_view;

#[derive(Args)]
pub struct RunArgs {
    /// The sweep spec (TOML); optional with --resume, which takes the sweep's stored spec.
    #[arg(required_unless_present = "resume")]
    spec: Option<PathBuf>,
    /// Database URL: sqlite://FILE (created if absent) or postgres://...
    #[arg(long, env = "PATCHSWEEP_DB", default_value = "sqlite://patchsweep.db")]
    db: String,
    /// How many top components to print per experiment.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Start a new sweep even when the database holds an unfinished sweep of this same
    /// spec (by default that sweep is continued).
    #[arg(long, conflicts_with = "resume")]
    new: bool,
    /// Continue this unfinished (or failed, partial, cancelled) sweep of the database.
    #[arg(long, value_name = "SWEEP_ID")]
    resume: Option<i64>,
    #[command(flatten)]
    files: crate::remote::SpecFileArgs,
    /// The most memory one task may need, e.g. 8GiB (as `patchsweep worker`). Default: the
    /// memory available on the spec's device at start.
    #[arg(long, value_parser = patchsweep_worker::memory_budget::parse_bytes)]
    max_task_memory: Option<u64>,
    /// Test-only fault: sleep this long before each patch task (to interrupt a run mid-sweep).
    #[arg(long, hide = true, default_value_t = 0)]
    fault_task_delay_ms: u64,
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

/// How the embedded run's wait ended.
enum Ending {
    /// The sweep reached a final state.
    Settled(Box<Result<SweepProgress>>),
    /// The local worker stopped while the sweep still had work.
    WorkerStopped(Result<Result<WorkerStats, WorkerError>, tokio::task::JoinError>),
    /// Ctrl-C.
    Interrupted,
}

pub fn run(args: RunArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // With --resume the spec is the sweep's own; the database is reached first only then
    // (otherwise a bad spec is refused before anything, a database file included, exists).
    let (text, origin, early_store) = match (&args.spec, args.resume) {
        (Some(path), _) => (
            args.files.read_spec(path)?,
            path.display().to_string(),
            None,
        ),
        (None, Some(id)) => {
            let store = rt.block_on(Store::connect(&args.db))?;
            let text = rt
                .block_on(store.sweep_spec(id))?
                .with_context(|| format!("no sweep {id} in {}", args.db))?;
            (text, format!("sweep {id} of {}", args.db), Some(store))
        }
        (None, None) => anyhow::bail!("a spec file or --resume SWEEP_ID is needed"),
    };
    let parsed = SweepSpec::parse(&text, &origin)?;
    let spec = &parsed.spec;
    let faults = Faults {
        task_delay: Duration::from_millis(args.fault_task_delay_ms),
        ..Faults::default()
    };
    let max_task_memory =
        patchsweep_worker::memory_budget::resolve(args.max_task_memory, &spec.device);
    let mut executor = ModelExecutor::new(None, faults).with_max_task_memory(max_task_memory);
    let loaded = crate::progress::spin(
        &format!("loading model {} on {}", spec.model, spec.device),
        || executor.model_for(spec),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let prepared = parsed.prepare(&loaded)?;
    report_dataset(&prepared);
    // The debias splits must be possible on the pairs kept: check before storing anything.
    for (name, split) in patchsweep_api::plan::debias_splits(&parsed, &prepared)? {
        eprintln!("debias {name} split: {}", split.summary());
    }
    patchsweep_api::plan::plan_debias(&parsed, &prepared)?;
    drop(loaded);
    let final_state = rt.block_on(async {
        let store = match early_store {
            Some(store) => store,
            None => Store::connect(&args.db).await?,
        };
        let coordinator = Coordinator::new(store.clone(), embedded_policy());
        let sweep_id = sweep_to_run(&coordinator, &args, &parsed, &text).await?;
        let others = store.other_unfinished_sweeps(sweep_id).await?;
        if !others.is_empty() {
            let ids: Vec<String> = others.iter().map(|s| s.id.to_string()).collect();
            eprintln!(
                "note: {} holds {} other unfinished sweep(s) (id {}); this run leaves them alone \
                 (continue one with: patchsweep run --db {} --resume ID)",
                args.db,
                others.len(),
                ids.join(", "),
                args.db
            );
        }
        // Parsed and prepared once: the local worker holds the sweep, so its tasks come
        // without the spec text (the stored text is this text, so the digests agree).
        executor.adopt(sweep_id, spec_digest(&text), parsed.clone(), prepared);
        let compute = ComputeThread::spawn(Box::new(executor));
        let (drain_tx, drain) = watch::channel(false);
        let (abort_tx, abort) = watch::channel(false);
        let link = Arc::new(LocalLink {
            coordinator: coordinator.clone(),
            only_sweep: Some(sweep_id),
        });
        let mut worker = tokio::spawn(run_worker(
            link,
            compute,
            WorkerOptions::new(
                format!("embedded-{}", std::process::id()),
                spec.device.clone(),
            )
            .with_memory_budget(max_task_memory),
            Controls { drain, abort },
        ));
        let ending = tokio::select! {
            p = follow(&coordinator, sweep_id) => Ending::Settled(Box::new(p)),
            stopped = &mut worker => Ending::WorkerStopped(stopped),
            _ = tokio::signal::ctrl_c() => Ending::Interrupted,
        };
        let progress = match ending {
            Ending::Settled(progress) => {
                let _ = drain_tx.send(true);
                worker.await.context("the local worker")??;
                (*progress)?
            }
            Ending::WorkerStopped(stopped) => {
                stopped.context("the local worker")??;
                anyhow::bail!("the local worker stopped before sweep {sweep_id} ended");
            }
            Ending::Interrupted => {
                let _ = abort_tx.send(true);
                worker.await.context("the local worker")??;
                let p = coordinator.progress(sweep_id).await?;
                let spec_arg = args
                    .spec
                    .as_ref()
                    .map(|s| s.display().to_string())
                    .unwrap_or_else(|| format!("--resume {sweep_id}"));
                eprintln!(
                    "\ninterrupted: sweep {sweep_id} left unfinished ({} of {} patches done; \
                     its lease handed back). Continue it with:\n  patchsweep run {spec_arg} --db {}",
                    p.patches_done, p.patches_total, args.db
                );
                std::process::exit(130);
            }
        };
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

/// The sweep this run works on: the one named by --resume; else an unfinished sweep of the
/// same spec text in this database (unless --new); else a new one.
async fn sweep_to_run(
    coordinator: &Coordinator,
    args: &RunArgs,
    parsed: &ParsedSpec,
    text: &str,
) -> Result<i64> {
    let continuing = |p: &SweepProgress, why: &str| {
        eprintln!(
            "continuing sweep {} ({why}): {} of {} patches done; tasks a killed run still \
             held come back when their lease expires (at most {} s)",
            p.sweep_id,
            p.patches_done,
            p.patches_total,
            embedded_policy().lease_seconds
        );
    };
    if let Some(id) = args.resume {
        let p = coordinator.resume(id).await?;
        continuing(&p, "--resume");
        return Ok(id);
    }
    if !args.new {
        if let Some(row) = coordinator.store().unfinished_sweep_with_spec(text).await? {
            let p = coordinator.progress(row.id).await?;
            continuing(&p, "the same spec, unfinished; --new starts over");
            return Ok(row.id);
        }
    }
    Ok(coordinator.submit_parsed(parsed, text).await?)
}

/// Shows progress until the sweep ends.
async fn follow(coordinator: &Coordinator, sweep_id: i64) -> Result<SweepProgress> {
    let mut bar = Progress::new("sweep", 0, "patches");
    let started = std::time::Instant::now();
    // When the last patch was stored: debias tasks run after it, and must not dilute the rate.
    let mut patched: Option<f64> = None;
    loop {
        let p = coordinator.progress(sweep_id).await?;
        bar.set(p.patches_reached() as u64, p.patches_total as u64);
        if patched.is_none() && p.patches_total > 0 && p.patches_done >= p.patches_total {
            patched = Some(started.elapsed().as_secs_f64());
        }
        if p.is_final() {
            let secs = bar.finish();
            let patch_secs = patched.unwrap_or(secs);
            let after = secs - patch_secs;
            eprintln!(
                "{} patches in {patch_secs:.1}s ({:.0} patches/s){}",
                p.patches_done,
                p.patches_done as f64 / patch_secs.max(1e-9),
                if after >= 0.05 {
                    format!("; then {after:.1}s for the debias sections ({secs:.1}s in all)")
                } else {
                    String::new()
                }
            );
            return Ok(p);
        }
        // A short sweep is not kept waiting for its last reading; a long one is read less often
        // (a reading sums over the sweep's tasks).
        let every = if started.elapsed() < Duration::from_secs(5) {
            50
        } else {
            200
        };
        tokio::time::sleep(Duration::from_millis(every)).await;
    }
}

/// A 95% interval as the debias table shows it, or NULL.
fn ci95(ci: Option<(f64, f64)>) -> Value {
    ci.map_or(Value::Null, |ci| Value::from(interval_sig3(ci)))
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
    for line in dropped_pair_lines(&p.dropped.pairs, SHOWN_DROPPED) {
        eprintln!("  {line}");
    }
}

/// How many dropped pairs `run` lists (all of them are in `dropped_pairs_v`).
const SHOWN_DROPPED: usize = 5;

/// One line per dropped pair (the first `shown`), then how many more there are.
fn dropped_pair_lines(pairs: &[DroppedPair], shown: usize) -> Vec<String> {
    let mut lines: Vec<String> = pairs
        .iter()
        .take(shown)
        .map(|d| {
            format!(
                "dropped {} ({}): {:?} {} tokens vs {:?} {} tokens",
                d.id, d.reason, d.clean, d.clean_tokens, d.corrupt, d.corrupt_tokens
            )
        })
        .collect();
    if pairs.len() > shown {
        lines.push(format!(
            "... and {} more dropped pairs (all in dropped_pairs_v)",
            pairs.len() - shown
        ));
    }
    lines
}

/// How many pairs are weak (below `min_span`), with the weakest few.
fn weak_pairs_line(w: &WeakPairs) -> String {
    const SHOWN: usize = 5;
    if w.weak.is_empty() {
        return format!(
            "weak pairs (|clean - corrupt| < min_span {}): none of {}",
            w.min_span, w.pairs
        );
    }
    let some: Vec<String> = w
        .weak
        .iter()
        .take(SHOWN)
        .map(|(id, span)| format!("{id} ({span:+.3})"))
        .collect();
    format!(
        "weak pairs (|clean - corrupt| < min_span {}, left out of normalized effects): {} of {}: \
         {}{}",
        w.min_span,
        w.weak.len(),
        w.pairs,
        some.join(", "),
        if w.weak.len() > SHOWN { ", …" } else { "" }
    )
}

/// One line per selected pathway: the k's it got, and the ones clamped to its ranking.
fn selection_lines(parsed: &ParsedSpec, sites: &[SelectedSite]) -> Vec<String> {
    let mut lines = Vec::new();
    for exp in &parsed.experiments {
        for s in &exp.grid.selections {
            let prefix = format!("{}/k=", s.name);
            let mut ks: Vec<i64> = sites
                .iter()
                .filter(|x| x.experiment == exp.name && x.pathway.starts_with(&prefix))
                .map(|x| x.k)
                .collect();
            ks.dedup();
            let ranked = ks.last().copied().unwrap_or(0);
            let clamped: Vec<String> = s
                .top_k
                .iter()
                .filter(|&&k| k as i64 > ranked)
                .map(usize::to_string)
                .collect();
            let mut line = format!(
                "{} / {}: top k = {:?} of {} by {} (pathway_sites_v)",
                exp.name,
                s.name,
                ks,
                s.experiment,
                s.rank_by.name()
            );
            if !clamped.is_empty() {
                line.push_str(&format!(
                    "; k = {} clamped to the {ranked} sites ranked",
                    clamped.join(", ")
                ));
            }
            lines.push(line);
        }
    }
    lines
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
        Baselines::cells,
    );
    print!("{}", baselines.to_table());
    let groups = store
        .baselines_by_counterfactual(sweep_id, Rounding::FourDecimals)
        .await?;
    if groups.len() > 1 {
        println!(
            "by counterfactual (pairs corrupted toward different words move the metric in \
             opposite directions; the mean above mixes them):"
        );
        print!("{}", crate::baseline_groups::table(&groups).to_table());
    }
    for line in crate::baseline_groups::weak_contrast_lines(&groups, spec.metric.min_span()) {
        println!("{line}");
    }
    println!("{}", weak_pairs_line(&store.weak_pairs(sweep_id).await?));
    let lens = store.lens_layers(sweep_id).await?;
    for exp in &parsed.experiments {
        if exp.method == Method::LogitLens {
            let curve: Vec<_> = lens
                .iter()
                .filter(|l| l.experiment == exp.name)
                .cloned()
                .collect();
            println!("\n{}", crate::lens_line::lens_line(&exp.name, &curve));
            continue;
        }
        let rows = store
            .top_components(
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
                "pairs_used",
                "normalized",
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
                    Value::from(c.pairs_used),
                    values::float(c.normalized),
                    values::float(c.mean_effect),
                ]
            },
        );
        println!(
            "\ntop components of {} ({} {}), by |normalized effect| over the strong pairs \
             (cells_v; mean_effect oriented toward the stereotyped answer):",
            exp.name,
            exp.method.name(),
            exp.direction.name()
        );
        print!("{}", result.to_table());
    }
    let reversals = store.reversals(sweep_id, true).await?;
    if !reversals.is_empty() {
        println!(
            "\nreversals of pathway cells: the share of pairs whose answer order the patch flips \
             (reversals_v; 95% Wilson interval):"
        );
        print!("{}", crate::reversal_table::table(&reversals).to_table());
    }
    for line in selection_lines(parsed, &store.selected_sites(sweep_id).await?) {
        println!("{line}");
    }
    if !spec.benchmarks.is_empty() {
        let rows = store.benchmark_scores(sweep_id).await?;
        println!(
            "\nbias benchmarks: the share of pairs whose stereotypical sentence is more likely \
             (0.5 = no preference; benchmark_v; 95% Wilson interval; NAME/control pools the \
             control sets):"
        );
        print!("{}", crate::benchmark_table::table(&rows).to_table());
        let paper = crate::benchmark_table::before_after(&rows);
        if !paper.rows.is_empty() {
            println!("before / after / control, all subsets:");
            print!("{}", paper.to_table());
        }
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
                "n",
                "before",
                "before_ci95",
                "after",
                "after_ci95",
                "delta",
                "control_after",
                "control_ci95",
                "control_p05",
                "control_p95",
                "control_percentile",
            ],
            &rows,
            |d| {
                vec![
                    Value::from(d.debias.as_str()),
                    Value::from(d.intervention.as_str()),
                    Value::from(d.split.as_str()),
                    Value::from(d.metric.as_str()),
                    d.n.map(Value::from).unwrap_or(Value::Null),
                    values::float(d.before),
                    ci95(d.before_ci),
                    values::float(d.after),
                    ci95(d.after_ci),
                    values::float(d.delta),
                    values::opt_float(d.control_after),
                    ci95(d.control_ci),
                    values::opt_float(d.control_p05),
                    values::opt_float(d.control_p95),
                    values::opt_float(d.control_percentile),
                ]
            },
        );
        let sets = rows.iter().find_map(|d| d.control_sets).unwrap_or(0);
        println!(
            "\ndebiasing, before and after each intervention (control: the same on {sets} random \
             component sets matched on kind and layer: their mean with its 95% interval over \
             prompts, the sets' 5-95% range, and the located components' percentile among them):"
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_pairs_are_listed_with_their_token_counts() {
        let pair = |i: usize| DroppedPair {
            id: format!("p{i}"),
            reason: "token_count_mismatch".into(),
            clean: "The carpenter said that".into(),
            corrupt: "The woman said that".into(),
            clean_tokens: 5,
            corrupt_tokens: 4,
        };
        let pairs: Vec<DroppedPair> = (0..7).map(pair).collect();
        let lines = dropped_pair_lines(&pairs, 5);
        assert_eq!(
            lines[0],
            "dropped p0 (token_count_mismatch): \"The carpenter said that\" 5 tokens vs \"The woman said that\" 4 tokens"
        );
        assert_eq!(
            lines[5],
            "... and 2 more dropped pairs (all in dropped_pairs_v)"
        );
        assert_eq!(dropped_pair_lines(&pairs[..2], 5).len(), 2);
    }
}
