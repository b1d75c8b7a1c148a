//! The logit lens: its last layer is the model's own metric on every tiny architecture and
//! metric kind; every layer equals the final RMSNorm and unembedding written out by hand on
//! the cached `resid_post`; `layers` chooses the layers read.

use std::path::PathBuf;

use candle_core::{DType, Tensor, D};
use patchsweep_engine::experiment::{Direction, Engine, Experiment, Method, PairInput};
use patchsweep_engine::grid::{Grid, Positions};
use patchsweep_engine::metric::{Metric, MetricKind, Reduce};
use patchsweep_model::{load, ActivationCache, Forward, HookPoint, HookedTransformer, Input};
use patchsweep_model::{LoadOptions, ModelSpec, Unembed};

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

fn pairs(kind: MetricKind) -> Vec<PairInput> {
    let base: [&[u32]; 3] = [
        &[0, 40, 77, 120, 33, 210],
        &[0, 12, 99, 250, 4, 61],
        &[3, 18, 200, 7, 91, 150, 42, 11],
    ];
    base.iter()
        .enumerate()
        .map(|(i, ids)| {
            let mut corrupt = ids.to_vec();
            corrupt[2] = (corrupt[2] + 31) % 256;
            PairInput {
                id: format!("p{i}"),
                clean_ids: ids.to_vec(),
                corrupt_ids: corrupt,
                position_labels: vec![String::new(); ids.len()],
                // Pair 1 with its answers swapped, as `orient = "stereotype"` does.
                metric: Metric {
                    kind,
                    reduce: Reduce::Mean,
                    positive: if i == 1 { vec![7] } else { vec![5, 9] },
                    negative: if i == 1 { vec![5, 9] } else { vec![7] },
                },
            }
        })
        .collect()
}

fn lens(layers: Option<Vec<usize>>) -> Experiment {
    Experiment {
        name: "lens".into(),
        method: Method::LogitLens,
        direction: Direction::Denoise,
        grid: Grid {
            components: vec![],
            layers,
            positions: Positions::All,
            heads: None,
            neurons: None,
            pathways: vec![],
            selections: vec![],
        },
    }
}

#[test]
fn the_last_layer_of_the_lens_is_the_models_metric() {
    for name in ["tiny-llama2", "tiny-llama3", "tiny-mistral", "tiny-qwen2"] {
        let model = tiny(name);
        let last = model.cfg.n_layers - 1;
        for kind in [
            MetricKind::LogitDiff,
            MetricKind::LogprobDiff,
            MetricKind::OddsRatio,
        ] {
            let pairs = pairs(kind);
            let mut engine = Engine::new(&model);
            engine.max_batch = 4; // the lens unembeds in several batches
            let baselines = engine.baselines(&pairs).unwrap();
            let values = engine.lens(&lens(None), &pairs).unwrap();
            assert_eq!(values.len(), pairs.len() * model.cfg.n_layers, "{name}");
            for v in values.iter().filter(|v| v.layer == last) {
                let b = baselines[v.pair];
                // f32 rounding, relative: the two come from batches of different shapes
                // (an odds ratio of 4 differed by 2e-5)
                let close = |a: f64, b: f32| (a - b as f64).abs() < 1e-5 * a.abs().max(1.0);
                assert!(
                    close(v.clean, b.clean) && close(v.corrupt, b.corrupt),
                    "{name} {kind:?} pair {}: lens {} / {} vs metric {} / {}",
                    v.pair,
                    v.clean,
                    v.corrupt,
                    b.clean,
                    b.corrupt
                );
                assert_eq!(v.clean_lead, kind.lead(v.clean));
            }
        }
    }
}

/// `norm(x) = x / sqrt(mean(x²) + eps) * w`, then `x @ lm_head^T`, on the last position.
fn lens_by_hand(model: &HookedTransformer, resid: &Tensor) -> Tensor {
    let p = resid.dim(1).unwrap();
    let x = resid
        .narrow(1, p - 1, 1)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let ms = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
    let normed = x
        .broadcast_div(&(ms + model.cfg.rms_norm_eps).unwrap().sqrt().unwrap())
        .unwrap()
        .broadcast_mul(&model.weights.norm)
        .unwrap();
    normed
        .squeeze(1)
        .unwrap()
        .matmul(&model.weights.lm_head.t().unwrap())
        .unwrap()
}

#[test]
fn every_layer_is_the_final_norm_and_unembedding_of_its_resid_post() {
    let model = tiny("tiny-llama3");
    let pairs = pairs(MetricKind::LogprobDiff);
    let engine = Engine::new(&model);
    let values = engine.lens(&lens(None), &pairs).unwrap();
    let mut worst = 0f64;
    for (i, pair) in pairs.iter().enumerate() {
        for (prompt, clean) in [(&pair.clean_ids, true), (&pair.corrupt_ids, false)] {
            let tokens = model.tokens_tensor(std::slice::from_ref(prompt)).unwrap();
            let mut cache =
                ActivationCache::only((0..model.cfg.n_layers).map(HookPoint::ResidPost));
            model
                .forward(
                    Input::Tokens(&tokens),
                    &mut cache,
                    Forward {
                        unembed: Unembed::None,
                        ..Forward::default()
                    },
                )
                .unwrap();
            for l in 0..model.cfg.n_layers {
                let logits = lens_by_hand(&model, cache.get(HookPoint::ResidPost(l)).unwrap());
                let want = pair
                    .metric
                    .values(&logits)
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()[0];
                let v = values.iter().find(|v| v.pair == i && v.layer == l).unwrap();
                let got = if clean { v.clean } else { v.corrupt };
                worst = worst.max((got - want as f64).abs());
            }
        }
    }
    assert!(
        worst < 1e-4,
        "lens differs from the hand-written one by {worst}"
    );
}

#[test]
fn layers_choose_what_the_lens_reads() {
    let model = tiny("tiny-llama2");
    let pairs = pairs(MetricKind::LogitDiff);
    let engine = Engine::new(&model);
    let all = engine.lens(&lens(None), &pairs).unwrap();
    let some = engine.lens(&lens(Some(vec![1])), &pairs).unwrap();
    assert_eq!(some.len(), pairs.len());
    for v in &some {
        assert_eq!(v.layer, 1);
        let same = all
            .iter()
            .find(|a| a.pair == v.pair && a.layer == 1)
            .unwrap();
        assert!((same.clean - v.clean).abs() < 1e-6 && (same.corrupt - v.corrupt).abs() < 1e-6);
    }
    let err = engine
        .lens(&lens(Some(vec![model.cfg.n_layers])), &pairs)
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    let err = engine
        .run(&lens(None), &pairs, &[], &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("logit lens"), "{err}");
}
