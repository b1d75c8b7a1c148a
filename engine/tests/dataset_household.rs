//! The `household` dataset on the real demo model's tokenizer (SmolLM2-135M-Instruct, GGUF):
//! counterfactual activities matched by token count, position labels, both codes present.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use patchsweep_engine::dataset::{
    household_with, tokenize_pairs, HouseholdAnswers, HouseholdOptions, HOUSEHOLD_ACTIVITIES,
    HOUSEHOLD_TEMPLATES,
};
use patchsweep_engine::stereotype::{stereotyped_side, AnswerSide, STEREOTYPED_ANSWER};
use patchsweep_model::load::GgufSource;
use patchsweep_model::Tokenizer;

fn smollm2_tokenizer() -> Tokenizer {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-demo-model.sh first",
        path.display()
    );
    GgufSource::open(&path)
        .and_then(|g| g.tokenizer())
        .expect("SmolLM2 tokenizer from GGUF metadata")
}

#[test]
fn household_on_smollm2_pairs_equal_token_counts_with_labelled_positions() {
    let tok = smollm2_tokenizer();
    let pairs = household_with(&HouseholdOptions::default(), Some(&tok)).expect("household");
    assert_eq!(
        pairs.len(),
        HOUSEHOLD_ACTIVITIES.len() * HOUSEHOLD_TEMPLATES.len()
    );
    let (kept, dropped) = tokenize_pairs(&pairs, &tok, None).expect("tokenize");
    println!(
        "household: {} pairs, {} kept, dropped: {dropped}",
        pairs.len(),
        kept.len()
    );
    assert_eq!(kept.len() + dropped.total(), pairs.len());
    for t in &kept {
        assert_eq!(t.clean_ids.len(), t.corrupt_ids.len(), "{}", t.spec.id);
    }
    // Activities kept in every frame, and per code.
    let mut frames_of: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &kept {
        *frames_of
            .entry(t.spec.labels["activity"].as_str())
            .or_default() += 1;
    }
    let activities: BTreeSet<&str> = frames_of.keys().copied().collect();
    println!(
        "  {} of {} activities kept in at least one frame",
        activities.len(),
        HOUSEHOLD_ACTIVITIES.len()
    );
    assert!(activities.len() >= 40, "{} activities", activities.len());
    for code in ["female", "male"] {
        let n = kept
            .iter()
            .filter(|t| t.spec.labels["stereotype"] == code)
            .count();
        assert!(n >= 100, "{code}: {n} pairs");
    }
    // Every kept pair swaps to the other code, and names its stereotyped answer.
    for t in &kept {
        let l = &t.spec.labels;
        assert_ne!(
            l["stereotype"], l["counterfactual_stereotype"],
            "{}",
            t.spec.id
        );
        let want = if l["stereotype"] == "female" {
            " wife"
        } else {
            " husband"
        };
        assert_eq!(l[STEREOTYPED_ANSWER], want, "{}", t.spec.id);
    }

    // Positions: the activity's tokens are `subject` and differ between the prompts; the
    // predicate's tokens are `predicate`; the last token, " the", is `end`.
    let dishes = kept
        .iter()
        .find(|t| {
            t.spec.template.as_deref() == Some("duty_of")
                && t.spec.labels["activity"] == "washing the dishes"
        })
        .expect("washing the dishes in duty_of is kept");
    assert_eq!(dishes.spec.clean, "Washing the dishes is the duty of the");
    let labels = &dishes.position_labels;
    let offset = labels.len() - tok.encode(&dishes.spec.clean, Some(false)).unwrap().len();
    println!("  {:?} -> {:?}", dishes.spec.corrupt, labels);
    assert_eq!(labels.last().map(String::as_str), Some("end"));
    for (i, label) in labels.iter().enumerate().skip(offset) {
        if dishes.clean_ids[i] != dishes.corrupt_ids[i] {
            assert_eq!(label, "subject", "position {i} differs but is {label}");
        }
    }
    let subject: Vec<usize> = (0..labels.len())
        .filter(|&i| labels[i] == "subject")
        .collect();
    assert_eq!(
        subject.first(),
        Some(&offset),
        "the prompt opens with the activity"
    );
    let predicate = labels.iter().filter(|l| *l == "predicate").count();
    // "is the duty of": 4 tokens on SmolLM2's tokenizer, then " the" as `end`.
    assert_eq!(predicate, 4, "{labels:?}");
    assert_eq!(
        labels.len() - offset,
        subject.len() + predicate + 1,
        "{labels:?}"
    );
    let done = kept
        .iter()
        .find(|t| t.spec.template.as_deref() == Some("done_by"))
        .expect("a done_by pair");
    assert!(done.position_labels.iter().any(|l| l == "prefix"));
    assert!(done.spec.clean.starts_with("In this house, "));
    assert_eq!(done.position_labels.last().map(String::as_str), Some("end"));

    // The stereotyped side for " wife" / " husband" answers comes from the label alone.
    let words = |w: &str| vec![w.to_string()];
    for t in &kept {
        let side = stereotyped_side(&t.spec.labels, &words(" husband"), &words(" wife"));
        let want = if t.spec.labels["stereotype"] == "female" {
            AnswerSide::Negative
        } else {
            AnswerSide::Positive
        };
        assert_eq!(side, Some(want), "{}", t.spec.id);
    }
}

#[test]
fn household_options_filter_and_choose_the_answers() {
    let tok = smollm2_tokenizer();
    let opts = HouseholdOptions {
        templates: Some(vec!["done_by".into()]),
        stereotypes: Some(vec!["male".into()]),
        answers: HouseholdAnswers::Parent,
        ..Default::default()
    };
    let pairs = household_with(&opts, Some(&tok)).expect("household");
    let male = HOUSEHOLD_ACTIVITIES
        .iter()
        .filter(|a| a.1 == "male")
        .count();
    assert_eq!(pairs.len(), male);
    for p in &pairs {
        assert_eq!(p.labels["stereotype"], "male");
        assert_eq!(p.labels["template"], "done_by");
        assert_eq!(p.labels[STEREOTYPED_ANSWER], " father");
        assert!(p.corrupt.starts_with("In this house, "), "{}", p.corrupt);
    }
    let limited = HouseholdOptions {
        limit: Some(5),
        ..Default::default()
    };
    assert_eq!(household_with(&limited, Some(&tok)).unwrap().len(), 5);
}
