//! The generation check's continuations on both backends: stored with their generate
//! task's completion (exactly once under the table's key), shown by `generations_v` (the
//! unpatched cell as NULL, the prompt continued, where patched values come from), read back
//! by the read model's sample, and bad rows refused naming the pair.

use std::collections::BTreeMap;

use patchsweep_api::{GenerateTask, TaskArgs};
use patchsweep_coordinator::store::{
    GenerationRow, GenerationSample, LeasedTask, NewTask, PairRow, PreparedSweep, Settled, Store,
    StoreError, TaskOutput,
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
    [generations_round_trip, bad_generations_are_refused]
);
backend_tests!(
    postgres,
    postgres_db,
    [generations_round_trip, bad_generations_are_refused]
);

fn pair(i: usize) -> PairRow {
    PairRow {
        pair_id: format!("p{i}"),
        template: None,
        clean_prompt: format!("The nurse {i} said that"),
        corrupt_prompt: format!("The man {i} said that"),
        clean_ids: vec![1, 2, 3],
        corrupt_ids: vec![1, 4, 3],
        labels: BTreeMap::new(),
        clean_metric: 1.0,
        corrupt_metric: -1.0,
        toward_stereotype: 1,
        position_labels: vec![],
        clean_tokens: vec![],
        corrupt_tokens: vec![],
    }
}

fn row(pair: usize, cell: Option<&str>, run: &str) -> GenerationRow {
    GenerationRow {
        experiment: "mlp".into(),
        pair_id: format!("p{pair}"),
        cell: cell.map(str::to_string),
        run: run.into(),
        tokens: vec![pair as u32, 7, 9],
        text: format!(" she's {run} {}", cell.unwrap_or("-")),
    }
}

/// A prepared sweep of three pairs and one noise experiment, with its generate task leased.
async fn leased_generate_task(store: &Store) -> (i64, LeasedTask) {
    let p = policy();
    let generate = NewTask {
        args: TaskArgs::Generate(GenerateTask {
            experiment: "origin".into(),
            pairs: vec![],
            tokens: 4,
        }),
        description: "generate".into(),
        cost: 1,
        stage: 0,
    };
    let prepared = PreparedSweep {
        pairs: (0..3).map(pair).collect(),
        experiments: vec![("mlp".into(), "activation".into(), "noise".into())],
        tasks: vec![generate],
        ..PreparedSweep::default()
    };
    let id = submit_and_prepare(store, "gen", 0.0, prepared).await;
    let t = store.lease_tasks("w", "", 1, &p).await.unwrap().remove(0);
    assert_eq!(t.kind().as_str(), "generate");
    (id, t)
}

mod suite {
    use super::*;

    pub async fn generations_round_trip(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let (id, t) = leased_generate_task(&store).await;
        let mut rows: Vec<GenerationRow> = (0..3)
            .flat_map(|i| {
                [
                    row(i, Some("pathway:mlp0"), "clean"),
                    row(i, None, "corrupt"),
                    row(i, None, "clean"),
                ]
            })
            .collect();
        // The same continuation twice is stored once (the table's key).
        rows.push(row(1, None, "clean"));
        let out = TaskOutput::Generate(rows);
        let settled = store
            .complete_task("w", t.task_id, t.attempt, &out, &policy())
            .await
            .unwrap();
        assert_eq!(settled, Settled::Completed { rows: 9 });
        // A second delivery of the same result is refused by the fence.
        let again = store
            .complete_task("w", t.task_id, t.attempt, &out, &policy())
            .await
            .unwrap();
        assert!(matches!(again, Settled::Stale { .. }), "{again:?}");

        let sample = store.generation_sample(id, 2).await.unwrap();
        let expected: Vec<GenerationSample> = (0..2)
            .flat_map(|i| {
                let p = pair(i);
                let sample = |cell: Option<&str>, run: &str, from: Option<&str>| {
                    let r = row(i, cell, run);
                    GenerationSample {
                        experiment: "mlp".into(),
                        direction: "noise".into(),
                        pair_id: p.pair_id.clone(),
                        cell: r.cell,
                        run: r.run,
                        patched_from: from.map(str::to_string),
                        prompt: if run == "clean" {
                            p.clean_prompt.clone()
                        } else {
                            p.corrupt_prompt.clone()
                        },
                        text: r.text,
                    }
                };
                vec![
                    sample(None, "clean", None),
                    sample(None, "corrupt", None),
                    sample(Some("pathway:mlp0"), "clean", Some("corrupt")),
                ]
            })
            .collect();
        assert_eq!(sample, expected);
        assert_eq!(store.generation_sample(id, 10).await.unwrap().len(), 9);
        assert!(store
            .generation_sample(id + 1, 10)
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn bad_generations_are_refused(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let (id, t) = leased_generate_task(&store).await;
        for (bad, says) in [
            (row(0, None, "patched"), "run `patched`"),
            (row(0, Some(""), "clean"), "empty cell"),
        ] {
            let err = store
                .complete_task(
                    "w",
                    t.task_id,
                    t.attempt,
                    &TaskOutput::Generate(vec![row(1, None, "clean"), bad]),
                    &policy(),
                )
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
            let text = err.to_string();
            assert!(text.contains("pair `p0`") && text.contains(says), "{text}");
        }
        // Nothing of a refused result was kept (its transaction rolled back).
        assert!(store.generation_sample(id, 10).await.unwrap().is_empty());
    }
}
