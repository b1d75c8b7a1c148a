-- Debiasing evaluations (sqlite): one row per (debias section, intervention, split, metric).
-- before/after are the metric on the unmodified and the intervened model; control_after
-- is the same intervention on randomly chosen components of the same number and kinds.

CREATE TABLE debias_results (
    sweep_id      INTEGER NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    debias        TEXT    NOT NULL,               -- the [[debias]] section's name
    intervention  TEXT    NOT NULL,               -- e.g. ablation-zero, steering, finetune
    components    TEXT    NOT NULL,               -- the components intervened on
    split         TEXT    NOT NULL,               -- heldout | selection | neutral
    metric        TEXT    NOT NULL,               -- e.g. mean_logit_diff, perplexity
    before        REAL NOT NULL,
    after         REAL NOT NULL,
    control_after REAL,
    control_components TEXT,
    task_id       INTEGER NOT NULL,
    PRIMARY KEY (sweep_id, debias, intervention, split, metric)
) STRICT, WITHOUT ROWID;

CREATE VIEW debias_v AS
SELECT s.name            AS sweep_name,
       d.sweep_id        AS sweep_id,
       d.debias          AS debias,
       d.intervention    AS intervention,
       d.components      AS components,
       d.split           AS split,
       d.metric          AS metric,
       d.before          AS before,
       d.after           AS after,
       d.after - d.before AS delta,
       d.control_after   AS control_after,
       d.control_components AS control_components
FROM debias_results d
JOIN sweeps s ON s.id = d.sweep_id;

-- The seeded split of each debias section: which pairs select components (selection),
-- which evaluate them (heldout), and which are left out for sharing a profession or a
-- template with both sides (unused).
CREATE TABLE debias_splits (
    sweep_id INTEGER NOT NULL,
    debias   TEXT    NOT NULL,
    pair_id  TEXT    NOT NULL,
    part     TEXT    NOT NULL CHECK (part IN ('selection', 'heldout', 'unused')),
    PRIMARY KEY (sweep_id, debias, pair_id),
    FOREIGN KEY (sweep_id, pair_id) REFERENCES pairs (sweep_id, pair_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
