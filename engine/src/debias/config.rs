//! The `[[debias]]` configuration: which sweep experiment to select from, how to select,
//! the held-out split, and the interventions. All tables refuse unknown fields.
//!
//! ```toml
//! [[debias]]
//! name = "top-heads"
//! experiment = "heads"              # the sweep experiment whose effects select components
//! control_seed = 11                 # first seed of the matched random control sets
//! control_sets = 20                 # how many sets (0: no control)
//!
//! [debias.select]                   # top-k by |normalized effect| (noise: |1 - normalized|) …
//! component = "head_out"            # head_out | attn_out | mlp_out
//! top_k = 4
//! threshold = 0.05                  # optional: keep only |score| >= threshold
//! position = "end"                  # optional: only rows at this position label
//! # components = ["head L3H2@end", "mlp_out L2@subject"]   # … or an explicit list
//!
//! [debias.split]
//! heldout_professions = 0.3         # fraction of professions held out (default 0.3)
//! heldout_templates = 0.3           # fraction of templates held out (default 0.3)
//! seed = 7
//!
//! [[debias.intervention]]
//! kind = "ablation"                 # zero or mean ablation of the selected components
//! mode = "mean"                     # zero | mean (per position label)
//! reference = "selection"           # selection | neutral: prompts the mean is taken over
//! include_first_position = false    # mean: average over and edit position 0 too
//! positions = "component"           # component | all | a label | a list ["subject", -1]
//!
//! [[debias.intervention]]
//! kind = "steering"                 # remove the projection on the gender direction
//! positions = "all"
//! strength = "calibrated"           # calibrated (default) | a number s: x - s ((x·u) - c) u
//!
//! [[debias.intervention]]
//! kind = "finetune"                 # CDA fine-tuning of the selected weights only
//! steps = 60
//! lr = 1e-3
//! batch_size = 16
//! seed = 0
//! loss = "full_vocab"               # full_vocab | answer_set (softmax over the answers only)
//! corpus = "templates"              # templates | { text = F[, swaps = F] } | { panda = F }
//!                                   # | "hf-dataset:facebook/panda" (see super::corpus)
//! max_tokens = 64                   # corpus sentences are cut to this many tokens
//! ```

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::corpus::CorpusConfig;
use super::error::{config, Result};
use super::target::{Target, TargetKind};
use crate::grid::{Component, PositionRef};

fn default_control_seed() -> u64 {
    1
}

/// Each set repeats every intervention, so a bound keeps a typo from running for days.
const MAX_CONTROL_SETS: usize = 1000;

/// Twenty sets: enough for a mean, a 5–95% range and a percentile a reviewer can read.
fn default_control_sets() -> usize {
    20
}

/// One `[[debias]]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebiasConfig {
    /// Unique name of this debias run.
    pub name: String,
    /// The sweep experiment whose stored effects the selection reads.
    pub experiment: String,
    pub select: SelectionConfig,
    #[serde(default)]
    pub split: SplitConfig,
    /// Seed of the first matched random control set (the others take the next seeds).
    #[serde(default = "default_control_seed")]
    pub control_seed: u64,
    /// How many matched random control sets every intervention is repeated on (0: none).
    #[serde(default = "default_control_sets")]
    pub control_sets: usize,
    #[serde(default)]
    pub neutral: NeutralConfig,
    /// Also report the bias metrics on the selection split (split `selection`).
    #[serde(default)]
    pub evaluate_selection: bool,
    /// The interventions, each evaluated against the same baseline.
    #[serde(rename = "intervention")]
    pub interventions: Vec<InterventionConfig>,
}

/// How components are selected: top-k of one kind by |score|, or an explicit list.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionConfig {
    /// Component kind for top-k: `head_out`, `attn_out` or `mlp_out`.
    pub component: Option<Component>,
    pub top_k: Option<usize>,
    /// Keep only rows whose |score| is at least this.
    pub threshold: Option<f64>,
    /// Only rows at this position label (rows without a label are all-position effects).
    pub position: Option<String>,
    /// An explicit list instead: `head L3H2`, `mlp_out L2@subject`, `attn_out L4`.
    pub components: Option<Vec<String>>,
}

