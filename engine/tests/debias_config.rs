//! Debias configuration, held-out split, component selection and the random control:
//! everything that needs no forward pass.

mod debias_common;

use std::collections::{BTreeMap, HashSet};

use debias_common::{opposite_profession_pairs, pairs, tiny};
use patchsweep_engine::debias::{
    matched_control, matched_controls, matched_steering_layers, select_components, split_pairs,
    AggregatedEffect, DebiasConfig, InterventionConfig, PositionsConfig, SelectionConfig,
    SplitConfig, Target, TargetKind,
};
use patchsweep_engine::grid::{Component, PositionRef};
use patchsweep_model::ModelConfig;

const SPEC: &str = r#"
name = "top-heads"
experiment = "heads"
control_seed = 11

[select]
component = "head_out"
top_k = 2
threshold = 0.01

[split]
heldout_professions = 0.3
heldout_templates = 0.5
seed = 7

[[intervention]]
kind = "ablation"
mode = "mean"
positions = ["subject", -1]

[[intervention]]
kind = "steering"

[[intervention]]
kind = "finetune"
steps = 3
lr = 0.01
"#;

#[test]
fn config_parses_from_toml_and_refuses_unknown_fields() {
    let cfg: DebiasConfig = toml::from_str(SPEC).unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.interventions.len(), 3);
    let InterventionConfig::Ablation(a) = &cfg.interventions[0] else {
        panic!("first intervention is an ablation")
    };
    assert_eq!(
        a.positions,
        PositionsConfig::List(vec![
            PositionRef::Label("subject".into()),
            PositionRef::Index(-1)
        ])
    );
    let names: Vec<String> = cfg.interventions.iter().map(|i| i.name()).collect();
    assert_eq!(names, ["ablation_mean", "steering", "finetune"]);

    for (bad, field) in [
        (SPEC.replace("seed = 7", "seed = 7\nsede = 1"), "sede"),
        (SPEC.replace("steps = 3", "steps = 3\nrate = 1"), "rate"),
        (
            SPEC.replace("mode = \"mean\"", "mode = \"mean\"\nhow = 1"),
            "how",
        ),
        (SPEC.replace("top_k = 2", "top_k = 2\ntopk = 1"), "topk"),
    ] {
        let err = toml::from_str::<DebiasConfig>(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{field}: {err}");
    }
}

#[test]
fn invalid_configs_name_their_field() {
    let cfg: DebiasConfig = toml::from_str(SPEC).unwrap();
    let check = |mut c: DebiasConfig, edit: &dyn Fn(&mut DebiasConfig), want: &str| {
        edit(&mut c);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains(want), "{want}: {err}");
    };
    check(cfg.clone(), &|c| c.select.top_k = Some(0), "select.top_k");
    check(
        cfg.clone(),
        &|c| c.select.components = Some(vec!["head L1H1".into()]),
        "not both",
    );
    check(
        cfg.clone(),
        &|c| c.select.component = Some(Component::ResidPre),
        "resid_pre",
    );
    check(
        cfg.clone(),
        &|c| c.split.heldout_professions = 1.5,
        "split.heldout_professions",
    );
    check(
        cfg.clone(),
        &|c| {
            c.split.heldout_professions = 0.0;
            c.split.heldout_templates = 0.0
        },
        "hold out",
    );
    check(cfg.clone(), &|c| c.interventions.clear(), "intervention");
    check(
        cfg.clone(),
        &|c| {
            let dup = c.interventions[1].clone();
            c.interventions.push(dup)
        },
        "used twice",
    );
    // Names label stored rows: `base` is the unmodified model, `NAME/control` a control pool.
    for bad in ["base", "", " ", "steer/control"] {
        check(
            cfg.clone(),
            &|c| {
                if let InterventionConfig::Steering(s) = &mut c.interventions[1] {
                    s.name = Some(bad.to_string());
                } else {
                    panic!("the second intervention of the test config steers");
                }
            },
            "is not allowed",
        );
    }
}

