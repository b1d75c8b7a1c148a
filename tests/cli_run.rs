//! `patchsweep run` and `patchsweep query` as a user runs them: a sweep on the real SmolLM2
//! into SQLite, its effects through the views, and bad specs refused before any work.

mod common;

use std::path::{Path, PathBuf};

use common::{patchsweep, root};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("patchsweep-cli-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

const SPEC: &str = r#"
name = "cli-test"
model = "gguf:models/SmolLM2-135M-Instruct.Q4_1.gguf"
[metric]
kind = "logit_diff"
positive = [" he"]
negative = [" she"]
[dataset]
pairs = [
  { clean = "The nurse said that", corrupt = "The man said that", id = "nurse" },
  { clean = "The secretary said that", corrupt = "The man said that", id = "secretary" },
  { clean = "The phlebotomist said that", corrupt = "The man said that", id = "too-long" },
]
[[experiment]]
name = "resid"
method = "activation"
components = ["resid_pre", "mlp_out"]
layers = "0..3"
[[experiment]]
name = "heads"
method = "attribution"
components = ["head_out"]
layers = [29]
positions = "joint"
"#;

fn write_spec(name: &str, text: &str) -> PathBuf {
    let p = temp(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn query(db: &str, sql: &str) -> String {
    let out = patchsweep(&["query", "--db", db, "--format", "csv", sql]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_sweep_runs_into_sqlite_and_is_queryable() {
    assert!(
        root()
            .join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
            .is_file(),
        "run scripts/fetch-demo-model.sh"
    );
    let spec = write_spec("ok.toml", SPEC);
    let db_path = temp("ok.db");
    let _ = std::fs::remove_file(&db_path);
    let db = format!("sqlite://{}", db_path.display());
    let out = patchsweep(&["run", spec.to_str().unwrap(), "--db", &db]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("2 pairs kept") && stderr.contains("1 token_count_mismatch"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("top components of resid"), "{stdout}");
    // 2 pairs × 3 layers × 4 positions × 2 components, and 2 pairs × 9 heads.
    let counts = query(
        &db,
        "SELECT experiment, COUNT(*) AS n FROM effects_v GROUP BY experiment ORDER BY experiment",
    );
    assert!(
        counts.contains("heads,18") && counts.contains("resid,48"),
        "{counts}"
    );
    let labels = query(
        &db,
        "SELECT DISTINCT position_label FROM effects_v WHERE experiment = 'resid' ORDER BY 1",
    );
    assert_eq!(
        labels.lines().skip(1).collect::<Vec<_>>(),
        vec!["diff", "end", "other", "prefix"],
        "{labels}"
    );
    // Inline pairs have no slots: the differing token is labelled `diff`. Denoising the whole
    // residual at layer 0 there restores the clean run.
    let restore = query(&db, "SELECT MIN(normalized), MAX(normalized) FROM effects_v WHERE component = 'resid_pre' AND layer = 0 AND position_label = 'diff'");
    let row: Vec<f64> = restore
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(row.iter().all(|v| (v - 1.0).abs() < 1e-3), "{restore}");
    let pairs = query(
        &db,
        "SELECT pair_id, n_tokens FROM pairs_v ORDER BY pair_id",
    );
    assert!(
        pairs.contains("nurse,4") && pairs.contains("secretary,4"),
        "{pairs}"
    );
    // The embedded worker reports its model and its memory budget (issue 16).
    let worker = query(&db, "SELECT models, memory_bytes FROM workers_v");
    let row = worker.lines().nth(1).unwrap_or_default();
    assert!(row.contains("SmolLM2"), "{worker}");
    let memory: i64 = row.rsplit(',').next().unwrap().trim().parse().unwrap();
    assert!(memory > 0, "{worker}");
    // Writes are refused and change nothing.
    let out = patchsweep(&["query", "--db", &db, "DELETE FROM effects"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("read-only"));
    assert!(query(&db, "SELECT COUNT(*) FROM effects").contains("66"));
}

/// Pairs labelled by stereotype: under `orient = "stereotype"` each pair's metric puts its
/// anti-stereotypical answer first (Vig et al.'s y), so the male-stereotyped pair's metric is
/// " she" - " he" and every labelled pair's metric grows toward the anti-stereotypical answer.
#[test]
fn stereotype_orientation_flips_the_male_stereotyped_pairs() {
    let spec = |orient: &str| {
        format!(
            r#"
name = "orient-{orient}"
model = "gguf:models/SmolLM2-135M-Instruct.Q4_1.gguf"
[metric]
kind = "logit_diff"
positive = [" he"]
negative = [" she"]
orient = "{orient}"
[dataset]
pairs = [
  {{ clean = "The nurse said that", corrupt = "The man said that", id = "nurse", labels = {{ stereotype = "female", counterfactual = "man" }} }},
  {{ clean = "The doctor said that", corrupt = "The woman said that", id = "doctor", labels = {{ stereotype = "male", counterfactual = "woman" }} }},
  {{ clean = "The person said that", corrupt = "The man said that", id = "person", labels = {{ stereotype = "neutral" }} }},
]
[[experiment]]
name = "resid"
method = "activation"
components = ["resid_pre"]
layers = [0]
"#
        )
    };
    let db_path = temp("orient.db");
    let _ = std::fs::remove_file(&db_path);
    let db = format!("sqlite://{}", db_path.display());
    let mut rows = Vec::new();
    for orient in ["answers", "stereotype"] {
        let file = write_spec(&format!("orient-{orient}.toml"), &spec(orient));
        let out = patchsweep(&["run", file.to_str().unwrap(), "--db", &db]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let csv = query(
            &db,
            &format!(
                "SELECT pair_id, clean_metric, corrupt_metric, toward_stereotype FROM pairs_v \
                 WHERE sweep_name = 'orient-{orient}' ORDER BY pair_id"
            ),
        );
        let parsed: Vec<(String, f64, f64, i64)> = csv
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (
                    f[0].to_string(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                )
            })
            .collect();
        assert_eq!(parsed.len(), 3, "{csv}");
        rows.push(parsed);
    }
    let (answers, stereo) = (&rows[0], &rows[1]);
    let ids: Vec<&str> = answers.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(ids, vec!["doctor", "nurse", "person"]);
    // " he" - " she" grows toward the doctor's stereotype and away from the nurse's.
    let toward = |rs: &[(String, f64, f64, i64)]| rs.iter().map(|r| r.3).collect::<Vec<_>>();
    assert_eq!(toward(answers), vec![1, -1, 0]);
    assert_eq!(toward(stereo), vec![-1, -1, 0]);
    let flipped = |a: f64, b: f64| (a + b).abs() < 1e-4 * (1.0 + a.abs());
    let same = |a: f64, b: f64| (a - b).abs() < 1e-4 * (1.0 + a.abs());
    assert!(
        flipped(answers[0].1, stereo[0].1) && flipped(answers[0].2, stereo[0].2),
        "{rows:?}"
    );
    for i in [1, 2] {
        assert!(
            same(answers[i].1, stereo[i].1) && same(answers[i].2, stereo[i].2),
            "{rows:?}"
        );
    }
}

fn run_fails(name: &str, text: &str, db: &str) -> String {
    let spec = write_spec(name, text);
    let out = patchsweep(&["run", spec.to_str().unwrap(), "--db", db]);
    assert!(!out.status.success(), "{name} should fail");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn bad_specs_are_refused_before_any_work_with_the_field_named() {
    let db_path = temp("bad.db");
    let _ = std::fs::remove_file(&db_path);
    let db = format!("sqlite://{}", db_path.display());
    let err = run_fails(
        "unknown-field.toml",
        &SPEC.replace(
            "name = \"cli-test\"",
            "name = \"cli-test\"\ncolour = \"red\"",
        ),
        &db,
    );
    assert!(err.contains("colour"), "{err}");
    let err = run_fails(
        "component.toml",
        &SPEC.replace("\"mlp_out\"]", "\"mlp_outt\"]"),
        &db,
    );
    assert!(
        err.contains("experiment[0].components[1]") && err.contains("mlp_outt"),
        "{err}"
    );
    let err = run_fails(
        "answer.toml",
        &SPEC.replace("[\" she\"]", "[\" shepherdess\"]"),
        &db,
    );
    assert!(
        err.contains("metric") && err.contains("shepherdess") && err.contains("not a single token"),
        "{err}"
    );
    let err = run_fails(
        "layer.toml",
        &SPEC.replace("layers = [29]", "layers = [30]"),
        &db,
    );
    assert!(
        err.contains("experiment[1]") && err.contains("layer 30"),
        "{err}"
    );
    let err = run_fails(
        "label.toml",
        &SPEC.replace(
            "layers = \"0..3\"",
            "layers = \"0..3\"\npositions = [\"verbb\"]",
        ),
        &db,
    );
    assert!(err.contains("verbb"), "{err}");
    let err = run_fails(
        "model.toml",
        &SPEC.replace("models/SmolLM2", "models/NoSuch"),
        &db,
    );
    assert!(
        err.contains("missing file") && err.contains("NoSuch"),
        "{err}"
    );
    // The metric's orientation, effect mode and weak-pair threshold (issue 17).
    for (name, metric, expected) in [
        (
            "orient.toml",
            "orient = \"stereotype\"",
            "`metric.orient`: \"stereotype\" orients pairs by their stereotype, but no pair has one",
        ),
        (
            "relative.toml",
            "effect = \"relative\"",
            "`metric.effect`: \"relative\" (value / base - 1) needs a positive metric",
        ),
        (
            "min-span.toml",
            "min_span = -1.0",
            "`metric.min_span`: -1 is not a finite number >= 0",
        ),
    ] {
        let text = SPEC.replace("negative = [\" she\"]", &format!("negative = [\" she\"]\n{metric}"));
        let err = run_fails(name, &text, &db);
        assert!(err.contains(expected), "{name}: {err}");
    }
    // Debias settings are checked against the model before any compute (issue 15).
    let debias = |select: &str| {
        format!(
            "{SPEC}\n[[debias]]\nname = \"d\"\nexperiment = \"heads\"\n[debias.select]\n{select}\n\
             [debias.split]\nheldout_templates = 0.0\n[[debias.intervention]]\nkind = \"ablation\"\n"
        )
    };
    for (name, select, expected) in [
        (
            "debias-layer.toml",
            "components = [\"head L40H0\"]",
            "`debias[0].select.components[0]`: \"head L40H0\": layer 40 does not exist (layers 0..30)",
        ),
        (
            "debias-head.toml",
            "components = [\"head L3H9\"]",
            "head 9 does not exist (heads 0..9)",
        ),
        (
            "debias-k.toml",
            "component = \"head_out\"\ntop_k = 1000000000",
            "`debias[0].select.top_k`: 1000000000 is more than the",
        ),
        (
            "debias-label.toml",
            "component = \"head_out\"\ntop_k = 4\nposition = \"nowhere\"",
            "`debias[0].select.position`: no pair has a position labelled \"nowhere\"",
        ),
    ] {
        let err = run_fails(name, &debias(select), &db);
        assert!(err.contains(expected), "{name}: {err}");
    }
    // None of these created a sweep.
    assert!(
        !Path::new(&db_path).exists() || query(&db, "SELECT COUNT(*) FROM sweeps").contains("\n0")
    );
    let err = run_fails("db.toml", SPEC, "postgres://postgres@127.0.0.1:1/none");
    assert!(
        err.contains("cannot connect") && err.contains("127.0.0.1:1"),
        "{err}"
    );
}
