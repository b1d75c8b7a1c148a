//! Pairs with the labels debiasing needs, and the seeded held-out split.
//!
//! # The split
//! Professions (and/or templates) are shuffled with the seed and a fraction of them is held
//! out. A pair is **held out** when it falls in every held-out set that is configured (a
//! held-out profession, in a held-out template when templates are split too), and in the
//! **selection** split when it falls in none; a pair with a held-out profession in a
//! selection template (or the reverse) is in neither, so held-out pairs share no profession
//! and no template with the selection pairs. The split depends only on the seed, the
//! fractions and the set of professions and templates present (not on pair order).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use super::config::SplitConfig;
use super::error::{DebiasError, Result};
use super::rng::SeededRng;
use crate::dataset::PairSpec;
use crate::experiment::PairInput;

/// A side of the metric (`positive` or `negative` answer set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerSide {
    Positive,
    Negative,
}

impl AnswerSide {
    pub fn opposite(self) -> Self {
        match self {
            AnswerSide::Positive => AnswerSide::Negative,
            AnswerSide::Negative => AnswerSide::Positive,
        }
    }
}

const MALE_WORDS: &[&str] = &["he", "him", "his", "himself", "man", "men", "boy"];
const FEMALE_WORDS: &[&str] = &["she", "her", "hers", "herself", "woman", "women", "girl"];

/// Which side of the metric holds the male words (`he`, `him`, …), if that is clear: the
/// positive words all male and the negative all female, or the reverse.
pub fn male_side(positive: &[String], negative: &[String]) -> Option<AnswerSide> {
    let all_in = |words: &[String], set: &[&str]| {
        !words.is_empty()
            && words
                .iter()
                .all(|w| set.contains(&w.trim().to_lowercase().as_str()))
    };
    if all_in(positive, MALE_WORDS) && all_in(negative, FEMALE_WORDS) {
        Some(AnswerSide::Positive)
    } else if all_in(positive, FEMALE_WORDS) && all_in(negative, MALE_WORDS) {
        Some(AnswerSide::Negative)
    } else {
        None
    }
}

/// A pair with what debiasing reads from its labels.
#[derive(Debug, Clone)]
pub struct DebiasPair {
    pub input: PairInput,
    /// `labels["profession"]` (professions dataset).
    pub profession: Option<String>,
    /// The template name.
    pub template: Option<String>,
    /// The metric side of the stereotyped answer: for a `male`-stereotyped profession the
    /// male side, for `female` the other; `None` for `neutral` or unlabelled pairs.
    pub stereotyped: Option<AnswerSide>,
}

impl DebiasPair {
    /// From a prepared pair and its spec; `male` says which metric side is male (see
    /// [`male_side`]); without it no pair has a stereotyped side.
    pub fn new(input: PairInput, spec: &PairSpec, male: Option<AnswerSide>) -> Self {
        let stereotyped = match (spec.labels.get("stereotype").map(String::as_str), male) {
            (Some("male"), Some(m)) => Some(m),
            (Some("female"), Some(m)) => Some(m.opposite()),
            _ => None,
        };
        Self {
            profession: spec.labels.get("profession").cloned(),
            template: spec
                .template
                .clone()
                .or_else(|| spec.labels.get("template").cloned()),
            stereotyped,
            input,
        }
    }
}

/// Zips prepared pairs with their specs (as the sweep spec prepares them, in the same order).
pub fn debias_pairs(
    inputs: Vec<PairInput>,
    specs: &[PairSpec],
    male: Option<AnswerSide>,
) -> Result<Vec<DebiasPair>> {
    if inputs.len() != specs.len() {
        return Err(DebiasError::Split(format!(
            "{} pairs but {} specs",
            inputs.len(),
            specs.len()
        )));
    }
    inputs
        .into_iter()
        .zip(specs)
        .map(|(input, spec)| {
            if input.id != spec.id {
                return Err(DebiasError::Split(format!(
                    "pair {:?} is matched with spec {:?}",
                    input.id, spec.id
                )));
            }
            Ok(DebiasPair::new(input, spec, male))
        })
        .collect()
}

