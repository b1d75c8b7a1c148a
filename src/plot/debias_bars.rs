//! Debias bars: for one (debias section, metric), every (intervention, split) as the
//! metric before, after, and after the same intervention on matched random components,
//! with each group's n, 95% intervals where the store allows one, and which way is better.
//!
//! # n and intervals
//! `debias_v` keeps each bias metric's n and the 95% intervals of before and after, as the
//! worker measured them (Student's t over the per-prompt or per-pair values for the means,
//! Wilson for the share; over the text's chunks for the neutral text's perplexity, on the
//! log scale, and agreement). Rows stored before those columns existed have none: their n comes
//! from the split (`debias_splits` joined with `pairs`, [`DebiasSplitSize`]: distinct clean
//! prompts for the two means, pairs with a stereotyped side for `stereotype_win_share`, and an
//! upper bound for `total_effect`, whose anti-stereotypical swaps are a subset of them), and
//! only a share gets an interval (Wilson, k = share × n); the neutral text's metrics of such
//! rows have no n and no interval.

use patchsweep_coordinator::store::{DebiasRow, DebiasSplitSize};
use patchsweep_engine::interval::wilson_interval;

use super::charts::ticks;
use super::number::{interval_sig3, sig3};
use super::svg::{short_number, text_width, Anchor, Svg, CATEGORICAL};

const TITLE: f64 = 14.0;
const SMALL: f64 = 10.0;
const TICK: f64 = 10.0;

/// Which way a debias metric is better, as the figure and the report say it.
pub fn better(metric: &str) -> Option<&'static str> {
    Some(match metric {
        "mean_logit_diff" | "total_effect" => "closer to 0 is better",
        "mean_abs_logit_diff" | "perplexity" => "lower is better",
        "stereotype_win_share" => "closer to 0.5 is better",
        "top1_agreement" => "higher is better (1: unchanged)",
        _ => return None,
    })
}

/// The n behind one bar group: how many, and of what.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupSize {
    pub n: i64,
    /// `clean prompts`, `stereotyped pairs`, …; `at_most` when n bounds the count from above.
    pub unit: &'static str,
    pub at_most: bool,
}

impl GroupSize {
    pub fn label(&self) -> String {
        format!(
            "n {} {} {}",
            if self.at_most { "≤" } else { "=" },
            self.n,
            self.unit
        )
    }
}

/// What a bias metric averages over.
fn unit_of(metric: &str) -> &'static str {
    match metric {
        "mean_logit_diff" | "mean_abs_logit_diff" => "clean prompts",
        "stereotype_win_share" => "stereotyped prompts",
        "total_effect" => "swapped pairs",
        "perplexity" | "top1_agreement" => "text chunks",
        _ => "pairs",
    }
}

/// The n of `metric` on `split` of debias section `debias`, from the split's sizes; `None`
/// for the neutral text (its chunks are not stored) or a split the store has no sizes for.
pub fn group_size(
    sizes: &[DebiasSplitSize],
    debias: &str,
    split: &str,
    metric: &str,
) -> Option<GroupSize> {
    let s = sizes
        .iter()
        .find(|s| s.debias == debias && s.part == split)?;
    let (n, at_most) = match metric {
        "mean_logit_diff" | "mean_abs_logit_diff" => (s.clean_prompts, false),
        "stereotype_win_share" => (s.stereotyped, false),
        "total_effect" => (s.stereotyped, true),
        _ => (s.pairs, false),
    };
    // Figures stored before n was kept counted the share over pairs.
    let unit = match metric {
        "stereotype_win_share" => "stereotyped pairs",
        _ => unit_of(metric),
    };
    Some(GroupSize { n, unit, at_most })
}

/// The n of one row: as stored with it (exact), else from the split's sizes.
pub fn row_size(r: &DebiasRow, sizes: &[DebiasSplitSize], metric: &str) -> Option<GroupSize> {
    match r.n {
        Some(n) => Some(GroupSize {
            n,
            unit: unit_of(metric),
            at_most: false,
        }),
        None => group_size(sizes, &r.debias, &r.split, metric),
    }
}

