//! Pairs with the labels debiasing needs, and the seeded held-out split.
//!
//! # The split
//! Professions and templates are drawn with the seed and a fraction of each is held out
//! (by default 30% of the professions **and** 30% of the templates, see [`SplitConfig`]).
//! "Profession" here is the pair's *subject*, the word its counterfactual swaps: the first
//! of its labels [`SUBJECT_LABELS`] (`profession`; `activity` for the household dataset,
//! `trait` for traits), so `heldout_professions` holds out activities or traits for those
//! datasets, with the same rules.
//! Every profession a pair names counts: the clean prompt's (`profession`) and, when the
//! corrupted prompt names another profession (`opposite_profession` counterfactuals), that
//! one too ([`DebiasPair::corrupt_profession`]). A pair is **held out** when all its
//! professions are held out and (if templates are split) its template is; it is in the
//! **selection** split when none of them is; any other pair is **unused**. So held-out pairs
//! share no profession (on either side of the pair) and no template with the selection pairs:
//! the held-out corrupted prompts ("The man said that" in a held-out template) are never the
//! strings the steering direction, the mean-ablation reference or the fine-tuning data are
//! built from.
//!
//! The profession draw is **stratified by stereotype**: the professions are grouped by their
//! `stereotype` label (`female`, `male`, `neutral`; a profession only ever seen as a
//! counterfactual, or unlabelled, forms a group of its own), and each group gives its share of
//! the held-out professions (largest remainders, ties to the group named first), so held-out
//! and selection pairs have the same mix of stereotypes. When pairs name two professions, the
//! professions named together are drawn together first (whenever the quotas allow), so that
//! held-out pairs with both professions held out exist at all (a draw of single professions
//! would keep only a `fraction²` share of them). Templates are drawn as a whole.
//!
//! Holding out templates needs at least two templates: pairs of a single template are
//! refused with an error that says so (set `heldout_templates = 0` to split by professions
//! only, accepting that held-out prompts then share their template with selection prompts).
//! Likewise professions. The split depends only on the seed, the fractions and the set of
//! professions (with their stereotypes) and templates present, not on pair order.
//! [`Split::sizes`] and [`Split::summary`] give its sizes for printing.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use super::config::SplitConfig;
use super::error::{DebiasError, Result};
use super::rng::SeededRng;
use crate::dataset::PairSpec;
use crate::experiment::PairInput;
use crate::stereotype::{is_anti_stereotypical_swap, is_gender_word, stereotyped_side};

/// The labels a pair's subject (what the split calls its profession) is read from, first
/// present wins.
pub const SUBJECT_LABELS: &[&str] = &["profession", "activity", "trait"];

pub use crate::stereotype::{male_side, AnswerSide};

/// A pair with what debiasing reads from its labels.
#[derive(Debug, Clone)]
pub struct DebiasPair {
    pub input: PairInput,
    /// The pair's subject: its first label of [`SUBJECT_LABELS`] (`profession`, `activity`,
    /// `trait`).
    pub profession: Option<String>,
    /// The subject the corrupted prompt names, if it names one: `labels["corrupt_profession"]`,
    /// else `labels["counterfactual"]` when that is not a gender word ("man", "woman", …), as
    /// with `opposite_profession` counterfactuals, household activities and traits.
    pub corrupt_profession: Option<String>,
    /// The template name.
    pub template: Option<String>,
    /// `labels["stereotype"]` as written (`female`, `male`, `neutral`, …): the stratum of the
    /// clean profession in the split.
    pub stereotype: Option<String>,
    /// The metric side of the stereotyped answer ([`stereotyped_side`]: the side the
    /// `stereotyped_answer` label names, else by the `stereotype` label and gendered answer
    /// words); `None` for `neutral` or unlabelled pairs.
    pub stereotyped: Option<AnswerSide>,
    /// Whether the counterfactual swaps toward the other gender than the stereotype
    /// ("nurse" → "man"), as Vig et al.'s set-gender does; `total_effect` averages these.
    pub anti_stereotypical_swap: bool,
}

impl DebiasPair {
    /// From a prepared pair and its spec; `positive`/`negative` are the metric's answer words,
    /// which the pair's own words (oriented per pair, or from a JSONL line) replace.
    pub fn new(
        input: PairInput,
        spec: &PairSpec,
        positive: &[String],
        negative: &[String],
    ) -> Self {
        let (positive, negative) = match (&spec.positive, &spec.negative) {
            (Some(p), Some(n)) => (p.as_slice(), n.as_slice()),
            _ => (positive, negative),
        };
        let stereotyped = stereotyped_side(&spec.labels, positive, negative);
        let corrupt_profession = spec.labels.get("corrupt_profession").cloned().or_else(|| {
            spec.labels
                .get("counterfactual")
                .filter(|w| !is_gender_word(w))
                .cloned()
        });
        Self {
            profession: SUBJECT_LABELS
                .iter()
                .find_map(|k| spec.labels.get(*k))
                .cloned(),
            corrupt_profession,
            template: spec
                .template
                .clone()
                .or_else(|| spec.labels.get("template").cloned()),
            stereotype: spec.labels.get("stereotype").cloned(),
            stereotyped,
            anti_stereotypical_swap: is_anti_stereotypical_swap(&spec.labels),
            input,
        }
    }

