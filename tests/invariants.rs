//! ARCHITECTURE.md's structural invariants, checked on the source tree and on cargo's
//! resolved dependency graph:
//! - the crate layers: no workspace crate depends on one of its own layer or above, the
//!   model runtime depends on numeric/tokenizer crates only, and the engine and the worker
//!   link neither SQL nor the coordinator;
//! - SQL text is written only in the store;
//! - protobuf (`pb::`) types appear only at the wire edge.
//!
//! Each checker is a plain function over text, so the tests below also show it reporting a
//! deliberate violation (a checker that cannot fail guards nothing).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Crate layers

/// Each workspace crate's layer: a crate may depend only on workspace crates of a lower
/// layer.
const LAYERS: &[(&str, u32)] = &[
    ("patchsweep-model", 0),
    ("patchsweep-proto", 0),
    ("patchsweep-engine", 1),
    ("patchsweep-api", 2),
    ("patchsweep-coordinator", 3),
    ("patchsweep-worker", 3),
    ("patchsweep", 4),
];

/// What the model runtime may depend on directly: numerics (candle, rayon, and gemm, the product
/// candle's CPU backend calls), tokenizers, the Hub, serde for
/// configs, errors and logging.
const MODEL_DEPENDENCIES: &[&str] = &[
    "candle-core",
    "candle-nn",
    "tokenizers",
    "hf-hub",
    "serde",
    "serde_json",
    "thiserror",
    "tracing",
    "rayon",
    "gemm",
];

/// Packages a crate must not reach, even transitively (normal dependencies only).
const FORBIDDEN_REACH: &[(&str, &[&str])] = &[
    (
        "patchsweep-model",
        &["sqlx", "tonic", "prost", "clap", "patchsweep-proto"],
    ),
    (
        "patchsweep-engine",
        &["sqlx", "tonic", "prost", "clap", "patchsweep-proto"],
    ),
    ("patchsweep-api", &["sqlx", "clap"]),
    (
        "patchsweep-worker",
        &["sqlx", "patchsweep-coordinator", "clap"],
    ),
    ("patchsweep-coordinator", &["patchsweep-worker", "clap"]),
];

/// The normal (non-dev, non-build) dependency graph of `cargo metadata`'s JSON: package
/// name → names of its direct dependencies.
fn normal_graph(metadata: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let names: BTreeMap<&str, &str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let mut graph = BTreeMap::new();
    for node in metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve.nodes")
    {
        let from = names[node["id"].as_str().unwrap()].to_string();
        let mut deps = BTreeSet::new();
        for dep in node["deps"].as_array().into_iter().flatten() {
            let normal = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null());
            if normal {
                deps.insert(names[dep["pkg"].as_str().unwrap()].to_string());
            }
        }
        graph.insert(from, deps);
    }
    graph
}

