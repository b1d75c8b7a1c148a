//! The store's test suite, written once and run against both backends: a SQLite file in a
//! temporary folder, and PostgreSQL in a fresh schema per test.
//!
//! PostgreSQL comes from `PATCHSWEEP_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it cannot be reached the PostgreSQL
//! tests fail: CI starts the server, and a skipped backend would hide a broken one.

use std::collections::BTreeMap;
use std::time::Instant;

use patchsweep_coordinator::store::{Backend, EffectRow, PairRow, Store, StoreError};
use serde_json::{json, Value};

#[macro_use]
#[path = "common/testdb.rs"]
mod testdb;
use testdb::*;

backend_tests!(
    sqlite,
    sqlite_db,
    [
        migrations_are_idempotent,
        effects_round_trip_through_views,
        effects_land_exactly_once,
        bad_input_is_refused_whole,
        queries_cannot_write,
        query_values_decode,
        dropped_pairs_and_finish,
        insert_throughput_100k,
    ]
);

backend_tests!(
    postgres,
    postgres_db,
    [
        migrations_are_idempotent,
        effects_round_trip_through_views,
        effects_land_exactly_once,
        bad_input_is_refused_whole,
        queries_cannot_write,
        query_values_decode,
        dropped_pairs_and_finish,
        insert_throughput_100k,
    ]
);

#[tokio::test]
async fn unreachable_postgres_is_a_clear_error() {
    let err = Store::connect("postgres://postgres:s3cret@127.0.0.1:1/test")
        .await
        .expect_err("nothing listens on port 1");
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
    assert!(
        msg.starts_with("cannot connect to postgres://postgres@127.0.0.1:1/test: "),
        "{msg}"
    );
    assert!(!msg.contains("s3cret"), "password leaked: {msg}");
}

#[tokio::test]
async fn unsupported_url_is_refused() {
    let err = Store::connect("mysql://root@localhost/test")
        .await
        .expect_err("no MySQL backend");
    assert!(matches!(err, StoreError::UnsupportedUrl { .. }), "{err:?}");
}

#[tokio::test]
async fn sqlite_file_is_created_in_wal_mode_from_a_plain_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.db");
    let store = Store::connect(path.to_str().unwrap()).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    assert!(path.exists());
    let mode = store.query_readonly("PRAGMA journal_mode").await.unwrap();
    assert_eq!(mode.rows, vec![vec![json!("wal")]]);
    let fk = store.query_readonly("PRAGMA foreign_keys").await.unwrap();
    assert_eq!(fk.rows, vec![vec![json!(1)]]);
    store.close().await;
}

#[tokio::test]
async fn sqlite_in_memory_works_and_stays_read_only() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let sweep = seed(&store, 2).await;
    let n = store.insert_effects(sweep, &effects(2, 50)).await.unwrap();
    assert_eq!(n, 100);
    assert_eq!(count(&store, "effects_v").await, 100);
    let err = store
        .query_readonly("DELETE FROM effects")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("queries are read-only"), "{err}");
    let err = store
        .query_readonly("WITH x AS (SELECT 1) DELETE FROM effects")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    assert_eq!(count(&store, "effects").await, 100);
}

// ---------------------------------------------------------------------------------------
// Fixtures

const POSITION_LABELS: [&str; 5] = ["det", "subject", "verb", "conj", "last"];

fn pair(i: usize) -> PairRow {
    let profession = format!("job{i}");
    let clean_tokens: Vec<String> = ["The", " job", " said", " that", "."]
        .iter()
        .map(|t| t.to_string())
        .collect();
    let mut corrupt_tokens = clean_tokens.clone();
    corrupt_tokens[1] = " man".into();
    PairRow {
        pair_id: format!("p{i}"),
        template: Some("The {} said that".into()),
        clean_prompt: format!("The {profession} said that"),
        corrupt_prompt: "The man said that".into(),
        clean_ids: vec![1, 100 + i as u32, 7, 8, 9],
        corrupt_ids: vec![1, 50, 7, 8, 9],
        labels: BTreeMap::from([("profession".to_string(), profession)]),
        clean_metric: 1.5,
        corrupt_metric: -0.5,
        toward_stereotype: 0,
        position_labels: POSITION_LABELS.iter().map(|s| s.to_string()).collect(),
        clean_tokens,
        corrupt_tokens,
    }
}