/// The Wilson 95% interval of a share measured on `size` (exact n only), else `None`: for
/// rows stored without their intervals.
pub fn interval(metric: &str, value: f64, size: Option<&GroupSize>) -> Option<(f64, f64)> {
    let size = size.filter(|s| !s.at_most && s.n > 0)?;
    if metric != "stereotype_win_share" || !(0.0..=1.0).contains(&value) {
        return None;
    }
    let k = (value * size.n as f64).round() as usize;
    Some(wilson_interval(k, size.n as usize))
}

/// The 95% intervals of a row's `[before, after]`: as stored with it, else (rows stored
/// before intervals were kept) what its n alone gives ([`interval`]).
pub fn row_intervals(
    r: &DebiasRow,
    metric: &str,
    size: Option<&GroupSize>,
) -> [Option<(f64, f64)>; 2] {
    [
        r.before_ci.or_else(|| interval(metric, r.before, size)),
        r.after_ci.or_else(|| interval(metric, r.after, size)),
    ]
}

const NOTE: &str = "bars: the metric before and after intervening on the components found; \
     control: the same on matched random sets (mean, whisker 5-95% of the sets)";
const NOTE_INTERVALS: &str = "error bars: 95% intervals (Student's t over prompts or pairs for \
     means, Wilson for shares, t over chunks for the neutral text)";

