//! The SQLite backend: one writer connection, a pool of read-only connections for queries.

use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Column, QueryBuilder, Row, Sqlite, TypeInfo, ValueRef};

use super::error::{db_error, query_error, reason, sweep_db_error};
use super::migrate::{lock_path, MigrateLock};
use super::read::values::float;
use super::rows::{LensRow, StoredEffect, StoredLens, StoredPair};
use super::{EffectRow, StoreError};

/// SQLite's limit on bound parameters per statement (SQLITE_MAX_VARIABLE_NUMBER since 3.32).
const MAX_BINDS: usize = 32766;
/// Columns of `effects`, each one bind per row.
const EFFECT_COLUMNS: usize = 11;
/// Rows per multi-row INSERT of effects.
const EFFECTS_PER_STATEMENT: usize = MAX_BINDS / EFFECT_COLUMNS;
/// Rows per multi-row INSERT of lens values (8 columns).
const LENS_PER_STATEMENT: usize = MAX_BINDS / 8;

const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub(crate) struct SqliteStore {
    /// All writes go through this single connection: SQLite admits one writer at a time,
    /// and one connection means the store's own transactions never meet SQLITE_BUSY.
    pub(super) write: SqlitePool,
    /// Connections for user queries: opened read-only (files) and with `query_only` on.
    pub(super) read: SqlitePool,
    pub(super) url: String,
}

/// Whether `url` is for this backend (anything that is not another scheme is a file path).
pub(crate) fn accepts(url: &str) -> bool {
    url.starts_with("sqlite:") || !url.contains("://")
}

pub(crate) async fn connect(url: &str, shown: &str) -> Result<SqliteStore, StoreError> {
    let connect_err = |err: sqlx::Error| StoreError::Connect {
        url: shown.to_string(),
        reason: reason(&err),
    };
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let base = if url.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url).map_err(connect_err)?
    } else {
        SqliteConnectOptions::new().filename(url)
    };
    let base = base.foreign_keys(true).busy_timeout(BUSY_TIMEOUT);
    let write_opts_file = base.get_filename().to_path_buf();
    let write_opts = base
        .clone()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let file = (!in_memory).then(|| write_opts_file.clone());
    // Creating the file, switching it to WAL and migrating it race with another process
    // doing the same (`table sweeps already exists`, `database is locked`): all three happen
    // under an exclusive lock file beside the database, as sqlx's advisory lock does on
    // PostgreSQL. The lock file stays (FILE.migrate.lock); it holds nothing.
    let _lock = match &file {
        Some(f) => Some(
            MigrateLock::acquire(f)
                .await
                .map_err(|e| StoreError::Migrate {
                    url: shown.to_string(),
                    reason: format!("lock {}: {e}", lock_path(f).display()),
                })?,
        ),
        None => None,
    };
    // One connection, kept open for good: an in-memory database lives as long as it does.
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(write_opts)
        .await
        .map_err(connect_err)?;
    super::migrate::run_sqlite(&write, shown).await?;
    drop(_lock);
    // In-memory databases are shared through SQLite's shared cache and cannot be opened
    // read-only; `query_only` alone guards them.
    let read_opts = base.read_only(!in_memory).pragma("query_only", "ON");
    let read = SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(0)
        .connect_lazy_with(read_opts);
    Ok(SqliteStore {
        write,
        read,
        url: shown.to_string(),
    })
}

impl SqliteStore {
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    pub(crate) async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    pub(crate) async fn begin(
        &self,
        step: &'static str,
    ) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        // IMMEDIATE takes the write lock up front, so another process's writer makes us wait
        // (busy timeout) instead of failing half-way.
        self.write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error(step, &self.url))
    }

    /// The pool of read-only connections.
    pub(crate) fn read_pool(&self) -> &SqlitePool {
        &self.read
    }
}

