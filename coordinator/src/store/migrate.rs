//! The schema migrations: applying them (serialized between processes on SQLite too) and
//! checking, without writing, that a database is at this binary's schema.
//!
//! On PostgreSQL sqlx serializes concurrent migrations with an advisory lock. On SQLite it
//! does not, and two processes creating the same new file both ran the first migration
//! (`table sweeps already exists`). Here a process that finds migrations pending takes an
//! exclusive `flock` on `FILE.migrate.lock` beside the database, and sqlx re-checks what is
//! applied under it; a database that is up to date takes no lock and gets no lock file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sqlx::migrate::Migrator;
use sqlx::Pool;

use super::error::reason;
use super::StoreError;

pub(crate) static SQLITE: Migrator = sqlx::migrate!("../migrations/sqlite");
pub(crate) static POSTGRES: Migrator = sqlx::migrate!("../migrations/postgres");

/// What this binary can do with this database, from `_sqlx_migrations`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SchemaState {
    /// Every migration of this binary is applied, and no other.
    Current,
    /// Some migrations of this binary are not applied (none at all: a new database).
    Behind { applied: usize, known: usize },
    /// Applied migrations this binary does not know: written by a newer patchsweep.
    Ahead { version: i64 },
    /// A migration failed half-way, or was changed after it was applied.
    Broken { version: i64, why: &'static str },
}

/// The rows of `_sqlx_migrations`: version, success, checksum.
type Applied = Vec<(i64, bool, Vec<u8>)>;

const APPLIED_SQL: &str = "SELECT version, success, checksum FROM _sqlx_migrations";

/// Reads the state of a SQLite schema without writing anything.
pub(crate) async fn sqlite_state(pool: &Pool<sqlx::Sqlite>) -> Result<SchemaState, sqlx::Error> {
    state_of(sqlx::query_as(APPLIED_SQL).fetch_all(pool).await, &SQLITE)
}

/// Reads the state of a PostgreSQL schema without writing anything.
pub(crate) async fn postgres_state(
    pool: &Pool<sqlx::Postgres>,
) -> Result<SchemaState, sqlx::Error> {
    state_of(sqlx::query_as(APPLIED_SQL).fetch_all(pool).await, &POSTGRES)
}

fn state_of(
    applied: Result<Applied, sqlx::Error>,
    migrator: &Migrator,
) -> Result<SchemaState, sqlx::Error> {
    let applied = match applied {
        Ok(rows) => rows,
        // No migrations table (SQLite: "no such table", PostgreSQL: undefined_table):
        // nothing was ever applied.
        Err(sqlx::Error::Database(db))
            if db.code().as_deref() == Some("42P01") || db.message().contains("no such table") =>
        {
            Vec::new()
        }
        Err(other) => return Err(other),
    };
    let known: BTreeMap<i64, &[u8]> = migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| (m.version, &*m.checksum))
        .collect();
    for (version, success, checksum) in &applied {
        match known.get(version) {
            None => return Ok(SchemaState::Ahead { version: *version }),
            Some(_) if !success => {
                return Ok(SchemaState::Broken {
                    version: *version,
                    why: "failed half-way",
                })
            }
            Some(expected) if *expected != checksum.as_slice() => {
                return Ok(SchemaState::Broken {
                    version: *version,
                    why: "differs from this binary's",
                })
            }
            Some(_) => {}
        }
    }
    Ok(if applied.len() == known.len() {
        SchemaState::Current
    } else {
        SchemaState::Behind {
            applied: applied.len(),
            known: known.len(),
        }
    })
}

/// Applies the SQLite migrations; for a file the caller holds [`MigrateLock`] over opening
/// and migrating (see `sqlite::connect`).
pub(crate) async fn run_sqlite(pool: &Pool<sqlx::Sqlite>, shown: &str) -> Result<(), StoreError> {
    SQLITE.run(pool).await.map_err(|err| StoreError::Migrate {
        url: shown.to_string(),
        reason: err.to_string(),
    })
}

/// Applies the PostgreSQL migrations (sqlx holds an advisory lock meanwhile).
pub(crate) async fn run_postgres(
    pool: &Pool<sqlx::Postgres>,
    shown: &str,
) -> Result<(), StoreError> {
    POSTGRES.run(pool).await.map_err(|err| StoreError::Migrate {
        url: shown.to_string(),
        reason: err.to_string(),
    })
}

/// Refuses a database that is not at this binary's schema, saying what to do.
pub(crate) fn require_current(
    state: Result<SchemaState, sqlx::Error>,
    shown: &str,
) -> Result<(), StoreError> {
    let state = state.map_err(|e| StoreError::Connect {
        url: shown.to_string(),
        reason: reason(&e),
    })?;
    let url = shown.to_string();
    match state {
        SchemaState::Current => Ok(()),
        SchemaState::Behind { applied: 0, .. } => Err(StoreError::NotMigrated {
            url,
            reason: "it holds no patchsweep schema (no migration applied)".to_string(),
        }),
        SchemaState::Behind { applied, known } => Err(StoreError::NotMigrated {
            url,
            reason: format!("it is at migration {applied} of {known}"),
        }),
        SchemaState::Ahead { version } => Err(StoreError::SchemaTooNew { url, version }),
        SchemaState::Broken { version, why } => Err(StoreError::NotMigrated {
            url,
            reason: format!("its migration {version} {why}"),
        }),
    }
}

pub(crate) fn lock_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".migrate.lock");
    PathBuf::from(name)
}

/// An exclusive `flock` on `FILE.migrate.lock`, released when dropped (the file stays:
/// removing it would let a third process lock a new file while the second holds the old).
pub(crate) struct MigrateLock {
    _file: std::fs::File,
}

impl MigrateLock {
    /// Waits for the exclusive lock of `db_file`'s lock file (created if absent).
    pub(crate) async fn acquire(db_file: &Path) -> std::io::Result<MigrateLock> {
        let path = lock_path(db_file);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        // flock blocks: wait on a thread of the blocking pool, not on the runtime's.
        tokio::task::spawn_blocking(move || lock_exclusive(&file).map(|()| file))
            .await
            .map_err(std::io::Error::other)?
            .map(|file| MigrateLock { _file: file })
    }
}

#[cfg(unix)]
fn lock_exclusive(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    loop {
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(not(unix))]
fn lock_exclusive(_file: &std::fs::File) -> std::io::Result<()> {
    // No flock: concurrent first migrations are not serialized on this platform.
    Ok(())
}
