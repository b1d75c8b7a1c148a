//! Cutting a sweep into tasks (their arguments are in [`crate::args`]).
//!
//! A prepare task (run by a worker, which holds the model) tokenizes the dataset, measures
//! the baselines and calls [`plan`]; the coordinator stores the plan with the pairs in one
//! transaction. A patch task is one experiment × pairs of one token length × a range of
//! layers; its arguments carry the pairs' baselines so every task normalizes alike. A
//! logit-lens experiment is one task per pair chunk (every layer it reads), of kind `patch`
//! too: the worker reads the experiment's method. An experiment with `generate` gets one
//! generate task: the generation check of the sweep's first pairs (its own task, so its
//! continuations neither wait for nor delay the effects). Each `[[benchmark]]` is cut into
//! benchmark tasks of consecutive pairs, scored on the model as it is.

use std::collections::{BTreeMap, BTreeSet};

use patchsweep_engine::debias::Split;
use patchsweep_engine::experiment::{Baseline, Engine, Experiment, Method, PairInput};
use patchsweep_engine::grid::{resolve_position, Grid, PositionRef};
use patchsweep_engine::selection::PathwaySelection;

use crate::args::{BenchmarkTask, DebiasTask, GenerateTask, PatchTask, SelectionRanking, TaskArgs};
use crate::spec::{selection_stages, ParsedSpec, Prepared, TaskSizing};
use crate::task::NewTask;

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

/// The experiment a patch task measures: narrowed to its layers and pathways, or, for a
/// task of selected pathways, the top-k sets built from the rankings its lease carried.
pub fn task_experiment(
    exp: &Experiment,
    args: &PatchTask,
) -> patchsweep_engine::Result<Experiment> {
    if !args.selected {
        return Ok(restrict(exp, &args.layers, args.pathways));
    }
    let mut narrowed = restrict(exp, &Some(Vec::new()), false);
    for r in &args.rankings {
        narrowed
            .grid
            .pathways
            .extend(r.selection.pathways(&r.sites)?.into_iter().map(|(_, p)| p));
    }
    Ok(narrowed)
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
    let stages = selection_stages(&parsed.spec.experiments)
        .map_err(|e| patchsweep_engine::EngineError::Grid(e.to_string()))?;
    let mut tasks = Vec::new();
    for exp in &parsed.experiments {
        if exp.method == Method::LogitLens {
            let layers = engine.lens_layers(exp)?.len();
            tasks.extend(
                chunks
                    .iter()
                    .map(|chunk| lens_task(exp, prepared, baselines, chunk, layers)),
            );
            continue;
        }
        let groups = layer_groups(exp, n_layers, sizing.layers_per_task);
        for chunk in &chunks {
            let pairs: Vec<_> = chunk.iter().map(|&i| prepared.pairs[i].clone()).collect();
            let baselines: Vec<[f32; 2]> = chunk
                .iter()
                .map(|&i| [baselines[i].clean, baselines[i].corrupt])
                .collect();
            let describe = |what: &str| {
                format!(
                    "{} {what}, {} pair{} from {} ({} tokens)",
                    exp.name,
                    pairs.len(),
                    if pairs.len() == 1 { "" } else { "s" },
                    pairs[0].id,
                    pairs[0].clean_ids.len()
                )
            };
            for (g, layers) in groups.iter().enumerate() {
                let narrowed = restrict(exp, layers, g == 0);
                let cost: usize = engine.cells(&narrowed, &pairs)?.iter().map(Vec::len).sum();
                if cost == 0 {
                    continue;
                }
                let args = PatchTask {
                    experiment: exp.name.clone(),
                    pairs: pairs.iter().map(|p| p.id.clone()).collect(),
                    baselines: baselines.clone(),
                    layers: layers.clone(),
                    pathways: g == 0,
                    selected: false,
                    rankings: Vec::new(),
                };
                tasks.push(NewTask {
                    args: TaskArgs::Patch(args),
                    description: describe(&describe_layers(layers)),
                    cost: cost as i64,
                    stage: 0,
                });
            }
            if exp.grid.selections.is_empty() {
                continue;
            }
            let (mut sets, mut rankings) = (Vec::new(), Vec::new());
            let mut cells = 0;
            for s in &exp.grid.selections {
                let ks = s.effective_k(ranked_sites(engine, parsed, s, &pairs[0])?);
                if ks.is_empty() {
                    return Err(patchsweep_engine::EngineError::Grid(format!(
                        "pathway {}: experiment {:?} measures no {} sites{} to select from",
                        s.name,
                        s.experiment,
                        s.component,
                        s.position
                            .as_ref()
                            .map(|p| format!(" at position {p:?}"))
                            .unwrap_or_default()
                    )));
                }
                cells += ks.len();
                sets.push(describe_selection(s, &ks));
                rankings.push(SelectionRanking {
                    selection: PathwaySelection {
                        top_k: ks,
                        ..s.clone()
                    },
                    sites: Vec::new(),
                });
            }
            let args = PatchTask {
                experiment: exp.name.clone(),
                pairs: pairs.iter().map(|p| p.id.clone()).collect(),
                baselines: baselines.clone(),
                layers: Some(Vec::new()),
                pathways: false,
                selected: true,
                rankings,
            };
            tasks.push(NewTask {
                args: TaskArgs::Patch(args),
                description: describe(&format!("selected {}", sets.join("; "))),
                cost: (cells * pairs.len()) as i64,
                stage: stages.get(&exp.name).copied().unwrap_or(1),
            });
        }
    }
    tasks.extend(plan_generate(parsed, prepared));
    tasks.extend(plan_benchmarks(parsed));
    Ok(tasks)
}

