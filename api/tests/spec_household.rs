//! `[dataset] builtin = "household"` in a sweep spec: option errors name their field without a
//! model; on SmolLM2 the pairs' stereotyped side comes from their `stereotyped_answer` label
//! (" wife" / " husband" are not in the gendered-word list), `orient = "stereotype"` works,
//! and answers that do not include the labelled word are refused naming the pair.

use std::path::PathBuf;

use patchsweep_api::spec::{ParsedSpec, SweepSpec};
use patchsweep_model::{load, LoadOptions, LoadedModel, ModelSpec};

fn smollm2() -> (String, LoadedModel) {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-demo-model.sh first",
        path.display()
    );
    let spec = format!("gguf:{}", path.display());
    let model =
        load(&spec.parse::<ModelSpec>().unwrap(), &LoadOptions::default()).expect("the demo model");
    (spec, model)
}

fn spec_text(model: &str, metric: &str, options: &str) -> String {
    format!(
        r#"name = "household"
model = "{model}"
[metric]
kind = "logit_diff"
{metric}
[dataset]
builtin = "household"
[dataset.household]
{options}
[[experiment]]
name = "resid"
method = "activation"
components = ["resid_pre"]
layers = [0]
positions = ["subject", -1]
"#
    )
}

fn parse(text: &str) -> Result<ParsedSpec, String> {
    SweepSpec::parse(text, "test").map_err(|e| e.to_string())
}

const WIFE_HUSBAND: &str = "positive = [\" husband\"]\nnegative = [\" wife\"]";

#[test]
fn bad_household_options_name_the_field() {
    let model = "gguf:models/x.gguf";
    for (options, want) in [
        (
            "activities = [\"washing dishes\"]",
            "unknown activity \"washing dishes\"",
        ),
        ("templates = [\"duty\"]", "unknown template \"duty\""),
        ("stereotypes = [\"neutral\"]", "unknown stereotype"),
        ("answers = \"sibling\"", "sibling"),
        ("activity = [\"mowing the lawn\"]", "activity"),
        ("limit = 0", "option limit"),
    ] {
        let e = parse(&spec_text(model, WIFE_HUSBAND, options)).unwrap_err();
        assert!(e.contains(want), "{options}: {e}");
        // Option errors name the section; a bad value of a known option is a TOML error that
        // points at its line instead.
        assert!(
            e.contains("household") || e.contains("at line 10"),
            "{options}: {e}"
        );
    }
    let e = parse(&spec_text(model, WIFE_HUSBAND, "limit = 0")).unwrap_err();
    assert!(e.contains("`dataset.household`"), "{e}");
    let misplaced = spec_text(model, WIFE_HUSBAND, "")
        .replace("builtin = \"household\"", "builtin = \"traits\"");
    let e = parse(&misplaced).unwrap_err();
    assert!(
        e.contains("`dataset.household`") && e.contains("builtin = \"household\""),
        "{e}"
    );
    let e = parse(&misplaced.replace("builtin = \"traits\"", "builtin = \"chores\"")).unwrap_err();
    assert!(e.contains("professions, household, traits"), "{e}");
    // Valid options parse; the pairs wait for the tokenizer.
    let ok = parse(&spec_text(model, WIFE_HUSBAND, "answers = \"parent\"")).unwrap();
    assert!(ok.pairs.is_none());
}

#[test]
fn household_on_smollm2_takes_the_stereotyped_side_from_the_label() {
    let (model_spec, model) = smollm2();
    let options = "templates = [\"duty_of\", \"done_by\"]";
    let parsed = parse(&spec_text(&model_spec, WIFE_HUSBAND, options)).unwrap();
    let prepared = parsed.prepare(&model).expect("prepare");
    assert!(prepared.pairs.len() >= 60, "{} pairs", prepared.pairs.len());
    for (spec, toward) in prepared.specs.iter().zip(&prepared.toward_stereotype) {
        // positive " husband": male-coded pairs grow toward their stereotype.
        let want = if spec.labels["stereotype"] == "male" {
            1
        } else {
            -1
        };
        assert_eq!(*toward, want, "{}", spec.id);
    }
    for p in &prepared.pairs {
        assert!(p.position_labels.iter().any(|l| l == "subject"), "{}", p.id);
    }

    // orient = "stereotype": every pair's positive side is its anti-stereotypical answer.
    let oriented = format!("{WIFE_HUSBAND}\norient = \"stereotype\"");
    let parsed = parse(&spec_text(&model_spec, &oriented, options)).unwrap();
    let prepared = parsed.prepare(&model).expect("prepare oriented");
    assert!(prepared.toward_stereotype.iter().all(|&t| t == -1));
    let lawn = prepared
        .specs
        .iter()
        .find(|s| s.labels["activity"] == "mowing the lawn")
        .expect("mowing the lawn is kept");
    assert_eq!(lawn.positive.as_deref(), Some(&[" wife".to_string()][..]));

    // parent answers with mother / father.
    let parents = "positive = [\" father\"]\nnegative = [\" mother\"]";
    let with = format!("{options}\nanswers = \"parent\"");
    let parsed = parse(&spec_text(&model_spec, parents, &with)).unwrap();
    let prepared = parsed.prepare(&model).expect("prepare parent");
    assert!(prepared.toward_stereotype.iter().all(|&t| t != 0));

    // " he" / " she" answers do not include " wife": refused, naming the pair and the label.
    let pronouns = "positive = [\" he\"]\nnegative = [\" she\"]";
    let parsed = parse(&spec_text(&model_spec, pronouns, options)).unwrap();
    let e = parsed.prepare(&model).unwrap_err().to_string();
    assert!(
        e.contains("dataset pair") && e.contains("stereotyped_answer") && e.contains("neither"),
        "{e}"
    );
}
