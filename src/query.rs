//! `patchsweep query`: read-only SQL over the results, as a table, CSV or JSON.
//!
//! The database is opened read-only ([`Store::open_readonly`]: never created, never
//! migrated). CSV and JSON rows are written as the database returns them; a table holds
//! its rows to align them. Each statement runs under a timeout, and on PostgreSQL not as a
//! superuser unless `--allow-superuser` is given.

use std::io::{BufWriter, Write};
use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use patchsweep_coordinator::store::{
    Collect, CsvSink, JsonSink, QueryOptions, QuerySummary, ReadOnlyOptions, Store, StoreError,
};

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Args)]
pub struct QueryArgs {
    /// The SQL (one read-only statement), e.g. "SELECT * FROM effects_v LIMIT 5".
    sql: String,
    /// Database URL: sqlite://FILE or postgres://... (it must exist and be migrated).
    #[arg(long, env = "PATCHSWEEP_DB", default_value = "sqlite://patchsweep.db")]
    db: String,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Stop the statement after this many seconds (0: never).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    timeout_seconds: u64,
    /// Print at most N rows; a note on stderr says when the query had more.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// On PostgreSQL, run the query even when the login role is a superuser (or may read
    /// server files): such a role can read files, reload the configuration and end
    /// sessions even in a read-only transaction. Better: connect as a role that may only
    /// SELECT (see docs).
    #[arg(long)]
    allow_superuser: bool,
}

/// Opens the results for the commands whose SQL the program writes itself (plot, report,
/// export): read-only, never created or migrated. A superuser login is accepted: no SQL
/// from elsewhere runs.
pub async fn open_results(db: &str) -> Result<Store, StoreError> {
    Store::open_readonly(
        db,
        &ReadOnlyOptions {
            allow_superuser: true,
        },
    )
    .await
}

pub fn run(args: QueryArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let summary = rt.block_on(async {
        let store = Store::open_readonly(
            &args.db,
            &ReadOnlyOptions {
                allow_superuser: args.allow_superuser,
            },
        )
        .await?;
        let options = QueryOptions {
            limit: args.limit,
            timeout: (args.timeout_seconds > 0).then(|| Duration::from_secs(args.timeout_seconds)),
        };
        let summary = print_rows(&store, &args.sql, args.format, &options).await;
        store.close().await;
        summary
    })?;
    if summary.truncated {
        eprintln!(
            "note: output cut at --limit {} rows; the query has more",
            summary.rows
        );
    }
    Ok(())
}

async fn print_rows(
    store: &Store,
    sql: &str,
    format: Format,
    options: &QueryOptions,
) -> Result<QuerySummary> {
    let stdout = || BufWriter::new(std::io::stdout());
    let summary = match format {
        Format::Table => {
            let mut rows = Collect::default();
            let summary = store.query_streaming(sql, options, &mut rows).await?;
            let mut out = stdout();
            out.write_all(rows.0.to_table().as_bytes())?;
            out.flush()?;
            summary
        }
        Format::Csv => {
            let mut sink = CsvSink(stdout());
            let summary = store.query_streaming(sql, options, &mut sink).await;
            sink.0.flush()?;
            summary?
        }
        Format::Json => {
            let mut sink = JsonSink::new(stdout());
            // On an error, what was written stays unterminated; the error says why.
            let summary = store.query_streaming(sql, options, &mut sink).await?;
            let mut out = sink.close()?;
            out.write_all(b"\n")?;
            out.flush()?;
            summary
        }
    };
    Ok(summary)
}