/// A sweep with two experiments and `n_pairs` pairs.
async fn seed(store: &Store, n_pairs: usize) -> i64 {
    let sweep = store
        .create_sweep("gender", "[sweep]\nname = \"gender\"\n", "smollm2-135m")
        .await
        .unwrap();
    store
        .add_experiment(sweep, "act", "activation", "denoise")
        .await
        .unwrap();
    store
        .add_experiment(sweep, "atp", "attribution", "noise")
        .await
        .unwrap();
    let pairs: Vec<PairRow> = (0..n_pairs).map(pair).collect();
    store.insert_pairs(sweep, &pairs).await.unwrap();
    sweep
}

/// `per_pair` effects for each of `n_pairs` pairs, with every kind of coordinate:
/// residual stream (layer, position), heads (layer, head), neurons (layer, position, neuron).
fn effects(n_pairs: usize, per_pair: usize) -> Vec<EffectRow> {
    let mut out = Vec::with_capacity(n_pairs * per_pair);
    for p in 0..n_pairs {
        for k in 0..per_pair {
            let (component, layer, head, position, neuron) = match k % 10 {
                0..=4 => ("resid_pre", k / 10, None, Some((k % 5) as u32), None),
                5..=7 => ("head", k / 10, Some((k % 10 - 5) as u32), None, None),
                _ => ("mlp_post", k / 10, None, Some(4), Some((k % 10) as u32)),
            };
            out.push(EffectRow {
                experiment: if p % 2 == 0 { "act" } else { "atp" }.to_string(),
                component: component.to_string(),
                layer: Some(layer as u32),
                head,
                position,
                neuron,
                pair_id: format!("p{p}"),
                value: k as f64 * 0.25,
                effect: k as f64 * 0.5 - 1.0,
                normalized: if k % 7 == 0 {
                    None
                } else {
                    Some(k as f64 / 8.0)
                },
            });
        }
    }
    out
}

