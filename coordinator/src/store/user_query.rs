//! One read-only statement on each backend, its rows streamed to a sink, under a row limit
//! and a statement timeout: a user's statement (`query`, after the gate of `statement.rs`)
//! and the read model's named queries with their bound parameters (`read/exec.rs`) run here.
//!
//! - SQLite: a connection opened read-only with `query_only`; the timeout is a progress
//!   handler that interrupts the statement once the deadline has passed.
//! - PostgreSQL: a `READ ONLY` transaction, always rolled back, with `SET LOCAL
//!   statement_timeout`; when the limit cuts the rows off, the connection is closed rather
//!   than drained.

use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::postgres::PgPool;
use sqlx::query::Query;
use sqlx::{
    Column, Connection, Database, Executor, IntoArguments, Postgres, Row, Sqlite, SqliteConnection,
    Statement,
};
use tokio_stream::StreamExt;

use super::error::{db_error, query_error};
use super::queue_sql::{bind_all, Arg};
use super::stream::{Feed, QueryOptions, QuerySummary, RowSink};
use super::{Inner, Store, StoreError};

/// What the shared loop needs of a backend: the error code of a statement its timeout
/// stopped, and the decoding of its values.
trait ReadBackend: Database {
    const TIMEOUT_CODE: &'static str;
    fn decode(row: &Self::Row) -> Result<Vec<Value>, StoreError>;
}

impl ReadBackend for Sqlite {
    const TIMEOUT_CODE: &'static str = SQLITE_INTERRUPT;
    fn decode(row: &Self::Row) -> Result<Vec<Value>, StoreError> {
        super::sqlite::decode_row(row)
    }
}

impl ReadBackend for Postgres {
    const TIMEOUT_CODE: &'static str = PG_QUERY_CANCELED;
    fn decode(row: &Self::Row) -> Result<Vec<Value>, StoreError> {
        super::pg_values::decode_row(row)
    }
}

impl Store {
    /// Runs one read-only statement (already gated, or the read model's own) on this
    /// store's backend, streaming its rows to `sink`.
    pub(crate) async fn stream_statement(
        &self,
        stmt: &str,
        params: &[Arg<'_>],
        options: &QueryOptions,
        sink: &mut dyn RowSink,
    ) -> Result<QuerySummary, StoreError> {
        match &self.inner {
            Inner::Sqlite(s) => {
                let mut conn = s
                    .read_pool()
                    .acquire()
                    .await
                    .map_err(db_error("query", &self.url))?;
                on_sqlite(&mut conn, &self.url, stmt, params, options, sink).await
            }
            Inner::Postgres(s) => {
                on_postgres(s.pool(), &self.url, stmt, params, options, sink).await
            }
        }
    }
}

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

async fn on_sqlite(
    conn: &mut SqliteConnection,
    url: &str,
    stmt: &str,
    params: &[Arg<'_>],
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
    let query = bind_all(sqlx::query(stmt).persistent(false), params);
    let outcome = stream_rows::<Sqlite>(conn, stmt, query, options, sink).await;
    if options.timeout.is_some() {
        if let Ok(mut handle) = conn.lock_handle().await {
            handle.remove_progress_handler();
        }
    }
    outcome
}

async fn on_postgres(
    pool: &PgPool,
    url: &str,
    stmt: &str,
    params: &[Arg<'_>],
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
    let query = bind_all(sqlx::query(stmt).persistent(false), params);
    let outcome = stream_rows::<Postgres>(&mut *tx, stmt, query, options, sink).await;
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

/// The backends' shared loop: the rows of `query` (the statement `stmt` with its
/// parameters bound) to the sink, up to the limit, then the column names from the prepared
/// statement when no row came (it is not run again). Statements are not kept prepared:
/// users' would fill the server's cache, and PostgreSQL plans an unnamed statement for its
/// parameters' values, as it would the same statement with literals.
async fn stream_rows<'q, DB>(
    conn: &mut DB::Connection,
    stmt: &'q str,
    query: Query<'q, DB, DB::Arguments<'q>>,
    options: &QueryOptions,
    sink: &mut dyn RowSink,
) -> Result<QuerySummary, StoreError>
where
    DB: ReadBackend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    let err = user_error(options.timeout, DB::TIMEOUT_CODE);
    let mut feed = Feed::new(sink, options);
    {
        let mut rows = query.fetch(&mut *conn);
        while let Some(row) = rows.next().await {
            let row = row.map_err(&err)?;
            if !feed.push(|| column_names(row.columns()), || DB::decode(&row))? {
                break;
            }
        }
    }
    let names = match feed.has_columns() {
        true => None,
        false => Some(column_names(
            conn.prepare(stmt).await.map_err(query_error)?.columns(),
        )),
    };
    feed.finish(names)
}

/// A statement's or a row's column names.
fn column_names<C: Column>(columns: &[C]) -> Vec<String> {
    columns.iter().map(|c| c.name().to_string()).collect()
}
