//! Read-only opens and user queries on both backends: nothing is created, migrated or
//! written; statements stop at their timeout; a limit cuts rows off and says so; PostgreSQL
//! superusers are refused unless allowed. And concurrent first migrations of one SQLite
//! file, which must all succeed.
//!
//! PostgreSQL comes from `PATCHSWEEP_TEST_POSTGRES_URL` (see `common/testdb.rs`).

use std::time::{Duration, Instant};

use patchsweep_coordinator::store::{
    Collect, QueryOptions, QuerySummary, ReadOnlyOptions, Store, StoreError,
};
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

#[macro_use]
#[path = "common/testdb.rs"]
mod testdb;
use testdb::*;

backend_tests!(
    sqlite,
    sqlite_db,
    [
        unmigrated_database_is_refused,
        readonly_store_reads_and_cannot_write,
        runaway_statement_stops_at_its_timeout,
        limit_cuts_rows_and_says_so,
    ]
);

backend_tests!(
    postgres,
    postgres_db,
    [
        unmigrated_database_is_refused,
        readonly_store_reads_and_cannot_write,
        runaway_statement_stops_at_its_timeout,
        limit_cuts_rows_and_says_so,
    ]
);

/// The test databases connect as `postgres`, a superuser: reading as the tests do needs
/// the flag; the refusal itself is tested below.
const TRUSTED: ReadOnlyOptions = ReadOnlyOptions {
    allow_superuser: true,
};

async fn run(
    store: &Store,
    sql: &str,
    options: QueryOptions,
) -> Result<(Collect, QuerySummary), StoreError> {
    let mut rows = Collect::default();
    let summary = store.query_streaming(sql, &options, &mut rows).await?;
    Ok((rows, summary))
}

/// Rows 1..=n, without touching any table.
fn series(n: u64) -> String {
    format!("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) SELECT x FROM c")
}

mod suite {
    use super::*;

    pub async fn unmigrated_database_is_refused(url: &str) {
        if url.starts_with("sqlite://") {
            // An empty file: no schema.
            std::fs::write(url.trim_start_matches("sqlite://"), b"").unwrap();
        }
        let err = Store::open_readonly(url, &TRUSTED)
            .await
            .expect_err("no schema");
        let msg = err.to_string();
        assert!(matches!(err, StoreError::NotMigrated { .. }), "{err:?}");
        assert!(msg.contains("no migration applied"), "{msg}");
        assert!(msg.contains("patchsweep run"), "{msg}");
        // Nothing was migrated behind our back.
        let again = Store::open_readonly(url, &TRUSTED)
            .await
            .expect_err("still none");
        assert!(matches!(again, StoreError::NotMigrated { .. }), "{again:?}");
        // Once migrated, it opens.
        Store::connect(url).await.unwrap().close().await;
        Store::open_readonly(url, &TRUSTED)
            .await
            .unwrap()
            .close()
            .await;
    }

    pub async fn readonly_store_reads_and_cannot_write(url: &str) {
        let writer = Store::connect(url).await.unwrap();
        let sweep = writer.create_sweep("s", "spec", "m").await.unwrap();
        writer.close().await;
        let store = Store::open_readonly(url, &TRUSTED).await.unwrap();
        let r = store
            .query_readonly("SELECT name FROM sweeps")
            .await
            .unwrap();
        assert_eq!(r.rows, vec![vec![json!("s")]]);
        let err = store
            .create_sweep("t", "spec", "m")
            .await
            .expect_err("read-only");
        assert!(err.to_string().contains("read"), "{err}");
        let err = store
            .finish_sweep(sweep, "done")
            .await
            .expect_err("read-only");
        assert!(err.to_string().contains("read"), "{err}");
        let r = store
            .query_readonly("SELECT count(*) AS n FROM sweeps")
            .await
            .unwrap();
        assert_eq!(r.rows, vec![vec![json!(1)]]);
        store.close().await;
    }

