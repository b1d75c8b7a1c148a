//! 95% intervals: Wilson's for a share (k of n), Student's t for a mean of n values. Every
//! figure a researcher compares before and after an intervention carries one, with its n:
//! the held-out split is often a handful of prompts, where a difference of means can be noise.

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval (95%) of `k` successes in `n` trials; `(NaN, NaN)` when
/// `n = 0`.
pub fn wilson_interval(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let n_f = n as f64;
    let p = k as f64 / n_f;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n_f;
    let center = (p + z2 / (2.0 * n_f)) / denom;
    let half = Z95 * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denom;
    // Clamped to [0, 1] and to contain p (at k = 0 or k = n rounding can leave it out).
    (
        (center - half).max(0.0).min(p),
        (center + half).min(1.0).max(p),
    )
}

/// The two-sided 95% quantile of Student's t with `df` degrees of freedom: tabulated to
/// four decimals up to 30, the Cornish-Fisher expansion beyond (within 1e-4 there).
pub fn t95(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010,
        2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739,
        2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df - 1],
        _ => {
            let (z, v) = (Z95, df as f64);
            let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
            z + (z3 + z) / (4.0 * v)
                + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * v * v)
                + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * v * v * v)
        }
    }
}

/// The mean of `values` and its t-based 95% interval (`mean ± t95(n-1) · sd / √n`, sd with
/// n − 1); the interval is `None` below two values or when a value is not finite.
pub fn mean_interval(values: &[f64]) -> (f64, Option<(f64, f64)>) {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 || !values.iter().all(|v| v.is_finite()) {
        return (mean, None);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t95(n - 1) * (var / n as f64).sqrt();
    (mean, Some((mean - half, mean + half)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_published_values() {
        // Reference values: Newcombe (1998), table I: 81/263 → 0.2553–0.3662; 15/148 → 0.0624–0.1605.
        let (lo, hi) = wilson_interval(81, 263);
        assert!(
            (lo - 0.2553).abs() < 1e-4 && (hi - 0.3662).abs() < 1e-4,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson_interval(15, 148);
        assert!(
            (lo - 0.0624).abs() < 1e-4 && (hi - 0.1605).abs() < 1e-4,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson_interval(0, 10);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.2775).abs() < 1e-4, "{hi}");
        assert!(wilson_interval(0, 0).0.is_nan());
        for n in 1..200 {
            for k in [0, n] {
                let (lo, hi) = wilson_interval(k, n);
                let p = k as f64 / n as f64;
                assert!(lo <= p && p <= hi, "{k}/{n}: [{lo}, {hi}]");
            }
        }
    }

    #[test]
    fn t_quantiles_match_published_tables() {
        // Beyond the table: df 40, 60, 120 → 2.0211, 2.0003, 1.9799; and the normal's z.
        for (df, t) in [
            (1, 12.7062),
            (10, 2.2281),
            (30, 2.0423),
            (40, 2.0211),
            (60, 2.0003),
            (120, 1.9799),
        ] {
            assert!((t95(df) - t).abs() < 1e-4, "df {df}: {} vs {t}", t95(df));
        }
        assert!((t95(100_000) - Z95).abs() < 1e-4);
        assert!(t95(0).is_nan());
        // The expansion meets the table where they join.
        assert!((t95(31) - 2.0395).abs() < 1e-4, "{}", t95(31));
    }

    #[test]
    fn a_mean_interval_is_t_times_the_standard_error() {
        // 1, 2, 3, 4: mean 2.5, sd 1.2910, se 0.6455, t(3) 3.1824 → ±2.0542.
        let (m, ci) = mean_interval(&[1.0, 2.0, 3.0, 4.0]);
        let (lo, hi) = ci.unwrap();
        assert_eq!(m, 2.5);
        assert!(
            (hi - m - 2.0542).abs() < 1e-3 && (m - lo - 2.0542).abs() < 1e-3,
            "{lo} {hi}"
        );
        assert_eq!(
            mean_interval(&[3.0]),
            (3.0, None),
            "one value has no spread"
        );
        assert_eq!(mean_interval(&[1.0, f64::NAN]).1, None);
        let (_, same) = mean_interval(&[2.0, 2.0, 2.0]);
        assert_eq!(same, Some((2.0, 2.0)));
    }
}
