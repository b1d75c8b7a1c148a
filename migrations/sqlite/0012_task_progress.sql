-- How far a leased task's computation has got, as a share of its work (0 to 1), reported
-- by its worker with every heartbeat; set back to 0 when the task is leased again. `status`
-- and `watch` count the patches of leased tasks by it, so progress moves within a task.
ALTER TABLE tasks ADD COLUMN progress REAL NOT NULL DEFAULT 0;

DROP VIEW tasks_v;
CREATE VIEW tasks_v AS
SELECT t.id                AS task_id,
       t.sweep_id          AS sweep_id,
       s.name              AS sweep_name,
       t.kind              AS kind,
       t.description       AS description,
       t.state             AS state,
       t.attempt           AS attempts,
       t.max_attempts      AS max_attempts,
       t.worker_id         AS worker_id,
       w.name              AS worker_name,
       t.error             AS error,
       t.cost              AS patches,
       CASE WHEN t.state = 'leased' THEN t.progress
            WHEN t.state = 'done' THEN 1.0 ELSE 0.0 END AS progress,
       t.rows_stored       AS rows_stored,
       t.stale_results     AS stale_results,
       t.lease_expirations AS lease_expirations,
       strftime('%Y-%m-%dT%H:%M:%fZ', t.created_at, 'unixepoch')       AS created_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', t.started_at, 'unixepoch')       AS started_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', t.finished_at, 'unixepoch')      AS finished_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', t.lease_expires_at, 'unixepoch') AS lease_expires_at,
       CASE WHEN t.state = 'done' THEN t.finished_at - t.started_at END AS seconds
FROM tasks t
JOIN sweeps s ON s.id = t.sweep_id
LEFT JOIN workers w ON w.id = t.worker_id;