/// One (debias section, metric) figure of a sweep of `model`.
pub fn chart(
    model: &str,
    debias: &str,
    metric: &str,
    rows: &[&DebiasRow],
    sizes: &[DebiasSplitSize],
) -> String {
    let series: [(&str, &str); 3] = [
        ("before", "#9e9e9e"),
        ("after", CATEGORICAL[0]),
        ("control mean", CATEGORICAL[1]),
    ];
    let has_control = rows.iter().any(|r| r.control_after.is_some());
    let bars_per_group = if has_control { 3 } else { 2 };
    let bar_w = 22.0;
    let group_sizes: Vec<Option<GroupSize>> =
        rows.iter().map(|r| row_size(r, sizes, metric)).collect();
    let n_labels: Vec<String> = group_sizes
        .iter()
        .zip(rows)
        .map(|(g, r)| match g {
            Some(g) => g.label(),
            None if r.split == "neutral" => "neutral text".into(),
            None => "n not stored".into(),
        })
        .collect();
    let widest = rows
        .iter()
        .flat_map(|r| [r.intervention.as_str(), r.split.as_str()])
        .chain(n_labels.iter().map(String::as_str))
        .map(|t| text_width(t, TICK))
        .fold(0.0, f64::max);
    let group_w = (bar_w * bars_per_group as f64 + 26.0).max(widest + 14.0);
    let (left, top, bottom) = (70.0, 70.0, 84.0);
    let ph = 260.0;
    let pw = group_w * rows.len().max(1) as f64;
    let cue = better(metric);
    let title = match cue {
        Some(c) => format!("{model} · debias {debias} · {metric} ({c})"),
        None => format!("{model} · debias {debias} · {metric}"),
    };
    let w = (left + pw + 190.0)
        .max(text_width(NOTE, SMALL) + 20.0)
        .max(text_width(NOTE_INTERVALS, SMALL) + 20.0)
        .max(text_width(&title, TITLE) + 20.0);
    let h = top + ph + bottom;
    let intervals: Vec<[Option<(f64, f64)>; 2]> = rows
        .iter()
        .zip(&group_sizes)
        .map(|(r, g)| row_intervals(r, metric, g.as_ref()))
        .collect();
    let values: Vec<f64> = rows
        .iter()
        .flat_map(|r| {
            [
                Some(r.before),
                Some(r.after),
                r.control_after,
                r.control_p05,
                r.control_p95,
            ]
        })
        .flatten()
        .chain(
            intervals
                .iter()
                .flatten()
                .flatten()
                .flat_map(|(a, b)| [*a, *b]),
        )
        .filter(|v| v.is_finite())
        .collect();
    let lo = values.iter().copied().fold(0.0f64, f64::min);
    let hi = values.iter().copied().fold(0.0f64, f64::max);
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 1.0, hi + 1.0)
    };
    let pad = (hi - lo) * 0.08;
    let (lo, hi) = (
        if lo < 0.0 { lo - pad } else { lo },
        if hi > 0.0 { hi + pad } else { hi },
    );
    let sy = |v: f64| top + ph - (v - lo) / (hi - lo) * ph;

    let mut svg = Svg::new(w, h);
    svg.bold(10.0, 20.0, TITLE, Anchor::Start, &title);
    svg.text(10.0, 38.0, SMALL, Anchor::Start, NOTE);
    svg.text(10.0, 52.0, SMALL, Anchor::Start, NOTE_INTERVALS);
    for t in ticks(lo, hi, 6) {
        svg.line(left, sy(t), left + pw, sy(t), "#eeeeee", 1.0);
        svg.text(left - 6.0, sy(t) + 3.5, TICK, Anchor::End, &short_number(t));
    }
    svg.line(left, sy(0.0), left + pw, sy(0.0), "#666666", 1.0);
    for (g, r) in rows.iter().enumerate() {
        let gx = left + g as f64 * group_w + (group_w - bar_w * bars_per_group as f64) / 2.0;
        let vals = [Some(r.before), Some(r.after), r.control_after];
        for (k, v) in vals.iter().take(bars_per_group).enumerate() {
            let Some(v) = v else { continue };
            let x = gx + k as f64 * bar_w;
            let (y0, y1) = (sy(v.max(0.0)), sy(v.min(0.0)));
            let ci = intervals[g]
                .get(k)
                .copied()
                .flatten()
                .map_or(String::new(), |ci| format!(", 95% {}", interval_sig3(ci)));
            svg.rect_titled(
                x,
                y0,
                bar_w - 3.0,
                (y1 - y0).max(0.5),
                series[k].1,
                &format!(
                    "{} {} {}: {}{ci}, {} ({})",
                    r.intervention,
                    r.split,
                    series[k].0,
                    sig3(*v),
                    n_labels[g],
                    r.components
                ),
            );
            if let Some((a, b)) = intervals[g].get(k).copied().flatten() {
                whisker(&mut svg, x + (bar_w - 3.0) / 2.0, sy(a), sy(b), "#111111");
            }
        }
        // A range under a pixel tall is no whisker (and a zero-length stroke fails to render).
        if let (Some(p05), Some(p95), true) = (r.control_p05, r.control_p95, has_control) {
            let x = gx + 2.0 * bar_w + (bar_w - 3.0) / 2.0;
            whisker(&mut svg, x, sy(p05), sy(p95), "#555555");
        }
        let cx = left + (g as f64 + 0.5) * group_w;
        svg.text(cx, top + ph + 15.0, TICK, Anchor::Middle, &r.intervention);
        svg.grey(cx, top + ph + 28.0, TICK, &r.split);
        svg.grey(cx, top + ph + 41.0, TICK, &n_labels[g]);
    }
    svg.rect(left, top, pw, ph, "none", Some("#888888"));
    let y_title = match cue {
        Some(c) => format!("{metric} ({c})"),
        None => metric.to_string(),
    };
    svg.vertical_text(16.0, top + ph / 2.0, 12.0, &y_title);
    let lx = left + pw + 16.0;
    for (k, (name, colour)) in series.iter().take(bars_per_group).enumerate() {
        let y = top + 10.0 + k as f64 * 18.0;
        svg.rect(lx, y - 9.0, 12.0, 12.0, colour, None);
        svg.text(lx + 18.0, y + 1.0, 11.0, Anchor::Start, name);
    }
    let mut y = top + 10.0 + bars_per_group as f64 * 18.0 + 6.0;
    if intervals.iter().flatten().any(Option::is_some) {
        whisker(&mut svg, lx + 6.0, y + 2.0, y - 10.0, "#111111");
        svg.text(lx + 18.0, y, 11.0, Anchor::Start, "95% interval");
        y += 18.0;
    }
    if has_control
        && rows
            .iter()
            .any(|r| r.control_p05.is_some() && r.control_p95.is_some())
    {
        whisker(&mut svg, lx + 6.0, y + 2.0, y - 10.0, "#555555");
        svg.text(lx + 18.0, y, 11.0, Anchor::Start, "controls 5-95%");
    }
    svg.finish()
}

