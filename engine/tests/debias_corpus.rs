//! Fine-tuning on a counterfactual corpus and calibrated steering, on the tiny random
//! checkpoints: the corpus config forms and their errors, the PANDA reader, the causal-LM
//! loss with padding, only the selected weights change, a debias run with corpus
//! interventions, and steering calibrated on the selection split to a zero mean.

mod debias_common;

use candle_core::{DType, Tensor};
use debias_common::{pairs, tiny};
use patchsweep_engine::debias::corpus::{panda_sentences, tokenize_sentences};
use patchsweep_engine::debias::edit::EditPositions;
use patchsweep_engine::debias::finetune::{finetune_on_sentences, sentence_loss};
use patchsweep_engine::debias::steering::{
    calibrate, calibrate_offset, gender_directions, steering_edits, CALIBRATION_TOLERANCE,
};
use patchsweep_engine::debias::{
    apply_deltas, bias_metrics, load_corpora, neutral_chunks, run_debias, split_pairs, CdaLoss,
    CorpusConfig, DebiasConfig, DebiasInputs, DebiasPair, FileRef, FinetuneConfig,
    InterventionConfig, PositionsConfig, SplitConfig, SplitPart, SteeringConfig, SteeringStrength,
    Target, NEUTRAL_TEXT,
};

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

fn inline(name: &str, content: &str) -> FileRef {
    FileRef::Inline {
        name: name.into(),
        content: content.into(),
    }
}

const PANDA: &str = r#"{"original": "He fixed the car.", "perturbed": "She fixed the car.", "selected_word": "He", "target_attribute": "woman"}
{"original": "The old man sang.", "perturbed": "The young man sang.", "selected_word": "old", "target_attribute": "young"}

{"original": "Her son ran.", "perturbed": "Their son ran.", "selected_word": "Her", "target_attribute": "non-binary"}
"#;

const TEXT: &str = "He drove his car to the river.\nThe nurse said that she was tired.\n\
                    The king thanked her.\nBread rises in a warm room.\n";

fn finetune(corpus: CorpusConfig, name: &str) -> FinetuneConfig {
    FinetuneConfig {
        name: Some(name.into()),
        steps: 3,
        lr: 1e-2,
        weight_decay: 0.0,
        batch_size: 4,
        seed: 5,
        loss: CdaLoss::FullVocab,
        corpus,
        max_tokens: 24,
    }
}

#[derive(serde::Deserialize)]
struct Wrap {
    intervention: InterventionConfig,
}

fn parse(toml_text: &str) -> Result<InterventionConfig, String> {
    toml::from_str::<Wrap>(toml_text)
        .map(|w| w.intervention)
        .map_err(|e| e.to_string())
}

#[test]
fn corpus_forms_parse_and_bad_ones_are_refused() {
    let corpus = |text: &str| match parse(&format!("[intervention]\nkind = \"finetune\"\n{text}\n"))
    {
        Ok(InterventionConfig::Finetune(f)) => Ok(f.corpus),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e),
    };
    assert_eq!(corpus("").unwrap(), CorpusConfig::Templates);
    assert_eq!(
        corpus("corpus = \"templates\"").unwrap(),
        CorpusConfig::Templates
    );
    assert_eq!(
        corpus("corpus = { text = \"c.txt\" }").unwrap(),
        CorpusConfig::Text {
            text: FileRef::Path("c.txt".into()),
            swaps: None
        }
    );
    assert_eq!(
        corpus("corpus = { panda = { name = \"p.jsonl\", content = \"x\" } }").unwrap(),
        CorpusConfig::Panda {
            panda: inline("p.jsonl", "x")
        }
    );
    match corpus("corpus = \"hf-dataset:facebook/panda@v1:data/train.jsonl\"").unwrap() {
        CorpusConfig::HfDataset(h) => {
            assert_eq!(h.repo, "facebook/panda");
            assert_eq!(h.revision.as_deref(), Some("v1"));
            assert_eq!(h.file.as_deref(), Some("data/train.jsonl"));
            assert_eq!(
                h.to_string(),
                "hf-dataset:facebook/panda@v1:data/train.jsonl"
            );
        }
        other => panic!("{other:?}"),
    }
    for bad in [
        "corpus = \"panda\"",
        "corpus = \"hf-dataset:panda\"",
        "corpus = \"hf-dataset:facebook/panda:../x.jsonl\"",
        "corpus = \"hf-dataset:facebook/panda@../../../etc\"",
        "corpus = \"hf-dataset:facebook/panda@/abs\"",
        "corpus = { text = \"a\", panda = \"b\" }",
        "corpus = { swaps = \"s.txt\" }",
        "corpus = { txt = \"a\" }",
    ] {
        let e = corpus(bad).unwrap_err();
        assert!(
            e.contains("corpus") || e.contains("hf-dataset"),
            "{bad}: {e}"
        );
    }
    // A round trip through serde keeps the form.
    let cfg = CorpusConfig::Text {
        text: inline("c.txt", "He ran."),
        swaps: Some(inline("s.txt", "he\tshe\n")),
    };
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(serde_json::from_str::<CorpusConfig>(&json).unwrap(), cfg);

    let strength =
        |text: &str| match parse(&format!("[intervention]\nkind = \"steering\"\n{text}\n")) {
            Ok(InterventionConfig::Steering(s)) => Ok(s.strength),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
    assert_eq!(strength("").unwrap(), SteeringStrength::Calibrated);
    assert_eq!(
        strength("strength = 0.5").unwrap(),
        SteeringStrength::Fixed(0.5)
    );
    assert!(strength("strength = \"full\"")
        .unwrap_err()
        .contains("calibrated"));
}

