//! `patchsweep run SPEC`: the whole sweep on this machine (one local worker) into SQLite or
//! PostgreSQL, with progress and a summary.
//!
//! Order matters for "bad input never costs stored work": the spec is parsed and checked,
//! the model is loaded and the spec checked against it, and the database is reached — all
//! before the first patched forward.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use patchsweep_coordinator::spec::{Prepared, SweepSpec};
use patchsweep_coordinator::store::{EffectRow, PairRow, Store};
use patchsweep_engine::experiment::{Baseline, Effect, Engine, Experiment};
use patchsweep_model::{load, LoadOptions, LoadedModel, ModelSpec};

use crate::progress::Progress;

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

pub fn run(args: RunArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.spec)
        .with_context(|| format!("reading spec {}", args.spec.display()))?;
    let parsed = SweepSpec::parse(&text, &args.spec.display().to_string())?;
    let spec = &parsed.spec;
    let model_spec: ModelSpec = spec.model.parse()?;
    let opts = LoadOptions::parse(&spec.device, &spec.dtype)?;
    eprintln!("loading model {model_spec} on {} ...", spec.device);
    let loaded = load(&model_spec, &opts).with_context(|| format!("loading model {model_spec}"))?;
    let prepared = parsed.prepare(&loaded)?;
    report_dataset(&prepared);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let store = rt.block_on(Store::connect(&args.db))?;

    let mut engine = Engine::new(&loaded.model);
    engine.max_batch = spec.batch_size;
    let baselines = engine.baselines(&prepared.pairs)?;
    let sweep_id = rt.block_on(store.create_sweep(&spec.name, &parsed.text, &spec.model))?;
    let outcome = (|| -> Result<()> {
        rt.block_on(store.insert_pairs(sweep_id, &pair_rows(&loaded, &prepared, &baselines)))?;
        let dropped: Vec<(String, i64)> = prepared
            .dropped
            .counts
            .iter()
            .map(|(k, v)| (k.clone(), *v as i64))
            .collect();
        rt.block_on(store.set_dropped(sweep_id, &dropped))?;
        for exp in &parsed.experiments {
            rt.block_on(store.add_experiment(
                sweep_id,
                &exp.name,
                exp.method.name(),
                exp.direction.name(),
            ))?;
            let effects = run_experiment(&engine, exp, &prepared, &baselines)?;
            let rows: Vec<EffectRow> = effects
                .iter()
                .map(|e| effect_row(exp, &prepared, e))
                .collect();
            let inserted = rt.block_on(store.insert_effects(sweep_id, &rows))?;
            eprintln!("experiment {}: {} effects stored", exp.name, inserted);
        }
        Ok(())
    })();
    let status = if outcome.is_ok() { "done" } else { "failed" };
    rt.block_on(store.finish_sweep(sweep_id, status))?;
    outcome?;
    print_summary(
        &rt,
        &store,
        sweep_id,
        spec,
        &parsed.experiments,
        &baselines,
        args.top,
    )?;
    println!("\nresults: sweep id {sweep_id} in {}; try: patchsweep query --db {} \"SELECT * FROM effects_v LIMIT 10\"", args.db, args.db);
    Ok(())
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

fn run_experiment(
    engine: &Engine,
    exp: &Experiment,
    prepared: &Prepared,
    baselines: &[Baseline],
) -> Result<Vec<Effect>> {
    let cells: usize = engine
        .cells(exp, &prepared.pairs)?
        .iter()
        .map(|c| c.len())
        .sum();
    let mut progress = Progress::new(
        &format!(
            "{} ({} {})",
            exp.name,
            exp.method.name(),
            exp.direction.name()
        ),
        cells as u64,
        "patches",
    );
    let effects = engine.run(exp, &prepared.pairs, baselines, &mut |n| {
        progress.advance(n)
    })?;
    let secs = progress.finish();
    eprintln!(
        "experiment {}: {} patches in {:.1}s ({:.0} patches/s)",
        exp.name,
        cells,
        secs,
        cells as f64 / secs.max(1e-9)
    );
    Ok(effects)
}

fn pair_rows(model: &LoadedModel, p: &Prepared, baselines: &[Baseline]) -> Vec<PairRow> {
    let text = |ids: &[u32]| {
        ids.iter()
            .map(|&i| model.tokenizer.token_text(i))
            .collect::<Vec<_>>()
    };
    p.pairs
        .iter()
        .zip(&p.specs)
        .zip(baselines)
        .map(|((pair, spec), b)| PairRow {
            pair_id: pair.id.clone(),
            template: spec.template.clone(),
            clean_prompt: spec.clean.clone(),
            corrupt_prompt: spec.corrupt.clone(),
            clean_ids: pair.clean_ids.clone(),
            corrupt_ids: pair.corrupt_ids.clone(),
            labels: spec.labels.clone(),
            clean_metric: b.clean as f64,
            corrupt_metric: b.corrupt as f64,
            position_labels: pair.position_labels.clone(),
            clean_tokens: text(&pair.clean_ids),
            corrupt_tokens: text(&pair.corrupt_ids),
        })
        .collect()
}

fn effect_row(exp: &Experiment, p: &Prepared, e: &Effect) -> EffectRow {
    let c = |x: Option<usize>| x.map(|v| v as u32);
    EffectRow {
        experiment: exp.name.clone(),
        component: e.key.component.clone(),
        layer: c(e.key.layer),
        head: c(e.key.head),
        position: c(e.key.position),
        neuron: c(e.key.neuron),
        pair_id: p.pairs[e.pair].id.clone(),
        value: e.value,
        effect: e.effect,
        normalized: e.normalized,
    }
}

fn print_summary(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    sweep_id: i64,
    spec: &SweepSpec,
    experiments: &[Experiment],
    baselines: &[Baseline],
    top: usize,
) -> Result<()> {
    let n = baselines.len().max(1) as f64;
    let clean = baselines.iter().map(|b| b.clean as f64).sum::<f64>() / n;
    let corrupt = baselines.iter().map(|b| b.corrupt as f64).sum::<f64>() / n;
    println!(
        "\nsweep {:?}: {} pairs; metric {:?} {:?} vs {:?}",
        spec.name,
        baselines.len(),
        spec.metric.kind,
        spec.metric.positive,
        spec.metric.negative
    );
    println!("baseline: mean clean metric {clean:.4}, mean corrupted metric {corrupt:.4}, mean difference {:.4}", clean - corrupt);
    for exp in experiments {
        let sql = format!(
            "SELECT component, layer, head, position_label, neuron, COUNT(*) AS pairs, \
             ROUND(CAST(AVG(normalized) AS NUMERIC), 4) AS mean_normalized, ROUND(CAST(AVG(effect) AS NUMERIC), 4) AS mean_effect \
             FROM effects_v WHERE sweep_id = {sweep_id} AND experiment = '{}' AND normalized IS NOT NULL \
             GROUP BY component, layer, head, position_label, neuron \
             ORDER BY ABS(AVG(normalized)) DESC LIMIT {top}",
            exp.name.replace('\'', "''")
        );
        let result = rt.block_on(store.query_readonly(&sql))?;
        println!(
            "\ntop components of {} ({} {}), by |mean normalized effect| over pairs:",
            exp.name,
            exp.method.name(),
            exp.direction.name()
        );
        print!("{}", result.to_table());
    }
    Ok(())
}
