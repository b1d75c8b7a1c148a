//! The result rows a sweep produces, as workers send them and the store keeps them.

use std::collections::BTreeMap;

/// One prompt pair of a sweep, with the exact token ids used.
#[derive(Debug, Clone, PartialEq)]
pub struct PairRow {
    pub pair_id: String,
    pub template: Option<String>,
    pub clean_prompt: String,
    pub corrupt_prompt: String,
    /// Token ids of the clean prompt; the corrupted prompt must have as many.
    pub clean_ids: Vec<u32>,
    pub corrupt_ids: Vec<u32>,
    /// Free labels, e.g. `profession = "nurse"`; stored as a JSON object.
    pub labels: BTreeMap<String, String>,
    pub clean_metric: f64,
    pub corrupt_metric: f64,
    /// +1 when the pair's metric grows toward its stereotyped answer, -1 toward the
    /// anti-stereotypical one, 0 without a stereotyped side (orients `cells_v.mean_effect`).
    pub toward_stereotype: i8,
    /// One label per position (e.g. `subject`, `last`), or empty when there are none.
    pub position_labels: Vec<String>,
    /// One decoded token per position, or empty.
    pub clean_tokens: Vec<String>,
    /// One decoded token per position, or empty.
    pub corrupt_tokens: Vec<String>,
}

/// One measured effect: an experiment, a component coordinate and a pair.
///
/// `None` coordinates are stored as the sentinel -1 and read back as NULL from the views.
/// A non-finite `normalized` (clean and corrupted metrics equal) is stored as NULL.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectRow {
    pub experiment: String,
    pub component: String,
    pub layer: Option<u32>,
    pub head: Option<u32>,
    pub position: Option<u32>,
    pub neuron: Option<u32>,
    pub pair_id: String,
    pub value: f64,
    pub effect: f64,
    pub normalized: Option<f64>,
}

/// One logit-lens value: the metric of a pair read from the residual stream after block
/// `layer` (at the last position, through the final norm and unembedding), on the clean and
/// the corrupted prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct LensRow {
    pub experiment: String,
    pub pair_id: String,
    pub layer: u32,
    pub clean_value: f64,
    pub corrupt_value: f64,
    /// +1 when the clean value says the positive answers lead, -1 the negative ones, 0 a tie
    /// (around 0 for differences, 1 for the odds ratio).
    pub clean_lead: i8,
    pub corrupt_lead: i8,
}

/// One greedy continuation of the generation check (`generations`): a pair's clean or
/// corrupted prompt (`run`), unpatched (`cell` `None`) or with a pathway cell patched at
/// the prompt's positions from the other prompt's run.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRow {
    pub experiment: String,
    pub pair_id: String,
    /// `pathway:NAME`, or `None` for the unpatched prompt (stored as '', NULL in the view).
    pub cell: Option<String>,
    /// The prompt continued: `clean` or `corrupt`.
    pub run: String,
    /// The generated token ids (the prompt not included).
    pub tokens: Vec<u32>,
    /// The generated tokens decoded.
    pub text: String,
}

/// One figure of a debiasing evaluation: a metric before and after an intervention (and
/// after the same intervention on matched random component sets, the control: their mean,
/// 5th and 95th percentiles, how many sets, and the located components' percentile among
/// them).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DebiasRow {
    /// The `[[debias]]` section's name.
    pub debias: String,
    pub intervention: String,
    pub components: String,
    pub split: String,
    pub metric: String,
    pub before: f64,
    pub after: f64,
    /// The mean over the control sets.
    pub control_after: Option<f64>,
    /// The first control set's components.
    pub control_components: Option<String>,
    #[serde(default)]
    pub control_sets: Option<i64>,
    #[serde(default)]
    pub control_p05: Option<f64>,
    #[serde(default)]
    pub control_p95: Option<f64>,
    #[serde(default)]
    pub control_percentile: Option<f64>,
    /// What the metric averages over, the same before and after (distinct clean prompts,
    /// stereotyped pairs, anti-stereotypical swaps); `None` for the neutral text's metrics.
    #[serde(default)]
    pub n: Option<i64>,
    /// 95% intervals of `before` and `after` (Student's t for means, Wilson for shares);
    /// `None` where there is none.
    #[serde(default)]
    pub before_ci: Option<(f64, f64)>,
    #[serde(default)]
    pub after_ci: Option<(f64, f64)>,
    /// A 95% interval of `control_after` over the prompts: each prompt's value averaged over
    /// the control sets, Student's t over those (see `ControlSummary::prompt_interval`).
    #[serde(default)]
    pub control_ci: Option<(f64, f64)>,
}

/// One benchmark pair's two sentence log-likelihoods in one model state (`benchmark_scores`).
#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkRow {
    /// The `[[benchmark]]` section's name.
    pub benchmark: String,
    /// `base`, or the intervention's name (after it, on the located components or on a
    /// control set).
    pub model_state: String,
    /// The debias section of an intervention (`None` for `base`).
    pub debias: Option<String>,
    /// The control set (0-based) of a control's row; `None` for `base` and the located
    /// components.
    pub control_set: Option<u32>,
    /// The pair's place among the benchmark's selected pairs.
    pub pair_index: u32,
    pub pair_id: String,
    pub subset: String,
    /// Total log-likelihood of the stereotypical sentence.
    pub stereo_loglik: f64,
    /// Total log-likelihood of its counterpart.
    pub anti_loglik: f64,
}

/// The `model_state` of the base model's rows.
pub const BASE_STATE: &str = "base";