fn config_with(interventions: Vec<InterventionConfig>) -> DebiasConfig {
    DebiasConfig {
        name: "corpus".into(),
        experiment: "heads".into(),
        select: patchsweep_engine::debias::SelectionConfig {
            components: Some(vec!["head L1H2@end".into(), "mlp_out L0@subject".into()]),
            ..Default::default()
        },
        split: SplitConfig {
            heldout_professions: 0.4,
            heldout_templates: 0.0,
            seed: 1,
        },
        control_seed: 2,
        control_sets: 2,
        neutral: Default::default(),
        evaluate_selection: true,
        interventions,
    }
}

#[test]
fn bad_corpora_are_refused_at_validation_with_file_and_line() {
    let check = |corpus: CorpusConfig| {
        config_with(vec![InterventionConfig::Finetune(finetune(corpus, "ft"))])
            .validate()
            .unwrap_err()
            .to_string()
    };
    let e = check(CorpusConfig::Text {
        text: FileRef::Path("corpus.txt".into()),
        swaps: None,
    });
    assert!(
        e.contains("intervention[0].corpus.text") && e.contains("not sent with the spec"),
        "{e}"
    );
    let e = check(CorpusConfig::Text {
        text: inline("corpus.txt", "\n  \n"),
        swaps: None,
    });
    assert!(e.contains("corpus.txt") && e.contains("empty"), "{e}");
    let e = check(CorpusConfig::Text {
        text: inline("corpus.txt", TEXT),
        swaps: Some(inline("swaps.txt", "he\tshe\nking queen\nprince\n")),
    });
    assert!(e.contains("swaps.txt:3"), "{e}");
    let e = check(CorpusConfig::Panda {
        panda: inline("p.jsonl", &format!("{PANDA}{{\"original\": \"x\"}}\n")),
    });
    assert!(e.contains("p.jsonl:5") && e.contains("perturbed"), "{e}");
    // answer_set is for template prompts only.
    let mut f = finetune(
        CorpusConfig::Panda {
            panda: inline("p.jsonl", PANDA),
        },
        "ft",
    );
    f.loss = CdaLoss::AnswerSet;
    let e = config_with(vec![InterventionConfig::Finetune(f)])
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains("answer_set"), "{e}");
}

#[test]
fn the_panda_reader_keeps_gender_rows_and_names_bad_lines() {
    assert_eq!(
        panda_sentences("p.jsonl", PANDA).unwrap(),
        [
            "He fixed the car.",
            "She fixed the car.",
            "Her son ran.",
            "Their son ran."
        ]
    );
    for (text, line, what) in [
        ("{\"original\": \"a\"\n", 1, "not JSON"),
        (
            "\n\n{\"original\": \"a\", \"perturbed\": 3, \"selected_word\": \"a\", \"target_attribute\": \"man\"}\n",
            3,
            "`perturbed` is not a string",
        ),
        (
            "{\"original\": \"a\", \"perturbed\": \"b\", \"target_attribute\": \"man\"}\n",
            1,
            "selected_word",
        ),
        ("[1, 2]\n", 1, "not a JSON object"),
    ] {
        let e = panda_sentences("p.jsonl", text).unwrap_err().to_string();
        assert!(
            e.contains(&format!("p.jsonl:{line}")) && e.contains(what),
            "{e}"
        );
    }
    let only_race = "{\"original\": \"a\", \"perturbed\": \"b\", \"selected_word\": \"a\", \"target_attribute\": \"black\"}\n";
    let e = panda_sentences("p.jsonl", only_race)
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty") && e.contains("gender"), "{e}");
}

