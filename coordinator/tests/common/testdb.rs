//! Test databases for both backends: a SQLite file in a temporary folder, and PostgreSQL
//! in a fresh schema per test (dropped afterwards). Shared by the store tests and, through
//! `#[path]`, by the workspace's integration tests.
//!
//! PostgreSQL comes from `PATCHSWEEP_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it cannot be reached the PostgreSQL
//! tests fail: CI starts the server, and a skipped backend would hide a broken one.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, Executor, PgConnection};

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database for one test; dropping it removes it.
pub struct TestDb {
    pub url: String,
    _keep: Keep,
}

#[allow(dead_code)] // held only for their Drop
pub enum Keep {
    Dir(tempfile::TempDir),
    Schema(SchemaGuard),
}

pub async fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("results.db").display());
    TestDb {
        url,
        _keep: Keep::Dir(dir),
    }
}

pub fn pg_base_url() -> String {
    std::env::var("PATCHSWEEP_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_string())
}

pub async fn postgres_db() -> TestDb {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let base = pg_base_url();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let schema = format!(
        "ps_test_{}_{}_{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = PgConnection::connect(&base).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL for the store tests is not reachable at {base}: {e}. Start it (e.g. \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) or \
             set PATCHSWEEP_TEST_POSTGRES_URL"
        )
    });
    conn.execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .expect("create test schema");
    let _ = conn.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    TestDb {
        url,
        _keep: Keep::Schema(SchemaGuard { base, schema }),
    }
}

/// Drops the test schema, also when the test panicked.
pub struct SchemaGuard {
    base: String,
    schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let (base, schema) = (self.base.clone(), self.schema.clone());
        // Drop may run inside the test's runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&base).await.ok()?;
                conn.execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str())
                    .await
                    .ok()?;
                conn.close().await.ok()
            })
        })
        .join();
    }
}

/// One test per suite function, against one backend: `backend_tests!(sqlite, sqlite_db, [f, g])`
/// runs `suite::f(&url)` on a fresh database (the caller has a `suite` module).
#[allow(unused_macros)]
macro_rules! backend_tests {
    ($backend:ident, $make:path, [$($test:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = $make().await;
                    suite::$test(&db.url).await;
                }
            )*
        }
    };
}
