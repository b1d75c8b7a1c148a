-- The logit lens (postgres; the twin is migrations/sqlite/0007_logit_lens.sql): per pair and
-- layer L, the sweep's metric read from the residual stream after block L (resid_post L) at
-- the last position, through the final norm and the unembedding, for the clean and the
-- corrupted prompt. The primary key is the exactly-once key, as for `effects`.
--
-- clean_lead / corrupt_lead: which answers the value says lead: +1 the metric's positive
-- answers, -1 its negative ones, 0 a tie (a difference of exactly 0, an odds ratio of exactly
-- 1). With pairs.toward_stereotype (+1: the metric grows toward the pair's stereotyped
-- answer), lead * toward_stereotype > 0 means the stereotyped answer leads.

CREATE TABLE lens (
    sweep_id      BIGINT NOT NULL,
    experiment    TEXT    NOT NULL,
    pair_id       TEXT    NOT NULL,
    layer         INTEGER NOT NULL CHECK (layer >= 0),
    clean_value   DOUBLE PRECISION    NOT NULL,
    corrupt_value DOUBLE PRECISION    NOT NULL,
    clean_lead    INTEGER NOT NULL CHECK (clean_lead IN (-1, 0, 1)),
    corrupt_lead  INTEGER NOT NULL CHECK (corrupt_lead IN (-1, 0, 1)),
    PRIMARY KEY (sweep_id, experiment, layer, pair_id),
    FOREIGN KEY (sweep_id, experiment) REFERENCES experiments (sweep_id, name) ON DELETE CASCADE,
    FOREIGN KEY (sweep_id, pair_id) REFERENCES pairs (sweep_id, pair_id) ON DELETE CASCADE
);

-- Lens values of one pair (and the cascade when a pair is deleted).
CREATE INDEX lens_pair ON lens (sweep_id, pair_id);

-- One row per pair and layer. clean_biased / corrupt_biased: 1 when the stereotyped answer
-- leads (lead * toward_stereotype > 0), 0 when it does not (a tie counts as not leading),
-- NULL for pairs without a stereotyped side (toward_stereotype = 0).
CREATE VIEW lens_v AS
SELECT s.name              AS sweep_name,
       l.sweep_id          AS sweep_id,
       l.experiment        AS experiment,
       l.pair_id           AS pair_id,
       l.layer             AS layer,
       l.clean_value       AS clean_value,
       l.corrupt_value     AS corrupt_value,
       l.clean_lead        AS clean_lead,
       l.corrupt_lead      AS corrupt_lead,
       p.toward_stereotype AS toward_stereotype,
       CASE WHEN p.toward_stereotype = 0 THEN NULL
            WHEN l.clean_lead * p.toward_stereotype > 0 THEN 1 ELSE 0 END   AS clean_biased,
       CASE WHEN p.toward_stereotype = 0 THEN NULL
            WHEN l.corrupt_lead * p.toward_stereotype > 0 THEN 1 ELSE 0 END AS corrupt_biased,
       p.template          AS template,
       p.clean_prompt      AS clean_prompt,
       p.corrupt_prompt    AS corrupt_prompt
FROM lens l
JOIN sweeps s ON s.id = l.sweep_id
JOIN pairs p  ON p.sweep_id = l.sweep_id AND p.pair_id = l.pair_id;

-- The lens curve: one row per experiment and layer over the sweep's pairs. pairs: measured;
-- stereotyped_pairs: those with a stereotyped side; biased_share: the share of those whose
-- clean value has the stereotyped answer leading (ties count as not leading; NULL when no
-- pair has a stereotyped side); corrupt_biased_share the same on the corrupted prompts;
-- mean_clean / mean_corrupt: plain means of the values (not oriented).
CREATE VIEW lens_layers_v AS
SELECT s.name                                                         AS sweep_name,
       l.sweep_id                                                     AS sweep_id,
       l.experiment                                                   AS experiment,
       l.layer                                                        AS layer,
       COUNT(*)                                                       AS pairs,
       SUM(CASE WHEN p.toward_stereotype <> 0 THEN 1 ELSE 0 END)      AS stereotyped_pairs,
       AVG(l.clean_value)                                             AS mean_clean,
       AVG(l.corrupt_value)                                           AS mean_corrupt,
       CAST(SUM(CASE WHEN l.clean_lead * p.toward_stereotype > 0 THEN 1 ELSE 0 END) AS DOUBLE PRECISION)
         / NULLIF(SUM(CASE WHEN p.toward_stereotype <> 0 THEN 1 ELSE 0 END), 0)
                                                                      AS biased_share,
       CAST(SUM(CASE WHEN l.corrupt_lead * p.toward_stereotype > 0 THEN 1 ELSE 0 END) AS DOUBLE PRECISION)
         / NULLIF(SUM(CASE WHEN p.toward_stereotype <> 0 THEN 1 ELSE 0 END), 0)
                                                                      AS corrupt_biased_share
FROM lens l
JOIN sweeps s ON s.id = l.sweep_id
JOIN pairs p  ON p.sweep_id = l.sweep_id AND p.pair_id = l.pair_id
GROUP BY s.name, l.sweep_id, l.experiment, l.layer;
