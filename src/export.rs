//! `patchsweep export`: one view (or table) of the results as Parquet, CSV or JSON lines,
//! for pandas, DuckDB, R, spreadsheets.
//!
//! Column types come from the values, because the store returns JSON values whatever the
//! backend (SQLite types values, not columns): a column whose non-NULL values are all
//! integers is Int64, all numbers with at least one fraction Float64 (the store's text
//! "NaN"/"inf"/"-inf" read as those floats), all booleans Boolean, anything else Utf8
//! (JSON arrays and objects as their JSON text). A column with no non-NULL value takes its
//! type from its name when it is a known column of the views (e.g. `normalized` Float64,
//! `layer` Int64) and is Utf8 otherwise. NULLs stay NULL in every format.

mod columns;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use clap::{Args, ValueEnum};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use patchsweep_coordinator::store::{is_plain_name, values, QueryResult};

use columns::column_type;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Parquet,
    Csv,
    Jsonl,
}

#[derive(Args)]
pub struct ExportArgs {
    /// Database URL: sqlite://FILE or postgres://...
    #[arg(long, env = "PATCHSWEEP_DB", default_value = "sqlite://patchsweep.db")]
    db: String,
    /// The view or table: effects_v, pairs_v, tasks_v, workers_v, debias_v, sweeps, ...
    #[arg(long)]
    view: String,
    /// Only this sweep's rows (the view must have a sweep_id column).
    #[arg(long)]
    sweep: Option<i64>,
    #[arg(long, value_enum, default_value = "parquet")]
    format: Format,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
}

/// Rows per Parquet row group (and Arrow record batch).
const ROW_GROUP: usize = 65_536;

pub fn run(args: ExportArgs) -> Result<()> {
    if !is_plain_name(&args.view) {
        bail!(
            "--view takes the name of a view or table (letters, digits, _), e.g. effects_v, not `{}`",
            args.view
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let store = crate::query::open_results(&args.db).await?;
        let result = store
            .export_view(&args.view, args.sweep)
            .await
            .with_context(|| match args.sweep {
                Some(_) => format!(
                    "read {} for one sweep (does it exist, with a sweep_id column?)",
                    args.view
                ),
                None => format!("read {} (is it a view or table of the results?)", args.view),
            });
        store.close().await;
        result
    })?;
    match args.format {
        Format::Parquet => write_parquet(&result, &args.out)?,
        Format::Csv => write_file(&args.out, result.to_csv().as_bytes())?,
        Format::Jsonl => write_file(&args.out, jsonl(&result).as_bytes())?,
    }
    println!(
        "{}: {} rows × {} columns of {}",
        args.out.display(),
        result.rows.len(),
        result.columns.len(),
        args.view
    );
    Ok(())
}

fn write_file(path: &PathBuf, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("write {}", path.display()))
}

/// One JSON object per line, keys in column order, NULL as null.
fn jsonl(r: &QueryResult) -> String {
    let mut out = String::new();
    for row in &r.rows {
        out.push('{');
        for (c, (name, value)) in r.columns.iter().zip(row).enumerate() {
            if c > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::Value::String(name.clone()).to_string());
            out.push(':');
            out.push_str(&value.to_string());
        }
        out.push_str("}\n");
    }
    out
}

/// The Arrow schema of a result: one nullable field per column, typed as the module says.
pub fn schema(r: &QueryResult) -> Schema {
    let fields: Vec<Field> = r
        .columns
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let t = column_type(name, r.rows.iter().map(|row| &row[c]));
            Field::new(name, t.arrow(), true)
        })
        .collect();
    Schema::new(fields)
}

/// Rows of a result as one Arrow record batch of `schema`.
pub fn batch(schema: &Arc<Schema>, rows: &[Vec<serde_json::Value>]) -> Result<RecordBatch> {
    let arrays: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(c, field)| {
            let values = rows.iter().map(|row| &row[c]);
            let array: ArrayRef = match field.data_type() {
                DataType::Int64 => Arc::new(Int64Array::from(
                    values.map(values::as_i64).collect::<Vec<_>>(),
                )),
                DataType::Float64 => Arc::new(Float64Array::from(
                    values.map(values::as_f64).collect::<Vec<_>>(),
                )),
                DataType::Boolean => Arc::new(BooleanArray::from(
                    values.map(|v| v.as_bool()).collect::<Vec<_>>(),
                )),
                _ => Arc::new(StringArray::from(
                    values.map(values::as_text).collect::<Vec<_>>(),
                )),
            };
            array
        })
        .collect();
    RecordBatch::try_new(schema.clone(), arrays).context("build an Arrow batch")
}

fn write_parquet(r: &QueryResult, path: &PathBuf) -> Result<()> {
    let schema = Arc::new(schema(r));
    let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .build();
    let mut writer = ArrowWriter::try_new(BufWriter::new(file), schema.clone(), Some(props))
        .context("start the Parquet file")?;
    for rows in r.rows.chunks(ROW_GROUP) {
        writer
            .write(&batch(&schema, rows)?)
            .context("write Parquet rows")?;
    }
    // into_inner writes the footer and flushes; the BufWriter's own flush reports errors.
    writer
        .into_inner()
        .context("finish the Parquet file")?
        .flush()
        .with_context(|| format!("write {}", path.display()))
}
