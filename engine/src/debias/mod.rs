//! Debiasing evaluation (DESIGN.md §1 step 6): intervene only on the components a sweep
//! located, and measure the bias again on held-out prompts together with what the
//! intervention costs in general capability.
//!
//! # Flow (what a debias task calls, in order)
//! 1. [`DebiasConfig`] from the `[[debias]]` table; [`DebiasConfig::validate`].
//! 2. [`debias_pairs`] (the prepared pairs with their specs) → [`split_pairs`]: the seeded,
//!    stored-able [`Split`] into selection and held-out pairs.
//! 3. [`select_components`] over the sweep's [`AggregatedEffect`]s (or the explicit list),
//!    [`matched_controls`] for the control sets (matched on kind, layer and position).
//! 4. [`neutral_chunks`] of [`NEUTRAL_TEXT`].
//! 5. [`run_debias`] → [`DebiasMeasurement`]s (intervention, components, split, metric, before,
//!    after, delta, and the control's [`ControlSummary`]) and the fine-tuning deltas files.
//!
//! # Layout
//! - [`config`]: the `[[debias]]` tables (serde, unknown fields refused).
//! - [`target`]: the components interventions act on (`head L3H2@end`, `mlp_out L2`).
//! - [`select`]: top-k / explicit selection from stored effects.
//! - [`control`]: the matched random control sets and their summary.
//! - [`split`]: pairs with profession, template and stereotype; the held-out split.
//! - [`edit`]: ablation and steering as a hook over a batch; [`batch`]: edited forwards.
//! - [`ablation`], [`steering`]: building those edits (means, gender directions).
//! - [`deltas`], [`finetune`]: CDA fine-tuning of the selected weights only, deltas files.
//! - [`neutral`]: the neutral text set; [`evaluate`]: bias and capability metrics.
//! - [`benchmarks`]: the sweep's `[[benchmark]]`s scored on each intervened state.
//! - [`run`]: one debias run, start to end; [`rng`]: the seeded generator everything uses.

pub mod ablation;
pub mod batch;
pub mod benchmarks;
pub mod config;
pub mod control;
pub mod deltas;
pub mod edit;
mod error;
pub mod evaluate;
pub mod finetune;
pub mod neutral;
pub mod rng;
pub mod run;
pub mod select;
pub mod split;
pub mod steering;
pub mod target;

pub use benchmarks::{score_benchmarks, BenchmarkScores, BenchmarkSet};
pub use config::{
    AblationConfig, AblationMode, CdaLoss, DebiasConfig, FinetuneConfig, InterventionConfig,
    NeutralConfig, PositionsConfig, Reference, SelectionConfig, SplitConfig, SteeringConfig,
};
pub use control::{matched_control, matched_controls, matched_steering_layers, ControlSummary};
pub use deltas::{apply_deltas, load_deltas, save_deltas, TunedKey, TunedParam};
pub use error::{DebiasError, Result};
pub use evaluate::{bias_metrics, capability, BiasMetrics, CapabilityRun};
pub use neutral::{neutral_chunks, NEUTRAL_TEXT};
pub use run::{run_debias, DebiasInputs, DebiasMeasurement, DebiasOutcome, DeltasArtifact};
pub use select::{select_components, AggregatedEffect};
pub use split::{
    debias_pairs, male_side, split_pairs, AnswerSide, DebiasPair, Split, SplitPart, SUBJECT_LABELS,
};
pub use target::{describe, Target, TargetKind};
