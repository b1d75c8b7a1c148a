//! Logit-lens values on both backends: a lens task's output is stored with its completion,
//! exactly once under its key; `lens_v` shows whether the stereotyped answer leads per pair
//! and layer; `lens_layers_v` (and the read model's `lens_layers`) gives the per-layer curve,
//! its biased share over the pairs with a stereotyped side, ties counting as not leading.

use std::collections::BTreeMap;

use patchsweep_api::{PatchTask, TaskArgs};
use patchsweep_coordinator::store::{
    values, LensRow, NewTask, PairRow, PreparedSweep, Settled, Store, StoreError, TaskOutput,
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
        lens_values_round_trip_once,
        lens_layers_give_the_biased_share,
        bad_lens_values_are_refused
    ]
);

backend_tests!(
    postgres,
    postgres_db,
    [
        lens_values_round_trip_once,
        lens_layers_give_the_biased_share,
        bad_lens_values_are_refused
    ]
);

/// `f` female-stereotyped with the stereotyped answer on the negative side (toward -1), `m`
/// male-stereotyped on the positive side (toward +1), `u` without a stereotype.
fn pairs() -> Vec<PairRow> {
    let pair = |id: &str, toward: i8| PairRow {
        pair_id: id.into(),
        template: None,
        clean_prompt: format!("The {id} said that"),
        corrupt_prompt: "The man said that".into(),
        clean_ids: vec![1],
        corrupt_ids: vec![2],
        labels: BTreeMap::new(),
        clean_metric: 1.0,
        corrupt_metric: 0.0,
        toward_stereotype: toward,
        position_labels: vec![],
        clean_tokens: vec![],
        corrupt_tokens: vec![],
    };
    vec![pair("f", -1), pair("m", 1), pair("u", 0)]
}

fn lead(v: f64) -> i8 {
    if v > 0.0 {
        1
    } else if v < 0.0 {
        -1
    } else {
        0
    }
}

/// `(layer, pair, clean, corrupt)`. Layer 0: only `m` has its stereotyped answer leading
/// (share 1/2); layer 1: both (1); layer 2: `f` ties and `m` leads the other way (0).
fn rows() -> Vec<LensRow> {
    [
        (0, "f", 0.5, 1.0),
        (0, "m", 2.0, -1.0),
        (0, "u", -3.0, 0.0),
        (1, "f", -0.5, -1.0),
        (1, "m", 1.5, -2.0),
        (1, "u", 4.0, 1.0),
        (2, "f", 0.0, 0.25),
        (2, "m", -1.0, 0.5),
        (2, "u", 2.0, 2.0),
    ]
    .into_iter()
    .map(|(layer, pair, clean, corrupt)| LensRow {
        experiment: "lens".into(),
        pair_id: pair.into(),
        layer,
        clean_value: clean,
        corrupt_value: corrupt,
        clean_lead: lead(clean),
        corrupt_lead: lead(corrupt),
    })
    .collect()
}

fn lens_task() -> NewTask {
    NewTask {
        args: TaskArgs::Patch(PatchTask {
            experiment: "lens".into(),
            ..Default::default()
        }),
        description: "patch".into(),
        cost: 1,
        stage: 0,
    }
}

/// A sweep prepared with a `lens` experiment and `tasks` lens tasks; answers its id.
async fn prepared_sweep(store: &Store, tasks: usize) -> i64 {
    let prepared = PreparedSweep {
        pairs: pairs(),
        experiments: vec![("lens".into(), "logit_lens".into(), "denoise".into())],
        tasks: (0..tasks).map(|_| lens_task()).collect(),
        ..Default::default()
    };
    submit_and_prepare(store, "lens-sweep", 0.5, prepared).await
}

/// Leases the next task and completes it with `rows`.
async fn complete_with(store: &Store, rows: Vec<LensRow>) -> Result<Settled, StoreError> {
    let p = policy();
    let t = store.lease_tasks("w", "", 1, &p).await.unwrap().remove(0);
    store
        .complete_task("w", t.task_id, t.attempt, &TaskOutput::Lens(rows), &p)
        .await
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12
}

