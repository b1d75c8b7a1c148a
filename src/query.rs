//! `patchsweep query`: read-only SQL over the results, as a table, CSV or JSON.

use anyhow::Result;
use clap::{Args, ValueEnum};
use patchsweep_coordinator::store::Store;

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
    /// Database URL: sqlite://FILE or postgres://...
    #[arg(long, env = "PATCHSWEEP_DB", default_value = "sqlite://patchsweep.db")]
    db: String,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

pub fn run(args: QueryArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let store = Store::connect(&args.db).await?;
        store.query_readonly(&args.sql).await
    })?;
    let text = match args.format {
        Format::Table => result.to_table(),
        Format::Csv => result.to_csv(),
        Format::Json => result.to_json(),
    };
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    Ok(())
}