/// Each `[[benchmark]]` cut into tasks of `pairs_per_task` consecutive pairs, scored on the
/// model as it is; they wait for nothing. Cost: pairs.
pub fn plan_benchmarks(parsed: &ParsedSpec) -> Vec<NewTask> {
    let mut tasks = Vec::new();
    for b in &parsed.benchmarks {
        let size = b.pairs_per_task.max(1);
        for (c, chunk) in b.pairs.chunks(size).enumerate() {
            let first = c * size;
            let args = BenchmarkTask {
                benchmark: b.name.clone(),
                first,
                pairs: chunk.iter().map(|p| p.id.clone()).collect(),
            };
            tasks.push(NewTask {
                args: TaskArgs::Benchmark(args),
                description: format!(
                    "benchmark {} ({}): pairs {}-{} of {}",
                    b.name,
                    b.source,
                    first,
                    first + chunk.len() - 1,
                    b.pairs.len()
                ),
                cost: chunk.len() as i64,
                stage: 0,
            });
        }
    }
    tasks
}

/// `copying k=5,10,30,54 (90 clamped to the 54 head_out sites heads-attr measures)`.
fn describe_selection(s: &PathwaySelection, ks: &[usize]) -> String {
    let list: Vec<String> = ks.iter().map(usize::to_string).collect();
    let clamped: Vec<String> = s
        .top_k
        .iter()
        .filter(|k| !ks.contains(k))
        .map(usize::to_string)
        .collect();
    let mut text = format!("{} k={}", s.name, list.join(","));
    if !clamped.is_empty() {
        text.push_str(&format!(
            " ({} clamped to the {} {} sites {} measures)",
            clamped.join(","),
            ks.last().copied().unwrap_or(0),
            s.component,
            s.experiment
        ));
    }
    text
}

