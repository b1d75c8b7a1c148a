//! Decoding PostgreSQL result values into JSON by column type.
//!
//! sqlx receives values in the binary format; types without a plain Rust decoder in sqlx's
//! default features (NUMERIC, timestamps, UUID, JSON) are read from their wire bytes here.

use serde_json::Value;
use sqlx::postgres::{PgRow, PgTypeKind, PgValueRef};
use sqlx::{Column, Row, TypeInfo, ValueRef};

use super::error::query_error;
use super::read::values::float;
use super::sqlite::hex;
use super::StoreError;

pub(crate) fn decode_row(row: &PgRow) -> Result<Vec<Value>, StoreError> {
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(query_error)?;
        if raw.is_null() {
            out.push(Value::Null);
            continue;
        }
        let ty = col.type_info();
        let name = ty.name();
        let get = |e: sqlx::Error| query_error(e);
        let value = match name {
            "BOOL" => Value::Bool(row.try_get::<bool, _>(i).map_err(get)?),
            "INT2" => Value::from(row.try_get::<i16, _>(i).map_err(get)?),
            "INT4" => Value::from(row.try_get::<i32, _>(i).map_err(get)?),
            "INT8" => Value::from(row.try_get::<i64, _>(i).map_err(get)?),
            "FLOAT4" => float(f64::from(row.try_get::<f32, _>(i).map_err(get)?)),
            "FLOAT8" => float(row.try_get::<f64, _>(i).map_err(get)?),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "UNKNOWN" => {
                Value::String(row.try_get_unchecked::<String, _>(i).map_err(get)?)
            }
            "BOOL[]" => json_array(
                row.try_get::<Vec<Option<bool>>, _>(i).map_err(get)?,
                Value::Bool,
            ),
            "INT2[]" => json_array(
                row.try_get::<Vec<Option<i16>>, _>(i).map_err(get)?,
                Value::from,
            ),
            "INT4[]" => json_array(
                row.try_get::<Vec<Option<i32>>, _>(i).map_err(get)?,
                Value::from,
            ),
            "INT8[]" => json_array(
                row.try_get::<Vec<Option<i64>>, _>(i).map_err(get)?,
                Value::from,
            ),
            "FLOAT4[]" => json_array(row.try_get::<Vec<Option<f32>>, _>(i).map_err(get)?, |f| {
                float(f64::from(f))
            }),
            "FLOAT8[]" => json_array(row.try_get::<Vec<Option<f64>>, _>(i).map_err(get)?, float),
            "TEXT[]" | "VARCHAR[]" => json_array(
                row.try_get::<Vec<Option<String>>, _>(i).map_err(get)?,
                Value::String,
            ),
            "VOID" => Value::Null,
            _ => decode_bytes(name, ty.kind(), &raw, col.name())?,
        };
        out.push(value);
    }
    Ok(out)
}

fn json_array<T>(items: Vec<Option<T>>, f: impl Fn(T) -> Value) -> Value {
    Value::Array(
        items
            .into_iter()
            .map(|v| v.map_or(Value::Null, &f))
            .collect(),
    )
}

/// Types read from their binary wire format.
fn decode_bytes(
    type_name: &str,
    kind: &PgTypeKind,
    raw: &PgValueRef<'_>,
    column: &str,
) -> Result<Value, StoreError> {
    let bytes = raw.as_bytes().map_err(|e| StoreError::Query {
        message: format!("column `{column}`: {e}"),
    })?;
    let unsupported = || StoreError::Query {
        message: format!(
            "column `{column}` has type {type_name}, which queries cannot show; cast it, \
             e.g. `{column}::text`"
        ),
    };
    let be_i64 = |b: &[u8]| {
        b.try_into()
            .map(i64::from_be_bytes)
            .map_err(|_| unsupported())
    };
    Ok(match type_name {
        "NUMERIC" => numeric(bytes).ok_or_else(unsupported)?,
        "TIMESTAMPTZ" => Value::String(timestamp(be_i64(bytes)?, "Z")),
        "TIMESTAMP" => Value::String(timestamp(be_i64(bytes)?, "")),
        "DATE" => {
            let days = i32::from_be_bytes(bytes.try_into().map_err(|_| unsupported())?);
            Value::String(date(i64::from(days)))
        }
        "OID" => Value::from(u32::from_be_bytes(
            bytes.try_into().map_err(|_| unsupported())?,
        )),
        "UUID" if bytes.len() == 16 => {
            let h = hex(bytes);
            Value::String(format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            ))
        }
        "BYTEA" => Value::String(format!("\\x{}", hex(bytes))),
        "JSON" => serde_json::from_slice(bytes).map_err(|_| unsupported())?,
        "JSONB" if bytes.first() == Some(&1) => {
            serde_json::from_slice(&bytes[1..]).map_err(|_| unsupported())?
        }
        _ if matches!(kind, PgTypeKind::Enum(_)) => {
            Value::String(String::from_utf8(bytes.to_vec()).map_err(|_| unsupported())?)
        }
        _ => return Err(unsupported()),
    })
}

