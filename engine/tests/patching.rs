//! The fast activation-patching path equals the naive oracle on every component kind (and
//! on GQA, sliding-window and biased architectures), and attribution patching equals
//! activation patching exactly on a model made linear.

use std::collections::HashSet;
use std::path::PathBuf;

use candle_core::Tensor;
use patchsweep_engine::experiment::{Direction, Engine, Experiment, Method, PairInput};
use patchsweep_engine::grid::{
    Component, Grid, Pathway, PathwaySite, PositionRef, Positions, SiteHeads, ALL_COMPONENTS,
};
use patchsweep_engine::metric::{Metric, MetricKind, Reduce};
use patchsweep_engine::oracle::patch_values_naive;
use patchsweep_model::{load, HookedTransformer, LoadOptions, ModelConfig, ModelSpec};

fn tiny(name: &str) -> HookedTransformer {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("model/tests/data")
        .join(name);
    load(&ModelSpec::Folder(dir), &LoadOptions::default())
        .unwrap()
        .model
}

fn metric() -> Metric {
    Metric {
        kind: MetricKind::LogitDiff,
        reduce: Reduce::Mean,
        positive: vec![5, 9],
        negative: vec![7],
    }
}

/// Pairs of several lengths; the corrupted prompt differs at one or two positions.
fn pairs(vocab: usize) -> Vec<PairInput> {
    let base: [&[u32]; 3] = [
        &[0, 40, 77, 120, 33, 210],
        &[0, 12, 99, 250, 4, 61],
        &[3, 18, 200, 7, 91, 150, 42, 11],
    ];
    base.iter()
        .enumerate()
        .map(|(i, ids)| {
            let mut corrupt = ids.to_vec();
            corrupt[2] = (corrupt[2] + 31) % vocab as u32;
            if i == 2 {
                corrupt[5] = (corrupt[5] + 3) % vocab as u32;
            }
            PairInput {
                id: format!("p{i}"),
                clean_ids: ids.to_vec(),
                corrupt_ids: corrupt,
                position_labels: (0..ids.len())
                    .map(|p| {
                        if p == 2 {
                            "subject".into()
                        } else {
                            format!("t{p}")
                        }
                    })
                    .collect(),
                metric: metric(),
            }
        })
        .collect()
}

fn grid(components: Vec<Component>, positions: Positions) -> Grid {
    Grid {
        components,
        layers: None,
        positions,
        heads: None,
        neurons: Some(vec![0, 5, 63]),
        pathways: vec![],
        selections: vec![],
    }
}

fn pathway() -> Pathway {
    Pathway {
        name: "mlp0-subject+head1.2-last".into(),
        sites: vec![
            PathwaySite {
                position: Some(PositionRef::Label("subject".into())),
                ..PathwaySite::one(Component::MlpOut, 0, None)
            },
            PathwaySite {
                position: Some(PositionRef::Index(-1)),
                ..PathwaySite::one(Component::HeadOut, 1, Some(2))
            },
        ],
    }
}

/// Ranges and lists that expand to many sites: early MLPs at the subject, every head of
/// the last layer at the last position, two heads of layer 0 everywhere.
fn component_sets(cfg: &ModelConfig) -> Pathway {
    let last = cfg.n_layers - 1;
    Pathway {
        name: "sets".into(),
        sites: vec![
            PathwaySite {
                component: Component::MlpOut,
                layers: Some((0..cfg.n_layers).collect()),
                heads: SiteHeads::None,
                position: Some(PositionRef::Label("subject".into())),
                neuron: None,
            },
            PathwaySite {
                component: Component::HeadOut,
                layers: Some(vec![last]),
                heads: SiteHeads::All,
                position: Some(PositionRef::Index(-1)),
                neuron: None,
            },
            PathwaySite {
                component: Component::HeadOut,
                layers: Some(vec![0]),
                heads: SiteHeads::List(vec![0, 1]),
                position: None,
                neuron: None,
            },
        ],
    }
}

