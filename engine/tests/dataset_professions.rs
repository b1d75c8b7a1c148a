//! The built-in datasets on the real demo model's tokenizer (SmolLM2-135M-Instruct, GGUF).

use std::collections::BTreeSet;
use std::path::PathBuf;

use patchsweep_engine::dataset::{
    from_jsonl, professions, professions_with, tokenize_pairs, traits, traits_with, Counterfactual,
    Dropped, PairSpec, ProfessionsOptions, ProfessionsSource, Template, TraitCounterfactual,
    TraitsOptions, PROFESSIONS,
};
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

fn report(name: &str, total: usize, kept: usize, dropped: &Dropped) {
    println!("{name}: {total} pairs, {kept} kept, dropped: {dropped}");
}

#[test]
fn professions_has_100_professions_times_17_templates_with_unique_ids() {
    assert!(PROFESSIONS.len() >= 100);
    let pairs = professions(&ProfessionsOptions::default()).expect("professions");
    let profs: BTreeSet<&str> = pairs
        .iter()
        .map(|p| p.labels["profession"].as_str())
        .collect();
    let templates: BTreeSet<&str> = pairs.iter().filter_map(|p| p.template.as_deref()).collect();
    assert!(profs.len() >= 100, "{} professions", profs.len());
    assert_eq!(templates.len(), 17);
    assert!(pairs.len() >= 100 * 17);
    let ids: BTreeSet<&str> = pairs.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids.len(), pairs.len(), "ids are not unique");
}

#[test]
fn tokenize_professions_on_smollm2() {
    let tok = smollm2_tokenizer();
    let pairs = professions(&ProfessionsOptions::default()).expect("professions");
    let (kept, dropped) = tokenize_pairs(&pairs, &tok, None).expect("tokenize");
    report(
        "professions (opposite_gender)",
        pairs.len(),
        kept.len(),
        &dropped,
    );
    assert_eq!(kept.len() + dropped.total(), pairs.len());
    assert!(
        kept.len() > pairs.len() / 2,
        "most single-token professions should survive"
    );
    assert_eq!(dropped.get(Dropped::IDENTICAL_PROMPTS), 0);
    let kept_profs: BTreeSet<&str> = kept
        .iter()
        .map(|k| k.spec.labels["profession"].as_str())
        .collect();
    let lost: Vec<&str> = PROFESSIONS
        .iter()
        .map(|p| p.0)
        .filter(|p| !kept_profs.contains(p))
        .collect();
    println!(
        "  {} of {} professions kept; multi-token, dropped: {lost:?}",
        kept_profs.len(),
        PROFESSIONS.len()
    );

    let nurse = kept
        .iter()
        .find(|k| k.spec.id == "said_that/nurse/man")
        .expect("nurse kept");
    assert_eq!(nurse.spec.clean, "The nurse said that");
    assert_eq!(nurse.spec.corrupt, "The man said that");
    assert_eq!(nurse.position_labels, ["prefix", "subject", "verb", "end"]);
    assert_eq!(
        nurse.clean_ids,
        tok.encode("The nurse said that", None).expect("encode")
    );
    let home = kept
        .iter()
        .find(|k| k.spec.id == "went_home_because/nurse/man")
        .expect("kept");
    assert_eq!(
        home.position_labels,
        ["prefix", "subject", "verb", "verb", "end"]
    );
    for k in &kept {
        assert_eq!(k.position_labels[0], "prefix", "{}", k.spec.id);
        assert_eq!(k.position_labels.last().map(String::as_str), Some("end"));
        let labels: BTreeSet<&str> = k.position_labels.iter().map(String::as_str).collect();
        assert_eq!(
            labels,
            BTreeSet::from(["prefix", "subject", "verb", "end"]),
            "{}",
            k.spec.id
        );
    }

    let (kept_bos, _) = tokenize_pairs(&pairs[..5], &tok, Some(true)).expect("tokenize with BOS");
    for k in &kept_bos {
        assert_eq!(k.position_labels[0], "bos");
        assert_eq!(k.position_labels[1], "prefix");
    }
}

