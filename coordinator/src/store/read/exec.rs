//! Running one read-only statement with bound parameters on either backend: the named
//! queries of the read model come here (users' queries stream through `user_query.rs`).
//! The statement text is the same on both backends (`$1`, `$2`, ... parameters); rows come
//! back as JSON values through each backend's decoder. Statements are not kept prepared:
//! users' would fill the server's cache, and PostgreSQL plans an unnamed statement for its
//! parameters' values, as it would the same statement with literals.

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Executor, PgPool, Postgres, Row, Sqlite, SqlitePool, Statement};

use crate::store::error::{db_error, query_error};
use crate::store::user_query::column_names;
use crate::store::{Inner, QueryResult, Store, StoreError};

/// A bound parameter of a named query.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Int(i64),
    Text(&'a str),
}

const STEP: &str = "query";

impl Store {
    /// Runs one read-only statement of the read model on this store's backend.
    pub(crate) async fn fetch(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<QueryResult, StoreError> {
        match &self.inner {
            Inner::Sqlite(s) => sqlite_fetch(s.read_pool(), s.url(), sql, params).await,
            Inner::Postgres(s) => pg_fetch(s.pool(), s.url(), sql, params).await,
        }
    }
}

fn bind_sqlite<'q>(
    mut q: Query<'q, Sqlite, SqliteArguments<'q>>,
    params: &[Param<'q>],
) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    for p in params {
        q = match *p {
            Param::Int(i) => q.bind(i),
            Param::Text(t) => q.bind(t),
        };
    }
    q
}

fn bind_pg<'q>(
    mut q: Query<'q, Postgres, PgArguments>,
    params: &[Param<'q>],
) -> Query<'q, Postgres, PgArguments> {
    for p in params {
        q = match *p {
            Param::Int(i) => q.bind(i),
            Param::Text(t) => q.bind(t),
        };
    }
    q
}

/// On a connection of the read-only pool, with `query_only` set again first (a user's
/// earlier statement may have turned it off).
pub(crate) async fn sqlite_fetch(
    pool: &SqlitePool,
    url: &str,
    sql: &str,
    params: &[Param<'_>],
) -> Result<QueryResult, StoreError> {
    let mut conn = pool.acquire().await.map_err(db_error(STEP, url))?;
    conn.execute("PRAGMA query_only = ON")
        .await
        .map_err(db_error(STEP, url))?;
    let rows = bind_sqlite(sqlx::query(sql), params)
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
        .map_err(query_error)?;
    let columns = match rows.first() {
        Some(row) => column_names(row.columns()),
        // No row to take the names from: prepare the statement (it is not run).
        None => column_names(conn.prepare(sql).await.map_err(query_error)?.columns()),
    };
    let rows = rows
        .iter()
        .map(crate::store::sqlite::decode_row)
        .collect::<Result<_, _>>()?;
    Ok(QueryResult { columns, rows })
}

/// In a READ ONLY transaction that is always rolled back, so even settings the statement
/// changes do not outlive it.
pub(crate) async fn pg_fetch(
    pool: &PgPool,
    url: &str,
    sql: &str,
    params: &[Param<'_>],
) -> Result<QueryResult, StoreError> {
    let mut tx = pool
        .begin_with("BEGIN TRANSACTION READ ONLY")
        .await
        .map_err(db_error(STEP, url))?;
    let outcome = pg_fetch_in(&mut tx, sql, params).await;
    let _ = tx.rollback().await;
    outcome
}

async fn pg_fetch_in(
    tx: &mut sqlx::PgConnection,
    sql: &str,
    params: &[Param<'_>],
) -> Result<QueryResult, StoreError> {
    let rows = bind_pg(sqlx::query(sql), params)
        .persistent(false)
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error)?;
    let columns = match rows.first() {
        Some(row) => column_names(row.columns()),
        // No row to take the names from: prepare the statement (it is not run).
        None => column_names(tx.prepare(sql).await.map_err(query_error)?.columns()),
    };
    let rows = rows
        .iter()
        .map(crate::store::pg_values::decode_row)
        .collect::<Result<_, _>>()?;
    Ok(QueryResult { columns, rows })
}