/// The stored-able outcome of a split: pair ids and the held-out professions and templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    pub seed: u64,
    pub heldout_professions: Vec<String>,
    pub heldout_templates: Vec<String>,
    /// Pairs components are selected on (and directions, means and fine-tuning data come from).
    pub selection: Vec<String>,
    /// Pairs the evaluation runs on.
    pub heldout: Vec<String>,
    /// Pairs in neither (they share a profession or a template with each side).
    pub unused: Vec<String>,
}

/// Which part of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitPart {
    Selection,
    Heldout,
}

impl Split {
    /// The pairs of one part, in the order of `pairs`.
    pub fn pairs<'a>(&self, part: SplitPart, pairs: &'a [DebiasPair]) -> Vec<&'a DebiasPair> {
        let ids: HashSet<&str> = match part {
            SplitPart::Selection => &self.selection,
            SplitPart::Heldout => &self.heldout,
        }
        .iter()
        .map(String::as_str)
        .collect();
        pairs
            .iter()
            .filter(|p| ids.contains(p.input.id.as_str()))
            .collect()
    }
}

/// Shuffles the distinct values and takes `round(fraction × n)` of them, at least one and
/// leaving at least one.
fn hold_out(
    what: &str,
    values: BTreeSet<String>,
    fraction: f64,
    rng: &mut SeededRng,
) -> Result<BTreeSet<String>> {
    let n = values.len();
    if n < 2 {
        return Err(DebiasError::Split(format!(
            "holding out {what} needs at least 2 distinct {what}, found {n}"
        )));
    }
    let k = ((fraction * n as f64).round() as usize).clamp(1, n - 1);
    let mut v: Vec<String> = values.into_iter().collect();
    rng.shuffle(&mut v);
    Ok(v.into_iter().take(k).collect())
}

/// The seeded split of `pairs` (see the module doc).
pub fn split_pairs(pairs: &[DebiasPair], cfg: &SplitConfig) -> Result<Split> {
    cfg.validate()?;
    let mut ids = HashSet::new();
    for p in pairs {
        if !ids.insert(p.input.id.as_str()) {
            return Err(DebiasError::Split(format!(
                "pair id {:?} appears twice",
                p.input.id
            )));
        }
    }
    let key = |p: &DebiasPair, what: &str| -> Result<String> {
        match what {
            "professions" => p.profession.clone(),
            _ => p.template.clone(),
        }
        .ok_or_else(|| {
            DebiasError::Split(format!(
                "pair {:?} has no {} label, so {what} cannot be held out",
                p.input.id,
                &what[..what.len() - 1]
            ))
        })
    };
    let mut held: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (what, fraction, stream) in [
        ("professions", cfg.heldout_professions, 1),
        ("templates", cfg.heldout_templates, 2),
    ] {
        if fraction > 0.0 {
            let values = pairs
                .iter()
                .map(|p| key(p, what))
                .collect::<Result<BTreeSet<_>>>()?;
            let mut rng = SeededRng::new(cfg.seed, stream);
            held.insert(what, hold_out(what, values, fraction, &mut rng)?);
        }
    }
    let (mut selection, mut heldout, mut unused) = (Vec::new(), Vec::new(), Vec::new());
    for p in pairs {
        let mut inside = 0;
        for (what, set) in &held {
            if set.contains(&key(p, what)?) {
                inside += 1;
            }
        }
        let id = p.input.id.clone();
        if inside == 0 {
            selection.push(id);
        } else if inside == held.len() {
            heldout.push(id);
        } else {
            unused.push(id);
        }
    }
    if selection.is_empty() || heldout.is_empty() {
        return Err(DebiasError::Split(format!(
            "the split leaves {} selection and {} held-out pairs; both need at least one",
            selection.len(),
            heldout.len()
        )));
    }
    let list = |what: &str| -> Vec<String> {
        held.get(what)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    };
    Ok(Split {
        seed: cfg.seed,
        heldout_professions: list("professions"),
        heldout_templates: list("templates"),
        selection,
        heldout,
        unused,
    })
}
