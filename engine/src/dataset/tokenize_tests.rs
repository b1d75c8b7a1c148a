use super::*;
use crate::dataset::{professions, ProfessionsOptions};

fn slots(s: &[(&str, Range<usize>)]) -> Vec<(String, Range<usize>)> {
    s.iter().map(|(n, r)| (n.to_string(), r.clone())).collect()
}

#[test]
fn template_positions_read_prefix_subject_verb_end() {
    // "The nurse said that": "The" " nurse" " said" " that"
    let offs = [(0, 3), (3, 9), (9, 14), (14, 19)];
    let sl = slots(&[("subject", 4..9), ("verb", 10..14)]);
    let labels = position_labels(&[1, 2, 3, 4], &[1, 9, 3, 4], &offs, false, &sl);
    assert_eq!(labels, ["prefix", "subject", "verb", "end"]);
    // With an added BOS and a two-token subject ("nur" "se").
    let offs = [(0, 0), (0, 3), (3, 6), (6, 9), (9, 14), (14, 19)];
    let labels = position_labels(&[0, 1, 2, 5, 3, 4], &[0, 1, 9, 8, 3, 4], &offs, true, &sl);
    assert_eq!(
        labels,
        ["bos", "prefix", "subject", "subject", "verb", "end"]
    );
}

#[test]
fn unslotted_tokens_take_the_nearest_fixed_slot_or_other() {
    // "The nurse told the boss that", slots subject (varies) and object "boss" (fixed).
    let offs = [(0, 3), (3, 9), (9, 14), (14, 18), (18, 23), (23, 28)];
    let sl = slots(&[("subject", 4..9), ("object", 19..23)]);
    let clean = [1, 2, 3, 4, 5, 6];
    let labels = position_labels(&clean, &[1, 7, 3, 4, 5, 6], &offs, false, &sl);
    assert_eq!(
        labels,
        ["prefix", "subject", "object", "object", "object", "end"]
    );
    // Both slots vary: nothing is fixed, the middle is `other`.
    let labels = position_labels(&clean, &[1, 7, 3, 4, 8, 6], &offs, false, &sl);
    assert_eq!(
        labels,
        ["prefix", "subject", "other", "other", "object", "end"]
    );
}

#[test]
fn no_slots_labels_the_differing_positions_diff() {
    let offs = [(0, 0), (0, 3), (3, 9), (9, 14), (14, 19)];
    let labels = position_labels(&[0, 1, 2, 3, 4], &[0, 1, 9, 3, 4], &offs, true, &[]);
    assert_eq!(labels, ["bos", "prefix", "diff", "other", "end"]);
    let labels = position_labels(&[7], &[8], &[(0, 1)], false, &[]);
    assert_eq!(labels, ["end"]);
}

fn tiny_tokenizer() -> Tokenizer {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/data/tiny-llama2/tokenizer.json");
    Tokenizer::from_file(&path, None).expect("tiny tokenizer")
}

#[test]
fn tokenize_drops_by_reason_and_labels_bos() {
    let tok = tiny_tokenizer();
    let mk = |id: &str, clean: &str, corrupt: &str| PairSpec {
        id: id.into(),
        template: None,
        clean: clean.into(),
        corrupt: corrupt.into(),
        positive: None,
        negative: None,
        labels: Default::default(),
        slots: Vec::new(),
    };
    let pairs = [
        mk("same", "The cat said that", "The cat said that"),
        mk(
            "len",
            "The cat said that",
            "The hippopotamus-like creature said that",
        ),
        mk("ok", "The cat said that", "The cut said that"),
        mk("ok2", "The cat said that", "The mat said that"),
    ];
    let (kept, dropped) = tokenize_pairs(&pairs, &tok, Some(true)).expect("tokenize");
    let len = |t: &str| tok.encode(t, Some(true)).expect("encode").len();
    let mismatched = pairs
        .iter()
        .filter(|p| len(&p.clean) != len(&p.corrupt))
        .count();
    assert!(mismatched >= 1);
    assert_eq!(dropped.get(Dropped::IDENTICAL_PROMPTS), 1);
    assert_eq!(dropped.get(Dropped::TOKEN_COUNT_MISMATCH), mismatched);
    assert_eq!(dropped.total() + kept.len(), pairs.len());
    assert!(
        !kept.is_empty(),
        "pick test texts that tokenize to equal lengths"
    );
    for k in &kept {
        assert_eq!(k.clean_ids.len(), k.corrupt_ids.len());
        assert_eq!(k.position_labels.len(), k.clean_ids.len());
        assert_eq!(k.position_labels[0], "bos");
        assert_eq!(k.position_labels.last().map(String::as_str), Some("end"));
        assert!(k.position_labels.iter().any(|l| l == "diff") || k.position_labels.len() <= 2);
    }
    let (kept, _) = tokenize_pairs(&pairs[2..], &tok, Some(false)).expect("tokenize");
    assert!(kept.iter().all(|k| k.position_labels[0] != "bos"));
    let (kept_bos, _) = tokenize_pairs(&pairs[2..], &tok, Some(true)).expect("tokenize");
    assert!(kept_bos.iter().all(|k| k.position_labels[0] == "bos"));
}

#[test]
fn tokenize_template_pairs_on_tiny_tokenizer() {
    let tok = tiny_tokenizer();
    let pairs = professions(&ProfessionsOptions::default()).expect("professions");
    let (kept, dropped) = tokenize_pairs(&pairs, &tok, None).expect("tokenize");
    assert_eq!(kept.len() + dropped.total(), pairs.len());
    for k in &kept {
        assert_eq!(k.clean_ids.len(), k.corrupt_ids.len());
        assert_eq!(k.position_labels.len(), k.clean_ids.len());
        assert_eq!(k.position_labels.last().map(String::as_str), Some("end"));
        assert!(
            k.position_labels.iter().any(|l| l == "subject"),
            "{:?}",
            k.spec.id
        );
        assert!(
            k.position_labels.iter().any(|l| l == "verb"),
            "{:?}",
            k.spec.id
        );
    }
}