async fn scalar(store: &Store, sql: &str) -> Value {
    let r = store
        .query_readonly(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(r.rows.len(), 1, "{sql}");
    r.rows[0][0].clone()
}

async fn count(store: &Store, table: &str) -> i64 {
    scalar(store, &format!("SELECT count(*) FROM {table}"))
        .await
        .as_i64()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// The suite

mod suite {
    use super::*;

    pub async fn migrations_are_idempotent(url: &str) {
        let first = Store::connect(url).await.unwrap();
        let sweep = seed(&first, 1).await;
        let second = Store::connect(url)
            .await
            .expect("connecting again re-runs no migration");
        let third = Store::connect(url).await.unwrap();
        assert_eq!(count(&third, "sweeps").await, 1);
        assert_eq!(
            scalar(
                &second,
                &format!("SELECT name FROM sweeps WHERE id = {sweep}")
            )
            .await,
            json!("gender")
        );
        for s in [first, second, third] {
            s.close().await;
        }
    }

    pub async fn effects_round_trip_through_views(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let sweep = seed(&store, 10).await;
        let rows = effects(10, 1000);
        assert_eq!(store.insert_effects(sweep, &rows).await.unwrap(), 10_000);

        let cols = store
            .query_readonly("SELECT * FROM effects_v WHERE 1 = 0")
            .await
            .unwrap();
        assert_eq!(
            cols.columns,
            [
                "sweep_name",
                "sweep_id",
                "experiment",
                "method",
                "direction",
                "component",
                "layer",
                "head",
                "position",
                "position_label",
                "pair_id",
                "template",
                "clean_prompt",
                "corrupt_prompt",
                "value",
                "effect",
                "normalized",
                "neuron",
                "reversed"
            ]
        );
        assert!(cols.rows.is_empty());
        let cols = store.query_readonly("SELECT * FROM pairs_v").await.unwrap();
        assert_eq!(
            cols.columns,
            [
                "sweep_name",
                "sweep_id",
                "pair_id",
                "template",
                "clean_prompt",
                "corrupt_prompt",
                "clean_metric",
                "corrupt_metric",
                "n_tokens",
                "span",
                "weak",
                "toward_stereotype",
                "stereotype",
                "counterfactual",
                "counterfactual_group"
            ]
        );
        assert_eq!(cols.rows.len(), 10);
        assert_eq!(cols.rows[0][8], json!(5));

        assert_eq!(count(&store, "effects_v").await, 10_000);
        assert_eq!(count(&store, "pair_positions").await, 50);
        // -1 is stored, NULL is shown.
        assert_eq!(count(&store, "effects WHERE head = -1").await, 7_000);
        assert_eq!(count(&store, "effects_v WHERE head IS NULL").await, 7_000);
        assert_eq!(
            count(&store, "effects_v WHERE position IS NULL").await,
            3_000
        );
        assert_eq!(count(&store, "effects_v WHERE neuron IS NULL").await, 8_000);
        assert_eq!(
            count(
                &store,
                "effects_v WHERE layer = -1 OR head = -1 OR position = -1"
            )
            .await,
            0
        );
        assert_eq!(
            count(&store, "effects_v WHERE normalized IS NULL").await,
            10 * 143
        );

        let r = store
            .query_readonly(
                "SELECT sweep_name, method, direction, position, position_label, template, \
                 value, effect, normalized, head, neuron \
                 FROM effects_v WHERE pair_id = 'p3' AND component = 'resid_pre' \
                 AND layer = 2 AND position = 1",
            )
            .await
            .unwrap();
        // k = 21: resid_pre, layer 2, position 1
        assert_eq!(
            r.rows,
            vec![vec![
                json!("gender"),
                json!("attribution"),
                json!("noise"),
                json!(1),
                json!("subject"),
                json!("The {} said that"),
                json!(5.25),
                json!(9.5),
                Value::Null,
                Value::Null,
                Value::Null
            ]]
        );
        let r = store
            .query_readonly(
                "SELECT position, position_label, head FROM effects_v \
                 WHERE pair_id = 'p0' AND component = 'head' AND layer = 0 ORDER BY head",
            )
            .await
            .unwrap();
        assert_eq!(
            r.rows,
            vec![
                vec![Value::Null, Value::Null, json!(0)],
                vec![Value::Null, Value::Null, json!(1)],
                vec![Value::Null, Value::Null, json!(2)],
            ]
        );
        let r = store
            .query_readonly(
                "SELECT neuron, position_label FROM effects_v \
                 WHERE pair_id = 'p0' AND component = 'mlp_post' AND layer = 0 ORDER BY neuron",
            )
            .await
            .unwrap();
        assert_eq!(
            r.rows,
            vec![vec![json!(8), json!("last")], vec![json!(9), json!("last")]]
        );
        let r = store
            .query_readonly("SELECT clean_ids, labels FROM pairs WHERE pair_id = 'p2'")
            .await
            .unwrap();
        assert_eq!(
            r.rows,
            vec![vec![
                json!("[1,102,7,8,9]"),
                json!(r#"{"profession":"job2"}"#)
            ]]
        );
        store.close().await;
    }

    pub async fn effects_land_exactly_once(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let sweep = seed(&store, 10).await;
        let rows = effects(10, 1000);
        assert_eq!(store.insert_effects(sweep, &rows).await.unwrap(), 10_000);
        assert_eq!(
            store.insert_effects(sweep, &rows).await.unwrap(),
            0,
            "re-run task"
        );
        // Old and new mixed: only the new land.
        let mut mixed: Vec<EffectRow> = effects(10, 1010)
            .into_iter()
            .filter(|e| e.layer.unwrap() >= 99)
            .collect();
        assert_eq!(mixed.len(), 200, "layer 99 is stored, layer 100 is new");
        mixed.extend_from_slice(&rows[..50]);
        assert_eq!(store.insert_effects(sweep, &mixed).await.unwrap(), 100);
        assert_eq!(count(&store, "effects").await, 10_100);
        // Duplicates inside one batch land once.
        let twice = vec![rows[0].clone(), rows[0].clone()];
        assert_eq!(store.insert_effects(sweep, &twice).await.unwrap(), 0);
        // Pairs and experiments are idempotent too.
        let pairs: Vec<PairRow> = (0..10).map(pair).collect();
        store.insert_pairs(sweep, &pairs).await.unwrap();
        store
            .add_experiment(sweep, "act", "activation", "denoise")
            .await
            .unwrap();
        assert_eq!(count(&store, "pairs").await, 10);
        assert_eq!(count(&store, "pair_positions").await, 50);
        let err = store
            .add_experiment(sweep, "act", "attribution", "denoise")
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::ExperimentConflict { .. }),
            "{err:?}"
        );
        // The same key in another sweep is another effect.
        let other = seed(&store, 10).await;
        assert_eq!(store.insert_effects(other, &rows).await.unwrap(), 10_000);
        store.close().await;
    }

    pub async fn bad_input_is_refused_whole(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let sweep = seed(&store, 2).await;
        // An effect naming a pair that is not stored: the whole batch is refused.
        let mut rows = effects(2, 10);
        rows.push(EffectRow {
            pair_id: "nope".into(),
            ..rows[0].clone()
        });
        let err = store.insert_effects(sweep, &rows).await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("insert effects failed on "), "{msg}");
        assert!(msg.contains("not stored"), "{msg}");
        assert_eq!(count(&store, "effects").await, 0);
        // An unknown experiment likewise.
        let mut rows = effects(2, 10);
        rows[5].experiment = "missing".into();
        assert!(store.insert_effects(sweep, &rows).await.is_err());
        assert_eq!(count(&store, "effects").await, 0);
        // NaN is refused before anything is written.
        let mut rows = effects(2, 10);
        rows[3].effect = f64::NAN;
        let err = store.insert_effects(sweep, &rows).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
        // A non-finite normalized effect is stored as NULL.
        let mut rows = effects(2, 10);
        rows[1].normalized = Some(f64::INFINITY);
        assert_eq!(store.insert_effects(sweep, &rows).await.unwrap(), 20);
        assert_eq!(count(&store, "effects WHERE normalized IS NULL").await, 5);
        // Pairs whose prompts differ in length are refused, none of the batch lands.
        let mut bad = pair(7);
        bad.corrupt_ids.push(3);
        let err = store
            .insert_pairs(sweep, &[pair(5), bad])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("pair `p7`"), "{err}");
        assert_eq!(count(&store, "pairs").await, 2);
        // Unknown sweeps are named as such.
        for err in [
            store
                .add_experiment(9999, "x", "activation", "denoise")
                .await
                .unwrap_err(),
            store.insert_pairs(9999, &[pair(1)]).await.unwrap_err(),
            store
                .set_dropped(9999, &[("x".into(), 1)])
                .await
                .unwrap_err(),
            store.finish_sweep(9999, "done").await.unwrap_err(),
        ] {
            assert!(
                matches!(err, StoreError::SweepNotFound { sweep_id: 9999, .. }),
                "{err:?}"
            );
        }
        store.close().await;
    }

    pub async fn queries_cannot_write(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let sweep = seed(&store, 2).await;
        store.insert_effects(sweep, &effects(2, 100)).await.unwrap();
        let mut refused = vec![
            "INSERT INTO sweeps (name, spec, model) VALUES ('x', 'y', 'z')".to_string(),
            "UPDATE sweeps SET name = 'renamed'".into(),
            "DELETE FROM effects".into(),
            "DROP TABLE effects".into(),
            "DROP VIEW effects_v".into(),
            "CREATE TABLE sneaky (a INTEGER)".into(),
            "SELECT 1; DELETE FROM effects".into(),
            "select count(*) from effects;\n  delete from effects;".into(),
            "ALTER TABLE sweeps ADD COLUMN x INTEGER".into(),
        ];
        // Statements that pass the first gate and must be stopped by the database itself.
        match store.backend() {
            Backend::Sqlite => refused.extend([
                "WITH x AS (SELECT 1) DELETE FROM effects".to_string(),
                "WITH x AS (SELECT 1) INSERT INTO dropped_pairs VALUES (1, 'r', 1)".into(),
                "PRAGMA user_version = 7".into(),
            ]),
            Backend::Postgres => refused.extend([
                "WITH d AS (DELETE FROM effects RETURNING 1) SELECT count(*) FROM d".to_string(),
                "SELECT nextval('sweeps_id_seq')".into(),
                "SELECT * FROM sweeps FOR UPDATE".into(),
            ]),
        }
        for sql in &refused {
            let err = store.query_readonly(sql).await.expect_err(sql);
            assert!(matches!(err, StoreError::ReadOnly { .. }), "{sql}: {err:?}");
            assert!(
                err.to_string()
                    .starts_with("statement refused: queries are read-only"),
                "{err}"
            );
        }
        // Turning the guard off in one query does not carry over to the next.
        if store.backend() == Backend::Sqlite {
            let _ = store.query_readonly("PRAGMA query_only = OFF").await;
            for _ in 0..8 {
                let err = store
                    .query_readonly("WITH x AS (SELECT 1) DELETE FROM effects")
                    .await
                    .unwrap_err();
                assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
            }
            assert_eq!(scalar(&store, "PRAGMA user_version").await, json!(0));
        } else {
            let _ = store
                .query_readonly("SELECT set_config('default_transaction_read_only', 'off', false)")
                .await;
            let err = store
                .query_readonly("SELECT nextval('sweeps_id_seq')")
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
        }
        assert_eq!(count(&store, "effects").await, 200);
        assert_eq!(count(&store, "effects_v").await, 200);
        assert_eq!(
            scalar(&store, "SELECT name FROM sweeps").await,
            json!("gender")
        );
        assert_eq!(count(&store, "dropped_pairs").await, 0);
        let err = store
            .query_readonly("SELECT * FROM sneaky")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Query { .. }), "{err:?}");
        // The store still writes.
        store.finish_sweep(sweep, "done").await.unwrap();
        store.close().await;
    }

    pub async fn query_values_decode(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let sweep = seed(&store, 1).await;
        let r = store
            .query_readonly("SELECT 1 AS i, 2.5 AS f, 'x' AS t, NULL AS n, 1 = 1 AS b")
            .await
            .unwrap();
        assert_eq!(r.columns, ["i", "f", "t", "n", "b"]);
        let b = match store.backend() {
            Backend::Sqlite => json!(1), // SQLite has no boolean type
            Backend::Postgres => json!(true),
        };
        let f = match store.backend() {
            Backend::Sqlite => json!(2.5),
            Backend::Postgres => json!(2.5), // NUMERIC literal
        };
        assert_eq!(r.rows, vec![vec![json!(1), f, json!("x"), Value::Null, b]]);
        let r = store
            .query_readonly(&format!(
                "SELECT id, created_at, finished_at, status, clean_metric, avg(n_tokens) AS avg_n, \
                 sum(n_tokens) AS sum_n \
                 FROM sweeps JOIN pairs ON pairs.sweep_id = sweeps.id WHERE id = {sweep} \
                 GROUP BY id, created_at, finished_at, status, clean_metric"
            ))
            .await
            .unwrap();
        let row = &r.rows[0];
        assert_eq!(row[0], json!(sweep));
        let created = row[1].as_str().expect("timestamps read as text");
        assert!(
            created.len() >= 19 && created.as_bytes()[4] == b'-',
            "{created}"
        );
        assert_eq!(row[2], Value::Null);
        assert_eq!(row[3], json!("running"));
        assert_eq!(row[4], json!(1.5));
        assert_eq!(row[5].as_f64(), Some(5.0));
        assert_eq!(row[6], json!(5));
        if store.backend() == Backend::Postgres {
            let r = store
                .query_readonly(
                    "SELECT 10::numeric / 4 AS q, ARRAY[1, 2] AS a, '{\"k\": 1}'::jsonb AS j, \
                     DATE '2024-02-29' AS d, 1::float4 AS r, -12345678901.25::numeric AS big",
                )
                .await
                .unwrap();
            assert_eq!(
                r.rows,
                vec![vec![
                    json!(2.5),
                    json!([1, 2]),
                    json!({"k": 1}),
                    json!("2024-02-29"),
                    json!(1.0),
                    json!(-12345678901.25)
                ]]
            );
        }
        let err = store
            .query_readonly("SELECT * FROM no_such_table")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Query { .. }), "{err:?}");
        store.close().await;
    }

    pub async fn dropped_pairs_and_finish(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let sweep = seed(&store, 1).await;
        let counts = vec![
            ("clean and corrupted token counts differ".to_string(), 3),
            ("answer token not single".to_string(), 1),
        ];
        store.set_dropped(sweep, &counts).await.unwrap();
        let r = store
            .query_readonly("SELECT reason, count FROM dropped_pairs ORDER BY reason")
            .await
            .unwrap();
        assert_eq!(
            r.rows,
            vec![
                vec![json!("answer token not single"), json!(1)],
                vec![json!("clean and corrupted token counts differ"), json!(3)],
            ]
        );
        store.set_dropped(sweep, &counts[..1]).await.unwrap();
        assert_eq!(count(&store, "dropped_pairs").await, 1);
        let err = store
            .set_dropped(sweep, &[("x".into(), -1)])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
        assert_eq!(
            scalar(&store, "SELECT status FROM sweeps").await,
            json!("running")
        );
        store.finish_sweep(sweep, "done").await.unwrap();
        assert_eq!(
            scalar(&store, "SELECT status FROM sweeps").await,
            json!("done")
        );
        assert_eq!(
            count(
                &store,
                "sweeps WHERE finished_at IS NOT NULL AND finished_at >= created_at"
            )
            .await,
            1
        );
        store.close().await;
    }

    pub async fn insert_throughput_100k(url: &str) {
        let store = Store::connect(url).await.unwrap();
        let sweep = seed(&store, 100).await;
        let rows = effects(100, 1000);
        let start = Instant::now();
        let n = store.insert_effects(sweep, &rows).await.unwrap();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(n, 100_000);
        println!(
            "store insert throughput ({:?}): {n} effects in {secs:.2} s = {:.0} rows/s",
            store.backend(),
            n as f64 / secs
        );
        let start = Instant::now();
        assert_eq!(store.insert_effects(sweep, &rows).await.unwrap(), 0);
        println!(
            "store re-insert of the same effects ({:?}): {:.2} s",
            store.backend(),
            start.elapsed().as_secs_f64()
        );
        store.close().await;
    }
}