#[test]
fn heldout_never_overlaps_selection_and_is_deterministic() {
    let all = pairs(12, 6);
    for seed in 0..20u64 {
        for (fp, ft) in [(0.3, 0.0), (0.0, 0.5), (0.25, 0.34), (0.5, 0.5)] {
            let cfg = SplitConfig {
                heldout_professions: fp,
                heldout_templates: ft,
                seed,
            };
            let s = split_pairs(&all, &cfg).unwrap();
            assert_eq!(s, split_pairs(&all, &cfg).unwrap(), "not deterministic");
            let sel: HashSet<&String> = s.selection.iter().collect();
            assert!(s.heldout.iter().all(|id| !sel.contains(id)), "ids overlap");
            assert_eq!(
                s.selection.len() + s.heldout.len() + s.unused.len(),
                all.len()
            );
            // Held-out pairs share neither a profession nor a template with selection pairs.
            let by_id = |id: &String| all.iter().find(|p| &p.input.id == id).unwrap();
            let sel_prof: HashSet<_> = s
                .selection
                .iter()
                .map(|i| by_id(i).profession.clone())
                .collect();
            let sel_tmpl: HashSet<_> = s
                .selection
                .iter()
                .map(|i| by_id(i).template.clone())
                .collect();
            for id in &s.heldout {
                let p = by_id(id);
                if fp > 0.0 {
                    assert!(
                        !sel_prof.contains(&p.profession),
                        "{id}: profession in both"
                    );
                }
                if ft > 0.0 {
                    assert!(!sel_tmpl.contains(&p.template), "{id}: template in both");
                }
            }
        }
    }
    // Pair order does not change the split.
    let cfg = SplitConfig {
        heldout_professions: 0.3,
        heldout_templates: 0.3,
        seed: 3,
    };
    let mut rev = all.clone();
    rev.reverse();
    let (a, b) = (
        split_pairs(&all, &cfg).unwrap(),
        split_pairs(&rev, &cfg).unwrap(),
    );
    assert_eq!(a.heldout_professions, b.heldout_professions);
    assert_eq!(
        a.heldout.iter().collect::<HashSet<_>>(),
        b.heldout.iter().collect::<HashSet<_>>()
    );
}

/// Every profession and template named by the pairs of one part of a split.
fn named(
    all: &[patchsweep_engine::debias::DebiasPair],
    ids: &[String],
) -> (HashSet<String>, HashSet<String>) {
    let ids: HashSet<&String> = ids.iter().collect();
    let mut professions = HashSet::new();
    let mut templates = HashSet::new();
    for p in all.iter().filter(|p| ids.contains(&p.input.id)) {
        professions.extend(p.professions().cloned());
        templates.extend(p.template.clone());
    }
    (professions, templates)
}

#[test]
fn by_default_heldout_pairs_share_no_profession_on_either_side_and_no_template() {
    let all = opposite_profession_pairs(15, 6);
    for seed in 0..60u64 {
        let cfg = SplitConfig {
            seed,
            ..SplitConfig::default()
        };
        let s = split_pairs(&all, &cfg).unwrap();
        let (sel_prof, sel_tmpl) = named(&all, &s.selection);
        let (held_prof, held_tmpl) = named(&all, &s.heldout);
        assert!(
            sel_prof.is_disjoint(&held_prof),
            "seed {seed}: professions on both sides: {:?}",
            sel_prof.intersection(&held_prof).collect::<Vec<_>>()
        );
        assert!(
            sel_tmpl.is_disjoint(&held_tmpl),
            "seed {seed}: templates on both sides: {:?}",
            sel_tmpl.intersection(&held_tmpl).collect::<Vec<_>>()
        );
        assert!(
            !s.heldout_templates.is_empty(),
            "templates are held out by default"
        );
        // Every held-out profession is one the split names, and the pairs it leaves out are
        // exactly those that mix held-out and selection professions or templates.
        let held: HashSet<&String> = s.heldout_professions.iter().collect();
        for id in &s.unused {
            let p = all.iter().find(|p| &p.input.id == id).unwrap();
            let profs: Vec<bool> = p.professions().map(|x| held.contains(x)).collect();
            let tmpl = s.heldout_templates.contains(p.template.as_ref().unwrap());
            let all_held = profs.iter().all(|&h| h) && tmpl;
            let none_held = profs.iter().all(|&h| !h) && !tmpl;
            assert!(!all_held && !none_held, "{id} is unused for no reason");
        }
    }
}

#[test]
fn profession_draw_is_stratified_by_stereotype() {
    for (n_prof, fraction) in [(30, 0.3), (14, 0.3), (20, 0.5), (9, 0.34)] {
        let all = pairs(n_prof, 4);
        let stereo_of: BTreeMap<String, String> = all
            .iter()
            .map(|p| (p.profession.clone().unwrap(), p.stereotype.clone().unwrap()))
            .collect();
        let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
        for s in stereo_of.values() {
            *sizes.entry(s.as_str()).or_default() += 1;
        }
        let k = ((fraction * n_prof as f64).round() as usize).clamp(1, n_prof - 1);
        for seed in 0..40u64 {
            let cfg = SplitConfig {
                heldout_professions: fraction,
                heldout_templates: 0.5,
                seed,
            };
            let s = split_pairs(&all, &cfg).unwrap();
            assert_eq!(s.heldout_professions.len(), k);
            let mut held: BTreeMap<&str, usize> = BTreeMap::new();
            for p in &s.heldout_professions {
                *held.entry(stereo_of[p].as_str()).or_default() += 1;
            }
            for (stereo, &n) in &sizes {
                let share = k as f64 * n as f64 / n_prof as f64;
                let got = held.get(stereo).copied().unwrap_or(0) as f64;
                assert!(
                    (got - share).abs() < 1.0,
                    "{n_prof} professions, seed {seed}: {got} {stereo} held out, share {share}"
                );
            }
        }
    }
}

