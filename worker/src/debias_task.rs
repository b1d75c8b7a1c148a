//! Debias tasks: select the components (from the effects the store aggregated over the
//! selection split), draw the matched random control sets, run every intervention and evaluate it on
//! the held-out pairs and the neutral text.
//!
//! Every `[[benchmark]]` of the spec is scored after each intervention, on the located
//! components and on the benchmark's first `control_sets` control sets (rows with
//! `model_state` = the intervention's name; the base scores come from the benchmark tasks).
//!
//! The split is the one the prepare task drew and the store kept (`debias_splits`), handed
//! over in the task's arguments at lease time: it is never drawn again here.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;

use patchsweep_api::{BenchmarkRow, DebiasRow, DebiasTask, LeasedTask, StoredSplit, TaskOutput};
use patchsweep_engine::debias::{
    debias_pairs, load_corpora, matched_controls, neutral_chunks, run_debias, select_components,
    AggregatedEffect, BenchmarkScores, BenchmarkSet, DebiasError, DebiasInputs, DebiasPair, Split,
    NEUTRAL_TEXT,
};

use crate::executor::{TaskError, TaskProgress};
use crate::model_executor::{ModelExecutor, SweepState};

/// Where tuned deltas are written: `$PATCHSWEEP_DELTAS_DIR` (default `patchsweep-deltas`)
/// / `sweep-N`, on the worker's file system.
fn deltas_dir(sweep_id: i64) -> PathBuf {
    let base = std::env::var_os("PATCHSWEEP_DELTAS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("patchsweep-deltas"));
    base.join(format!("sweep-{sweep_id}"))
}

pub(crate) fn run(
    exec: &mut ModelExecutor,
    task: &LeasedTask,
    args: &DebiasTask,
    progress: &TaskProgress,
) -> Result<TaskOutput, TaskError> {
    let (model, state) = exec.sweep(task)?;
    let spec = &state.parsed.spec;
    let cfg = spec
        .debias
        .iter()
        .find(|d| d.name == args.name)
        .ok_or_else(|| {
            TaskError::permanent(format!("the spec has no debias section `{}`", args.name))
        })?;
    let perm = TaskError::permanent;
    let pairs = debias_pairs(
        state.prepared.pairs.clone(),
        &state.prepared.specs,
        &spec.metric.positive,
        &spec.metric.negative,
    )
    .map_err(perm)?;
    let stored = args.split.as_ref().ok_or_else(|| {
        TaskError::permanent(format!(
            "debias task `{}` carries no stored split (the coordinator attaches the split \
             stored at prepare time when it leases the task; is it older than this worker?)",
            args.name
        ))
    })?;
    let split = stored_split(&args.name, stored, cfg.split.seed, &pairs)?;
    let rows: Vec<AggregatedEffect> = args
        .effects
        .iter()
        .filter(|(_, layer, _, _, _)| *layer >= 0)
        .map(|(component, layer, head, label, score)| AggregatedEffect {
            component: component.clone(),
            layer: *layer as usize,
            head: head.map(|h| h as usize),
            position_label: label.clone(),
            score: *score,
        })
        .collect();
    let targets = select_components(&rows, &cfg.select, &model.model.cfg).map_err(perm)?;
    let controls = matched_controls(
        &targets,
        cfg.control_seed,
        cfg.control_sets,
        &model.model.cfg,
    )
    .map_err(perm)?;
    let neutral = neutral_chunks(
        &model.tokenizer,
        NEUTRAL_TEXT,
        cfg.neutral.chunk_tokens,
        cfg.neutral.max_chunks,
        spec.prepend_bos,
    )
    .map_err(perm)?;
    // A Hub dataset the worker cannot fetch now may be there later; a bad file never is.
    let corpora = load_corpora(cfg, &model.tokenizer, spec.prepend_bos).map_err(|e| match e {
        DebiasError::Model(_) => TaskError::transient(e),
        e => TaskError::permanent(e),
    })?;
    let dir = deltas_dir(task.sweep_id);
    let benchmarks = benchmark_sets(&state);
    let outcome = run_debias(
        cfg,
        &DebiasInputs {
            model: &model.model,
            pairs: &pairs,
            split: &split,
            targets: &targets,
            controls: &controls,
            neutral: &neutral,
            corpora: &corpora,
            deltas_dir: Some(&dir),
            max_batch: spec.batch_size(),
            benchmarks: &benchmarks,
        },
        &mut |done, total| progress.set(done as u64, total as u64),
    )
    .map_err(TaskError::transient)?;
    for a in &outcome.artifacts {
        tracing::info!(intervention = %a.intervention, control = ?a.control, path = %a.path.display(), first_loss = a.first_loss, final_loss = a.final_loss, "tuned deltas saved");
    }
    let rows: Vec<DebiasRow> = outcome
        .rows
        .into_iter()
        .map(|r| DebiasRow {
            debias: cfg.name.clone(),
            intervention: r.intervention,
            components: r.components,
            split: r.split,
            metric: r.metric,
            before: r.before,
            after: r.after,
            control_after: r.control.as_ref().map(|c| c.mean),
            control_components: Some(r.control_components),
            control_sets: r.control.as_ref().map(|c| c.sets as i64),
            control_p05: r.control.as_ref().map(|c| c.p05),
            control_p95: r.control.as_ref().map(|c| c.p95),
            control_percentile: r.control.as_ref().map(|c| c.percentile),
            n: r.n.map(|n| n as i64),
            before_ci: r.before_ci,
            after_ci: r.after_ci,
            control_ci: r.control.as_ref().and_then(|c| c.ci),
        })
        .collect();
    Ok(TaskOutput::Debias {
        rows,
        benchmarks: benchmark_rows(&cfg.name, outcome.benchmarks),
    })
}

/// The sweep's benchmarks as the debias run scores them (pairs read and tokenized when the
/// sweep was prepared).
fn benchmark_sets(state: &SweepState) -> Vec<BenchmarkSet> {
    state
        .parsed
        .benchmarks
        .iter()
        .zip(&state.prepared.benchmarks)
        .map(|(b, t)| BenchmarkSet {
            name: b.name.clone(),
            pairs: b.pairs.clone(),
            rows: t.rows.clone(),
            control_sets: b.control_sets,
        })
        .collect()
}

/// The benchmark scores of every intervened state as stored rows (`model_state` the
/// intervention's name; a control set's rows carry its index).
fn benchmark_rows(debias: &str, scored: Vec<BenchmarkScores>) -> Vec<BenchmarkRow> {
    scored
        .into_iter()
        .flat_map(|b| {
            let BenchmarkScores {
                benchmark,
                intervention,
                control,
                scores,
            } = b;
            scores
                .into_iter()
                .enumerate()
                .map(move |(k, s)| BenchmarkRow {
                    benchmark: benchmark.clone(),
                    model_state: intervention.clone(),
                    debias: Some(debias.to_string()),
                    control_set: control.map(|c| c as u32),
                    pair_index: k as u32,
                    pair_id: s.id,
                    subset: s.subset,
                    stereo_loglik: s.stereo,
                    anti_loglik: s.anti,
                })
        })
        .collect()
}

/// The engine's [`Split`] of a stored split: every stored pair must be one this worker
/// prepared, and both the selection and the held-out part must have pairs. The held-out
/// professions and templates are those the held-out pairs name (the store keeps pairs, not
/// the draw; the run reads only the pairs).
fn stored_split(
    debias: &str,
    stored: &StoredSplit,
    seed: u64,
    pairs: &[DebiasPair],
) -> Result<Split, TaskError> {
    let known: HashSet<&str> = pairs.iter().map(|p| p.input.id.as_str()).collect();
    let parts = [
        ("selection", &stored.selection),
        ("heldout", &stored.heldout),
        ("unused", &stored.unused),
    ];
    for (part, ids) in parts {
        if let Some(id) = ids.iter().find(|id| !known.contains(id.as_str())) {
            return Err(TaskError::permanent(format!(
                "the stored split of debias `{debias}` puts pair `{id}` in its {part} part, \
                 but the sweep's dataset as this worker prepares it has no such pair"
            )));
        }
    }
    if stored.selection.is_empty() || stored.heldout.is_empty() {
        return Err(TaskError::permanent(format!(
            "the stored split of debias `{debias}` has {} selection and {} held-out pairs; \
             both need at least one",
            stored.selection.len(),
            stored.heldout.len()
        )));
    }
    // In the order of the prepared pairs, as the prepare task drew them.
    let in_order = |ids: &[String]| -> Vec<String> {
        let ids: HashSet<&str> = ids.iter().map(String::as_str).collect();
        pairs
            .iter()
            .filter(|p| ids.contains(p.input.id.as_str()))
            .map(|p| p.input.id.clone())
            .collect()
    };
    let heldout = in_order(&stored.heldout);
    let heldout_ids: HashSet<&str> = heldout.iter().map(String::as_str).collect();
    let held: Vec<&DebiasPair> = pairs
        .iter()
        .filter(|p| heldout_ids.contains(p.input.id.as_str()))
        .collect();
    let professions: BTreeSet<String> =
        held.iter().flat_map(|p| p.professions().cloned()).collect();
    let templates: BTreeSet<String> = held.iter().filter_map(|p| p.template.clone()).collect();
    Ok(Split {
        seed,
        heldout_professions: professions.into_iter().collect(),
        heldout_templates: templates.into_iter().collect(),
        selection: in_order(&stored.selection),
        heldout,
        unused: in_order(&stored.unused),
    })
}
