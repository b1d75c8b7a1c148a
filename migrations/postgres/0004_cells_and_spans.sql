-- Aggregation that cannot blow up on weak pairs (PostgreSQL; the SQLite twin is
-- migrations/sqlite/0004_cells_and_spans.sql).
--
-- sweeps.min_span: the spec's `[metric] min_span`; pairs whose |clean - corrupt| is below it
-- are "weak" and left out of the normalized aggregate (0 for sweeps stored before).
-- pairs.toward_stereotype: +1 when the pair's metric grows toward its stereotyped answer,
-- -1 when it grows toward the anti-stereotypical one, 0 without a stereotype label.

ALTER TABLE sweeps ADD COLUMN min_span DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE pairs ADD COLUMN toward_stereotype INTEGER NOT NULL DEFAULT 0
    CHECK (toward_stereotype IN (-1, 0, 1));

DROP VIEW pairs_v;
CREATE VIEW pairs_v AS
SELECT s.name                              AS sweep_name,
       p.sweep_id                          AS sweep_id,
       p.pair_id                           AS pair_id,
       p.template                          AS template,
       p.clean_prompt                      AS clean_prompt,
       p.corrupt_prompt                    AS corrupt_prompt,
       p.clean_metric                      AS clean_metric,
       p.corrupt_metric                    AS corrupt_metric,
       p.n_tokens                          AS n_tokens,
       p.clean_metric - p.corrupt_metric   AS span,
       CASE WHEN ABS(p.clean_metric - p.corrupt_metric) >= s.min_span THEN 0 ELSE 1 END AS weak,
       p.toward_stereotype                 AS toward_stereotype
FROM pairs p
JOIN sweeps s ON s.id = p.sweep_id;

-- One row per effect with the terms the cell aggregates sum: `oriented_effect` is the
-- effect toward the pair's stereotyped answer (as stored for pairs without a label); for
-- pairs with |span| >= min_span (`strong` = 1), `shift` = sign(span) * (value - corrupt)
-- and `abs_span` = |span| (NULL for weak pairs), so SUM(shift) / SUM(abs_span) is the
-- ratio of means of the pairs aligned to clean > corrupt.
CREATE VIEW effect_terms_v AS
SELECT e.sweep_id                AS sweep_id,
       e.experiment              AS experiment,
       x.method                  AS method,
       x.direction               AS direction,
       e.component               AS component,
       NULLIF(e.layer, -1)       AS layer,
       NULLIF(e.head, -1)        AS head,
       NULLIF(e.position, -1)    AS position,
       pp.label                  AS position_label,
       NULLIF(e.neuron, -1)      AS neuron,
       e.pair_id                 AS pair_id,
       p.n_tokens                AS n_tokens,
       e.effect                  AS effect,
       e.effect * CASE WHEN p.toward_stereotype = 0 THEN 1 ELSE p.toward_stereotype END
                                 AS oriented_effect,
       CASE WHEN ABS(p.clean_metric - p.corrupt_metric) >= s.min_span THEN 1 ELSE 0 END
                                 AS strong,
       CASE WHEN ABS(p.clean_metric - p.corrupt_metric) >= s.min_span THEN
            CASE WHEN p.clean_metric < p.corrupt_metric THEN p.corrupt_metric - e.value
                 ELSE e.value - p.corrupt_metric END
       END                       AS shift,
       CASE WHEN ABS(p.clean_metric - p.corrupt_metric) >= s.min_span THEN
            ABS(p.clean_metric - p.corrupt_metric)
       END                       AS abs_span
FROM effects e
JOIN sweeps s      ON s.id = e.sweep_id
JOIN experiments x ON x.sweep_id = e.sweep_id AND x.name = e.experiment
JOIN pairs p       ON p.sweep_id = e.sweep_id AND p.pair_id = e.pair_id
LEFT JOIN pair_positions pp
                   ON pp.sweep_id = e.sweep_id AND pp.pair_id = e.pair_id
                  AND pp.position = e.position;

-- One row per experiment, component, coordinate and position label, over the sweep's pairs:
-- `pairs` measured, `pairs_used` strong ones, `mean_effect` the mean oriented effect over
-- every pair (and position with the label), `normalized` = SUM(shift) / SUM(abs_span) over
-- the strong ones (NULL when none is strong).
CREATE VIEW cells_v AS
SELECT s.name                                             AS sweep_name,
       t.sweep_id                                         AS sweep_id,
       t.experiment                                       AS experiment,
       t.method                                           AS method,
       t.direction                                        AS direction,
       t.component                                        AS component,
       t.layer                                            AS layer,
       t.head                                             AS head,
       t.position_label                                   AS position_label,
       t.neuron                                           AS neuron,
       COUNT(DISTINCT t.pair_id)                          AS pairs,
       COUNT(DISTINCT CASE WHEN t.strong = 1 THEN t.pair_id END) AS pairs_used,
       AVG(t.oriented_effect)                             AS mean_effect,
       SUM(t.shift) / NULLIF(SUM(t.abs_span), 0)          AS normalized
FROM effect_terms_v t
JOIN sweeps s ON s.id = t.sweep_id
GROUP BY s.name, t.sweep_id, t.experiment, t.method, t.direction, t.component, t.layer,
         t.head, t.position_label, t.neuron;