/// SQLite types each value, not each column: decode by the value's own type. Integers in a
/// column declared BOOLEAN read as booleans.
pub(crate) fn decode_row(row: &SqliteRow) -> Result<Vec<Value>, StoreError> {
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(query_error)?;
        if raw.is_null() {
            out.push(Value::Null);
            continue;
        }
        let dynamic = raw.type_info().name().to_string();
        let declared_bool = col.type_info().name().eq_ignore_ascii_case("BOOLEAN");
        let value = match dynamic.as_str() {
            "INTEGER" if declared_bool => {
                Value::Bool(row.try_get_unchecked::<i64, _>(i).map_err(query_error)? != 0)
            }
            "INTEGER" => Value::from(row.try_get_unchecked::<i64, _>(i).map_err(query_error)?),
            "REAL" => float(row.try_get_unchecked::<f64, _>(i).map_err(query_error)?),
            "BLOB" => {
                let bytes = row
                    .try_get_unchecked::<Vec<u8>, _>(i)
                    .map_err(query_error)?;
                Value::String(format!("x'{}'", hex(&bytes)))
            }
            _ => Value::String(row.try_get_unchecked::<String, _>(i).map_err(query_error)?),
        };
        out.push(value);
    }
    Ok(out)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) async fn insert_pairs_in(
    tx: &mut sqlx::SqliteConnection,
    url: &str,
    sweep_id: i64,
    pairs: &[StoredPair<'_>],
) -> Result<(), StoreError> {
    const STEP: &str = "insert pairs";
    for p in pairs {
        let r = p.row;
        sqlx::query(
            "INSERT INTO pairs (sweep_id, pair_id, template, clean_prompt, corrupt_prompt, \
             clean_ids, corrupt_ids, labels, clean_metric, corrupt_metric, n_tokens, \
             toward_stereotype) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(sweep_id)
        .bind(&r.pair_id)
        .bind(&r.template)
        .bind(&r.clean_prompt)
        .bind(&r.corrupt_prompt)
        .bind(&p.clean_ids)
        .bind(&p.corrupt_ids)
        .bind(&p.labels)
        .bind(r.clean_metric)
        .bind(r.corrupt_metric)
        .bind(p.n_tokens)
        .bind(i32::from(r.toward_stereotype))
        .execute(&mut *tx)
        .await
        .map_err(sweep_db_error(STEP, url, sweep_id))?;
        for pos in &p.positions {
            sqlx::query(
                "INSERT INTO pair_positions (sweep_id, pair_id, position, label, token_id, \
                 clean_token, corrupt_token, corrupt_token_id) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(sweep_id)
            .bind(&r.pair_id)
            .bind(pos.position)
            .bind(pos.label)
            .bind(pos.token_id)
            .bind(pos.clean_token)
            .bind(pos.corrupt_token)
            .bind(pos.corrupt_token_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error(STEP, url))?;
        }
    }
    Ok(())
}

pub(crate) async fn insert_effects_in(
    tx: &mut sqlx::SqliteConnection,
    url: &str,
    sweep_id: i64,
    effects: &[EffectRow],
) -> Result<u64, StoreError> {
    const STEP: &str = "insert effects";
    let stored = effects
        .iter()
        .map(StoredEffect::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let mut inserted = 0;
    for chunk in stored.chunks(EFFECTS_PER_STATEMENT) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO effects (sweep_id, experiment, component, layer, head, position, \
             neuron, pair_id, value, effect, normalized) ",
        );
        qb.push_values(chunk, |mut b, e| {
            b.push_bind(sweep_id)
                .push_bind(e.experiment)
                .push_bind(e.component)
                .push_bind(e.layer)
                .push_bind(e.head)
                .push_bind(e.position)
                .push_bind(e.neuron)
                .push_bind(e.pair_id)
                .push_bind(e.value)
                .push_bind(e.effect)
                .push_bind(e.normalized);
        });
        qb.push(" ON CONFLICT DO NOTHING");
        inserted += qb
            .build()
            .execute(&mut *tx)
            .await
            .map_err(db_error(STEP, url))?
            .rows_affected();
    }
    Ok(inserted)
}

pub(crate) async fn insert_lens_in(
    tx: &mut sqlx::SqliteConnection,
    url: &str,
    sweep_id: i64,
    rows: &[LensRow],
) -> Result<u64, StoreError> {
    const STEP: &str = "insert lens values";
    let stored = rows
        .iter()
        .map(StoredLens::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let mut inserted = 0;
    for chunk in stored.chunks(LENS_PER_STATEMENT) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO lens (sweep_id, experiment, pair_id, layer, clean_value, \
             corrupt_value, clean_lead, corrupt_lead) ",
        );
        qb.push_values(chunk, |mut b, l| {
            b.push_bind(sweep_id)
                .push_bind(l.experiment)
                .push_bind(l.pair_id)
                .push_bind(l.layer)
                .push_bind(l.clean_value)
                .push_bind(l.corrupt_value)
                .push_bind(l.clean_lead)
                .push_bind(l.corrupt_lead);
        });
        qb.push(" ON CONFLICT DO NOTHING");
        inserted += qb
            .build()
            .execute(&mut *tx)
            .await
            .map_err(db_error(STEP, url))?
            .rows_affected();
    }
    Ok(inserted)
}
