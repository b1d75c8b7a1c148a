//! What a pair's labels say about its metric: which answer side is the stereotyped one, how
//! to orient a pair's metric by it (Vig et al.'s `y`, numerator the anti-stereotypical
//! answer), and whether its counterfactual is an anti-stereotypical swap.
//!
//! # The stereotyped side ([`stereotyped_side`])
//! 1. A pair that names its stereotyped answer in the label `stereotyped_answer` (the
//!    `household` dataset does: " wife" for "washing the dishes"; JSONL and inline pairs may)
//!    has it on the side whose answer words include that word (compared without surrounding
//!    whitespace, so `"wife"` names `" wife"`). This works for any answer words. A label that
//!    names a word of neither side, or of both, gives no side; the spec refuses such a pair
//!    ([`check_stereotyped_answer`]).
//! 2. Otherwise (the older datasets: professions, traits), a pair labelled `stereotype =
//!    "female"` or `"male"` whose answer sets are gendered words (all male on one side, all
//!    female on the other: " he" / " she", " man" / " woman") has it on the side of that
//!    gender ([`male_side`]).
//!
//! Any other pair (a `neutral` profession, unlabelled, or non-gendered answers without a
//! `stereotyped_answer` label) has no stereotyped side.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

/// How each pair's metric is oriented (`[metric] orient`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Orient {
    /// As the spec (or the pair) gives the answer sets: `positive - negative` for every pair.
    #[default]
    Answers,
    /// Per pair by its stereotype label: the positive side is the anti-stereotypical answer
    /// (Vig et al.'s `y = p(anti) / p(stereo)` for `odds_ratio`); pairs without a stereotyped
    /// side keep the spec's orientation.
    Stereotype,
}

const MALE_WORDS: &[&str] = &["he", "him", "his", "himself", "man", "men", "boy"];
const FEMALE_WORDS: &[&str] = &["she", "her", "hers", "herself", "woman", "women", "girl"];

fn gender_of(word: &str) -> Option<&'static str> {
    let w = word.trim().to_lowercase();
    if MALE_WORDS.contains(&w.as_str()) {
        Some("male")
    } else if FEMALE_WORDS.contains(&w.as_str()) {
        Some("female")
    } else {
        None
    }
}

/// Whether `word` is a gendered word (`he`, `woman`, …).
pub fn is_gender_word(word: &str) -> bool {
    gender_of(word).is_some()
}

/// Which side of the metric holds the male words (`he`, `him`, …), if that is clear: the
/// positive words all male and the negative all female, or the reverse.
pub fn male_side(positive: &[String], negative: &[String]) -> Option<AnswerSide> {
    let all = |words: &[String], gender: &str| {
        !words.is_empty() && words.iter().all(|w| gender_of(w) == Some(gender))
    };
    if all(positive, "male") && all(negative, "female") {
        Some(AnswerSide::Positive)
    } else if all(positive, "female") && all(negative, "male") {
        Some(AnswerSide::Negative)
    } else {
        None
    }
}

/// The label naming a pair's stereotyped answer word (e.g. `" wife"`).
pub const STEREOTYPED_ANSWER: &str = "stereotyped_answer";

/// Whether `words` include `answer`, compared without surrounding whitespace.
fn names(words: &[String], answer: &str) -> bool {
    words.iter().any(|w| w.trim() == answer.trim())
}

/// The metric side of the stereotyped answer of a pair labelled `labels` whose answer sets
/// are `positive` and `negative` (see the module doc for the rule): the side its
/// `stereotyped_answer` label names, else by its `stereotype` label and the gendered words.
pub fn stereotyped_side(
    labels: &BTreeMap<String, String>,
    positive: &[String],
    negative: &[String],
) -> Option<AnswerSide> {
    if let Some(answer) = labels.get(STEREOTYPED_ANSWER) {
        return match (names(positive, answer), names(negative, answer)) {
            (true, false) => Some(AnswerSide::Positive),
            (false, true) => Some(AnswerSide::Negative),
            _ => None,
        };
    }
    match (
        labels.get("stereotype").map(String::as_str),
        male_side(positive, negative),
    ) {
        (Some("male"), Some(m)) => Some(m),
        (Some("female"), Some(m)) => Some(m.opposite()),
        _ => None,
    }
}

