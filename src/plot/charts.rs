//! Heatmaps with a diverging colour bar and the attribution-vs-activation scatter, each
//! drawn as one SVG string (debias bars: `debias_bars.rs`).

use super::grid::Heatmap;
use super::number::sig3;
use super::svg::{dark, diverging, short_number, text_width, Anchor, Svg, CATEGORICAL};
use patchsweep_coordinator::store::ScatterSet;

const TITLE: f64 = 14.0;
const SMALL: f64 = 10.0;
const TICK: f64 = 10.0;

/// A heatmap: y = layer (0 at the bottom), x = position or head, colour = normalized
/// effect (`cells_v`'s ratio of sums) on a blue-white-red scale from `-h.limit` to
/// `+h.limit` (shared by every heatmap of the sweep), with the colour bar on the right
/// saying so.
pub fn heatmap(h: &Heatmap) -> String {
    let cols = h.x_ticks.len().max(1);
    let rows = h.y_ticks.len().max(1);
    let tick_w = h
        .x_ticks
        .iter()
        .map(|(a, b)| text_width(a, TICK).max(text_width(b, TICK)))
        .fold(0.0, f64::max);
    let cell_w = if h.x_title == "head" || h.x_title == "neuron" {
        // Wide enough for the values while there are few heads (SmolLM2: 9, LLaMA: 32).
        if cols <= 16 {
            38.0
        } else {
            26.0
        }
    } else {
        (tick_w + 8.0).clamp(40.0, 120.0)
    };
    let cell_h = if rows > 40 { 12.0 } else { 16.0 };
    let rotate = tick_w + 4.0 > cell_w;
    let left = 62.0;
    let top = 70.0;
    let grid_w = cell_w * cols as f64;
    let grid_h = cell_h * rows as f64;
    let legend_h = if h.legend.is_empty() { 0.0 } else { 16.0 };
    let bottom = (if rotate { tick_w * 0.75 + 40.0 } else { 52.0 }) + legend_h;
    let bar_x = left + grid_w + 18.0;
    let width = (bar_x + 80.0)
        .max(text_width(&h.title, TITLE) + 20.0)
        .max(text_width(&h.subtitle, SMALL) + 20.0)
        .max(text_width(&h.legend, SMALL) + 20.0)
        .max(text_width(&shared_scale_note(h.limit), SMALL) + 20.0);
    let height = top + grid_h + bottom;
    let mut svg = Svg::new(width, height);
    svg.bold(10.0, 20.0, TITLE, Anchor::Start, &h.title);
    svg.text(10.0, 38.0, SMALL, Anchor::Start, &h.subtitle);
    let scale = shared_scale_note(h.limit);
    svg.text(10.0, 52.0, SMALL, Anchor::Start, &scale);

    let limit = if h.limit > 0.0 && h.limit.is_finite() {
        h.limit
    } else {
        1.0
    };
    let show_values = cell_w >= 34.0 && cell_h >= 14.0;
    for (r, row) in h.values.iter().enumerate() {
        let y = top + grid_h - (r + 1) as f64 * cell_h;
        for (c, v) in row.iter().enumerate() {
            let x = left + c as f64 * cell_w;
            let tip = format!(
                "layer {}, {} {}: {}",
                h.y_ticks[r],
                h.x_ticks[c].0,
                h.x_ticks[c].1,
                v.map_or("not measured".into(), sig3)
            );
            match v {
                Some(v) => {
                    svg.rect_titled(x, y, cell_w, cell_h, &diverging(*v, limit), &tip);
                    if show_values {
                        let fill = if dark(*v, limit) {
                            "#ffffff"
                        } else {
                            "#333333"
                        };
                        svg.coloured(
                            x + cell_w / 2.0,
                            y + cell_h / 2.0 + 3.5,
                            9.0,
                            &cell_label(*v),
                            fill,
                        );
                    }
                }
                None => svg.rect_titled(x, y, cell_w, cell_h, "#e0e0e0", &tip),
            }
        }
    }
    svg.rect(left, top, grid_w, grid_h, "none", Some("#888888"));

    // y axis: layers, thinned so labels do not collide.
    let every = ((TICK + 2.0) / cell_h).ceil().max(1.0) as usize;
    for (r, label) in h.y_ticks.iter().enumerate() {
        if r % every != 0 {
            continue;
        }
        let y = top + grid_h - (r as f64 + 0.5) * cell_h;
        svg.text(left - 5.0, y + 3.5, TICK, Anchor::End, label);
    }
    svg.vertical_text(16.0, top + grid_h / 2.0, 12.0, &h.y_title);

    // x axis: position (label, token) or head.
    for (c, (a, b)) in h.x_ticks.iter().enumerate() {
        let x = left + (c as f64 + 0.5) * cell_w;
        let y = top + grid_h + 13.0;
        if rotate {
            let text = if b.is_empty() {
                a.clone()
            } else {
                format!("{a} {b}")
            };
            svg.rotated_text(x + 3.0, y - 4.0, TICK, -40.0, &text);
        } else {
            svg.text(x, y, TICK, Anchor::Middle, a);
            if !b.is_empty() {
                svg.grey(x, y + 12.0, TICK, b);
            }
        }
    }
    let x_title_y = height - 10.0 - legend_h;
    if !h.legend.is_empty() {
        svg.text(10.0, height - 8.0, SMALL, Anchor::Start, &h.legend);
    }
    svg.text(
        left + grid_w / 2.0,
        x_title_y,
        12.0,
        Anchor::Middle,
        &h.x_title,
    );

    colour_bar(&mut svg, bar_x, top, grid_h, limit, "normalized effect");
    svg.finish()
}

