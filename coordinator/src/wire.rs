//! Conversions between the wire types (`patchsweep_proto::v1`) and the domain types, both
//! ways: the server converts what enters, the worker's client what it sends. Prost types
//! go no further than this file and `server/`.

use std::collections::BTreeMap;

use patchsweep_proto::v1 as pb;

use crate::store::{
    EffectRow, LeasedTask, NewTask, PairRow, PreparedSweep, SweepProgress, TaskOutput,
};

fn coord(c: i32) -> Result<Option<u32>, String> {
    match c {
        -1 => Ok(None),
        c if c >= 0 => Ok(Some(c as u32)),
        c => Err(format!("coordinate {c} is negative")),
    }
}

fn wire_coord(c: Option<u32>) -> i32 {
    c.map(|v| v as i32).unwrap_or(-1)
}

pub fn effect_from_wire(e: pb::Effect) -> Result<EffectRow, String> {
    Ok(EffectRow {
        layer: coord(e.layer)?,
        head: coord(e.head)?,
        position: coord(e.position)?,
        neuron: coord(e.neuron)?,
        experiment: e.experiment,
        component: e.component,
        pair_id: e.pair_id,
        value: e.value,
        effect: e.effect,
        normalized: e.normalized,
    })
}

pub fn effect_to_wire(e: &EffectRow) -> pb::Effect {
    pb::Effect {
        experiment: e.experiment.clone(),
        component: e.component.clone(),
        layer: wire_coord(e.layer),
        head: wire_coord(e.head),
        position: wire_coord(e.position),
        neuron: wire_coord(e.neuron),
        pair_id: e.pair_id.clone(),
        value: e.value,
        effect: e.effect,
        normalized: e.normalized,
    }
}

fn pair_from_wire(p: pb::Pair) -> PairRow {
    PairRow {
        pair_id: p.pair_id,
        template: p.template,
        clean_prompt: p.clean_prompt,
        corrupt_prompt: p.corrupt_prompt,
        clean_ids: p.clean_ids,
        corrupt_ids: p.corrupt_ids,
        labels: p.labels.into_iter().collect::<BTreeMap<_, _>>(),
        clean_metric: p.clean_metric,
        corrupt_metric: p.corrupt_metric,
        position_labels: p.position_labels,
        clean_tokens: p.clean_tokens,
        corrupt_tokens: p.corrupt_tokens,
    }
}

fn pair_to_wire(p: &PairRow) -> pb::Pair {
    pb::Pair {
        pair_id: p.pair_id.clone(),
        template: p.template.clone(),
        clean_prompt: p.clean_prompt.clone(),
        corrupt_prompt: p.corrupt_prompt.clone(),
        clean_ids: p.clean_ids.clone(),
        corrupt_ids: p.corrupt_ids.clone(),
        labels: p.labels.clone().into_iter().collect(),
        clean_metric: p.clean_metric,
        corrupt_metric: p.corrupt_metric,
        position_labels: p.position_labels.clone(),
        clean_tokens: p.clean_tokens.clone(),
        corrupt_tokens: p.corrupt_tokens.clone(),
    }
}

/// A task's output as it arrives; `None` when the request carries none.
pub fn output_from_wire(
    o: Option<pb::complete_task_request::Output>,
) -> Result<TaskOutput, String> {
    use pb::complete_task_request::Output;
    match o {
        None => Err("the result carries no output".into()),
        Some(Output::Patch(p)) => Ok(TaskOutput::Patch(
            p.effects
                .into_iter()
                .map(effect_from_wire)
                .collect::<Result<_, _>>()?,
        )),
        Some(Output::Debias(d)) => Ok(TaskOutput::Debias(d.rows_json)),
        Some(Output::Prepare(p)) => Ok(TaskOutput::Prepare(PreparedSweep {
            pairs: p.pairs.into_iter().map(pair_from_wire).collect(),
            dropped: p.dropped.into_iter().map(|d| (d.reason, d.count)).collect(),
            experiments: p
                .experiments
                .into_iter()
                .map(|e| (e.name, e.method, e.direction))
                .collect(),
            tasks: p
                .tasks
                .into_iter()
                .map(|t| NewTask {
                    waits: t.kind == crate::plan::DEBIAS,
                    kind: t.kind,
                    description: t.description,
                    payload: t.payload_json,
                    cost: t.cost,
                })
                .collect(),
            splits: p
                .splits
                .into_iter()
                .map(|m| (m.debias, m.pair_id, m.part))
                .collect(),
        })),
    }
}

