//! The sweep spec: TOML with unknown fields refused, validated completely before any
//! compute, every error naming its field.
//!
//! Validation has two steps: [`SweepSpec::parse`] checks everything that needs no model
//! (syntax, names, ranges, the dataset source, an inlined JSONL dataset: a spec never makes
//! its reader open a path, see [`crate::spec_files`]); [`SweepSpec::prepare`] checks the rest
//! against the loaded model's config and tokenizer (layers, heads, answer words being single
//! tokens, position labels, prompts within the model's context) and returns the tokenized
//! pairs and the engine's experiments. Nothing is computed or stored until both have passed.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use patchsweep_engine::dataset::{
    self, DatasetError, Dropped, HouseholdOptions, PairSpec, ProfessionsOptions, TemplatesDataset,
    TraitsOptions,
};
use patchsweep_engine::experiment::{Direction, Experiment, Method, PairInput};
use patchsweep_engine::grid::{Component, Grid, PositionRef, Positions};
use patchsweep_engine::metric::{EffectMode, Metric, MetricKind, Reduce};
use patchsweep_engine::stereotype::{
    check_stereotyped_answer, oriented_words, stereotyped_side, toward_stereotype, Orient,
};
use patchsweep_model::{LoadedModel, Tokenizer};
use serde::Deserialize;

mod benchmark;
mod forms;
mod generate;
mod lens;
mod pathways;
pub use benchmark::{BenchmarkSpec, LoadedBenchmark, TokenizedBenchmark};
pub use forms::{HeadsSpec, LayersSpec, PositionsSpec};
pub use generate::GenerateSpec;
pub use pathways::{selection_stages, PathwaySpec, SelectSpec, SiteSpec};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("spec {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("spec field `{field}`: {reason}")]
    Field { field: String, reason: String },
}

fn field(field: impl Into<String>, reason: impl std::fmt::Display) -> SpecError {
    SpecError::Field {
        field: field.into(),
        reason: reason.to_string(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    pub name: String,
    /// Model spec: `gguf:PATH`, `hf:ORG/NAME[@REV]` or a folder.
    pub model: String,
    /// Prepend BOS; default: the model tokenizer's own behaviour.
    #[serde(default)]
    pub prepend_bos: Option<bool>,
    #[serde(default = "default_device")]
    pub device: String,
    #[serde(default = "default_dtype")]
    pub dtype: String,
    /// Rows per batched forward; unset, a GPU worker plans it from its free memory and a CPU
    /// worker from its longest prompt (`patchsweep_engine::experiment::cpu_rows`: about a
    /// thousand tokens, at least [`DEFAULT_BATCH_SIZE`] rows; see [`SweepSpec::batch_size`]).
    #[serde(default, rename = "batch_size")]
    pub fixed_batch_size: Option<usize>,
    pub metric: MetricSpec,
    pub dataset: DatasetSpec,
    #[serde(rename = "experiment")]
    pub experiments: Vec<ExperimentSpec>,
    /// How the sweep is cut into tasks.
    #[serde(default)]
    pub tasks: TaskSizing,
    /// Debiasing evaluations on the components an experiment found; they run once every
    /// patching task of the sweep has ended.
    #[serde(default, rename = "debias")]
    pub debias: Vec<patchsweep_engine::debias::DebiasConfig>,
    /// Bias benchmarks scored on the model and after every debias intervention.
    #[serde(default, rename = "benchmark")]
    pub benchmarks: Vec<BenchmarkSpec>,
}

/// How a sweep is cut into tasks: pairs of one token length × a range of layers. Smaller
/// tasks spread better over workers and lose less to a dead worker; larger ones batch
/// better. Aim for seconds to minutes per task on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSizing {
    /// Pairs per task (pairs of one token length only).
    #[serde(default = "default_pairs_per_task")]
    pub pairs_per_task: usize,
    /// Layers per activation-patching task; 0: all layers in one task. Attribution tasks
    /// always take every layer (one backward pass gives them all).
    #[serde(default)]
    pub layers_per_task: usize,
}

impl Default for TaskSizing {
    fn default() -> Self {
        Self {
            pairs_per_task: default_pairs_per_task(),
            layers_per_task: 0,
        }
    }
}

fn default_pairs_per_task() -> usize {
    16
}

fn default_device() -> String {
    "cpu".into()
}
fn default_dtype() -> String {
    "f32".into()
}
/// Rows per batched forward when the spec fixes none and no memory plan applies.
pub const DEFAULT_BATCH_SIZE: usize = 64;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    pub kind: MetricKind,
    pub positive: Vec<String>,
    pub negative: Vec<String>,
    #[serde(default)]
    pub reduce: Reduce,
    /// `answers` (as given) or `stereotype` (per pair, the anti-stereotypical answer on the
    /// positive side).
    #[serde(default)]
    pub orient: Orient,
    /// `difference` (`value - base`) or `relative` (`value / base - 1`, `odds_ratio` only).
    #[serde(default)]
    pub effect: EffectMode,
    /// Pairs whose `|clean - corrupt|` is below this are weak: left out of the normalized
    /// aggregates ([`MetricSpec::min_span`] gives the default).
    pub min_span: Option<f64>,
}

