//! What a pair's stereotype label says about its metric: which answer side is the
//! stereotyped one, how to orient a pair's metric by it (Vig et al.'s `y`, numerator the
//! anti-stereotypical answer), and whether its counterfactual is an anti-stereotypical swap.
//!
//! A pair is *stereotyped* when `labels["stereotype"]` is `female` or `male` and the metric's
//! answer sets are gendered words (all male on one side, all female on the other); any other
//! pair (a `neutral` profession, unlabelled or non-gendered answers) has no stereotyped side.

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

/// The metric side of the stereotyped answer of a pair labelled `labels`, given which side
/// is male: the male side for `male`, the other for `female`, `None` otherwise.
pub fn stereotyped_side(
    labels: &BTreeMap<String, String>,
    male: Option<AnswerSide>,
) -> Option<AnswerSide> {
    match (labels.get("stereotype").map(String::as_str), male) {
        (Some("male"), Some(m)) => Some(m),
        (Some("female"), Some(m)) => Some(m.opposite()),
        _ => None,
    }
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
    match stereotyped_side(labels, male_side(positive, negative)) {
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
        let male = male_side(&she, &he);
        assert_eq!(toward_stereotype(stereotyped_side(&carpenter, male)), -1);
        let male = male_side(&he, &she);
        assert_eq!(toward_stereotype(stereotyped_side(&nurse, male)), -1);
        assert_eq!(toward_stereotype(stereotyped_side(&carpenter, male)), 1);
        assert_eq!(toward_stereotype(stereotyped_side(&aide, male)), 0);
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