#[test]
fn one_template_is_refused_when_templates_are_held_out() {
    let one = pairs(9, 1);
    let err = split_pairs(&one, &SplitConfig::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("at least 2 distinct templates") && err.contains("heldout_templates = 0"),
        "{err}"
    );
    let by_professions = SplitConfig {
        heldout_templates: 0.0,
        ..SplitConfig::default()
    };
    let s = split_pairs(&one, &by_professions).unwrap();
    assert!(s.heldout_templates.is_empty());
}

#[test]
fn split_sizes_and_summary() {
    let all = pairs(10, 4);
    let s = split_pairs(&all, &SplitConfig::default()).unwrap();
    let z = s.sizes();
    assert_eq!(z.selection + z.heldout + z.unused, all.len());
    assert_eq!(z.heldout_professions, 3);
    assert_eq!(z.heldout_templates, 1);
    let line = s.summary();
    for part in [
        format!("{} selection", z.selection),
        format!("{} held-out", z.heldout),
        format!("{} unused", z.unused),
        "3 professions".to_string(),
        "1 template".to_string(),
    ] {
        assert!(line.contains(&part), "{line} lacks {part}");
    }
}

#[test]
fn split_errors_name_the_problem() {
    let mut all = pairs(4, 2);
    all[1].profession = None;
    let cfg = SplitConfig::default();
    let err = split_pairs(&all, &cfg).unwrap_err().to_string();
    assert!(
        err.contains("no subject label (profession, activity, trait)") && err.contains("t0/p1"),
        "{err}"
    );
    let one = pairs(1, 2);
    let err = split_pairs(&one, &cfg).unwrap_err().to_string();
    assert!(err.contains("at least 2 distinct professions"), "{err}");
}

fn row(
    component: &str,
    layer: usize,
    head: Option<usize>,
    pos: Option<&str>,
    score: f64,
) -> AggregatedEffect {
    AggregatedEffect {
        component: component.into(),
        layer,
        head,
        position_label: pos.map(String::from),
        score,
    }
}

#[test]
fn top_k_ranks_by_absolute_score_with_threshold_and_position() {
    let model = tiny("tiny-llama2").model; // 2 layers, 4 heads
    let rows = vec![
        row("head_out", 0, Some(1), Some("end"), 0.10),
        row("head_out", 1, Some(3), Some("end"), -0.40),
        row("head_out", 1, Some(0), Some("subject"), 0.90),
        row("head_out", 0, Some(2), Some("end"), 0.005),
        row("mlp_out", 0, None, Some("end"), 5.0),
    ];
    let mut cfg = SelectionConfig {
        component: Some(Component::HeadOut),
        top_k: Some(3),
        threshold: Some(0.01),
        position: Some("end".into()),
        components: None,
    };
    let got = select_components(&rows, &cfg, &model.cfg).unwrap();
    let names: Vec<String> = got.iter().map(Target::to_string).collect();
    assert_eq!(names, ["head L1H3@end", "head L0H1@end"]);
    cfg.position = None;
    cfg.top_k = Some(1);
    let got = select_components(&rows, &cfg, &model.cfg).unwrap();
    assert_eq!(got[0].to_string(), "head L1H0@subject");

    let bad = vec![row("head_out", 5, Some(0), None, 1.0)];
    let err = select_components(&bad, &cfg, &model.cfg)
        .unwrap_err()
        .to_string();
    assert!(err.contains("row 0") && err.contains("layer 5"), "{err}");
    let explicit = SelectionConfig {
        components: Some(vec!["mlp_out L1@subject".into(), "head L0H9".into()]),
        ..Default::default()
    };
    let err = select_components(&rows, &explicit, &model.cfg)
        .unwrap_err()
        .to_string();
    assert!(err.contains("head 9 does not exist"), "{err}");
}

