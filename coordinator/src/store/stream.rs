//! User queries whose rows stream to a [`RowSink`] as the database returns them, with a
//! row limit and a statement timeout; and the sinks: CSV, JSON, or a [`QueryResult`].

use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use super::result::{csv_field, text};
use super::{QueryResult, StoreError};

/// Limits of one user query.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueryOptions {
    /// At most this many rows reach the sink; `None`: all.
    pub limit: Option<u64>,
    /// The statement is stopped after this long ([`StoreError::Timeout`]); `None`: never.
    pub timeout: Option<Duration>,
}

/// How a streamed query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuerySummary {
    /// Rows handed to the sink.
    pub rows: u64,
    /// Whether the limit cut rows off (the query had more).
    pub truncated: bool,
}

/// Where the rows of a streamed query go: the column names once, before any row.
pub trait RowSink: Send {
    fn columns(&mut self, names: &[String]) -> Result<(), StoreError>;
    fn row(&mut self, values: Vec<Value>) -> Result<(), StoreError>;
}

/// Feeds rows to a sink up to the limit: the backends' shared loop body.
pub(crate) struct Feed<'s> {
    sink: &'s mut dyn RowSink,
    limit: Option<u64>,
    rows: u64,
    columns_sent: bool,
    truncated: bool,
}

impl<'s> Feed<'s> {
    pub(crate) fn new(sink: &'s mut dyn RowSink, options: &QueryOptions) -> Self {
        Feed {
            sink,
            limit: options.limit,
            rows: 0,
            columns_sent: false,
            truncated: false,
        }
    }

    /// Whether the sink already has its column names (else [`Feed::finish`] needs them).
    pub(crate) fn has_columns(&self) -> bool {
        self.columns_sent
    }

    /// Passes one row on; `Ok(false)` when the limit is reached and the caller should stop
    /// (this row was one too many and is dropped).
    pub(crate) fn push(
        &mut self,
        names: impl FnOnce() -> Vec<String>,
        values: impl FnOnce() -> Result<Vec<Value>, StoreError>,
    ) -> Result<bool, StoreError> {
        if !self.columns_sent {
            self.sink.columns(&names())?;
            self.columns_sent = true;
        }
        if self.limit.is_some_and(|limit| self.rows >= limit) {
            self.truncated = true;
            return Ok(false);
        }
        self.sink.row(values()?)?;
        self.rows += 1;
        Ok(true)
    }

    /// Ends the feed; `names` gives the column names when no row came.
    pub(crate) fn finish(self, names: Option<Vec<String>>) -> Result<QuerySummary, StoreError> {
        if !self.columns_sent {
            self.sink.columns(&names.unwrap_or_default())?;
        }
        Ok(QuerySummary {
            rows: self.rows,
            truncated: self.truncated,
        })
    }
}

/// Collects the rows into a [`QueryResult`].
#[derive(Debug, Default)]
pub struct Collect(pub QueryResult);

impl RowSink for Collect {
    fn columns(&mut self, names: &[String]) -> Result<(), StoreError> {
        self.0.columns = names.to_vec();
        Ok(())
    }
    fn row(&mut self, values: Vec<Value>) -> Result<(), StoreError> {
        self.0.rows.push(values);
        Ok(())
    }
}

/// Writes CSV as [`QueryResult::to_csv`] does, row by row.
pub struct CsvSink<W: Write + Send>(pub W);

impl<W: Write + Send> CsvSink<W> {
    fn line(&mut self, fields: impl Iterator<Item = String>) -> Result<(), StoreError> {
        let fields: Vec<String> = fields.collect();
        self.0.write_all(fields.join(",").as_bytes())?;
        self.0.write_all(b"\r\n")?;
        Ok(())
    }
}

impl<W: Write + Send> RowSink for CsvSink<W> {
    fn columns(&mut self, names: &[String]) -> Result<(), StoreError> {
        self.line(names.iter().map(|c| csv_field(c)))
    }
    fn row(&mut self, values: Vec<Value>) -> Result<(), StoreError> {
        self.line(values.iter().map(|v| csv_field(&text(v, ""))))
    }
}

/// Writes a JSON array of objects as [`QueryResult::to_json`] does, row by row; call
/// [`JsonSink::close`] after the query for the closing `]`.
pub struct JsonSink<W: Write + Send> {
    out: W,
    columns: Vec<String>,
    opened: bool,
    rows: u64,
}

impl<W: Write + Send> JsonSink<W> {
    pub fn new(out: W) -> Self {
        JsonSink {
            out,
            columns: Vec::new(),
            opened: false,
            rows: 0,
        }
    }

    /// Writes the closing `]` and hands the writer back.
    pub fn close(mut self) -> Result<W, StoreError> {
        if !self.opened {
            self.out.write_all(b"[")?;
        }
        self.out.write_all(b"]")?;
        Ok(self.out)
    }
}

impl<W: Write + Send> RowSink for JsonSink<W> {
    fn columns(&mut self, names: &[String]) -> Result<(), StoreError> {
        self.columns = names.to_vec();
        self.out.write_all(b"[")?;
        self.opened = true;
        Ok(())
    }
    fn row(&mut self, values: Vec<Value>) -> Result<(), StoreError> {
        let mut line = String::new();
        if self.rows > 0 {
            line.push(',');
        }
        line.push('{');
        for (c, (name, value)) in self.columns.iter().zip(&values).enumerate() {
            if c > 0 {
                line.push(',');
            }
            line.push_str(&Value::String(name.clone()).to_string());
            line.push(':');
            line.push_str(&value.to_string());
        }
        line.push('}');
        self.out.write_all(line.as_bytes())?;
        self.rows += 1;
        Ok(())
    }
}
