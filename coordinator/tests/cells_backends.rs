//! Aggregation that cannot blow up, on both backends: `cells_v` (and the read model's
//! heatmap cells and top components) leave pairs with |clean - corrupt| < `min_span` out of
//! the normalized effect and form it as a ratio of sums; `mean_effect` is oriented toward
//! each pair's stereotyped answer; `pairs_v` shows each pair's span; a debias task over a
//! `noise` experiment gets `1 - normalized` as its selection score.

use std::collections::BTreeMap;

use patchsweep_api::{DebiasTask, TaskArgs};
use patchsweep_coordinator::store::{
    values, EffectRow, NewTask, PairRow, PreparedSweep, Rounding, Store, TaskOutput,
};

#[macro_use]
#[path = "common/testdb.rs"]
mod testdb;
use testdb::*;
#[path = "common/prepared.rs"]
mod prepared;
use prepared::*;

backend_tests!(
    sqlite,
    sqlite_db,
    [
        weak_pairs_are_left_out_of_normalized_cells,
        mean_effect_is_oriented_toward_the_stereotype,
        noise_selection_scores_one_minus_normalized,
    ]
);

backend_tests!(
    postgres,
    postgres_db,
    [
        weak_pairs_are_left_out_of_normalized_cells,
        mean_effect_is_oriented_toward_the_stereotype,
        noise_selection_scores_one_minus_normalized,
    ]
);

const MIN_SPAN: f64 = 0.5;

/// `f` (female-stereotyped, its metric growing toward the anti-stereotypical answer) spans
/// +2, `m` (male-stereotyped, growing toward the stereotyped one) spans -2, and `w`
/// (unlabelled) spans 0.01: weak.
fn pairs() -> Vec<PairRow> {
    let pair = |id: &str, clean: f64, corrupt: f64, toward: i8| PairRow {
        pair_id: id.into(),
        template: Some("t".into()),
        clean_prompt: format!("The {id} said that"),
        corrupt_prompt: "The man said that".into(),
        clean_ids: vec![1],
        corrupt_ids: vec![2],
        labels: BTreeMap::new(),
        clean_metric: clean,
        corrupt_metric: corrupt,
        toward_stereotype: toward,
        position_labels: vec!["subject".into()],
        clean_tokens: vec![format!(" {id}")],
        corrupt_tokens: vec![" man".into()],
    };
    vec![
        pair("f", 2.0, 0.0, -1),
        pair("m", -1.0, 1.0, 1),
        pair("w", 0.51, 0.5, 0),
    ]
}

/// `(experiment, layer, pair, patched value)`: in `den` (denoise) layer 0 restores half of
/// both strong pairs, layer 1 a tenth; the weak pair's values are wild (a per-pair normalized
/// effect of 450 and -350). In `noi` (noise) layer 0 does nothing (the value stays clean)
/// and layer 1 does everything (the value becomes the corrupted one).
fn effects() -> Vec<EffectRow> {
    let base = |experiment: &str, pair: &str| {
        let p = pairs().into_iter().find(|p| p.pair_id == pair).unwrap();
        if experiment == "noi" {
            p.clean_metric
        } else {
            p.corrupt_metric
        }
    };
    [
        ("den", 0, "f", 1.0),
        ("den", 0, "m", 0.0),
        ("den", 0, "w", 5.0),
        ("den", 1, "f", 0.2),
        ("den", 1, "m", 0.8),
        ("den", 1, "w", -3.0),
        ("noi", 0, "f", 2.0),
        ("noi", 0, "m", -1.0),
        ("noi", 0, "w", 0.51),
        ("noi", 1, "f", 0.0),
        ("noi", 1, "m", 1.0),
        ("noi", 1, "w", 9.0),
    ]
    .into_iter()
    .map(|(experiment, layer, pair, value)| {
        let p = pairs().into_iter().find(|p| p.pair_id == pair).unwrap();
        EffectRow {
            experiment: experiment.into(),
            component: "mlp_out".into(),
            layer: Some(layer),
            head: None,
            position: Some(0),
            neuron: None,
            pair_id: pair.into(),
            value,
            effect: value - base(experiment, pair),
            normalized: Some((value - p.corrupt_metric) / (p.clean_metric - p.corrupt_metric)),
        }
    })
    .collect()
}

fn task(kind: &str, payload: &str, waits: bool) -> NewTask {
    NewTask {
        args: TaskArgs::from_stored(kind.parse().unwrap(), payload).unwrap(),
        description: kind.into(),
        cost: 1,
        stage: u32::from(waits),
    }
}

