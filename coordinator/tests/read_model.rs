//! The read model's named queries, run against both backends on a small sweep stored
//! through the queue as workers store it; every answer is checked against values computed
//! here, in Rust, from the rows the sweep was given.

use std::collections::{BTreeMap, BTreeSet};

use patchsweep_api::{DebiasTask, PatchTask, PrepareTask, TaskArgs};
use patchsweep_coordinator::store::{
    DebiasRow, EffectRow, NewTask, PairRow, PreparedSweep, Rounding, Settled, Store, StoreError,
    SweepSelection, TaskOutput, WorkerInfo,
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
        sweeps_are_selected,
        sweep_tables_match,
        cell_means_and_tokens_match,
        scatter_points_match,
        top_components_match,
        debias_results_match,
        views_export_whole,
    ]
);

backend_tests!(
    postgres,
    postgres_db,
    [
        sweeps_are_selected,
        sweep_tables_match,
        cell_means_and_tokens_match,
        scatter_points_match,
        top_components_match,
        debias_results_match,
        views_export_whole,
    ]
);

// ---------------------------------------------------------------------------------------
// The sweep

/// An experiment name with a quote, which only bound parameters get through unharmed.
const QUOTED: &str = "act'noise";

/// (name, method, direction)
fn experiments() -> Vec<(String, String, String)> {
    [
        ("act", "activation", "denoise"),
        ("atp", "attribution", "denoise"),
        (QUOTED, "activation", "noise"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect()
}

/// Three pairs, two of 3 tokens and one of 4, with position labels and tokens.
fn pairs() -> Vec<PairRow> {
    let pair = |i: usize, labels: &[&str], tokens: &[&str]| PairRow {
        pair_id: format!("p{i}"),
        template: (i != 2).then(|| "short".to_string()),
        clean_prompt: tokens.concat(),
        corrupt_prompt: format!("corrupt {i}"),
        clean_ids: (0..tokens.len() as u32)
            .map(|t| t + 10 * i as u32)
            .collect(),
        corrupt_ids: (0..tokens.len() as u32).map(|t| t + 100).collect(),
        // Two counterfactual groups and a pair without a counterfactual.
        labels: match i {
            0 => BTreeMap::from([("counterfactual".to_string(), "man".to_string())]),
            // A counterfactual with a stereotype of its own is grouped by that.
            1 => BTreeMap::from([
                ("counterfactual".to_string(), "nurse".to_string()),
                (
                    "counterfactual_stereotype".to_string(),
                    "female".to_string(),
                ),
            ]),
            _ => BTreeMap::new(),
        },
        clean_metric: 1.0 + i as f64 / 3.0,
        corrupt_metric: -0.25 * i as f64,
        // Pair 1 has a stereotyped side, its metric growing toward it (+1 orients as 0 does).
        toward_stereotype: i8::from(i == 1),
        position_labels: labels.iter().map(|s| s.to_string()).collect(),
        clean_tokens: tokens.iter().map(|s| s.to_string()).collect(),
        corrupt_tokens: tokens.iter().map(|s| format!("{s}'")).collect(),
    };
    vec![
        pair(0, &["det", "subject", "last"], &["The", " cat", " sat"]),
        pair(1, &["det", "subject", "last"], &["The", " dog", " sat"]),
        pair(
            2,
            &["det", "subject", "verb", "last"],
            &["The", " cat", " said", " so"],
        ),
    ]
}

/// Effects of every experiment: residual stream at each layer and position, and heads
/// without a position; values distinct enough that no two means tie.
fn effects() -> Vec<EffectRow> {
    let mut out = Vec::new();
    for (x, (experiment, _, _)) in experiments().iter().enumerate() {
        for (p, pair) in pairs().iter().enumerate() {
            if experiment == "atp" && p == 2 {
                continue; // attribution measured only the short pairs
            }
            let mut k = 0;
            let mut push = |component: &str, layer, head, position| {
                k += 1;
                let v = (k as f64 * 1.37 + p as f64 * 0.29 + x as f64 * 0.11).sin();
                out.push(EffectRow {
                    experiment: experiment.clone(),
                    component: component.to_string(),
                    layer: Some(layer),
                    head,
                    position,
                    neuron: None,
                    pair_id: pair.pair_id.clone(),
                    value: v * 2.0,
                    effect: v,
                    normalized: (k % 5 != 0).then_some(v / 1.7),
                });
            };
            for layer in 0..2 {
                for position in 0..pair.clean_ids.len() as u32 {
                    push("resid_pre", layer, None, Some(position));
                }
                for head in 0..2 {
                    push("head_out", layer, Some(head), None);
                }
            }
        }
    }
    out
}

fn debias_rows() -> Vec<DebiasRow> {
    let row = |intervention: &str, split: &str, metric: &str, before, after, control| DebiasRow {
        debias: "d".into(),
        intervention: intervention.into(),
        components: format!("head_out L1H0 ({intervention})"),
        split: split.into(),
        metric: metric.into(),
        before,
        after,
        control_after: control,
        control_components: control.map(|_| "head_out L0H1".to_string()),
        control_sets: control.map(|_| 20),
        control_p05: control.map(|c| c - 0.25),
        control_p95: control.map(|c| c + 0.25),
        control_percentile: control.map(|_| 5.0),
        n: control.map(|_| 4),
        before_ci: Some((before - 1.0, before + 1.0)),
        after_ci: None,
        control_ci: control.map(|c| (c - 0.125, c + 0.125)),
    };
    vec![
        row("steering", "heldout", "mean_logit_diff", 1.23456, 0.5, None),
        row(
            "ablation-zero",
            "heldout",
            "mean_logit_diff",
            1.23456,
            0.41234567,
            Some(1.1),
        ),
        row(
            "ablation-zero",
            "neutral",
            "perplexity",
            20.0,
            21.55555,
            Some(20.1),
        ),
    ]
}

fn task(kind: &str, n: usize, cost: i64, waits: bool) -> NewTask {
    NewTask {
        args: match kind {
            "prepare" => TaskArgs::Prepare(PrepareTask {}),
            "debias" => TaskArgs::Debias(DebiasTask {
                name: "d".into(),
                experiment: "act".into(),
                ..Default::default()
            }),
            _ => TaskArgs::Patch(PatchTask {
                experiment: format!("e{n}"),
                ..Default::default()
            }),
        },
        description: format!("{kind} {n}"),
        cost,
        stage: u32::from(waits),
    }
}

/// Stores the sweep as workers would (prepare, two patch tasks, one debias task), then a
/// second sweep that stays queued; answers the first sweep's id.
async fn stored_sweep(store: &Store) -> i64 {
    let p = policy();
    let id = store
        .submit_sweep(
            "small",
            "spec",
            "m",
            0.0,
            0.0,
            &[task("prepare", 0, 0, false)],
            &p,
        )
        .await
        .unwrap();
    store
        .register_worker(&WorkerInfo {
            id: "w".into(),
            ..WorkerInfo::new("w", "cpu")
        })
        .await
        .unwrap();
    let lease = |store: &Store| {
        let store = store.clone();
        async move {
            store
                .lease_tasks("w", "", 1, &policy())
                .await
                .unwrap()
                .pop()
                .expect("a task to lease")
        }
    };
    let prep = lease(store).await;
    let prepared = PreparedSweep {
        pairs: pairs(),
        dropped_pairs: vec![],
        dropped: vec![("too_long".into(), 2), ("mismatch".into(), 1)],
        experiments: experiments(),
        tasks: vec![
            task("patch", 1, 30, false),
            task("patch", 2, 12, false),
            task("debias", 3, 0, true),
        ],
        // Section "d": two pairs held out, one selecting.
        splits: [("p0", "heldout"), ("p1", "heldout"), ("p2", "selection")]
            .iter()
            .map(|(p, part)| ("d".to_string(), p.to_string(), part.to_string()))
            .collect(),
    };
    complete_prepare(store, &prep, prepared).await;
    let all = effects();
    let (first, second) = all.split_at(all.len() / 2);
    for part in [first, second] {
        let t = lease(store).await;
        assert_eq!(t.kind().as_str(), "patch");
        let settled = store
            .complete_task(
                "w",
                t.task_id,
                t.attempt,
                &TaskOutput::Patch(part.to_vec()),
                &p,
            )
            .await
            .unwrap();
        assert_eq!(
            settled,
            Settled::Completed {
                rows: part.len() as u64
            }
        );
    }
    let d = lease(store).await;
    assert_eq!(d.kind().as_str(), "debias");
    let rows = debias_rows();
    store
        .complete_task(
            "w",
            d.task_id,
            d.attempt,
            &TaskOutput::Debias {
                rows,
                benchmarks: Vec::new(),
            },
            &p,
        )
        .await
        .unwrap();
    store
        .submit_sweep(
            "later",
            "spec",
            "m",
            0.0,
            0.0,
            &[task("prepare", 0, 0, false)],
            &p,
        )
        .await
        .unwrap();
    id
}

// ---------------------------------------------------------------------------------------
// Independent computations

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

fn pair_of(id: &str) -> PairRow {
    pairs().into_iter().find(|p| p.pair_id == id).unwrap()
}

fn label_of(e: &EffectRow) -> Option<String> {
    let p = pair_of(&e.pair_id);
    e.position.map(|i| p.position_labels[i as usize].clone())
}

fn opt(v: Option<u32>) -> Option<i64> {
    v.map(i64::from)
}

// ---------------------------------------------------------------------------------------

mod suite {
    use super::*;

    pub async fn sweeps_are_selected(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let id = stored_sweep(&store).await;
        let all = store.sweeps(SweepSelection::All).await.unwrap();
        let names: Vec<(i64, &str, &str)> = all
            .iter()
            .map(|s| (s.id, s.name.as_str(), s.status.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![(id, "small", "done"), (id + 1, "later", "queued")]
        );
        assert!(all[0].finished_at.is_some() && all[1].finished_at.is_none());
        assert_eq!(all[0].model, "m");
        assert!(!all[0].created_at.is_empty());
        let latest = store.sweeps(SweepSelection::Latest).await.unwrap();
        assert_eq!(latest, vec![all[1].clone()]);
        let one = store.sweeps(SweepSelection::Id(id)).await.unwrap();
        assert_eq!(one, vec![all[0].clone()]);
        assert!(store
            .sweeps(SweepSelection::Id(id + 7))
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn sweep_tables_match(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let id = stored_sweep(&store).await;

        let summaries = store.experiment_summaries(id).await.unwrap();
        let mut expected: Vec<(String, String, String, i64, i64)> = experiments()
            .into_iter()
            .map(|(name, method, direction)| {
                let mine: Vec<EffectRow> = effects()
                    .into_iter()
                    .filter(|e| e.experiment == name)
                    .collect();
                let components: BTreeSet<&str> =
                    mine.iter().map(|e| e.component.as_str()).collect();
                let n = components.len() as i64;
                (name, method, direction, mine.len() as i64, n)
            })
            .collect();
        expected.sort();
        let got: Vec<(String, String, String, i64, i64)> = summaries
            .into_iter()
            .map(|x| (x.experiment, x.method, x.direction, x.effects, x.components))
            .collect();
        assert_eq!(got, expected);

        let got = store.pair_baselines(id).await.unwrap();
        assert_eq!(got.len(), 3);
        for (row, pair) in got.iter().zip(pairs()) {
            assert_eq!(row.pair_id, pair.pair_id);
            assert_eq!(row.template, pair.template);
            assert_eq!(
                (&row.clean_prompt, &row.corrupt_prompt),
                (&pair.clean_prompt, &pair.corrupt_prompt)
            );
            assert_eq!(
                (row.clean_metric, row.corrupt_metric),
                (pair.clean_metric, pair.corrupt_metric)
            );
            assert_eq!(row.difference, pair.clean_metric - pair.corrupt_metric);
            assert_eq!(row.n_tokens, pair.clean_ids.len() as i64);
            assert_eq!(row.labels, pair.labels);
        }
        // One row per counterfactual group (the unlabelled pair first), each its pair's own.
        let groups = store
            .baselines_by_counterfactual(id, Rounding::Exact)
            .await
            .unwrap();
        let labels: Vec<Option<&str>> =
            groups.iter().map(|g| g.counterfactual.as_deref()).collect();
        assert_eq!(labels, [None, Some("female"), Some("man")]);
        for (g, p) in groups.iter().zip([&pairs()[2], &pairs()[1], &pairs()[0]]) {
            assert_eq!(g.baselines.pairs, 1);
            assert!(close(g.baselines.mean_clean.unwrap(), p.clean_metric));
            assert!(close(
                g.baselines.mean_difference.unwrap(),
                p.clean_metric - p.corrupt_metric
            ));
        }

        let clean: Vec<f64> = pairs().iter().map(|p| p.clean_metric).collect();
        let corrupt: Vec<f64> = pairs().iter().map(|p| p.corrupt_metric).collect();
        let diff: Vec<f64> = pairs()
            .iter()
            .map(|p| p.clean_metric - p.corrupt_metric)
            .collect();
        let exact = store.baselines(id, Rounding::Exact).await.unwrap();
        assert_eq!(exact.pairs, 3);
        for (got, want) in [
            (exact.mean_clean, &clean),
            (exact.mean_corrupt, &corrupt),
            (exact.mean_difference, &diff),
        ] {
            assert!(close(got.unwrap(), mean(want).unwrap()), "{got:?}");
        }
        let rounded = store.baselines(id, Rounding::FourDecimals).await.unwrap();
        assert!(close(
            rounded.mean_clean.unwrap(),
            round4(mean(&clean).unwrap())
        ));
        assert!(close(
            rounded.mean_corrupt.unwrap(),
            round4(mean(&corrupt).unwrap())
        ));
        let none = store.baselines(id + 1, Rounding::Exact).await.unwrap();
        assert_eq!((none.pairs, none.mean_clean), (0, None));

        let dropped: Vec<(String, i64)> = store
            .dropped_counts(id)
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.reason, d.count))
            .collect();
        assert_eq!(
            dropped,
            vec![("mismatch".to_string(), 1), ("too_long".to_string(), 2)]
        );

        let tasks = store.task_summaries(id).await.unwrap();
        type TaskSummaryKey<'a> = (&'a str, &'a str, i64, Option<i64>, Option<i64>, Option<i64>);
        let got: Vec<TaskSummaryKey> = tasks
            .iter()
            .map(|t| {
                (
                    t.kind.as_str(),
                    t.state.as_str(),
                    t.tasks,
                    t.patches,
                    t.rows_stored,
                    t.attempts,
                )
            })
            .collect();
        let n = effects().len() as i64;
        assert_eq!(
            got,
            vec![
                ("debias", "done", 1, Some(0), Some(3), Some(1)),
                ("patch", "done", 2, Some(42), Some(n), Some(2)),
                ("prepare", "done", 1, Some(0), Some(3), Some(1)),
            ]
        );
        assert!(tasks.iter().all(|t| t.seconds.is_some_and(|s| s >= 0.0)));
        assert!(tasks
            .iter()
            .all(|t| t.an_error.is_none() && t.lease_expirations == Some(0)));
    }

    pub async fn cell_means_and_tokens_match(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let id = stored_sweep(&store).await;
        type Key = (
            String,
            String,
            String,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<String>,
            i64,
        );
        let methods: BTreeMap<String, String> =
            experiments().into_iter().map(|(n, m, _)| (n, m)).collect();
        // Every pair of this sweep is strong (min_span 0) with clean > corrupt: each effect
        // adds `value - corrupt` to the shift and `clean - corrupt` to the span.
        let mut groups: BTreeMap<Key, (f64, f64, i64, BTreeSet<String>)> = BTreeMap::new();
        for e in effects() {
            let key = (
                e.experiment.clone(),
                methods[&e.experiment].clone(),
                e.component.clone(),
                opt(e.layer),
                opt(e.head),
                opt(e.position),
                label_of(&e),
                pair_of(&e.pair_id).clean_ids.len() as i64,
            );
            let p = pair_of(&e.pair_id);
            let g = groups.entry(key).or_default();
            g.0 += e.value - p.corrupt_metric;
            g.1 += p.clean_metric - p.corrupt_metric;
            g.2 += 1;
            g.3.insert(e.pair_id.clone());
        }
        let mut got = store.cell_means(id).await.unwrap();
        assert_eq!(got.len(), groups.len());
        got.sort_by_key(|c| {
            (
                c.experiment.clone(),
                c.method.clone(),
                c.component.clone(),
                c.layer,
                c.head,
                c.position,
                c.label.clone(),
                c.n_tokens,
            )
        });
        for (c, (key, (shift, span, count, pairs))) in got.iter().zip(&groups) {
            let mine: Key = (
                c.experiment.clone(),
                c.method.clone(),
                c.component.clone(),
                c.layer,
                c.head,
                c.position,
                c.label.clone(),
                c.n_tokens,
            );
            assert_eq!(&mine, key);
            assert_eq!(c.neuron, None);
            assert_eq!(c.count, *count, "{key:?}");
            assert_eq!(c.pairs, pairs.len() as i64, "{key:?}");
            assert!(close(c.shift, *shift) && close(c.span, *span), "{key:?}");
            let mean = c.mean.expect("a strong pair");
            assert!(
                close(mean, shift / span),
                "{key:?}: {mean} vs {}",
                shift / span
            );
        }

        let mut tokens: BTreeMap<(i64, i64, Option<String>, String), i64> = BTreeMap::new();
        for p in pairs() {
            for (i, t) in p.clean_tokens.iter().enumerate() {
                let key = (
                    p.clean_ids.len() as i64,
                    i as i64,
                    Some(p.position_labels[i].clone()),
                    t.clone(),
                );
                *tokens.entry(key).or_default() += 1;
            }
        }
        let got: BTreeMap<(i64, i64, Option<String>, String), i64> = store
            .position_tokens(id)
            .await
            .unwrap()
            .into_iter()
            .map(|t| ((t.n_tokens, t.position, t.label, t.token), t.pairs))
            .collect();
        assert_eq!(got, tokens);
    }

    pub async fn scatter_points_match(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let id = stored_sweep(&store).await;
        let sets = store.scatter_sets(id).await.unwrap();
        // `act'noise` has another direction than `atp`: one set only.
        assert_eq!(sets.len(), 1);
        assert_eq!(
            (sets[0].activation.as_str(), sets[0].attribution.as_str()),
            ("act", "atp")
        );
        let key = |e: &EffectRow| {
            (
                e.component.clone(),
                e.layer,
                e.head,
                e.position,
                e.pair_id.clone(),
            )
        };
        let atp: BTreeMap<_, f64> = effects()
            .iter()
            .filter(|e| e.experiment == "atp")
            .map(|e| (key(e), e.effect))
            .collect();
        let mut expected: Vec<(String, f64, f64)> = effects()
            .iter()
            .filter(|e| e.experiment == "act")
            .filter_map(|e| {
                atp.get(&key(e))
                    .map(|b| (e.component.clone(), e.effect, *b))
            })
            .collect();
        let mut got: Vec<(String, f64, f64)> = sets[0]
            .points
            .iter()
            .map(|p| (p.component.clone(), p.activation, p.attribution))
            .collect();
        let order = |a: &(String, f64, f64), b: &(String, f64, f64)| {
            (a.0.as_str(), a.1, a.2)
                .partial_cmp(&(b.0.as_str(), b.1, b.2))
                .unwrap()
        };
        expected.sort_by(order);
        got.sort_by(order);
        assert_eq!(got, expected);
        assert!(store.scatter_sets(id + 1).await.unwrap().is_empty());
    }

    pub async fn top_components_match(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let id = stored_sweep(&store).await;
        for experiment in ["act", QUOTED] {
            // cells_v: by position label (the heads have no position, so no label); every
            // pair is strong (min_span 0, clean > corrupt), no pair has a stereotype.
            type Key = (String, Option<i64>, Option<i64>, Option<String>);
            let mut groups: BTreeMap<Key, (f64, f64, Vec<f64>, BTreeSet<String>)> = BTreeMap::new();
            for e in effects().iter().filter(|e| e.experiment == experiment) {
                let p = pair_of(&e.pair_id);
                let g = groups
                    .entry((e.component.clone(), opt(e.layer), opt(e.head), label_of(e)))
                    .or_default();
                g.0 += e.value - p.corrupt_metric;
                g.1 += p.clean_metric - p.corrupt_metric;
                g.2.push(e.effect);
                g.3.insert(e.pair_id.clone());
            }
            let mut expected: Vec<(Key, f64, f64, i64)> = groups
                .into_iter()
                .map(|(k, (shift, span, e, pairs))| {
                    (k, shift / span, mean(&e).unwrap(), pairs.len() as i64)
                })
                .collect();
            // Ranked as debias selection ranks: |normalized| when denoising, |1 - normalized|
            // when noising (QUOTED is a noise experiment).
            let score = |n: f64| if experiment == QUOTED { 1.0 - n } else { n }.abs();
            expected.sort_by(|a, b| score(b.1).partial_cmp(&score(a.1)).unwrap());
            expected.truncate(5);

            let got = store
                .top_components(id, experiment, 5, Rounding::Exact)
                .await
                .unwrap();
            assert_eq!(got.len(), 5);
            for (c, (key, n, e, pairs)) in got.iter().zip(&expected) {
                assert_eq!(
                    &(c.component.clone(), c.layer, c.head, c.position.clone()),
                    key
                );
                assert_eq!((c.neuron, c.pairs, c.pairs_used), (None, *pairs, *pairs));
                assert!(
                    close(c.normalized, *n) && close(c.mean_effect, *e),
                    "{key:?}"
                );
            }
            let rounded = store
                .top_components(id, experiment, 5, Rounding::FourDecimals)
                .await
                .unwrap();
            for (c, (key, n, e, pairs)) in rounded.iter().zip(&expected) {
                assert_eq!(
                    &(c.component.clone(), c.layer, c.head, c.position.clone()),
                    key
                );
                assert_eq!(c.pairs, *pairs);
                assert!(close(c.normalized, round4(*n)), "{key:?}");
                assert!(close(c.mean_effect, round4(*e)), "{key:?}");
            }
        }
        assert!(store
            .top_components(id, "none", 5, Rounding::Exact)
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn debias_results_match(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let id = stored_sweep(&store).await;
        // By section, metric, split, intervention.
        let mut expected = debias_rows();
        expected.sort_by(|a, b| {
            (&a.debias, &a.metric, &a.split, &a.intervention).cmp(&(
                &b.debias,
                &b.metric,
                &b.split,
                &b.intervention,
            ))
        });
        let got = store.debias_rows(id).await.unwrap();
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            let text = |r: &DebiasRow| {
                (
                    r.debias.clone(),
                    r.intervention.clone(),
                    r.components.clone(),
                    r.split.clone(),
                    r.metric.clone(),
                    r.control_components.clone(),
                )
            };
            assert_eq!(text(g), text(e));
            assert!(
                close(g.before, e.before) && close(g.after, e.after),
                "{g:?}"
            );
            assert_eq!(g.control_after.is_some(), e.control_after.is_some());
            if let (Some(a), Some(b)) = (g.control_after, e.control_after) {
                assert!(close(a, b), "{g:?}");
            }
            assert_eq!(
                g.control_ci, e.control_ci,
                "the control's interval round-trips"
            );
        }
        assert!(store.debias_rows(id + 1).await.unwrap().is_empty());

        // By section, intervention, split, metric; rounded.
        let mut expected = debias_rows();
        expected.sort_by(|a, b| {
            (&a.debias, &a.intervention, &a.split, &a.metric).cmp(&(
                &b.debias,
                &b.intervention,
                &b.split,
                &b.metric,
            ))
        });
        let got = store
            .debias_deltas(id, Rounding::FourDecimals)
            .await
            .unwrap();
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(
                (&g.debias, &g.intervention, &g.split, &g.metric),
                (&e.debias, &e.intervention, &e.split, &e.metric)
            );
            assert!(close(g.before, round4(e.before)) && close(g.after, round4(e.after)));
            assert!(close(g.delta, round4(e.after - e.before)), "{g:?}");
            assert_eq!(g.control_after.is_some(), e.control_after.is_some());
            if let (Some(a), Some(b)) = (g.control_after, e.control_after) {
                assert!(close(a, round4(b)), "{g:?}");
            }
            let rounded = |ci: Option<(f64, f64)>| ci.map(|(l, h)| (round4(l), round4(h)));
            assert_eq!(g.control_ci.map(|c| c.0).is_some(), e.control_ci.is_some());
            if let (Some(a), Some(b)) = (g.control_ci, rounded(e.control_ci)) {
                assert!(close(a.0, b.0) && close(a.1, b.1), "{g:?}");
            }
        }
        let exact = store.debias_deltas(id, Rounding::Exact).await.unwrap();
        for g in &exact {
            assert_eq!(
                g.delta,
                g.after - g.before,
                "the database subtracts as Rust does"
            );
        }
        let stored = store.debias_rows(id).await.unwrap();
        assert!(exact.iter().all(|g| stored
            .iter()
            .any(|s| (s.before, s.after) == (g.before, g.after))));

        let components: Vec<(String, String, Option<String>)> = store
            .debias_components(id)
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.intervention, c.components, c.control_components))
            .collect();
        let distinct: BTreeSet<(String, String, Option<String>)> = debias_rows()
            .into_iter()
            .map(|r| (r.intervention, r.components, r.control_components))
            .collect();
        assert_eq!(components, distinct.into_iter().collect::<Vec<_>>());

        // The splits' sizes: pairs, distinct clean prompts, pairs with a stereotyped side.
        let sizes: Vec<(String, String, i64, i64, i64)> = store
            .debias_split_sizes(id)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.debias, s.part, s.pairs, s.clean_prompts, s.stereotyped))
            .collect();
        assert_eq!(
            sizes,
            vec![
                ("d".to_string(), "heldout".to_string(), 2, 2, 1),
                ("d".to_string(), "selection".to_string(), 1, 1, 0),
            ]
        );
        assert!(store.debias_split_sizes(id + 1).await.unwrap().is_empty());
    }

    pub async fn views_export_whole(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let id = stored_sweep(&store).await;
        let all = store.export_view("effects_v", None).await.unwrap();
        assert_eq!(all.rows.len(), effects().len());
        assert!(all.columns.iter().any(|c| c == "position_label"));
        let one = store.export_view("pairs_v", Some(id)).await.unwrap();
        assert_eq!(one.rows.len(), 3);
        let none = store.export_view("debias_v", Some(id + 1)).await.unwrap();
        assert!(none.rows.is_empty());
        assert!(
            none.columns.iter().any(|c| c == "delta"),
            "{:?}",
            none.columns
        );
        let err = store
            .export_view("effects_v; DROP TABLE effects", None)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
        let err = store.export_view("no_such_view", None).await.unwrap_err();
        assert!(matches!(err, StoreError::Query { .. }), "{err:?}");
    }
}