/// A pair's `stereotyped_answer` label, if it has one, names a word of exactly one of its
/// answer sets; the error says which word and which sets.
pub fn check_stereotyped_answer(
    labels: &BTreeMap<String, String>,
    positive: &[String],
    negative: &[String],
) -> Result<(), String> {
    let Some(answer) = labels.get(STEREOTYPED_ANSWER) else {
        return Ok(());
    };
    let (p, n) = (names(positive, answer), names(negative, answer));
    if p != n {
        return Ok(());
    }
    let where_ = if p { "both" } else { "neither" };
    Err(format!(
        "its label {STEREOTYPED_ANSWER} = {answer:?} is a word of {where_} of its answer sets \
         (positive {positive:?}, negative {negative:?}); the metric's answers must include it \
         on one side only (for the household dataset: the words its `answers` option names, \
         e.g. positive = [\" husband\"], negative = [\" wife\"])"
    ))
}

/// `+1` when the metric grows toward the stereotyped answer (it is on the positive side),
/// `-1` when it grows toward the anti-stereotypical one, `0` without a stereotyped side.
pub fn toward_stereotype(side: Option<AnswerSide>) -> i8 {
    match side {
        Some(AnswerSide::Positive) => 1,
        Some(AnswerSide::Negative) => -1,
        None => 0,
    }
}

/// Whether the pair's counterfactual moves toward the *other* gender than its stereotype, as
/// Vig et al.'s set-gender intervention does ("The nurse" → "The man"): its
/// `counterfactual` label is a gendered word of the opposite gender, or its
/// `counterfactual_stereotype` label (an opposite-stereotype profession or trait) is the
/// opposite stereotype. Pairs without a `female`/`male` stereotype never are.
pub fn is_anti_stereotypical_swap(labels: &BTreeMap<String, String>) -> bool {
    let opposite = match labels.get("stereotype").map(String::as_str) {
        Some("female") => "male",
        Some("male") => "female",
        _ => return false,
    };
    let by_word = labels
        .get("counterfactual")
        .and_then(|w| gender_of(w))
        .map(|g| g == opposite);
    let by_label = labels
        .get("counterfactual_stereotype")
        .map(|s| s == opposite);
    by_word.or(by_label).unwrap_or(false)
}