    /// Every profession the pair names: the clean one and, if any, the corrupted prompt's.
    pub fn professions(&self) -> impl Iterator<Item = &String> {
        self.profession.iter().chain(&self.corrupt_profession)
    }
}

/// Zips prepared pairs with their specs (as the sweep spec prepares them, in the same order);
/// `positive`/`negative` are the metric's answer words (see [`DebiasPair::new`]).
pub fn debias_pairs(
    inputs: Vec<PairInput>,
    specs: &[PairSpec],
    positive: &[String],
    negative: &[String],
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
            Ok(DebiasPair::new(input, spec, positive, negative))
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

/// The sizes of a split, for printing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SplitSizes {
    pub selection: usize,
    pub heldout: usize,
    pub unused: usize,
    pub heldout_professions: usize,
    pub heldout_templates: usize,
}

/// Which part of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitPart {
    Selection,
    Heldout,
}

impl Split {
    /// Pair and held-out counts.
    pub fn sizes(&self) -> SplitSizes {
        SplitSizes {
            selection: self.selection.len(),
            heldout: self.heldout.len(),
            unused: self.unused.len(),
            heldout_professions: self.heldout_professions.len(),
            heldout_templates: self.heldout_templates.len(),
        }
    }

    /// One line for logs and the CLI, e.g. `seed 7: 96 selection, 24 held-out, 84 unused
    /// pairs; held out 37 professions, 5 templates`.
    pub fn summary(&self) -> String {
        let z = self.sizes();
        let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        format!(
            "seed {}: {} selection, {} held-out, {} unused {}; held out {}, {}",
            self.seed,
            z.selection,
            z.heldout,
            z.unused,
            if z.unused == 1 { "pair" } else { "pairs" },
            count(z.heldout_professions, "profession"),
            count(z.heldout_templates, "template"),
        )
    }

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

/// How many to hold out of `n`: `round(fraction × n)`, at least one and leaving at least one.
fn held_count(what: &str, n: usize, fraction: f64, hint: &str) -> Result<usize> {
    if n < 2 {
        return Err(DebiasError::Split(format!(
            "holding out {what} needs at least 2 distinct {what}, found {n}{hint}"
        )));
    }
    Ok(((fraction * n as f64).round() as usize).clamp(1, n - 1))
}

/// Shuffles the distinct values and takes `round(fraction × n)` of them, at least one and
/// leaving at least one.
fn hold_out(
    what: &str,
    values: BTreeSet<String>,
    fraction: f64,
    rng: &mut SeededRng,
    hint: &str,
) -> Result<BTreeSet<String>> {
    let k = held_count(what, values.len(), fraction, hint)?;
    let mut v: Vec<String> = values.into_iter().collect();
    rng.shuffle(&mut v);
    Ok(v.into_iter().take(k).collect())
}

/// The held-out professions, stratified: `strata` maps each profession to its group, and the
/// `k` held-out professions are shared among groups in proportion to their sizes (largest
/// remainders, ties to the group first in order). `links` are the profession pairs that
/// pairs name together (clean and corrupted prompt): they are drawn first, in seeded order,
/// each taken whole when it fits every group's quota, so that as many pairs as possible have
/// both professions held out; then single professions, in seeded order, fill the quotas.
fn hold_out_professions(
    strata: &BTreeMap<String, String>,
    links: &BTreeSet<(String, String)>,
    fraction: f64,
    rng: &mut SeededRng,
) -> Result<BTreeSet<String>> {
    let k = held_count("professions", strata.len(), fraction, "")?;
    let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
    for group in strata.values() {
        *sizes.entry(group).or_default() += 1;
    }
    let n = strata.len() as f64;
    let quotas: Vec<f64> = sizes.values().map(|&s| k as f64 * s as f64 / n).collect();
    let mut counts: Vec<usize> = quotas.iter().map(|q| q.floor() as usize).collect();
    let mut order: Vec<usize> = (0..quotas.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (quotas[a] - quotas[a].floor(), quotas[b] - quotas[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    let mut left = k - counts.iter().sum::<usize>();
    for i in order {
        if left == 0 {
            break;
        }
        counts[i] += 1;
        left -= 1;
    }
    let mut room: BTreeMap<&str, usize> = sizes.keys().copied().zip(counts).collect();
    let mut units: Vec<Vec<&String>> = links.iter().map(|(a, b)| vec![a, b]).collect();
    rng.shuffle(&mut units);
    let mut singles: Vec<Vec<&String>> = strata.keys().map(|p| vec![p]).collect();
    rng.shuffle(&mut singles);
    units.extend(singles);
    let mut held = BTreeSet::new();
    for unit in units {
        let new: Vec<&String> = unit.into_iter().filter(|p| !held.contains(*p)).collect();
        let mut need: BTreeMap<&str, usize> = BTreeMap::new();
        for p in &new {
            *need.entry(strata[*p].as_str()).or_default() += 1;
        }
        if new.is_empty() || need.iter().any(|(g, &c)| room[g] < c) {
            continue;
        }
        for (g, c) in need {
            *room.get_mut(g).expect("every group has room") -= c;
        }
        held.extend(new.into_iter().cloned());
    }
    Ok(held)
}

/// Where a pair falls along one axis (professions or templates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Selection,
    Heldout,
    Mixed,
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
    let missing = |p: &DebiasPair, what: &str| {
        DebiasError::Split(format!(
            "pair {:?} has no {what} label, so {what}s cannot be held out",
            p.input.id
        ))
    };
    let split_professions = cfg.heldout_professions > 0.0;
    let split_templates = cfg.heldout_templates > 0.0;
    let mut held_professions = BTreeSet::new();
    if split_professions {
        // Profession → stratum: its stereotype where it is a clean profession (the smallest
        // label if pairs disagree), else a group of its own.
        let mut strata: BTreeMap<String, String> = BTreeMap::new();
        for p in pairs {
            let clean = p.profession.as_ref().ok_or_else(|| {
                DebiasError::Split(format!(
                    "pair {:?} has no subject label ({}), so professions cannot be held out \
                         (set split.heldout_professions = 0 to split by templates only)",
                    p.input.id,
                    SUBJECT_LABELS.join(", ")
                ))
            })?;
            let group = match &p.stereotype {
                Some(s) => format!("stereotype:{s}"),
                None => "unlabelled".to_string(),
            };
            let g = strata.entry(clean.clone()).or_insert_with(|| group.clone());
            if group < *g {
                *g = group;
            }
        }
        let mut links = BTreeSet::new();
        for p in pairs {
            if let (Some(a), Some(b)) = (&p.profession, &p.corrupt_profession) {
                strata
                    .entry(b.clone())
                    .or_insert_with(|| "counterfactual only".to_string());
                if a != b {
                    links.insert((a.min(b).clone(), a.max(b).clone()));
                }
            }
        }
        let mut rng = SeededRng::new(cfg.seed, 1);
        held_professions =
            hold_out_professions(&strata, &links, cfg.heldout_professions, &mut rng)?;
    }
    let mut held_templates = BTreeSet::new();
    if split_templates {
        let values = pairs
            .iter()
            .map(|p| p.template.clone().ok_or_else(|| missing(p, "template")))
            .collect::<Result<BTreeSet<_>>>()?;
        let hint = match values.iter().next() {
            Some(only) if values.len() == 1 => format!(
                " ({only:?}); set split.heldout_templates = 0 to split by professions only \
                 (held-out prompts then share their template with the selection prompts)"
            ),
            _ => String::new(),
        };
        let mut rng = SeededRng::new(cfg.seed, 2);
        held_templates = hold_out("templates", values, cfg.heldout_templates, &mut rng, &hint)?;
    }
    let (mut selection, mut heldout, mut unused) = (Vec::new(), Vec::new(), Vec::new());
    for p in pairs {
        let mut sides = Vec::with_capacity(2);
        if split_professions {
            let (mut any, mut all) = (false, true);
            for prof in p.professions() {
                let h = held_professions.contains(prof);
                any |= h;
                all &= h;
            }
            sides.push(match (any, all) {
                (false, _) => Side::Selection,
                (true, true) => Side::Heldout,
                (true, false) => Side::Mixed,
            });
        }
        if split_templates {
            let held = p
                .template
                .as_ref()
                .is_some_and(|t| held_templates.contains(t));
            sides.push(if held { Side::Heldout } else { Side::Selection });
        }
        let id = p.input.id.clone();
        if sides.iter().all(|s| *s == Side::Selection) {
            selection.push(id);
        } else if sides.iter().all(|s| *s == Side::Heldout) {
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
    Ok(Split {
        seed: cfg.seed,
        heldout_professions: held_professions.into_iter().collect(),
        heldout_templates: held_templates.into_iter().collect(),
        selection,
        heldout,
        unused,
    })
}
