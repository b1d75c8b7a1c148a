//! Attribution patching on a model held in bf16 or f16 (as the paper examples run it on GPUs):
//! the tiny checkpoint converted to half precision on the CPU gives finite estimates close to
//! the f32 model's.

use std::path::PathBuf;

use candle_core::DType;
use patchsweep_engine::experiment::{Direction, Effect, Engine, Experiment, Method, PairInput};
use patchsweep_engine::grid::{Component, Grid, Positions};
use patchsweep_engine::metric::{Metric, MetricKind, Reduce};
use patchsweep_model::{load, HookedTransformer, LoadOptions, ModelSpec};

/// The tiny checkpoint in `dtype` on the CPU (`LoadOptions::parse` refuses half types on the
/// CPU for sweeps; the loader itself converts any dtype).
fn tiny(name: &str, dtype: DType) -> HookedTransformer {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("model/tests/data")
        .join(name);
    let opts = LoadOptions {
        dtype,
        ..LoadOptions::default()
    };
    load(&ModelSpec::Folder(dir), &opts).unwrap().model
}

fn pairs() -> Vec<PairInput> {
    let base: [&[u32]; 2] = [&[0, 40, 77, 120, 33, 210], &[0, 12, 99, 250, 4, 61]];
    base.iter()
        .enumerate()
        .map(|(i, ids)| {
            let mut corrupt = ids.to_vec();
            corrupt[2] += 31;
            PairInput {
                id: format!("p{i}"),
                clean_ids: ids.to_vec(),
                corrupt_ids: corrupt,
                position_labels: (0..ids.len()).map(|p| format!("t{p}")).collect(),
                metric: Metric {
                    kind: MetricKind::LogitDiff,
                    reduce: Reduce::Mean,
                    positive: vec![5, 9],
                    negative: vec![7],
                },
            }
        })
        .collect()
}

fn attribution(model: &HookedTransformer) -> Vec<Effect> {
    let pairs = pairs();
    let engine = Engine::new(model);
    let baselines = engine.baselines(&pairs).unwrap();
    let exp = Experiment {
        name: "attr".into(),
        method: Method::Attribution,
        direction: Direction::Denoise,
        grid: Grid {
            components: vec![
                Component::ResidPre,
                Component::AttnOut,
                Component::MlpOut,
                Component::HeadOut,
            ],
            layers: None,
            positions: Positions::All,
            heads: None,
            neurons: None,
            pathways: vec![],
            selections: vec![],
        },
    };
    engine.run(&exp, &pairs, &baselines, &mut |_| {}).unwrap()
}

#[test]
fn attribution_runs_in_half_precision_and_matches_f32() {
    let reference = attribution(&tiny("tiny-llama3", DType::F32));
    let scale = reference
        .iter()
        .map(|e| e.effect.abs())
        .fold(0.0, f64::max)
        .max(1e-3);
    for dtype in [DType::BF16, DType::F16] {
        let half = attribution(&tiny("tiny-llama3", dtype));
        assert_eq!(half.len(), reference.len());
        let mut worst = 0f64;
        for (h, r) in half.iter().zip(&reference) {
            assert_eq!(h.key, r.key);
            assert!(
                h.value.is_finite() && h.effect.is_finite(),
                "{dtype:?} {h:?}"
            );
            worst = worst.max((h.effect - r.effect).abs() / scale);
        }
        // Half-precision forward passes round activations to 8 (bf16) or 11 (f16) bits.
        let tolerance = if dtype == DType::BF16 { 0.1 } else { 0.02 };
        assert!(
            worst <= tolerance,
            "{dtype:?}: effects differ from f32 by up to {worst} of the largest effect"
        );
        println!(
            "{dtype:?}: {} effects, worst relative gap {worst:.4}",
            half.len()
        );
    }
}
