//! A selected pathway's ranking, read when its task is leased (the experiment it ranks has
//! ended by then: its task waits a stage), and the chosen sites of each k, stored.

use patchsweep_api::args::{selected_cell_name, PathwaySelection, PositionRef, RankBy, RankedSite};

use super::backend::{sql, QueueConn};
use crate::store::error::db_error;
use crate::store::StoreError;

/// `(layer, head, neuron, position_label, positioned, mean_abs_normalized, normalized,
/// abs_effect)` of one site.
type RankRow = (
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    i64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
);

/// The experiment's sites of the selection's component (at its position, if it names
/// one: a label, or an index — then the site is that index in every pair, not its label),
/// best first by the selection's `rank_by`; sites without a score (no strong pair for
/// a normalized ranking) are left out. Ties go to the earlier layer, head, neuron, label.
pub(crate) async fn ranking_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    sweep_id: i64,
    s: &PathwaySelection,
) -> Result<Vec<RankedSite>, StoreError> {
    let (label, index) = match &s.position {
        None => (None, None),
        Some(PositionRef::Label(l)) => (Some(l.clone()), None),
        Some(PositionRef::Index(i)) => (None, Some(*i)),
    };
    let rows: Vec<RankRow> = sql(
        "SELECT CAST(t.layer AS BIGINT), CAST(t.head AS BIGINT), CAST(t.neuron AS BIGINT), \
         CASE WHEN $5 IS NULL THEN t.position_label END, \
         CAST(MAX(CASE WHEN t.position IS NULL THEN 0 ELSE 1 END) AS BIGINT), \
         CAST(AVG(ABS(CASE WHEN t.direction = 'noise' THEN 1 - t.shift / NULLIF(t.abs_span, 0) \
                      ELSE t.shift / NULLIF(t.abs_span, 0) END)) AS DOUBLE PRECISION), \
         CAST(ABS(CASE WHEN t.direction = 'noise' THEN 1 - SUM(t.shift) / NULLIF(SUM(t.abs_span), 0) \
                  ELSE SUM(t.shift) / NULLIF(SUM(t.abs_span), 0) END) AS DOUBLE PRECISION), \
         CAST(AVG(ABS(t.effect)) AS DOUBLE PRECISION) \
         FROM effect_terms_v t \
         WHERE t.sweep_id = $1 AND t.experiment = $2 AND t.component = $3 \
         AND t.layer IS NOT NULL \
         AND ($4 IS NULL OR t.position_label = $4) \
         AND ($5 IS NULL OR t.position = CASE WHEN $5 < 0 THEN t.n_tokens + $5 ELSE $5 END) \
         GROUP BY t.layer, t.head, t.neuron, CASE WHEN $5 IS NULL THEN t.position_label END, \
         t.direction",
    )
    .bind(sweep_id)
    .bind(&s.experiment)
    .bind(s.component.name())
    .bind(&label)
    .bind(index)
    .fetch_all(tx)
    .await
    .map_err(db_error("rank a selection's sites", url))?;
    let mut ranked: Vec<RankedSite> = rows
        .into_iter()
        .filter_map(
            |(layer, head, neuron, label, positioned, mean_abs, norm, abs)| {
                let score = match s.rank_by {
                    RankBy::MeanAbsNormalized => mean_abs,
                    RankBy::Normalized => norm,
                    RankBy::AbsEffect => abs,
                }?;
                score.is_finite().then(|| RankedSite {
                    layer: layer as usize,
                    head: head.map(|h| h as usize),
                    neuron: neuron.map(|n| n as usize),
                    position_label: label,
                    positioned: positioned == 1,
                    score,
                })
            },
        )
        .collect();
    ranked.sort_by(|a, b| {
        b.score.total_cmp(&a.score).then_with(|| {
            (a.layer, a.head, a.neuron, &a.position_label).cmp(&(
                b.layer,
                b.head,
                b.neuron,
                &b.position_label,
            ))
        })
    });
    Ok(ranked)
}

/// Stores the sites of each of the selection's k (`pathway_sites`), once: a task leased
/// again, or another task of the same selection, stores nothing new.
pub(crate) async fn store_selected_sites_in<C: QueueConn>(
    tx: &mut C,
    url: &str,
    sweep_id: i64,
    experiment: &str,
    s: &PathwaySelection,
    ranked: &[RankedSite],
) -> Result<(), StoreError> {
    for k in s.effective_k(ranked.len()) {
        let cell = selected_cell_name(&s.name, k);
        for (i, site) in ranked[..k].iter().enumerate() {
            sql(
                "INSERT INTO pathway_sites (sweep_id, experiment, pathway, k, site, source, \
                 rank_by, component, layer, head, neuron, position_label, score) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(sweep_id)
            .bind(experiment)
            .bind(&cell)
            .bind(k as i64)
            .bind(i as i64 + 1)
            .bind(&s.experiment)
            .bind(s.rank_by.name())
            .bind(s.component.name())
            .bind(site.layer as i64)
            .bind(site.head.map_or(-1, |h| h as i64))
            .bind(site.neuron.map_or(-1, |n| n as i64))
            .bind(&site.position_label)
            .bind(site.score)
            .execute(tx)
            .await
            .map_err(db_error("store a selection's sites", url))?;
        }
    }
    Ok(())
}
