//! From aggregated cells to heatmap grids: layer × position for whole components, layer ×
//! head (or × neuron) for per-head (per-neuron) components.
//!
//! Pairs may differ in length, so "position 3" need not mean the same thing in two pairs.
//! The x axis of an experiment is chosen once for all its components:
//! - every pair has the same length: one column per position index, labelled with the
//!   position's label and its clean token(s);
//! - lengths differ and every position has a label (templates, built-in datasets): one
//!   column per label, in order of the label's mean position; a cell is over every
//!   (pair, position) with that label, so a two-token subject counts both its tokens;
//! - lengths differ and some position has no label: position indices of the pairs of the
//!   most common length only (the subtitle says how many pairs that is).
//!
//! Values are normalized effects as `cells_v` forms them: `Σ sign(span)·(patched - corrupt) /
//! Σ |span|` with `span = clean - corrupt`, over the pairs with `|span| >= min_span` (a ratio
//! of sums, so weak pairs cannot blow a cell up).

use std::collections::{BTreeMap, BTreeSet};

use patchsweep_coordinator::store::{CellMean, PositionToken};

/// A heatmap ready to draw. `values[r][c]` is row `r` of `y_ticks` (layers ascending) and
/// column `c` of `x_ticks`; `None` where nothing was measured.
#[derive(Clone, Debug)]
pub struct Heatmap {
    pub experiment: String,
    pub component: String,
    pub title: String,
    pub subtitle: String,
    pub x_title: String,
    pub y_title: String,
    /// Two lines per column: the position (or head) and the token(s) there.
    pub x_ticks: Vec<(String, String)>,
    pub y_ticks: Vec<String>,
    pub values: Vec<Vec<Option<f64>>>,
    /// File-name part: `experiment_component[_position]`.
    pub stem: String,
    /// The colour scale runs from `-limit` to `+limit`: one limit shared by every heatmap
    /// of a sweep ([`shared_limit`]), so maps compare by eye.
    pub limit: f64,
    /// A line under the x axis saying what the grey token line of the ticks is (empty
    /// when the ticks have none).
    pub legend: String,
}

/// What every heatmap's title names besides the component: the model and the quantity.
#[derive(Clone, Debug, PartialEq)]
pub struct Naming {
    /// The model as titles show it (`SmolLM2-135M-Instruct.Q4_1`).
    pub model: String,
    /// The quantity shown, e.g. `normalized logit-difference effect`.
    pub effect: String,
}

/// The suffix of a token tick line naming how many other tokens share the column.
const MORE: &str = " more";

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum XKey {
    Joint,
    Index(i64),
    Label(String),
}

#[derive(Clone, Debug)]
enum Scheme {
    /// Position indices of pairs of this length; `all` when every pair has it.
    Index {
        n_tokens: i64,
        all: bool,
    },
    Label,
}

/// Component kinds in the order the pictures list them; others follow by name.
const ORDER: [&str; 10] = [
    "resid_pre",
    "resid_mid",
    "attn_out",
    "mlp_out",
    "resid_post",
    "head_out",
    "head_q",
    "head_k",
    "head_v",
    "mlp_neuron",
];

fn component_rank(c: &str) -> (usize, String) {
    (
        ORDER.iter().position(|o| *o == c).unwrap_or(ORDER.len()),
        c.to_string(),
    )
}