/// A cell's value as printed in it: two decimals (cells compare by column), a typographic
/// minus, and no `−0.00` for a tiny negative value.
fn cell_label(v: f64) -> String {
    let s = format!("{v:.2}");
    if s == "-0.00" {
        "0.00".into()
    } else {
        s.replace('-', "\u{2212}")
    }
}

/// What a heatmap says of its colour range, under its subtitle (the report says the same).
pub fn shared_scale_note(limit: f64) -> String {
    let l = super::number::sig3_trimmed(limit);
    format!("colour scale −{l} to +{l}: the same in every heatmap of this sweep")
}

/// A vertical colour bar from -limit (bottom) to +limit (top), with five ticks.
fn colour_bar(svg: &mut Svg, x: f64, top: f64, height: f64, limit: f64, title: &str) {
    let steps = 64;
    let h = height / steps as f64;
    for i in 0..steps {
        let v = limit * (1.0 - 2.0 * (i as f64 + 0.5) / steps as f64);
        svg.rect(
            x,
            top + i as f64 * h,
            14.0,
            h + 0.3,
            &diverging(v, limit),
            None,
        );
    }
    svg.rect(x, top, 14.0, height, "none", Some("#888888"));
    let mut marks = ticks(-limit, limit, 4);
    // The ends too, where no round tick is near them.
    if marks.last().is_none_or(|t| (limit - t) / limit > 0.15) {
        marks.push(limit);
        marks.insert(0, -limit);
    }
    for v in marks {
        let y = top + height * (limit - v) / (2.0 * limit);
        svg.line(x + 14.0, y, x + 17.0, y, "#555555", 1.0);
        svg.text(x + 19.0, y + 3.5, 9.0, Anchor::Start, &short_number(v));
    }
    svg.vertical_text(x + 70.0, top + height / 2.0, 11.0, title);
}

/// Nice round ticks covering [lo, hi].
pub fn ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let span = (hi - lo).abs().max(1e-12);
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= target as f64)
        .unwrap_or(10.0 * mag);
    let start = (lo / step).ceil() as i64;
    let end = (hi / step).floor() as i64;
    (start..=end).map(|k| k as f64 * step).collect()
}

