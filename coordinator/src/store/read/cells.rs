//! Typed cells of a result row: the read model's rows are decoded here, through
//! [`super::values`], so both backends' values read the same way.

use serde_json::Value;

use super::values;
use crate::store::{QueryResult, StoreError};

/// The cells of one row, read left to right by the row type that knows its columns.
pub(crate) struct Cells<'a> {
    values: &'a [Value],
    next: usize,
}

impl<'a> Cells<'a> {
    fn take(&mut self, column: &'static str) -> Result<&'a Value, StoreError> {
        let v = self
            .values
            .get(self.next)
            .ok_or_else(|| StoreError::Query {
                message: format!("column `{column}` is missing from the result"),
            })?;
        self.next += 1;
        Ok(v)
    }

    fn expected(column: &'static str, what: &str, v: &Value) -> StoreError {
        StoreError::Query {
            message: format!("column `{column}`: expected {what}, got {v}"),
        }
    }

    pub(crate) fn opt_int(&mut self, column: &'static str) -> Result<Option<i64>, StoreError> {
        match self.take(column)? {
            Value::Null => Ok(None),
            v => values::as_i64(v)
                .map(Some)
                .ok_or_else(|| Self::expected(column, "an integer", v)),
        }
    }

    /// A 95% interval stored as two columns, `low` then `high`: `None` unless both are set.
    pub(crate) fn opt_interval(
        &mut self,
        low: &'static str,
        high: &'static str,
    ) -> Result<Option<(f64, f64)>, StoreError> {
        let low = self.opt_float(low)?;
        Ok(low.zip(self.opt_float(high)?))
    }

    pub(crate) fn int(&mut self, column: &'static str) -> Result<i64, StoreError> {
        self.opt_int(column)?
            .ok_or_else(|| Self::expected(column, "an integer", &Value::Null))
    }

    pub(crate) fn opt_float(&mut self, column: &'static str) -> Result<Option<f64>, StoreError> {
        match self.take(column)? {
            Value::Null => Ok(None),
            v => values::as_f64(v)
                .map(Some)
                .ok_or_else(|| Self::expected(column, "a number", v)),
        }
    }

    pub(crate) fn float(&mut self, column: &'static str) -> Result<f64, StoreError> {
        self.opt_float(column)?
            .ok_or_else(|| Self::expected(column, "a number", &Value::Null))
    }

    pub(crate) fn opt_text(&mut self, column: &'static str) -> Result<Option<String>, StoreError> {
        Ok(values::as_text(self.take(column)?))
    }

    pub(crate) fn text(&mut self, column: &'static str) -> Result<String, StoreError> {
        self.opt_text(column)?
            .ok_or_else(|| Self::expected(column, "text", &Value::Null))
    }
}

/// Every row of `result` decoded by `row`.
pub(crate) fn decode<T>(
    result: &QueryResult,
    row: impl Fn(&mut Cells<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    result
        .rows
        .iter()
        .map(|values| row(&mut Cells { values, next: 0 }))
        .collect()
}
