//! Component sets (issue 11): pathway sites given as ranges, sets selected as the top k of
//! another experiment's stored ranking, and reversal rates — end to end on the tiny model,
//! through `patchsweep run` on SQLite and through a coordinator with a worker on
//! PostgreSQL, with identical results. The selection and the reversals are recomputed here
//! independently from the stored effects.

mod cluster;
#[path = "../coordinator/tests/common/testdb.rs"]
mod testdb;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cluster::tiny_spec::{said_pairs, tiny_spec, WORDS};
use cluster::{bin, query, Cluster};
use serde_json::Value;

/// Heads ranked by attribution at the last position; sets patched in the noise direction:
/// early MLPs as a range, every head of layer 1, and the top k of the ranking.
fn write(dir: &Path) -> PathBuf {
    let rest = r#"
[tasks]
pairs_per_task = 3

[[experiment]]
name = "heads-attr"
method = "attribution"
components = ["head_out"]
positions = [-1]

[[experiment]]
name = "sets"
method = "activation"
direction = "noise"
components = ["mlp_out"]
layers = [0]
positions = [-1]

[[experiment.pathway]]
name = "early-mlps"
sites = [{ component = "mlp_out", layers = "0..=1", position = -1 }]

[[experiment.pathway]]
name = "layer1-heads"
sites = [{ component = "head_out", layer = 1, heads = "all", position = -1 }]

[[experiment.pathway]]
name = "copying"
select = { experiment = "heads-attr", component = "head_out", top_k = [1, 3, 100], position = -1 }
"#;
    let text = tiny_spec("sets", &(said_pairs(&WORDS) + rest)).replace(
        "negative = [\" the\"]",
        "negative = [\" the\"]\nmin_span = 0.0",
    );
    let path = dir.join("sets.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn rows(db: &str, sql: &str) -> Vec<serde_json::Map<String, Value>> {
    query(db, sql)
        .into_iter()
        .map(|v| v.as_object().cloned().unwrap())
        .collect()
}

fn int(r: &serde_json::Map<String, Value>, k: &str) -> i64 {
    r[k].as_i64().unwrap_or_else(|| panic!("{k}: {r:?}"))
}

fn float(r: &serde_json::Map<String, Value>, k: &str) -> f64 {
    r[k].as_f64().unwrap_or_else(|| panic!("{k}: {r:?}"))
}

/// The ranking recomputed from `effects_v`: mean |per-pair normalized| of each head at
/// the last position (every pair is strong with `min_span = 0`), best first, ties by
/// (layer, head).
fn ranking(db: &str) -> Vec<(i64, i64)> {
    let mut sums: BTreeMap<(i64, i64), (f64, f64)> = BTreeMap::new();
    for r in rows(
        db,
        "SELECT layer, head, normalized FROM effects_v WHERE experiment = 'heads-attr'",
    ) {
        let e = sums.entry((int(&r, "layer"), int(&r, "head"))).or_default();
        e.0 += float(&r, "normalized").abs();
        e.1 += 1.0;
    }
    let mut v: Vec<((i64, i64), f64)> = sums.into_iter().map(|(k, (s, n))| (k, s / n)).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v.into_iter().map(|(k, _)| k).collect()
}

/// `(cell, k, stereotype) -> (pairs, reversed)` as `reversals_v` has it.
type Reversals = BTreeMap<(String, Option<i64>, String), (i64, i64)>;

fn reversals(db: &str) -> Reversals {
    rows(
        db,
        "SELECT component, k, stereotype, pairs, reversed FROM reversals_v \
         WHERE experiment = 'sets'",
    )
    .into_iter()
    .map(|r| {
        (
            (
                r["component"].as_str().unwrap().to_string(),
                r["k"].as_i64(),
                r["stereotype"].as_str().unwrap().to_string(),
            ),
            (int(&r, "pairs"), int(&r, "reversed")),
        )
    })
    .collect()
}

/// The statements of README's SQL cookbook (its first `sql` block), comments dropped.
fn cookbook() -> Vec<String> {
    let readme = std::fs::read_to_string(cluster::root().join("README.md")).unwrap();
    let section = &readme[readme.find("## SQL cookbook").expect("a cookbook")..];
    let start = section.find("```sql\n").expect("an sql block") + 7;
    let block = &section[start..start + section[start..].find("```").unwrap()];
    let code: String = block
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let statements: Vec<String> = code
        .split(';')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    assert!(statements.len() > 10, "{statements:?}");
    statements
}

/// What must be equal on both backends: the selected sites `(pathway, k, layer, head)`,
/// the reversals, and the effects `(component, pair, value)`.
type Checked = (
    Vec<(String, i64, i64, i64)>,
    Reversals,
    Vec<(String, String, f64)>,
);

/// Checks one finished sweep's sets, selection and reversals, and that every query of the
/// README's cookbook runs on its backend; answers what must be equal on both backends.
fn check(db: &str) -> Checked {
    for statement in cookbook() {
        eprintln!("cookbook: {statement}");
        query(db, &statement);
    }
    let heads = ranking(db);
    assert_eq!(heads.len(), 8, "2 layers × 4 heads ranked: {heads:?}");
    // Each k's set is exactly the first k of the ranking; 100 is clamped to the 8 heads.
    let sites = rows(
        db,
        "SELECT pathway, k, site, layer, head FROM pathway_sites_v WHERE experiment = 'sets' \
         ORDER BY k, site",
    );
    let mut by_k: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    let mut stored = Vec::new();
    for r in &sites {
        let (k, layer, head) = (int(r, "k"), int(r, "layer"), int(r, "head"));
        by_k.entry(k).or_default().push((layer, head));
        stored.push((r["pathway"].as_str().unwrap().to_string(), k, layer, head));
    }
    assert_eq!(by_k.keys().copied().collect::<Vec<_>>(), [1, 3, 8]);
    for (k, set) in &by_k {
        assert_eq!(set[..], heads[..*k as usize], "k = {k}");
    }
    // One effect per pair for each set: the range (early-mlps), the heads of layer 1, k sets.
    let cells = rows(
        db,
        "SELECT component, COUNT(*) AS n FROM effects_v WHERE experiment = 'sets' \
         GROUP BY component ORDER BY component",
    );
    let names: Vec<&str> = cells
        .iter()
        .map(|r| r["component"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "mlp_out",
            "pathway:copying/k=1",
            "pathway:copying/k=3",
            "pathway:copying/k=8",
            "pathway:early-mlps",
            "pathway:layer1-heads",
        ]
    );
    let pairs = int(&rows(db, "SELECT COUNT(*) AS n FROM pairs_v")[0], "n");
    assert!(pairs >= 4, "{pairs} pairs kept");
    assert!(cells.iter().all(|r| int(r, "n") == pairs), "{cells:?}");
    // Reversals recomputed from the effects and the pairs' clean runs (noise direction).
    let mut want: Reversals = BTreeMap::new();
    let base: BTreeMap<String, f64> = rows(db, "SELECT pair_id, clean_metric FROM pairs_v")
        .into_iter()
        .map(|r| {
            (
                r["pair_id"].as_str().unwrap().to_string(),
                float(&r, "clean_metric"),
            )
        })
        .collect();
    for r in rows(
        db,
        "SELECT component, pair_id, value, reversed FROM effects_v WHERE experiment = 'sets'",
    ) {
        let component = r["component"].as_str().unwrap().to_string();
        let flipped = base[r["pair_id"].as_str().unwrap()] * float(&r, "value") < 0.0;
        assert_eq!(int(&r, "reversed"), i64::from(flipped), "{r:?}");
        let k = component
            .split_once("/k=")
            .map(|(_, k)| k.parse::<i64>().unwrap());
        let e = want.entry((component, k, "all".into())).or_default();
        e.0 += 1;
        e.1 += i64::from(flipped);
    }
    let got = reversals(db);
    assert_eq!(got, want);
    let effects: Vec<(String, String, f64)> = rows(
        db,
        "SELECT component, pair_id, value FROM effects_v WHERE experiment = 'sets' \
         ORDER BY component, pair_id",
    )
    .into_iter()
    .map(|r| {
        (
            r["component"].as_str().unwrap().to_string(),
            r["pair_id"].as_str().unwrap().to_string(),
            float(&r, "value"),
        )
    })
    .collect();
    (stored, got, effects)
}

#[test]
fn selected_sets_and_reversals_agree_on_sqlite_run_and_a_postgres_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path());
    let sqlite = format!("sqlite://{}", dir.path().join("run.db").display());
    let out = Command::new(bin())
        .arg("run")
        .arg(&spec)
        .args(["--db", &sqlite])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("reversals of pathway cells"), "{stdout}");
    let tasks = rows(
        &sqlite,
        "SELECT description FROM tasks_v WHERE description LIKE '%selected%'",
    );
    assert!(
        tasks.iter().all(|r| r["description"]
            .as_str()
            .unwrap()
            .contains("100 clamped to the 8 head_out sites heads-attr measures")),
        "{tasks:?}"
    );
    let on_sqlite = check(&sqlite);

    let pg = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(testdb::postgres_db());
    let mut c = Cluster::new(&pg.url);
    c.start_coordinator();
    c.start_worker("w1", None, &[]);
    let sweep = c.submit(&spec);
    let state = c.wait_final(sweep, Duration::from_secs(180));
    assert_eq!(state, "done", "{}", c.logs());
    let on_postgres = check(&pg.url);
    assert_eq!(on_sqlite.0, on_postgres.0, "the selected sites");
    assert_eq!(on_sqlite.1, on_postgres.1, "the reversals");
    assert_eq!(on_sqlite.2.len(), on_postgres.2.len());
    for (a, b) in on_sqlite.2.iter().zip(&on_postgres.2) {
        assert_eq!((&a.0, &a.1), (&b.0, &b.1));
        assert!((a.2 - b.2).abs() < 1e-6, "{a:?} {b:?}");
    }
}