#[test]
fn multi_token_professions_are_labelled_subject_throughout() {
    let tok = smollm2_tokenizer();
    let opts = ProfessionsOptions {
        counterfactual: Counterfactual::OppositeProfession,
        ..Default::default()
    };
    let pairs = professions_with(&opts, Some(&tok)).expect("professions");
    let (kept, dropped) = tokenize_pairs(&pairs, &tok, None).expect("tokenize");
    report(
        "professions (opposite_profession)",
        pairs.len(),
        kept.len(),
        &dropped,
    );
    let profs: BTreeSet<&str> = pairs
        .iter()
        .map(|p| p.labels["profession"].as_str())
        .collect();
    let kept_profs: BTreeSet<&str> = kept
        .iter()
        .map(|k| k.spec.labels["profession"].as_str())
        .collect();
    println!(
        "  without an equal-length partner: {:?}",
        profs.difference(&kept_profs).collect::<Vec<_>>()
    );
    let mut multi = 0;
    for k in &kept {
        let prof = &k.spec.labels["profession"];
        let n_prof = tok
            .encode(&format!("The {prof}"), None)
            .expect("encode")
            .len()
            - tok.encode("The", None).expect("encode").len();
        let n_subject = k.position_labels.iter().filter(|l| *l == "subject").count();
        assert_eq!(n_subject, n_prof, "{}: {:?}", k.spec.id, k.position_labels);
        assert_eq!(
            k.position_labels[1..=n_prof]
                .iter()
                .filter(|l| *l == "subject")
                .count(),
            n_prof
        );
        multi += usize::from(n_prof > 1);
    }
    assert!(
        multi > 0,
        "expected some multi-token professions to be kept"
    );
}

#[test]
fn bolukbasi_professions_on_smollm2_name_both_professions() {
    let tok = smollm2_tokenizer();
    for counterfactual in [
        Counterfactual::OppositeGender,
        Counterfactual::OppositeProfession,
    ] {
        let opts = ProfessionsOptions {
            source: ProfessionsSource::Bolukbasi,
            counterfactual,
            ..Default::default()
        };
        let pairs = professions_with(&opts, Some(&tok)).expect("bolukbasi professions");
        let (kept, dropped) = tokenize_pairs(&pairs, &tok, None).expect("tokenize");
        report(
            &format!("professions (bolukbasi, {counterfactual:?})"),
            pairs.len(),
            kept.len(),
            &dropped,
        );
        assert!(kept.len() > pairs.len() / 2, "{dropped}");
        for p in &pairs {
            assert!(p.labels["stereotypicality"].parse::<f64>().is_ok());
            let named = p.labels.get("corrupt_profession");
            if counterfactual == Counterfactual::OppositeProfession {
                assert_eq!(named, Some(&p.labels["counterfactual"]), "{}", p.id);
            } else {
                assert_eq!(named, None, "{}", p.id);
            }
        }
    }
}

#[test]
fn traits_on_smollm2() {
    let tok = smollm2_tokenizer();
    let pairs = traits(&TraitsOptions::default()).expect("traits");
    let (kept, dropped) = tokenize_pairs(&pairs, &tok, None).expect("tokenize");
    report("traits (opposite)", pairs.len(), kept.len(), &dropped);
    assert!(!kept.is_empty());
    let k = kept
        .iter()
        .find(|k| k.spec.id == "said_that/gentle/tough")
        .expect("gentle kept");
    assert_eq!(
        k.position_labels,
        ["prefix", "trait", "subject", "verb", "end"]
    );
    let neutral = TraitsOptions {
        counterfactual: TraitCounterfactual::Neutral,
        ..Default::default()
    };
    let pairs = traits_with(&neutral, Some(&tok)).expect("traits");
    let (kept, dropped) = tokenize_pairs(&pairs, &tok, None).expect("tokenize");
    report("traits (neutral)", pairs.len(), kept.len(), &dropped);
    assert!(!kept.is_empty());
}

#[test]
fn jsonl_errors_name_the_line_and_pairs_tokenize() {
    let dir = std::env::temp_dir().join(format!("patchsweep-dataset-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let good = dir.join("good.jsonl");
    std::fs::write(
        &good,
        "{\"clean\":\"The nurse said that\",\"corrupt\":\"The man said that\",\"positive\":[\" she\"],\"negative\":[\" he\"]}\n",
    )
    .expect("write");
    let pairs: Vec<PairSpec> = from_jsonl(&good).expect("jsonl");
    let tok = smollm2_tokenizer();
    let (kept, _) = tokenize_pairs(&pairs, &tok, None).expect("tokenize");
    assert_eq!(kept[0].spec.id, "line1");
    assert_eq!(kept[0].position_labels, ["prefix", "diff", "other", "end"]);

    let bad = dir.join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"clean\":\"a\",\"corrupt\":\"b\"}\n\n{\"clean\":\"a\",\"corupt\":\"b\"}\n",
    )
    .expect("write");
    let e = from_jsonl(&bad).unwrap_err().to_string();
    assert!(e.contains("bad.jsonl:3:"), "{e}");
    assert!(e.contains("corupt"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn template_errors_name_the_slot() {
    let t = Template::new(
        "said_that",
        "The {subject} {verb} that",
        &[("verb", "said")],
    );
    let fill = [("subjet".to_string(), "nurse".to_string())]
        .into_iter()
        .collect();
    let e = t.fill(&fill).unwrap_err().to_string();
    assert!(e.contains("subjet") && e.contains("said_that"), "{e}");
    let e = t.fill(&Default::default()).unwrap_err().to_string();
    assert!(e.contains("\"subject\"") && e.contains("said_that"), "{e}");
}
