//! `patchsweep query` (and the other readers) as read-only as they say, on SQLite and
//! PostgreSQL: a missing database is an error and is not created, a read-only file is read
//! and left unchanged, a runaway statement stops at `--timeout-seconds`, `--limit` cuts rows
//! off and says so, and a PostgreSQL superuser login is refused unless `--allow-superuser`.

mod common;
#[path = "../coordinator/tests/common/testdb.rs"]
mod testdb;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::patchsweep;
use patchsweep_coordinator::store::Store;

const RUNAWAY: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

fn series(n: u64) -> String {
    format!("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) SELECT x FROM c")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// A migrated database holding one sweep.
fn migrated(url: &str) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = Store::connect(url).await.unwrap();
            store.create_sweep("s", "spec", "m").await.unwrap();
            store.close().await;
        });
}

fn postgres_url() -> (testdb::TestDb, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(testdb::postgres_db());
    let url = db.url.clone();
    migrated(&url);
    (db, url)
}

#[test]
fn readers_refuse_a_missing_database_and_do_not_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    let url = format!("sqlite://{}", path.display());
    let out_dir = dir.path().join("out");
    let out_file = dir.path().join("out.csv");
    for args in [
        vec!["query", "--db", &url, "SELECT 1"],
        vec!["plot", "--db", &url, "--out", out_dir.to_str().unwrap()],
        vec!["report", "--db", &url, "--out", out_file.to_str().unwrap()],
        vec![
            "export",
            "--db",
            &url,
            "--view",
            "effects_v",
            "--format",
            "csv",
            "--out",
            out_file.to_str().unwrap(),
        ],
    ] {
        let err = stderr(&patchsweep(&args));
        assert!(
            err.contains(&format!("no database at {url}: the file does not exist")),
            "{args:?}: {err}"
        );
        assert!(!path.exists(), "{args:?} created {}", path.display());
    }
}

#[test]
fn query_reads_a_read_only_file_and_leaves_it_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.db");
    migrated(source.to_str().unwrap());
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let copy = ro.join("results.db");
    std::fs::copy(&source, &copy).unwrap();
    set_mode(&copy, 0o444);
    let before = std::fs::read(&copy).unwrap();
    let url = copy.display().to_string();
    let out = patchsweep(&[
        "query",
        "--db",
        &url,
        "--format",
        "csv",
        "SELECT name FROM sweeps",
    ]);
    assert_eq!(stdout(&out), "name\r\ns\r\n");
    let err = stderr(&patchsweep(&["query", "--db", &url, "DELETE FROM sweeps"]));
    assert!(err.contains("queries are read-only"), "{err}");
    // A typo is a syntax error, not a refused write (issue 16).
    let err = stderr(&patchsweep(&[
        "query",
        "--db",
        &url,
        "SELEC name FROM sweeps",
    ]));
    assert!(
        err.contains("syntax error") && err.contains("did you mean SELECT?"),
        "{err}"
    );
    assert!(!err.contains("read-only"), "{err}");
    assert_eq!(std::fs::read(&copy).unwrap(), before, "the file changed");
    // SQLite's read-only open of a WAL database may leave `-shm` and an empty `-wal`.
    let wal = ro.join("results.db-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
}

#[test]
fn query_on_an_unmigrated_file_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").unwrap();
    let err = stderr(&patchsweep(&[
        "query",
        "--db",
        path.to_str().unwrap(),
        "SELECT 1",
    ]));
    assert!(
        err.contains("is not a patchsweep results database"),
        "{err}"
    );
    assert!(err.contains("patchsweep run"), "{err}");
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        0,
        "it was migrated"
    );
}

#[test]
fn sqlite_statement_stops_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    migrated(&url);
    timed_out(&url, &[]);
}

#[test]
fn postgres_statement_stops_at_its_timeout() {
    let (_db, url) = postgres_url();
    timed_out(&url, &["--allow-superuser"]);
    let start = Instant::now();
    let out = patchsweep(&[
        "query",
        "--db",
        &url,
        "--allow-superuser",
        "--timeout-seconds",
        "1",
        "SELECT pg_sleep(30)",
    ]);
    assert!(stderr(&out).contains("statement timed out after 1 s"));
    assert!(start.elapsed() < Duration::from_secs(15));
}

fn timed_out(url: &str, extra: &[&str]) {
    let start = Instant::now();
    let mut args = vec!["query", "--db", url, "--timeout-seconds", "1"];
    args.extend_from_slice(extra);
    args.push(RUNAWAY);
    let err = stderr(&patchsweep(&args));
    assert!(
        err.contains("error: statement timed out after 1 s"),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn limit_cuts_rows_and_says_so_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("r.db").display());
    migrated(&sqlite);
    let (_db, pg) = postgres_url();
    for (url, extra) in [
        (sqlite.as_str(), None),
        (pg.as_str(), Some("--allow-superuser")),
    ] {
        let run = |format: &str, limit: &str, n: u64| {
            let mut args = vec!["query", "--db", url, "--format", format, "--limit", limit];
            args.extend(extra);
            let sql = series(n);
            args.push(&sql);
            patchsweep(&args)
        };
        let out = run("csv", "3", 1000);
        assert_eq!(stdout(&out), "x\r\n1\r\n2\r\n3\r\n");
        let note = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(note.contains("output cut at --limit 3 rows"), "{note}");
        let out = run("json", "2", 1000);
        assert_eq!(stdout(&out), "[{\"x\":1},{\"x\":2}]\n");
        let out = run("table", "2", 2);
        assert_eq!(stdout(&out), " x \n---\n 1 \n 2 \n(2 rows)\n");
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn postgres_superuser_is_refused_unless_allowed() {
    let (_db, url) = postgres_url();
    let sql = "SELECT length(pg_read_file('/etc/hostname')) > 0 AS read";
    let err = stderr(&patchsweep(&["query", "--db", &url, sql]));
    for part in [
        "refusing to run user queries",
        "superuser",
        "pg_read_file",
        "CREATE ROLE",
        "--allow-superuser",
    ] {
        assert!(err.contains(part), "{part} missing: {err}");
    }
    let out = patchsweep(&[
        "query",
        "--db",
        &url,
        "--allow-superuser",
        "--format",
        "csv",
        sql,
    ]);
    assert_eq!(stdout(&out), "read\r\ntrue\r\n");
    // Commands running their own SQL read as the superuser.
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("sweeps.csv");
    let out = patchsweep(&[
        "export",
        "--db",
        &url,
        "--view",
        "sweeps",
        "--format",
        "csv",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    stdout(&out);
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
