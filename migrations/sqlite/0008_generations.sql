-- The generation check (sqlite): greedy continuations of a sweep's first pairs (an
-- experiment's `generate = { tokens, pairs }`), of the clean and the corrupted prompt
-- unpatched, and of the base prompt with each of the experiment's pathways patched at the
-- prompt's positions from the other prompt's run (noise: the clean prompt with corrupted
-- values; denoise: the corrupted prompt with clean values).

CREATE TABLE generations (
    sweep_id   INTEGER NOT NULL,
    experiment TEXT    NOT NULL,
    pair_id    TEXT    NOT NULL,
    cell       TEXT    NOT NULL,   -- pathway:NAME; '' for the unpatched prompt (NULL in the view)
    run        TEXT    NOT NULL CHECK (run IN ('clean', 'corrupt')),   -- the prompt continued
    tokens     TEXT    NOT NULL,   -- the generated token ids, a JSON array
    text       TEXT    NOT NULL,   -- the generated tokens decoded
    PRIMARY KEY (sweep_id, experiment, pair_id, cell, run),
    FOREIGN KEY (sweep_id, experiment) REFERENCES experiments (sweep_id, name) ON DELETE CASCADE,
    FOREIGN KEY (sweep_id, pair_id) REFERENCES pairs (sweep_id, pair_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- One row per continuation; `prompt` is the prompt continued, `patched_from` the run
-- the patched values come from (NULL when unpatched).
CREATE VIEW generations_v AS
SELECT s.name                 AS sweep_name,
       g.sweep_id             AS sweep_id,
       g.experiment           AS experiment,
       x.direction            AS direction,
       g.pair_id              AS pair_id,
       NULLIF(g.cell, '')     AS cell,
       g.run                  AS run,
       CASE WHEN g.cell = '' THEN NULL
            WHEN g.run = 'clean' THEN 'corrupt'
            ELSE 'clean' END  AS patched_from,
       p.clean_prompt         AS clean_prompt,
       p.corrupt_prompt       AS corrupt_prompt,
       CASE WHEN g.run = 'clean' THEN p.clean_prompt
            ELSE p.corrupt_prompt END AS prompt,
       g.text                 AS text,
       g.tokens               AS tokens
FROM generations g
JOIN sweeps s      ON s.id = g.sweep_id
JOIN experiments x ON x.sweep_id = g.sweep_id AND x.name = g.experiment
JOIN pairs p       ON p.sweep_id = g.sweep_id AND p.pair_id = g.pair_id;