/// All heatmaps of one sweep, on one colour scale ([`shared_limit`]).
pub fn heatmaps(cells: &[CellMean], tokens: &[PositionToken], naming: &Naming) -> Vec<Heatmap> {
    let mut by_experiment: BTreeMap<&str, Vec<&CellMean>> = BTreeMap::new();
    for c in cells.iter().filter(|c| c.layer.is_some()) {
        by_experiment.entry(&c.experiment).or_default().push(c);
    }
    let mut out = Vec::new();
    for (experiment, cells) in by_experiment {
        let (scheme, pairs_by_len) = scheme(&cells);
        let note = scheme_note(&scheme, &pairs_by_len);
        let order = label_order(&cells);
        let mut components: Vec<&str> = cells.iter().map(|c| c.component.as_str()).collect();
        components.sort_by_key(|c| component_rank(c));
        components.dedup();
        for component in components {
            let mine: Vec<&CellMean> = cells
                .iter()
                .copied()
                .filter(|c| c.component == component)
                .collect();
            let method = mine[0].method.clone();
            let keyed: Vec<(XKey, &CellMean)> = mine
                .iter()
                .filter_map(|c| x_key(c, &scheme).map(|k| (k, *c)))
                .collect();
            let inner = if mine.iter().any(|c| c.head.is_some()) {
                Some((
                    "head",
                    (|c: &CellMean| c.head) as fn(&CellMean) -> Option<i64>,
                ))
            } else if mine.iter().any(|c| c.neuron.is_some()) {
                Some((
                    "neuron",
                    (|c: &CellMean| c.neuron) as fn(&CellMean) -> Option<i64>,
                ))
            } else {
                None
            };
            let title =
                |at: &str| format!("{} · {component}{at} · {}", naming.model, naming.effect);
            let subtitle = format!("experiment {experiment} ({method} patching) · {note}");
            match inner {
                None => {
                    let mut h = grid(&keyed, |k, _| Some(k.clone()), |k| tick(k, &scheme, tokens));
                    h.experiment = experiment.to_string();
                    h.component = component.to_string();
                    h.title = title("");
                    h.subtitle = subtitle.clone();
                    h.legend = token_legend(&h.x_ticks);
                    h.x_title = match scheme {
                        Scheme::Label => "position (by label)".into(),
                        Scheme::Index { .. } => "position".into(),
                    };
                    h.stem = format!("{}_{}", super::data::slug(experiment), component);
                    out.push(h);
                }
                Some((name, coord)) => {
                    let mut xs: Vec<XKey> = keyed.iter().map(|(k, _)| k.clone()).collect();
                    xs.sort_by(|a, b| sort_key(a, &order).total_cmp(&sort_key(b, &order)));
                    xs.dedup();
                    for x in xs {
                        let here: Vec<(XKey, &CellMean)> =
                            keyed.iter().filter(|(k, _)| *k == x).cloned().collect();
                        let mut h = grid(
                            &here,
                            |_, c| coord(c).map(XKey::Index),
                            |k| match k {
                                XKey::Index(i) => (i.to_string(), String::new()),
                                other => (format!("{other:?}"), String::new()),
                            },
                        );
                        let (pos, tok) = tick(&x, &scheme, tokens);
                        let at = if tok.is_empty() {
                            pos.clone()
                        } else {
                            format!("{pos} {tok}")
                        };
                        h.experiment = experiment.to_string();
                        h.component = component.to_string();
                        h.title = title(&format!(" at {at}"));
                        h.subtitle = subtitle.clone();
                        h.x_title = name.into();
                        h.stem = format!(
                            "{}_{}_{}",
                            super::data::slug(experiment),
                            component,
                            super::data::slug(&match &x {
                                XKey::Joint => "joint".to_string(),
                                XKey::Index(i) => format!("pos{i}"),
                                XKey::Label(l) => l.clone(),
                            })
                        );
                        out.push(h);
                    }
                }
            }
        }
    }
    let limit = shared_limit(&out);
    for h in &mut out {
        h.limit = limit;
    }
    out
}

/// The colour limit every heatmap of a sweep shares: the largest |value| among them,
/// rounded up to two significant digits (1 when there is none).
pub fn shared_limit(maps: &[Heatmap]) -> f64 {
    let max = maps
        .iter()
        .flat_map(|h| h.values.iter().flatten().flatten())
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    if max <= 0.0 {
        return 1.0;
    }
    let step = 10f64.powf(max.log10().floor() - 1.0);
    // The division can land a hair above an exact step (0.88 / 0.01 = 88.00000000000001).
    let steps = (max / step * (1.0 - 1e-12)).ceil();
    let limit = steps * step;
    // Printed through the same two digits, without float residue (0.8800000000000001).
    let decimals = (1.0 - max.log10().floor()).max(0.0) as usize;
    format!("{limit:.decimals$}").parse().unwrap_or(limit)
}