fn run_fails(dir: &Path, name: &str, text: &str) -> String {
    let spec = dir.join(name);
    std::fs::write(&spec, text).unwrap();
    let db = format!("sqlite://{}", dir.join("bad.db").display());
    let out = Command::new(bin())
        .arg("run")
        .arg(&spec)
        .args(["--db", &db])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{name} should fail");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn bad_selections_are_refused_before_any_compute() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(write(dir.path())).unwrap();
    for (name, from, to, expected) in [
        (
            "missing.toml",
            "select = { experiment = \"heads-attr\"",
            "select = { experiment = \"heads-atr\"",
            "`experiment[1].pathway[2].select.experiment`: no experiment is named \"heads-atr\"",
        ),
        (
            "own.toml",
            "select = { experiment = \"heads-attr\"",
            "select = { experiment = \"sets\"",
            "a pathway cannot choose its sites by its own experiment's ranking",
        ),
        (
            "component.toml",
            "component = \"head_out\", top_k",
            "component = \"mlp_out\", top_k",
            "experiment \"heads-attr\" does not measure \"mlp_out\"",
        ),
        (
            "generate.toml",
            "direction = \"noise\"\ncomponents = [\"mlp_out\"]",
            "direction = \"noise\"\ngenerate = { tokens = 4 }\ncomponents = [\"mlp_out\"]",
            "the generation check patches listed pathways only",
        ),
        (
            "zero-k.toml",
            "top_k = [1, 3, 100]",
            "top_k = [0, 3]",
            "each at least 1",
        ),
        (
            "both.toml",
            "layers = \"0..=1\", position = -1 }]",
            "layers = \"0..=1\", position = -1 }]\nselect = { experiment = \"heads-attr\", component = \"head_out\", top_k = [1] }",
            "give either `sites` or `select`, not both",
        ),
        (
            "layer-and-layers.toml",
            "layers = \"0..=1\", position = -1",
            "layer = 0, layers = \"0..=1\", position = -1",
            "give exactly one of `layer` and `layers`",
        ),
        (
            "heads.toml",
            "heads = \"all\"",
            "heads = \"every\"",
            "\"every\" is not \"all\" or a list of heads",
        ),
        (
            "range.toml",
            "layers = \"0..=1\"",
            "layers = \"0..=5\"",
            "layer 2 does not exist",
        ),
    ] {
        assert!(good.contains(from), "{name}: {from}");
        let err = run_fails(dir.path(), name, &good.replace(from, to));
        assert!(err.contains(expected), "{name}: {err}");
    }
    // A cycle of selections: heads-attr selects from sets, which selects from heads-attr.
    let cycle = good.replace(
        "positions = [-1]\n\n[[experiment]]\nname = \"sets\"",
        "positions = [-1]\n\n[[experiment.pathway]]\nname = \"back\"\n\
         select = { experiment = \"sets\", component = \"mlp_out\", top_k = [1] }\n\n\
         [[experiment]]\nname = \"sets\"",
    );
    assert_ne!(cycle, good);
    let err = run_fails(dir.path(), "cycle.toml", &cycle);
    assert!(
        err.contains("selections form a cycle: heads-attr → sets → heads-attr"),
        "{err}"
    );
}
