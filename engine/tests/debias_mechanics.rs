//! Debias mechanics on the tiny random checkpoints: edits that touch nothing change
//! nothing, head ablation equals a manual patch, steering moves the projection to its centre,
//! fine-tuning changes only the selected weights, and re-running gives the same numbers.

mod debias_common;

use candle_core::{DType, Tensor};
use debias_common::{pairs, tiny};
use patchsweep_engine::debias::ablation::{
    ablation_edits, ablation_edits_labelled, ReferencePrompt,
};
use patchsweep_engine::debias::batch::{run_edited, Rows};
use patchsweep_engine::debias::deltas::{apply_deltas, load_deltas, save_deltas};
use patchsweep_engine::debias::edit::EditPositions;
use patchsweep_engine::debias::finetune::{cda_examples, cda_loss, finetune, CdaExample};
use patchsweep_engine::debias::steering::{gender_directions, steering_edits};
use patchsweep_engine::debias::{
    matched_controls, neutral_chunks, run_debias, split_pairs, AblationConfig, AblationMode,
    CdaLoss, Corpora, CorpusConfig, DebiasConfig, DebiasInputs, DebiasPair, FinetuneConfig,
    InterventionConfig, PositionsConfig, SplitConfig, SplitPart, SteeringConfig, SteeringStrength,
    Target, NEUTRAL_TEXT,
};
use patchsweep_engine::grid::PositionRef;
use patchsweep_model::{
    Forward, HookPoint, HookedTransformer, Input, NoHook, Patch, PatchTarget, Patcher, Unembed,
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

fn targets(specs: &[&str]) -> Vec<Target> {
    specs.iter().map(|s| s.parse().unwrap()).collect()
}

fn rows(ps: &[DebiasPair]) -> Rows<'_> {
    Rows {
        ids: ps.iter().map(|p| p.input.clean_ids.as_slice()).collect(),
        labels: ps
            .iter()
            .map(|p| Some(p.input.position_labels.as_slice()))
            .collect(),
    }
}

/// Pairs of the first template only (all of length 5, one batch).
fn batch_pairs() -> Vec<DebiasPair> {
    pairs(6, 1)
}

#[test]
fn edits_that_touch_nothing_change_nothing() {
    let model = tiny("tiny-llama2").model;
    let ps = batch_pairs();
    let plain = model
        .forward(
            Input::Tokens(
                &model
                    .tokens_tensor(&rows(&ps).ids.iter().map(|r| r.to_vec()).collect::<Vec<_>>())
                    .unwrap(),
            ),
            &mut NoHook,
            Forward {
                unembed: Unembed::Last,
                ..Forward::default()
            },
        )
        .unwrap()
        .logits
        .unwrap();
    let none = run_edited(&model, &[], &rows(&ps), Unembed::Last, &[]).unwrap();
    assert!(bits(&plain) == bits(&none.logits));
    let cfg = AblationConfig::default();
    let edits = ablation_edits(&model, &[], &cfg, &[], 8).unwrap();
    assert!(edits.is_empty());
}

#[test]
fn zero_ablating_a_head_changes_the_output_and_equals_a_manual_patch() {
    let model = tiny("tiny-llama2").model;
    let ps = batch_pairs();
    let ids: Vec<Vec<u32>> = ps.iter().map(|p| p.input.clean_ids.clone()).collect();
    let tokens = model.tokens_tensor(&ids).unwrap();
    let manual = |positions: Option<Vec<usize>>| {
        let patches = [Patch {
            point: HookPoint::Z(0),
            target: PatchTarget {
                heads: Some(vec![2]),
                positions,
                ..Default::default()
            },
            value: Tensor::zeros((1, 1, 1, model.cfg.d_head), DType::F32, model.device()).unwrap(),
        }];
        let mut hook = Patcher::new(&patches);
        let opts = Forward {
            unembed: Unembed::Last,
            ..Forward::default()
        };
        model
            .forward(Input::Tokens(&tokens), &mut hook, opts)
            .unwrap()
            .logits
            .unwrap()
    };
    let base = run_edited(&model, &[], &rows(&ps), Unembed::Last, &[])
        .unwrap()
        .logits;
    for (positions, manual_positions) in [
        (PositionsConfig::All, None),
        (PositionsConfig::Component, Some(vec![2])), // the target's own label: subject
        (
            PositionsConfig::List(vec![PositionRef::Label("last".into())]),
            Some(vec![4]),
        ),
    ] {
        let cfg = AblationConfig {
            positions,
            ..Default::default()
        };
        let edits = ablation_edits(&model, &targets(&["head L0H2@subject"]), &cfg, &[], 8).unwrap();
        let ours = run_edited(&model, &edits, &rows(&ps), Unembed::Last, &[])
            .unwrap()
            .logits;
        assert!(
            bits(&ours) == bits(&manual(manual_positions.clone())),
            "{manual_positions:?}"
        );
        assert!(bits(&ours) != bits(&base), "ablation changed nothing");
    }
}