/// The default `min_span`, in the metric's units: 0.5 nats of logit (or log-probability)
/// difference, a factor e^0.5 ≈ 1.65 in the answers' odds between the prompts, which is
/// also about 0.4 nats around an odds ratio of 1. On SmolLM2 pairs below 0.25 gave
/// per-pair normalized effects from -7 to +7; means over pairs above 0.5 were stable.
pub const DEFAULT_MIN_SPAN: f64 = 0.5;

impl MetricSpec {
    /// The weak-pair threshold: the spec's `min_span` or [`DEFAULT_MIN_SPAN`].
    pub fn min_span(&self) -> f64 {
        self.min_span.unwrap_or(DEFAULT_MIN_SPAN)
    }

    fn validate(&self) -> Result<(), SpecError> {
        if self.positive.is_empty() || self.negative.is_empty() {
            return Err(field(
                "metric",
                "positive and negative need at least one word each",
            ));
        }
        if let Some(m) = self.min_span {
            if !(m.is_finite() && m >= 0.0) {
                return Err(field(
                    "metric.min_span",
                    format!("{m} is not a finite number >= 0"),
                ));
            }
        }
        if self.effect == EffectMode::Relative && self.kind != MetricKind::OddsRatio {
            return Err(field(
                "metric.effect",
                format!(
                    "\"relative\" (value / base - 1) needs a positive metric: use kind = \"odds_ratio\", \
                     not {:?} (a difference of logits changes sign)",
                    self.kind
                ),
            ));
        }
        Ok(())
    }
}

/// Exactly one source: inline `pairs`, a `builtin` dataset, a `jsonl` file or `templates`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    pub pairs: Option<Vec<InlinePair>>,
    /// `professions`, `household` (household roles, the paper's second form of gender bias)
    /// or `traits` (adjective/trait associations, this project's addition).
    pub builtin: Option<String>,
    pub professions: Option<ProfessionsOptions>,
    pub household: Option<HouseholdOptions>,
    pub traits: Option<TraitsOptions>,
    /// A JSONL file as the user names it; the client replaces it by `jsonl_inline`
    /// ([`crate::spec_files::inline_files`]) and a path left here is refused.
    pub jsonl: Option<PathBuf>,
    /// A JSONL file's content, inlined by the client that read it.
    pub jsonl_inline: Option<InlineFile>,
    pub templates: Option<TemplatesDataset>,
    /// Keep only the first `limit` pairs.
    pub limit: Option<usize>,
}