/// NUMERIC: `ndigits, weight, sign, dscale` (i16 each), then base-10000 digits.
/// Whole numbers that fit become JSON integers, others the nearest float.
fn numeric(b: &[u8]) -> Option<Value> {
    let word = |i: usize| {
        b.get(2 * i..2 * i + 2)
            .map(|w| i16::from_be_bytes([w[0], w[1]]))
    };
    let ndigits = usize::try_from(word(0)?).ok()?;
    let weight = i64::from(word(1)?);
    let sign = word(2)? as u16;
    let dscale = word(3)?;
    match sign {
        0xC000 => return Some(Value::String("NaN".into())),
        0xD000 => return Some(Value::String("Infinity".into())),
        0xF000 => return Some(Value::String("-Infinity".into())),
        _ => {}
    }
    let digits: Vec<i64> = (0..ndigits)
        .map(|k| word(4 + k).map(i64::from))
        .collect::<Option<_>>()?;
    // Digit k is worth 10000^(weight - k).
    let mut int_part = String::new();
    let mut frac_part = String::new();
    for (k, d) in digits.iter().enumerate() {
        let exp = weight - k as i64;
        if exp >= 0 {
            if int_part.is_empty() {
                int_part = d.to_string();
            } else {
                int_part.push_str(&format!("{d:04}"));
            }
        } else {
            // Leading zero groups between the point and this digit.
            let missing = (-exp - 1) as usize - frac_part.len() / 4;
            frac_part.push_str(&"0000".repeat(missing));
            frac_part.push_str(&format!("{d:04}"));
        }
    }
    // Trailing zero groups of the integer part not sent.
    let last_exp = weight - digits.len() as i64 + 1;
    if !int_part.is_empty() && last_exp > 0 {
        int_part.push_str(&"0000".repeat(last_exp as usize));
    }
    if int_part.is_empty() {
        int_part.push('0');
    }
    let negative = sign == 0x4000;
    let text = format!(
        "{}{}.{}",
        if negative { "-" } else { "" },
        int_part,
        if frac_part.is_empty() {
            "0"
        } else {
            &frac_part
        }
    );
    if dscale == 0 {
        let whole = format!("{}{}", if negative { "-" } else { "" }, int_part);
        if let Ok(i) = whole.parse::<i64>() {
            return Some(Value::from(i));
        }
    }
    text.parse::<f64>().ok().map(float)
}

/// Microseconds since 2000-01-01 00:00 as ISO 8601 with milliseconds, the one format of
/// timestamps on both backends (SQLite's `strftime('%Y-%m-%dT%H:%M:%fZ')`).
fn timestamp(micros: i64, zone: &str) -> String {
    match micros {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let s = secs.rem_euclid(86_400);
    let time = format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
    format!("{}T{time}.{:03}{zone}", date(days), frac / 1000)
}

/// Days since 2000-01-01 as `YYYY-MM-DD` (proleptic Gregorian; H. Hinnant's civil_from_days).
fn date(days_since_2000: i64) -> String {
    match days_since_2000 {
        d if d == i64::from(i32::MAX) => return "infinity".into(),
        d if d == i64::from(i32::MIN) => return "-infinity".into(),
        _ => {}
    }
    let z = days_since_2000 + 10_957 + 719_468; // to days since 1970, then since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(words: &[i16]) -> Value {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        numeric(&bytes).unwrap()
    }

    #[test]
    fn numeric_wire_format() {
        // 12345678 = [1234, 5678], weight 1
        assert_eq!(num(&[2, 1, 0, 0, 1234, 5678]), Value::from(12_345_678));
        // 20000 = [2], weight 1 (trailing zero group not sent)
        assert_eq!(num(&[1, 1, 0, 0, 2]), Value::from(20_000));
        // -1.5 = [1, 5000], weight 0, dscale 1
        assert_eq!(num(&[2, 0, 0x4000, 1, 1, 5000]), Value::from(-1.5));
        // 0.00012 = 0.0001 2000: [1, 2000], weight -1
        assert_eq!(num(&[2, -1, 0, 5, 1, 2000]), Value::from(0.00012));
        // 0.000012 = 0.0000 1200: [1200], weight -2
        assert_eq!(num(&[1, -2, 0, 6, 1200]), Value::from(0.000012));
        // zero
        assert_eq!(num(&[0, 0, 0, 0]), Value::from(0));
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(date(0), "2000-01-01");
        assert_eq!(date(-1), "1999-12-31");
        assert_eq!(date(60), "2000-03-01");
        assert_eq!(timestamp(0, "Z"), "2000-01-01T00:00:00.000Z");
        // 2026-11-01T12:34:56.5Z
        let days = 9801; // 2000-01-01 + 9801 days
        assert_eq!(date(days), "2026-11-01");
        let micros = (days * 86_400 + 12 * 3600 + 34 * 60 + 56) * 1_000_000 + 500_000;
        assert_eq!(timestamp(micros, "Z"), "2026-11-01T12:34:56.500Z");
        assert_eq!(timestamp(micros + 999, "Z"), "2026-11-01T12:34:56.500Z");
    }
}