/// A vertical error bar with caps from `y0` to `y1`; nothing when under a pixel tall.
fn whisker(svg: &mut Svg, x: f64, y0: f64, y1: f64, colour: &str) {
    if (y0 - y1).abs() < 1.0 {
        return;
    }
    svg.line(x, y0, x, y1, colour, 1.2);
    for y in [y0, y1] {
        svg.line(x - 4.0, y, x + 4.0, y, colour, 1.2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(split: &str, metric: &str, before: f64, after: f64) -> DebiasRow {
        DebiasRow {
            debias: "top".into(),
            intervention: "ablation-zero".into(),
            components: "head_out L1H0".into(),
            split: split.into(),
            metric: metric.into(),
            before,
            after,
            control_after: Some(after + 0.1),
            control_components: None,
            control_sets: Some(20),
            control_p05: Some(after),
            control_p95: Some(after + 0.2),
            control_percentile: Some(5.0),
            n: None,
            before_ci: None,
            after_ci: None,
            control_ci: None,
        }
    }

    fn sizes() -> Vec<DebiasSplitSize> {
        vec![DebiasSplitSize {
            debias: "top".into(),
            part: "heldout".into(),
            pairs: 40,
            clean_prompts: 30,
            stereotyped: 20,
        }]
    }

    #[test]
    fn each_metric_counts_its_own_n() {
        let s = sizes();
        let n = |m: &str| group_size(&s, "top", "heldout", m).map(|g| g.label());
        assert_eq!(n("mean_logit_diff").unwrap(), "n = 30 clean prompts");
        assert_eq!(
            n("stereotype_win_share").unwrap(),
            "n = 20 stereotyped pairs"
        );
        assert_eq!(n("total_effect").unwrap(), "n ≤ 20 swapped pairs");
        assert_eq!(group_size(&s, "top", "neutral", "perplexity"), None);
    }

    #[test]
    fn shares_get_wilson_intervals_and_means_none() {
        let g = group_size(&sizes(), "top", "heldout", "stereotype_win_share");
        let (lo, hi) = interval("stereotype_win_share", 0.75, g.as_ref()).unwrap();
        let (wlo, whi) = wilson_interval(15, 20);
        assert_eq!((lo, hi), (wlo, whi));
        assert!(lo < 0.75 && 0.75 < hi);
        let g = group_size(&sizes(), "top", "heldout", "mean_logit_diff");
        assert_eq!(interval("mean_logit_diff", 0.75, g.as_ref()), None);
    }

    #[test]
    fn stored_n_and_intervals_come_first() {
        let mut r = row("heldout", "mean_logit_diff", -1.2, -0.4);
        r.n = Some(7);
        r.before_ci = Some((-1.9, -0.5));
        r.after_ci = Some((-0.8, 0.0));
        let svg = chart("m", "top", "mean_logit_diff", &[&r], &sizes());
        assert!(svg.contains(">n = 7 clean prompts</text>"), "{svg}");
        assert!(svg.contains(", 95% [-1.90, -0.500]"), "{svg}");
        assert!(svg.contains(", 95% [-0.800, 0]"), "{svg}");
        // A row stored without them: the split's n, and no interval on a mean.
        let old = row("heldout", "mean_logit_diff", -1.2, -0.4);
        let svg = chart("m", "top", "mean_logit_diff", &[&old], &sizes());
        assert!(svg.contains(">n = 30 clean prompts</text>"), "{svg}");
        assert!(!svg.contains(", 95% ["), "{svg}");
    }

    #[test]
    fn the_chart_says_n_direction_and_draws_the_intervals() {
        let r = row("heldout", "stereotype_win_share", 0.75, 0.55);
        let svg = chart(
            "SmolLM2-135M",
            "top",
            "stereotype_win_share",
            &[&r],
            &sizes(),
        );
        assert!(
            svg.contains(
                "SmolLM2-135M · debias top · stereotype_win_share (closer to 0.5 is better)"
            ),
            "{svg}"
        );
        assert!(svg.contains(">n = 20 stereotyped pairs</text>"), "{svg}");
        assert!(svg.contains(">95% interval</text>"), "{svg}");
        assert!(svg.contains(">controls 5-95%</text>"), "{svg}");
        let (lo, hi) = wilson_interval(15, 20);
        assert!(
            svg.contains(&format!("95% [{}, {}]", sig3(lo), sig3(hi))),
            "{svg}"
        );
        let neutral = row("neutral", "perplexity", 20.0, 21.0);
        let svg = chart("m", "top", "perplexity", &[&neutral], &sizes());
        assert!(svg.contains("(lower is better)") && svg.contains(">neutral text</text>"));
        assert!(!svg.contains(">95% interval</text>"));
    }
}
