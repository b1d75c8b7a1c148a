//! The logit lens on the real SmolLM2 equals TransformerLens' `accumulated_resid(apply_ln=True)`
//! followed by the unembedding, for every layer, both prompts and all three metrics
//! (engine/tests/golden/logit_lens.json, from reference/logit_lens.py).

mod smollm2_golden;

use patchsweep_engine::experiment::{Direction, Engine, Experiment, Method, PairInput};
use patchsweep_engine::grid::{Grid, Positions};
use patchsweep_engine::metric::{Metric, MetricKind, Reduce};
use smollm2_golden::{golden, ids, smollm2};

#[test]
fn the_logit_lens_matches_transformer_lens_on_smollm2() {
    let golden = golden("logit_lens.json");
    let model = smollm2().model;
    let n_layers = golden["n_layers"].as_u64().unwrap() as usize;
    assert_eq!(n_layers, model.cfg.n_layers);
    let engine = Engine::new(&model);
    let lens = Experiment {
        name: "lens".into(),
        method: Method::LogitLens,
        direction: Direction::Denoise,
        grid: Grid {
            components: vec![],
            layers: None,
            positions: Positions::All,
            heads: None,
            neurons: None,
            pathways: vec![],
            selections: vec![],
        },
    };
    let gpairs = golden["pairs"].as_array().unwrap();
    let mut worst = 0f64;
    for (kind, key) in [
        (MetricKind::LogitDiff, "logit_diff"),
        (MetricKind::LogprobDiff, "logprob_diff"),
        (MetricKind::OddsRatio, "odds_ratio"),
    ] {
        let pairs: Vec<PairInput> = gpairs
            .iter()
            .enumerate()
            .map(|(i, p)| PairInput {
                id: format!("p{i}"),
                clean_ids: ids(&p["clean_ids"]),
                corrupt_ids: ids(&p["corrupt_ids"]),
                position_labels: vec![String::new(); p["clean_ids"].as_array().unwrap().len()],
                metric: Metric {
                    kind,
                    reduce: Reduce::Mean,
                    positive: vec![golden["positive_id"].as_u64().unwrap() as u32],
                    negative: vec![golden["negative_id"].as_u64().unwrap() as u32],
                },
            })
            .collect();
        let values = engine.lens(&lens, &pairs).unwrap();
        assert_eq!(values.len(), pairs.len() * n_layers);
        for v in &values {
            let p = &gpairs[v.pair];
            let want = |side: &str| p[side][key][v.layer].as_f64().unwrap();
            for (got, want) in [(v.clean, want("clean")), (v.corrupt, want("corrupt"))] {
                // Odds ratios are compared relative to their size.
                let scale = if kind == MetricKind::OddsRatio {
                    want.abs().max(1.0)
                } else {
                    1.0
                };
                worst = worst.max((got - want).abs() / scale);
            }
        }
    }
    assert!(
        worst <= 1e-4,
        "lens differs from TransformerLens by {worst}"
    );
}
