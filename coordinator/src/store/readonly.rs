//! Opening an existing results database for reading only, and streaming user queries.
//!
//! [`Store::open_readonly`] never creates, migrates or writes: SQLite is opened with
//! `SQLITE_OPEN_READONLY` and `query_only` (it works on a read-only file), PostgreSQL with
//! `default_transaction_read_only`. A missing file, a database without this binary's
//! schema, or one migrated by a newer binary is an error that says what to do.
//!
//! PostgreSQL superusers: even a `READ ONLY` transaction lets a superuser read server files
//! (`pg_read_file`), list directories, reload the configuration and end other sessions;
//! no parse of the SQL can refuse all of these soundly (functions can be reached through
//! views, casts, operators...). So the store refuses to open for user queries when the
//! login role is, or may become (`SET ROLE`), a superuser or a member of the server-file
//! and signalling roles, unless [`ReadOnlyOptions::allow_superuser`] says otherwise.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::error::{reason, redact_url};
use super::statement::{single_read_statement, Dialect};
use super::stream::{QueryOptions, QuerySummary, RowSink};
use super::{migrate, postgres, sqlite, Inner, Store, StoreError};

/// Roles that let a session reach the server's files, programs or other sessions.
const DANGEROUS_ROLES: &str = "'pg_read_server_files', 'pg_write_server_files', \
     'pg_execute_server_program', 'pg_signal_backend'";

const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How [`Store::open_readonly`] opens a database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOnlyOptions {
    /// Open PostgreSQL even when the login role is (or may become) a superuser or a member
    /// of `pg_read_server_files` and the like. Right for SQL the program writes itself;
    /// for SQL from a user only when that user may act as the superuser anyway.
    pub allow_superuser: bool,
}

impl Store {
    /// Opens an existing, migrated database for reading only: it is neither created nor
    /// migrated, and the store's writing calls fail. Same URLs as [`Store::connect`].
    pub async fn open_readonly(url: &str, options: &ReadOnlyOptions) -> Result<Store, StoreError> {
        let shown = redact_url(url);
        let inner = if postgres::accepts(url) {
            Inner::Postgres(open_postgres(url, &shown, options).await?)
        } else if sqlite::accepts(url) {
            Inner::Sqlite(open_sqlite(url, &shown).await?)
        } else {
            return Err(StoreError::UnsupportedUrl { url: shown });
        };
        tracing::debug!(url = %shown, "store opened read-only");
        Ok(Store { inner, url: shown })
    }

    /// Runs one read-only SQL statement for a user, handing its rows to `sink` as the
    /// database returns them (nothing is held), at most `options.limit` of them, and stops
    /// it with [`StoreError::Timeout`] after `options.timeout`. Writes, and more than one
    /// statement, are refused with [`StoreError::ReadOnly`]; the database enforces it too.
    pub async fn query_streaming(
        &self,
        sql: &str,
        options: &QueryOptions,
        sink: &mut dyn RowSink,
    ) -> Result<QuerySummary, StoreError> {
        let dialect = match &self.inner {
            Inner::Sqlite(_) => Dialect::Sqlite,
            Inner::Postgres(_) => Dialect::Postgres,
        };
        let stmt = single_read_statement(sql, dialect)?;
        self.stream_statement(stmt, &[], options, sink).await
    }
}

async fn open_sqlite(url: &str, shown: &str) -> Result<sqlite::SqliteStore, StoreError> {
    let connect_err = |err: sqlx::Error| StoreError::Connect {
        url: shown.to_string(),
        reason: reason(&err),
    };
    let base = if url.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url).map_err(connect_err)?
    } else {
        SqliteConnectOptions::new().filename(url)
    };
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if !in_memory && !base.get_filename().exists() {
        return Err(StoreError::NoDatabase {
            url: shown.to_string(),
        });
    }
    // In-memory databases cannot be opened read-only (and a new one is empty anyway).
    let opts = base
        .create_if_missing(false)
        .read_only(!in_memory)
        .pragma("query_only", "ON")
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let read = SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(0)
        .connect_lazy_with(opts.clone());
    // The store's writing calls go here and fail: the connection is read-only too.
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .connect_lazy_with(opts);
    migrate::require_current(migrate::sqlite_state(&read).await, shown)?;
    Ok(sqlite::SqliteStore {
        write,
        read,
        url: shown.to_string(),
    })
}

async fn open_postgres(
    url: &str,
    shown: &str,
    options: &ReadOnlyOptions,
) -> Result<postgres::PgStore, StoreError> {
    let pool = postgres::open_pool(url, shown, true).await?;
    migrate::require_current(migrate::postgres_state(&pool).await, shown)?;
    if !options.allow_superuser {
        refuse_superuser(&pool, shown).await?;
    }
    Ok(postgres::PgStore {
        pool,
        url: shown.to_string(),
    })
}

/// Refuses a login role that is, or may `SET ROLE` to, a superuser or a dangerous role.
async fn refuse_superuser(pool: &PgPool, shown: &str) -> Result<(), StoreError> {
    let sql = format!(
        "SELECT session_user::text, r.rolname::text, r.rolsuper FROM pg_roles r \
         WHERE (r.rolsuper OR r.rolname IN ({DANGEROUS_ROLES})) \
         AND pg_has_role(session_user, r.oid, 'MEMBER') ORDER BY r.rolname"
    );
    let held: Vec<(String, String, bool)> =
        sqlx::query_as(&sql)
            .fetch_all(pool)
            .await
            .map_err(|e| StoreError::Connect {
                url: shown.to_string(),
                reason: reason(&e),
            })?;
    let Some((login, _, _)) = held.first() else {
        return Ok(());
    };
    // A superuser counts as a member of every role: say just that.
    let superuser = held.iter().any(|(_, role, sup)| role == login && *sup);
    let rights = match superuser {
        true => "superuser".to_string(),
        false => held
            .iter()
            .map(|(_, role, sup)| match sup {
                true => format!("may SET ROLE to superuser `{role}`"),
                false => format!("member of {role}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
    };
    Err(StoreError::Superuser {
        url: shown.to_string(),
        role: login.clone(),
        rights,
    })
}
