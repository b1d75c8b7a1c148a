//! Task arguments and debias rows on the wire: [`TaskArgs`] ⇄ `pb::TaskArgs`,
//! [`DebiasRow`] ⇄ `pb::DebiasRow`. The JSON form is sent beside the typed one for peers
//! older than the typed fields (a rolling upgrade), and read only when the typed one is
//! absent.

use patchsweep_proto::v1 as pb;

use super::WireError;
use crate::args::{
    BenchmarkTask, DebiasTask, GenerateTask, PatchTask, PathwaySelection, PositionRef, PrepareTask,
    RankBy, RankedSite, SelectionRanking, StoredSplit, TaskArgs,
};
use crate::rows::DebiasRow;
use crate::task::TaskKind;

/// A task's arguments as they arrive: the typed `args`, or (from an older peer) the JSON
/// `legacy_json` of a `kind` task.
pub(crate) fn args_from_wire(
    args: Option<pb::TaskArgs>,
    kind: &str,
    legacy_json: &str,
) -> Result<TaskArgs, WireError> {
    use pb::task_args::Args;
    let kind: TaskKind = kind.parse()?;
    let args = match args.and_then(|a| a.args) {
        None => {
            return TaskArgs::from_stored(kind, legacy_json)
                .map_err(|e| WireError::BadArgs(e.to_string()))
        }
        Some(Args::Prepare(_)) => TaskArgs::Prepare(PrepareTask {}),
        Some(Args::Patch(p)) => TaskArgs::Patch(patch_from_wire(p)?),
        Some(Args::Debias(d)) => TaskArgs::Debias(DebiasTask {
            name: d.name,
            experiment: d.experiment,
            effects: d
                .effects
                .into_iter()
                .map(|e| (e.component, e.layer, e.head, e.position_label, e.score))
                .collect(),
            split: d.split.map(|s| StoredSplit {
                selection: s.selection,
                heldout: s.heldout,
                unused: s.unused,
            }),
        }),
        Some(Args::Generate(g)) => TaskArgs::Generate(GenerateTask {
            experiment: g.experiment,
            pairs: g.pairs,
            tokens: g.tokens as usize,
        }),
        Some(Args::Benchmark(b)) => TaskArgs::Benchmark(BenchmarkTask {
            benchmark: b.benchmark,
            first: b.first as usize,
            pairs: b.pairs,
        }),
    };
    if args.kind() != kind {
        return Err(WireError::BadArgs(format!(
            "a {kind} task carries the arguments of a {} task",
            args.kind()
        )));
    }
    Ok(args)
}

pub(crate) fn args_to_wire(args: &TaskArgs) -> pb::TaskArgs {
    use pb::task_args::Args;
    let args = match args {
        TaskArgs::Prepare(_) => Args::Prepare(pb::PrepareArgs {}),
        TaskArgs::Patch(p) => Args::Patch(patch_to_wire(p)),
        TaskArgs::Debias(d) => Args::Debias(pb::DebiasArgs {
            name: d.name.clone(),
            experiment: d.experiment.clone(),
            effects: d
                .effects
                .iter()
                .map(
                    |(component, layer, head, position_label, score)| pb::SelectionEffect {
                        component: component.clone(),
                        layer: *layer,
                        head: *head,
                        position_label: position_label.clone(),
                        score: *score,
                    },
                )
                .collect(),
            split: d.split.as_ref().map(|s| pb::StoredSplit {
                selection: s.selection.clone(),
                heldout: s.heldout.clone(),
                unused: s.unused.clone(),
            }),
        }),
        TaskArgs::Generate(g) => Args::Generate(pb::GenerateArgs {
            experiment: g.experiment.clone(),
            pairs: g.pairs.clone(),
            tokens: g.tokens as u32,
        }),
        TaskArgs::Benchmark(b) => Args::Benchmark(pb::BenchmarkArgs {
            benchmark: b.benchmark.clone(),
            first: b.first as u64,
            pairs: b.pairs.clone(),
        }),
    };
    pb::TaskArgs { args: Some(args) }
}

fn patch_from_wire(p: pb::PatchArgs) -> Result<PatchTask, WireError> {
    Ok(PatchTask {
        experiment: p.experiment,
        pairs: p.pairs,
        baselines: p.baselines.iter().map(|b| [b.clean, b.corrupt]).collect(),
        layers: p
            .layers
            .map(|l| l.layers.into_iter().map(|l| l as usize).collect()),
        pathways: p.pathways,
        selected: p.selected,
        rankings: p
            .rankings
            .into_iter()
            .map(ranking_from_wire)
            .collect::<Result<_, _>>()?,
    })
}

fn patch_to_wire(p: &PatchTask) -> pb::PatchArgs {
    pb::PatchArgs {
        experiment: p.experiment.clone(),
        pairs: p.pairs.clone(),
        baselines: p
            .baselines
            .iter()
            .map(|&[clean, corrupt]| pb::PairBaseline { clean, corrupt })
            .collect(),
        layers: p.layers.as_ref().map(|l| pb::LayerList {
            layers: l.iter().map(|&l| l as u32).collect(),
        }),
        pathways: p.pathways,
        selected: p.selected,
        rankings: p.rankings.iter().map(ranking_to_wire).collect(),
    }
}

