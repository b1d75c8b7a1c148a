//! A logit-lens experiment through `patchsweep run` on the real SmolLM2: its values land in
//! `lens_v` (every pair × layer), the last layer's lens is the stored metric of each pair,
//! the curve is in `lens_layers_v`, and `run` prints its lens line.

mod common;

use common::{patchsweep, root};

const SPEC: &str = r#"
name = "cli-lens"
model = "gguf:models/SmolLM2-135M-Instruct.Q4_1.gguf"
[metric]
kind = "logit_diff"
positive = [" he"]
negative = [" she"]
[dataset]
pairs = [
  { clean = "The nurse said that", corrupt = "The man said that", id = "nurse", labels = { stereotype = "female" } },
  { clean = "The engineer said that", corrupt = "The woman said that", id = "engineer", labels = { stereotype = "male" } },
]
[[experiment]]
name = "lens"
method = "logit_lens"
"#;

fn query(db: &str, sql: &str) -> Vec<Vec<String>> {
    let out = patchsweep(&["query", "--db", db, "--format", "csv", sql]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn a_lens_sweep_stores_every_layer_and_ends_at_the_models_metric() {
    assert!(
        root()
            .join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
            .is_file(),
        "run scripts/fetch-demo-model.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("lens.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let db = format!("sqlite://{}", dir.path().join("lens.db").display());
    let out = patchsweep(&["run", spec.to_str().unwrap(), "--db", &db]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("logit lens of lens over 2 pairs with a stereotyped side"),
        "{stdout}"
    );
    let count = query(&db, "SELECT COUNT(*) FROM lens_v");
    assert_eq!(count, [["60"]], "2 pairs × 30 layers");
    let last = query(
        &db,
        "SELECT l.pair_id, l.clean_value - p.clean_metric, l.corrupt_value - p.corrupt_metric \
         FROM lens_v l JOIN pairs_v p USING (sweep_id, pair_id) WHERE l.layer = 29",
    );
    assert_eq!(last.len(), 2);
    for row in &last {
        for d in &row[1..] {
            let d: f64 = d.parse().unwrap();
            assert!(d.abs() < 1e-4, "{row:?}");
        }
    }
    let curve = query(
        &db,
        "SELECT layer, pairs, stereotyped_pairs FROM lens_layers_v ORDER BY layer",
    );
    assert_eq!(curve.len(), 30);
    assert_eq!(curve[0], ["0", "2", "2"]);
}
