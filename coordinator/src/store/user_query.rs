//! One user statement on each backend, its rows streamed to a sink, under a row limit and a
//! statement timeout. The statement has passed the gate of `statement.rs` already.
//!
//! - SQLite: a connection opened read-only with `query_only`; the timeout is a progress
//!   handler that interrupts the statement once the deadline has passed.
//! - PostgreSQL: a `READ ONLY` transaction, always rolled back, with `SET LOCAL
//!   statement_timeout`; when the limit cuts the rows off, the connection is closed rather
//!   than drained.

use std::time::{Duration, Instant};

use sqlx::postgres::PgPool;
use sqlx::{Column, Connection, Executor, PgConnection, Row, SqliteConnection, Statement};
use tokio_stream::StreamExt;

use super::error::{db_error, query_error};
use super::stream::{Feed, QueryOptions, QuerySummary, RowSink};
use super::StoreError;

/// SQLite virtual-machine steps between two looks at the clock.
const PROGRESS_STEPS: i32 = 10_000;

/// SQLITE_INTERRUPT, as sqlx reports the code.
const SQLITE_INTERRUPT: &str = "9";
/// PostgreSQL's query_canceled (statement timeout, or a cancel request).
const PG_QUERY_CANCELED: &str = "57014";

/// Maps an error of the user statement; an interruption past the timeout is
/// [`StoreError::Timeout`].
fn user_error(
    timeout: Option<Duration>,
    timeout_code: &'static str,
) -> impl Fn(sqlx::Error) -> StoreError {
    move |err| match (&err, timeout) {
        (sqlx::Error::Database(db), Some(limit)) if db.code().as_deref() == Some(timeout_code) => {
            StoreError::Timeout {
                seconds: limit.as_secs_f64(),
            }
        }
        _ => query_error(err),
    }
}

pub(crate) async fn on_sqlite(
    conn: &mut SqliteConnection,
    url: &str,
    stmt: &str,
    options: &QueryOptions,
    sink: &mut dyn RowSink,
) -> Result<QuerySummary, StoreError> {
    // Set again before every query: the previous user may have turned it off.
    conn.execute("PRAGMA query_only = ON")
        .await
        .map_err(db_error("query", url))?;
    if let Some(timeout) = options.timeout {
        let deadline = Instant::now() + timeout;
        conn.lock_handle()
            .await
            .map_err(db_error("query", url))?
            .set_progress_handler(PROGRESS_STEPS, move || Instant::now() < deadline);
    }
    let outcome = sqlite_rows(conn, stmt, options, sink).await;
    if options.timeout.is_some() {
        if let Ok(mut handle) = conn.lock_handle().await {
            handle.remove_progress_handler();
        }
    }
    outcome
}

async fn sqlite_rows(
    conn: &mut SqliteConnection,
    stmt: &str,
    options: &QueryOptions,
    sink: &mut dyn RowSink,
) -> Result<QuerySummary, StoreError> {
    let err = user_error(options.timeout, SQLITE_INTERRUPT);
    let mut feed = Feed::new(sink, options);
    {
        let mut rows = sqlx::query(stmt).persistent(false).fetch(&mut *conn);
        while let Some(row) = rows.next().await {
            let row = row.map_err(&err)?;
            let more = feed.push(
                || column_names(row.columns()),
                || super::sqlite::decode_row(&row),
            )?;
            if !more {
                break;
            }
        }
    }
    let names = match feed.has_columns() {
        true => None,
        // No row to take the names from: prepare the statement (it is not run).
        false => Some(column_names(
            conn.prepare(stmt).await.map_err(query_error)?.columns(),
        )),
    };
    feed.finish(names)
}

pub(crate) async fn on_postgres(
    pool: &PgPool,
    url: &str,
    stmt: &str,
    options: &QueryOptions,
    sink: &mut dyn RowSink,
) -> Result<QuerySummary, StoreError> {
    let mut conn = pool.acquire().await.map_err(db_error("query", url))?;
    // READ ONLY makes the server refuse writes; the transaction is always rolled back, so
    // even settings the statement changes do not outlive it.
    let mut tx = conn
        .begin_with("BEGIN TRANSACTION READ ONLY")
        .await
        .map_err(db_error("query", url))?;
    if let Some(timeout) = options.timeout {
        let ms = timeout.as_millis().max(1);
        tx.execute(format!("SET LOCAL statement_timeout = {ms}").as_str())
            .await
            .map_err(db_error("query", url))?;
    }
    let outcome = pg_rows(&mut tx, stmt, options, sink).await;
    if matches!(
        outcome,
        Ok(QuerySummary {
            truncated: true,
            ..
        })
    ) {
        // Rows are still coming: closing the connection stops them, rolling back would
        // first read them all.
        drop(tx);
        let _ = conn.close().await;
    } else {
        let _ = tx.rollback().await;
    }
    outcome
}

async fn pg_rows(
    tx: &mut PgConnection,
    stmt: &str,
    options: &QueryOptions,
    sink: &mut dyn RowSink,
) -> Result<QuerySummary, StoreError> {
    let err = user_error(options.timeout, PG_QUERY_CANCELED);
    let mut feed = Feed::new(sink, options);
    {
        // Not persistent: user statements would otherwise fill the server's statement cache.
        let mut rows = sqlx::query(stmt).persistent(false).fetch(&mut *tx);
        while let Some(row) = rows.next().await {
            let row = row.map_err(&err)?;
            let more = feed.push(
                || column_names(row.columns()),
                || super::pg_values::decode_row(&row),
            )?;
            if !more {
                break;
            }
        }
    }
    let names = match feed.has_columns() {
        true => None,
        false => Some(column_names(
            tx.prepare(stmt).await.map_err(query_error)?.columns(),
        )),
    };
    feed.finish(names)
}

/// A statement's or a row's column names (the read model's fetch uses it too).
pub(crate) fn column_names<C: Column>(columns: &[C]) -> Vec<String> {
    columns.iter().map(|c| c.name().to_string()).collect()
}