/// Which professions and templates are held out from selection (and from steering
/// directions, mean-ablation references and fine-tuning data); see [`super::split`].
///
/// The default holds out 30% of the professions **and** 30% of the templates, so held-out
/// pairs share neither with the selection pairs. (Before issue 17 templates were not held out
/// by default, so held-out corrupted prompts such as "The man said that" were the very strings
/// the interventions were built from.) A dataset with a single template is refused under this
/// default: set `heldout_templates = 0` to split by professions only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitConfig {
    /// Fraction of professions held out (0 = split by templates only); stratified by the
    /// professions' stereotype labels. For datasets without professions, the pairs' subjects
    /// (household activities, traits; see [`super::split::SUBJECT_LABELS`]).
    pub heldout_professions: f64,
    /// Fraction of templates held out (0 = split by professions only).
    pub heldout_templates: f64,
    pub seed: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            heldout_professions: 0.3,
            heldout_templates: 0.3,
            seed: 0,
        }
    }
}

/// The neutral text used for the capability cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NeutralConfig {
    /// Tokens per chunk of the neutral text.
    pub chunk_tokens: usize,
    /// Use at most this many chunks (`None`: all).
    pub max_chunks: Option<usize>,
}

impl Default for NeutralConfig {
    fn default() -> Self {
        Self {
            chunk_tokens: 128,
            max_chunks: None,
        }
    }
}

/// One intervention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InterventionConfig {
    Ablation(AblationConfig),
    Steering(SteeringConfig),
    Finetune(FinetuneConfig),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AblationMode {
    /// Replace the component's output by zeros.
    #[default]
    Zero,
    /// Replace it by its mean over the reference prompts, per position label (position 0
    /// left out unless `include_first_position`; see [`super::ablation`]).
    Mean,
}

/// The prompts a mean ablation averages over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    /// Clean and corrupted prompts of the selection split.
    #[default]
    Selection,
    /// The neutral text chunks.
    Neutral,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AblationConfig {
    /// Name in the results (default `ablation_zero` / `ablation_mean`).
    pub name: Option<String>,
    #[serde(default)]
    pub mode: AblationMode,
    #[serde(default)]
    pub reference: Reference,
    #[serde(default)]
    pub positions: PositionsConfig,
    /// Mean ablation: also average over, and edit, position 0 (default false: LLaMA-family
    /// models carry outlier activations there).
    #[serde(default)]
    pub include_first_position: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SteeringConfig {
    /// Name in the results (default `steering`).
    pub name: Option<String>,
    #[serde(default = "all_positions")]
    pub positions: PositionsConfig,
    /// How much of the projection is removed, and around which centre (see
    /// [`super::steering`]).
    #[serde(default)]
    pub strength: SteeringStrength,
}

/// The steering strength `s` of `x - s ((x·u) - c) u` and its centre `c`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum SteeringStrength {
    /// `s = 1` with the centres moved so that the selection split's mean logit difference
    /// is 0 (see [`super::steering::calibrate_offset`]).
    #[default]
    Calibrated,
    /// This strength (1 removes the whole projection) around the selection prompts' mean
    /// coordinate.
    Fixed(f64),
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StrengthRepr {
    Word(String),
    Number(f64),
}

impl<'de> Deserialize<'de> for SteeringStrength {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error;
        match StrengthRepr::deserialize(d)
            .map_err(|_| D::Error::custom("strength: \"calibrated\" or a number"))?
        {
            StrengthRepr::Word(w) if w == "calibrated" => Ok(SteeringStrength::Calibrated),
            StrengthRepr::Word(w) => Err(D::Error::custom(format!(
                "strength: \"calibrated\" or a number, not {w:?}"
            ))),
            StrengthRepr::Number(x) => Ok(SteeringStrength::Fixed(x)),
        }
    }
}