    pub async fn runaway_statement_stops_at_its_timeout(url: &str) {
        Store::connect(url).await.unwrap().close().await;
        let store = Store::open_readonly(url, &TRUSTED).await.unwrap();
        let options = QueryOptions {
            limit: None,
            timeout: Some(Duration::from_secs(1)),
        };
        let mut runaway = vec![
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        ];
        if url.starts_with("postgres") {
            runaway.push("SELECT pg_sleep(30)");
        }
        for sql in runaway {
            let start = Instant::now();
            let err = run(&store, sql, options).await.expect_err(sql);
            let took = start.elapsed();
            assert!(matches!(err, StoreError::Timeout { .. }), "{sql}: {err:?}");
            assert!(
                err.to_string().starts_with("statement timed out after 1 s"),
                "{err}"
            );
            assert!(took < Duration::from_secs(10), "{sql} took {took:?}");
        }
        // The connection is fine afterwards, and a quick query is not stopped.
        let (rows, _) = run(&store, "SELECT 1 AS one", options).await.unwrap();
        assert_eq!(rows.0.rows, vec![vec![json!(1)]]);
        store.close().await;
    }

    pub async fn limit_cuts_rows_and_says_so(url: &str) {
        Store::connect(url).await.unwrap().close().await;
        let store = Store::open_readonly(url, &TRUSTED).await.unwrap();
        let limit = |n| QueryOptions {
            limit: Some(n),
            timeout: Some(Duration::from_secs(60)),
        };
        let (rows, summary) = run(&store, &series(1000), limit(10)).await.unwrap();
        assert_eq!(
            summary,
            QuerySummary {
                rows: 10,
                truncated: true
            }
        );
        assert_eq!(rows.0.columns, vec!["x"]);
        assert_eq!(rows.0.rows.len(), 10);
        assert_eq!(rows.0.rows[9], vec![json!(10)]);
        // Exactly the limit: nothing was cut.
        let (_, summary) = run(&store, &series(10), limit(10)).await.unwrap();
        assert_eq!(
            summary,
            QuerySummary {
                rows: 10,
                truncated: false
            }
        );
        // No row: the columns still come.
        let (rows, summary) = run(&store, "SELECT 1 AS a, 2 AS b WHERE 1 = 0", limit(5))
            .await
            .unwrap();
        assert_eq!(
            summary,
            QuerySummary {
                rows: 0,
                truncated: false
            }
        );
        assert_eq!(rows.0.columns, vec!["a", "b"]);
        // A huge result cut early returns at once, and the store goes on working.
        let start = Instant::now();
        let (_, summary) = run(&store, &series(50_000_000), limit(5)).await.unwrap();
        assert!(summary.truncated);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        let (rows, _) = run(&store, "SELECT 2 AS two", limit(5)).await.unwrap();
        assert_eq!(rows.0.rows, vec![vec![json!(2)]]);
        store.close().await;
    }
}

#[tokio::test]
async fn missing_sqlite_file_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nowhere.db");
    for url in [
        path.display().to_string(),
        format!("sqlite://{}", path.display()),
    ] {
        let err = Store::open_readonly(&url, &ReadOnlyOptions::default())
            .await
            .expect_err("no file");
        let msg = err.to_string();
        assert!(matches!(err, StoreError::NoDatabase { .. }), "{err:?}");
        assert!(msg.starts_with(&format!("no database at {url}:")), "{msg}");
        assert!(msg.contains("does not exist"), "{msg}");
        assert!(!path.exists(), "{} was created", path.display());
    }
}

/// Tests run as root, whom a 0444 mode does not stop: the proof is that the file is
/// byte-identical afterwards and no page went to a `-wal`.
#[tokio::test]
async fn read_only_sqlite_file_is_read_and_left_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.db");
    let writer = Store::connect(source.to_str().unwrap()).await.unwrap();
    writer.create_sweep("s", "spec", "m").await.unwrap();
    writer.close().await;
    let ro_dir = dir.path().join("ro");
    std::fs::create_dir(&ro_dir).unwrap();
    let copy = ro_dir.join("results.db");
    std::fs::copy(&source, &copy).unwrap();
    set_mode(&copy, 0o444);
    let before = std::fs::read(&copy).unwrap();
    let url = format!("sqlite://{}", copy.display());
    let store = Store::open_readonly(&url, &ReadOnlyOptions::default())
        .await
        .unwrap();
    let r = store
        .query_readonly("SELECT name FROM sweeps")
        .await
        .unwrap();
    assert_eq!(r.rows, vec![vec![json!("s")]]);
    assert!(store.create_sweep("t", "spec", "m").await.is_err());
    store.close().await;
    assert_eq!(std::fs::read(&copy).unwrap(), before, "the file changed");
    // A WAL-mode database read through SQLite's read-only open may leave its shared-memory
    // index (`-shm`) and an empty `-wal` beside it: no page of the database is written.
    let wal = ro_dir.join("results.db-wal");
    if wal.exists() {
        assert_eq!(
            std::fs::metadata(&wal).unwrap().len(),
            0,
            "pages were written"
        );
    }
}

