//! Store errors: each names the step that failed and the database (URL without password).

use sqlx::error::ErrorKind;

/// What went wrong in the store, named after the step that failed.
///
/// Messages carry the database URL without its password and the database's own reason;
/// they never carry the SQL the store ran. Map them to `tonic::Status` at the RPC edge.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no backend the store speaks.
    #[error(
        "unsupported database URL `{url}`: use sqlite://FILE, sqlite::memory:, a file path, \
         or postgres://USER@HOST:PORT/DATABASE"
    )]
    UnsupportedUrl { url: String },

    /// The database could not be reached or refused the login.
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },

    /// The schema migrations failed.
    #[error("cannot migrate {url}: {reason}")]
    Migrate { url: String, reason: String },

    /// A statement of the store failed in the database.
    #[error("{step} failed on {url}: {reason}")]
    Database {
        step: &'static str,
        url: String,
        reason: String,
    },

    /// The rows handed to the store are inconsistent; nothing was written.
    #[error("{step}: {message}")]
    InvalidInput { step: &'static str, message: String },

    /// The sweep id names no sweep.
    #[error("{step}: sweep {sweep_id} does not exist")]
    SweepNotFound { step: &'static str, sweep_id: i64 },

    /// An experiment of that name exists with another method or direction.
    #[error(
        "add experiment: experiment `{name}` of sweep {sweep_id} is already stored as \
         {existing}, not {requested}"
    )]
    ExperimentConflict {
        sweep_id: i64,
        name: String,
        existing: String,
        requested: String,
    },

    /// A user query tried to write, or held more than one statement.
    #[error("statement refused: queries are read-only ({reason})")]
    ReadOnly { reason: String },

    /// A user query failed for another reason (syntax, unknown table, ...).
    #[error("query failed: {message}")]
    Query { message: String },

    /// A read-only open found no database file (read-only opens never create one).
    #[error(
        "no database at {url}: the file does not exist (reading never creates one); check \
         the path, or create the database with `patchsweep run` or `patchsweep coordinator`"
    )]
    NoDatabase { url: String },

    /// A read-only open found a database without this binary's schema.
    #[error(
        "{url} is not a patchsweep results database at this version: {reason}; reading \
         never migrates, so open it once with `patchsweep run` or `patchsweep coordinator` \
         of this version, which create and migrate the schema"
    )]
    NotMigrated { url: String, reason: String },

    /// The database holds migrations this binary does not know.
    #[error(
        "{url} holds schema migration {version}, which this patchsweep does not know: it was \
         written by a newer patchsweep; read it with that version or a later one"
    )]
    SchemaTooNew { url: String, version: i64 },

    /// A user query ran longer than its statement timeout and was stopped.
    #[error(
        "statement timed out after {seconds} s and was stopped; narrow the query, or allow \
         more time (patchsweep query --timeout-seconds)"
    )]
    Timeout { seconds: f64 },

    /// User queries were refused: the PostgreSQL login role is (or may become) a superuser,
    /// or may read server files or signal other sessions.
    #[error(
        "refusing to run user queries on {url} as `{role}` ({rights}): even in a READ ONLY \
         transaction such a role can read server files (pg_read_file, pg_ls_dir), \
         reload the configuration and end other sessions. Connect as a role that may only \
         read, created by a superuser with e.g. `CREATE ROLE patchsweep_reader LOGIN PASSWORD \
         '...'; GRANT USAGE ON SCHEMA public TO patchsweep_reader; GRANT SELECT ON ALL TABLES \
         IN SCHEMA public TO patchsweep_reader;`, or accept the risk with --allow-superuser"
    )]
    Superuser {
        url: String,
        role: String,
        rights: String,
    },

    /// Writing a query's rows to their destination failed.
    #[error("writing the query's rows failed: {0}")]
    Output(#[from] std::io::Error),
}

/// The URL as shown in messages: the password (and any `password=` parameter) removed.
pub(crate) fn redact_url(url: &str) -> String {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        // sqlite URLs and plain paths hold no secrets.
        return url.to_string();
    }
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            if parsed.query().is_some() {
                let kept: Vec<(String, String)> = parsed
                    .query_pairs()
                    .filter(|(k, _)| !k.to_ascii_lowercase().contains("password"))
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                if kept.is_empty() {
                    parsed.set_query(None);
                } else {
                    parsed.query_pairs_mut().clear().extend_pairs(kept);
                }
            }
            parsed.to_string()
        }
        // Unparseable: show only the scheme, the rest may hold a password.
        Err(_) => "postgres://<unparseable URL>".to_string(),
    }
}

/// The database's reason for an error, without sqlx's wrapping.
pub(crate) fn reason(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => {
            let hint = match db.kind() {
                ErrorKind::ForeignKeyViolation => {
                    " (a row names a sweep, pair or experiment that is not stored)"
                }
                ErrorKind::NotNullViolation => " (a required value is missing)",
                ErrorKind::CheckViolation => " (a value is out of range)",
                _ => "",
            };
            format!("{}{hint}", db.message())
        }
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Tls(tls) => format!("TLS: {tls}"),
        sqlx::Error::PoolTimedOut => "timed out waiting for a database connection".to_string(),
        sqlx::Error::PoolClosed => "the store is closed".to_string(),
        other => other.to_string(),
    }
}

/// Builds a [`StoreError::Database`] for `step`.
pub(crate) fn db_error<'u>(
    step: &'static str,
    url: &'u str,
) -> impl FnOnce(sqlx::Error) -> StoreError + 'u {
    move |err| StoreError::Database {
        step,
        url: url.to_string(),
        reason: reason(&err),
    }
}

/// Like [`db_error`], for statements whose only foreign key is the sweep: a foreign-key
/// failure means the sweep does not exist.
pub(crate) fn sweep_db_error<'u>(
    step: &'static str,
    url: &'u str,
    sweep_id: i64,
) -> impl FnOnce(sqlx::Error) -> StoreError + 'u {
    move |err| match &err {
        sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation => {
            StoreError::SweepNotFound { step, sweep_id }
        }
        _ => db_error(step, url)(err),
    }
}

/// Maps an error of a user query: write refusals become [`StoreError::ReadOnly`].
pub(crate) fn query_error(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        let code = db.code().unwrap_or_default();
        // SQLite: SQLITE_READONLY (8) and its extended codes (8 | n << 8).
        let sqlite_readonly = code.parse::<i64>().is_ok_and(|c| c & 0xff == 8);
        // PostgreSQL: read_only_sql_transaction.
        let pg_readonly = code == "25006";
        if sqlite_readonly || pg_readonly {
            return StoreError::ReadOnly {
                reason: format!("the database refused a write: {}", db.message()),
            };
        }
        return StoreError::Query {
            message: db.message().to_string(),
        };
    }
    StoreError::Query {
        message: reason(&err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://alice:s3cret@db.example:5432/sweeps"),
            "postgres://alice@db.example:5432/sweeps"
        );
        assert_eq!(
            redact_url("postgres://alice@db/x?password=s3cret&sslmode=require"),
            "postgres://alice@db/x?sslmode=require"
        );
        assert_eq!(
            redact_url("sqlite://patchsweep.db"),
            "sqlite://patchsweep.db"
        );
        assert_eq!(redact_url("results/run.db"), "results/run.db");
    }
}
