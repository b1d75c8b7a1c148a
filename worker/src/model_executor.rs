//! The real executor: loads the sweep's model (one at a time, freeing the previous one),
//! prepares each sweep once (parse, tokenize, check against the model) and computes
//! prepare and patch tasks (a logit-lens experiment's too) with the engine (debias and
//! generate and benchmark tasks have files of their own).

use std::collections::HashMap;
use std::sync::Arc;

use patchsweep_api::plan;
use patchsweep_api::spec::{ParsedSpec, Prepared, SweepSpec};
use patchsweep_api::{
    EffectRow, HeldSweep, LeasedTask, PairRow, PatchTask, PreparedSweep, TaskArgs, TaskOutput,
};
use patchsweep_engine::experiment::{
    cpu_rows, Baseline, Effect, Engine, Experiment, Method, PairInput,
};
use patchsweep_model::{device_memory, load, LoadOptions, LoadedModel, ModelSpec};

use crate::counters::WorkerCounters;
use crate::executor::{Executor, TaskError, TaskProgress};
use crate::faults::Faults;
use crate::memory_budget;

/// A sweep as this worker prepared it.
pub struct SweepState {
    /// The digest of the spec text it was prepared from.
    pub spec_digest: String,
    pub parsed: ParsedSpec,
    pub prepared: Prepared,
    index: HashMap<String, usize>,
}

impl SweepState {
    /// The prepared pairs of these ids, in this order.
    pub(crate) fn pairs_by_id(&self, ids: &[String]) -> Result<Vec<PairInput>, TaskError> {
        ids.iter()
            .map(|id| {
                self.index
                    .get(id)
                    .map(|&i| self.prepared.pairs[i].clone())
                    .ok_or_else(|| {
                        TaskError::permanent(format!(
                            "pair `{id}` is not in the sweep's dataset as this worker \
                             tokenizes it (another tokenizer or dataset version?)"
                        ))
                    })
            })
            .collect()
    }

    fn new(spec_digest: String, parsed: ParsedSpec, prepared: Prepared) -> Self {
        let index = prepared
            .pairs
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        Self {
            spec_digest,
            parsed,
            prepared,
            index,
        }
    }
}

/// How many prepared sweeps a worker keeps.
const SWEEPS_KEPT: usize = 8;

pub struct ModelExecutor {
    /// Overrides the spec's device (the worker knows its GPU).
    device: Option<String>,
    loaded: Option<(String, Arc<LoadedModel>)>,
    sweeps: HashMap<i64, Arc<SweepState>>,
    faults: Faults,
    counters: Arc<WorkerCounters>,
    /// The most memory one task may need (`None`: no cap); see [`crate::memory_budget`].
    max_task_memory: Option<u64>,
    /// The folder local models must lie in (`None`: anywhere); see [`crate::model_root`].
    model_root: Option<std::path::PathBuf>,
}

impl ModelExecutor {
    pub fn new(device: Option<String>, faults: Faults) -> Self {
        Self {
            device,
            loaded: None,
            sweeps: HashMap::new(),
            faults,
            counters: Arc::default(),
            max_task_memory: None,
            model_root: None,
        }
    }

    /// Opens local models only under `root` (`--model-root`).
    pub fn with_model_root(mut self, root: Option<std::path::PathBuf>) -> Self {
        self.model_root = root;
        self
    }

    /// Refuses tasks whose memory estimate exceeds `bytes` (`None`: no cap).
    pub fn with_max_task_memory(mut self, bytes: Option<u64>) -> Self {
        self.max_task_memory = bytes;
        self
    }

    /// Reports model loads into `counters` (the worker's metrics).
    pub fn with_counters(mut self, counters: Arc<WorkerCounters>) -> Self {
        self.counters = counters;
        self
    }