/// A file's name (for messages) and its content, as the submitting client read it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InlineFile {
    pub name: String,
    pub text: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InlinePair {
    pub clean: String,
    pub corrupt: String,
    pub id: Option<String>,
    pub positive: Option<Vec<String>>,
    pub negative: Option<Vec<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    pub name: String,
    pub method: Method,
    #[serde(default = "default_direction")]
    pub direction: Direction,
    #[serde(default)]
    pub components: Vec<String>,
    #[serde(default = "all_layers")]
    pub layers: LayersSpec,
    #[serde(default = "all_positions")]
    pub positions: PositionsSpec,
    pub heads: Option<Vec<usize>>,
    pub neurons: Option<Vec<usize>>,
    #[serde(default, rename = "pathway")]
    pub pathways: Vec<PathwaySpec>,
    /// The generation check: greedy continuations of the first pairs.
    pub generate: Option<GenerateSpec>,
}

fn default_direction() -> Direction {
    Direction::Denoise
}
fn all_layers() -> LayersSpec {
    LayersSpec::Text("all".into())
}
fn all_positions() -> PositionsSpec {
    PositionsSpec::Text("all".into())
}

/// A spec whose model-independent parts are checked.
#[derive(Debug, Clone)]
pub struct ParsedSpec {
    pub spec: SweepSpec,
    pub text: String,
    pub experiments: Vec<Experiment>,
    /// `None` until [`ParsedSpec::prepare`] when the dataset needs the tokenizer to be built.
    pub pairs: Option<Vec<PairSpec>>,
    /// The `[[benchmark]]` sections with their pairs, in spec order.
    pub benchmarks: Vec<LoadedBenchmark>,
}

/// Everything a sweep needs, checked against the model.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub pairs: Vec<PairInput>,
    /// The dataset pairs kept, aligned with `pairs` (prompts, template, labels).
    pub specs: Vec<PairSpec>,
    /// Per pair: +1 when its metric grows toward its stereotyped answer, -1 toward the
    /// anti-stereotypical one, 0 without a stereotyped side.
    pub toward_stereotype: Vec<i8>,
    pub dropped: Dropped,
    /// The benchmarks' pairs tokenized, aligned with [`ParsedSpec::benchmarks`].
    pub benchmarks: Vec<TokenizedBenchmark>,
}

fn parse_layers(spec: &LayersSpec, f: &str) -> Result<Option<Vec<usize>>, SpecError> {
    match spec {
        LayersSpec::List(v) if v.is_empty() => Err(field(f, "an empty list of layers")),
        LayersSpec::List(v) => Ok(Some(v.clone())),
        LayersSpec::Text(t) if t == "all" => Ok(None),
        LayersSpec::Text(t) => {
            let bad = || {
                field(
                    f,
                    format!("{t:?} is not \"all\", \"A..B\", \"A..=B\" or a list"),
                )
            };
            let (a, b, inclusive) = match t.split_once("..=") {
                Some((a, b)) => (a, b, true),
                None => t
                    .split_once("..")
                    .map(|(a, b)| (a, b, false))
                    .ok_or_else(bad)?,
            };
            let a: usize = a.trim().parse().map_err(|_| bad())?;
            let b: usize = b.trim().parse().map_err(|_| bad())?;
            let end = if inclusive { b + 1 } else { b };
            if end <= a {
                return Err(field(f, format!("{t:?} is an empty range")));
            }
            Ok(Some((a..end).collect()))
        }
    }
}

fn parse_positions(spec: &PositionsSpec) -> Positions {
    match spec {
        PositionsSpec::Text(t) if t == "all" => Positions::All,
        PositionsSpec::Text(t) if t == "joint" => Positions::Joint,
        PositionsSpec::Text(t) => Positions::List(vec![PositionRef::Label(t.clone())]),
        PositionsSpec::List(v) => Positions::List(v.clone()),
    }
}

fn component(name: &str, f: &str) -> Result<Component, SpecError> {
    name.parse().map_err(|e| field(f, e))
}

