//! Prompt-pair datasets: a *clean* prompt and a *corrupted* (counterfactual) prompt that
//! differ only in the bias-carrying word, tokenized to equal length with a label per position.
//!
//! # Sources
//! - [`professions`]: Vig et al. (2020)'s 17 templates × a professions list, each profession
//!   labelled `female`, `male` or `neutral`: the project's 122 ([`PROFESSIONS`], the default)
//!   or the published list of Bolukbasi et al. (2016) with its stereotypicality scores
//!   ([`ProfessionsSource::Bolukbasi`]); the corrupted prompt swaps the profession for "man",
//!   "woman" or an opposite-stereotype profession ([`Counterfactual`]).
//! - [`household`]: household roles, the paper's second form of gender bias (Prakash & Lee,
//!   2024): "Washing the dishes is the duty of the" → " wife", the corrupted prompt naming an
//!   activity of the other code with the same token count; each pair names its stereotyped
//!   answer (label `stereotyped_answer`), so any answer words work.
//! - [`traits`]: adjective/trait associations, this project's addition ("The gentle person
//!   said that" vs "The tough person said that", answers " he" / " she"); see the
//!   [`traits`](mod@traits) module for the rationale.
//! - [`from_templates`]: user templates with named slots × user filler pairs
//!   ([`TemplatesDataset`]).
//! - [`from_jsonl`]: one pair per line of a JSONL file.
//!
//! # Tokenization and position labels
//! [`tokenize_pairs`] encodes both prompts, drops pairs whose token counts differ
//! (`token_count_mismatch`) or whose token ids are identical (`identical_prompts`), and labels
//! every position of the clean prompt; see [`tokenize`](mod@tokenize) for the rule.
//!
//! Answer words (`positive`/`negative`) are left `None` by the built-in datasets: the sweep
//! spec's metric supplies them (" he" / " she"; " wife" / " husband" for `household`).

mod error;
pub mod household;
pub mod jsonl;
pub mod professions;
mod select;
pub mod template;
pub mod tokenize;
pub mod traits;

use std::collections::BTreeMap;
use std::ops::Range;

pub use error::DatasetError;
pub use household::{
    household_templates, household_with, HouseholdAnswers, HouseholdOptions, HOUSEHOLD_ACTIVITIES,
    HOUSEHOLD_TEMPLATES,
};
pub use jsonl::from_jsonl;
pub use professions::{
    bolukbasi_professions, profession_templates, professions, professions_with,
    stereotype_of_score, Counterfactual, Profession, ProfessionsOptions, ProfessionsSource,
    PROFESSIONS,
};
pub use template::{from_templates, FillerPair, Slots, Template, TemplatesDataset};
pub use tokenize::{position_labels, tokenize_pairs};
pub use traits::{
    traits, traits_with, TraitCounterfactual, TraitsOptions, NEUTRAL_TRAITS, TRAIT_PAIRS,
};

/// One clean/corrupted prompt pair before tokenization.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PairSpec {
    /// Stable id, unique within a dataset, e.g. `said_that/nurse/man`.
    pub id: String,
    /// Template name, e.g. `said_that`.
    pub template: Option<String>,
    /// The clean prompt.
    pub clean: String,
    /// The corrupted (counterfactual) prompt.
    pub corrupt: String,
    /// Per-pair answer words overriding the spec's metric (e.g. `[" he"]`).
    pub positive: Option<Vec<String>>,
    /// Per-pair answer words on the other side of the metric (e.g. `[" she"]`).
    pub negative: Option<Vec<String>>,
    /// Free labels, e.g. `{"profession": "nurse", "stereotype": "female", "counterfactual": "man"}`.
    pub labels: BTreeMap<String, String>,
    /// Named byte ranges of the clean prompt, e.g. `("subject", 4..9)`; used for position labels.
    pub slots: Vec<(String, Range<usize>)>,
}

/// A pair ready for the model: equal-length token ids and one label per position.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizedPair {
    /// The pair this was made from.
    pub spec: PairSpec,
    /// Token ids of the clean prompt (with BOS if one was prepended).
    pub clean_ids: Vec<u32>,
    /// Token ids of the corrupted prompt; same length as `clean_ids`.
    pub corrupt_ids: Vec<u32>,
    /// One label per position, e.g. `["prefix", "subject", "verb", "end"]`.
    pub position_labels: Vec<String>,
}

/// Pairs left out by [`tokenize_pairs`], counted by reason and listed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Dropped {
    /// Reason → count, e.g. `"token_count_mismatch" -> 12`.
    pub counts: BTreeMap<String, usize>,
    /// Each dropped pair, in dataset order.
    pub pairs: Vec<DroppedPair>,
}

/// One pair left out, with what a reader needs to see why.
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedPair {
    pub id: String,
    pub reason: String,
    pub clean: String,
    pub corrupt: String,
    pub clean_tokens: usize,
    pub corrupt_tokens: usize,
}

impl Dropped {
    /// Reason: clean and corrupted prompts tokenize to different lengths.
    pub const TOKEN_COUNT_MISMATCH: &'static str = "token_count_mismatch";
    /// Reason: clean and corrupted prompts tokenize to the same ids.
    pub const IDENTICAL_PROMPTS: &'static str = "identical_prompts";

    /// Counts and lists one dropped pair.
    pub fn add(&mut self, pair: DroppedPair) {
        *self.counts.entry(pair.reason.clone()).or_default() += 1;
        self.pairs.push(pair);
    }

    /// All dropped pairs.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// Dropped pairs for one reason (0 if none).
    pub fn get(&self, reason: &str) -> usize {
        self.counts.get(reason).copied().unwrap_or(0)
    }
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.counts.is_empty() {
            return write!(f, "none");
        }
        let parts: Vec<String> = self
            .counts
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        write!(f, "{}", parts.join(", "))
    }
}
