//! The report's feature-map section: each hypothesised stage (a pathway cell: a listed set
//! or the top k of a ranking) with the share of pairs whose answer order its joint patch
//! reverses, the pair counts and a Wilson 95% interval, and which sites each selected set
//! patched.

use std::collections::BTreeMap;
use std::fmt::Write;

use patchsweep_coordinator::store::{
    GenerationSample, LensLayer, QueryResult, Reversal, SelectedSite, StoreError,
};
use serde_json::Value;

use crate::plot::svg::escape;
use crate::reversal_table;

/// What the feature map shows, as the read model gives it (an error: the database predates
/// that part).
pub struct FeatureMap {
    pub reversals: Result<Vec<Reversal>, StoreError>,
    pub sites: Result<Vec<SelectedSite>, StoreError>,
    pub lens: Result<Vec<LensLayer>, StoreError>,
    pub generations: Result<Vec<GenerationSample>, StoreError>,
}

/// The section's HTML.
pub fn section(map: &FeatureMap, table: impl Fn(&QueryResult) -> String) -> String {
    let (reversals, sites) = (&map.reversals, &map.sites);
    let mut out = String::from(
        "<h3>Feature map: reversal rates of component sets</h3>\n<p class=\"note\">Each row \
         is a set of components patched together (a listed pathway, or the top k of another \
         experiment's ranking); share = pairs whose answer order the patch reverses (noise: \
         relative to the clean run; denoise: to the corrupted run), with a Wilson 95% \
         interval; one row over all pairs and one per stereotype label (the view \
         <code>reversals_v</code>).</p>\n",
    );
    match reversals {
        Ok(r) if r.is_empty() => out.push_str(
            "<p class=\"note\">No pathway cells in this sweep (add <code>[[experiment.pathway]]\
             </code> sections).</p>\n",
        ),
        Ok(r) => out.push_str(&table(&reversal_table::table(r))),
        Err(e) => {
            let _ = writeln!(
                out,
                "<p class=\"note\">not available: {}</p>",
                escape(&e.to_string())
            );
        }
    }
    if let Ok(sites) = sites {
        if !sites.is_empty() {
            out.push_str(
                "<h4>Selected sets</h4>\n<p class=\"note\">The sites of each top-k set, best \
                 first (<code>pathway_sites_v</code>).</p>\n",
            );
            out.push_str(&table(&selected_sets(sites)));
        }
    }
    if let Ok(lens) = &map.lens {
        if !lens.is_empty() {
            out.push_str(
                "<h4>Logit lens</h4>\n<p class=\"note\">Per layer, the metric read from the \
                 residual stream at the last position through the final norm and unembedding \
                 (<code>lens_layers_v</code>); biased_share = share of the pairs with a \
                 stereotyped side whose clean prompt already has the stereotyped answer \
                 leading.</p>\n",
            );
            out.push_str(&table(&lens_table(lens)));
        }
    }
    if let Ok(g) = &map.generations {
        if !g.is_empty() {
            out.push_str(
                "<h4>Generation check</h4>\n<p class=\"note\">Greedy continuations of the \
                 clean and corrupted prompts, and of the prompt with each pathway patched \
                 (<code>generations_v</code>).</p>\n",
            );
            out.push_str(&table(&generations_table(g)));
        }
    }
    out
}

fn lens_table(rows: &[LensLayer]) -> QueryResult {
    QueryResult::from_rows(
        &[
            "experiment",
            "layer",
            "pairs",
            "stereotyped_pairs",
            "mean_clean",
            "mean_corrupt",
            "biased_share",
        ],
        rows,
        |l| {
            vec![
                Value::from(l.experiment.as_str()),
                Value::from(l.layer),
                Value::from(l.pairs),
                Value::from(l.stereotyped_pairs),
                Value::from(l.mean_clean),
                Value::from(l.mean_corrupt),
                Value::from(l.biased_share),
            ]
        },
    )
}

fn generations_table(rows: &[GenerationSample]) -> QueryResult {
    QueryResult::from_rows(
        &[
            "experiment",
            "pair_id",
            "cell",
            "run",
            "prompt",
            "continuation",
        ],
        rows,
        |g| {
            vec![
                Value::from(g.experiment.as_str()),
                Value::from(g.pair_id.as_str()),
                Value::from(g.cell.clone().unwrap_or_else(|| "(unpatched)".into())),
                Value::from(g.run.as_str()),
                Value::from(g.prompt.as_str()),
                Value::from(g.text.as_str()),
            ]
        },
    )
}

/// One row per selected set: its k, the experiment ranked, and its sites in rank order
/// (`L5H3@end`).
fn selected_sets(sites: &[SelectedSite]) -> QueryResult {
    let mut sets: BTreeMap<(String, i64, String), (String, Vec<String>)> = BTreeMap::new();
    for s in sites {
        let entry = sets
            .entry((s.experiment.clone(), s.k, s.pathway.clone()))
            .or_insert_with(|| (s.source.clone(), Vec::new()));
        let mut name = format!("L{}", s.layer);
        if let Some(h) = s.head {
            name.push_str(&format!("H{h}"));
        }
        if let Some(p) = &s.position_label {
            name.push_str(&format!("@{p}"));
        }
        entry.1.push(name);
    }
    let rows: Vec<_> = sets.into_iter().collect();
    QueryResult::from_rows(
        &["experiment", "pathway", "k", "ranked", "sites"],
        &rows,
        |((experiment, k, pathway), (source, names))| {
            vec![
                Value::from(experiment.as_str()),
                Value::from(pathway.as_str()),
                Value::from(*k),
                Value::from(source.as_str()),
                Value::from(names.join(" ")),
            ]
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selected_sets_list_their_sites_in_rank_order() {
        let site = |k, site, layer, head| SelectedSite {
            experiment: "copying".into(),
            pathway: format!("top/k={k}"),
            k,
            site,
            source: "attr".into(),
            component: "head_out".into(),
            layer,
            head: Some(head),
            position_label: Some("end".into()),
            score: 1.0,
        };
        let t = selected_sets(&[site(2, 1, 5, 3), site(2, 2, 0, 1), site(1, 1, 5, 3)]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0][2], Value::from(1));
        assert_eq!(t.rows[1][4], Value::from("L5H3@end L0H1@end"));
    }
}