impl ExperimentSpec {
    fn to_experiment(&self, i: usize) -> Result<Experiment, SpecError> {
        let at = |k: &str| format!("experiment[{i}].{k}");
        if self.name.trim().is_empty() {
            return Err(field(at("name"), "must not be empty"));
        }
        if self.method == Method::LogitLens {
            lens::check(self, &at)?;
        } else if self.components.is_empty() && self.pathways.is_empty() {
            return Err(field(
                at("components"),
                "give at least one component or a pathway",
            ));
        }
        let components = self
            .components
            .iter()
            .enumerate()
            .map(|(k, c)| component(c, &at(&format!("components[{k}]"))))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(g) = &self.generate {
            g.validate(&at("generate"))?;
        }
        // A lens reads the last position whatever `positions` says ("all" or "last").
        let positions = match self.method {
            Method::LogitLens => Positions::All,
            _ => parse_positions(&self.positions),
        };
        if components.contains(&Component::MlpNeuron) && positions == Positions::All {
            return Err(field(
                at("positions"),
                "mlp_neuron needs chosen positions (a list or a label) or \"joint\"",
            ));
        }
        let (pathways, selections) = pathways::pathways(self, &at)?;
        if self.generate.is_some() && !selections.is_empty() {
            return Err(field(
                at("generate"),
                "the generation check patches listed pathways only; a pathway with `select` \
                 is chosen after this experiment's generation runs — put `generate` on an \
                 experiment whose pathways list their sites",
            ));
        }
        Ok(Experiment {
            name: self.name.clone(),
            method: self.method,
            direction: self.direction,
            grid: Grid {
                components,
                layers: parse_layers(&self.layers, &at("layers"))?,
                positions,
                heads: self.heads.clone(),
                neurons: self.neurons.clone(),
                pathways,
                selections,
            },
        })
    }
}

/// The `builtin` datasets.
const BUILTIN_DATASETS: &[&str] = &["professions", "household", "traits"];

impl DatasetSpec {
    /// The pairs; `Ok(None)` when the dataset options need the tokenizer and `tok` is absent.
    fn load(&self, tok: Option<&Tokenizer>) -> Result<Option<Vec<PairSpec>>, SpecError> {
        let sources = [
            self.pairs.is_some(),
            self.builtin.is_some(),
            self.jsonl.is_some() || self.jsonl_inline.is_some(),
            self.templates.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(field(
                "dataset",
                "give exactly one of pairs, builtin, jsonl, templates",
            ));
        }
        // An unknown name first: the options tables below can only be judged against a
        // known one.
        if let Some(other) = self
            .builtin
            .as_deref()
            .filter(|b| !BUILTIN_DATASETS.contains(b))
        {
            return Err(field(
                "dataset.builtin",
                format!(
                    "unknown dataset {other:?}; built in: {}",
                    BUILTIN_DATASETS.join(", ")
                ),
            ));
        }
        for (name, given) in [
            ("professions", self.professions.is_some()),
            ("household", self.household.is_some()),
            ("traits", self.traits.is_some()),
        ] {
            if given && self.builtin.as_deref() != Some(name) {
                return Err(field(
                    format!("dataset.{name}"),
                    format!("options for the {name} dataset need builtin = \"{name}\""),
                ));
            }
        }
        let mut pairs = if let Some(inline) = &self.pairs {
            if inline.is_empty() {
                return Err(field("dataset.pairs", "no pairs given"));
            }
            inline
                .iter()
                .enumerate()
                .map(|(i, p)| PairSpec {
                    id: p.id.clone().unwrap_or_else(|| format!("pair{i}")),
                    template: None,
                    clean: p.clean.clone(),
                    corrupt: p.corrupt.clone(),
                    positive: p.positive.clone(),
                    negative: p.negative.clone(),
                    labels: p.labels.clone(),
                    slots: Vec::new(),
                })
                .collect()
        } else if let Some(name) = &self.builtin {
            let built = match name.as_str() {
                "professions" => {
                    dataset::professions_with(&self.professions.clone().unwrap_or_default(), tok)
                }
                "household" => {
                    dataset::household_with(&self.household.clone().unwrap_or_default(), tok)
                }
                "traits" => dataset::traits_with(&self.traits.clone().unwrap_or_default(), tok),
                other => unreachable!("{other:?} was checked against BUILTIN_DATASETS"),
            };
            match built {
                Ok(p) => p,
                Err(DatasetError::NeedsTokenizer { .. }) if tok.is_none() => return Ok(None),
                Err(e) => return Err(field(format!("dataset.{name}"), e)),
            }
        } else if let Some(path) = &self.jsonl {
            return Err(field(
                "dataset.jsonl",
                format!(
                    "names the file {} that was not sent with the spec: `patchsweep submit` \
                     and `run` read dataset files and send their content; a coordinator or \
                     worker never opens a path from a spec (a sweep stored by an earlier \
                     release names its file: submit it again to send the content)",
                    path.display()
                ),
            ));
        } else if let Some(file) = &self.jsonl_inline {
            dataset::jsonl::parse_jsonl(&file.text, std::path::Path::new(&file.name))
                .map_err(|e| field("dataset.jsonl", e))?
        } else {
            let t = self.templates.as_ref().expect("one source is set");
            dataset::from_templates(t).map_err(|e| field("dataset.templates", e))?
        };
        let mut seen = HashSet::new();
        if let Some(dup) = pairs.iter().find(|p| !seen.insert(p.id.clone())) {
            return Err(field(
                "dataset",
                format!("pair id {:?} appears twice", dup.id),
            ));
        }
        if let Some(n) = self.limit {
            pairs.truncate(n);
        }
        Ok(Some(pairs))
    }
}

