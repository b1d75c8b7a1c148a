-- Tasks, leases and workers (SQLite). The PostgreSQL twin is migrations/postgres/.
--
-- Times here are seconds since the Unix epoch by the database clock (REAL), so lease
-- arithmetic is plain addition on both backends; the views show them as ISO 8601 UTC.
--
-- Task states: [waiting ->] queued -> leased -> done | failed | cancelled (waiting: until every
-- other task of the sweep has ended, e.g. debias after patching); an expired lease or a retry
-- puts a task back to queued. `attempt` counts leases and is the fencing token: a result
-- is accepted only from the worker holding the lease of the task's current attempt.

ALTER TABLE sweeps ADD COLUMN error TEXT;          -- why the sweep failed, when it did

CREATE TABLE workers (
    id            TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    device        TEXT    NOT NULL,
    memory_bytes  INTEGER NOT NULL DEFAULT 0,
    models        TEXT    NOT NULL DEFAULT '[]',   -- JSON array of the model specs it holds
    version       TEXT    NOT NULL DEFAULT '',
    registered_at REAL    NOT NULL,
    last_seen_at  REAL    NOT NULL
) STRICT;

CREATE TABLE tasks (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    sweep_id          INTEGER NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    kind              TEXT    NOT NULL,            -- prepare | patch | debias
    description       TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    payload           TEXT    NOT NULL,            -- JSON arguments, by kind
    cost              INTEGER NOT NULL DEFAULT 0,  -- patches the task computes
    state             TEXT    NOT NULL DEFAULT 'queued',
    attempt           INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL,
    worker_id         TEXT,
    lease_expires_at  REAL,
    not_before        REAL    NOT NULL DEFAULT 0,  -- retry backoff
    error             TEXT,
    rows_stored       INTEGER NOT NULL DEFAULT 0,
    stale_results     INTEGER NOT NULL DEFAULT 0,
    lease_expirations INTEGER NOT NULL DEFAULT 0,
    created_at        REAL    NOT NULL,
    started_at        REAL,
    finished_at       REAL,
    CHECK (state IN ('waiting', 'queued', 'leased', 'done', 'failed', 'cancelled'))
) STRICT;

CREATE INDEX tasks_queue ON tasks (state, sweep_id, id);
CREATE INDEX tasks_queue_model ON tasks (state, model, sweep_id, id);
CREATE INDEX tasks_sweep ON tasks (sweep_id, state);

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

CREATE VIEW workers_v AS
SELECT w.id     AS worker_id,
       w.name   AS name,
       w.device AS device,
       w.memory_bytes AS memory_bytes,
       w.models AS models,
       w.version AS version,
       strftime('%Y-%m-%dT%H:%M:%fZ', w.registered_at, 'unixepoch') AS registered_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', w.last_seen_at, 'unixepoch')  AS last_seen_at,
       (SELECT COUNT(*) FROM tasks t WHERE t.worker_id = w.id AND t.state = 'leased') AS tasks_leased,
       (SELECT COUNT(*) FROM tasks t WHERE t.worker_id = w.id AND t.state = 'done')   AS tasks_done
FROM workers w;