/// `point`'s value in every row and position, `[rows, positions, width]` (head `head` of a
/// `hook_z` value).
fn values_at(
    run: &patchsweep_engine::debias::batch::EditedRun,
    point: HookPoint,
    head: Option<usize>,
) -> Tensor {
    let v = run.cache.get(point).unwrap().to_dtype(DType::F32).unwrap();
    match head {
        Some(h) => v.narrow(2, h, 1).unwrap().squeeze(2).unwrap(),
        None => v,
    }
}

fn max_gap(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn mean_ablation_replaces_each_position_by_its_label_mean_and_leaves_position_0() {
    let model = tiny("tiny-llama2").model;
    // 6 pairs of 5 tokens labelled prefix, prefix, subject, verb, end.
    let ps = batch_pairs();
    let reference: Vec<ReferencePrompt> = ps
        .iter()
        .map(|p| {
            (
                p.input.corrupt_ids.as_slice(),
                Some(p.input.position_labels.as_slice()),
            )
        })
        .collect();
    let ref_rows = Rows {
        ids: reference.iter().map(|r| r.0).collect(),
        labels: vec![None; reference.len()],
    };
    let unlabelled = Rows {
        ids: rows(&ps).ids,
        labels: vec![None; ps.len()],
    };
    for (target, point, head) in [
        ("mlp_out L0", HookPoint::MlpOut(0), None),
        ("head L1H2", HookPoint::Z(1), Some(2)),
    ] {
        let plain = |r: &Rows| {
            values_at(
                &run_edited(&model, &[], r, Unembed::None, &[point]).unwrap(),
                point,
                head,
            )
        };
        let (reference_values, before) = (plain(&ref_rows), plain(&rows(&ps)));
        // Mean over every reference row at these positions, `[width]`.
        let mean_at = |positions: &[usize]| -> Tensor {
            let parts: Vec<Tensor> = positions
                .iter()
                .map(|&p| reference_values.narrow(1, p, 1).unwrap())
                .collect();
            Tensor::cat(&parts, 1)
                .unwrap()
                .mean(0)
                .unwrap()
                .mean(0)
                .unwrap()
        };
        for include_first in [false, true] {
            let cfg = AblationConfig {
                mode: AblationMode::Mean,
                positions: PositionsConfig::All,
                include_first_position: include_first,
                ..Default::default()
            };
            let edits =
                ablation_edits_labelled(&model, &targets(&[target]), &cfg, &reference, 8).unwrap();
            let first = usize::from(!include_first);
            let label_positions: [Vec<usize>; 5] = [
                (first..2).collect(),
                (first..2).collect(),
                vec![2],
                vec![3],
                vec![4],
            ];
            let run = |r: &Rows| {
                values_at(
                    &run_edited(&model, &edits, r, Unembed::None, &[point]).unwrap(),
                    point,
                    head,
                )
            };
            let (after, after_unlabelled) = (run(&rows(&ps)), run(&unlabelled));
            let overall = mean_at(&(first..5).collect::<Vec<_>>());
            for (p, positions) in label_positions.iter().enumerate() {
                let got = after.narrow(1, p, 1).unwrap().squeeze(1).unwrap();
                let got_unlabelled = after_unlabelled
                    .narrow(1, p, 1)
                    .unwrap()
                    .squeeze(1)
                    .unwrap();
                let (want, want_unlabelled) = if p < first {
                    let kept = before.narrow(1, p, 1).unwrap().squeeze(1).unwrap();
                    (kept.clone(), kept)
                } else {
                    let n = ps.len();
                    (
                        mean_at(positions)
                            .unsqueeze(0)
                            .unwrap()
                            .repeat((n, 1))
                            .unwrap(),
                        overall.unsqueeze(0).unwrap().repeat((n, 1)).unwrap(),
                    )
                };
                let (gap, gap_unlabelled) = (
                    max_gap(&got, &want),
                    max_gap(&got_unlabelled, &want_unlabelled),
                );
                assert!(
                    gap < 1e-5,
                    "{target} include_first={include_first} position {p}: {gap}"
                );
                assert!(
                    gap_unlabelled < 1e-5,
                    "{target} include_first={include_first} unlabelled position {p}: {gap_unlabelled}"
                );
            }
            // Position 0 is left alone bit for bit unless asked for.
            let p0 = |t: &Tensor| bits(&t.narrow(1, 0, 1).unwrap());
            assert_eq!(p0(&after) == p0(&before), !include_first, "{target}");
        }
    }
}

#[test]
fn cda_answer_set_loss_ignores_pronoun_mass() {
    let mut logits = vec![0.5f32, -1.0, 2.0, 0.0, 1.5, -0.5];
    let examples = [
        CdaExample {
            ids: vec![1],
            target: 2,
            answers: vec![2, 4],
        },
        CdaExample {
            ids: vec![1],
            target: 4,
            answers: vec![2, 4],
        },
    ];
    let refs: Vec<&CdaExample> = examples.iter().collect();
    let loss = |logits: &[f32], kind: CdaLoss| -> f32 {
        let row = Tensor::new(logits, &candle_core::Device::Cpu).unwrap();
        let l = Tensor::stack(&[row.clone(), row], 0).unwrap();
        cda_loss(&l, &refs, kind)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let (full, set) = (
        loss(&logits, CdaLoss::FullVocab),
        loss(&logits, CdaLoss::AnswerSet),
    );
    // Raise both answers together: more pronoun mass, the same preference between them.
    logits[2] += 3.0;
    logits[4] += 3.0;
    let (full_up, set_up) = (
        loss(&logits, CdaLoss::FullVocab),
        loss(&logits, CdaLoss::AnswerSet),
    );
    assert!(
        full_up < full - 0.2,
        "full-vocab CE falls with pronoun mass: {full} -> {full_up}"
    );
    assert!(
        (set_up - set).abs() < 1e-6,
        "answer-set CE does not: {set} -> {set_up}"
    );
    // Its minimum, ln 2, is exactly "no preference".
    logits[2] = logits[4];
    assert!((loss(&logits, CdaLoss::AnswerSet) - std::f32::consts::LN_2).abs() < 1e-6);
    assert!(loss(&logits, CdaLoss::FullVocab) > std::f32::consts::LN_2 + 1e-3);
}

#[test]
fn steering_sets_each_coordinate_to_its_labels_centre_at_the_chosen_layers() {
    let model = tiny("tiny-mistral").model;
    let all = pairs(9, 2);
    let refs: Vec<&DebiasPair> = all.iter().collect();
    let dirs = gender_directions(&model, &[0, 1], &refs, 16).unwrap();
    let ps: Vec<DebiasPair> = all
        .iter()
        .filter(|p| p.input.clean_ids.len() == 5)
        .cloned()
        .collect();
    let points = [
        HookPoint::ResidPost(0),
        HookPoint::ResidPre(1),
        HookPoint::ResidPost(1),
    ];
    // The coordinates along `u`, `[rows][positions]`.
    let coords = |c: &patchsweep_model::ActivationCache, point, u: &Tensor| -> Vec<Vec<f32>> {
        c.get(point)
            .unwrap()
            .broadcast_mul(u)
            .unwrap()
            .sum(2)
            .unwrap()
            .to_vec2()
            .unwrap()
    };
    let before = run_edited(&model, &[], &rows(&ps), Unembed::Last, &points).unwrap();
    let layer0 = &dirs[&0];
    // The centre is the mean coordinate of both prompts per label: the clean prompts' own
    // coordinates are spread around it (the residual's coordinate is not 0 there).
    let c0 = coords(&before.cache, points[0], &layer0.unit);
    assert!(
        layer0.centre.fallback.abs() > 1e-3 && layer0.gap > 1e-3,
        "{:?} {}",
        layer0.centre,
        layer0.gap
    );
    for offset in [0.0, 0.5] {
        let edits = steering_edits(&dirs, EditPositions::All, 1.0, offset);
        let after = run_edited(&model, &edits, &rows(&ps), Unembed::Last, &points).unwrap();
        for (point, layer) in [(points[0], 0), (points[1], 0), (points[2], 1)] {
            let d = &dirs[&layer];
            let got = coords(&after.cache, point, &d.unit);
            let was = coords(&before.cache, point, &d.unit);
            for (r, p) in ps.iter().enumerate() {
                // Position 0 is never edited (and nothing before it can change it).
                if point != points[2] {
                    assert_eq!(got[r][0].to_bits(), was[r][0].to_bits(), "{point} row {r}");
                }
                for (k, label) in p.input.position_labels.iter().enumerate().skip(1) {
                    let want = d.centre.by_label[label] + offset * d.gap;
                    assert!(
                        (f64::from(got[r][k]) - want).abs() < 1e-3 * want.abs().max(1.0),
                        "{point} row {r} position {k} ({label}): {} != {want}",
                        got[r][k]
                    );
                }
            }
        }
        assert!(bits(&before.logits) != bits(&after.logits));
    }
    // Half the strength moves each coordinate half way to its centre.
    let half = steering_edits(&dirs, EditPositions::All, 0.5, 0.0);
    let after = run_edited(&model, &half, &rows(&ps), Unembed::Last, &points[..1]).unwrap();
    let got = coords(&after.cache, points[0], &layer0.unit);
    for (r, p) in ps.iter().enumerate() {
        for (k, label) in p.input.position_labels.iter().enumerate().skip(1) {
            let want = 0.5 * (f64::from(c0[r][k]) + layer0.centre.by_label[label]);
            assert!(
                (f64::from(got[r][k]) - want).abs() < 1e-3 * want.abs().max(1.0),
                "row {r} position {k}: {} != {want}",
                got[r][k]
            );
        }
    }
}

#[test]
fn finetuning_touches_only_the_selected_weights() {
    let model = tiny("tiny-llama2").model;
    let all = pairs(6, 2);
    let refs: Vec<&DebiasPair> = all.iter().collect();
    let examples = cda_examples(&refs);
    assert_eq!(examples.len(), 2 * all.len());
    let cfg = FinetuneConfig {
        name: None,
        steps: 4,
        lr: 1e-2,
        weight_decay: 0.0,
        batch_size: 5,
        seed: 3,
        loss: CdaLoss::FullVocab,
        corpus: CorpusConfig::Templates,
        max_tokens: 64,
    };
    let base_before: Vec<Vec<u32>> = all_tensors(&model).iter().map(bits).collect();
    let mut logged = Vec::new();
    let out = finetune(
        &model,
        &targets(&["head L0H1", "mlp_out L1"]),
        &examples,
        &cfg,
        &mut |s| logged.push(s.step),
    )
    .unwrap();
    assert_eq!(out.losses.len(), 4);
    assert_eq!(logged, [1, 2, 3, 4], "a callback after every step");
    let tuned = apply_deltas(&model, &out.deltas).unwrap();
    // The base model is untouched.
    let base_after: Vec<Vec<u32>> = all_tensors(&model).iter().map(bits).collect();
    assert!(base_before == base_after, "the base model changed");
    let (b, t) = (&model.weights, &tuned.weights);
    assert!(bits(&b.embed_tokens) == bits(&t.embed_tokens));
    assert!(bits(&b.norm) == bits(&t.norm));
    assert!(bits(&b.lm_head) == bits(&t.lm_head));
    let dh = model.cfg.d_head;
    for l in 0..model.cfg.n_layers {
        let (bl, tl) = (&b.layers[l], &t.layers[l]);
        for (name, x, y) in [
            ("input_layernorm", &bl.input_layernorm, &tl.input_layernorm),
            (
                "post_attention_layernorm",
                &bl.post_attention_layernorm,
                &tl.post_attention_layernorm,
            ),
            ("q_proj", &bl.q_proj, &tl.q_proj),
            ("k_proj", &bl.k_proj, &tl.k_proj),
            ("v_proj", &bl.v_proj, &tl.v_proj),
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
        let width = bl.o_proj.dim(1).unwrap();
        for c in 0..width {
            let col = |w: &Tensor| bits(&w.narrow(1, c, 1).unwrap());
            let selected = l == 0 && (dh..2 * dh).contains(&c);
            assert_eq!(
                col(&bl.o_proj) == col(&tl.o_proj),
                !selected,
                "layer {l} o_proj column {c}"
            );
        }
    }
    // The deltas file reproduces the tuned model exactly.
    let dir = std::env::temp_dir().join(format!("patchsweep-debias-{}", std::process::id()));
    let path = dir.join("deltas.safetensors");
    save_deltas(&out.deltas, &path).unwrap();
    let again = apply_deltas(&model, &load_deltas(&path, model.device()).unwrap()).unwrap();
    let (x, y): (Vec<_>, Vec<_>) = (
        all_tensors(&tuned).iter().map(bits).collect(),
        all_tensors(&again).iter().map(bits).collect(),
    );
    assert!(x == y, "the deltas file does not reproduce the tuned model");
    std::fs::remove_dir_all(&dir).ok();
    let err = load_deltas(&dir.join("missing.safetensors"), model.device())
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.safetensors"), "{err}");
}

fn all_tensors(m: &HookedTransformer) -> Vec<Tensor> {
    let w = &m.weights;
    let mut v = vec![w.embed_tokens.clone(), w.norm.clone(), w.lm_head.clone()];
    for l in &w.layers {
        v.extend([
            l.input_layernorm.clone(),
            l.q_proj.clone(),
            l.k_proj.clone(),
            l.v_proj.clone(),
            l.o_proj.clone(),
            l.post_attention_layernorm.clone(),
            l.gate_proj.clone(),
            l.up_proj.clone(),
            l.down_proj.clone(),
        ]);
    }
    v
}

fn config() -> DebiasConfig {
    DebiasConfig {
        name: "tiny".into(),
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
        control_sets: 3,
        neutral: Default::default(),
        evaluate_selection: true,
        interventions: vec![
            InterventionConfig::Ablation(AblationConfig::default()),
            InterventionConfig::Ablation(AblationConfig {
                mode: AblationMode::Mean,
                ..Default::default()
            }),
            InterventionConfig::Steering(SteeringConfig {
                name: None,
                positions: PositionsConfig::All,
                strength: SteeringStrength::Calibrated,
            }),
            InterventionConfig::Finetune(FinetuneConfig {
                name: None,
                steps: 3,
                lr: 1e-2,
                weight_decay: 0.0,
                batch_size: 8,
                seed: 0,
                loss: CdaLoss::AnswerSet,
                corpus: CorpusConfig::Templates,
                max_tokens: 64,
            }),
        ],
    }
}

#[test]
fn a_debias_run_is_reproducible_and_an_empty_selection_changes_nothing() {
    let loaded = tiny("tiny-llama2");
    let model = &loaded.model;
    let all = pairs(10, 3);
    let cfg = config();
    let split = split_pairs(&all, &cfg.split).unwrap();
    assert!(!split.pairs(SplitPart::Heldout, &all).is_empty());
    let neutral = neutral_chunks(&loaded.tokenizer, NEUTRAL_TEXT, 24, Some(6), None).unwrap();
    assert_eq!(neutral.len(), 6);
    let sel = targets(&["head L1H2@end", "mlp_out L0@subject"]);
    let controls = matched_controls(&sel, cfg.control_seed, cfg.control_sets, &model.cfg).unwrap();
    let dir = std::env::temp_dir().join(format!("patchsweep-debias-run-{}", std::process::id()));
    let run = |targets: &[Target], controls: &[Vec<Target>], sub: &str| {
        let d = dir.join(sub);
        let inputs = DebiasInputs {
            model,
            pairs: &all,
            split: &split,
            targets,
            controls,
            neutral: &neutral,
            corpora: &Corpora::default(),
            deltas_dir: Some(&d),
            max_batch: 8,
            benchmarks: &[],
        };
        let mut steps = Vec::new();
        let out = run_debias(&cfg, &inputs, &mut |done, total| steps.push((done, total))).unwrap();
        // The base state, then each intervention on the selection and on each control set.
        let total = 1 + cfg.interventions.len() * (1 + controls.len());
        assert_eq!(steps.first(), Some(&(1, total)), "{steps:?}");
        assert_eq!(steps.last(), Some(&(total, total)), "{steps:?}");
        assert!(steps.windows(2).all(|w| w[0].0 <= w[1].0), "{steps:?}");
        out
    };
    let a = run(&sel, &controls, "a");
    let b = run(&sel, &controls, "b");
    assert_eq!(a.rows, b.rows, "re-running changed the numbers");
    assert_eq!(a.artifacts.len(), 2);
    for (x, y) in a.artifacts.iter().zip(&b.artifacts) {
        assert_eq!(
            std::fs::read(&x.path).unwrap(),
            std::fs::read(&y.path).unwrap()
        );
    }
    // 4 interventions × (4 bias metrics × 2 splits + 2 capability metrics).
    assert_eq!(a.rows.len(), 4 * (4 * 2 + 2));
    for name in ["ablation_zero", "ablation_mean", "steering", "finetune"] {
        assert!(
            a.rows
                .iter()
                .any(|r| r.intervention == name && r.split == "heldout" && r.delta != 0.0),
            "{name} changed no held-out metric"
        );
    }
    // Steering acts on whole layers and the tiny model has no layer besides the selected
    // ones (0 and 1): it has no control; every other intervention has its 3 sets.
    for r in &a.rows {
        match r.intervention.as_str() {
            "steering" => assert_eq!(r.control, None, "{r:?}"),
            _ => assert!(r.control.as_ref().is_some_and(|c| c.sets == 3), "{r:?}"),
        }
    }
    // Bias figures carry their n and, from two values on, 95% intervals before and after;
    // the neutral text's are over its 6 chunks (the perplexity's exponentiated from the
    // chunks' mean log-likelihoods, so not centred on it).
    for r in &a.rows {
        if r.split == "neutral" {
            assert_eq!(r.n, Some(6), "{r:?}");
            for (v, ci) in [(r.before, r.before_ci), (r.after, r.after_ci)] {
                let (lo, hi) = ci.unwrap_or_else(|| panic!("no interval: {r:?}"));
                assert!(lo <= v && v <= hi, "{r:?}");
            }
            if let Some(c) = &r.control {
                let (lo, hi) = c.ci.unwrap_or_else(|| panic!("no control interval: {r:?}"));
                assert!(lo <= hi, "{r:?}");
            }
            continue;
        }
        let n = r.n.unwrap_or_else(|| panic!("no n: {r:?}"));
        if n >= 2 || r.metric == "stereotype_win_share" {
            let (lo, hi) = r.after_ci.unwrap_or_else(|| panic!("no interval: {r:?}"));
            assert!(lo <= r.after && r.after <= hi, "{r:?}");
            assert!(r.before_ci.is_some(), "{r:?}");
            // The control's interval is over the same prompts (each averaged over the sets),
            // so it is centred on the mean of the sets' values.
            if let (Some(c), true) = (&r.control, n >= 2) {
                let (lo, hi) = c.ci.unwrap_or_else(|| panic!("no control interval: {r:?}"));
                if r.metric == "stereotype_win_share" {
                    // A share's interval is clipped to [0, 1], so not always centred.
                    assert!(
                        0.0 <= lo && lo <= c.mean && c.mean <= hi && hi <= 1.0,
                        "{r:?}"
                    );
                    continue;
                }
                let centre = (lo + hi) / 2.0;
                assert!(
                    (centre - c.mean).abs() < 1e-9 * (1.0 + c.mean.abs()),
                    "{r:?}"
                );
            }
        }
    }

    let none = run(&[], &[], "none");
    assert_eq!(none.rows.len(), a.rows.len());
    for r in &none.rows {
        assert_eq!(
            r.before.to_bits(),
            r.after.to_bits(),
            "{} {} moved",
            r.intervention,
            r.metric
        );
        assert_eq!(r.delta, 0.0);
        assert_eq!(r.control, None);
    }
    let top1 = none
        .rows
        .iter()
        .find(|r| r.metric == "top1_agreement")
        .unwrap();
    assert_eq!((top1.before, top1.after), (1.0, 1.0));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bias_metrics_count_a_clean_prompt_once_and_total_effect_only_anti_swaps() {
    use patchsweep_engine::debias::bias_metrics;
    let model = tiny("tiny-llama2").model;
    let base: Vec<DebiasPair> = pairs(3, 1); // female, male, neutral
    fn refs(ps: &[DebiasPair]) -> Vec<&DebiasPair> {
        ps.iter().collect()
    }
    let before = bias_metrics(&model, &[], &refs(&base), 8).unwrap();
    assert_eq!(before.n_anti_swaps, 2);

    // A neutral profession's second pair ("woman" beside "man") shares its clean prompt:
    // the clean-prompt means must not move.
    let mut with_twin = base.clone();
    let mut twin = base[2].clone();
    twin.input.id.push_str("/woman");
    twin.input.corrupt_ids[2] = 51;
    with_twin.push(twin);
    let twinned = bias_metrics(&model, &[], &refs(&with_twin), 8).unwrap();
    // (Equal up to batching: the twin joins the batched forward.)
    let same = |a: f64, b: f64| (a - b).abs() <= 1e-5 * (1.0 + a.abs());
    assert_eq!(twinned.n_pairs, 4);
    assert!(
        same(twinned.mean_logit_diff, before.mean_logit_diff),
        "{twinned:?} {before:?}"
    );
    assert!(same(
        twinned.mean_abs_logit_diff,
        before.mean_abs_logit_diff
    ));
    // n and the intervals count the clean prompts, not the pairs: the twin adds neither.
    assert_eq!((before.n_clean_prompts, twinned.n_clean_prompts), (3, 3));
    let (lo, hi) = before
        .mean_logit_diff_ci
        .expect("three prompts have a spread");
    let (tlo, thi) = twinned.mean_logit_diff_ci.unwrap();
    assert!(same(lo, tlo) && same(hi, thi), "{before:?} {twinned:?}");
    assert!(lo < before.mean_logit_diff && before.mean_logit_diff < hi);
    let (alo, ahi) = before.mean_abs_logit_diff_ci.unwrap();
    assert!(alo <= before.mean_abs_logit_diff && before.mean_abs_logit_diff <= ahi);
    // The share's interval is Wilson's on the stereotyped pairs; the total effect's a t
    // interval over its two swaps.
    let wins = (before.stereotype_win_share.unwrap() * 2.0).round() as usize;
    assert_eq!(
        before.stereotype_win_share_ci,
        Some(patchsweep_engine::interval::wilson_interval(wins, 2))
    );
    let (elo, ehi) = before.total_effect_ci.expect("two swaps have a spread");
    assert!(elo <= before.total_effect.unwrap() && before.total_effect.unwrap() <= ehi);

    // A pro-stereotypical swap (a female-stereotyped profession set to "woman") counts for
    // the win share but not for Vig's total effect.
    let mut with_pro = base.clone();
    let mut pro = base[0].clone();
    pro.input.id.push_str("/woman");
    pro.input.corrupt_ids[2] = 51;
    pro.anti_stereotypical_swap = false;
    with_pro.push(pro);
    let pro = bias_metrics(&model, &[], &refs(&with_pro), 8).unwrap();
    // The pro pair shares its clean prompt with base[0]: the share counts that prompt once.
    assert_eq!((pro.n_stereotyped, pro.n_anti_swaps), (2, 2));
    assert_eq!(pro.stereotype_win_share, before.stereotype_win_share);
    assert!(
        same(pro.total_effect.unwrap(), before.total_effect.unwrap()),
        "{pro:?}"
    );
}