mod suite {
    use super::*;

    pub async fn lens_values_round_trip_once(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let id = prepared_sweep(&store, 2).await;
        let all = rows();
        let first = complete_with(&store, all[..5].to_vec()).await.unwrap();
        assert_eq!(first, Settled::Completed { rows: 5 });
        // A task whose rows overlap stored ones (a re-run) adds only the new ones.
        let second = complete_with(&store, all.clone()).await.unwrap();
        assert_eq!(second, Settled::Completed { rows: 4 });

        let view = store.export_view("lens_v", Some(id)).await.unwrap();
        assert_eq!(view.rows.len(), all.len());
        let col = |name: &str| view.columns.iter().position(|c| c == name).unwrap();
        let (pair, layer, clean, corrupt, biased) = (
            col("pair_id"),
            col("layer"),
            col("clean_value"),
            col("corrupt_value"),
            col("clean_biased"),
        );
        assert_eq!(view.rows[0][col("sweep_name")], "lens-sweep");
        for r in &view.rows {
            let (p, l) = (
                values::as_text(&r[pair]).unwrap(),
                values::as_i64(&r[layer]).unwrap(),
            );
            let want = all
                .iter()
                .find(|w| w.pair_id == p && i64::from(w.layer) == l)
                .unwrap();
            assert_eq!(values::as_f64(&r[clean]), Some(want.clean_value), "{p} {l}");
            assert_eq!(
                values::as_f64(&r[corrupt]),
                Some(want.corrupt_value),
                "{p} {l}"
            );
            let expected = match (p.as_str(), l) {
                ("u", _) => None,
                ("m", 0) | ("m", 1) | ("f", 1) => Some(1),
                _ => Some(0),
            };
            assert_eq!(values::as_i64(&r[biased]), expected, "{p} {l}: {r:?}");
        }
    }

    pub async fn lens_layers_give_the_biased_share(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let id = prepared_sweep(&store, 1).await;
        complete_with(&store, rows()).await.unwrap();
        let curve = store.lens_layers(id).await.unwrap();
        assert_eq!(curve.iter().map(|l| l.layer).collect::<Vec<_>>(), [0, 1, 2]);
        let shares: Vec<_> = curve.iter().map(|l| l.biased_share.unwrap()).collect();
        assert_eq!(shares, [0.5, 1.0, 0.0]);
        // Corrupted prompts: layer 0 f leads positive (not stereotyped), m negative: 0; layer
        // 1 f negative (stereotyped): 1/2; layer 2 f positive, m positive: 1/2.
        let corrupt: Vec<_> = curve
            .iter()
            .map(|l| l.corrupt_biased_share.unwrap())
            .collect();
        assert_eq!(corrupt, [0.0, 0.5, 0.5]);
        for l in &curve {
            assert_eq!(
                (l.experiment.as_str(), l.pairs, l.stereotyped_pairs),
                ("lens", 3, 2)
            );
        }
        assert!(close(curve[0].mean_clean, (0.5 + 2.0 - 3.0) / 3.0));
        assert!(close(curve[2].mean_corrupt, (0.25 + 0.5 + 2.0) / 3.0));
        let first = patchsweep_coordinator::store::LensLayer::first_biased(&curve).unwrap();
        assert_eq!(first.layer, 1);
        assert!(store.lens_layers(id + 1).await.unwrap().is_empty());
    }

    pub async fn bad_lens_values_are_refused(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let id = prepared_sweep(&store, 1).await;
        let mut bad = rows();
        bad[3].corrupt_value = f64::NAN;
        let err = complete_with(&store, bad).await.unwrap_err().to_string();
        assert!(
            err.contains("pair `f`, layer 1") && err.contains("not finite"),
            "{err}"
        );
        // Nothing of the refused output was stored.
        let view = store.export_view("lens_v", Some(id)).await.unwrap();
        assert!(view.rows.is_empty());
    }
}
