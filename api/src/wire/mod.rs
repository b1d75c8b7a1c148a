//! Conversions between the wire types (`patchsweep_proto::v1`) and the domain types, both
//! ways: the coordinator's server converts what enters and leaves it, the typed clients
//! ([`crate::client`]) what they send and receive. Prost types go no further than this
//! file, [`crate::client`] and the coordinator's `server/`.

use std::collections::BTreeMap;

use patchsweep_proto::v1 as pb;

mod args;
use args::{args_from_wire, args_to_wire, debias_rows_from_wire, debias_rows_to_wire};

use crate::progress::{DebiasFigure, SweepProgress, TaskCounts, TaskFailure};
use crate::rows::{BenchmarkRow, EffectRow, GenerationRow, LensRow, PairRow};
use crate::task::{
    spec_digest, DroppedPair, HeldSweep, LeasedTask, NewTask, PreparedSweep, Settled, TaskOutput,
    UnknownName,
};
use crate::worker::{HeldLease, Registration, WorkerInfo};

/// The largest message either side accepts (a task's effects travel in one message).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// A message that does not convert to the domain types.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    #[error("coordinate {0} is negative")]
    NegativeCoordinate(i32),
    #[error("the result carries no output")]
    NoOutput,
    #[error(transparent)]
    UnknownName(#[from] UnknownName),
    #[error("pair {pair:?}: toward_stereotype is {value}, not -1, 0 or 1")]
    BadOrientation { pair: String, value: i32 },
    #[error("pair {pair:?}: a logit-lens lead is {value}, not -1, 0 or 1")]
    BadLead { pair: String, value: i32 },
    #[error("task arguments: {0}")]
    BadArgs(String),
}

fn coord(c: i32) -> Result<Option<u32>, WireError> {
    match c {
        -1 => Ok(None),
        c if c >= 0 => Ok(Some(c as u32)),
        c => Err(WireError::NegativeCoordinate(c)),
    }
}

fn wire_coord(c: Option<u32>) -> i32 {
    c.map(|v| v as i32).unwrap_or(-1)
}

pub fn effect_from_wire(e: pb::Effect) -> Result<EffectRow, WireError> {
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

fn lead(pair: &str, value: i32) -> Result<i8, WireError> {
    match value {
        v @ -1..=1 => Ok(v as i8),
        value => Err(WireError::BadLead {
            pair: pair.to_string(),
            value,
        }),
    }
}

pub fn lens_from_wire(v: pb::LensValue) -> Result<LensRow, WireError> {
    Ok(LensRow {
        clean_lead: lead(&v.pair_id, v.clean_lead)?,
        corrupt_lead: lead(&v.pair_id, v.corrupt_lead)?,
        experiment: v.experiment,
        pair_id: v.pair_id,
        layer: v.layer,
        clean_value: v.clean_value,
        corrupt_value: v.corrupt_value,
    })
}

pub fn lens_to_wire(r: &LensRow) -> pb::LensValue {
    pb::LensValue {
        experiment: r.experiment.clone(),
        pair_id: r.pair_id.clone(),
        layer: r.layer,
        clean_value: r.clean_value,
        corrupt_value: r.corrupt_value,
        clean_lead: i32::from(r.clean_lead),
        corrupt_lead: i32::from(r.corrupt_lead),
    }
}

fn pair_from_wire(p: pb::Pair) -> Result<PairRow, WireError> {
    let toward_stereotype = match p.toward_stereotype {
        v @ -1..=1 => v as i8,
        value => {
            return Err(WireError::BadOrientation {
                pair: p.pair_id,
                value,
            })
        }
    };
    Ok(PairRow {
        pair_id: p.pair_id,
        template: p.template,
        clean_prompt: p.clean_prompt,
        corrupt_prompt: p.corrupt_prompt,
        clean_ids: p.clean_ids,
        corrupt_ids: p.corrupt_ids,
        labels: p.labels.into_iter().collect::<BTreeMap<_, _>>(),
        clean_metric: p.clean_metric,
        corrupt_metric: p.corrupt_metric,
        toward_stereotype,
        position_labels: p.position_labels,
        clean_tokens: p.clean_tokens,
        corrupt_tokens: p.corrupt_tokens,
    })
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
        toward_stereotype: i32::from(p.toward_stereotype),
        position_labels: p.position_labels.clone(),
        clean_tokens: p.clean_tokens.clone(),
        corrupt_tokens: p.corrupt_tokens.clone(),
    }
}