/// Stores the sweep through the queue (every pair in the debias section's selection split)
/// and answers its id and the leased debias task's arguments.
async fn stored_sweep(store: &Store) -> (i64, DebiasTask) {
    let p = policy();
    let lease = || async {
        store
            .lease_tasks("w", "", 1, &p)
            .await
            .unwrap()
            .pop()
            .unwrap()
    };
    let prepared = PreparedSweep {
        pairs: pairs(),
        dropped_pairs: vec![],
        dropped: vec![],
        experiments: vec![
            ("den".into(), "activation".into(), "denoise".into()),
            ("noi".into(), "activation".into(), "noise".into()),
        ],
        tasks: vec![
            task(
                "patch",
                r#"{"experiment":"noi","pairs":[],"baselines":[],"layers":null,"pathways":true}"#,
                false,
            ),
            task("debias", r#"{"name":"d","experiment":"noi"}"#, true),
        ],
        splits: pairs()
            .iter()
            .map(|p| ("d".to_string(), p.pair_id.clone(), "selection".to_string()))
            .collect(),
    };
    let id = submit_and_prepare(store, "cells", MIN_SPAN, prepared).await;
    let patch = lease().await;
    let output = TaskOutput::Patch(effects());
    store
        .complete_task("w", patch.task_id, patch.attempt, &output, &p)
        .await
        .unwrap();
    let debias = lease().await;
    let TaskArgs::Debias(args) = debias.args else {
        panic!("the debias task: {debias:?}");
    };
    (id, args)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

mod suite {
    use super::*;

    pub async fn weak_pairs_are_left_out_of_normalized_cells(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let (id, _) = stored_sweep(&store).await;

        // Per pair: (1.0 - 0) / 2 = 0.5, (0.0 - 1) / -2 = 0.5 and (5.0 - 0.5) / 0.01 = 450;
        // their mean is 150. Over the strong pairs only, as a ratio of sums: 2 / 4.
        let top = store
            .top_components(id, "den", 10, Rounding::Exact)
            .await
            .unwrap();
        let by_layer: BTreeMap<i64, _> = top.iter().map(|c| (c.layer.unwrap(), c)).collect();
        assert_eq!(by_layer.len(), 2, "{top:?}");
        assert!(close(by_layer[&0].normalized, 0.5), "{top:?}");
        assert!(close(by_layer[&1].normalized, 0.1), "{top:?}");
        for c in &top {
            assert_eq!((c.pairs, c.pairs_used), (3, 2));
            assert_eq!(c.position.as_deref(), Some("subject"));
        }
        assert_eq!(top[0].layer, Some(0), "ordered by |normalized|");

        // The heatmap cells carry the same sums.
        let cells = store.cell_means(id).await.unwrap();
        let den0 = cells
            .iter()
            .find(|c| c.experiment == "den" && c.layer == Some(0))
            .unwrap();
        assert!(close(den0.shift, 2.0) && close(den0.span, 4.0), "{den0:?}");
        assert_eq!((den0.count, den0.pairs), (2, 3));
        assert!(close(den0.mean.unwrap(), 0.5));

        // The weak pair is named, with its span.
        let weak = store.weak_pairs(id).await.unwrap();
        assert_eq!((weak.min_span, weak.pairs), (MIN_SPAN, 3));
        assert_eq!(weak.weak.len(), 1);
        assert_eq!(weak.weak[0].0, "w");
        assert!(close(weak.weak[0].1, 0.51 - 0.5));

        // pairs_v shows every pair's span and whether it is weak.
        let pairs_v = store.export_view("pairs_v", Some(id)).await.unwrap();
        let col = |name: &str| pairs_v.columns.iter().position(|c| c == name).unwrap();
        let (pair, span, weak) = (col("pair_id"), col("span"), col("weak"));
        let mut seen: Vec<(String, f64, i64)> = pairs_v
            .rows
            .iter()
            .map(|r| {
                (
                    values::as_text(&r[pair]).unwrap(),
                    values::as_f64(&r[span]).unwrap(),
                    values::as_i64(&r[weak]).unwrap(),
                )
            })
            .collect();
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            seen.iter().map(|r| (r.0.as_str(), r.2)).collect::<Vec<_>>(),
            vec![("f", 0), ("m", 0), ("w", 1)]
        );
        assert!(close(seen[0].1, 2.0) && close(seen[1].1, -2.0));

        // cells_v itself: one row per layer and experiment.
        let cells_v = store.export_view("cells_v", Some(id)).await.unwrap();
        assert_eq!(cells_v.rows.len(), 4);
        for c in [
            "sweep_name",
            "experiment",
            "method",
            "direction",
            "component",
            "layer",
            "head",
            "position_label",
            "neuron",
            "pairs",
            "pairs_used",
            "mean_effect",
            "normalized",
        ] {
            assert!(cells_v.columns.iter().any(|x| x == c), "{c}");
        }
    }

    pub async fn mean_effect_is_oriented_toward_the_stereotype(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let (id, _) = stored_sweep(&store).await;
        let top = store
            .top_components(id, "den", 10, Rounding::Exact)
            .await
            .unwrap();
        let den0 = top.iter().find(|c| c.layer == Some(0)).unwrap();
        // Effects f +1, m -1, w +4.5. `f`'s metric grows toward the anti-stereotypical
        // answer, so its +1 counts -1; `m`'s toward the stereotyped one; `w` has no label.
        // Unoriented, f and m would cancel: (1 - 1 + 4.5) / 3.
        assert!(
            close(den0.mean_effect, (-1.0 - 1.0 + 4.5) / 3.0),
            "{den0:?}"
        );
    }

    pub async fn noise_selection_scores_one_minus_normalized(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let (_, args) = stored_sweep(&store).await;
        let score = |layer: i64| {
            args.effects
                .iter()
                .find(|e| e.1 == layer)
                .unwrap_or_else(|| panic!("no effect at layer {layer}: {:?}", args.effects))
                .4
        };
        assert_eq!(args.effects.len(), 2, "{:?}", args.effects);
        // Layer 0 leaves the clean run as it is (normalized 1 per pair): it does nothing,
        // and scores 0. Layer 1 turns the clean run into the corrupted one: it scores 1.
        assert!(close(score(0), 0.0), "{:?}", args.effects);
        assert!(close(score(1), 1.0), "{:?}", args.effects);
        let e = &args.effects[0];
        assert_eq!(
            (e.0.as_str(), e.2, e.3.as_deref()),
            ("mlp_out", None, Some("subject"))
        );
    }
}
