//! A small results database for the picture, report and export tests: a real sweep of the
//! tiny LLaMA-2-style checkpoint (`model/tests/data/tiny-llama2`) run with `patchsweep run`
//! into a temporary SQLite file: two templates of different lengths (so positions are
//! grouped by label), activation and attribution over the same components (so there is a
//! scatter), whole heads, and two debias rows written straight into `debias_results` (with
//! every pair in the held-out split, `debias_splits`).
#![allow(dead_code)]

#[path = "../common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use common::{patchsweep, root};

/// Runs `patchsweep` and returns its stdout, failing the test with its stderr.
pub fn ok(args: &[&str]) -> String {
    let out = patchsweep(args);
    assert!(
        out.status.success(),
        "patchsweep {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A scratch folder for this test binary, under cargo's target tmp dir.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn spec(model: &Path) -> String {
    let fillers: Vec<String> = [("cat", "bat"), ("dog", "log"), ("hat", "mat"), ("pen", "ten")]
        .iter()
        .map(|(a, b)| {
            format!(
                "  {{ clean = {{ subject = \"{a}\" }}, corrupt = {{ subject = \"{b}\" }}, id = \"{a}\" }},"
            )
        })
        .collect();
    format!(
        r#"name = "pictures-test"
model = "{}"

[metric]
kind = "logit_diff"
positive = [" to"]
negative = [" the"]

[dataset.templates]
templates = [
  {{ name = "short", text = "The {{subject}} {{verb}} that", fixed = {{ verb = "said" }} }},
  {{ name = "long", text = "The {{subject}} {{verb}} that the", fixed = {{ verb = "said" }} }},
]
fillers = [
{}
]

[[experiment]]
name = "resid"
method = "activation"
components = ["resid_pre", "attn_out", "mlp_out"]

[[experiment]]
name = "resid-attribution"
method = "attribution"
components = ["resid_pre", "attn_out", "mlp_out"]

[[experiment]]
name = "heads"
method = "activation"
components = ["head_out"]
positions = "joint"
"#,
        model.display(),
        fillers.join("\n")
    )
}

/// The database URL of the sweep, made once per test binary.
pub fn database() -> &'static str {
    static DB: OnceLock<String> = OnceLock::new();
    DB.get_or_init(|| {
        let dir = scratch("results-db");
        let spec_path = dir.join("pictures-test.toml");
        std::fs::write(
            &spec_path,
            spec(&root().join("model/tests/data/tiny-llama2")),
        )
        .unwrap();
        let db = dir.join("results.db");
        let _ = std::fs::remove_file(&db);
        let url = format!("sqlite://{}", db.display());
        ok(&["run", spec_path.to_str().unwrap(), "--db", &url]);
        add_debias_rows(&url);
        url
    })
}

/// Two debias results for sweep 1 and its held-out split (every pair), as the debias
/// engine would store them.
fn add_debias_rows(url: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        // The mean with its n (the held-out split's distinct clean prompts) and intervals;
        // the neutral text's perplexity with neither.
        let mean_ci = Some(((1.1, 1.9), (0.1, 0.7)));
        for (split, metric, before, after, control, ci) in [
            ("heldout", "mean_logit_diff", 1.5, 0.4, Some(1.3), mean_ci),
            ("neutral", "perplexity", 20.0, 21.5, None, None),
        ] {
            sqlx::query(
                "INSERT INTO debias_results (sweep_id, debias, intervention, components, split, \
                 metric, before, after, control_after, control_components, task_id, n, \
                 before_ci_low, before_ci_high, after_ci_low, after_ci_high) \
                 VALUES (1, 'top-heads', 'ablation-zero', 'head_out L1H0', ?, ?, ?, ?, ?, ?, 0, \
                 CASE WHEN ? THEN (SELECT COUNT(DISTINCT clean_prompt) FROM pairs \
                 WHERE sweep_id = 1) END, ?, ?, ?, ?)",
            )
            .bind(split)
            .bind(metric)
            .bind(before)
            .bind(after)
            .bind(control)
            .bind(control.map(|_| "head_out L0H1"))
            .bind(ci.is_some())
            .bind(ci.map(|c: ((f64, f64), (f64, f64))| c.0 .0))
            .bind(ci.map(|c| c.0 .1))
            .bind(ci.map(|c| c.1 .0))
            .bind(ci.map(|c| c.1 .1))
            .execute(&mut conn)
            .await
            .unwrap();
        }
        // Every pair held out, as a split would store it: the bars' n.
        sqlx::query(
            "INSERT INTO debias_splits (sweep_id, debias, pair_id, part) \
             SELECT 1, 'top-heads', pair_id, 'heldout' FROM pairs WHERE sweep_id = 1",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    });
}

/// One read-only query's JSON rows through `patchsweep query`.
pub fn query_json(db: &str, sql: &str) -> Vec<serde_json::Value> {
    let text = ok(&["query", "--db", db, "--format", "json", sql]);
    serde_json::from_str(text.trim()).unwrap()
}
