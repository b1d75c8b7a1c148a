-- Tasks, leases and workers (PostgreSQL). The SQLite twin is migrations/sqlite/.
--
-- Times here are seconds since the Unix epoch by the database clock (DOUBLE PRECISION), so
-- lease arithmetic is plain addition on both backends; the views show them as timestamps.
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
    memory_bytes  BIGINT  NOT NULL DEFAULT 0,
    models        TEXT    NOT NULL DEFAULT '[]',   -- JSON array of the model specs it holds
    version       TEXT    NOT NULL DEFAULT '',
    registered_at DOUBLE PRECISION NOT NULL,
    last_seen_at  DOUBLE PRECISION NOT NULL
);

CREATE TABLE tasks (
    id                BIGSERIAL PRIMARY KEY,
    sweep_id          BIGINT  NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    kind              TEXT    NOT NULL,            -- prepare | patch | debias
    description       TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    payload           TEXT    NOT NULL,            -- JSON arguments, by kind
    cost              BIGINT  NOT NULL DEFAULT 0,  -- patches the task computes
    state             TEXT    NOT NULL DEFAULT 'queued',
    attempt           BIGINT  NOT NULL DEFAULT 0,
    max_attempts      BIGINT  NOT NULL,
    worker_id         TEXT,
    lease_expires_at  DOUBLE PRECISION,
    not_before        DOUBLE PRECISION NOT NULL DEFAULT 0,  -- retry backoff
    error             TEXT,
    rows_stored       BIGINT  NOT NULL DEFAULT 0,
    stale_results     BIGINT  NOT NULL DEFAULT 0,
    lease_expirations BIGINT  NOT NULL DEFAULT 0,
    created_at        DOUBLE PRECISION NOT NULL,
    started_at        DOUBLE PRECISION,
    finished_at       DOUBLE PRECISION,
    CHECK (state IN ('waiting', 'queued', 'leased', 'done', 'failed', 'cancelled'))
);

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
       to_timestamp(t.created_at)       AS created_at,
       to_timestamp(t.started_at)       AS started_at,
       to_timestamp(t.finished_at)      AS finished_at,
       to_timestamp(t.lease_expires_at) AS lease_expires_at,
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
       to_timestamp(w.registered_at) AS registered_at,
       to_timestamp(w.last_seen_at)  AS last_seen_at,
       (SELECT COUNT(*) FROM tasks t WHERE t.worker_id = w.id AND t.state = 'leased') AS tasks_leased,
       (SELECT COUNT(*) FROM tasks t WHERE t.worker_id = w.id AND t.state = 'done')   AS tasks_done
FROM workers w;
