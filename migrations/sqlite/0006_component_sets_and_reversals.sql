-- Component sets chosen from another experiment's ranking, and reversal rates (SQLite;
-- the PostgreSQL twin is migrations/postgres/0006_component_sets_and_reversals.sql).
--
-- tasks.stage: 0 runs at once; a later stage waits until no task of an earlier stage of its
-- sweep is left (selected pathways after the experiment they rank, debias after patching).
-- Tasks stored before keep 0 (their debias tasks wait for everything, as before).
-- sweeps.metric_neutral: the metric's value with no preference between the answers (0 for
-- differences, 1 for an odds ratio); a reversal is a change of side around it.
-- sweeps.spec_digest: SHA-256 of the spec text, stored at submit so a lease does not hash the
-- spec inside its transaction (NULL for sweeps stored before: hashed at lease, as before).
ALTER TABLE tasks ADD COLUMN stage INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sweeps ADD COLUMN spec_digest TEXT;
ALTER TABLE sweeps ADD COLUMN metric_neutral REAL NOT NULL DEFAULT 0;
-- Sweeps stored before with an odds-ratio metric: their neutral value is 1.
UPDATE sweeps SET metric_neutral = 1 WHERE spec LIKE '%"odds_ratio"%';

-- The sites of each selected set, stored when its task is leased: `pathway` is the cell
-- (effects.component without the 'pathway:' prefix, e.g. 'copying/k=90'), `k` the set's
-- size, `site` the rank (1 = best) and `score` the ranking's value.
CREATE TABLE pathway_sites (
    sweep_id       INTEGER NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    experiment     TEXT    NOT NULL,
    pathway        TEXT    NOT NULL,
    k              INTEGER NOT NULL CHECK (k >= 1),
    site           INTEGER NOT NULL CHECK (site >= 1),
    source         TEXT    NOT NULL,                 -- the ranked experiment
    rank_by        TEXT    NOT NULL,
    component      TEXT    NOT NULL,
    layer          INTEGER NOT NULL CHECK (layer >= 0),
    head           INTEGER NOT NULL CHECK (head >= -1),      -- -1: does not apply
    neuron         INTEGER NOT NULL CHECK (neuron >= -1),    -- -1: does not apply
    position_label TEXT,                                      -- NULL: every position
    score          REAL    NOT NULL,
    PRIMARY KEY (sweep_id, experiment, pathway, site)
) STRICT, WITHOUT ROWID;

CREATE VIEW pathway_sites_v AS
SELECT s.name                 AS sweep_name,
       t.sweep_id             AS sweep_id,
       t.experiment           AS experiment,
       t.pathway              AS pathway,
       t.k                    AS k,
       t.site                 AS site,
       t.source               AS source,
       t.rank_by              AS rank_by,
       t.component            AS component,
       t.layer                AS layer,
       NULLIF(t.head, -1)     AS head,
       NULLIF(t.neuron, -1)   AS neuron,
       t.position_label       AS position_label,
       t.score                AS score
FROM pathway_sites t
JOIN sweeps s ON s.id = t.sweep_id;

-- pairs_v gains `stereotype` and `counterfactual`: the pair's labels (NULL without them), so
-- queries can group by them on either backend; `counterfactual_group` is the side the
-- corrupted prompt swaps toward: the counterfactual's stereotype where the dataset gives one
-- (household activities, opposite professions), else the counterfactual word (man, woman).
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
       p.toward_stereotype                 AS toward_stereotype,
       json_extract(p.labels, '$.stereotype') AS stereotype,
       json_extract(p.labels, '$.counterfactual') AS counterfactual,
       COALESCE(json_extract(p.labels, '$.counterfactual_stereotype'),
                json_extract(p.labels, '$.counterfactual')) AS counterfactual_group
FROM pairs p
JOIN sweeps s ON s.id = p.sweep_id;

-- effects_v gains `reversed`: 1 when the patched metric lies on the other side of
-- metric_neutral than the run it patched (noise: the clean run; denoise: the corrupted
-- run); a value or base exactly at metric_neutral is a tie and counts as not reversed.
DROP VIEW effects_v;
CREATE VIEW effects_v AS
SELECT s.name                    AS sweep_name,
       e.sweep_id                AS sweep_id,
       e.experiment              AS experiment,
       x.method                  AS method,
       x.direction               AS direction,
       e.component               AS component,
       NULLIF(e.layer, -1)       AS layer,
       NULLIF(e.head, -1)        AS head,
       NULLIF(e.position, -1)    AS position,
       pp.label                  AS position_label,
       e.pair_id                 AS pair_id,
       p.template                AS template,
       p.clean_prompt            AS clean_prompt,
       p.corrupt_prompt          AS corrupt_prompt,
       e.value                   AS value,
       e.effect                  AS effect,
       e.normalized              AS normalized,
       NULLIF(e.neuron, -1)      AS neuron,
       CASE WHEN (CASE WHEN x.direction = 'noise' THEN p.clean_metric ELSE p.corrupt_metric END
                  - s.metric_neutral) * (e.value - s.metric_neutral) < 0 THEN 1 ELSE 0 END
                                 AS reversed
FROM effects e
JOIN sweeps s      ON s.id = e.sweep_id
JOIN experiments x ON x.sweep_id = e.sweep_id AND x.name = e.experiment
JOIN pairs p       ON p.sweep_id = e.sweep_id AND p.pair_id = e.pair_id
LEFT JOIN pair_positions pp
                   ON pp.sweep_id = e.sweep_id AND pp.pair_id = e.pair_id
                  AND pp.position = e.position;

-- Reversal rates per cell: `pairs` measured, `reversed` among them, `share` = reversed / pairs;
-- `k` the size of a selected set (NULL otherwise); `stereotype` 'all' for every pair, else
-- the pairs' stereotype label (one row per label present).
CREATE VIEW reversals_v AS
WITH r AS (
    SELECT e.sweep_name, e.sweep_id, e.experiment, e.direction, e.component, e.layer, e.head,
           e.position_label, e.neuron, p.stereotype, e.reversed
    FROM effects_v e
    JOIN pairs_v p ON p.sweep_id = e.sweep_id AND p.pair_id = e.pair_id
),
sets AS (
    SELECT DISTINCT sweep_id, experiment, 'pathway:' || pathway AS component, k
    FROM pathway_sites
),
groups AS (
    SELECT sweep_name, sweep_id, experiment, direction, component, layer, head, position_label,
           neuron, 'all' AS stereotype, reversed
    FROM r
    UNION ALL
    SELECT sweep_name, sweep_id, experiment, direction, component, layer, head, position_label,
           neuron, stereotype, reversed
    FROM r WHERE stereotype IS NOT NULL
)
SELECT g.sweep_name, g.sweep_id, g.experiment, g.direction, g.component, g.layer, g.head,
       g.position_label, g.neuron, k.k AS k, g.stereotype,
       COUNT(*) AS pairs, SUM(g.reversed) AS reversed, CAST(SUM(g.reversed) AS REAL) / COUNT(*) AS share
FROM groups g
LEFT JOIN sets k ON k.sweep_id = g.sweep_id AND k.experiment = g.experiment
                AND k.component = g.component
GROUP BY g.sweep_name, g.sweep_id, g.experiment, g.direction, g.component, g.layer, g.head,
         g.position_label, g.neuron, k.k, g.stereotype;
