-- The pairs a prepare task dropped (postgres), each with its prompts and token counts, so a
-- reader sees which pairs are missing and why (`dropped_pairs` keeps the counts by reason).

CREATE TABLE dropped_pair_list (
    sweep_id       BIGINT  NOT NULL,
    pair_id        TEXT    NOT NULL,
    reason         TEXT    NOT NULL,   -- token_count_mismatch | identical_prompts
    clean_prompt   TEXT    NOT NULL,
    corrupt_prompt TEXT    NOT NULL,
    clean_tokens   BIGINT  NOT NULL,
    corrupt_tokens BIGINT  NOT NULL,
    PRIMARY KEY (sweep_id, pair_id),
    FOREIGN KEY (sweep_id) REFERENCES sweeps (id) ON DELETE CASCADE
);

CREATE VIEW dropped_pairs_v AS
SELECT s.name           AS sweep_name,
       d.sweep_id       AS sweep_id,
       d.pair_id        AS pair_id,
       d.reason         AS reason,
       d.clean_prompt   AS clean_prompt,
       d.corrupt_prompt AS corrupt_prompt,
       d.clean_tokens   AS clean_tokens,
       d.corrupt_tokens AS corrupt_tokens
FROM dropped_pair_list d
JOIN sweeps s ON s.id = d.sweep_id;