    /// The model of `spec`, loading it (and freeing the one held) when it differs.
    pub fn model_for(&mut self, spec: &SweepSpec) -> Result<Arc<LoadedModel>, TaskError> {
        let device = self.device.clone().unwrap_or_else(|| spec.device.clone());
        let key = format!("{}|{device}|{}", spec.model, spec.dtype);
        if let Some((k, m)) = &self.loaded {
            if *k == key {
                return Ok(m.clone());
            }
        }
        self.loaded = None;
        self.sweeps.clear();
        let model_spec: ModelSpec = spec.model.parse().map_err(TaskError::permanent)?;
        crate::model_root::check(&model_spec, self.model_root.as_deref())
            .map_err(TaskError::permanent)?;
        let opts = LoadOptions::parse(&device, &spec.dtype).map_err(TaskError::permanent)?;
        let started = std::time::Instant::now();
        // Loading can fail on this machine only (a missing file): let another worker try.
        let model = Arc::new(
            load(&model_spec, &opts)
                .map_err(|e| TaskError::transient(format!("loading model {model_spec}: {e}")))?,
        );
        let seconds = started.elapsed().as_secs_f64();
        self.counters.set_model_load_seconds(seconds);
        tracing::info!(model = %model_spec, %device, seconds, "model loaded");
        self.loaded = Some((key, model.clone()));
        Ok(model)
    }

    /// Takes a sweep its caller already parsed and prepared against this executor's model
    /// (the embedded `run`) from the spec text of digest `spec_digest`, so its tasks
    /// neither carry nor parse the spec, nor read the dataset again.
    pub fn adopt(
        &mut self,
        sweep_id: i64,
        spec_digest: String,
        parsed: ParsedSpec,
        prepared: Prepared,
    ) {
        self.sweeps.insert(
            sweep_id,
            Arc::new(SweepState::new(spec_digest, parsed, prepared)),
        );
    }

    /// The sweep of `task`, parsed and prepared against the model once per sweep: a sweep
    /// held under the task's spec digest is reused (its tasks come without spec text);
    /// otherwise the task's spec text is parsed and prepared.
    pub fn sweep(
        &mut self,
        task: &LeasedTask,
    ) -> Result<(Arc<LoadedModel>, Arc<SweepState>), TaskError> {
        if let Some(s) = self.sweeps.get(&task.sweep_id).cloned() {
            if s.spec_digest == task.spec_digest {
                return Ok((self.model_for(&s.parsed.spec)?, s));
            }
        }
        let Some(text) = &task.spec_toml else {
            // Sent without its text although this worker does not hold it (it named the
            // sweep, then let it go): the next lease, which no longer names it, brings it.
            return Err(TaskError::transient(format!(
                "sweep {}'s spec text was not sent and this worker does not hold the sweep \
                 (spec digest {})",
                task.sweep_id, task.spec_digest
            )));
        };
        let parsed = SweepSpec::parse(text, &format!("sweep {}", task.sweep_id))
            .map_err(TaskError::permanent)?;
        let model = self.model_for(&parsed.spec)?;
        let prepared = parsed.prepare(&model).map_err(TaskError::permanent)?;
        if self.sweeps.len() >= SWEEPS_KEPT {
            self.sweeps.clear();
        }
        let state = Arc::new(SweepState::new(task.spec_digest.clone(), parsed, prepared));
        self.sweeps.insert(task.sweep_id, state.clone());
        Ok((model, state))
    }

