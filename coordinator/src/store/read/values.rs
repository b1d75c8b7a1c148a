//! The one conversion between database values and JSON, both ways: how the store writes a
//! float into a [`Value`] (both backends' decoders call [`float`]) and how a [`Value`] is
//! read back as a number or text (the read model's typed rows and `patchsweep export`).
//!
//! JSON has no NaN or infinities: the store writes them as the text `NaN`, `inf` and
//! `-inf`, and [`as_f64`] reads exactly those spellings back; any other text is no number.

use serde_json::Value;

/// A float as JSON; infinities and NaN (which JSON lacks) become text.
pub fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number)
}

/// An optional float as JSON, `None` as NULL.
pub fn opt_float(f: Option<f64>) -> Value {
    f.map_or(Value::Null, float)
}

/// The float [`float`] wrote as text, if `s` is one (`NaN`, `inf`, `-inf`).
pub fn non_finite(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// A number (integer or float), or a non-finite float written as text.
pub fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => non_finite(s),
        _ => None,
    }
}

/// An integer (floats are not integers).
pub fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64()
}

/// A value as text: strings as they are, anything else as its JSON text; NULL is `None`.
pub fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_round_trip_through_json() {
        for f in [
            0.0,
            -1.5,
            1e-300,
            f64::MAX,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let back = as_f64(&float(f)).unwrap();
            assert!(back == f || (f.is_nan() && back.is_nan()), "{f}");
        }
        assert_eq!(float(f64::INFINITY), json!("inf"));
        assert_eq!(as_f64(&json!(3)), Some(3.0));
        assert_eq!(as_f64(&json!("1.5")), None);
        assert_eq!(as_f64(&Value::Null), None);
    }

    #[test]
    fn integers_and_text() {
        assert_eq!(as_i64(&json!(7)), Some(7));
        assert_eq!(as_i64(&json!(7.0)), None);
        assert_eq!(as_text(&json!("a")), Some("a".into()));
        assert_eq!(as_text(&json!(2.5)), Some("2.5".into()));
        assert_eq!(as_text(&Value::Null), None);
    }
}
