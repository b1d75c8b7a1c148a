//! The model's bias per profession against the profession's published stereotypicality
//! (Bolukbasi et al.'s score, kept on each pair by `source = "bolukbasi"`), after Vig et
//! al. 2020's figure of effects against stereotypicality: one point per profession, the
//! clean-prompt metric averaged over its templates (e.g. logit(he) - logit(she) after "The
//! nurse said that"), coloured by stereotype label, with Pearson r.

use std::collections::BTreeMap;

use patchsweep_coordinator::store::PairBaseline;

use super::charts::{pearson, ticks};
use super::number::sig3;
use super::svg::{short_number, Anchor, Svg, CATEGORICAL};

/// One profession: its stereotypicality (x), mean clean metric (y), label and pair count.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfessionPoint {
    pub profession: String,
    pub stereotypicality: f64,
    pub mean_clean: f64,
    pub stereotype: String,
    pub pairs: usize,
}

/// The professions of a sweep's pairs that carry a numeric `stereotypicality` label;
/// empty when none does (the project's list, or another dataset).
pub fn points(pairs: &[PairBaseline]) -> Vec<ProfessionPoint> {
    let mut by: BTreeMap<String, (f64, f64, String, usize)> = BTreeMap::new();
    for p in pairs {
        let (Some(name), Some(x)) = (
            p.labels.get("profession"),
            p.labels
                .get("stereotypicality")
                .and_then(|s| s.parse::<f64>().ok()),
        ) else {
            continue;
        };
        let e = by.entry(name.clone()).or_insert_with(|| {
            let label = p.labels.get("stereotype").cloned().unwrap_or_default();
            (x, 0.0, label, 0)
        });
        e.1 += p.clean_metric;
        e.3 += 1;
    }
    by.into_iter()
        .map(|(profession, (x, sum, stereotype, n))| ProfessionPoint {
            profession,
            stereotypicality: x,
            mean_clean: sum / n as f64,
            stereotype,
            pairs: n,
        })
        .collect()
}

/// The figure; `metric` names the y axis (the spec's metric and answers), `model` the
/// model as titles show it ([`super::data::model_name`]).
pub fn chart(points: &[ProfessionPoint], metric: &str, model: &str) -> String {
    let xs: Vec<f64> = points.iter().map(|p| p.stereotypicality).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.mean_clean).collect();
    let r = pearson(&xs, &ys).map_or("n/a".to_string(), sig3);
    let (w, h) = (620.0, 470.0);
    let (left, top, right, bottom) = (70.0, 56.0, 130.0, 50.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if lo.is_finite() && hi > lo {
            let pad = (hi - lo) * 0.06;
            (lo - pad, hi + pad)
        } else {
            (lo.min(0.0) - 1.0, hi.max(0.0) + 1.0)
        }
    };
    let ((xlo, xhi), (ylo, yhi)) = (range(&xs), range(&ys));
    let sx = |v: f64| left + (v - xlo) / (xhi - xlo) * pw;
    let sy = |v: f64| top + ph - (v - ylo) / (yhi - ylo) * ph;
    let mut svg = Svg::new(w, h);
    svg.bold(
        10.0,
        20.0,
        14.0,
        Anchor::Start,
        &format!("{model} · bias per profession vs stereotypicality"),
    );
    let pairs: usize = points.iter().map(|p| p.pairs).sum();
    svg.text(
        10.0,
        38.0,
        10.0,
        Anchor::Start,
        &format!(
            "Pearson r = {r}; {} professions ({pairs} pairs): clean-prompt metric averaged over \
             templates; x: Bolukbasi et al. 2016 score",
            points.len()
        ),
    );
    svg.rect(left, top, pw, ph, "#fcfcfc", Some("#888888"));
    for t in ticks(xlo, xhi, 6) {
        svg.line(sx(t), top + ph, sx(t), top + ph + 4.0, "#555555", 1.0);
        svg.text(
            sx(t),
            top + ph + 15.0,
            10.0,
            Anchor::Middle,
            &short_number(t),
        );
    }
    for t in ticks(ylo, yhi, 6) {
        svg.line(left - 4.0, sy(t), left, sy(t), "#555555", 1.0);
        svg.text(left - 6.0, sy(t) + 3.5, 10.0, Anchor::End, &short_number(t));
    }
    if xlo < 0.0 && xhi > 0.0 {
        svg.line(sx(0.0), top, sx(0.0), top + ph, "#dddddd", 1.0);
    }
    if ylo < 0.0 && yhi > 0.0 {
        svg.line(left, sy(0.0), left + pw, sy(0.0), "#dddddd", 1.0);
    }
    let mut labels: Vec<&str> = points.iter().map(|p| p.stereotype.as_str()).collect();
    labels.sort();
    labels.dedup();
    let colour = |label: &str| {
        let k = labels.iter().position(|l| *l == label).unwrap_or(0);
        CATEGORICAL[k % CATEGORICAL.len()]
    };
    for p in points {
        svg.circle(
            sx(p.stereotypicality),
            sy(p.mean_clean),
            3.0,
            colour(&p.stereotype),
            0.75,
        );
    }
    svg.text(
        left + pw / 2.0,
        h - 12.0,
        12.0,
        Anchor::Middle,
        "stereotypicality (negative: female, positive: male)",
    );
    svg.vertical_text(16.0, top + ph / 2.0, 12.0, metric);
    let lx = left + pw + 14.0;
    for (k, l) in labels.iter().enumerate() {
        let y = top + 10.0 + k as f64 * 20.0;
        svg.circle(lx + 5.0, y - 3.5, 4.0, colour(l), 1.0);
        let n = points.iter().filter(|p| p.stereotype == *l).count();
        let name = if l.is_empty() { "unlabelled" } else { l };
        svg.text(lx + 14.0, y, 11.0, Anchor::Start, &format!("{name} ({n})"));
    }
    svg.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(id: &str, profession: &str, x: &str, clean: f64) -> PairBaseline {
        PairBaseline {
            pair_id: id.into(),
            template: None,
            clean_prompt: String::new(),
            corrupt_prompt: String::new(),
            clean_metric: clean,
            corrupt_metric: 0.0,
            difference: clean,
            n_tokens: 4,
            labels: [
                ("profession", profession),
                ("stereotypicality", x),
                ("stereotype", "female"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }

    #[test]
    fn one_point_per_profession_averaged_over_its_templates() {
        let ps = points(&[
            pair("a", "nurse", "-0.25", -2.0),
            pair("b", "nurse", "-0.25", -4.0),
            pair("c", "pilot", "0.3", 1.0),
            pair("d", "poet", "n/a", 1.0),
        ]);
        assert_eq!(ps.len(), 2);
        assert_eq!(
            (ps[0].profession.as_str(), ps[0].mean_clean, ps[0].pairs),
            ("nurse", -3.0, 2)
        );
        assert_eq!(ps[1].stereotypicality, 0.3);
        let svg = chart(&ps, "logit_diff", "m");
        assert!(svg.contains("Pearson r = 1.00;"), "{svg}");
        assert!(svg.contains("m · bias per profession"), "{svg}");
    }
}
