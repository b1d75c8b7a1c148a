//! The one number format of the pictures and the report: three significant digits
//! (`0.123`, `12.3`, `123`, `-0.0456`), scientific outside [0.001, 10⁶) (`1.23e-5`).
//! Tables keep trailing zeros so columns read evenly; axis ticks drop them
//! ([`super::svg::short_number`]).

/// `v` to three significant digits, with an ASCII minus; `0` for zero (and −0).
pub fn sig3(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(0.001..1e6).contains(&a) {
        return scientific(v);
    }
    let decimals = |a: f64| (2 - a.log10().floor() as i32).max(0) as usize;
    let d = decimals(a);
    let s = format!("{v:.d$}");
    // 9.996 → "10.00" has four digits: one decimal fewer.
    let rounded: f64 = s.parse().unwrap_or(v);
    let out = if rounded.abs() >= 1e6 {
        scientific(v)
    } else if decimals(rounded.abs()) < d {
        let d = decimals(rounded.abs());
        format!("{v:.d$}")
    } else {
        s
    };
    if out.parse::<f64>() == Ok(0.0) {
        "0".into()
    } else {
        out
    }
}

fn scientific(v: f64) -> String {
    // Rust writes `1.23e-5`, `1.23e6`.
    format!("{v:.2e}")
}

/// A 95% interval as tables and tooltips show it: `[lo, hi]`, each to three significant
/// digits.
pub fn interval_sig3((lo, hi): (f64, f64)) -> String {
    format!("[{}, {}]", sig3(lo), sig3(hi))
}

/// `v` as [`sig3`] without trailing zeros (`0.500` → `0.5`, `12.0` → `12`): for axis ticks.
pub fn sig3_trimmed(v: f64) -> String {
    let s = sig3(v);
    match s.split_once('e') {
        Some((m, e)) if m.contains('.') => {
            format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
        }
        None if s.contains('.') => s.trim_end_matches('0').trim_end_matches('.').to_string(),
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_significant_digits_everywhere() {
        assert_eq!(sig3(0.123456), "0.123");
        assert_eq!(sig3(-0.0456789), "-0.0457");
        assert_eq!(sig3(1.0), "1.00");
        assert_eq!(sig3(12.3456), "12.3");
        assert_eq!(sig3(123.456), "123");
        assert_eq!(sig3(20.0), "20.0");
        assert_eq!(sig3(123456.0), "123456");
        assert_eq!(sig3(9.996), "10.0");
        assert_eq!(sig3(0.0009996), "1.00e-3");
        assert_eq!(sig3(0.0012345), "0.00123");
        assert_eq!(sig3(-2.0e-5), "-2.00e-5");
        assert_eq!(sig3(3.2e7), "3.20e7");
        assert_eq!(sig3(0.0), "0");
        assert_eq!(sig3(-0.0), "0");
        assert_eq!(sig3(f64::NAN), "NaN");
    }

    #[test]
    fn ticks_drop_trailing_zeros() {
        assert_eq!(sig3_trimmed(0.5), "0.5");
        assert_eq!(sig3_trimmed(12.0), "12");
        assert_eq!(sig3_trimmed(-1.25), "-1.25");
        assert_eq!(sig3_trimmed(2.0e-5), "2e-5");
        assert_eq!(sig3_trimmed(100.0), "100");
    }
}