fn benchmark_from_wire(b: pb::BenchmarkScore) -> BenchmarkRow {
    BenchmarkRow {
        benchmark: b.benchmark,
        model_state: b.model_state,
        debias: b.debias,
        control_set: b.control_set,
        pair_index: b.pair_index,
        pair_id: b.pair_id,
        subset: b.subset,
        stereo_loglik: b.stereo_loglik,
        anti_loglik: b.anti_loglik,
    }
}

fn benchmark_to_wire(b: &BenchmarkRow) -> pb::BenchmarkScore {
    pb::BenchmarkScore {
        benchmark: b.benchmark.clone(),
        model_state: b.model_state.clone(),
        debias: b.debias.clone(),
        control_set: b.control_set,
        pair_index: b.pair_index,
        pair_id: b.pair_id.clone(),
        subset: b.subset.clone(),
        stereo_loglik: b.stereo_loglik,
        anti_loglik: b.anti_loglik,
    }
}

fn generation_from_wire(g: pb::Generation) -> GenerationRow {
    GenerationRow {
        experiment: g.experiment,
        pair_id: g.pair_id,
        cell: g.cell,
        run: g.run,
        tokens: g.tokens,
        text: g.text,
    }
}

fn generation_to_wire(g: &GenerationRow) -> pb::Generation {
    pb::Generation {
        experiment: g.experiment.clone(),
        pair_id: g.pair_id.clone(),
        cell: g.cell.clone(),
        run: g.run.clone(),
        tokens: g.tokens.clone(),
        text: g.text.clone(),
    }
}

fn planned_from_wire(t: pb::PlannedTask) -> Result<NewTask, WireError> {
    Ok(NewTask {
        args: args_from_wire(t.args, &t.kind, &t.payload_json)?,
        description: t.description,
        cost: t.cost,
        // A planner that only knew `waits` meant the last stage.
        stage: t.stage.max(u32::from(t.waits)),
    })
}

fn planned_to_wire(t: &NewTask) -> pb::PlannedTask {
    pb::PlannedTask {
        kind: t.kind().as_str().to_string(),
        description: t.description.clone(),
        // Also the JSON form, for peers older than `args` during a rolling upgrade.
        payload_json: t.args.to_stored(),
        args: Some(args_to_wire(&t.args)),
        cost: t.cost,
        waits: t.stage > 0,
        stage: t.stage,
    }
}