/// The line under a position axis saying what the grey second tick line is.
fn token_legend(ticks: &[(String, String)]) -> String {
    if ticks.iter().all(|(_, t)| t.is_empty()) {
        return String::new();
    }
    let mut legend =
        "grey: the clean prompts' token at that position (the most common one)".to_string();
    if ticks.iter().any(|(_, t)| t.ends_with(MORE)) {
        legend.push_str("; +N more: N other tokens the pairs have there");
    }
    legend
}

/// One grid: rows are layers, columns the keys `column` gives; cells combine by summing
/// their shifts and spans (the ratio of sums over every strong pair and position).
fn grid(
    cells: &[(XKey, &CellMean)],
    column: impl Fn(&XKey, &CellMean) -> Option<XKey>,
    label: impl Fn(&XKey) -> (String, String),
) -> Heatmap {
    let order = label_order_keyed(cells);
    let mut sums: BTreeMap<(i64, XKey), (f64, f64)> = BTreeMap::new();
    let mut layers = BTreeSet::new();
    let mut columns: Vec<XKey> = Vec::new();
    for (k, c) in cells {
        let (Some(layer), Some(col)) = (c.layer, column(k, c)) else {
            continue;
        };
        layers.insert(layer);
        if !columns.contains(&col) {
            columns.push(col.clone());
        }
        if c.count > 0 {
            let e = sums.entry((layer, col)).or_insert((0.0, 0.0));
            e.0 += c.shift;
            e.1 += c.span;
        }
    }
    columns.sort_by(|a, b| sort_key(a, &order).total_cmp(&sort_key(b, &order)));
    let layers: Vec<i64> = layers.into_iter().collect();
    let values = layers
        .iter()
        .map(|&l| {
            columns
                .iter()
                .map(|col| {
                    sums.get(&(l, col.clone()))
                        .filter(|(_, span)| *span > 0.0)
                        .map(|(shift, span)| shift / span)
                })
                .collect()
        })
        .collect();
    Heatmap {
        experiment: String::new(),
        component: String::new(),
        title: String::new(),
        subtitle: String::new(),
        x_title: String::new(),
        y_title: "layer".into(),
        x_ticks: columns.iter().map(label).collect(),
        y_ticks: layers.iter().map(|l| l.to_string()).collect(),
        values,
        stem: String::new(),
        limit: 1.0,
        legend: String::new(),
    }
}

/// The experiment's x scheme, and how many pairs have each length.
fn scheme(cells: &[&CellMean]) -> (Scheme, BTreeMap<i64, i64>) {
    let mut pairs_by_len: BTreeMap<i64, i64> = BTreeMap::new();
    for c in cells {
        let e = pairs_by_len.entry(c.n_tokens).or_insert(0);
        *e = (*e).max(c.pairs);
    }
    let positioned: Vec<&&CellMean> = cells.iter().filter(|c| c.position.is_some()).collect();
    let lengths: BTreeSet<i64> = positioned.iter().map(|c| c.n_tokens).collect();
    let common = pairs_by_len
        .iter()
        .max_by_key(|(len, n)| (**n, -**len))
        .map_or(0, |(len, _)| *len);
    let scheme = if lengths.len() <= 1 {
        Scheme::Index {
            n_tokens: lengths.into_iter().next().unwrap_or(common),
            all: true,
        }
    } else if positioned.iter().all(|c| c.label.is_some()) {
        Scheme::Label
    } else {
        Scheme::Index {
            n_tokens: common,
            all: false,
        }
    };
    (scheme, pairs_by_len)
}

fn scheme_note(scheme: &Scheme, pairs_by_len: &BTreeMap<i64, i64>) -> String {
    let total: i64 = pairs_by_len.values().sum();
    let s = |n: i64| if n == 1 { "" } else { "s" };
    match scheme {
        Scheme::Index { all: true, .. } => {
            format!(
                "normalized effect (strong pairs, ratio of sums) over {total} pair{}",
                s(total)
            )
        }
        Scheme::Label => {
            let lens: Vec<String> = pairs_by_len.keys().map(|l| l.to_string()).collect();
            format!(
                "normalized effect (strong pairs, ratio of sums) over {total} pairs of {} tokens, positions grouped by label",
                lens.join("/")
            )
        }
        Scheme::Index { n_tokens, .. } => {
            let n = pairs_by_len.get(n_tokens).copied().unwrap_or(0);
            format!(
                "normalized effect (strong pairs, ratio of sums) over the {n} of {total} pairs with {n_tokens} tokens (the most common length; positions unlabelled)"
            )
        }
    }
}