/// The answer words of a pair oriented as `orient` says: `(positive, negative)` swapped
/// when the pair's stereotyped side is the positive one under [`Orient::Stereotype`] (so
/// that the positive side is the anti-stereotypical answer); `None` when they stay as given.
pub fn oriented_words(
    orient: Orient,
    labels: &BTreeMap<String, String>,
    positive: &[String],
    negative: &[String],
) -> Option<(Vec<String>, Vec<String>)> {
    if orient != Orient::Stereotype {
        return None;
    }
    match stereotyped_side(labels, positive, negative) {
        Some(AnswerSide::Positive) => Some((negative.to_vec(), positive.to_vec())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn stereotype_orientation_puts_the_anti_stereotypical_answer_first() {
        let (he, she) = (words(&[" he"]), words(&[" she"]));
        let nurse = labels(&[("stereotype", "female")]);
        let carpenter = labels(&[("stereotype", "male")]);
        let aide = labels(&[("stereotype", "neutral")]);
        // nurse: anti = he, already positive; carpenter: anti = she, so swapped.
        assert_eq!(oriented_words(Orient::Stereotype, &nurse, &he, &she), None);
        assert_eq!(
            oriented_words(Orient::Stereotype, &carpenter, &he, &she),
            Some((she.clone(), he.clone()))
        );
        assert_eq!(oriented_words(Orient::Stereotype, &aide, &he, &she), None);
        assert_eq!(oriented_words(Orient::Answers, &carpenter, &he, &she), None);
        // After orienting, both pairs grow toward the anti-stereotypical answer.
        let toward = |l: &BTreeMap<String, String>, p: &[String], n: &[String]| {
            toward_stereotype(stereotyped_side(l, p, n))
        };
        assert_eq!(toward(&carpenter, &she, &he), -1);
        assert_eq!(toward(&nurse, &he, &she), -1);
        assert_eq!(toward(&carpenter, &he, &she), 1);
        assert_eq!(toward(&aide, &he, &she), 0);
    }

    #[test]
    fn the_stereotyped_answer_label_decides_for_any_words() {
        let (husband, wife) = (words(&[" husband"]), words(&[" wife"]));
        let dishes = labels(&[("stereotype", "female"), (STEREOTYPED_ANSWER, " wife")]);
        let lawn = labels(&[("stereotype", "male"), (STEREOTYPED_ANSWER, " husband")]);
        // wife/husband are not gendered words of the fallback list: only the label decides.
        assert_eq!(male_side(&husband, &wife), None);
        let side =
            |l: &BTreeMap<String, String>, p: &[String], n: &[String]| stereotyped_side(l, p, n);
        assert_eq!(side(&dishes, &husband, &wife), Some(AnswerSide::Negative));
        assert_eq!(side(&lawn, &husband, &wife), Some(AnswerSide::Positive));
        assert_eq!(side(&dishes, &wife, &husband), Some(AnswerSide::Positive));
        assert_eq!(
            side(&labels(&[("stereotype", "female")]), &husband, &wife),
            None
        );
        // Arbitrary words, and whitespace ignored in the comparison.
        let (tea, coffee) = (words(&[" tea", " Tea"]), words(&[" coffee"]));
        let l = labels(&[(STEREOTYPED_ANSWER, "coffee")]);
        assert_eq!(side(&l, &tea, &coffee), Some(AnswerSide::Negative));
        // The label wins over the gendered-word fallback.
        let (he, she) = (words(&[" he"]), words(&[" she"]));
        let odd = labels(&[("stereotype", "female"), (STEREOTYPED_ANSWER, " he")]);
        assert_eq!(side(&odd, &he, &she), Some(AnswerSide::Positive));
        // orient = "stereotype" puts the anti-stereotypical answer first.
        assert_eq!(
            oriented_words(Orient::Stereotype, &lawn, &husband, &wife),
            Some((wife.clone(), husband.clone()))
        );
        assert_eq!(
            oriented_words(Orient::Stereotype, &dishes, &husband, &wife),
            None
        );
        // A label naming neither side (or both) gives no side and fails the check.
        let moon = labels(&[(STEREOTYPED_ANSWER, " moon")]);
        assert_eq!(side(&moon, &husband, &wife), None);
        let e = check_stereotyped_answer(&moon, &husband, &wife).unwrap_err();
        assert!(e.contains("\" moon\"") && e.contains("neither"), "{e}");
        let both = check_stereotyped_answer(&dishes, &wife, &wife).unwrap_err();
        assert!(both.contains("both"), "{both}");
        assert!(check_stereotyped_answer(&dishes, &husband, &wife).is_ok());
        assert!(check_stereotyped_answer(&labels(&[]), &husband, &wife).is_ok());
    }

    #[test]
    fn only_swaps_to_the_other_gender_are_anti_stereotypical() {
        let swap = |s: &str, cf: &str| {
            is_anti_stereotypical_swap(&labels(&[("stereotype", s), ("counterfactual", cf)]))
        };
        assert!(swap("female", "man"));
        assert!(swap("male", "woman"));
        assert!(!swap("male", "man"));
        assert!(!swap("female", "woman"));
        assert!(!swap("neutral", "man"));
        let by_label = labels(&[
            ("stereotype", "female"),
            ("counterfactual", "carpenter"),
            ("counterfactual_stereotype", "male"),
        ]);
        assert!(is_anti_stereotypical_swap(&by_label));
        let neutral_trait = labels(&[
            ("stereotype", "female"),
            ("counterfactual", "tall"),
            ("counterfactual_stereotype", "neutral"),
        ]);
        assert!(!is_anti_stereotypical_swap(&neutral_trait));
        assert!(!is_anti_stereotypical_swap(&labels(&[(
            "stereotype",
            "female"
        )])));
    }
}
