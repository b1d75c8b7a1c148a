//! Debias tasks: select the components (from the effects the store aggregated over the
//! selection split), draw the random control, run every intervention and evaluate it on
//! the held-out pairs and the neutral text.

use std::path::PathBuf;

use patchsweep_api::{DebiasRow, DebiasTask, LeasedTask, TaskOutput};
use patchsweep_engine::debias::{
    debias_pairs, male_side, matched_controls, neutral_chunks, run_debias, select_components,
    split_pairs, AggregatedEffect, DebiasInputs, NEUTRAL_TEXT,
};

use crate::executor::TaskError;
use crate::model_executor::ModelExecutor;

/// Where tuned deltas are written: `$PATCHSWEEP_DELTAS_DIR` (default `patchsweep-deltas`)
/// / `sweep-N`, on the worker's file system.
fn deltas_dir(sweep_id: i64) -> PathBuf {
    let base = std::env::var_os("PATCHSWEEP_DELTAS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("patchsweep-deltas"));
    base.join(format!("sweep-{sweep_id}"))
}

pub(crate) fn run(exec: &mut ModelExecutor, task: &LeasedTask) -> Result<TaskOutput, TaskError> {
    let args: DebiasTask = serde_json::from_str(&task.payload)
        .map_err(|e| TaskError::permanent(format!("debias task arguments: {e}")))?;
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
        male_side(&spec.metric.positive, &spec.metric.negative),
    )
    .map_err(perm)?;
    let split = split_pairs(&pairs, &cfg.split).map_err(perm)?;
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
    let dir = deltas_dir(task.sweep_id);
    let outcome = run_debias(
        cfg,
        &DebiasInputs {
            model: &model.model,
            pairs: &pairs,
            split: &split,
            targets: &targets,
            controls: &controls,
            neutral: &neutral,
            deltas_dir: Some(&dir),
            max_batch: spec.batch_size,
        },
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
        })
        .collect();
    Ok(TaskOutput::Debias(
        serde_json::to_string(&rows).expect("plain data serializes"),
    ))
}