fn x_key(c: &CellMean, scheme: &Scheme) -> Option<XKey> {
    let Some(p) = c.position else {
        return Some(XKey::Joint);
    };
    match scheme {
        Scheme::Index { n_tokens, .. } => (c.n_tokens == *n_tokens).then_some(XKey::Index(p)),
        Scheme::Label => c.label.clone().map(XKey::Label),
    }
}

/// Mean position of each label (weighted by pairs), to order label columns.
fn label_order(cells: &[&CellMean]) -> BTreeMap<String, f64> {
    let mut acc: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for c in cells {
        if let (Some(l), Some(p)) = (&c.label, c.position) {
            let e = acc.entry(l.clone()).or_insert((0.0, 0.0));
            e.0 += p as f64 * c.pairs as f64;
            e.1 += c.pairs as f64;
        }
    }
    acc.into_iter()
        .map(|(l, (s, n))| (l, if n > 0.0 { s / n } else { 0.0 }))
        .collect()
}

fn label_order_keyed(cells: &[(XKey, &CellMean)]) -> BTreeMap<String, f64> {
    let plain: Vec<&CellMean> = cells.iter().map(|(_, c)| *c).collect();
    label_order(&plain)
}

fn sort_key(k: &XKey, order: &BTreeMap<String, f64>) -> f64 {
    match k {
        XKey::Joint => -1.0,
        XKey::Index(i) => *i as f64,
        XKey::Label(l) => order.get(l).copied().unwrap_or(f64::MAX),
    }
}

/// The two tick lines of a position column: where it is, and the clean token(s) there.
fn tick(k: &XKey, scheme: &Scheme, tokens: &[PositionToken]) -> (String, String) {
    let (head, here): (String, Vec<&PositionToken>) = match k {
        XKey::Joint => return ("all positions".into(), String::new()),
        XKey::Index(i) => {
            let n = match scheme {
                Scheme::Index { n_tokens, .. } => *n_tokens,
                Scheme::Label => 0,
            };
            let here: Vec<&PositionToken> = tokens
                .iter()
                .filter(|t| t.position == *i && t.n_tokens == n)
                .collect();
            let label = most_common(
                here.iter()
                    .filter_map(|t| t.label.clone().map(|l| (l, t.pairs))),
            );
            (
                match label {
                    Some(l) => format!("{i} {l}"),
                    None => i.to_string(),
                },
                here,
            )
        }
        XKey::Label(l) => (
            l.clone(),
            tokens
                .iter()
                .filter(|t| t.label.as_deref() == Some(l))
                .collect(),
        ),
    };
    (head, token_summary(&here))
}

fn most_common(items: impl Iterator<Item = (String, i64)>) -> Option<String> {
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for (s, n) in items {
        *counts.entry(s).or_insert(0) += n;
    }
    counts
        .into_iter()
        .max_by_key(|(s, n)| (*n, std::cmp::Reverse(s.clone())))
        .map(|(s, _)| s)
}