fn reach(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(p) = todo.pop() {
        for d in graph.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

/// Every broken layering rule in a `cargo metadata` document, as sentences.
fn layering_violations(metadata: &Value) -> Vec<String> {
    let graph = normal_graph(metadata);
    let layer: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let mut out = Vec::new();
    for (name, deps) in &graph {
        let Some(&own) = layer.get(name.as_str()) else {
            continue;
        };
        for d in deps {
            if let Some(&theirs) = layer.get(d.as_str()) {
                if theirs >= own {
                    out.push(format!(
                        "{name} (layer {own}) depends on {d} (layer {theirs}): only lower layers allowed"
                    ));
                }
            }
        }
    }
    if let Some(deps) = graph.get("patchsweep-model") {
        for d in deps {
            if !MODEL_DEPENDENCIES.contains(&d.as_str()) {
                out.push(format!(
                    "patchsweep-model depends on {d}: the runtime may use only {MODEL_DEPENDENCIES:?}"
                ));
            }
        }
    }
    for (name, forbidden) in FORBIDDEN_REACH {
        if !graph.contains_key(*name) {
            continue;
        }
        let reached = reach(&graph, name);
        for f in *forbidden {
            if reached.contains(*f) {
                out.push(format!("{name} reaches {f}"));
            }
        }
    }
    out
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn crates_depend_only_downward() {
    let version = std::process::Command::new(env!("CARGO"))
        .arg("-vV")
        .output()
        .expect("cargo -vV runs");
    let version = String::from_utf8_lossy(&version.stdout).to_string();
    let host = version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("cargo -vV names the host");
    // Only this platform's packages: they are the ones the build has fetched (offline).
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .args(["--filter-platform", host])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let graph = normal_graph(&metadata);
    for (name, _) in LAYERS {
        assert!(
            graph.contains_key(*name),
            "workspace crate {name} is missing from the graph"
        );
    }
    let violations = layering_violations(&metadata);
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// A minimal `cargo metadata` document with the given normal edges.
fn fake_metadata(edges: &[(&str, &str)]) -> Value {
    let mut names: BTreeSet<&str> = LAYERS.iter().map(|(n, _)| *n).collect();
    for (a, b) in edges {
        names.insert(a);
        names.insert(b);
    }
    let packages: Vec<Value> = names
        .iter()
        .map(|n| serde_json::json!({ "id": format!("{n}-id"), "name": n }))
        .collect();
    let nodes: Vec<Value> = names
        .iter()
        .map(|n| {
            let deps: Vec<Value> = edges
                .iter()
                .filter(|(a, _)| a == n)
                .map(|(_, b)| {
                    serde_json::json!({ "pkg": format!("{b}-id"), "dep_kinds": [{ "kind": null }] })
                })
                .collect();
            serde_json::json!({ "id": format!("{n}-id"), "deps": deps })
        })
        .collect();
    serde_json::json!({ "packages": packages, "resolve": { "nodes": nodes } })
}

#[test]
fn layering_checker_reports_deliberate_violations() {
    let clean = fake_metadata(&[
        ("patchsweep-engine", "patchsweep-model"),
        ("patchsweep-worker", "patchsweep-api"),
        ("patchsweep-model", "candle-core"),
    ]);
    assert_eq!(layering_violations(&clean), Vec::<String>::new());

    let worker_on_coordinator = fake_metadata(&[("patchsweep-worker", "patchsweep-coordinator")]);
    let v = layering_violations(&worker_on_coordinator);
    assert!(
        v.iter()
            .any(|s| s.contains("depends on patchsweep-coordinator")),
        "{v:?}"
    );
    assert!(
        v.iter()
            .any(|s| s == "patchsweep-worker reaches patchsweep-coordinator"),
        "{v:?}"
    );

    let model_gains_sql = fake_metadata(&[("patchsweep-model", "sqlx")]);
    let v = layering_violations(&model_gains_sql);
    assert!(
        v.iter()
            .any(|s| s.contains("patchsweep-model depends on sqlx")),
        "{v:?}"
    );
    assert!(
        v.iter().any(|s| s == "patchsweep-model reaches sqlx"),
        "{v:?}"
    );

    let engine_reaches_tonic =
        fake_metadata(&[("patchsweep-engine", "something"), ("something", "tonic")]);
    let v = layering_violations(&engine_reaches_tonic);
    assert_eq!(v, vec!["patchsweep-engine reaches tonic".to_string()]);
}

// ---------------------------------------------------------------------------------------
// Source scans

/// The workspace's Rust sources, as paths relative to the root (`/`-separated).
fn rust_sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if path.is_dir() {
                if name == "target" || name.starts_with('.') || name == "node_modules" {
                    continue;
                }
                walk(&path, root, out);
            } else if name.ends_with(".rs") {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let root = workspace_root();
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    assert!(
        out.len() > 50,
        "found only {} Rust files under {root:?}",
        out.len()
    );
    out
}

/// Lines of code (comments skipped) that hold SQL statement text, as `path:line`.
fn sql_lines(path: &str, text: &str) -> Vec<String> {
    const STATEMENTS: &[&str] = &[
        "SELECT ",
        "INSERT INTO",
        "DELETE FROM",
        "CREATE TABLE",
        "CREATE VIEW",
        "CREATE INDEX",
        "ALTER TABLE",
        "DROP TABLE",
        "PRAGMA ",
    ];
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.trim_start();
            if code.starts_with("//") {
                return false;
            }
            let upper = STATEMENTS.iter().any(|s| code.contains(s))
                || (code.contains("UPDATE ") && code.contains(" SET "));
            let lower = code.contains('"') && {
                let l = code.to_ascii_lowercase();
                l.contains("select ") && l.contains(" from ")
            };
            upper || lower
        })
        .map(|(i, _)| format!("{path}:{}", i + 1))
        .collect()
}

/// Where SQL text may be written: the store, and the tests that check what a user types
/// into `patchsweep query` (the user-facing views are the product there).
fn sql_allowed(path: &str) -> bool {
    const ALLOWED: &[&str] = &[
        "coordinator/src/store/",
        "coordinator/tests/",
        "coordinator/examples/",
        "tests/invariants.rs",
    ];
    ALLOWED.iter().any(|p| path.starts_with(p)) || SQL_IN_USER_QUERY_TESTS.contains(&path)
}

/// Tests that write SQL on purpose: `cli_run.rs` checks the query command itself,
/// `cli_lens.rs` reads `lens_v` and `lens_layers_v` through `patchsweep query`,
/// `component_sets.rs` recomputes `reversals_v` and the selected sets from `effects_v`,
/// `run_resume.rs` reads the tasks' states through `patchsweep query` as a user would,
/// `cli_readonly.rs` its read-only guarantees (timeouts, limits, refusals) with runaway
/// statements, `export.rs` checks exports against the user-facing views,
/// `benchmark_sweep.rs` reads `benchmark_v` and the stored pair scores as a user would, and
/// `results/mod.rs` inserts two fixture rows into `debias_results` (the store writes debias
/// rows only as a debias task's completion, which that picture fixture does not run).
const SQL_IN_USER_QUERY_TESTS: &[&str] = &[
    "tests/benchmark_sweep.rs",
    "tests/cli_lens.rs",
    "tests/cli_readonly.rs",
    "tests/component_sets.rs",
    "tests/cli_run.rs",
    "tests/export.rs",
    "tests/results/mod.rs",
    "tests/run_resume.rs",
];

#[test]
fn sql_is_written_only_in_the_store() {
    let mut found = Vec::new();
    for (path, text) in rust_sources() {
        if !sql_allowed(&path) {
            found.extend(sql_lines(&path, &text));
        }
    }
    assert!(
        found.is_empty(),
        "SQL outside the store:\n{}",
        found.join("\n")
    );
}

#[test]
fn sql_checker_reports_deliberate_violations() {
    let src = "// SELECT * FROM x is a comment\nlet q = \"SELECT name FROM sweeps\";\nlet r = \"select a from b\";\nlet u = \"UPDATE tasks SET state = 1\";\nlet ok = \"no sql here\";\n";
    assert_eq!(
        sql_lines("src/run.rs", src),
        vec!["src/run.rs:2", "src/run.rs:3", "src/run.rs:4"]
    );
    assert!(!sql_allowed("src/run.rs"));
    assert!(sql_allowed("coordinator/src/store/read_model.rs"));
}

/// Lines that name protobuf types, as `path:line`.
fn protobuf_lines(path: &str, text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.trim_start();
            !code.starts_with("//") && (code.contains("pb::") || code.contains("patchsweep_proto"))
        })
        .map(|(i, _)| format!("{path}:{}", i + 1))
        .collect()
}