    pub(crate) fn engine<'m>(model: &'m LoadedModel, state: &SweepState) -> Engine<'m> {
        let mut engine = Engine::new(&model.model);
        engine.max_batch = state.parsed.spec.batch_size();
        engine.effect = state.parsed.spec.metric.effect;
        engine
    }

    fn prepare(&mut self, task: &LeasedTask) -> Result<TaskOutput, TaskError> {
        let (model, state) = self.sweep(task)?;
        let engine = Self::engine(&model, &state);
        memory_budget::check(
            "preparing the sweep (the baselines of every pair)",
            &engine.baselines_memory(&state.prepared.pairs),
            self.max_task_memory,
        )?;
        let engine_err = |e: patchsweep_engine::EngineError| TaskError::transient(e);
        let baselines = engine
            .baselines(&state.prepared.pairs)
            .map_err(engine_err)?;
        check_finite_baselines(&state.prepared, &baselines)?;
        let mut tasks =
            plan::plan(&engine, &state.parsed, &state.prepared, &baselines).map_err(engine_err)?;
        let (debias_tasks, splits) =
            plan::plan_debias(&state.parsed, &state.prepared).map_err(TaskError::permanent)?;
        tasks.extend(debias_tasks);
        Ok(TaskOutput::Prepare(PreparedSweep {
            pairs: pair_rows(&model, &state.prepared, &baselines),
            dropped: state
                .prepared
                .dropped
                .counts
                .iter()
                .map(|(k, v)| (k.clone(), *v as i64))
                .collect(),
            dropped_pairs: state.prepared.dropped.pairs.clone(),
            experiments: state
                .parsed
                .experiments
                .iter()
                .map(|e| {
                    (
                        e.name.clone(),
                        e.method.name().to_string(),
                        e.direction.name().to_string(),
                    )
                })
                .collect(),
            tasks,
            splits: splits
                .into_iter()
                .map(|m| (m.debias, m.pair_id, m.part.to_string()))
                .collect(),
        }))
    }

    fn patch(
        &mut self,
        task: &LeasedTask,
        args: &PatchTask,
        progress: &TaskProgress,
    ) -> Result<TaskOutput, TaskError> {
        self.faults.before_patch(args)?;
        let (model, state) = self.sweep(task)?;
        let exp = state
            .parsed
            .experiments
            .iter()
            .find(|e| e.name == args.experiment)
            .ok_or_else(|| {
                TaskError::permanent(format!("the spec has no experiment `{}`", args.experiment))
            })?;
        if args.baselines.len() != args.pairs.len() {
            return Err(TaskError::permanent(format!(
                "patch task has {} pairs but {} baselines",
                args.pairs.len(),
                args.baselines.len()
            )));
        }
        let pairs = state.pairs_by_id(&args.pairs)?;
        let mut engine = Self::engine(&model, &state);
        if exp.method == Method::LogitLens {
            return crate::lens_task::run(&engine, exp, &pairs, self.max_task_memory);
        }
        let narrowed = plan::task_experiment(exp, args).map_err(TaskError::permanent)?;
        let rows = self.planned_batch(&model, &state, &mut engine, &narrowed, &pairs);
        engine.max_batch = rows;
        memory_budget::check(
            &format!("this task of experiment `{}`", exp.name),
            &engine.run_memory(&narrowed, &pairs),
            self.max_task_memory,
        )?;
        let baselines: Vec<Baseline> = args.baselines();
        let cells: usize = engine
            .cells(&narrowed, &pairs)
            .map_err(TaskError::permanent)?
            .iter()
            .map(Vec::len)
            .sum();
        let effects = engine
            .run(
                &narrowed,
                &pairs,
                &baselines,
                &mut progress.counter(cells as u64),
            )
            .map_err(TaskError::transient)?;
        self.note_device_peak(&model);
        Ok(TaskOutput::Patch(
            effects
                .iter()
                .map(|e| effect_row(&exp.name, &pairs, e))
                .collect(),
        ))
    }
}

impl ModelExecutor {
    /// Rows per forward for a patch task (see [`memory_budget::plan_batch`]): the spec's
    /// `batch_size`, else the largest that fits the device's free memory now, else the default
    /// (on the CPU, enough rows for about a thousand tokens: [`cpu_rows`]).
    fn planned_batch(
        &self,
        model: &LoadedModel,
        state: &SweepState,
        engine: &mut Engine<'_>,
        exp: &Experiment,
        pairs: &[PairInput],
    ) -> usize {
        let spec = &state.parsed.spec;
        let device = model.model.device();
        let free = device_memory::free_and_total(device).map(|(free, _)| free);
        let default = if device.is_cpu() {
            let longest = pairs.iter().map(|p| p.clean_ids.len()).max().unwrap_or(1);
            cpu_rows(longest, spec.batch_size())
        } else {
            spec.batch_size()
        };
        let rows = memory_budget::plan_batch(
            spec.fixed_batch_size,
            default,
            free,
            self.max_task_memory,
            |rows| {
                engine.max_batch = rows;
                engine.run_memory(exp, pairs).bytes
            },
        );
        if spec.fixed_batch_size.is_none() && free.is_some() {
            tracing::info!(
                rows,
                free_bytes = free,
                "planned the rows per forward from free device memory"
            );
        }
        rows
    }