/// The tiny model's config with more layers and heads, so matching has room to show.
fn wide(n_layers: usize, n_heads: usize) -> ModelConfig {
    let mut cfg = tiny("tiny-llama2").model.cfg.clone();
    cfg.n_layers = n_layers;
    cfg.n_heads = n_heads;
    cfg
}

fn targets(names: &[&str]) -> Vec<Target> {
    names.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn matched_control_keeps_kind_layer_and_label_and_avoids_the_selection() {
    let model = wide(12, 4);
    let selected = targets(&[
        "head L9H1@end",
        "head L9H2@end",
        "head L3H0@end",
        "mlp_out L5@subject",
    ]);
    for seed in 0..50 {
        let c = matched_control(&selected, seed, &model).unwrap();
        assert_eq!(c, matched_control(&selected, seed, &model).unwrap());
        assert_eq!(c.len(), 4);
        for (s, m) in selected.iter().zip(&c) {
            assert_eq!((s.kind, &s.position), (m.kind, &m.position));
            assert!(
                !selected.iter().any(|x| x.site() == m.site()),
                "{m} is selected"
            );
        }
        // Heads come from the same layer while it has free heads …
        assert_eq!((c[0].layer, c[1].layer, c[2].layer), (9, 9, 3), "{c:?}");
        assert_ne!(c[0].head, c[1].head);
        // … a layer-level component from the four nearest layers.
        assert!([3, 4, 6, 7].contains(&c[3].layer), "{c:?}");
    }
    let sets = matched_controls(&selected, 7, 20, &model).unwrap();
    assert_eq!(sets.len(), 20);
    assert_eq!(sets[3], matched_control(&selected, 10, &model).unwrap());
    let distinct: HashSet<&Vec<Target>> = sets.iter().collect();
    assert!(distinct.len() > 1, "the seed changes nothing");
    // The four layers nearest mlp_out L5 are all drawn over 20 seeds, on both sides.
    let sides: HashSet<usize> = sets.iter().map(|c| c[3].layer).collect();
    assert_eq!(sides, HashSet::from([3, 4, 6, 7]));
}

#[test]
fn a_steering_control_steers_at_other_layers_than_the_selection() {
    let model = wide(30, 9);
    for seed in 0..20 {
        let layers = matched_steering_layers(&[25, 26, 27], seed, &model).unwrap();
        assert_eq!(layers.len(), 3, "{layers:?}");
        assert!(
            layers.iter().all(|l| ![25, 26, 27].contains(l)),
            "{layers:?}"
        );
        assert!(layers.iter().all(|&l| (20..=29).contains(&l)), "{layers:?}");
    }
}

#[test]
fn control_sets_of_a_block_of_adjacent_layers_differ_across_seeds() {
    // The demo's cases: steering at layers 25-27 of 30, the four first MLPs. Matched by the
    // nearest free layer alone, all 20 sets were the same one (24, 28, 29 and L4-L7).
    let model = wide(30, 9);
    let steering: HashSet<Vec<usize>> = (0..20)
        .map(|seed| matched_steering_layers(&[25, 26, 27], seed, &model).unwrap())
        .collect();
    assert!(steering.len() >= 5, "{steering:?}");
    let block = targets(&["mlp_out L0", "mlp_out L1", "mlp_out L2", "mlp_out L3"]);
    let sets = matched_controls(&block, 11, 20, &model).unwrap();
    let distinct: HashSet<&Vec<Target>> = sets.iter().collect();
    assert!(
        distinct.len() >= 5,
        "{} distinct sets: {sets:?}",
        distinct.len()
    );
    for set in &sets {
        // still early MLPs: each drawn among the four free layers nearest its own
        assert!(set.iter().all(|t| (4..=10).contains(&t.layer)), "{set:?}");
    }
}

#[test]
fn matched_control_spills_to_the_nearest_layers_when_one_is_full() {
    let model = wide(8, 2);
    // Layer 0's two heads are both selected: their matches come from the four nearest free
    // heads, those of layers 1 and 2.
    let c = matched_control(&targets(&["head L0H0", "head L0H1"]), 3, &model).unwrap();
    assert!(c.iter().all(|t| [1, 2].contains(&t.layer)), "{c:?}");
    // A block of MLPs is matched by the layers next to the block.
    let block = targets(&["mlp_out L0", "mlp_out L1", "mlp_out L2", "mlp_out L3"]);
    let c = matched_control(&block, 1, &model).unwrap();
    let mut layers: Vec<usize> = c.iter().map(|t| t.layer).collect();
    layers.sort();
    assert_eq!(layers, vec![4, 5, 6, 7], "{c:?}");
    let all = targets(&["mlp_out L0", "mlp_out L1"]);
    let err = matched_control(&all, 0, &wide(2, 2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no mlp_out is left"), "{err}");
    assert_eq!(
        TargetKind::from_component(Component::MlpOut).unwrap(),
        TargetKind::MlpOut
    );
}

#[test]
fn a_pair_names_the_profession_of_its_corrupted_prompt() {
    use patchsweep_engine::dataset::PairSpec;
    use patchsweep_engine::debias::DebiasPair;
    let base = pairs(1, 1).remove(0);
    let spec = |labels: &[(&str, &str)]| PairSpec {
        id: base.input.id.clone(),
        template: Some("said_that".into()),
        clean: "The nurse said that".into(),
        corrupt: "The x said that".into(),
        positive: None,
        negative: None,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        slots: vec![],
    };
    let named = |labels: &[(&str, &str)]| {
        let p = DebiasPair::new(base.input.clone(), &spec(labels), &[], &[]);
        (p.corrupt_profession.clone(), p.stereotype.clone())
    };
    let nurse = ("profession", "nurse");
    assert_eq!(
        named(&[
            nurse,
            ("counterfactual", "carpenter"),
            ("stereotype", "female")
        ]),
        (Some("carpenter".into()), Some("female".into()))
    );
    assert_eq!(named(&[nurse, ("counterfactual", "man")]), (None, None));
    assert_eq!(named(&[nurse, ("counterfactual", "Woman")]).0, None);
    assert_eq!(
        named(&[
            nurse,
            ("counterfactual", "man"),
            ("corrupt_profession", "pilot")
        ])
        .0,
        Some("pilot".into())
    );
}

#[test]
fn a_household_pair_splits_by_activity_and_has_its_labelled_side() {
    use patchsweep_engine::dataset::PairSpec;
    use patchsweep_engine::debias::{AnswerSide, DebiasPair};
    let base = pairs(1, 1).remove(0);
    let words = |w: &str| vec![w.to_string()];
    let make = |id: &str, template: &str, activity: &str, cf: &str, stereo: &str| {
        let answer = if stereo == "female" {
            " wife"
        } else {
            " husband"
        };
        let spec = PairSpec {
            id: id.into(),
            template: Some(template.into()),
            clean: format!("{activity} is the duty of the"),
            corrupt: format!("{cf} is the duty of the"),
            positive: None,
            negative: None,
            labels: [
                ("activity", activity),
                ("counterfactual", cf),
                ("stereotype", stereo),
                ("stereotyped_answer", answer),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            slots: vec![],
        };
        let mut input = base.input.clone();
        input.id = id.into();
        DebiasPair::new(input, &spec, &words(" husband"), &words(" wife"))
    };
    let dishes = make(
        "a/dishes",
        "a",
        "washing the dishes",
        "mowing the lawn",
        "female",
    );
    assert_eq!(dishes.profession.as_deref(), Some("washing the dishes"));
    assert_eq!(
        dishes.corrupt_profession.as_deref(),
        Some("mowing the lawn")
    );
    assert_eq!(dishes.stereotyped, Some(AnswerSide::Negative));
    let lawn = make(
        "a/lawn",
        "a",
        "mowing the lawn",
        "washing the dishes",
        "male",
    );
    assert_eq!(lawn.stereotyped, Some(AnswerSide::Positive));

    // Activities are held out like professions: never on both sides of the split.
    let (female, male) = (
        [
            "washing the dishes",
            "ironing the clothes",
            "mopping the floor",
        ],
        ["mowing the lawn", "fixing the car", "chopping the firewood"],
    );
    let mut all = Vec::new();
    for t in ["t0", "t1", "t2", "t3"] {
        for (f, m) in female.iter().zip(male) {
            all.push(make(&format!("{t}/{f}"), t, f, m, "female"));
            all.push(make(&format!("{t}/{m}"), t, m, f, "male"));
        }
    }
    let cfg = SplitConfig {
        heldout_professions: 0.34,
        heldout_templates: 0.25,
        seed: 3,
    };
    let s = split_pairs(&all, &cfg).expect("split by activity");
    assert_eq!(s.heldout_professions.len(), 2, "{s:?}");
    let by_id = |id: &String| all.iter().find(|p| &p.input.id == id).unwrap();
    let held: HashSet<&String> = s.heldout_professions.iter().collect();
    for id in &s.selection {
        assert!(by_id(id).professions().all(|a| !held.contains(a)), "{id}");
    }
    for id in &s.heldout {
        assert!(by_id(id).professions().all(|a| held.contains(a)), "{id}");
    }
    assert!(!s.heldout.is_empty() && !s.selection.is_empty());
}