impl SweepSpec {
    /// Rows per batched forward: the spec's `batch_size`, else [`DEFAULT_BATCH_SIZE`] (a GPU
    /// worker plans its own when the spec fixes none).
    pub fn batch_size(&self) -> usize {
        self.fixed_batch_size.unwrap_or(DEFAULT_BATCH_SIZE)
    }

    /// Parses and checks everything that needs no model.
    pub fn parse(text: &str, origin: &str) -> Result<ParsedSpec, SpecError> {
        let spec: SweepSpec = toml::from_str(text).map_err(|e| SpecError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        if spec.name.trim().is_empty() {
            return Err(field("name", "must not be empty"));
        }
        spec.model
            .parse::<patchsweep_model::ModelSpec>()
            .map_err(|e| field("model", e))?;
        patchsweep_model::LoadOptions::check(&spec.device, &spec.dtype)
            .map_err(|e| field("device", e))?;
        if spec.tasks.pairs_per_task == 0 {
            return Err(field("tasks.pairs_per_task", "must be at least 1"));
        }
        if spec.fixed_batch_size == Some(0) {
            return Err(field("batch_size", "must be at least 1"));
        }
        spec.metric.validate()?;
        if spec.experiments.is_empty() {
            return Err(field("experiment", "give at least one [[experiment]]"));
        }
        let mut names = HashSet::new();
        let mut experiments = Vec::new();
        for (i, e) in spec.experiments.iter().enumerate() {
            if !names.insert(e.name.clone()) {
                return Err(field(
                    format!("experiment[{i}].name"),
                    format!("{:?} is used twice", e.name),
                ));
            }
            experiments.push(e.to_experiment(i)?);
        }
        selection_stages(&spec.experiments)?;
        let mut debias_names = HashSet::new();
        for (i, d) in spec.debias.iter().enumerate() {
            d.validate().map_err(|e| field(format!("debias[{i}]"), e))?;
            if !debias_names.insert(d.name.clone()) {
                return Err(field(
                    format!("debias[{i}].name"),
                    format!("{:?} is used twice", d.name),
                ));
            }
            if !names.contains(&d.experiment) {
                return Err(field(
                    format!("debias[{i}].experiment"),
                    format!("no experiment is named {:?}", d.experiment),
                ));
            }
            if experiments
                .iter()
                .any(|e: &Experiment| e.name == d.experiment && e.method == Method::LogitLens)
            {
                return Err(field(
                    format!("debias[{i}].experiment"),
                    format!(
                        "{:?} is a logit_lens experiment: it measures no component effects \
                         to select from; name a patching experiment",
                        d.experiment
                    ),
                ));
            }
        }
        let pairs = spec.dataset.load(None)?;
        let benchmarks = benchmark::load_all(&spec.benchmarks)?;
        Ok(ParsedSpec {
            spec,
            text: text.to_string(),
            experiments,
            pairs,
            benchmarks,
        })
    }
}

impl ParsedSpec {
    /// Checks the spec against the model and tokenizes the pairs (drops are counted by reason).
    pub fn prepare(&self, model: &LoadedModel) -> Result<Prepared, SpecError> {
        let tok = &model.tokenizer;
        let m = &self.spec.metric;
        let base = Metric::from_words(m.kind, m.reduce, &m.positive, &m.negative, tok)
            .map_err(|e| field("metric", e))?;
        let built;
        let source = match &self.pairs {
            Some(p) => p,
            None => {
                built = self.spec.dataset.load(Some(tok))?.unwrap_or_default();
                &built
            }
        };
        let (tokenized, dropped) = dataset::tokenize_pairs(source, tok, self.spec.prepend_bos)
            .map_err(|e| field("dataset", e))?;
        if tokenized.is_empty() {
            return Err(field(
                "dataset",
                format!(
                    "no pair is left after tokenization (dropped: {:?})",
                    dropped.counts
                ),
            ));
        }
        for t in &tokenized {
            check_context(&t.spec.id, t.clean_ids.len(), &model.model.cfg)?;
        }
        let mut pairs = Vec::with_capacity(tokenized.len());
        let mut specs = Vec::with_capacity(tokenized.len());
        let mut toward = Vec::with_capacity(tokenized.len());
        for mut t in tokenized {
            let positive = t
                .spec
                .positive
                .clone()
                .unwrap_or_else(|| m.positive.clone());
            let negative = t
                .spec
                .negative
                .clone()
                .unwrap_or_else(|| m.negative.clone());
            // Oriented per pair: the pair keeps its own (swapped) words, so every later
            // reader of the spec (debias, summaries) sees the orientation used.
            let (positive, negative) =
                match oriented_words(m.orient, &t.spec.labels, &positive, &negative) {
                    Some((p, n)) => {
                        t.spec.positive = Some(p.clone());
                        t.spec.negative = Some(n.clone());
                        (p, n)
                    }
                    None => (positive, negative),
                };
            let metric = match (&t.spec.positive, &t.spec.negative) {
                (None, None) => base.clone(),
                _ => Metric::from_words(m.kind, m.reduce, &positive, &negative, tok)
                    .map_err(|e| field(format!("dataset pair {:?}", t.spec.id), e))?,
            };
            check_stereotyped_answer(&t.spec.labels, &positive, &negative)
                .map_err(|e| field(format!("dataset pair {:?}", t.spec.id), e))?;
            toward.push(toward_stereotype(stereotyped_side(
                &t.spec.labels,
                &positive,
                &negative,
            )));
            pairs.push(PairInput {
                id: t.spec.id.clone(),
                clean_ids: t.clean_ids,
                corrupt_ids: t.corrupt_ids,
                position_labels: t.position_labels,
                metric,
            });
            specs.push(t.spec);
        }
        if m.orient == Orient::Stereotype && toward.iter().all(|&t| t == 0) {
            return Err(field(
                "metric.orient",
                "\"stereotype\" orients pairs by their stereotype, but no pair has one (it \
                 needs a label stereotyped_answer naming one of the pair's answer words, as the \
                 household dataset sets, or labels stereotype = \"female\" or \"male\" with \
                 answer words that are all male on one side and all female on the other, e.g. \
                 \" he\" / \" she\")",
            ));
        }
        for (i, e) in self.experiments.iter().enumerate() {
            e.grid
                .validate(&model.model.cfg)
                .map_err(|err| field(format!("experiment[{i}] ({})", e.name), err))?;
            for p in &pairs {
                e.grid
                    .cells(&model.model.cfg, p.clean_ids.len(), &p.position_labels)
                    .map_err(|err| {
                        field(
                            format!("experiment[{i}] ({}) on pair {:?}", e.name, p.id),
                            err,
                        )
                    })?;
            }
        }
        for (i, e) in self.spec.experiments.iter().enumerate() {
            if let Some(g) = &e.generate {
                g.check_context(
                    &format!("experiment[{i}].generate"),
                    &pairs,
                    &model.model.cfg,
                )?;
            }
        }
        for (i, d) in self.spec.debias.iter().enumerate() {
            check_debias_against_model(&format!("debias[{i}]"), d, &model.model.cfg, &pairs)?;
        }
        let benchmarks = benchmark::tokenize_all(&self.benchmarks, model, self.spec.prepend_bos)?;
        Ok(Prepared {
            pairs,
            specs,
            toward_stereotype: toward,
            dropped,
            benchmarks,
        })
    }
}

/// A pair's prompts fit the model's context (the clean and corrupted prompts of a kept pair
/// have the same token count). A sliding window does not lift the limit: positions beyond
/// `max_position_embeddings` were never trained.
fn check_context(
    pair_id: &str,
    tokens: usize,
    cfg: &patchsweep_model::ModelConfig,
) -> Result<(), SpecError> {
    match cfg.max_positions {
        Some(most) if tokens > most => Err(field(
            format!("dataset pair {pair_id:?}"),
            format!(
                "its prompts have {tokens} tokens but the model takes at most {most} \
                 (max_position_embeddings); shorten the prompt"
            ),
        )),
        _ => Ok(()),
    }
}

/// A debias section's settings against the model and the pairs kept, before any compute:
/// explicit components exist, `top_k` is no larger than what the model has, and position
/// labels name positions of the pairs (a label matching nothing would select nothing).
fn check_debias_against_model(
    at: &str,
    d: &patchsweep_engine::debias::DebiasConfig,
    cfg: &patchsweep_model::ModelConfig,
    pairs: &[PairInput],
) -> Result<(), SpecError> {
    use patchsweep_engine::debias::{Target, TargetKind};
    let labels: HashSet<&str> = pairs
        .iter()
        .flat_map(|p| p.position_labels.iter().map(String::as_str))
        .chain(["last"])
        .collect();
    let known_label = |l: &str| labels.contains(l);
    let shown = || {
        let mut v: Vec<&str> = labels.iter().copied().collect();
        v.sort_unstable();
        v.join(", ")
    };
    for (j, text) in d.select.components.iter().flatten().enumerate() {
        let f = format!("{at}.select.components[{j}]");
        let t: Target = text.parse().map_err(|e| field(&f, e))?;
        if t.layer >= cfg.n_layers {
            return Err(field(
                &f,
                format!(
                    "{text:?}: layer {} does not exist (layers 0..{})",
                    t.layer, cfg.n_layers
                ),
            ));
        }
        if let (TargetKind::Head, Some(h)) = (t.kind, t.head) {
            if h >= cfg.n_heads {
                return Err(field(
                    &f,
                    format!(
                        "{text:?}: head {h} does not exist (heads 0..{})",
                        cfg.n_heads
                    ),
                ));
            }
        }
        if let Some(l) = t.position.as_deref().filter(|l| !known_label(l)) {
            return Err(field(
                &f,
                format!(
                    "{text:?}: no pair has a position labelled {l:?} (labels: {})",
                    shown()
                ),
            ));
        }
    }
    if let Some(l) = d.select.position.as_deref().filter(|l| !known_label(l)) {
        return Err(field(
            format!("{at}.select.position"),
            format!(
                "no pair has a position labelled {l:?} (labels: {})",
                shown()
            ),
        ));
    }
    if let Some(k) = d.select.top_k {
        let per_layer = match d.select.component.as_ref().map(|c| c.name()) {
            Some("head_out") => cfg.n_heads,
            _ => 1,
        };
        let max_positions = pairs.iter().map(|p| p.clean_ids.len()).max().unwrap_or(1);
        let most = cfg.n_layers * per_layer * max_positions;
        if k > most {
            return Err(field(
                format!("{at}.select.top_k"),
                format!(
                    "{k} is more than the {most} components this model can rank ({} layers × \
                     {per_layer} per layer × {max_positions} positions)",
                    cfg.n_layers
                ),
            ));
        }
    }
    Ok(())
}
