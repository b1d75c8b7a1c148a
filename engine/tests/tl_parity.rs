//! Activation patching on the real SmolLM2 equals TransformerLens' `get_act_patch_*` grids
//! (engine/tests/golden/tl_patching_smollm2.json, from reference/tl_patching.py).

mod smollm2_golden;

use patchsweep_engine::experiment::{Direction, Engine, Experiment, Method, PairInput};
use patchsweep_engine::grid::{Component, Grid, Positions};
use patchsweep_engine::metric::{Metric, MetricKind, Reduce};
use smollm2_golden::{golden, ids, smollm2};

#[test]
fn activation_patching_matches_transformer_lens_on_smollm2() {
    let golden = golden("tl_patching_smollm2.json");
    let model = smollm2().model;
    let gpairs = golden["pairs"].as_array().unwrap();
    let pairs: Vec<PairInput> = gpairs
        .iter()
        .enumerate()
        .map(|(i, p)| PairInput {
            id: format!("p{i}"),
            clean_ids: ids(&p["clean_ids"]),
            corrupt_ids: ids(&p["corrupt_ids"]),
            position_labels: vec![String::new(); p["clean_ids"].as_array().unwrap().len()],
            metric: Metric {
                kind: MetricKind::LogitDiff,
                reduce: Reduce::Mean,
                positive: vec![p["positive_id"].as_u64().unwrap() as u32],
                negative: vec![p["negative_id"].as_u64().unwrap() as u32],
            },
        })
        .collect();
    let engine = Engine::new(&model);
    let baselines = engine.baselines(&pairs).unwrap();
    let mut worst = 0f64;
    for (b, p) in baselines.iter().zip(gpairs) {
        worst = worst.max((b.clean as f64 - p["clean_metric"].as_f64().unwrap()).abs());
        worst = worst.max((b.corrupt as f64 - p["corrupt_metric"].as_f64().unwrap()).abs());
    }
    let grid = |components, positions| Grid {
        components,
        layers: None,
        positions,
        heads: None,
        neurons: None,
        pathways: vec![],
        selections: vec![],
    };
    let cases = [
        ("resid_pre", grid(vec![Component::ResidPre], Positions::All)),
        ("attn_out", grid(vec![Component::AttnOut], Positions::All)),
        ("mlp_out", grid(vec![Component::MlpOut], Positions::All)),
        (
            "head_out_all_pos",
            grid(vec![Component::HeadOut], Positions::Joint),
        ),
    ];
    let mut checked = 0;
    for (name, g) in cases {
        let exp = Experiment {
            name: name.into(),
            method: Method::Activation,
            direction: Direction::Denoise,
            grid: g,
        };
        for e in engine.run(&exp, &pairs, &baselines, &mut |_| {}).unwrap() {
            let table = &gpairs[e.pair][name];
            let layer = e.key.layer.unwrap();
            let col = if name == "head_out_all_pos" {
                e.key.head.unwrap()
            } else {
                e.key.position.unwrap()
            };
            let want = table[layer][col].as_f64().unwrap();
            let err = (e.value - want).abs();
            worst = worst.max(err);
            assert!(
                err <= 1e-3,
                "{name} pair {} layer {layer} col {col}: patchsweep {} vs TransformerLens {want}",
                e.pair,
                e.value
            );
            checked += 1;
        }
    }
    assert!(checked > 1000, "only {checked} values compared");
    println!("{checked} patched values match TransformerLens; max abs error {worst:.2e}");
}
