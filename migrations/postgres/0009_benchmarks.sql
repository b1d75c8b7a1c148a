-- Bias benchmarks (postgres): each `[[benchmark]]` pair's two sentence log-likelihoods, on
-- the sweep's model as it is (model_state 'base', from the benchmark tasks) and after each
-- debias intervention (model_state = the intervention's name, debias = its section), on
-- the located components (control_set -1) and on the first control sets (0, 1, ...).

CREATE TABLE benchmark_scores (
    sweep_id      BIGINT  NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    benchmark     TEXT    NOT NULL,   -- the [[benchmark]] section's name
    debias        TEXT    NOT NULL,   -- the debias section; '' for base (NULL in the view)
    model_state   TEXT    NOT NULL,   -- 'base' or the intervention's name
    control_set   BIGINT  NOT NULL,   -- the control set (0-based); -1 when not a control
    pair_index    BIGINT  NOT NULL,   -- the pair's place among the benchmark's selected pairs
    pair_id       TEXT    NOT NULL,
    subset        TEXT    NOT NULL,
    stereo_loglik DOUBLE PRECISION NOT NULL,   -- total log-likelihood of the stereotypical sentence
    anti_loglik   DOUBLE PRECISION NOT NULL,   -- ... of its counterpart
    PRIMARY KEY (sweep_id, benchmark, debias, model_state, control_set, pair_index)
);

-- One row per (benchmark, model state, subset) and one for all subsets (`subset = 'all'`):
-- n pairs, how many prefer the stereotypical sentence (strictly), their share and its
-- Wilson 95% interval (z = 1.959963984540054). A control's state is 'NAME/control': the
-- control sets pooled (n = pairs x control_sets, the score their mean share; the interval
-- treats the n as independent, so it is narrower than one set's). The SQLite view takes
-- the square root by Newton steps and equals this one to about 1e-15. The interval is
-- clamped to [0, 1] and to contain the score (rounding at k = 0 or k = n).
CREATE VIEW benchmark_v AS
WITH grouped AS (
    SELECT sweep_id, benchmark, debias, model_state, control_set >= 0 AS is_control, subset,
           COUNT(*) AS n,
           SUM(CASE WHEN stereo_loglik > anti_loglik THEN 1 ELSE 0 END) AS k,
           COUNT(DISTINCT control_set) AS sets
    FROM benchmark_scores
    GROUP BY sweep_id, benchmark, debias, model_state, control_set >= 0, subset
    UNION ALL
    SELECT sweep_id, benchmark, debias, model_state, control_set >= 0 AS is_control, 'all',
           COUNT(*),
           SUM(CASE WHEN stereo_loglik > anti_loglik THEN 1 ELSE 0 END),
           COUNT(DISTINCT control_set)
    FROM benchmark_scores
    GROUP BY sweep_id, benchmark, debias, model_state, control_set >= 0
),
terms AS (
    SELECT g.*, CAST(k AS DOUBLE PRECISION) / n AS p,
           CAST(1.959963984540054 AS DOUBLE PRECISION) * 1.959963984540054 AS z2
    FROM grouped g
),
wilson AS (
    SELECT t.*, (p + z2 / (2.0 * n)) / (1 + z2 / n) AS center,
           1.959963984540054 * sqrt(p * (1 - p) / n + z2 / (4.0 * n * n)) / (1 + z2 / n) AS half
    FROM terms t
)
SELECT s.name                 AS sweep_name,
       w.sweep_id             AS sweep_id,
       w.benchmark            AS benchmark,
       w.subset               AS subset,
       CASE WHEN w.is_control THEN w.model_state || '/control'
            ELSE w.model_state END AS model_state,
       w.n                    AS n,
       w.k                    AS stereo_preferred,
       w.p                    AS score,
       LEAST(w.p, GREATEST(0.0, w.center - w.half)) AS ci_low,
       GREATEST(w.p, LEAST(1.0, w.center + w.half)) AS ci_high,
       NULLIF(w.debias, '')   AS debias,
       CASE WHEN w.is_control THEN w.sets ELSE 0 END AS control_sets
FROM wilson w
JOIN sweeps s ON s.id = w.sweep_id;
