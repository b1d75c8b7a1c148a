//! What the queue's SQL needs of a backend: a connection (inside a transaction) that runs
//! a [`Sql`] statement, and the few fragments of SQL that differ between SQLite and
//! PostgreSQL.

use std::borrow::Cow;
use std::future::Future;

use sqlx::postgres::PgRow;
use sqlx::query::Query;
use sqlx::sqlite::SqliteRow;
use sqlx::{Database, Encode, FromRow, PgConnection, SqliteConnection, Type};

/// The fragments of SQL that differ between the backends; statements name them with the
/// placeholders `{now}`, `{sweep_now}`, `{sweep_times}`, `{skip_locked}` and `{lock_row}`.
pub(crate) struct Flavor {
    /// The database clock in seconds since the Unix epoch (a float): lease times.
    now: &'static str,
    /// The database clock as the timestamp of `sweeps.finished_at`.
    sweep_now: &'static str,
    /// `sweeps.created_at, sweeps.finished_at` as ISO 8601 UTC text with milliseconds
    /// (`2026-11-30T09:28:50.123Z`; SQLite's columns hold that text already).
    sweep_times: &'static str,
    /// Appended to the lease's candidate SELECT: concurrent leases skip each other's rows.
    skip_locked: &'static str,
    /// Appended to a SELECT of one row: locks it until the transaction ends.
    lock_row: &'static str,
}

impl Flavor {
    fn render(&self, template: &'static str) -> Cow<'static, str> {
        if !template.contains('{') {
            return Cow::Borrowed(template);
        }
        let mut text = String::with_capacity(template.len() + 64);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let close = open + rest[open..].find('}').expect("placeholder closed");
            text.push_str(&rest[..open]);
            text.push_str(match &rest[open + 1..close] {
                "now" => self.now,
                "sweep_now" => self.sweep_now,
                "sweep_times" => self.sweep_times,
                "skip_locked" => self.skip_locked,
                "lock_row" => self.lock_row,
                other => panic!("unknown placeholder {{{other}}} in {template}"),
            });
            rest = &rest[close + 1..];
        }
        text.push_str(rest);
        Cow::Owned(text)
    }
}

/// SQLite has one writer (the store's transactions begin IMMEDIATE), so it needs no row
/// locks.
const SQLITE: Flavor = Flavor {
    now: "((julianday('now') - 2440587.5) * 86400.0)",
    sweep_now: "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    sweep_times: "created_at, finished_at",
    skip_locked: "",
    lock_row: "",
};

const POSTGRES: Flavor = Flavor {
    now: "(extract(epoch from clock_timestamp())::double precision)",
    sweep_now: "now()",
    sweep_times: "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
                  to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
    skip_locked: " FOR UPDATE OF t SKIP LOCKED",
    lock_row: " FOR UPDATE",
};

/// A value bound to a `$N` parameter (of the queue's statements and the read model's).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Real(f64),
    OptReal(Option<f64>),
    Text(&'a str),
    OptText(Option<&'a str>),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::OptInt(v)
    }
}

impl From<f64> for Arg<'_> {
    fn from(v: f64) -> Self {
        Arg::Real(v)
    }
}

impl From<Option<f64>> for Arg<'_> {
    fn from(v: Option<f64>) -> Self {
        Arg::OptReal(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::OptText(v.as_deref())
    }
}

/// A row both backends decode: a tuple of plain values, or a type with its own `FromRow`.
pub(crate) trait Decoded:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Decoded for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// One statement of the queue, written once for both backends: `$N` parameters (SQLite
/// takes them too) and the placeholders of [`Flavor`].
pub(crate) struct Sql<'a> {
    template: &'static str,
    args: Vec<Arg<'a>>,
}

pub(crate) fn sql<'a>(template: &'static str) -> Sql<'a> {
    Sql {
        template,
        args: Vec::new(),
    }
}

