//! The PostgreSQL backend: one pool; bulk inserts through UNNEST of bound arrays; user
//! queries in a READ ONLY transaction that is always rolled back.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, Postgres};

use super::error::{db_error, reason, sweep_db_error};
use super::rows::{LensRow, StoredEffect, StoredLens, StoredPair};
use super::{EffectRow, StoreError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows per UNNEST insert; each statement binds one array per column.
const ROWS_PER_STATEMENT: usize = 20_000;

#[derive(Debug, Clone)]
pub(crate) struct PgStore {
    pub(super) pool: PgPool,
    pub(super) url: String,
}

pub(crate) fn accepts(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

pub(crate) async fn connect(url: &str, shown: &str) -> Result<PgStore, StoreError> {
    let pool = open_pool(url, shown, false).await?;
    super::migrate::run_postgres(&pool, shown).await?;
    Ok(PgStore {
        pool,
        url: shown.to_string(),
    })
}

/// The pool, after one plain connection attempt; `read_only`: every transaction of its
/// connections is READ ONLY.
pub(crate) async fn open_pool(
    url: &str,
    shown: &str,
    read_only: bool,
) -> Result<PgPool, StoreError> {
    let connect_err = |reason: String| StoreError::Connect {
        url: shown.to_string(),
        reason,
    };
    let opts = PgConnectOptions::from_str(url).map_err(|e| connect_err(reason(&e)))?;
    // One plain attempt first: the pool retries a refused connection until its timeout and
    // then reports only that it timed out, which hides the reason.
    let probe = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&opts))
        .await
        .map_err(|_| connect_err(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())))?
        .map_err(|e| connect_err(reason(&e)))?;
    let _ = probe.close().await;
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(30))
        // A task's results and its completion commit together, so a commit lost to a
        // server crash only puts the task back (its lease expires, it runs again): the
        // store does not wait for the WAL flush on every completion.
        .after_connect(move |conn, _| {
            Box::pin(async move {
                conn.execute("SET synchronous_commit = off").await?;
                if read_only {
                    conn.execute("SET default_transaction_read_only = on")
                        .await?;
                }
                Ok(())
            })
        })
        .connect_with(opts)
        .await
        .map_err(|e| connect_err(reason(&e)))
}

