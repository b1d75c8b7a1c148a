//! The SQL store: the only place with SQL. SQLite (embedded default) or PostgreSQL.
//!
//! # Layout
//! - this file: [`Store`], which picks a backend from the URL and checks input once;
//! - `sqlite.rs`, `postgres.rs`: the two backends, same behaviour, own SQL;
//! - `rows.rs`: the stored form of [`PairRow`], [`EffectRow`], [`LensRow`], [`DebiasRow`] (and
//!   the [`GenerationRow`]s `queue_sql/generations.rs` stores);
//! - `queue.rs`: the task queue's types (the shared ones are `patchsweep_api`'s, re-exported
//!   here); `queue_sql/` its SQL, written once for both backends (functions generic over
//!   the backend's connection); `scheduling.rs` the queue's calls on [`Store`], one
//!   transaction each;
//! - `read/`: the read model, the named, typed queries of `run`, `report`, `plot` and
//!   `export` (SQL written once for both backends), and the read-only execution that users'
//!   queries share;
//! - `statement.rs`: the single-statement, read-only gate of user queries;
//! - `readonly.rs`: [`Store::open_readonly`] (no create, no migrate, superuser refusal) and
//!   [`Store::query_streaming`]; `user_query.rs` runs a user statement on each backend
//!   (limit, timeout); `stream.rs` the [`RowSink`]s rows stream to (CSV, JSON, collect);
//! - `migrate.rs`: the embedded migrations, applied under a lock on SQLite too, and the
//!   check that a database is at this binary's schema;
//! - `result.rs`: [`QueryResult`] and its table, CSV and JSON renderings;
//! - `pg_values.rs`: PostgreSQL values to JSON (floats through `read/values.rs`);
//!   `error.rs`: [`StoreError`].
//!
//! The schema lives in `migrations/{sqlite,postgres}` (embedded in the binary) and is
//! applied on every [`Store::connect`]. Users query the views `effects_v` and `pairs_v`;
//! in the tables, layer/head/position/neuron hold -1 where they do not apply so that the
//! key of `effects` is unique (exactly-once results), and the views show NULL instead.

/// Runs `$body` in one transaction of the store's backend, with `$tx` the connection, `$url`
/// the redacted URL and `q` the backend's module; commits when `$body` returned.
macro_rules! in_tx {
    ($store:expr, $step:expr, |$tx:ident, $url:ident| $body:expr) => {
        match &$store.inner {
            $crate::store::Inner::Sqlite(s) => in_tx!(@on s, sqlite, $step, |$tx, $url| $body),
            $crate::store::Inner::Postgres(s) => {
                in_tx!(@on s, postgres, $step, |$tx, $url| $body)
            }
        }
    };
    (@on $s:ident, $backend:ident, $step:expr, |$tx:ident, $url:ident| $body:expr) => {{
        #[allow(unused_imports)]
        use $crate::store::$backend as q;
        let mut t = $s.begin($step).await?;
        let $url = $s.url();
        let $tx = &mut *t;
        let out = $body;
        t.commit()
            .await
            .map_err($crate::store::error::db_error($step, $s.url()))?;
        out
    }};
}

mod error;
mod migrate;
mod pg_values;
mod postgres;
pub mod queue;
mod queue_sql;
mod read;
mod readonly;
mod result;
mod rows;
mod scheduling;
mod sqlite;
mod statement;
mod stream;
mod user_query;

pub use error::StoreError;
pub use queue::{
    DebiasFigure, HeldSweep, LeaseScope, LeasedTask, NewTask, PreparedSweep, QueuePolicy,
    QueueTotals, Settled, SweepProgress, TaskCounts, TaskFailure, TaskKind, TaskOutput, TaskState,
    WorkerInfo,
};
pub use read::export::is_plain_name;
pub use read::values;
pub use read::EXAMPLE_QUERY;
pub use read::{
    Baselines, BenchmarkScore, CellMean, DebiasComponents, DebiasSplitSize, DroppedCount,
    ExperimentSummary, GenerationSample, GroupBaselines, LensLayer, PairBaseline, PositionToken,
    Reversal, RoundedDebiasRow, Rounding, ScatterPoint, ScatterSet, SelectedSite, SweepRow,
    SweepSelection, TaskSummary, TopComponent, WeakPairs,
};
pub use readonly::ReadOnlyOptions;
pub use result::QueryResult;
pub use rows::{BenchmarkRow, DebiasRow, EffectRow, GenerationRow, LensRow, PairRow};
pub use stream::{Collect, CsvSink, JsonSink, QueryOptions, QuerySummary, RowSink};

