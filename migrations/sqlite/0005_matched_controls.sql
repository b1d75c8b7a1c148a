-- Matched random controls (sqlite): each intervention is repeated on many random component
-- sets matched on kind, layer and position label (issue 17). control_after is now the mean
-- over those sets; these columns give how many sets, their 5th and 95th percentiles, and the
-- located components' percentile among them (0: lower than every set, 100: higher).

ALTER TABLE debias_results ADD COLUMN control_sets INTEGER;
ALTER TABLE debias_results ADD COLUMN control_p05 REAL;
ALTER TABLE debias_results ADD COLUMN control_p95 REAL;
ALTER TABLE debias_results ADD COLUMN control_percentile REAL;

DROP VIEW debias_v;
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
       d.control_p05     AS control_p05,
       d.control_p95     AS control_p95,
       d.control_percentile AS control_percentile,
       d.control_sets    AS control_sets,
       d.control_components AS control_components
FROM debias_results d
JOIN sweeps s ON s.id = d.sweep_id;
