//! Reversal rates as `run` prints them and `report` shows them: per cell (and k), the
//! share of pairs whose answer order the patch flips, with a Wilson 95% interval.

use patchsweep_coordinator::store::QueryResult;
use patchsweep_coordinator::store::Reversal;
use patchsweep_engine::interval::wilson_interval;
use serde_json::Value;

/// The columns of [`table`].
pub const COLUMNS: &[&str] = &[
    "experiment",
    "cell",
    "k",
    "pairs",
    "stereotype",
    "reversed",
    "share",
    "ci_low",
    "ci_high",
];

/// A cell's name as a reader wants it: `pathway:copying/k=30` → `copying`; single
/// components with their coordinates (`mlp_out L2 @subject`, `head_out L5H3 @end`).
pub fn cell_name(r: &Reversal) -> String {
    if let Some(rest) = r.component.strip_prefix("pathway:") {
        return rest.split('/').next().unwrap_or(rest).to_string();
    }
    let mut name = r.component.clone();
    if let Some(l) = r.layer {
        name.push_str(&format!(" L{l}"));
    }
    if let Some(h) = r.head {
        name.push_str(&format!("H{h}"));
    }
    if let Some(n) = r.neuron {
        name.push_str(&format!(" N{n}"));
    }
    if let Some(p) = &r.position_label {
        name.push_str(&format!(" @{p}"));
    }
    name
}

/// The share and its Wilson 95% interval, rounded to 3 decimals.
pub fn share_with_interval(r: &Reversal) -> (f64, f64, f64) {
    let (lo, hi) = wilson_interval(r.reversed.max(0) as usize, r.pairs.max(0) as usize);
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    (round(r.share()), round(lo), round(hi))
}

pub fn table(rows: &[Reversal]) -> QueryResult {
    QueryResult::from_rows(COLUMNS, rows, |r| {
        let (share, lo, hi) = share_with_interval(r);
        vec![
            Value::from(r.experiment.as_str()),
            Value::from(cell_name(r)),
            Value::from(r.k),
            Value::from(r.pairs),
            Value::from(r.stereotype.as_str()),
            Value::from(r.reversed),
            Value::from(share),
            Value::from(lo),
            Value::from(hi),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reversal(component: &str, reversed: i64, pairs: i64) -> Reversal {
        Reversal {
            experiment: "e".into(),
            direction: "noise".into(),
            component: component.into(),
            layer: None,
            head: None,
            position_label: None,
            neuron: None,
            k: None,
            stereotype: "all".into(),
            pairs,
            reversed,
        }
    }

    #[test]
    fn selected_sets_are_named_by_their_pathway_and_the_share_has_an_interval() {
        let r = reversal("pathway:copying/k=30", 8, 10);
        assert_eq!(cell_name(&r), "copying");
        let (share, lo, hi) = share_with_interval(&r);
        assert_eq!(share, 0.8);
        assert!(lo < 0.8 && hi > 0.8 && lo > 0.4 && hi < 1.0, "{lo} {hi}");
    }

    #[test]
    fn single_cells_carry_their_coordinates() {
        let r = Reversal {
            layer: Some(5),
            head: Some(3),
            position_label: Some("end".into()),
            ..reversal("head_out", 0, 4)
        };
        assert_eq!(cell_name(&r), "head_out L5H3 @end");
        assert_eq!(share_with_interval(&r).0, 0.0);
    }
}