impl Serialize for SteeringStrength {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            SteeringStrength::Calibrated => s.serialize_str("calibrated"),
            SteeringStrength::Fixed(x) => s.serialize_f64(*x),
        }
    }
}

fn all_positions() -> PositionsConfig {
    PositionsConfig::All
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneConfig {
    /// Name in the results (default `finetune`).
    pub name: Option<String>,
    #[serde(default = "default_steps")]
    pub steps: usize,
    #[serde(default = "default_lr")]
    pub lr: f64,
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Seed of the example order.
    #[serde(default)]
    pub seed: u64,
    /// The cross-entropy's normalisation (see [`super::finetune`]; template prompts only).
    #[serde(default)]
    pub loss: CdaLoss,
    /// What it trains on (see [`super::corpus`]); default: the template prompts.
    #[serde(default)]
    pub corpus: CorpusConfig,
    /// Corpus sentences are cut to this many tokens.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
}

fn default_max_tokens() -> usize {
    64
}

/// What the CDA cross-entropy normalises over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CdaLoss {
    /// Softmax over the whole vocabulary (ordinary next-token cross-entropy): it is also
    /// lowered by raising every answer word's probability together, so it can trade bias for
    /// pronoun mass.
    #[default]
    FullVocab,
    /// Softmax over the pair's answer words only (`he`, `she`, …): it depends only on their
    /// logit differences, so its minimum is exactly "no preference" and it cannot be lowered
    /// by moving probability mass onto the answers.
    AnswerSet,
}

fn default_steps() -> usize {
    50
}
fn default_lr() -> f64 {
    1e-3
}
fn default_batch() -> usize {
    16
}

/// Where an ablation or steering applies within each prompt.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum PositionsConfig {
    /// Each component's own position label (every position when it has none).
    #[default]
    Component,
    /// Every position.
    All,
    /// These positions (labels, `last`, or indices; negative from the end).
    List(Vec<PositionRef>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PositionsRepr {
    Word(String),
    List(Vec<PositionRef>),
}

impl<'de> Deserialize<'de> for PositionsConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(match PositionsRepr::deserialize(d)? {
            PositionsRepr::Word(w) if w == "component" => PositionsConfig::Component,
            PositionsRepr::Word(w) if w == "all" => PositionsConfig::All,
            PositionsRepr::Word(w) => PositionsConfig::List(vec![PositionRef::Label(w)]),
            PositionsRepr::List(l) => PositionsConfig::List(l),
        })
    }
}

impl Serialize for PositionsConfig {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            PositionsConfig::Component => s.serialize_str("component"),
            PositionsConfig::All => s.serialize_str("all"),
            PositionsConfig::List(l) => l.serialize(s),
        }
    }
}

impl InterventionConfig {
    /// The name results are reported under.
    pub fn name(&self) -> String {
        match self {
            InterventionConfig::Ablation(a) => a.name.clone().unwrap_or_else(|| {
                match a.mode {
                    AblationMode::Zero => "ablation_zero",
                    AblationMode::Mean => "ablation_mean",
                }
                .to_string()
            }),
            InterventionConfig::Steering(s) => {
                s.name.clone().unwrap_or_else(|| "steering".to_string())
            }
            InterventionConfig::Finetune(f) => {
                f.name.clone().unwrap_or_else(|| "finetune".to_string())
            }
        }
    }
}

fn fraction(field: &str, v: f64) -> Result<()> {
    if !(0.0..1.0).contains(&v) {
        return Err(config(field, format!("{v} is not in [0, 1)")));
    }
    Ok(())
}