impl<'a> Sql<'a> {
    /// Binds the next `$N` parameter.
    pub(crate) fn bind(mut self, value: impl Into<Arg<'a>>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Runs the statement; answers the rows it changed.
    pub(crate) async fn execute<C: QueueConn>(self, tx: &mut C) -> Result<u64, sqlx::Error> {
        tx.execute(self).await
    }

    pub(crate) async fn fetch_all<T: Decoded, C: QueueConn>(
        self,
        tx: &mut C,
    ) -> Result<Vec<T>, sqlx::Error> {
        tx.fetch_all(self).await
    }

    pub(crate) async fn fetch_optional<T: Decoded, C: QueueConn>(
        self,
        tx: &mut C,
    ) -> Result<Option<T>, sqlx::Error> {
        tx.fetch_optional(self).await
    }

    /// The first row; [`sqlx::Error::RowNotFound`] when there is none (as sqlx's own).
    pub(crate) async fn fetch_one<T: Decoded, C: QueueConn>(
        self,
        tx: &mut C,
    ) -> Result<T, sqlx::Error> {
        tx.fetch_optional(self)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// The first column of every row.
    pub(crate) async fn fetch_scalars<T, C: QueueConn>(
        self,
        tx: &mut C,
    ) -> Result<Vec<T>, sqlx::Error>
    where
        (T,): Decoded,
    {
        let rows: Vec<(T,)> = tx.fetch_all(self).await?;
        Ok(rows.into_iter().map(|(v,)| v).collect())
    }

    /// The first column of the first row.
    pub(crate) async fn fetch_scalar<T, C: QueueConn>(self, tx: &mut C) -> Result<T, sqlx::Error>
    where
        (T,): Decoded,
    {
        let (v,) = self.fetch_one(tx).await?;
        Ok(v)
    }
}

/// A backend's connection, as the queue's statements run on it. Every call of the queue
/// runs inside a transaction its caller opened and commits.
pub(crate) trait QueueConn: Send {
    fn execute(&mut self, sql: Sql<'_>) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    fn fetch_all<T: Decoded>(
        &mut self,
        sql: Sql<'_>,
    ) -> impl Future<Output = Result<Vec<T>, sqlx::Error>> + Send;

    fn fetch_optional<T: Decoded>(
        &mut self,
        sql: Sql<'_>,
    ) -> impl Future<Output = Result<Option<T>, sqlx::Error>> + Send;
}

impl QueueConn for SqliteConnection {
    async fn execute(&mut self, sql: Sql<'_>) -> Result<u64, sqlx::Error> {
        let text = SQLITE.render(sql.template);
        let done = bind_all(sqlx::query(&text), &sql.args)
            .execute(self)
            .await?;
        Ok(done.rows_affected())
    }

    async fn fetch_all<T: Decoded>(&mut self, sql: Sql<'_>) -> Result<Vec<T>, sqlx::Error> {
        let text = SQLITE.render(sql.template);
        let rows = bind_all(sqlx::query(&text), &sql.args)
            .fetch_all(self)
            .await?;
        rows.iter().map(T::from_row).collect()
    }

    async fn fetch_optional<T: Decoded>(&mut self, sql: Sql<'_>) -> Result<Option<T>, sqlx::Error> {
        let text = SQLITE.render(sql.template);
        let row = bind_all(sqlx::query(&text), &sql.args)
            .fetch_optional(self)
            .await?;
        row.as_ref().map(T::from_row).transpose()
    }
}

impl QueueConn for PgConnection {
    async fn execute(&mut self, sql: Sql<'_>) -> Result<u64, sqlx::Error> {
        let text = POSTGRES.render(sql.template);
        let done = bind_all(sqlx::query(&text), &sql.args)
            .execute(self)
            .await?;
        Ok(done.rows_affected())
    }

    async fn fetch_all<T: Decoded>(&mut self, sql: Sql<'_>) -> Result<Vec<T>, sqlx::Error> {
        let text = POSTGRES.render(sql.template);
        let rows = bind_all(sqlx::query(&text), &sql.args)
            .fetch_all(self)
            .await?;
        rows.iter().map(T::from_row).collect()
    }

    async fn fetch_optional<T: Decoded>(&mut self, sql: Sql<'_>) -> Result<Option<T>, sqlx::Error> {
        let text = POSTGRES.render(sql.template);
        let row = bind_all(sqlx::query(&text), &sql.args)
            .fetch_optional(self)
            .await?;
        row.as_ref().map(T::from_row).transpose()
    }
}

/// `query` with `args` bound to its `$N` parameters in order (the read model's and users'
/// statements bind theirs here too).
pub(crate) fn bind_all<'q, DB: Database>(
    query: Query<'q, DB, DB::Arguments<'q>>,
    args: &[Arg<'q>],
) -> Query<'q, DB, DB::Arguments<'q>>
where
    i64: Encode<'q, DB> + Type<DB>,
    f64: Encode<'q, DB> + Type<DB>,
    Option<f64>: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
{
    args.iter().fold(query, |q, arg| match *arg {
        Arg::Int(v) => q.bind(v),
        Arg::Real(v) => q.bind(v),
        Arg::OptReal(v) => q.bind(v),
        Arg::OptInt(v) => q.bind(v),
        Arg::Text(v) => q.bind(v),
        Arg::OptText(v) => q.bind(v),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_the_backends_fragments() {
        let t = "UPDATE t SET a = {now} + $1 WHERE id = $2{lock_row}";
        assert_eq!(
            SQLITE.render(t),
            "UPDATE t SET a = ((julianday('now') - 2440587.5) * 86400.0) + $1 WHERE id = $2"
        );
        assert_eq!(
            POSTGRES.render(t),
            "UPDATE t SET a = (extract(epoch from clock_timestamp())::double precision) + $1 \
             WHERE id = $2 FOR UPDATE"
        );
        assert_eq!(POSTGRES.render("SELECT {sweep_now}"), "SELECT now()");
        assert!(matches!(
            SQLITE.render("SELECT 1"),
            Cow::Borrowed("SELECT 1")
        ));
    }
}