    /// Records the most device memory the process has held so far (CUDA only).
    fn note_device_peak(&self, model: &LoadedModel) {
        if let Some(peak) = device_memory::peak_bytes(model.model.device()) {
            self.counters.note_device_memory_peak(peak);
            tracing::info!(peak_bytes = peak, "device memory peak so far");
        }
    }
}

impl Executor for ModelExecutor {
    fn execute(
        &mut self,
        task: &LeasedTask,
        progress: &TaskProgress,
    ) -> Result<TaskOutput, TaskError> {
        match &task.args {
            TaskArgs::Prepare(_) => self.prepare(task),
            TaskArgs::Patch(args) => self.patch(task, args, progress),
            TaskArgs::Debias(args) => crate::debias_task::run(self, task, args, progress),
            TaskArgs::Generate(args) => crate::generate_task::run(self, task, args),
            TaskArgs::Benchmark(args) => crate::benchmark_task::run(self, task, args, progress),
        }
    }

    fn models(&self) -> Vec<String> {
        self.loaded
            .as_ref()
            .map(|(_, m)| vec![m.spec.to_string()])
            .unwrap_or_default()
    }

    fn held_sweeps(&self) -> Vec<HeldSweep> {
        let mut held: Vec<HeldSweep> = self
            .sweeps
            .iter()
            .map(|(&sweep_id, s)| HeldSweep {
                sweep_id,
                spec_digest: s.spec_digest.clone(),
            })
            .collect();
        held.sort_by_key(|h| h.sweep_id);
        held
    }
}

/// A model that outputs NaN or infinities (broken weights, an overflow in half precision)
/// gives metrics nothing can be measured against: the prepare task fails for good, naming
/// the first such pair, instead of handing the coordinator results it must refuse.
fn check_finite_baselines(p: &Prepared, baselines: &[Baseline]) -> Result<(), TaskError> {
    let bad = p
        .pairs
        .iter()
        .zip(baselines)
        .filter(|(_, b)| !(b.clean.is_finite() && b.corrupt.is_finite()))
        .collect::<Vec<_>>();
    match bad.first() {
        None => Ok(()),
        Some((pair, b)) => Err(TaskError::permanent(format!(
            "the model's metric is not finite on {} of {} pairs (first: pair {:?}, clean {}, \
             corrupted {}): the model outputs NaN or infinite logits; check its weights and dtype",
            bad.len(),
            p.pairs.len(),
            pair.id,
            b.clean,
            b.corrupt
        ))),
    }
}

/// The stored form of the prepared pairs, with their baselines and decoded tokens.
pub fn pair_rows(model: &LoadedModel, p: &Prepared, baselines: &[Baseline]) -> Vec<PairRow> {
    let text = |ids: &[u32]| {
        ids.iter()
            .map(|&i| model.tokenizer.token_text(i))
            .collect::<Vec<_>>()
    };
    p.pairs
        .iter()
        .zip(&p.specs)
        .zip(baselines)
        .zip(&p.toward_stereotype)
        .map(|(((pair, spec), b), &toward_stereotype)| PairRow {
            pair_id: pair.id.clone(),
            template: spec.template.clone(),
            clean_prompt: spec.clean.clone(),
            corrupt_prompt: spec.corrupt.clone(),
            clean_ids: pair.clean_ids.clone(),
            corrupt_ids: pair.corrupt_ids.clone(),
            labels: spec.labels.clone(),
            clean_metric: b.clean as f64,
            corrupt_metric: b.corrupt as f64,
            toward_stereotype,
            position_labels: pair.position_labels.clone(),
            clean_tokens: text(&pair.clean_ids),
            corrupt_tokens: text(&pair.corrupt_ids),
        })
        .collect()
}

fn effect_row(experiment: &str, pairs: &[PairInput], e: &Effect) -> EffectRow {
    let c = |x: Option<usize>| x.map(|v| v as u32);
    EffectRow {
        experiment: experiment.to_string(),
        component: e.key.component.clone(),
        layer: c(e.key.layer),
        head: c(e.key.head),
        position: c(e.key.position),
        neuron: c(e.key.neuron),
        pair_id: pairs[e.pair].id.clone(),
        value: e.value,
        effect: e.effect,
        normalized: e.normalized,
    }
}