#[cfg(unix)]
fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn database_of_a_newer_binary_is_refused() {
    let db = sqlite_db().await;
    Store::connect(&db.url).await.unwrap().close().await;
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    conn.execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990001, 'from the future', TRUE, x'00', 0)",
    )
    .await
    .unwrap();
    conn.close().await.unwrap();
    let err = Store::open_readonly(&db.url, &ReadOnlyOptions::default())
        .await
        .expect_err("too new");
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                version: 99990001,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer patchsweep"), "{err}");
}

#[tokio::test]
async fn postgres_superuser_is_refused_unless_allowed() {
    let db = postgres_db().await;
    Store::connect(&db.url).await.unwrap().close().await;
    let err = Store::open_readonly(&db.url, &ReadOnlyOptions::default())
        .await
        .expect_err("the test login is the superuser postgres");
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Superuser { .. }), "{err:?}");
    for part in [
        "as `postgres` (superuser)",
        "pg_read_file",
        "CREATE ROLE",
        "GRANT SELECT",
        "--allow-superuser",
    ] {
        assert!(msg.contains(part), "{part} missing: {msg}");
    }
    // Allowed: the superuser's powers are there, as the flag's help says.
    let store = Store::open_readonly(&db.url, &TRUSTED).await.unwrap();
    let r = store
        .query_readonly("SELECT length(pg_read_file('/etc/hostname')) > 0 AS read")
        .await
        .unwrap();
    assert_eq!(r.rows, vec![vec![json!(true)]]);
    store.close().await;
}

/// A role made as the refusal's message says may read the results and not the server's
/// files.
#[tokio::test]
async fn postgres_reader_role_reads_results_and_not_files() {
    let db = postgres_db().await;
    Store::connect(&db.url).await.unwrap().close().await;
    let schema = db.url.rsplit("search_path%3D").next().unwrap().to_string();
    let role = format!("ps_reader_{schema}");
    let mut admin = PgConnection::connect(&pg_base_url()).await.unwrap();
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT USAGE ON SCHEMA {schema} TO {role}"),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}"),
    ] {
        admin.execute(sql.as_str()).await.unwrap();
    }
    let reader_url = db
        .url
        .replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    let outcome = async {
        let store = Store::open_readonly(&reader_url, &ReadOnlyOptions::default()).await?;
        let sweeps = store
            .query_readonly("SELECT count(*) AS n FROM sweeps")
            .await?;
        let file = store
            .query_readonly("SELECT pg_read_file('/etc/hostname')")
            .await;
        store.close().await;
        Ok::<_, StoreError>((sweeps, file))
    }
    .await;
    for sql in [
        format!("REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}"),
        format!("REVOKE ALL ON SCHEMA {schema} FROM {role}"),
        format!("DROP ROLE {role}"),
    ] {
        admin.execute(sql.as_str()).await.unwrap();
    }
    let (sweeps, file) = outcome.expect("the reader opens the results");
    assert_eq!(sweeps.rows, vec![vec![json!(0)]]);
    let err = file.expect_err("no file access");
    assert!(err.to_string().contains("permission denied"), "{err}");
}

/// Item of issue 15: two processes creating one new SQLite file raced in the migrations
/// (`table sweeps already exists`). 8 concurrent first connects, 20 times over.
#[test]
fn concurrent_first_connects_of_one_sqlite_file_all_succeed() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("new.db").display());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let url = url.clone();
                // A runtime per thread, like separate processes: separate pools and files.
                std::thread::spawn(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap()
                        .block_on(async {
                            let store = Store::connect(&url).await?;
                            store.close().await;
                            Ok::<_, StoreError>(())
                        })
                })
            })
            .collect();
        for t in threads {
            t.join()
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
}
