//! Cutting a sweep into tasks (their arguments are in [`crate::args`]).
//!
//! A prepare task (run by a worker, which holds the model) tokenizes the dataset, measures
//! the baselines and calls [`plan`]; the coordinator stores the plan with the pairs in one
//! transaction. A patch task is one experiment × pairs of one token length × a range of
//! layers; its arguments carry the pairs' baselines so every task normalizes alike. An
//! experiment with `generate` gets one generate task: the generation check of the sweep's
//! first pairs (its own task, so its continuations neither wait for nor delay the effects).

use std::collections::BTreeMap;

use patchsweep_engine::debias::Split;
use patchsweep_engine::experiment::{Baseline, Engine, Experiment, Method};
use patchsweep_engine::grid::Grid;

use crate::args::{payload, DebiasTask, GenerateTask, PatchTask};
use crate::spec::{ParsedSpec, Prepared, TaskSizing};
use crate::task::{NewTask, TaskKind};

/// The experiment narrowed to a task's layers (and pathways).
pub fn restrict(exp: &Experiment, layers: &Option<Vec<usize>>, pathways: bool) -> Experiment {
    let mut narrowed = exp.clone();
    if let Some(layers) = layers {
        narrowed.grid = Grid {
            layers: Some(layers.clone()),
            ..exp.grid.clone()
        };
        if layers.is_empty() {
            narrowed.grid.components.clear();
        }
    }
    if !pathways {
        narrowed.grid.pathways.clear();
    }
    narrowed
}

/// Layer groups of an experiment: `[None]` when it is not split.
fn layer_groups(exp: &Experiment, n_layers: usize, per_task: usize) -> Vec<Option<Vec<usize>>> {
    if per_task == 0 || exp.method == Method::Attribution || exp.grid.components.is_empty() {
        return vec![None];
    }
    let layers: Vec<usize> = exp
        .grid
        .layers
        .clone()
        .unwrap_or_else(|| (0..n_layers).collect());
    layers.chunks(per_task).map(|c| Some(c.to_vec())).collect()
}

fn describe_layers(layers: &Option<Vec<usize>>) -> String {
    match layers.as_deref() {
        None => "all layers".into(),
        Some([one]) => format!("layer {one}"),
        Some(v) => format!(
            "layers {}-{}",
            v.first().copied().unwrap_or(0),
            v.last().copied().unwrap_or(0)
        ),
    }
}

/// The patch tasks of a prepared sweep, each with its cost in patches.
pub fn plan(
    engine: &Engine,
    parsed: &ParsedSpec,
    prepared: &Prepared,
    baselines: &[Baseline],
) -> patchsweep_engine::Result<Vec<NewTask>> {
    let sizing: TaskSizing = parsed.spec.tasks;
    let mut by_len: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, p) in prepared.pairs.iter().enumerate() {
        by_len.entry(p.clean_ids.len()).or_default().push(i);
    }
    let chunks: Vec<Vec<usize>> = by_len
        .values()
        .flat_map(|v| v.chunks(sizing.pairs_per_task.max(1)).map(|c| c.to_vec()))
        .collect();
    let n_layers = engine.model.cfg.n_layers;
    let mut tasks = Vec::new();
    for exp in &parsed.experiments {
        let groups = layer_groups(exp, n_layers, sizing.layers_per_task);
        for chunk in &chunks {
            let pairs: Vec<_> = chunk.iter().map(|&i| prepared.pairs[i].clone()).collect();
            for (g, layers) in groups.iter().enumerate() {
                let narrowed = restrict(exp, layers, g == 0);
                let cost: usize = engine.cells(&narrowed, &pairs)?.iter().map(Vec::len).sum();
                if cost == 0 {
                    continue;
                }
                let args = PatchTask {
                    experiment: exp.name.clone(),
                    pairs: pairs.iter().map(|p| p.id.clone()).collect(),
                    baselines: chunk
                        .iter()
                        .map(|&i| [baselines[i].clean, baselines[i].corrupt])
                        .collect(),
                    layers: layers.clone(),
                    pathways: g == 0,
                };
                tasks.push(NewTask {
                    kind: TaskKind::Patch,
                    description: format!(
                        "{} {}, {} pair{} from {} ({} tokens)",
                        exp.name,
                        describe_layers(layers),
                        pairs.len(),
                        if pairs.len() == 1 { "" } else { "s" },
                        pairs[0].id,
                        pairs[0].clean_ids.len()
                    ),
                    payload: payload(&args),
                    cost: cost as i64,
                    waits: false,
                });
            }
        }
    }
    tasks.extend(plan_generate(parsed, prepared));
    Ok(tasks)
}

