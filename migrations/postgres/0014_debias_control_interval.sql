-- A 95% interval of each debias figure's control mean over the prompts: each prompt's (or
-- pair's) value is averaged over the control sets, then Student's t over those averages,
-- the same unit as the located set's after interval (control_p05/p95 stay the spread of
-- the sets' means). NULL without a control, for the neutral text's metrics, below two
-- prompts, and for rows stored before this.

ALTER TABLE debias_results ADD COLUMN control_ci_low DOUBLE PRECISION;
ALTER TABLE debias_results ADD COLUMN control_ci_high DOUBLE PRECISION;

DROP VIEW debias_v;
CREATE VIEW debias_v AS
SELECT s.name            AS sweep_name,
       d.sweep_id        AS sweep_id,
       d.debias          AS debias,
       d.intervention    AS intervention,
       d.components      AS components,
       d.split           AS split,
       d.metric          AS metric,
       d.n               AS n,
       d.before          AS before,
       d.before_ci_low   AS before_ci_low,
       d.before_ci_high  AS before_ci_high,
       d.after           AS after,
       d.after_ci_low    AS after_ci_low,
       d.after_ci_high   AS after_ci_high,
       d.after - d.before AS delta,
       d.control_after   AS control_after,
       d.control_p05     AS control_p05,
       d.control_p95     AS control_p95,
       d.control_percentile AS control_percentile,
       d.control_ci_low  AS control_ci_low,
       d.control_ci_high AS control_ci_high,
       d.control_sets    AS control_sets,
       d.control_components AS control_components
FROM debias_results d
JOIN sweeps s ON s.id = d.sweep_id;
