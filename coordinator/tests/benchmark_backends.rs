//! Benchmark pair scores on both backends: stored with their task's completion (a benchmark
//! task's `base` rows, a debias task's rows after an intervention and on control sets),
//! exactly once; `benchmark_v` per subset and `all`, the controls pooled as `NAME/control`,
//! its Wilson interval equal to the engine's on both backends (SQLite's square root is
//! Newton steps, PostgreSQL's is `sqrt`); bad rows refused with nothing stored.

use patchsweep_api::{BenchmarkTask, DebiasTask, TaskArgs};
use patchsweep_coordinator::store::{
    BenchmarkRow, BenchmarkScore, LeasedTask, NewTask, PreparedSweep, Settled, Store, StoreError,
    TaskOutput,
};
use patchsweep_engine::interval::wilson_interval;

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
        scores_aggregate_per_state_and_subset,
        bad_rows_store_nothing
    ]
);
backend_tests!(
    postgres,
    postgres_db,
    [
        scores_aggregate_per_state_and_subset,
        bad_rows_store_nothing
    ]
);

/// Pair `i` of subset `age` (i < 7) or `gender`: the stereotypical sentence is more likely
/// for every third pair, and ties (i = 4) count as not preferred.
fn row(i: u32, state: &str, debias: Option<&str>, control: Option<u32>) -> BenchmarkRow {
    let shift = control.map_or(0, |c| c + 1);
    let stereo = -10.0 - f64::from(i);
    let anti = match (i + shift) % 3 {
        _ if i == 4 => stereo,
        0 => stereo - 1.0,
        _ => stereo + 0.5,
    };
    BenchmarkRow {
        benchmark: "crows".into(),
        model_state: state.into(),
        debias: debias.map(str::to_string),
        control_set: control,
        pair_index: i,
        pair_id: format!("crows_pairs/{i}"),
        subset: if i < 7 { "age" } else { "gender" }.into(),
        stereo_loglik: stereo,
        anti_loglik: anti,
    }
}

/// A sweep whose prepare task planned one benchmark and one debias task (both kinds
/// queued at once here), both leased.
async fn leased_tasks(store: &Store) -> (i64, LeasedTask, LeasedTask) {
    let p = policy();
    let task = |kind: &str| NewTask {
        args: match kind {
            "benchmark" => TaskArgs::Benchmark(BenchmarkTask {
                benchmark: "crows".into(),
                first: 0,
                pairs: vec![],
            }),
            _ => TaskArgs::Debias(DebiasTask {
                name: "d".into(),
                experiment: "e".into(),
                ..Default::default()
            }),
        },
        description: kind.into(),
        cost: 1,
        stage: 0,
    };
    let prepared = PreparedSweep {
        tasks: vec![task("benchmark"), task("debias")],
        ..PreparedSweep::default()
    };
    let id = submit_and_prepare(store, "bench", 0.0, prepared).await;
    let mut leased = store.lease_tasks("w", "", 2, &p).await.unwrap();
    leased.sort_by_key(|t| t.kind().as_str() != "benchmark");
    let (b, d) = (leased.remove(0), leased.remove(0));
    assert_eq!(
        (b.kind().as_str(), d.kind().as_str()),
        ("benchmark", "debias")
    );
    (id, b, d)
}

/// `benchmark_v`'s row expected from `rows` (of one state) for `subset`.
fn expected(
    rows: &[BenchmarkRow],
    subset: &str,
    state: &str,
    debias: Option<&str>,
    sets: i64,
) -> BenchmarkScore {
    let kept: Vec<&BenchmarkRow> = rows
        .iter()
        .filter(|r| subset == "all" || r.subset == subset)
        .collect();
    let n = kept.len();
    let k = kept
        .iter()
        .filter(|r| r.stereo_loglik > r.anti_loglik)
        .count();
    let (ci_low, ci_high) = wilson_interval(k, n);
    BenchmarkScore {
        benchmark: "crows".into(),
        subset: subset.into(),
        model_state: state.into(),
        debias: debias.map(str::to_string),
        n: n as i64,
        stereo_preferred: k as i64,
        score: k as f64 / n as f64,
        ci_low,
        ci_high,
        control_sets: sets,
    }
}