/// Compares the fast path, its forwards packed below `min_tokens` tokens (0: never), to the
/// oracle's one forward per cell.
fn compare_fast_to_oracle(
    model: &HookedTransformer,
    exp: &Experiment,
    max_batch: usize,
    min_tokens: usize,
) -> usize {
    let pairs = pairs(model.cfg.vocab_size);
    let mut engine = Engine::new(model);
    engine.max_batch = max_batch;
    engine.min_forward_tokens = min_tokens;
    let baselines = engine.baselines(&pairs).unwrap();
    let effects = engine.run(exp, &pairs, &baselines, &mut |_| {}).unwrap();
    let cells = engine.cells(exp, &pairs).unwrap();
    let mut checked = 0;
    for (i, pair) in pairs.iter().enumerate() {
        let (base, source) = match exp.direction {
            Direction::Denoise => (&pair.corrupt_ids, &pair.clean_ids),
            Direction::Noise => (&pair.clean_ids, &pair.corrupt_ids),
        };
        let hooks: HashSet<_> = cells[i]
            .iter()
            .flat_map(|c| c.sites.iter().map(|s| s.hook()))
            .collect();
        let src = engine.cache(source, &pair.metric, &hooks).unwrap();
        let naive = patch_values_naive(model, base, &src, &pair.metric, &cells[i]).unwrap();
        let fast: Vec<f64> = effects
            .iter()
            .filter(|e| e.pair == i)
            .map(|e| e.value)
            .collect();
        assert_eq!(fast.len(), naive.len());
        for (n, (f, o)) in fast.iter().zip(&naive).enumerate() {
            assert!(
                (f - *o as f64).abs() <= 1e-4,
                "{} pair {i} cell {:?}: fast {f} vs oracle {o}",
                exp.name,
                cells[i][n].key
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn fast_path_equals_oracle_on_every_component() {
    for name in ["tiny-llama3", "tiny-mistral", "tiny-qwen2"] {
        let model = tiny(name);
        let mut total = 0;
        for direction in [Direction::Denoise, Direction::Noise] {
            let per_position: Vec<Component> = ALL_COMPONENTS
                .iter()
                .copied()
                .filter(|c| *c != Component::MlpNeuron)
                .collect();
            let cases = [
                ("per-position", grid(per_position.clone(), Positions::All)),
                ("joint", grid(ALL_COMPONENTS.to_vec(), Positions::Joint)),
                (
                    "neurons",
                    grid(
                        vec![Component::MlpNeuron],
                        Positions::List(vec![
                            PositionRef::Index(-1),
                            PositionRef::Label("subject".into()),
                        ]),
                    ),
                ),
                (
                    "pathway",
                    Grid {
                        components: vec![],
                        pathways: vec![pathway()],
                        ..grid(vec![], Positions::All)
                    },
                ),
                (
                    "component sets",
                    Grid {
                        components: vec![],
                        pathways: vec![component_sets(&model.cfg)],
                        ..grid(vec![], Positions::All)
                    },
                ),
            ];
            for (label, g) in cases {
                let exp = Experiment {
                    name: format!("{name}/{label}/{direction:?}"),
                    method: Method::Activation,
                    direction,
                    grid: g,
                };
                // unpacked, and every forward of a start layer packed into one
                for min_tokens in [0, usize::MAX] {
                    total += compare_fast_to_oracle(&model, &exp, 7, min_tokens);
                }
            }
        }
        println!("{name}: {total} cells equal the oracle");
    }
}

#[test]
fn denoising_everything_restores_the_clean_run() {
    let model = tiny("tiny-llama2");
    let pairs = pairs(model.cfg.vocab_size);
    let engine = Engine::new(&model);
    let baselines = engine.baselines(&pairs).unwrap();
    let exp = Experiment {
        name: "all".into(),
        method: Method::Activation,
        direction: Direction::Denoise,
        grid: Grid {
            layers: Some(vec![0]),
            ..grid(vec![Component::ResidPre], Positions::Joint)
        },
    };
    for e in engine.run(&exp, &pairs, &baselines, &mut |_| {}).unwrap() {
        assert!((e.normalized.unwrap() - 1.0).abs() < 1e-4, "{e:?}");
        assert!((e.value - baselines[e.pair].clean as f64).abs() < 1e-4);
    }
}

/// tiny-llama3 with every nonlinearity switched off: q = k = 0 (uniform attention), up = 0
/// (no MLP), and RMSNorm made a constant scale (huge eps, weights scaled to compensate).
fn linearized() -> HookedTransformer {
    let m = tiny("tiny-llama3");
    let mut cfg = m.cfg.clone();
    let mut w = m.weights.clone();
    cfg.rms_norm_eps = 1e8;
    let scale = |t: &Tensor| (t * 1e4).unwrap();
    for l in w.layers.iter_mut() {
        l.q_proj = l.q_proj.zeros_like().unwrap();
        l.k_proj = l.k_proj.zeros_like().unwrap();
        l.up_proj = l.up_proj.zeros_like().unwrap();
        l.input_layernorm = scale(&l.input_layernorm);
        l.post_attention_layernorm = scale(&l.post_attention_layernorm);
    }
    w.norm = scale(&w.norm);
    HookedTransformer::new(cfg, w, m.device().clone(), m.dtype())
}

#[test]
fn attribution_equals_activation_patching_on_a_linear_model() {
    let model = linearized();
    let pairs = pairs(model.cfg.vocab_size);
    let engine = Engine::new(&model);
    let baselines = engine.baselines(&pairs).unwrap();
    let components = vec![
        Component::ResidPre,
        Component::ResidMid,
        Component::ResidPost,
        Component::AttnOut,
        Component::MlpOut,
        Component::HeadOut,
        Component::HeadV,
    ];
    for positions in [Positions::All, Positions::Joint] {
        let g = Grid {
            pathways: vec![pathway()],
            ..grid(components.clone(), positions)
        };
        let run = |method| {
            let exp = Experiment {
                name: "lin".into(),
                method,
                direction: Direction::Denoise,
                grid: g.clone(),
            };
            engine.run(&exp, &pairs, &baselines, &mut |_| {}).unwrap()
        };
        let (act, attr) = (run(Method::Activation), run(Method::Attribution));
        let span = baselines
            .iter()
            .map(|b| (b.clean - b.corrupt).abs() as f64)
            .fold(0.0, f64::max);
        assert!(span > 1e-3, "the corruption must move the metric ({span})");
        let mut moved = 0;
        for (a, b) in act.iter().zip(&attr) {
            assert_eq!(a.key, b.key);
            assert!(
                (a.value - b.value).abs() <= 1e-4 * span.max(1.0),
                "{:?}: activation {} vs attribution {}",
                a.key,
                a.value,
                b.value
            );
            moved += (a.effect.abs() > 1e-3 * span) as usize;
        }
        assert!(moved > 10, "only {moved} cells had an effect");
    }
}

/// `effect = "relative"`: each effect is `value / base - 1` over the base run's odds ratio
/// (Vig et al.'s relative change); the values and normalized effects are those of
/// `difference`, so only the effect column changes.
#[test]
fn relative_effects_divide_by_the_base_run() {
    use patchsweep_engine::metric::EffectMode;
    let model = tiny("tiny-llama2");
    let mut pairs = pairs(model.cfg.vocab_size);
    for p in &mut pairs {
        p.metric.kind = MetricKind::OddsRatio;
    }
    let mut engine = Engine::new(&model);
    let baselines = engine.baselines(&pairs).unwrap();
    let exp = Experiment {
        name: "rel".into(),
        method: Method::Activation,
        direction: Direction::Noise,
        grid: Grid {
            layers: Some(vec![0, 1]),
            ..grid(vec![Component::MlpOut], Positions::All)
        },
    };
    let difference = engine.run(&exp, &pairs, &baselines, &mut |_| {}).unwrap();
    engine.effect = EffectMode::Relative;
    let relative = engine.run(&exp, &pairs, &baselines, &mut |_| {}).unwrap();
    assert_eq!(difference.len(), relative.len());
    let mut moved = 0;
    for (d, r) in difference.iter().zip(&relative) {
        let base = baselines[r.pair].clean as f64; // noising runs the clean prompt
        assert!(base > 0.0);
        assert_eq!((d.value, d.normalized), (r.value, r.normalized));
        assert!((d.effect - (r.value - base)).abs() < 1e-12);
        assert!((r.effect - (r.value / base - 1.0)).abs() < 1e-12, "{r:?}");
        if r.effect.abs() > 1e-6 {
            moved += 1;
        }
    }
    assert!(moved > 0, "some patch must move the odds");
}