/// Pearson correlation; `None` for fewer than two points or no variance.
pub fn pearson(xs: &[f64], ys: &[f64]) -> Option<f64> {
    let n = xs.len().min(ys.len());
    if n < 2 {
        return None;
    }
    let mx = xs.iter().sum::<f64>() / n as f64;
    let my = ys.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// The most points drawn; the correlation is always over all of them.
const MAX_POINTS: usize = 20_000;

/// Attribution estimate (y) against activation effect (x), one point per cell and pair,
/// coloured by component, with the line y = x, and the model and Pearson r in the title.
pub fn scatter(set: &ScatterSet, model: &str) -> String {
    let xs: Vec<f64> = set.points.iter().map(|p| p.activation).collect();
    let ys: Vec<f64> = set.points.iter().map(|p| p.attribution).collect();
    let r = pearson(&xs, &ys);
    let mut components: Vec<&str> = set.points.iter().map(|p| p.component.as_str()).collect();
    components.sort();
    components.dedup();

    let note = format!(
        "{} (x) vs {} (y): change of the metric, {} points, one per cell and pair",
        set.activation,
        set.attribution,
        set.points.len()
    );
    let r_text = r.map_or("n/a".to_string(), sig3);
    let title = format!("{model} · attribution vs activation (Pearson r = {r_text})");
    let (w, h) = (
        (text_width(&note, SMALL) + 20.0)
            .max(text_width(&title, TITLE) + 20.0)
            .max(560.0),
        470.0,
    );
    let (left, top, right, bottom) = (70.0, 56.0, 170.0, 50.0);
    let (pw, ph) = (560.0 - left - right, h - top - bottom);
    let lo = xs.iter().chain(&ys).copied().fold(f64::INFINITY, f64::min);
    let hi = xs
        .iter()
        .chain(&ys)
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo {
        let pad = (hi - lo) * 0.05;
        (lo - pad, hi + pad)
    } else {
        (-1.0, 1.0)
    };
    let (xlo, xhi) = padded(&xs, (lo, hi));
    let (ylo, yhi) = padded(&ys, (lo, hi));
    let sx = |v: f64| left + (v - xlo) / (xhi - xlo) * pw;
    let sy = |v: f64| top + ph - (v - ylo) / (yhi - ylo) * ph;

    let mut svg = Svg::new(w, h);
    svg.bold(10.0, 20.0, TITLE, Anchor::Start, &title);
    svg.text(10.0, 38.0, SMALL, Anchor::Start, &note);
    svg.rect(left, top, pw, ph, "#fcfcfc", Some("#888888"));
    for t in ticks(xlo, xhi, 6) {
        svg.line(sx(t), top + ph, sx(t), top + ph + 4.0, "#555555", 1.0);
        svg.text(
            sx(t),
            top + ph + 15.0,
            TICK,
            Anchor::Middle,
            &short_number(t),
        );
    }
    for t in ticks(ylo, yhi, 6) {
        svg.line(left - 4.0, sy(t), left, sy(t), "#555555", 1.0);
        svg.text(left - 6.0, sy(t) + 3.5, TICK, Anchor::End, &short_number(t));
    }
    // y = x where it crosses the plot, and the zero lines.
    let a = xlo.max(ylo);
    let b = xhi.min(yhi);
    if b > a {
        svg.dashed_line(sx(a), sy(a), sx(b), sy(b), "#999999");
    }
    if xlo < 0.0 && xhi > 0.0 {
        svg.line(sx(0.0), top, sx(0.0), top + ph, "#dddddd", 1.0);
    }
    if ylo < 0.0 && yhi > 0.0 {
        svg.line(left, sy(0.0), left + pw, sy(0.0), "#dddddd", 1.0);
    }
    let stride = set.points.len().div_ceil(MAX_POINTS).max(1);
    let radius = if set.points.len() > 3000 { 1.6 } else { 2.4 };
    for p in set.points.iter().step_by(stride) {
        let k = components
            .iter()
            .position(|c| *c == p.component)
            .unwrap_or(0);
        let colour = CATEGORICAL[k % CATEGORICAL.len()];
        svg.circle(sx(p.activation), sy(p.attribution), radius, colour, 0.55);
    }
    svg.text(
        left + pw / 2.0,
        h - 12.0,
        12.0,
        Anchor::Middle,
        "activation patching effect",
    );
    svg.vertical_text(16.0, top + ph / 2.0, 12.0, "attribution patching estimate");
    // Legend with the correlation per component.
    let lx = left + pw + 14.0;
    for (k, c) in components.iter().enumerate() {
        let (cx, cy): (Vec<f64>, Vec<f64>) = set
            .points
            .iter()
            .filter(|p| p.component == *c)
            .map(|p| (p.activation, p.attribution))
            .unzip();
        let y = top + 10.0 + k as f64 * 30.0;
        svg.circle(
            lx + 5.0,
            y - 3.5,
            4.0,
            CATEGORICAL[k % CATEGORICAL.len()],
            1.0,
        );
        svg.text(lx + 14.0, y, 11.0, Anchor::Start, c);
        let rc = pearson(&cx, &cy).map_or("n/a".into(), sig3);
        svg.text(
            lx + 14.0,
            y + 13.0,
            9.0,
            Anchor::Start,
            &format!("r = {rc}, n = {}", cx.len()),
        );
    }
    svg.finish()
}

/// The range of `v` padded by 5% on each side, or `fallback` when it has no spread.
fn padded(v: &[f64], fallback: (f64, f64)) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if lo.is_finite() && hi > lo {
        (lo - (hi - lo) * 0.05, hi + (hi - lo) * 0.05)
    } else {
        fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pearson_of_a_line_is_one() {
        let xs = [1.0, 2.0, 3.0];
        assert!((pearson(&xs, &[2.0, 4.0, 6.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((pearson(&xs, &[3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
        assert_eq!(pearson(&xs, &[1.0, 1.0, 1.0]), None);
    }

    #[test]
    fn cells_print_two_decimals_without_a_negative_zero() {
        assert_eq!(cell_label(-0.001), "0.00");
        assert_eq!(cell_label(-0.25), "\u{2212}0.25");
        assert_eq!(cell_label(0.5), "0.50");
    }

    #[test]
    fn ticks_are_round_and_inside() {
        assert_eq!(ticks(-1.0, 1.0, 4), vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        let t = ticks(0.03, 0.97, 5);
        assert!(t.iter().all(|v| (0.03..=0.97).contains(v)));
    }
}
