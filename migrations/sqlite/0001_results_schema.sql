-- patchsweep results schema (SQLite). The PostgreSQL twin lives in migrations/postgres/ and
-- keeps the same tables, columns and views; only column types differ.
--
-- Sentinel rule: layer, head, position and neuron are NOT NULL and hold -1 where the
-- coordinate does not apply, so that the primary key of `effects` is a real unique key
-- (NULLs never collide) and a re-run task's effects land exactly once. The views turn -1
-- back into NULL; query the views, not the raw tables, unless you need the sentinel.

CREATE TABLE sweeps (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    spec        TEXT    NOT NULL,                 -- the sweep spec, as submitted (TOML)
    model       TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'running',
    created_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at TEXT                              -- UTC, ISO 8601; NULL while running
) STRICT;

CREATE INDEX sweeps_name ON sweeps (name);

CREATE TABLE experiments (
    sweep_id  INTEGER NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    name      TEXT    NOT NULL,
    method    TEXT    NOT NULL,                   -- activation | attribution
    direction TEXT    NOT NULL,                   -- denoise | noise
    PRIMARY KEY (sweep_id, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE pairs (
    sweep_id       INTEGER NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    pair_id        TEXT    NOT NULL,
    template       TEXT,
    clean_prompt   TEXT    NOT NULL,
    corrupt_prompt TEXT    NOT NULL,
    clean_ids      TEXT    NOT NULL,              -- JSON array of the exact token ids used
    corrupt_ids    TEXT    NOT NULL,              -- JSON array
    labels         TEXT    NOT NULL,              -- JSON object, e.g. {"profession":"nurse"}
    clean_metric   REAL    NOT NULL,
    corrupt_metric REAL    NOT NULL,
    n_tokens       INTEGER NOT NULL,
    PRIMARY KEY (sweep_id, pair_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE pair_positions (
    sweep_id         INTEGER NOT NULL,
    pair_id          TEXT    NOT NULL,
    position         INTEGER NOT NULL CHECK (position >= 0),
    label            TEXT,                        -- e.g. 'subject', 'last'
    token_id         INTEGER NOT NULL,            -- clean token id at this position
    clean_token      TEXT,
    corrupt_token    TEXT,
    corrupt_token_id INTEGER NOT NULL,
    PRIMARY KEY (sweep_id, pair_id, position),
    FOREIGN KEY (sweep_id, pair_id) REFERENCES pairs (sweep_id, pair_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- One row per (experiment, component coordinate, pair). The primary key is the
-- exactly-once key: re-inserting a task's effects is a no-op (ON CONFLICT DO NOTHING).
-- Its prefix (sweep_id, experiment, component, layer, ...) serves the common queries.
CREATE TABLE effects (
    sweep_id   INTEGER NOT NULL,
    experiment TEXT    NOT NULL,
    component  TEXT    NOT NULL,                  -- e.g. resid_pre, attn_out, mlp_out, head
    layer      INTEGER NOT NULL CHECK (layer >= -1),     -- -1: does not apply
    head       INTEGER NOT NULL CHECK (head >= -1),      -- -1: does not apply
    position   INTEGER NOT NULL CHECK (position >= -1),  -- -1: does not apply
    neuron     INTEGER NOT NULL CHECK (neuron >= -1),    -- -1: does not apply
    pair_id    TEXT    NOT NULL,
    value      REAL    NOT NULL,                  -- metric after the patch
    effect     REAL    NOT NULL,                  -- change of the metric caused by the patch
    normalized REAL,                              -- (patched - corrupt) / (clean - corrupt)
    PRIMARY KEY (sweep_id, experiment, component, layer, head, position, neuron, pair_id),
    FOREIGN KEY (sweep_id, experiment) REFERENCES experiments (sweep_id, name) ON DELETE CASCADE,
    FOREIGN KEY (sweep_id, pair_id) REFERENCES pairs (sweep_id, pair_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- Effects of one pair (and the cascade when a pair is deleted).
CREATE INDEX effects_pair ON effects (sweep_id, pair_id);

CREATE TABLE dropped_pairs (
    sweep_id INTEGER NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    reason   TEXT    NOT NULL,
    count    INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (sweep_id, reason)
) STRICT, WITHOUT ROWID;

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
       NULLIF(e.neuron, -1)      AS neuron
FROM effects e
JOIN sweeps s      ON s.id = e.sweep_id
JOIN experiments x ON x.sweep_id = e.sweep_id AND x.name = e.experiment
JOIN pairs p       ON p.sweep_id = e.sweep_id AND p.pair_id = e.pair_id
LEFT JOIN pair_positions pp
                   ON pp.sweep_id = e.sweep_id AND pp.pair_id = e.pair_id
                  AND pp.position = e.position;

CREATE VIEW pairs_v AS
SELECT s.name           AS sweep_name,
       p.sweep_id       AS sweep_id,
       p.pair_id        AS pair_id,
       p.template       AS template,
       p.clean_prompt   AS clean_prompt,
       p.corrupt_prompt AS corrupt_prompt,
       p.clean_metric   AS clean_metric,
       p.corrupt_metric AS corrupt_metric,
       p.n_tokens       AS n_tokens
FROM pairs p
JOIN sweeps s ON s.id = p.sweep_id;