fn ranking_from_wire(r: pb::SelectionRanking) -> Result<SelectionRanking, WireError> {
    let s = r
        .selection
        .ok_or_else(|| WireError::BadArgs("a selection ranking without its selection".into()))?;
    let position = match s.position.and_then(|p| p.at) {
        None => None,
        Some(pb::position::At::Index(i)) => Some(PositionRef::Index(i)),
        Some(pb::position::At::Label(l)) => Some(PositionRef::Label(l)),
    };
    Ok(SelectionRanking {
        selection: PathwaySelection {
            name: s.name,
            experiment: s.experiment,
            component: s
                .component
                .parse()
                .map_err(|e| WireError::BadArgs(format!("selection component: {e}")))?,
            top_k: s.top_k.into_iter().map(|k| k as usize).collect(),
            position,
            rank_by: RankBy::from_name(&s.rank_by)
                .ok_or_else(|| WireError::BadArgs(format!("unknown rank_by `{}`", s.rank_by)))?,
        },
        sites: r
            .sites
            .into_iter()
            .map(|s| RankedSite {
                layer: s.layer as usize,
                head: s.head.map(|h| h as usize),
                neuron: s.neuron.map(|n| n as usize),
                position_label: s.position_label,
                positioned: s.positioned,
                score: s.score,
            })
            .collect(),
    })
}

fn ranking_to_wire(r: &SelectionRanking) -> pb::SelectionRanking {
    let s = &r.selection;
    pb::SelectionRanking {
        selection: Some(pb::PathwaySelection {
            name: s.name.clone(),
            experiment: s.experiment.clone(),
            component: s.component.name().to_string(),
            top_k: s.top_k.iter().map(|&k| k as u32).collect(),
            position: s.position.as_ref().map(|p| pb::Position {
                at: Some(match p {
                    PositionRef::Index(i) => pb::position::At::Index(*i),
                    PositionRef::Label(l) => pb::position::At::Label(l.clone()),
                }),
            }),
            rank_by: s.rank_by.name().to_string(),
        }),
        sites: r
            .sites
            .iter()
            .map(|s| pb::RankedSite {
                layer: s.layer as u32,
                head: s.head.map(|h| h as u32),
                neuron: s.neuron.map(|n| n as u32),
                position_label: s.position_label.clone(),
                positioned: s.positioned,
                score: s.score,
            })
            .collect(),
    }
}

/// A debias task's rows as they arrive (the JSON form from an older worker).
pub(crate) fn debias_rows_from_wire(d: pb::DebiasOutput) -> Result<Vec<DebiasRow>, WireError> {
    if d.rows.is_empty() && !d.rows_json.is_empty() {
        return serde_json::from_str(&d.rows_json)
            .map_err(|e| WireError::BadArgs(format!("debias rows: {e}")));
    }
    Ok(d.rows
        .into_iter()
        .map(|r| DebiasRow {
            debias: r.debias,
            intervention: r.intervention,
            components: r.components,
            split: r.split,
            metric: r.metric,
            before: r.before,
            after: r.after,
            control_after: r.control_after,
            control_components: r.control_components,
            control_sets: r.control_sets,
            control_p05: r.control_p05,
            control_p95: r.control_p95,
            control_percentile: r.control_percentile,
            n: r.n,
            before_ci: r.before_ci_low.zip(r.before_ci_high),
            after_ci: r.after_ci_low.zip(r.after_ci_high),
            control_ci: r.control_ci_low.zip(r.control_ci_high),
        })
        .collect())
}

pub(crate) fn debias_rows_to_wire(rows: &[DebiasRow]) -> pb::DebiasOutput {
    pb::DebiasOutput {
        // Also the JSON form, for coordinators older than `rows` during a rolling upgrade.
        rows_json: serde_json::to_string(rows).expect("plain data serializes"),
        benchmark_scores: Vec::new(),
        rows: rows
            .iter()
            .map(|r| pb::DebiasRow {
                debias: r.debias.clone(),
                intervention: r.intervention.clone(),
                components: r.components.clone(),
                split: r.split.clone(),
                metric: r.metric.clone(),
                before: r.before,
                after: r.after,
                control_after: r.control_after,
                control_components: r.control_components.clone(),
                control_sets: r.control_sets,
                control_p05: r.control_p05,
                control_p95: r.control_p95,
                control_percentile: r.control_percentile,
                n: r.n,
                before_ci_low: r.before_ci.map(|c| c.0),
                before_ci_high: r.before_ci.map(|c| c.1),
                after_ci_low: r.after_ci.map(|c| c.0),
                after_ci_high: r.after_ci.map(|c| c.1),
                control_ci_low: r.control_ci.map(|c| c.0),
                control_ci_high: r.control_ci.map(|c| c.1),
            })
            .collect(),
    }
}
