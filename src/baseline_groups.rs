//! Baselines per counterfactual group (`man`, `woman`, …), as `run` prints them and
//! `report` shows them, and the warning for a group whose prompts barely differ.

use patchsweep_coordinator::store::{GroupBaselines, QueryResult};
use serde_json::Value;

use crate::plot::number::sig3;

/// One row per group: label, pairs, weak pairs, mean clean, corrupted and difference.
pub fn table(groups: &[GroupBaselines]) -> QueryResult {
    QueryResult::from_rows(
        &[
            "counterfactual",
            "pairs",
            "weak",
            "mean_clean",
            "mean_corrupted",
            "mean_difference",
        ],
        groups,
        |g| {
            let mut cells = vec![
                Value::from(g.counterfactual.clone().unwrap_or_else(|| "(none)".into())),
                Value::from(g.baselines.pairs),
                Value::from(g.weak),
            ];
            cells.extend(g.baselines.cells().into_iter().skip(1));
            cells
        },
    )
}

/// A warning per group whose clean and corrupted prompts barely differ on average: its
/// normalized effects divide by little and mean little.
pub fn weak_contrast_lines(groups: &[GroupBaselines], min_span: f64) -> Vec<String> {
    groups
        .iter()
        .filter_map(|g| {
            let d = g.baselines.mean_difference?;
            (d.abs() < min_span).then(|| {
                format!(
                    "warning: weak contrast{}: mean clean - corrupted is {}{}, below min_span \
                     {} — its pairs barely move the metric, so normalized effects over \
                     them mean little",
                    g.counterfactual
                        .as_ref()
                        .map(|c| format!(" for pairs corrupted to {c:?}"))
                        .unwrap_or_default(),
                    if d > 0.0 { "+" } else { "" },
                    sig3(d),
                    sig3(min_span)
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchsweep_coordinator::store::Baselines;

    fn group(cf: &str, d: f64) -> GroupBaselines {
        GroupBaselines {
            counterfactual: Some(cf.into()),
            baselines: Baselines {
                pairs: 4,
                mean_clean: Some(0.0),
                mean_corrupt: Some(-d),
                mean_difference: Some(d),
            },
            weak: 1,
        }
    }

    #[test]
    fn only_groups_below_min_span_are_warned_about() {
        let lines = weak_contrast_lines(&[group("man", -2.0), group("woman", 0.1)], 0.5);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("corrupted to \"woman\"") && lines[0].contains("+0.100,"));
        let t = table(&[group("man", -2.0)]);
        assert_eq!(t.rows[0][0], Value::from("man"));
        assert_eq!(t.rows[0][2], Value::from(1));
    }
}