/// A task's output as it arrives; an error when the request carries none.
pub fn output_from_wire(
    o: Option<pb::complete_task_request::Output>,
) -> Result<TaskOutput, WireError> {
    use pb::complete_task_request::Output;
    match o {
        None => Err(WireError::NoOutput),
        Some(Output::Patch(p)) => Ok(TaskOutput::Patch(
            p.effects
                .into_iter()
                .map(effect_from_wire)
                .collect::<Result<_, _>>()?,
        )),
        Some(Output::Lens(l)) => Ok(TaskOutput::Lens(
            l.values
                .into_iter()
                .map(lens_from_wire)
                .collect::<Result<_, _>>()?,
        )),
        Some(Output::Debias(mut d)) => Ok(TaskOutput::Debias {
            benchmarks: std::mem::take(&mut d.benchmark_scores)
                .into_iter()
                .map(benchmark_from_wire)
                .collect(),
            rows: debias_rows_from_wire(d)?,
        }),
        Some(Output::Benchmark(b)) => Ok(TaskOutput::Benchmark(
            b.scores.into_iter().map(benchmark_from_wire).collect(),
        )),
        Some(Output::Generate(g)) => Ok(TaskOutput::Generate(
            g.generations
                .into_iter()
                .map(generation_from_wire)
                .collect(),
        )),
        Some(Output::Prepare(p)) => Ok(TaskOutput::Prepare(PreparedSweep {
            pairs: p
                .pairs
                .into_iter()
                .map(pair_from_wire)
                .collect::<Result<_, _>>()?,
            dropped: p.dropped.into_iter().map(|d| (d.reason, d.count)).collect(),
            dropped_pairs: p
                .dropped_pairs
                .into_iter()
                .map(|d| DroppedPair {
                    id: d.pair_id,
                    reason: d.reason,
                    clean: d.clean_prompt,
                    corrupt: d.corrupt_prompt,
                    clean_tokens: d.clean_tokens as usize,
                    corrupt_tokens: d.corrupt_tokens as usize,
                })
                .collect(),
            experiments: p
                .experiments
                .into_iter()
                .map(|e| (e.name, e.method, e.direction))
                .collect(),
            tasks: p
                .tasks
                .into_iter()
                .map(planned_from_wire)
                .collect::<Result<_, _>>()?,
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
        TaskOutput::Lens(rows) => Output::Lens(pb::LensOutput {
            values: rows.iter().map(lens_to_wire).collect(),
        }),
        TaskOutput::Debias { rows, benchmarks } => Output::Debias(pb::DebiasOutput {
            benchmark_scores: benchmarks.iter().map(benchmark_to_wire).collect(),
            ..debias_rows_to_wire(rows)
        }),
        TaskOutput::Benchmark(rows) => Output::Benchmark(pb::BenchmarkOutput {
            scores: rows.iter().map(benchmark_to_wire).collect(),
        }),
        TaskOutput::Generate(rows) => Output::Generate(pb::GenerateOutput {
            generations: rows.iter().map(generation_to_wire).collect(),
        }),
        TaskOutput::Prepare(p) => Output::Prepare(pb::PrepareOutput {
            pairs: p.pairs.iter().map(pair_to_wire).collect(),
            dropped_pairs: p
                .dropped_pairs
                .iter()
                .map(|d| pb::DroppedPair {
                    pair_id: d.id.clone(),
                    reason: d.reason.clone(),
                    clean_prompt: d.clean.clone(),
                    corrupt_prompt: d.corrupt.clone(),
                    clean_tokens: d.clean_tokens as u32,
                    corrupt_tokens: d.corrupt_tokens as u32,
                })
                .collect(),
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
            tasks: p.tasks.iter().map(planned_to_wire).collect(),
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
        kind: t.kind().as_str().to_string(),
        model: t.model.clone(),
        spec_toml: t.spec_toml.clone(),
        spec_digest: t.spec_digest.clone(),
        // Also the JSON form, for peers older than `args` during a rolling upgrade.
        payload_json: t.args.to_stored(),
        args: Some(args_to_wire(&t.args)),
        description: t.description.clone(),
    }
}

/// A leased task as it arrives; a coordinator older than `spec_digest` sends the spec
/// text with every task and no digest, which is then taken from the text.
pub fn task_from_wire(t: pb::Task) -> Result<LeasedTask, WireError> {
    let spec_digest = match (&t.spec_toml, t.spec_digest.is_empty()) {
        (Some(text), true) => spec_digest(text),
        _ => t.spec_digest,
    };
    Ok(LeasedTask {
        task_id: t.task_id,
        attempt: t.attempt as i64,
        sweep_id: t.sweep_id,
        args: args_from_wire(t.args, &t.kind, &t.payload_json)?,
        model: t.model,
        spec_toml: t.spec_toml,
        spec_digest,
        description: t.description,
    })
}

/// The sweeps a worker holds, as its lease request names them.
pub fn held_to_wire(held: &[HeldSweep]) -> Vec<pb::HeldSweep> {
    held.iter()
        .map(|h| pb::HeldSweep {
            sweep_id: h.sweep_id,
            spec_digest: h.spec_digest.clone(),
        })
        .collect()
}

pub fn held_from_wire(held: Vec<pb::HeldSweep>) -> Vec<HeldSweep> {
    held.into_iter()
        .map(|h| HeldSweep {
            sweep_id: h.sweep_id,
            spec_digest: h.spec_digest,
        })
        .collect()
}

/// A registration as it arrives (the coordinator assigns the id).
pub fn worker_from_wire(r: pb::RegisterRequest) -> WorkerInfo {
    WorkerInfo {
        id: String::new(),
        name: r.name,
        device: r.device,
        memory_bytes: r.memory_bytes.min(i64::MAX as u64) as i64,
        models: r.models,
        version: r.version,
    }
}

pub fn worker_to_wire(w: WorkerInfo) -> pb::RegisterRequest {
    pb::RegisterRequest {
        name: w.name,
        device: w.device,
        memory_bytes: w.memory_bytes.max(0) as u64,
        models: w.models,
        version: w.version,
    }
}

pub fn registration_to_wire(r: Registration) -> pb::RegisterResponse {
    pb::RegisterResponse {
        worker_id: r.worker_id,
        lease_seconds: r.lease_seconds,
        heartbeat_seconds: r.heartbeat_seconds,
    }
}

pub fn registration_from_wire(r: pb::RegisterResponse) -> Registration {
    Registration {
        worker_id: r.worker_id,
        lease_seconds: r.lease_seconds,
        heartbeat_seconds: r.heartbeat_seconds,
    }
}

/// Leases `(task_id, attempt)` on the wire, as a heartbeat's answer names those lost.
pub fn leases_to_wire(leases: &[(i64, i64)]) -> Vec<pb::LeaseRef> {
    leases
        .iter()
        .map(|&(task_id, attempt)| pb::LeaseRef {
            task_id,
            attempt: attempt as i32,
            fraction_done: 0.0,
        })
        .collect()
}

pub fn leases_from_wire(leases: &[pb::LeaseRef]) -> Vec<(i64, i64)> {
    leases
        .iter()
        .map(|l| (l.task_id, l.attempt as i64))
        .collect()
}

/// The leases a heartbeat extends, with how far each has got.
pub fn held_leases_to_wire(leases: &[HeldLease]) -> Vec<pb::LeaseRef> {
    leases
        .iter()
        .map(|l| pb::LeaseRef {
            task_id: l.task_id,
            attempt: l.attempt as i32,
            fraction_done: l.fraction_done,
        })
        .collect()
}

/// The leases a heartbeat names, as the coordinator reads them.
pub fn held_leases_from_wire(leases: &[pb::LeaseRef]) -> Vec<HeldLease> {
    leases
        .iter()
        .map(|l| HeldLease {
            task_id: l.task_id,
            attempt: l.attempt as i64,
            fraction_done: l.fraction_done,
        })
        .collect()
}

/// Whether a settled result or failure was accepted, and its outcome in words:
/// `completed`, `requeued (retry in Ns)`, `failed`, or why it was stale.
fn settled_words(s: &Settled) -> (bool, String) {
    match s {
        Settled::Completed { .. } => (true, "completed".into()),
        Settled::Requeued { retry_in } => (true, format!("requeued (retry in {retry_in:.1}s)")),
        Settled::Failed => (true, "failed".into()),
        Settled::Stale { reason } => (false, reason.clone()),
    }
}

fn settled_from_words(accepted: bool, outcome: String, rows: u64) -> Settled {
    if !accepted {
        Settled::Stale { reason: outcome }
    } else if outcome == "failed" {
        Settled::Failed
    } else if let Some(rest) = outcome.strip_prefix("requeued") {
        let retry_in = rest
            .trim()
            .strip_prefix("(retry in ")
            .and_then(|r| r.strip_suffix("s)"))
            .and_then(|r| r.parse().ok())
            .unwrap_or(0.0);
        Settled::Requeued { retry_in }
    } else {
        Settled::Completed { rows }
    }
}

pub fn complete_reply(s: &Settled) -> pb::CompleteTaskResponse {
    let rows_inserted = match s {
        Settled::Completed { rows } => *rows,
        _ => 0,
    };
    let (accepted, reason) = settled_words(s);
    pb::CompleteTaskResponse {
        accepted,
        reason,
        rows_inserted,
    }
}

pub fn settled_from_complete(r: pb::CompleteTaskResponse) -> Settled {
    settled_from_words(r.accepted, r.reason, r.rows_inserted)
}

pub fn fail_reply(s: &Settled) -> pb::FailTaskResponse {
    let (accepted, outcome) = settled_words(s);
    pb::FailTaskResponse { accepted, outcome }
}

pub fn settled_from_fail(r: pb::FailTaskResponse) -> Settled {
    settled_from_words(r.accepted, r.outcome, 0)
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
        patches_in_progress: p.patches_in_progress,
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
                n: d.n,
                before_ci_low: d.before_ci.map(|c| c.0),
                before_ci_high: d.before_ci.map(|c| c.1),
                after_ci_low: d.after_ci.map(|c| c.0),
                after_ci_high: d.after_ci.map(|c| c.1),
                control_ci_low: d.control_ci.map(|c| c.0),
                control_ci_high: d.control_ci.map(|c| c.1),
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
        tasks: TaskCounts {
            waiting: 0,
            queued: t.queued,
            leased: t.leased,
            done: t.done,
            failed: t.failed,
            cancelled: t.cancelled,
        },
        patches_total: s.patches_total,
        patches_done: s.patches_done,
        patches_in_progress: s.patches_in_progress,
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
            .map(|f| TaskFailure {
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
            .map(|d| DebiasFigure {
                debias: d.debias,
                intervention: d.intervention,
                split: d.split,
                metric: d.metric,
                before: d.before,
                after: d.after,
                control_after: d.control_after,
                n: d.n,
                before_ci: d.before_ci_low.zip(d.before_ci_high),
                after_ci: d.after_ci_low.zip(d.after_ci_high),
                control_ci: d.control_ci_low.zip(d.control_ci_high),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{
        BenchmarkTask, DebiasTask, GenerateTask, PatchTask, PathwaySelection, PositionRef,
        PrepareTask, RankBy, RankedSite, SelectionRanking, StoredSplit, TaskArgs,
    };
    use crate::rows::DebiasRow;
    use patchsweep_engine::grid::Component;

    /// Arguments of every kind, each optional field both present and absent somewhere.
    fn every_kind_of_args() -> Vec<TaskArgs> {
        let selection = |position| PathwaySelection {
            name: "top".into(),
            experiment: "attr".into(),
            component: Component::HeadOut,
            top_k: vec![5, 90],
            position,
            rank_by: RankBy::AbsEffect,
        };
        vec![
            TaskArgs::Prepare(PrepareTask {}),
            TaskArgs::Patch(PatchTask {
                experiment: "e".into(),
                pairs: vec!["p1".into(), "p2".into()],
                baselines: vec![[1.5, -0.25], [0.0, 2.0]],
                layers: Some(vec![0, 3]),
                pathways: true,
                selected: false,
                rankings: vec![],
            }),
            TaskArgs::Patch(PatchTask {
                experiment: "sets".into(),
                pairs: vec![],
                baselines: vec![],
                layers: None,
                pathways: false,
                selected: true,
                rankings: vec![
                    SelectionRanking {
                        selection: selection(Some(PositionRef::Index(-1))),
                        sites: vec![RankedSite {
                            layer: 7,
                            head: Some(2),
                            neuron: None,
                            position_label: Some("subject".into()),
                            positioned: true,
                            score: 0.125,
                        }],
                    },
                    SelectionRanking {
                        selection: selection(Some(PositionRef::Label("subject".into()))),
                        sites: vec![],
                    },
                    SelectionRanking {
                        selection: selection(None),
                        sites: vec![],
                    },
                ],
            }),
            TaskArgs::Debias(DebiasTask {
                name: "d".into(),
                experiment: "e".into(),
                effects: vec![
                    ("mlp_out".into(), 1, None, Some("subject".into()), 0.5),
                    ("head_out".into(), 2, Some(3), None, -0.25),
                ],
                split: Some(StoredSplit {
                    selection: vec!["a".into()],
                    heldout: vec!["b".into()],
                    unused: vec![],
                }),
            }),
            TaskArgs::Debias(DebiasTask {
                name: "d".into(),
                experiment: "e".into(),
                effects: vec![],
                split: None,
            }),
            TaskArgs::Generate(GenerateTask {
                experiment: "e".into(),
                pairs: vec!["p1".into()],
                tokens: 12,
            }),
            TaskArgs::Benchmark(BenchmarkTask {
                benchmark: "crows".into(),
                first: 200,
                pairs: vec!["crows_pairs/200".into()],
            }),
        ]
    }

    #[test]
    fn a_prepare_output_round_trips_with_stages_and_typed_args_carried() {
        let tasks: Vec<NewTask> = every_kind_of_args()
            .into_iter()
            .enumerate()
            .map(|(i, args)| NewTask {
                args,
                description: format!("t{i}"),
                cost: i as i64,
                stage: i as u32 % 3,
            })
            .collect();
        let out = TaskOutput::Prepare(PreparedSweep {
            tasks,
            ..Default::default()
        });
        let wire = output_to_wire(&out);
        let pb::complete_task_request::Output::Prepare(p) = &wire else {
            panic!("not a prepare output: {wire:?}");
        };
        assert!(p
            .tasks
            .iter()
            .all(|t| t.args.is_some() && !t.payload_json.is_empty()));
        assert_eq!(output_from_wire(Some(wire)), Ok(out));
    }

    #[test]
    fn json_arguments_from_an_older_planner_still_read() {
        for args in every_kind_of_args() {
            let old = pb::PlannedTask {
                kind: args.kind().as_str().into(),
                payload_json: args.to_stored(),
                ..Default::default()
            };
            assert_eq!(planned_from_wire(old).unwrap().args, args);
        }
        let mismatched = pb::PlannedTask {
            kind: "debias".into(),
            args: Some(args::args_to_wire(&TaskArgs::Prepare(PrepareTask {}))),
            ..Default::default()
        };
        assert_eq!(
            planned_from_wire(mismatched).unwrap_err().to_string(),
            "task arguments: a debias task carries the arguments of a prepare task"
        );
    }

    #[test]
    fn debias_rows_travel_typed_and_read_from_older_workers_json() {
        let row = DebiasRow {
            debias: "d".into(),
            intervention: "ablation".into(),
            components: "mlp_out L1".into(),
            split: "heldout".into(),
            metric: "logit_diff".into(),
            before: -1.25,
            after: -0.5,
            control_after: Some(-1.0),
            control_components: None,
            control_sets: Some(20),
            control_p05: Some(-1.5),
            control_p95: None,
            control_percentile: Some(97.5),
            n: Some(6),
            before_ci: Some((-2.0, -0.5)),
            after_ci: None,
            control_ci: Some((-1.25, -0.75)),
        };
        let out = TaskOutput::Debias {
            rows: vec![row.clone()],
            benchmarks: vec![],
        };
        assert_eq!(
            output_from_wire(Some(output_to_wire(&out))),
            Ok(out.clone())
        );
        let old = pb::complete_task_request::Output::Debias(pb::DebiasOutput {
            rows_json: serde_json::to_string(&vec![row]).unwrap(),
            ..Default::default()
        });
        assert_eq!(output_from_wire(Some(old)), Ok(out));
    }

    #[test]
    fn a_lens_output_round_trips_as_a_typed_message() {
        let out = TaskOutput::Lens(vec![LensRow {
            experiment: "lens".into(),
            pair_id: "p0".into(),
            layer: 29,
            clean_value: 1.25,
            corrupt_value: -0.5,
            clean_lead: 1,
            corrupt_lead: -1,
        }]);
        let wire = output_to_wire(&out);
        assert!(matches!(
            &wire,
            pb::complete_task_request::Output::Lens(l) if l.values[0].layer == 29
        ));
        assert_eq!(output_from_wire(Some(wire)), Ok(out));
        let bad = pb::complete_task_request::Output::Lens(pb::LensOutput {
            values: vec![pb::LensValue {
                pair_id: "p0".into(),
                clean_lead: 2,
                ..Default::default()
            }],
        });
        assert_eq!(
            output_from_wire(Some(bad)).unwrap_err().to_string(),
            "pair \"p0\": a logit-lens lead is 2, not -1, 0 or 1"
        );
    }

    #[test]
    fn benchmark_scores_round_trip_alone_and_with_debias_rows() {
        let row = |state: &str, debias: Option<&str>, control: Option<u32>| BenchmarkRow {
            benchmark: "crows".into(),
            model_state: state.into(),
            debias: debias.map(str::to_string),
            control_set: control,
            pair_index: 7,
            pair_id: "crows_pairs/7".into(),
            subset: "gender".into(),
            stereo_loglik: -31.25,
            anti_loglik: -30.5,
        };
        let base = TaskOutput::Benchmark(vec![row("base", None, None)]);
        assert_eq!(output_from_wire(Some(output_to_wire(&base))), Ok(base));
        let debias = TaskOutput::Debias {
            rows: vec![],
            benchmarks: vec![
                row("ablation_zero", Some("d"), None),
                row("ablation_zero", Some("d"), Some(0)),
            ],
        };
        let wire = output_to_wire(&debias);
        let pb::complete_task_request::Output::Debias(d) = &wire else {
            panic!("not a debias output: {wire:?}");
        };
        assert_eq!(d.benchmark_scores[1].control_set, Some(0));
        assert_eq!(output_from_wire(Some(wire)), Ok(debias));
    }

    #[test]
    fn a_generate_output_round_trips_with_the_unpatched_cell_absent() {
        let row = |cell: Option<&str>, run: &str| GenerationRow {
            experiment: "e".into(),
            pair_id: "p0".into(),
            cell: cell.map(str::to_string),
            run: run.into(),
            tokens: vec![3, 1, 4],
            text: " she said".into(),
        };
        let out = TaskOutput::Generate(vec![
            row(None, "clean"),
            row(Some("pathway:mlp"), "corrupt"),
        ]);
        let wire = output_to_wire(&out);
        let pb::complete_task_request::Output::Generate(g) = &wire else {
            panic!("not a generate output: {wire:?}");
        };
        assert_eq!(g.generations[0].cell, None);
        assert_eq!(output_from_wire(Some(wire)), Ok(out));
    }

    #[test]
    fn settled_answers_round_trip() {
        for s in [
            Settled::Completed { rows: 7 },
            Settled::Requeued { retry_in: 2.5 },
            Settled::Failed,
            Settled::Stale {
                reason: "lease moved on".into(),
            },
        ] {
            assert_eq!(settled_from_complete(complete_reply(&s)), s);
        }
        assert_eq!(
            settled_from_fail(fail_reply(&Settled::Completed { rows: 3 })),
            Settled::Completed { rows: 0 }
        );
    }

    #[test]
    fn leased_tasks_round_trip_with_or_without_their_spec() {
        for spec_toml in [Some("name = \"s\"".to_string()), None] {
            let t = LeasedTask {
                task_id: 4,
                attempt: 2,
                sweep_id: 9,
                args: every_kind_of_args().swap_remove(2),
                model: "m".into(),
                spec_digest: spec_digest("name = \"s\""),
                spec_toml,
                description: "d".into(),
            };
            assert_eq!(task_from_wire(task_to_wire(&t)), Ok(t));
        }
        // A coordinator older than the digest sends the text only: the digest is the text's.
        let old = pb::Task {
            kind: "prepare".into(),
            payload_json: "{}".into(),
            spec_toml: Some("name = \"s\"".into()),
            ..Default::default()
        };
        assert_eq!(
            task_from_wire(old).unwrap().spec_digest,
            spec_digest("name = \"s\"")
        );
        let held = vec![HeldSweep {
            sweep_id: 9,
            spec_digest: "ab".into(),
        }];
        assert_eq!(held_from_wire(held_to_wire(&held)), held);
    }

    #[test]
    fn unknown_kinds_and_negative_coordinates_are_refused() {
        let task = pb::Task {
            kind: "train".into(),
            ..Default::default()
        };
        assert_eq!(
            task_from_wire(task).unwrap_err().to_string(),
            "unknown task kind `train`"
        );
        let effect = pb::Effect {
            layer: -2,
            ..Default::default()
        };
        assert_eq!(
            effect_from_wire(effect),
            Err(WireError::NegativeCoordinate(-2))
        );
    }
}
