//! Component sets patched jointly on the real SmolLM2 equal the same sets patched with
//! TransformerLens hooks (engine/tests/golden/tl_component_sets_smollm2.json, from
//! reference/tl_component_sets.py): the paper's stages — early MLPs at the profession token,
//! chosen heads at the last position, a band of every head, MLPs with attention outputs —
//! in the noise direction, and the reversal each implies.

mod smollm2_golden;

use patchsweep_engine::experiment::{Direction, Engine, Experiment, Method, PairInput};
use patchsweep_engine::grid::{
    Component, Grid, Pathway, PathwaySite, PositionRef, Positions, SiteHeads,
};
use patchsweep_engine::metric::{Metric, MetricKind, Reduce};
use serde_json::Value;
use smollm2_golden::{golden, ids, smollm2};

/// The golden's `[component, layer, head, position]` sites as pathway sites.
fn pathway(name: &str, sites: &Value) -> Pathway {
    let sites = sites
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let component = match s[0].as_str().unwrap() {
                "mlp_out" => Component::MlpOut,
                "attn_out" => Component::AttnOut,
                "head_out" => Component::HeadOut,
                other => panic!("component {other} is not in the golden's vocabulary"),
            };
            let position = match &s[3] {
                Value::String(label) => PositionRef::Label(label.clone()),
                index => PositionRef::Index(index.as_i64().unwrap()),
            };
            PathwaySite {
                component,
                layers: Some(vec![s[1].as_u64().unwrap() as usize]),
                heads: s[2]
                    .as_u64()
                    .map_or(SiteHeads::None, |h| SiteHeads::List(vec![h as usize])),
                position: Some(position),
                neuron: None,
            }
        })
        .collect();
    Pathway {
        name: name.into(),
        sites,
    }
}

#[test]
fn component_sets_match_transformer_lens_on_smollm2() {
    let golden = golden("tl_component_sets_smollm2.json");
    assert_eq!(golden["direction"], "noise");
    let model = smollm2().model;
    let gpairs = golden["pairs"].as_array().unwrap();
    let pairs: Vec<PairInput> = gpairs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let clean_ids = ids(&p["clean_ids"]);
            let subject = p["subject"].as_u64().unwrap() as usize;
            let position_labels = (0..clean_ids.len())
                .map(|t| if t == subject { "subject" } else { "" }.to_string())
                .collect();
            PairInput {
                id: format!("p{i}"),
                clean_ids,
                corrupt_ids: ids(&p["corrupt_ids"]),
                position_labels,
                metric: Metric {
                    kind: MetricKind::LogitDiff,
                    reduce: Reduce::Mean,
                    positive: vec![p["positive_id"].as_u64().unwrap() as u32],
                    negative: vec![p["negative_id"].as_u64().unwrap() as u32],
                },
            }
        })
        .collect();
    let sets = golden["sets"].as_object().unwrap();
    let grid = Grid {
        components: vec![],
        layers: None,
        positions: Positions::All,
        heads: None,
        neurons: None,
        pathways: sets.iter().map(|(name, s)| pathway(name, s)).collect(),
        selections: vec![],
    };
    let engine = Engine::new(&model);
    let baselines = engine.baselines(&pairs).unwrap();
    let exp = Experiment {
        name: "sets".into(),
        method: Method::Activation,
        direction: Direction::Noise,
        grid,
    };
    let effects = engine.run(&exp, &pairs, &baselines, &mut |_| {}).unwrap();
    assert_eq!(effects.len(), sets.len() * pairs.len());
    let (mut worst, mut reversals) = (0f64, 0);
    for e in &effects {
        let name = e
            .key
            .component
            .strip_prefix("pathway:")
            .expect("a pathway cell");
        let p = &gpairs[e.pair];
        let want = p["sets"][name].as_f64().unwrap();
        let err = (e.value - want).abs();
        worst = worst.max(err);
        assert!(
            err <= 1e-3,
            "{name} on {:?}: patchsweep {} vs TransformerLens {want}",
            p["clean"],
            e.value
        );
        let clean = baselines[e.pair].clean as f64;
        let reversed = e.value != 0.0 && (e.value > 0.0) != (clean > 0.0);
        assert_eq!(
            reversed,
            p["reversed"][name].as_bool().unwrap(),
            "{name} on {:?}: reversal",
            p["clean"]
        );
        reversals += reversed as usize;
    }
    println!(
        "{} joint sets × {} pairs: max |Δ| vs TransformerLens {worst:.2e}, {reversals} reversed",
        sets.len(),
        pairs.len()
    );
}