impl PgStore {
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    pub(crate) async fn begin(
        &self,
        step: &'static str,
    ) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(db_error(step, &self.url))
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

pub(crate) async fn insert_pairs_in(
    tx: &mut PgConnection,
    url: &str,
    sweep_id: i64,
    pairs: &[StoredPair<'_>],
) -> Result<(), StoreError> {
    const STEP: &str = "insert pairs";
    for chunk in pairs.chunks(ROWS_PER_STATEMENT) {
        let col = |f: fn(&StoredPair) -> String| chunk.iter().map(f).collect::<Vec<_>>();
        let templates: Vec<Option<&str>> =
            chunk.iter().map(|p| p.row.template.as_deref()).collect();
        sqlx::query(
            "INSERT INTO pairs (sweep_id, pair_id, template, clean_prompt, corrupt_prompt, \
             clean_ids, corrupt_ids, labels, clean_metric, corrupt_metric, n_tokens, \
             toward_stereotype) \
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::text[], $9::float8[], $10::float8[], $11::int4[], \
             $12::int4[]) ON CONFLICT DO NOTHING",
        )
        .bind(sweep_id)
        .bind(col(|p| p.row.pair_id.clone()))
        .bind(templates)
        .bind(col(|p| p.row.clean_prompt.clone()))
        .bind(col(|p| p.row.corrupt_prompt.clone()))
        .bind(col(|p| p.clean_ids.clone()))
        .bind(col(|p| p.corrupt_ids.clone()))
        .bind(col(|p| p.labels.clone()))
        .bind(chunk.iter().map(|p| p.row.clean_metric).collect::<Vec<_>>())
        .bind(
            chunk
                .iter()
                .map(|p| p.row.corrupt_metric)
                .collect::<Vec<_>>(),
        )
        .bind(chunk.iter().map(|p| p.n_tokens).collect::<Vec<_>>())
        .bind(
            chunk
                .iter()
                .map(|p| i32::from(p.row.toward_stereotype))
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await
        .map_err(sweep_db_error(STEP, url, sweep_id))?;
    }
    let positions: Vec<(&str, &super::rows::StoredPosition)> = pairs
        .iter()
        .flat_map(|p| {
            p.positions
                .iter()
                .map(move |pos| (p.row.pair_id.as_str(), pos))
        })
        .collect();
    for chunk in positions.chunks(ROWS_PER_STATEMENT) {
        sqlx::query(
            "INSERT INTO pair_positions (sweep_id, pair_id, position, label, token_id, \
             clean_token, corrupt_token, corrupt_token_id) \
             SELECT $1, * FROM UNNEST($2::text[], $3::int4[], $4::text[], $5::int4[], \
             $6::text[], $7::text[], $8::int4[]) ON CONFLICT DO NOTHING",
        )
        .bind(sweep_id)
        .bind(chunk.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind(chunk.iter().map(|(_, p)| p.position).collect::<Vec<_>>())
        .bind(chunk.iter().map(|(_, p)| p.label).collect::<Vec<_>>())
        .bind(chunk.iter().map(|(_, p)| p.token_id).collect::<Vec<_>>())
        .bind(chunk.iter().map(|(_, p)| p.clean_token).collect::<Vec<_>>())
        .bind(
            chunk
                .iter()
                .map(|(_, p)| p.corrupt_token)
                .collect::<Vec<_>>(),
        )
        .bind(
            chunk
                .iter()
                .map(|(_, p)| p.corrupt_token_id)
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await
        .map_err(db_error(STEP, url))?;
    }
    Ok(())
}

pub(crate) async fn insert_effects_in(
    tx: &mut PgConnection,
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
    for chunk in stored.chunks(ROWS_PER_STATEMENT) {
        inserted += sqlx::query(
            "INSERT INTO effects (sweep_id, experiment, component, layer, head, position, \
             neuron, pair_id, value, effect, normalized) \
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::int4[], $5::int4[], \
             $6::int4[], $7::int4[], $8::text[], $9::float8[], $10::float8[], $11::float8[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(sweep_id)
        .bind(chunk.iter().map(|e| e.experiment).collect::<Vec<_>>())
        .bind(chunk.iter().map(|e| e.component).collect::<Vec<_>>())
        .bind(chunk.iter().map(|e| e.layer).collect::<Vec<_>>())
        .bind(chunk.iter().map(|e| e.head).collect::<Vec<_>>())
        .bind(chunk.iter().map(|e| e.position).collect::<Vec<_>>())
        .bind(chunk.iter().map(|e| e.neuron).collect::<Vec<_>>())
        .bind(chunk.iter().map(|e| e.pair_id).collect::<Vec<_>>())
        .bind(chunk.iter().map(|e| e.value).collect::<Vec<_>>())
        .bind(chunk.iter().map(|e| e.effect).collect::<Vec<_>>())
        .bind(chunk.iter().map(|e| e.normalized).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .map_err(db_error(STEP, url))?
        .rows_affected();
    }
    Ok(inserted)
}

pub(crate) async fn insert_lens_in(
    tx: &mut PgConnection,
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
    for chunk in stored.chunks(ROWS_PER_STATEMENT) {
        inserted += sqlx::query(
            "INSERT INTO lens (sweep_id, experiment, pair_id, layer, clean_value, \
             corrupt_value, clean_lead, corrupt_lead) \
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::int4[], $5::float8[], \
             $6::float8[], $7::int4[], $8::int4[]) ON CONFLICT DO NOTHING",
        )
        .bind(sweep_id)
        .bind(chunk.iter().map(|l| l.experiment).collect::<Vec<_>>())
        .bind(chunk.iter().map(|l| l.pair_id).collect::<Vec<_>>())
        .bind(chunk.iter().map(|l| l.layer).collect::<Vec<_>>())
        .bind(chunk.iter().map(|l| l.clean_value).collect::<Vec<_>>())
        .bind(chunk.iter().map(|l| l.corrupt_value).collect::<Vec<_>>())
        .bind(chunk.iter().map(|l| l.clean_lead).collect::<Vec<_>>())
        .bind(chunk.iter().map(|l| l.corrupt_lead).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .map_err(db_error(STEP, url))?
        .rows_affected();
    }
    Ok(inserted)
}