impl DebiasConfig {
    /// Checks everything that can be checked without the model or the stored effects.
    pub fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(config("name", "must not be empty"));
        }
        if self.experiment.trim().is_empty() {
            return Err(config("experiment", "must name a sweep experiment"));
        }
        self.select.validate()?;
        self.split.validate()?;
        if self.control_sets > MAX_CONTROL_SETS {
            return Err(config(
                "control_sets",
                format!(
                    "{} sets is more than {MAX_CONTROL_SETS}: every intervention (fine-tuning \
                     included) runs once more per set",
                    self.control_sets
                ),
            ));
        }
        if self.neutral.chunk_tokens < 2 {
            return Err(config(
                "neutral.chunk_tokens",
                "needs at least 2 tokens per chunk",
            ));
        }
        if self.interventions.is_empty() {
            return Err(config(
                "intervention",
                "at least one intervention is needed",
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, iv) in self.interventions.iter().enumerate() {
            let field = format!("intervention[{i}]");
            let name = iv.name();
            // The name labels stored rows (`benchmark_v.model_state`, where `base` is the
            // unmodified model and `NAME/control` a control set's pool).
            if name.trim().is_empty() || name == "base" || name.contains('/') {
                return Err(config(
                    field,
                    format!(
                        "name {name:?} is not allowed: it must be non-empty, not `base`, \
                         and without `/`"
                    ),
                ));
            }
            if !names.insert(iv.name()) {
                return Err(config(
                    field,
                    format!("name {:?} is used twice; give one a `name`", iv.name()),
                ));
            }
            if let InterventionConfig::Finetune(f) = iv {
                if f.steps == 0 || f.batch_size == 0 {
                    return Err(config(field, "steps and batch_size must be at least 1"));
                }
                if !(f.lr.is_finite() && f.lr > 0.0) {
                    return Err(config(field, format!("lr {} must be positive", f.lr)));
                }
                if !(f.weight_decay.is_finite() && f.weight_decay >= 0.0) {
                    return Err(config(field, "weight_decay must be >= 0"));
                }
                if f.max_tokens < 2 {
                    return Err(config(field, "max_tokens must be at least 2"));
                }
                if f.corpus != CorpusConfig::Templates && f.loss == CdaLoss::AnswerSet {
                    return Err(config(
                        field,
                        "loss = \"answer_set\" applies to the template prompts only; a corpus \
                         trains with the causal-LM loss over whole sentences",
                    ));
                }
                f.corpus.validate(&format!("{field}.corpus"))?;
            }
            if let InterventionConfig::Steering(SteeringConfig {
                strength: SteeringStrength::Fixed(x),
                ..
            }) = iv
            {
                if !(x.is_finite() && *x >= 0.0) {
                    return Err(config(field, format!("strength {x} must be >= 0")));
                }
            }
        }
        Ok(())
    }
}

impl SelectionConfig {
    /// Exactly one of top-k (`component` + `top_k`) or an explicit `components` list.
    pub fn validate(&self) -> Result<()> {
        match (&self.components, self.component, self.top_k) {
            (Some(list), None, None) => {
                if self.threshold.is_some() || self.position.is_some() {
                    return Err(config(
                        "select",
                        "threshold and position apply to top-k selection, not to a list",
                    ));
                }
                if list.is_empty() {
                    return Err(config("select.components", "the list is empty"));
                }
                for s in list {
                    s.parse::<Target>()?;
                }
                Ok(())
            }
            (None, Some(c), Some(k)) => {
                TargetKind::from_component(c)?;
                if k == 0 {
                    return Err(config("select.top_k", "must be at least 1"));
                }
                if let Some(t) = self.threshold {
                    if !(t.is_finite() && t >= 0.0) {
                        return Err(config("select.threshold", format!("{t} must be >= 0")));
                    }
                }
                Ok(())
            }
            (Some(_), _, _) => Err(config(
                "select",
                "give either `components` or `component` + `top_k`, not both",
            )),
            _ => Err(config(
                "select",
                "give `component` and `top_k` (top-k selection) or `components` (a list)",
            )),
        }
    }
}

impl SplitConfig {
    pub fn validate(&self) -> Result<()> {
        fraction("split.heldout_professions", self.heldout_professions)?;
        fraction("split.heldout_templates", self.heldout_templates)?;
        if self.heldout_professions == 0.0 && self.heldout_templates == 0.0 {
            return Err(config(
                "split",
                "hold out a fraction of professions, of templates, or both",
            ));
        }
        Ok(())
    }
}