pub fn output_to_wire(o: &TaskOutput) -> pb::complete_task_request::Output {
    use pb::complete_task_request::Output;
    match o {
        TaskOutput::Patch(effects) => Output::Patch(pb::PatchOutput {
            effects: effects.iter().map(effect_to_wire).collect(),
        }),
        TaskOutput::Debias(rows) => Output::Debias(pb::DebiasOutput {
            rows_json: rows.clone(),
        }),
        TaskOutput::Prepare(p) => Output::Prepare(pb::PrepareOutput {
            pairs: p.pairs.iter().map(pair_to_wire).collect(),
            dropped: p
                .dropped
                .iter()
                .map(|(reason, count)| pb::DroppedCount {
                    reason: reason.clone(),
                    count: *count,
                })
                .collect(),
            experiments: p
                .experiments
                .iter()
                .map(|(name, method, direction)| pb::Experiment {
                    name: name.clone(),
                    method: method.clone(),
                    direction: direction.clone(),
                })
                .collect(),
            tasks: p
                .tasks
                .iter()
                .map(|t| pb::PlannedTask {
                    kind: t.kind.clone(),
                    description: t.description.clone(),
                    payload_json: t.payload.clone(),
                    cost: t.cost,
                })
                .collect(),
            splits: p
                .splits
                .iter()
                .map(|(debias, pair_id, part)| pb::SplitMember {
                    debias: debias.clone(),
                    pair_id: pair_id.clone(),
                    part: part.clone(),
                })
                .collect(),
        }),
    }
}

pub fn task_to_wire(t: &LeasedTask) -> pb::Task {
    pb::Task {
        task_id: t.task_id,
        attempt: t.attempt as i32,
        sweep_id: t.sweep_id,
        kind: t.kind.clone(),
        model: t.model.clone(),
        spec_toml: t.spec_toml.clone(),
        payload_json: t.payload.clone(),
        description: t.description.clone(),
    }
}

pub fn task_from_wire(t: pb::Task) -> LeasedTask {
    LeasedTask {
        task_id: t.task_id,
        attempt: t.attempt as i64,
        sweep_id: t.sweep_id,
        kind: t.kind,
        model: t.model,
        spec_toml: t.spec_toml,
        payload: t.payload_json,
        description: t.description,
    }
}

pub fn progress_to_wire(p: &SweepProgress) -> pb::SweepStatus {
    pb::SweepStatus {
        sweep_id: p.sweep_id,
        name: p.name.clone(),
        model: p.model.clone(),
        state: p.state.clone(),
        tasks: Some(pb::TaskCounts {
            queued: p.tasks.queued + p.tasks.waiting,
            leased: p.tasks.leased,
            done: p.tasks.done,
            failed: p.tasks.failed,
            cancelled: p.tasks.cancelled,
        }),
        patches_total: p.patches_total,
        patches_done: p.patches_done,
        effects_stored: p.effects_stored,
        patches_per_second: p.patches_per_second(),
        eta_seconds: p.eta_seconds().unwrap_or(-1.0),
        workers: p.workers as i32,
        retries: p.retries,
        stale_results: p.stale_results,
        lease_expirations: p.lease_expirations,
        failures: p
            .failures
            .iter()
            .map(|f| pb::TaskFailure {
                task_id: f.task_id,
                description: f.description.clone(),
                error: f.error.clone(),
                attempts: f.attempts as i32,
            })
            .collect(),
        error: p.error.clone().unwrap_or_default(),
        created_at: p.created_at.clone(),
        finished_at: p.finished_at.clone().unwrap_or_default(),
        debias: p
            .debias
            .iter()
            .map(|d| pb::DebiasFigure {
                debias: d.debias.clone(),
                intervention: d.intervention.clone(),
                split: d.split.clone(),
                metric: d.metric.clone(),
                before: d.before,
                after: d.after,
                control_after: d.control_after,
            })
            .collect(),
    }
}

/// A sweep's status as a client sees it (the wire form, read back).
pub fn progress_from_wire(s: pb::SweepStatus) -> SweepProgress {
    let t = s.tasks.unwrap_or_default();
    SweepProgress {
        sweep_id: s.sweep_id,
        name: s.name,
        model: s.model,
        state: s.state,
        error: (!s.error.is_empty()).then_some(s.error),
        tasks: crate::store::TaskCounts {
            waiting: 0,
            queued: t.queued,
            leased: t.leased,
            done: t.done,
            failed: t.failed,
            cancelled: t.cancelled,
        },
        patches_total: s.patches_total,
        patches_done: s.patches_done,
        effects_stored: s.effects_stored,
        elapsed_seconds: if s.patches_per_second > 0.0 {
            s.patches_done as f64 / s.patches_per_second
        } else {
            0.0
        },
        workers: s.workers as i64,
        retries: s.retries,
        stale_results: s.stale_results,
        lease_expirations: s.lease_expirations,
        failures: s
            .failures
            .into_iter()
            .map(|f| crate::store::TaskFailure {
                task_id: f.task_id,
                description: f.description,
                error: f.error,
                attempts: f.attempts as i64,
            })
            .collect(),
        created_at: s.created_at,
        finished_at: (!s.finished_at.is_empty()).then_some(s.finished_at),
        debias: s
            .debias
            .into_iter()
            .map(|d| crate::store::queue::DebiasFigure {
                debias: d.debias,
                intervention: d.intervention,
                split: d.split,
                metric: d.metric,
                before: d.before,
                after: d.after,
                control_after: d.control_after,
            })
            .collect(),
    }
}