use rows::StoredPair;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
enum Inner {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// A connected, migrated results database. Cheap to clone (the pools are shared).
#[derive(Debug, Clone)]
pub struct Store {
    inner: Inner,
    /// The URL without its password, for messages.
    url: String,
}

impl Store {
    /// Connects and applies the migrations (idempotent).
    ///
    /// `url` is `sqlite://FILE` (created if missing), `sqlite::memory:`, a plain file path,
    /// or `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`. A PostgreSQL schema other than
    /// `public` can be chosen with `?options=-c%20search_path%3DSCHEMA` (it must exist).
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let shown = error::redact_url(url);
        let inner = if postgres::accepts(url) {
            Inner::Postgres(postgres::connect(url, &shown).await?)
        } else if sqlite::accepts(url) {
            Inner::Sqlite(sqlite::connect(url, &shown).await?)
        } else {
            return Err(StoreError::UnsupportedUrl { url: shown });
        };
        tracing::debug!(url = %shown, "store connected and migrated");
        Ok(Store { inner, url: shown })
    }

    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Sqlite(_) => Backend::Sqlite,
            Inner::Postgres(_) => Backend::Postgres,
        }
    }

    /// The database URL without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Closes the connections; later calls fail.
    pub async fn close(&self) {
        match &self.inner {
            Inner::Sqlite(s) => s.close().await,
            Inner::Postgres(s) => s.close().await,
        }
    }

    /// Records a new sweep (status `running`) and returns its id.
    pub async fn create_sweep(
        &self,
        name: &str,
        spec_toml: &str,
        model: &str,
    ) -> Result<i64, StoreError> {
        Ok(in_tx!(self, "create sweep", |tx, url| {
            queue_sql::create_sweep_in(tx, url, name, spec_toml, model).await?
        }))
    }

    /// Records an experiment of a sweep. Idempotent: adding the same experiment again is a
    /// no-op; adding one of the same name with another method or direction is an error.
    pub async fn add_experiment(
        &self,
        sweep_id: i64,
        name: &str,
        method: &str,
        direction: &str,
    ) -> Result<(), StoreError> {
        let existing = in_tx!(self, "add experiment", |tx, url| {
            queue_sql::add_experiment_in(tx, url, sweep_id, name, method, direction).await?
        });
        match existing {
            Some((m, d)) if m != method || d != direction => Err(StoreError::ExperimentConflict {
                sweep_id,
                name: name.to_string(),
                existing: format!("{m}/{d}"),
                requested: format!("{method}/{direction}"),
            }),
            _ => Ok(()),
        }
    }

    /// Stores pairs and their positions in one transaction. Idempotent: pairs already
    /// stored are kept as they are. Clean and corrupted token counts must match.
    pub async fn insert_pairs(&self, sweep_id: i64, pairs: &[PairRow]) -> Result<(), StoreError> {
        let stored = pairs
            .iter()
            .map(StoredPair::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        in_tx!(self, "insert pairs", |tx, url| {
            q::insert_pairs_in(tx, url, sweep_id, &stored).await?
        });
        Ok(())
    }

    /// Bulk-inserts effects in one transaction and returns how many rows were new: effects
    /// already stored under the same key are skipped (exactly-once results). The pairs and
    /// experiments they name must be stored first.
    pub async fn insert_effects(
        &self,
        sweep_id: i64,
        effects: &[EffectRow],
    ) -> Result<u64, StoreError> {
        Ok(in_tx!(self, "insert effects", |tx, url| {
            q::insert_effects_in(tx, url, sweep_id, effects).await?
        }))
    }

    /// Sets the counts of pairs dropped from the sweep, by reason (replacing earlier counts;
    /// a reason given twice is summed).
    pub async fn set_dropped(
        &self,
        sweep_id: i64,
        counts: &[(String, i64)],
    ) -> Result<(), StoreError> {
        const STEP: &str = "set dropped pairs";
        if let Some((reason, count)) = counts.iter().find(|(_, c)| *c < 0) {
            return Err(StoreError::InvalidInput {
                step: STEP,
                message: format!("negative count {count} for reason `{reason}`"),
            });
        }
        let found = in_tx!(self, STEP, |tx, url| {
            queue_sql::set_dropped_in(tx, url, sweep_id, counts).await?
        });
        found.then_some(()).ok_or(StoreError::SweepNotFound {
            step: STEP,
            sweep_id,
        })
    }

    /// Sets the sweep's final status and its finish time (database clock).
    pub async fn finish_sweep(&self, sweep_id: i64, status: &str) -> Result<(), StoreError> {
        let found = in_tx!(self, "finish sweep", |tx, url| {
            queue_sql::finish_sweep_in(tx, url, sweep_id, status).await?
        });
        found.then_some(()).ok_or(StoreError::SweepNotFound {
            step: "finish sweep",
            sweep_id,
        })
    }

    /// Runs one read-only SQL statement for a user and returns all its rows (see
    /// [`Store::query_streaming`] for rows as they come, a limit and a timeout). Writes, and
    /// more than one statement, are refused with [`StoreError::ReadOnly`]; the database
    /// enforces it too (a read-only SQLite connection with `query_only`; a PostgreSQL
    /// `READ ONLY` transaction).
    pub async fn query_readonly(&self, sql: &str) -> Result<QueryResult, StoreError> {
        let mut rows = Collect::default();
        self.query_streaming(sql, &QueryOptions::default(), &mut rows)
            .await?;
        Ok(rows.0)
    }
}
