//! `patchsweep export` read back by the tools users load results with: the Parquet files by
//! pyarrow (what `pandas.read_parquet` uses), installed from PyPI into a venv under cargo's
//! target tmp dir; CSV and JSON lines by their rules. Column types and row counts are
//! checked against the database.

mod results;

use std::path::{Path, PathBuf};
use std::process::Command;

use results::{database, ok, query_json, scratch};
use serde_json::Value;

/// Python with pyarrow: a venv made once (and kept) under cargo's target tmp dir.
fn python_with_pyarrow() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("venv-pyarrow");
    let python = venv.join("bin/python");
    let has = |py: &Path| {
        Command::new(py)
            .args(["-c", "import pyarrow.parquet"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has(&python) {
        return python;
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .expect("python3 is needed to read the Parquet files back (apt-get install python3 python3-venv)");
    assert!(
        made.status.success(),
        "python3 -m venv failed (apt-get install python3-venv): {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let pip = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "pyarrow"])
        .output()
        .unwrap();
    assert!(
        pip.status.success() && has(&python),
        "pip install pyarrow failed: {}",
        String::from_utf8_lossy(&pip.stderr)
    );
    python
}

/// pyarrow's reading of a Parquet file: row count, column types, nulls per column.
fn read_parquet(python: &Path, file: &Path) -> Value {
    let script = r#"
import json, sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
print(json.dumps({
    "rows": t.num_rows,
    "types": {f.name: str(f.type) for f in t.schema},
    "nulls": {f.name: t.column(f.name).null_count for f in t.schema},
    "first": {f.name: (t.column(f.name)[0].as_py() if t.num_rows else None) for f in t.schema},
}, default=str))
"#;
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyarrow: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn count(db: &str, sql: &str) -> u64 {
    query_json(db, sql)[0]["n"].as_u64().unwrap()
}

fn export(db: &str, view: &str, format: &str, out: &Path, sweep: Option<&str>) {
    let mut args = vec![
        "export", "--db", db, "--view", view, "--format", format, "--out",
    ];
    args.push(out.to_str().unwrap());
    if let Some(s) = sweep {
        args.extend(["--sweep", s]);
    }
    ok(&args);
}

#[test]
fn parquet_exports_read_in_pyarrow_with_types_nulls_and_counts() {
    let db = database();
    let dir = scratch("export");
    let python = python_with_pyarrow();

    let effects = dir.join("effects.parquet");
    export(db, "effects_v", "parquet", &effects, Some("1"));
    let t = read_parquet(&python, &effects);
    assert_eq!(
        t["rows"].as_u64().unwrap(),
        count(db, "SELECT COUNT(*) AS n FROM effects_v WHERE sweep_id = 1")
    );
    for (col, ty) in [
        ("sweep_id", "int64"),
        ("layer", "int64"),
        ("head", "int64"),
        ("position", "int64"),
        ("neuron", "int64"),
        ("value", "double"),
        ("effect", "double"),
        ("normalized", "double"),
        ("experiment", "string"),
        ("position_label", "string"),
    ] {
        assert_eq!(t["types"][col], ty, "effects_v.{col}: {}", t["types"]);
    }
    // NULLs preserved: heads only in one experiment, positions not in the joint one.
    assert_eq!(
        t["nulls"]["head"].as_u64().unwrap(),
        count(db, "SELECT COUNT(*) AS n FROM effects_v WHERE head IS NULL")
    );
    assert_eq!(
        t["nulls"]["position"].as_u64().unwrap(),
        count(
            db,
            "SELECT COUNT(*) AS n FROM effects_v WHERE position IS NULL"
        )
    );
    assert!(
        t["nulls"]["head"].as_u64().unwrap() > 0 && t["nulls"]["position"].as_u64().unwrap() > 0
    );

    for (view, checks) in [
        (
            "pairs_v",
            vec![
                ("clean_metric", "double"),
                ("n_tokens", "int64"),
                ("clean_prompt", "string"),
            ],
        ),
        (
            "tasks_v",
            vec![
                ("task_id", "int64"),
                ("state", "string"),
                ("patches", "int64"),
            ],
        ),
        (
            "workers_v",
            vec![("worker_id", "string"), ("tasks_done", "int64")],
        ),
        (
            "debias_v",
            vec![
                ("before", "double"),
                ("control_after", "double"),
                ("split", "string"),
            ],
        ),
    ] {
        let file = dir.join(format!("{view}.parquet"));
        export(db, view, "parquet", &file, None);
        let t = read_parquet(&python, &file);
        assert_eq!(
            t["rows"].as_u64().unwrap(),
            count(db, &format!("SELECT COUNT(*) AS n FROM {view}")),
            "{view}"
        );
        for (col, ty) in checks {
            assert_eq!(t["types"][col], ty, "{view}.{col}: {}", t["types"]);
        }
    }
    // One debias row has no control: a NULL in a Float64 column.
    let t = read_parquet(&python, &dir.join("debias_v.parquet"));
    assert_eq!(t["nulls"]["control_after"], 1);
}

#[test]
fn csv_and_jsonl_exports_keep_rows_and_nulls() {
    let db = database();
    let dir = scratch("export-text");
    let n = count(db, "SELECT COUNT(*) AS n FROM effects_v");
    let csv = dir.join("effects.csv");
    export(db, "effects_v", "csv", &csv, None);
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len() as u64, n + 1);
    assert!(lines[0].starts_with("sweep_name,sweep_id,experiment,"));

    let jsonl = dir.join("effects.jsonl");
    export(db, "effects_v", "jsonl", &jsonl, Some("1"));
    let rows: Vec<Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len() as u64, n);
    assert!(rows.iter().any(|r| r["head"].is_null()) && rows.iter().any(|r| r["head"].is_i64()));
    assert!(rows.iter().all(|r| r["value"].is_f64()));
}

#[test]
fn export_refuses_a_bad_view_name_and_a_view_without_sweeps() {
    let db = database();
    let out = results::patchsweep(&[
        "export",
        "--db",
        db,
        "--view",
        "effects_v; DROP TABLE x",
        "--out",
        "/tmp/x.parquet",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--view takes the name"));
    let out = results::patchsweep(&[
        "export",
        "--db",
        db,
        "--view",
        "workers_v",
        "--sweep",
        "1",
        "--out",
        "/tmp/x.parquet",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sweep_id"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
