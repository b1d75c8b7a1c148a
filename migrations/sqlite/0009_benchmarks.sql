-- Bias benchmarks (sqlite): each `[[benchmark]]` pair's two sentence log-likelihoods, on
-- the sweep's model as it is (model_state 'base', from the benchmark tasks) and after each
-- debias intervention (model_state = the intervention's name, debias = its section), on
-- the located components (control_set -1) and on the first control sets (0, 1, ...).

CREATE TABLE benchmark_scores (
    sweep_id      INTEGER NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    benchmark     TEXT    NOT NULL,   -- the [[benchmark]] section's name
    debias        TEXT    NOT NULL,   -- the debias section; '' for base (NULL in the view)
    model_state   TEXT    NOT NULL,   -- 'base' or the intervention's name
    control_set   INTEGER NOT NULL,   -- the control set (0-based); -1 when not a control
    pair_index    INTEGER NOT NULL,   -- the pair's place among the benchmark's selected pairs
    pair_id       TEXT    NOT NULL,
    subset        TEXT    NOT NULL,
    stereo_loglik REAL    NOT NULL,   -- total log-likelihood of the stereotypical sentence
    anti_loglik   REAL    NOT NULL,   -- ... of its counterpart
    PRIMARY KEY (sweep_id, benchmark, debias, model_state, control_set, pair_index)
) STRICT, WITHOUT ROWID;

-- One row per (benchmark, model state, subset) and one for all subsets (`subset = 'all'`):
-- n pairs, how many prefer the stereotypical sentence (strictly), their share and its
-- Wilson 95% interval (z = 1.959963984540054). A control's state is 'NAME/control': the
-- control sets pooled (n = pairs x control_sets, the score their mean share; the interval
-- treats the n as independent, so it is narrower than one set's). SQLite has no sqrt here
-- (no math functions in this build): the interval's square root is 60 Newton steps from 1
-- (its argument lies in (0, 1]), equal to PostgreSQL's sqrt to about 1e-15. The interval
-- is clamped to [0, 1] and to contain the score (rounding at k = 0 or k = n).
CREATE VIEW benchmark_v AS
WITH RECURSIVE
grouped AS (
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
    SELECT g.*, CAST(k AS REAL) / n AS p, 1.959963984540054 * 1.959963984540054 AS z2
    FROM grouped g
),
newton AS (
    SELECT t.*, p * (1 - p) / n + z2 / (4.0 * n * n) AS v, 1.0 AS r, 0 AS i FROM terms t
    UNION ALL
    SELECT sweep_id, benchmark, debias, model_state, is_control, subset, n, k, sets, p, z2,
           v, (r + v / r) / 2, i + 1
    FROM newton WHERE i < 60
),
wilson AS (
    SELECT *, (p + z2 / (2.0 * n)) / (1 + z2 / n) AS center,
           1.959963984540054 * r / (1 + z2 / n) AS half
    FROM newton WHERE i = 60
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
       MIN(w.p, MAX(0.0, w.center - w.half)) AS ci_low,
       MAX(w.p, MIN(1.0, w.center + w.half)) AS ci_high,
       NULLIF(w.debias, '')   AS debias,
       CASE WHEN w.is_control THEN w.sets ELSE 0 END AS control_sets
FROM wilson w
JOIN sweeps s ON s.id = w.sweep_id;
