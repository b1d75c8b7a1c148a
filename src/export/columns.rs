//! Column types from JSON values (see the module above for the rules); the values are
//! read for Arrow by the store's one decoder (`patchsweep_coordinator::store::values`).

use arrow_schema::DataType;
use patchsweep_coordinator::store::values::non_finite;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Int64,
    Float64,
    Boolean,
    Utf8,
}

impl ColumnType {
    pub fn arrow(self) -> DataType {
        match self {
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Utf8 => DataType::Utf8,
        }
    }
}

/// Integer columns of the views, for columns that hold only NULLs in an export.
const INTEGER_NAMES: &[&str] = &[
    "sweep_id",
    "layer",
    "head",
    "position",
    "neuron",
    "n_tokens",
    "task_id",
    "worker_id",
    "attempts",
    "max_attempts",
    "patches",
    "rows_stored",
    "control_sets",
    "n",
    "stale_results",
    "lease_expirations",
    "memory_bytes",
    "device_memory_peak_bytes",
    "tasks_leased",
    "tasks_done",
    "count",
    "token_id",
    "corrupt_token_id",
    "id",
    "weak",
    "toward_stereotype",
    "pairs",
    "pairs_used",
    "strong",
];

/// Real-valued columns of the views, likewise.
const REAL_NAMES: &[&str] = &[
    "value",
    "effect",
    "normalized",
    "clean_metric",
    "corrupt_metric",
    "before",
    "after",
    "delta",
    "control_after",
    "control_p05",
    "control_p95",
    "control_percentile",
    "before_ci_low",
    "before_ci_high",
    "after_ci_low",
    "after_ci_high",
    "control_ci_low",
    "control_ci_high",
    "progress",
    "seconds",
    "span",
    "min_span",
    "mean_effect",
    "oriented_effect",
    "shift",
    "abs_span",
];

/// The type of a column named `name` holding `values`.
pub fn column_type<'a>(name: &str, values: impl Iterator<Item = &'a Value>) -> ColumnType {
    let (mut any, mut ints, mut floats, mut bools, mut other) = (false, true, true, true, false);
    for v in values {
        match v {
            Value::Null => continue,
            Value::Number(n) => {
                ints &= n.is_i64();
                bools = false;
            }
            Value::Bool(_) => {
                ints = false;
                floats = false;
            }
            Value::String(s) if non_finite(s).is_some() => {
                ints = false;
                bools = false;
            }
            _ => other = true,
        }
        any = true;
    }
    if !any {
        return if INTEGER_NAMES.contains(&name) {
            ColumnType::Int64
        } else if REAL_NAMES.contains(&name) {
            ColumnType::Float64
        } else {
            ColumnType::Utf8
        };
    }
    if other {
        ColumnType::Utf8
    } else if bools {
        ColumnType::Boolean
    } else if ints {
        ColumnType::Int64
    } else if floats {
        ColumnType::Float64
    } else {
        ColumnType::Utf8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(name: &str, values: &[Value]) -> ColumnType {
        column_type(name, values.iter())
    }

    #[test]
    fn types_follow_the_values() {
        assert_eq!(
            t("x", &[json!(1), Value::Null, json!(-3)]),
            ColumnType::Int64
        );
        assert_eq!(t("x", &[json!(1), json!(2.5)]), ColumnType::Float64);
        assert_eq!(t("x", &[json!(1.0), json!("NaN")]), ColumnType::Float64);
        assert_eq!(t("x", &[json!(true), Value::Null]), ColumnType::Boolean);
        assert_eq!(t("x", &[json!("a"), json!(1)]), ColumnType::Utf8);
        assert_eq!(t("x", &[json!({"a": 1})]), ColumnType::Utf8);
        assert_eq!(t("x", &[json!(true), json!(1)]), ColumnType::Utf8);
    }

    #[test]
    fn all_null_columns_fall_back_to_known_names() {
        assert_eq!(t("normalized", &[Value::Null]), ColumnType::Float64);
        assert_eq!(t("head", &[]), ColumnType::Int64);
        assert_eq!(t("error", &[Value::Null]), ColumnType::Utf8);
    }
}