#[test]
fn the_sentence_loss_ignores_padding() {
    let loaded = tiny("tiny-llama2");
    let (model, tok) = (&loaded.model, &loaded.tokenizer);
    let ids = tokenize_sentences(
        tok,
        &[
            "He drove his car.".into(),
            "The nurse said that she was tired.".into(),
        ],
        None,
        64,
    )
    .unwrap();
    assert!(ids[0].len() < ids[1].len());
    let one = |r: &[u32]| -> f64 {
        f64::from(
            sentence_loss(model, &[r])
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
        )
    };
    let rows: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let both = f64::from(
        sentence_loss(model, &rows)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
    );
    // The token-weighted mean of the two sentences' own losses.
    let (n0, n1) = ((ids[0].len() - 1) as f64, (ids[1].len() - 1) as f64);
    let expect = (one(&ids[0]) * n0 + one(&ids[1]) * n1) / (n0 + n1);
    assert!((both - expect).abs() < 1e-4, "{both} vs {expect}");
    // And the first sentence alone is its mean next-token NLL.
    assert!(one(&ids[0]) > 0.0);
}

#[test]
fn corpus_finetuning_changes_only_the_selected_weights() {
    let loaded = tiny("tiny-llama2");
    let model = &loaded.model;
    let mut cfg = config_with(vec![InterventionConfig::Finetune(finetune(
        CorpusConfig::Text {
            text: inline("corpus.txt", TEXT),
            swaps: None,
        },
        "ft",
    ))]);
    cfg.validate().unwrap();
    let corpora = load_corpora(&cfg, &loaded.tokenizer, None).unwrap();
    // Four lines, three of them with a swapped copy.
    let sentences = corpora.get("ft").unwrap();
    assert_eq!(sentences.len(), 7);
    let targets: Vec<Target> = ["head L0H1", "mlp_out L1"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let InterventionConfig::Finetune(f) = &mut cfg.interventions[0] else {
        unreachable!()
    };
    let before: Vec<Vec<u32>> = model
        .weights
        .layers
        .iter()
        .map(|l| bits(&l.q_proj))
        .collect();
    let out = finetune_on_sentences(model, &targets, sentences, f, &mut |_| {}).unwrap();
    let again = finetune_on_sentences(model, &targets, sentences, f, &mut |_| {}).unwrap();
    assert_eq!(out.losses, again.losses, "seeded: the same losses again");
    assert!(out.losses.iter().all(|l| l.is_finite() && *l > 0.0));
    let after: Vec<Vec<u32>> = model
        .weights
        .layers
        .iter()
        .map(|l| bits(&l.q_proj))
        .collect();
    assert!(before == after, "the base model changed");
    let tuned = apply_deltas(model, &out.deltas).unwrap();
    let (b, t) = (&model.weights, &tuned.weights);
    assert!(bits(&b.embed_tokens) == bits(&t.embed_tokens));
    assert!(bits(&b.lm_head) == bits(&t.lm_head));
    let dh = model.cfg.d_head;
    for l in 0..model.cfg.n_layers {
        let (bl, tl) = (&b.layers[l], &t.layers[l]);
        for (name, x, y) in [
            ("q_proj", &bl.q_proj, &tl.q_proj),
            ("k_proj", &bl.k_proj, &tl.k_proj),
            ("v_proj", &bl.v_proj, &tl.v_proj),
            ("input_layernorm", &bl.input_layernorm, &tl.input_layernorm),
        ] {
            assert!(bits(x) == bits(y), "layer {l} {name} changed");
        }
        for (name, x, y) in [
            ("gate_proj", &bl.gate_proj, &tl.gate_proj),
            ("up_proj", &bl.up_proj, &tl.up_proj),
            ("down_proj", &bl.down_proj, &tl.down_proj),
        ] {
            assert_eq!(bits(x) == bits(y), l != 1, "layer {l} {name}");
        }
        for c in 0..bl.o_proj.dim(1).unwrap() {
            let col = |w: &Tensor| bits(&w.narrow(1, c, 1).unwrap());
            let selected = l == 0 && (dh..2 * dh).contains(&c);
            assert_eq!(
                col(&bl.o_proj) == col(&tl.o_proj),
                !selected,
                "layer {l} o_proj column {c}"
            );
        }
    }
    // Training lowers the corpus loss.
    f.steps = 12;
    let longer = finetune_on_sentences(model, &targets, sentences, f, &mut |_| {}).unwrap();
    let rows: Vec<&[u32]> = sentences.iter().map(Vec::as_slice).collect();
    let loss = |m| sentence_loss(m, &rows).unwrap().to_scalar::<f32>().unwrap();
    let tuned = apply_deltas(model, &longer.deltas).unwrap();
    assert!(
        loss(&tuned) < loss(model),
        "{} !< {}",
        loss(&tuned),
        loss(model)
    );
}

#[test]
fn a_debias_run_with_corpus_finetuning_and_calibrated_steering() {
    let loaded = tiny("tiny-llama2");
    let model = &loaded.model;
    let all = pairs(10, 3);
    let cfg = config_with(vec![
        InterventionConfig::Steering(SteeringConfig {
            name: None,
            positions: PositionsConfig::All,
            strength: SteeringStrength::Calibrated,
        }),
        InterventionConfig::Finetune(finetune(
            CorpusConfig::Text {
                text: inline("corpus.txt", TEXT),
                swaps: None,
            },
            "finetune_text",
        )),
        InterventionConfig::Finetune(finetune(
            CorpusConfig::Panda {
                panda: inline("p.jsonl", PANDA),
            },
            "finetune_panda",
        )),
    ]);
    let split = split_pairs(&all, &cfg.split).unwrap();
    let neutral = neutral_chunks(&loaded.tokenizer, NEUTRAL_TEXT, 24, Some(4), None).unwrap();
    let corpora = load_corpora(&cfg, &loaded.tokenizer, None).unwrap();
    let sel: Vec<Target> = ["head L1H2@end", "mlp_out L0@subject"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let controls = patchsweep_engine::debias::matched_controls(
        &sel,
        cfg.control_seed,
        cfg.control_sets,
        &model.cfg,
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("patchsweep-corpus-run-{}", std::process::id()));
    let run = |corpora| {
        run_debias(
            &cfg,
            &DebiasInputs {
                model,
                pairs: &all,
                split: &split,
                targets: &sel,
                controls: &controls,
                neutral: &neutral,
                corpora,
                benchmarks: &[],
                deltas_dir: Some(&dir),
                max_batch: 8,
            },
            &mut |_, _| {},
        )
    };
    let out = run(&corpora).unwrap();
    for name in ["finetune_text", "finetune_panda"] {
        assert!(
            out.rows
                .iter()
                .any(|r| r.intervention == name && r.split == "heldout" && r.delta != 0.0),
            "{name} changed no held-out metric"
        );
        assert!(out
            .rows
            .iter()
            .filter(|r| r.intervention == name)
            .all(|r| r.control.as_ref().is_some_and(|c| c.sets == 2)));
        let a = out
            .artifacts
            .iter()
            .find(|a| a.intervention == name && a.control.is_none())
            .unwrap();
        assert!(a.path.is_file() && a.first_loss.is_finite(), "{a:?}");
    }
    // Calibrated steering: on the selection split the mean is 0.
    let c = out
        .calibrations
        .iter()
        .find(|c| c.intervention == "steering" && c.control.is_none())
        .unwrap()
        .calibration;
    assert!(
        c.zero_found && c.after.abs() <= CALIBRATION_TOLERANCE,
        "{c:?}"
    );
    let selection_row = out
        .rows
        .iter()
        .find(|r| {
            r.intervention == "steering" && r.split == "selection" && r.metric == "mean_logit_diff"
        })
        .unwrap();
    assert!(
        (selection_row.before - c.before).abs() < 1e-9,
        "{selection_row:?} {c:?}"
    );
    assert!(
        (selection_row.after - c.after).abs() < 1e-6,
        "{selection_row:?} {c:?}"
    );
    // Corpora not loaded: a clear error, not a silent template run.
    let e = run(&Default::default()).unwrap_err().to_string();
    assert!(
        e.contains("finetune_text") && e.contains("not loaded"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn calibration_finds_the_offset_where_the_mean_is_zero() {
    // SmolLM2's demo selection split, layers 25-27, as a line: +0.07 without steering,
    // -1.05 with the centres where they are, rising about 4.2 per gap.
    let line = |t: f64| -1.05 + 4.2 * t;
    let mut calls = 0;
    let c = calibrate(0.07, |t| {
        calls += 1;
        Ok(line(t))
    })
    .unwrap();
    assert!(
        c.zero_found && c.after.abs() <= CALIBRATION_TOLERANCE,
        "{c:?}"
    );
    assert!((c.offset - 0.25).abs() < 0.01 / 4.2 + 1e-12, "{c:?}");
    assert_eq!((c.before, c.at_centre), (0.07, -1.05));
    assert!(calls <= 30, "{calls}");
    // A positive mean at the centre: the steps go the other way.
    let c = calibrate(0.0, |t| Ok(3.0 + 0.5 * t)).unwrap();
    assert!(
        c.zero_found && (c.offset + 6.0).abs() < 0.02 + 1e-12,
        "{c:?}"
    );
    // Already 0 at the centre: no offset.
    let c = calibrate(1.0, |t| Ok(0.001 + t)).unwrap();
    assert_eq!(c.offset, 0.0);
    // No zero within reach (the mean saturates): the closest offset, said so.
    let c = calibrate(0.0, |t| Ok(-1.0 + 0.5 * (t.tanh() + 1.0) * 0.9)).unwrap();
    assert!(!c.zero_found && c.after < 0.0 && c.after > -0.2, "{c:?}");
    assert!(calibrate(0.0, |_| Ok(f64::NAN)).is_err());
}

#[test]
fn calibrated_steering_on_the_tiny_model_brings_the_selection_mean_to_zero() {
    let model = tiny("tiny-mistral").model;
    let all = pairs(9, 2);
    let split = split_pairs(
        &all,
        &SplitConfig {
            heldout_professions: 0.3,
            heldout_templates: 0.0,
            seed: 4,
        },
    )
    .unwrap();
    let selection: Vec<&DebiasPair> = split.pairs(SplitPart::Selection, &all);
    let dirs = gender_directions(&model, &[0, 1], &selection, 16).unwrap();
    let c = calibrate_offset(&model, &dirs, &EditPositions::All, &selection, 16).unwrap();
    assert!(
        c.zero_found && c.after.abs() <= CALIBRATION_TOLERANCE,
        "{c:?}"
    );
    // The figures are those of the edits at that offset.
    let edits = steering_edits(&dirs, EditPositions::All, 1.0, c.offset);
    let m = bias_metrics(&model, &edits, &selection, 16).unwrap();
    assert!((m.mean_logit_diff - c.after).abs() < 1e-6, "{m:?} {c:?}");
    let unsteered = bias_metrics(&model, &[], &selection, 16).unwrap();
    assert_eq!(unsteered.mean_logit_diff, c.before);
}

#[test]
fn calibrated_steering_brings_the_selection_mean_logit_difference_to_zero() {
    // The defect this guards against: removing the projection around 0 moved every prompt
    // along the direction (the residual's coordinate is far from 0 for prompts of both
    // sides), and a calibration that only refused a change of sign kept the overshoot.
    let loaded = tiny("tiny-llama2");
    let model = &loaded.model;
    let all = pairs(12, 3);
    let mut cfg = config_with(vec![InterventionConfig::Steering(SteeringConfig {
        name: None,
        positions: PositionsConfig::All,
        strength: SteeringStrength::Calibrated,
    })]);
    cfg.control_sets = 1;
    let split = split_pairs(&all, &cfg.split).unwrap();
    let neutral = neutral_chunks(&loaded.tokenizer, NEUTRAL_TEXT, 24, Some(2), None).unwrap();
    let sel: Vec<Target> = ["head L1H2@end", "mlp_out L0@subject"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let controls =
        patchsweep_engine::debias::matched_controls(&sel, cfg.control_seed, 1, &model.cfg).unwrap();
    let out = run_debias(
        &cfg,
        &DebiasInputs {
            model,
            pairs: &all,
            split: &split,
            targets: &sel,
            controls: &controls,
            neutral: &neutral,
            corpora: &Default::default(),
            benchmarks: &[],
            deltas_dir: None,
            max_batch: 8,
        },
        &mut |_, _| {},
    )
    .unwrap();
    let row = |split: &str| {
        out.rows
            .iter()
            .find(|r| r.split == split && r.metric == "mean_logit_diff")
            .unwrap()
            .clone()
    };
    let selection = row("selection");
    assert!(
        selection.before.abs() > 0.05,
        "nothing to calibrate: {selection:?}"
    );
    assert!(selection.after.abs() <= 0.01, "{selection:?}");
    // The held-out pairs are measured with the same edits (not calibrated on).
    let heldout = row("heldout");
    assert!(
        heldout.after.is_finite() && heldout.after != heldout.before,
        "{heldout:?}"
    );
}
