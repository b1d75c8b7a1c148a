-- The most GPU memory a worker process has held (its CUDA memory pool's high-water mark:
-- weights, cached runs and activations), reported with every heartbeat; 0 on the CPU, where
-- memory_bytes (the task memory budget) is the host figure.
ALTER TABLE workers ADD COLUMN device_memory_peak_bytes BIGINT NOT NULL DEFAULT 0;

DROP VIEW workers_v;
CREATE VIEW workers_v AS
SELECT w.id     AS worker_id,
       w.name   AS name,
       w.device AS device,
       w.memory_bytes AS memory_bytes,
       w.device_memory_peak_bytes AS device_memory_peak_bytes,
       w.models AS models,
       w.version AS version,
       to_timestamp(w.registered_at) AS registered_at,
       to_timestamp(w.last_seen_at)  AS last_seen_at,
       (SELECT COUNT(*) FROM tasks t WHERE t.worker_id = w.id AND t.state = 'leased') AS tasks_leased,
       (SELECT COUNT(*) FROM tasks t WHERE t.worker_id = w.id AND t.state = 'done')   AS tasks_done
FROM workers w;