/// How many sites a selection can rank: the distinct (layer, head, neuron, position)
/// cells of its component (positions counted by label, as the store ranks them) that the
/// experiment it reads measures on this pair.
pub fn ranked_sites(
    engine: &Engine,
    parsed: &ParsedSpec,
    s: &PathwaySelection,
    pair: &PairInput,
) -> patchsweep_engine::Result<usize> {
    let Some(source) = parsed.experiments.iter().find(|e| e.name == s.experiment) else {
        return Ok(0);
    };
    let only_cells = Experiment {
        grid: Grid {
            pathways: Vec::new(),
            selections: Vec::new(),
            ..source.grid.clone()
        },
        ..source.clone()
    };
    let cells = engine.cells(&only_cells, std::slice::from_ref(pair))?;
    let label = |p: Option<usize>| p.map(|p| pair.position_labels.get(p).cloned());
    let wanted = |p: Option<usize>| match &s.position {
        None => true,
        Some(r) => p.is_some_and(|p| {
            resolve_position(r, pair.clean_ids.len(), &pair.position_labels)
                .is_ok_and(|ps| ps.contains(&p))
        }),
    };
    let distinct: BTreeSet<_> = cells[0]
        .iter()
        .filter(|c| c.key.component == s.component.name() && wanted(c.key.position))
        .map(|c| {
            let position = match label(c.key.position) {
                // An index selection ranks one site per (layer, head, neuron).
                _ if matches!(s.position, Some(PositionRef::Index(_))) => (None, None),
                Some(Some(l)) => (Some(l), None),
                other => (None, other.map(|_| c.key.position)),
            };
            (c.key.layer, c.key.head, c.key.neuron, position)
        })
        .collect();
    Ok(distinct.len())
}

/// The task reading the logit lens of `exp` on the pairs of `chunk` (one token length);
/// its cost is the lens values it computes (pairs × layers).
fn lens_task(
    exp: &Experiment,
    prepared: &Prepared,
    baselines: &[Baseline],
    chunk: &[usize],
    layers: usize,
) -> NewTask {
    let args = PatchTask {
        experiment: exp.name.clone(),
        pairs: chunk
            .iter()
            .map(|&i| prepared.pairs[i].id.clone())
            .collect(),
        baselines: chunk
            .iter()
            .map(|&i| [baselines[i].clean, baselines[i].corrupt])
            .collect(),
        layers: None,
        pathways: false,
        selected: false,
        rankings: Vec::new(),
    };
    let first = &prepared.pairs[chunk[0]];
    NewTask {
        args: TaskArgs::Patch(args),
        description: format!(
            "{} logit lens over {layers} layer{}, {} pair{} from {} ({} tokens)",
            exp.name,
            if layers == 1 { "" } else { "s" },
            chunk.len(),
            if chunk.len() == 1 { "" } else { "s" },
            first.id,
            first.clean_ids.len()
        ),
        cost: (chunk.len() * layers) as i64,
        stage: 0,
    }
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
                args: TaskArgs::Generate(args),
                description: format!(
                    "{} generation check: {} pair(s) × {per_pair} continuations of {} tokens",
                    exp.name,
                    pairs.len(),
                    g.tokens
                ),
                cost: (pairs.len() * per_pair) as i64,
                stage: 0,
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
    use patchsweep_engine::debias::{debias_pairs, split_pairs};
    if parsed.spec.debias.is_empty() {
        return Ok(Vec::new());
    }
    let m = &parsed.spec.metric;
    let pairs = debias_pairs(
        prepared.pairs.clone(),
        &prepared.specs,
        &m.positive,
        &m.negative,
    )?;
    parsed
        .spec
        .debias
        .iter()
        .map(|cfg| Ok((cfg.name.clone(), split_pairs(&pairs, &cfg.split)?)))
        .collect()
}

/// Debias runs after every patch task: one stage after the last selection.
fn debias_stage(parsed: &ParsedSpec) -> u32 {
    selection_stages(&parsed.spec.experiments)
        .map(|s| s.values().copied().max().unwrap_or(0) + 1)
        .unwrap_or(1)
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
            args: TaskArgs::Debias(args),
            description: format!(
                "debias {}: {} intervention(s); split {}",
                cfg.name,
                cfg.interventions.len(),
                split.summary()
            ),
            cost: 0,
            stage: debias_stage(parsed),
        });
    }
    Ok((tasks, members))
}