/// `nurse` when one token, `said/wished` for two, `nurse +10 more` for more (the most
/// common first; the legend under the axis says what the count is).
fn token_summary(tokens: &[&PositionToken]) -> String {
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for t in tokens {
        let shown = t.token.trim();
        let shown = if shown.is_empty() {
            "(space)".to_string()
        } else {
            shown.to_string()
        };
        *counts.entry(shown).or_insert(0) += t.pairs;
    }
    let mut ranked: Vec<(String, i64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let names: Vec<String> = ranked.iter().map(|(s, _)| short(s, 10)).collect();
    match names.len() {
        0 => String::new(),
        1 | 2 => names.join("/"),
        n => format!("{} +{}{MORE}", names[0], n - 1),
    }
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let head: String = s.chars().take(max - 1).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(
        component: &str,
        layer: i64,
        pos: Option<i64>,
        label: &str,
        len: i64,
        mean: f64,
    ) -> CellMean {
        CellMean {
            experiment: "e".into(),
            method: "activation".into(),
            component: component.into(),
            layer: Some(layer),
            head: None,
            neuron: None,
            position: pos,
            label: Some(label.into()),
            n_tokens: len,
            mean: Some(mean),
            shift: 2.0 * mean,
            span: 2.0,
            count: 2,
            pairs: 2,
        }
    }

    fn naming() -> Naming {
        Naming {
            model: "SmolLM2-135M".into(),
            effect: "normalized logit-difference effect".into(),
        }
    }

    #[test]
    fn equal_lengths_use_position_indices() {
        let cells = vec![
            cell("resid_pre", 0, Some(0), "prefix", 4, 0.0),
            cell("resid_pre", 0, Some(1), "subject", 4, 1.0),
            cell("resid_pre", 1, Some(1), "subject", 4, 0.5),
        ];
        let tokens: Vec<PositionToken> = [(0, "prefix", "The"), (1, "subject", " nurse")]
            .iter()
            .map(|(p, l, t)| PositionToken {
                n_tokens: 4,
                position: *p,
                label: Some(l.to_string()),
                token: t.to_string(),
                pairs: 2,
            })
            .collect();
        let hs = heatmaps(&cells, &tokens, &naming());
        assert_eq!(hs.len(), 1);
        let h = &hs[0];
        assert_eq!(h.y_ticks, vec!["0", "1"]);
        assert_eq!(h.x_ticks[1], ("1 subject".to_string(), "nurse".to_string()));
        assert_eq!(h.values[0], vec![Some(0.0), Some(1.0)]);
        assert_eq!(h.values[1], vec![None, Some(0.5)]);
    }

    #[test]
    fn different_lengths_group_by_label_in_position_order() {
        let cells = vec![
            cell("mlp_out", 0, Some(3), "end", 4, 0.2),
            cell("mlp_out", 0, Some(4), "end", 5, 0.4),
            cell("mlp_out", 0, Some(1), "subject", 4, 1.0),
            cell("mlp_out", 0, Some(1), "subject", 5, 0.0),
            cell("mlp_out", 0, Some(2), "subject", 5, 0.5),
        ];
        let h = &heatmaps(&cells, &[], &naming())[0];
        let heads: Vec<&str> = h.x_ticks.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(heads, vec!["subject", "end"]);
        assert_eq!(h.values[0][0], Some(0.5));
        assert!((h.values[0][1].unwrap() - 0.3).abs() < 1e-12);
        assert!(h.subtitle.contains("grouped by label"));
    }

    #[test]
    fn titles_name_model_component_and_quantity() {
        let cells = vec![cell("mlp_out", 0, Some(1), "subject", 4, 0.5)];
        let h = &heatmaps(&cells, &[], &naming())[0];
        assert_eq!(
            h.title,
            "SmolLM2-135M · mlp_out · normalized logit-difference effect"
        );
        assert!(h.subtitle.starts_with("experiment e (activation patching)"));
    }

    #[test]
    fn every_heatmap_of_a_sweep_shares_one_colour_limit() {
        let cells = vec![
            cell("resid_pre", 0, Some(1), "subject", 4, 0.2),
            cell("mlp_out", 0, Some(1), "subject", 4, -0.873),
        ];
        let hs = heatmaps(&cells, &[], &naming());
        assert_eq!(hs.len(), 2);
        assert_eq!(hs[0].limit, 0.88);
        assert_eq!(hs[1].limit, 0.88);
        assert_eq!(shared_limit(&[]), 1.0);
    }

    #[test]
    fn token_ticks_say_how_many_other_tokens_share_a_column() {
        let tokens: Vec<PositionToken> = ["carpenter", "nurse", "pilot", "carpenter"]
            .iter()
            .map(|t| PositionToken {
                n_tokens: 4,
                position: 1,
                label: Some("subject".into()),
                token: format!(" {t}"),
                pairs: 1,
            })
            .collect();
        let cells = vec![cell("resid_pre", 0, Some(1), "subject", 4, 0.2)];
        let h = &heatmaps(&cells, &tokens, &naming())[0];
        assert_eq!(h.x_ticks[0].1, "carpenter +2 more");
        assert!(h.legend.contains("+N more: N other tokens"), "{}", h.legend);
    }
}