/// One generate task per experiment with `generate`, for the sweep's first pairs; its cost
/// is its number of continuations (clean, corrupted, and one per pathway, per pair).
pub fn plan_generate(parsed: &ParsedSpec, prepared: &Prepared) -> Vec<NewTask> {
    parsed
        .experiments
        .iter()
        .zip(&parsed.spec.experiments)
        .filter_map(|(exp, spec)| {
            let g = spec.generate?;
            let pairs = g.chosen(&prepared.pairs);
            let per_pair = 2 + exp.grid.pathways.len();
            let args = GenerateTask {
                experiment: exp.name.clone(),
                pairs: pairs.iter().map(|p| p.id.clone()).collect(),
                tokens: g.tokens,
            };
            Some(NewTask {
                kind: TaskKind::Generate,
                description: format!(
                    "{} generation check: {} pair(s) × {per_pair} continuations of {} tokens",
                    exp.name,
                    pairs.len(),
                    g.tokens
                ),
                payload: payload(&args),
                cost: (pairs.len() * per_pair) as i64,
                waits: false,
            })
        })
        .collect()
}

/// One pair's part in a debias section's split, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMember {
    pub debias: String,
    pub pair_id: String,
    /// `selection`, `heldout` or `unused`.
    pub part: &'static str,
}

/// The debias tasks of a prepared sweep (they wait for the patch tasks) and the seeded
/// split of each section, to be stored with the pairs.
/// Each debias section's split of the prepared pairs, by section name (what
/// [`plan_debias`] stores, and `run` prints with [`Split::summary`]).
pub fn debias_splits(
    parsed: &ParsedSpec,
    prepared: &Prepared,
) -> patchsweep_engine::debias::Result<Vec<(String, Split)>> {
    use patchsweep_engine::debias::{debias_pairs, male_side, split_pairs};
    if parsed.spec.debias.is_empty() {
        return Ok(Vec::new());
    }
    let m = &parsed.spec.metric;
    let pairs = debias_pairs(
        prepared.pairs.clone(),
        &prepared.specs,
        male_side(&m.positive, &m.negative),
    )?;
    parsed
        .spec
        .debias
        .iter()
        .map(|cfg| Ok((cfg.name.clone(), split_pairs(&pairs, &cfg.split)?)))
        .collect()
}

pub fn plan_debias(
    parsed: &ParsedSpec,
    prepared: &Prepared,
) -> patchsweep_engine::debias::Result<(Vec<NewTask>, Vec<SplitMember>)> {
    let mut tasks = Vec::new();
    let mut members = Vec::new();
    for (cfg, (_, split)) in parsed
        .spec
        .debias
        .iter()
        .zip(debias_splits(parsed, prepared)?)
    {
        for (part, ids) in [
            ("selection", &split.selection),
            ("heldout", &split.heldout),
            ("unused", &split.unused),
        ] {
            members.extend(ids.iter().map(|id| SplitMember {
                debias: cfg.name.clone(),
                pair_id: id.clone(),
                part,
            }));
        }
        let args = DebiasTask {
            name: cfg.name.clone(),
            experiment: cfg.experiment.clone(),
            effects: Vec::new(),
            split: None,
        };
        tasks.push(NewTask {
            kind: TaskKind::Debias,
            description: format!(
                "debias {}: {} intervention(s); split {}",
                cfg.name,
                cfg.interventions.len(),
                split.summary()
            ),
            payload: payload(&args),
            cost: 0,
            waits: true,
        });
    }
    Ok((tasks, members))
}