fn assert_close(got: &[BenchmarkScore], want: &[BenchmarkScore]) {
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (g, w) in got.iter().zip(want) {
        let key = |s: &BenchmarkScore| {
            (
                s.benchmark.clone(),
                s.subset.clone(),
                s.model_state.clone(),
                s.debias.clone(),
                s.n,
                s.stereo_preferred,
                s.control_sets,
            )
        };
        assert_eq!(key(g), key(w));
        for (a, b) in [
            (g.score, w.score),
            (g.ci_low, w.ci_low),
            (g.ci_high, w.ci_high),
        ] {
            assert!((a - b).abs() < 1e-12, "{g:?} vs {w:?}");
        }
    }
}

mod suite {
    use super::*;

    pub async fn scores_aggregate_per_state_and_subset(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let (id, b, d) = leased_tasks(&store).await;
        let base: Vec<BenchmarkRow> = (0..12).map(|i| row(i, "base", None, None)).collect();
        let mut sent = base.clone();
        sent.push(row(3, "base", None, None)); // the same pair twice is stored once
        let out = TaskOutput::Benchmark(sent);
        let settled = store
            .complete_task("w", b.task_id, b.attempt, &out, &policy())
            .await
            .unwrap();
        assert_eq!(settled, Settled::Completed { rows: 12 });
        let again = store
            .complete_task("w", b.task_id, b.attempt, &out, &policy())
            .await
            .unwrap();
        assert!(matches!(again, Settled::Stale { .. }), "{again:?}");

        let after: Vec<BenchmarkRow> = (0..12)
            .map(|i| row(i, "ablation_zero", Some("d"), None))
            .collect();
        let control: Vec<BenchmarkRow> = (0..2)
            .flat_map(|c| (0..12).map(move |i| row(i, "ablation_zero", Some("d"), Some(c))))
            .collect();
        let mut benchmarks = after.clone();
        benchmarks.extend(control.clone());
        let settled = store
            .complete_task(
                "w",
                d.task_id,
                d.attempt,
                &TaskOutput::Debias {
                    rows: vec![],
                    benchmarks,
                },
                &policy(),
            )
            .await
            .unwrap();
        assert_eq!(settled, Settled::Completed { rows: 36 });

        let got = store.benchmark_scores(id).await.unwrap();
        let mut want = Vec::new();
        for subset in ["age", "gender", "all"] {
            want.push(expected(&base, subset, "base", None, 0));
        }
        for subset in ["age", "gender", "all"] {
            want.push(expected(&after, subset, "ablation_zero", Some("d"), 0));
        }
        for subset in ["age", "gender", "all"] {
            want.push(expected(
                &control,
                subset,
                "ablation_zero/control",
                Some("d"),
                2,
            ));
        }
        assert_close(&got, &want);
        assert!(store.benchmark_scores(id + 1).await.unwrap().is_empty());
    }

    pub async fn bad_rows_store_nothing(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let (id, b, _) = leased_tasks(&store).await;
        let mut infinite = row(1, "base", None, None);
        infinite.anti_loglik = f64::NEG_INFINITY;
        for (bad, says) in [
            (infinite, "not finite"),
            (row(2, "base", Some("d"), None), "a base row"),
            (row(2, "steering", None, None), "a base row"),
            (row(2, "", None, None), "empty benchmark, state"),
        ] {
            let err = store
                .complete_task(
                    "w",
                    b.task_id,
                    b.attempt,
                    &TaskOutput::Benchmark(vec![row(0, "base", None, None), bad]),
                    &policy(),
                )
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
            assert!(err.to_string().contains(says), "{err}");
        }
        assert!(store.benchmark_scores(id).await.unwrap().is_empty());
    }
}