/// Where protobuf types may appear: the proto crate, the conversions and the typed client
/// of the api crate, and the gRPC server.
fn protobuf_allowed(path: &str) -> bool {
    const ALLOWED: &[&str] = &[
        "proto/",
        "api/src/wire",
        "api/src/client",
        "coordinator/src/server/",
        "tests/invariants.rs",
    ];
    ALLOWED.iter().any(|p| path.starts_with(p))
}

#[test]
fn protobuf_types_stay_at_the_wire_edge() {
    let mut found = Vec::new();
    for (path, text) in rust_sources() {
        if !protobuf_allowed(&path) {
            found.extend(protobuf_lines(&path, &text));
        }
    }
    assert!(
        found.is_empty(),
        "protobuf types outside wire/client/server:\n{}",
        found.join("\n")
    );
}

#[test]
fn protobuf_checker_reports_deliberate_violations() {
    let src = "use patchsweep_proto::v1 as pb;\n// pb::X in a comment\nlet r = pb::LeaseRequest::default();\n";
    assert_eq!(
        protobuf_lines("src/remote.rs", src),
        vec!["src/remote.rs:1", "src/remote.rs:3"]
    );
    assert!(!protobuf_allowed("src/remote.rs"));
    assert!(protobuf_allowed("coordinator/src/server/workers.rs"));
}
