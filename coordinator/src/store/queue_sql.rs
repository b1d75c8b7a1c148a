//! The task queue's SQL, written once for both backends.
//!
//! [`queue_sql!`] expands to the same functions inside `sqlite.rs` and `postgres.rs`; the
//! SQL is portable (both accept `$N` parameters) except for the pieces the macro takes:
//! the clock expression, the row locks PostgreSQL needs for concurrent leases (SQLite has
//! one writer: its transactions begin IMMEDIATE), and the sweep timestamp expression.
//! Every function runs inside a transaction the caller opened and commits.

macro_rules! queue_sql {
    (
        conn = $conn:ty,
        now = $now:literal,
        sweep_now = $sweep_now:literal,
        skip_locked = $skip_locked:literal,
        lock_row = $lock_row:literal $(,)?
    ) => {

        use crate::store::error::db_error as queue_db_error;
        use crate::store::queue::{
            LeasedTask, NewTask, QueuePolicy, Settled, SweepProgress, TaskCounts, TaskFailure,
            WorkerInfo,
        };
        use crate::store::StoreError as QueueError;

        /// Stores a sweep (state `queued`) and its first tasks; returns the sweep id.
        pub(crate) async fn submit_in(
            tx: &mut $conn,
            url: &str,
            name: &str,
            spec: &str,
            model: &str,
            tasks: &[NewTask],
            max_attempts: i64,
        ) -> Result<i64, QueueError> {
            const STEP: &str = "submit sweep";
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO sweeps (name, spec, model, status) VALUES ($1, $2, $3, 'queued') \
                 RETURNING id",
            )
            .bind(name)
            .bind(spec)
            .bind(model)
            .fetch_one(&mut *tx)
            .await
            .map_err(queue_db_error(STEP, url))?;
            insert_tasks_in(tx, url, id, tasks, max_attempts).await?;
            Ok(id)
        }

        pub(crate) async fn insert_tasks_in(
            tx: &mut $conn,
            url: &str,
            sweep_id: i64,
            tasks: &[NewTask],
            max_attempts: i64,
        ) -> Result<(), QueueError> {
            let sql = format!(
                "INSERT INTO tasks (sweep_id, kind, description, model, payload, cost, \
                 max_attempts, state, created_at) VALUES ($1, $2, $3, \
                 (SELECT model FROM sweeps WHERE id = $1), $4, $5, $6, $7, {})",
                $now
            );
            for t in tasks {
                sqlx::query(&sql)
                    .bind(sweep_id)
                    .bind(&t.kind)
                    .bind(&t.description)
                    .bind(&t.payload)
                    .bind(t.cost)
                    .bind(max_attempts)
                    .bind(if t.waits { "waiting" } else { "queued" })
                    .execute(&mut *tx)
                    .await
                    .map_err(queue_db_error("store tasks", url))?;
            }
            Ok(())
        }

        pub(crate) async fn register_worker_in(
            tx: &mut $conn,
            url: &str,
            w: &WorkerInfo,
        ) -> Result<(), QueueError> {
            let models = serde_json::to_string(&w.models).unwrap_or_else(|_| "[]".into());
            let sql = format!(
                "INSERT INTO workers (id, name, device, memory_bytes, models, version, \
                 registered_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, {now}, {now}) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, device = excluded.device, \
                 memory_bytes = excluded.memory_bytes, models = excluded.models, \
                 version = excluded.version, last_seen_at = excluded.last_seen_at",
                now = $now
            );
            sqlx::query(&sql)
                .bind(&w.id)
                .bind(&w.name)
                .bind(&w.device)
                .bind(w.memory_bytes)
                .bind(models)
                .bind(&w.version)
                .execute(&mut *tx)
                .await
                .map_err(queue_db_error("register worker", url))?;
            Ok(())
        }

        /// Returns expired leases to the queue (or fails them on their last attempt) and
        /// answers the sweeps touched.
        pub(crate) async fn expire_leases_in(
            tx: &mut $conn,
            url: &str,
        ) -> Result<Vec<i64>, QueueError> {
            let sql = format!(
                "UPDATE tasks SET lease_expirations = lease_expirations + 1, \
                 state = CASE WHEN attempt >= max_attempts THEN 'failed' ELSE 'queued' END, \
                 error = CASE WHEN attempt >= max_attempts THEN \
                   'lease expired on attempt ' || attempt || ' of ' || max_attempts || \
                   ' (worker ' || COALESCE(worker_id, '?') || ' stopped heartbeating)' \
                   ELSE error END, \
                 finished_at = CASE WHEN attempt >= max_attempts THEN {now} END, \
                 lease_expires_at = NULL \
                 WHERE state = 'leased' AND lease_expires_at < {now} RETURNING sweep_id",
                now = $now
            );
            let mut sweeps: Vec<i64> = sqlx::query_scalar(&sql)
                .fetch_all(&mut *tx)
                .await
                .map_err(queue_db_error("expire leases", url))?;
            sweeps.sort_unstable();
            sweeps.dedup();
            Ok(sweeps)
        }

        /// Leases up to `max` runnable tasks, those for `model` first.
        pub(crate) async fn lease_in(
            tx: &mut $conn,
            url: &str,
            worker_id: &str,
            model: &str,
            max: i64,
            lease_seconds: f64,
        ) -> Result<Vec<LeasedTask>, QueueError> {
            const STEP: &str = "lease tasks";
            // Tasks for the worker's model first, then any; both walk the index on
            // (state, model, sweep_id, id) / (state, sweep_id, id) in order, with a LIMIT.
            let preferred = format!(
                "SELECT t.id FROM tasks t JOIN sweeps s ON s.id = t.sweep_id \
                 WHERE t.state = 'queued' AND t.model = $1 AND t.not_before <= {now} \
                 AND s.status IN ('queued', 'running') \
                 ORDER BY t.sweep_id, t.id LIMIT $2{skip}",
                now = $now,
                skip = $skip_locked
            );
            let any = format!(
                "SELECT t.id FROM tasks t JOIN sweeps s ON s.id = t.sweep_id \
                 WHERE t.state = 'queued' AND t.not_before <= {now} \
                 AND s.status IN ('queued', 'running') \
                 ORDER BY t.sweep_id, t.id LIMIT $1{skip}",
                now = $now,
                skip = $skip_locked
            );
            let mut ids: Vec<i64> = if model.is_empty() {
                Vec::new()
            } else {
                sqlx::query_scalar(&preferred)
                    .bind(model)
                    .bind(max)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(queue_db_error(STEP, url))?
            };
            if (ids.len() as i64) < max {
                let more: Vec<i64> = sqlx::query_scalar(&any)
                    .bind(max)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(queue_db_error(STEP, url))?;
                for id in more {
                    if (ids.len() as i64) < max && !ids.contains(&id) {
                        ids.push(id);
                    }
                }
            }
            let take = format!(
                "UPDATE tasks SET state = 'leased', attempt = attempt + 1, worker_id = $1, \
                 lease_expires_at = {now} + $2, started_at = {now} WHERE id = $3 \
                 RETURNING id, attempt, sweep_id, kind, model, payload, description",
                now = $now
            );
            let mut leased = Vec::with_capacity(ids.len());
            for id in ids {
                let row = sqlx::query(&take)
                    .bind(worker_id)
                    .bind(lease_seconds)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(queue_db_error(STEP, url))?;
                let sweep_id: i64 = row.get(2);
                let spec: String = sqlx::query_scalar("SELECT spec FROM sweeps WHERE id = $1")
                    .bind(sweep_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(queue_db_error(STEP, url))?;
                sqlx::query("UPDATE sweeps SET status = 'running' WHERE id = $1 AND status = 'queued'")
                    .bind(sweep_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(queue_db_error(STEP, url))?;
                leased.push(LeasedTask {
                    task_id: row.get(0),
                    attempt: row.get(1),
                    sweep_id,
                    kind: row.get(3),
                    model: row.get(4),
                    payload: row.get(5),
                    description: row.get(6),
                    spec_toml: spec,
                });
            }
            Ok(leased)
        }

        /// Extends the worker's leases; answers those it no longer holds.
        pub(crate) async fn heartbeat_in(
            tx: &mut $conn,
            url: &str,
            worker_id: &str,
            models: &[String],
            leases: &[(i64, i64)],
            lease_seconds: f64,
        ) -> Result<Vec<(i64, i64)>, QueueError> {
            const STEP: &str = "heartbeat";
            let seen = format!(
                "UPDATE workers SET last_seen_at = {now}, models = $2 WHERE id = $1",
                now = $now
            );
            sqlx::query(&seen)
                .bind(worker_id)
                .bind(serde_json::to_string(models).unwrap_or_else(|_| "[]".into()))
                .execute(&mut *tx)
                .await
                .map_err(queue_db_error(STEP, url))?;
            let extend = format!(
                "UPDATE tasks SET lease_expires_at = {now} + $1 \
                 WHERE id = $2 AND attempt = $3 AND worker_id = $4 AND state = 'leased'",
                now = $now
            );
            let mut lost = Vec::new();
            for &(task_id, attempt) in leases {
                let n = sqlx::query(&extend)
                    .bind(lease_seconds)
                    .bind(task_id)
                    .bind(attempt)
                    .bind(worker_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(queue_db_error(STEP, url))?
                    .rows_affected();
                if n == 0 {
                    lost.push((task_id, attempt));
                }
            }
            Ok(lost)
        }

        /// Checks that `worker_id` holds the lease of `task_id` under `attempt` (and locks
        /// the task row): `Ok((sweep_id, kind))`, or `Err(reason)` when it is stale.
        pub(crate) async fn fence_in(
            tx: &mut $conn,
            url: &str,
            task_id: i64,
            attempt: i64,
            worker_id: &str,
        ) -> Result<Result<(i64, String), String>, QueueError> {
            let sql = format!(
                "SELECT state, attempt, worker_id, sweep_id, kind FROM tasks WHERE id = $1{}",
                $lock_row
            );
            let row = sqlx::query(&sql)
                .bind(task_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(queue_db_error("check lease", url))?;
            let Some(row) = row else {
                return Ok(Err(format!("task {task_id} does not exist")));
            };
            let state: String = row.get(0);
            let current: i64 = row.get(1);
            let holder: Option<String> = row.get(2);
            if state == "leased" && current == attempt && holder.as_deref() == Some(worker_id) {
                return Ok(Ok((row.get(3), row.get(4))));
            }
            Ok(Err(format!(
                "stale lease: task {task_id} attempt {attempt} by worker {worker_id}, but the \
                 task is {state} at attempt {current}{}",
                holder
                    .filter(|h| h != worker_id)
                    .map(|h| format!(" (worker {h})"))
                    .unwrap_or_default()
            )))
        }

        pub(crate) async fn record_stale_in(
            tx: &mut $conn,
            url: &str,
            task_id: i64,
        ) -> Result<(), QueueError> {
            sqlx::query("UPDATE tasks SET stale_results = stale_results + 1 WHERE id = $1")
                .bind(task_id)
                .execute(&mut *tx)
                .await
                .map_err(queue_db_error("record stale result", url))?;
            Ok(())
        }

        pub(crate) async fn mark_done_in(
            tx: &mut $conn,
            url: &str,
            task_id: i64,
            rows: u64,
        ) -> Result<(), QueueError> {
            let sql = format!(
                "UPDATE tasks SET state = 'done', finished_at = {now}, lease_expires_at = NULL, \
                 error = NULL, rows_stored = rows_stored + $2 WHERE id = $1",
                now = $now
            );
            sqlx::query(&sql)
                .bind(task_id)
                .bind(rows as i64)
                .execute(&mut *tx)
                .await
                .map_err(queue_db_error("complete task", url))?;
            Ok(())
        }

        /// Records a failure of a fenced task: queued again after a backoff, or failed on
        /// its last attempt.
        pub(crate) async fn retry_or_fail_in(
            tx: &mut $conn,
            url: &str,
            task_id: i64,
            error: &str,
            permanent: bool,
            policy: &QueuePolicy,
        ) -> Result<Settled, QueueError> {
            const STEP: &str = "fail task";
            let (attempt, max): (i64, i64) =
                sqlx::query_as("SELECT attempt, max_attempts FROM tasks WHERE id = $1")
                    .bind(task_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(queue_db_error(STEP, url))?;
            if permanent || attempt >= max {
                let sql = format!(
                    "UPDATE tasks SET state = 'failed', error = $2, finished_at = {now}, \
                     lease_expires_at = NULL WHERE id = $1",
                    now = $now
                );
                sqlx::query(&sql)
                    .bind(task_id)
                    .bind(error)
                    .execute(&mut *tx)
                    .await
                    .map_err(queue_db_error(STEP, url))?;
                return Ok(Settled::Failed);
            }
            let retry_in = policy.backoff(attempt);
            let sql = format!(
                "UPDATE tasks SET state = 'queued', error = $2, not_before = {now} + $3, \
                 lease_expires_at = NULL WHERE id = $1",
                now = $now
            );
            sqlx::query(&sql)
                .bind(task_id)
                .bind(error)
                .bind(retry_in)
                .execute(&mut *tx)
                .await
                .map_err(queue_db_error(STEP, url))?;
            Ok(Settled::Requeued { retry_in })
        }

        /// Puts a fenced task back in the queue at once, its attempt not counted.
        pub(crate) async fn release_in(
            tx: &mut $conn,
            url: &str,
            task_id: i64,
        ) -> Result<(), QueueError> {
            sqlx::query(
                "UPDATE tasks SET state = 'queued', attempt = attempt - 1, \
                 lease_expires_at = NULL, worker_id = NULL WHERE id = $1",
            )
            .bind(task_id)
            .execute(&mut *tx)
            .await
            .map_err(queue_db_error("release task", url))?;
            Ok(())
        }

        /// Tasks of a sweep still queued or leased (index only).
        pub(crate) async fn active_in(
            tx: &mut $conn,
            url: &str,
            sweep_id: i64,
        ) -> Result<i64, QueueError> {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM tasks WHERE sweep_id = $1 AND state IN ('queued', 'leased')",
            )
            .bind(sweep_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(queue_db_error("settle sweep", url))
        }

        /// Sweeps not yet ended.
        pub(crate) async fn open_sweeps_in(
            tx: &mut $conn,
            url: &str,
        ) -> Result<Vec<i64>, QueueError> {
            sqlx::query_scalar("SELECT id FROM sweeps WHERE status IN ('queued', 'running')")
                .fetch_all(&mut *tx)
                .await
                .map_err(queue_db_error("settle sweeps", url))
        }

        /// After a task ended: starts the sweep's waiting tasks once nothing else is left,
        /// and gives the sweep its final state once nothing at all is left.
        pub(crate) async fn settle_sweep_in(
            tx: &mut $conn,
            url: &str,
            sweep_id: i64,
        ) -> Result<(), QueueError> {
            const STEP: &str = "settle sweep";
            // Settling takes turns per sweep: two last tasks finishing at once would each
            // see the other still running, and neither would end the sweep.
            let lock = format!("SELECT id FROM sweeps WHERE id = $1{}", $lock_row);
            sqlx::query(&lock)
                .bind(sweep_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(queue_db_error(STEP, url))?;
            sqlx::query(
                "UPDATE tasks SET state = 'queued' WHERE sweep_id = $1 AND state = 'waiting' \
                 AND NOT EXISTS (SELECT 1 FROM tasks o WHERE o.sweep_id = $1 \
                 AND o.state IN ('queued', 'leased'))",
            )
            .bind(sweep_id)
            .execute(&mut *tx)
            .await
            .map_err(queue_db_error(STEP, url))?;
            let (active, failed, prepare_failed): (i64, i64, i64) = sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(CASE WHEN state IN ('waiting', 'queued', 'leased') \
                 THEN 1 ELSE 0 END), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN state = 'failed' AND kind = 'prepare' THEN 1 ELSE 0 END), 0) AS BIGINT) \
                 FROM tasks WHERE sweep_id = $1",
            )
            .bind(sweep_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(queue_db_error(STEP, url))?;
            if active > 0 {
                return Ok(());
            }
            let state = if prepare_failed > 0 {
                "failed"
            } else if failed > 0 {
                "partial"
            } else {
                "done"
            };
            let sql = format!(
                "UPDATE sweeps SET status = $2, finished_at = {}, \
                 error = (SELECT error FROM tasks WHERE sweep_id = $1 AND state = 'failed' \
                          AND kind = 'prepare' LIMIT 1) \
                 WHERE id = $1 AND status IN ('queued', 'running')",
                $sweep_now
            );
            sqlx::query(&sql)
                .bind(sweep_id)
                .bind(state)
                .execute(&mut *tx)
                .await
                .map_err(queue_db_error(STEP, url))?;
            Ok(())
        }

        /// Cancels a sweep that has not ended, and its waiting, queued and leased tasks.
        pub(crate) async fn cancel_in(
            tx: &mut $conn,
            url: &str,
            sweep_id: i64,
        ) -> Result<(), QueueError> {
            const STEP: &str = "cancel sweep";
            let sql = format!(
                "UPDATE sweeps SET status = 'cancelled', finished_at = {} \
                 WHERE id = $1 AND status IN ('queued', 'running')",
                $sweep_now
            );
            let n = sqlx::query(&sql)
                .bind(sweep_id)
                .execute(&mut *tx)
                .await
                .map_err(queue_db_error(STEP, url))?
                .rows_affected();
            if n == 1 {
                sqlx::query(
                    "UPDATE tasks SET state = 'cancelled', lease_expires_at = NULL \
                     WHERE sweep_id = $1 AND state IN ('waiting', 'queued', 'leased')",
                )
                .bind(sweep_id)
                .execute(&mut *tx)
                .await
                .map_err(queue_db_error(STEP, url))?;
            }
            Ok(())
        }

        /// Queues a sweep's failed and cancelled tasks again, attempts from zero.
        pub(crate) async fn resume_in(
            tx: &mut $conn,
            url: &str,
            sweep_id: i64,
        ) -> Result<(), QueueError> {
            const STEP: &str = "resume sweep";
            sqlx::query(
                "UPDATE tasks SET state = CASE WHEN kind = 'debias' THEN 'waiting' ELSE 'queued' END, \
                 attempt = 0, error = NULL, not_before = 0, worker_id = NULL, finished_at = NULL \
                 WHERE sweep_id = $1 AND state IN ('failed', 'cancelled')",
            )
            .bind(sweep_id)
            .execute(&mut *tx)
            .await
            .map_err(queue_db_error(STEP, url))?;
            sqlx::query(
                "UPDATE sweeps SET status = 'running', finished_at = NULL, error = NULL \
                 WHERE id = $1",
            )
            .bind(sweep_id)
            .execute(&mut *tx)
            .await
            .map_err(queue_db_error(STEP, url))?;
            settle_sweep_in(tx, url, sweep_id).await
        }

        /// Where a sweep stands; `None` when it does not exist.
        pub(crate) async fn progress_in(
            tx: &mut $conn,
            url: &str,
            sweep_id: i64,
            lease_seconds: f64,
        ) -> Result<Option<SweepProgress>, QueueError> {
            const STEP: &str = "read sweep";
            let sweep = sqlx::query(
                "SELECT id, name, model, status, error, CAST(created_at AS TEXT), \
                 CAST(finished_at AS TEXT) FROM sweeps WHERE id = $1",
            )
            .bind(sweep_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(queue_db_error(STEP, url))?;
            let Some(sweep) = sweep else {
                return Ok(None);
            };
            let mut p = SweepProgress {
                sweep_id: sweep.get(0),
                name: sweep.get(1),
                model: sweep.get(2),
                state: sweep.get(3),
                error: sweep.get(4),
                created_at: sweep.get(5),
                finished_at: sweep.get(6),
                ..Default::default()
            };
            let counts: Vec<(String, i64)> = sqlx::query_as(
                "SELECT state, COUNT(*) FROM tasks WHERE sweep_id = $1 GROUP BY state",
            )
            .bind(sweep_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(queue_db_error(STEP, url))?;
            let mut c = TaskCounts::default();
            for (state, n) in counts {
                match state.as_str() {
                    "waiting" => c.waiting = n,
                    "queued" => c.queued = n,
                    "leased" => c.leased = n,
                    "done" => c.done = n,
                    "failed" => c.failed = n,
                    _ => c.cancelled += n,
                }
            }
            p.tasks = c;
            let sums = format!(
                "SELECT CAST(COALESCE(SUM(cost), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN state = 'done' THEN cost ELSE 0 END), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN state = 'done' AND kind = 'patch' THEN rows_stored ELSE 0 END), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN attempt > 1 THEN attempt - 1 ELSE 0 END), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(stale_results), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(lease_expirations), 0) AS BIGINT), \
                 CAST(COALESCE(MAX(CASE WHEN state IN ('waiting', 'queued', 'leased') THEN {now} \
                   ELSE finished_at END) - MIN(started_at), 0) AS DOUBLE PRECISION) \
                 FROM tasks WHERE sweep_id = $1",
                now = $now
            );
            let row = sqlx::query(&sums)
                .bind(sweep_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(queue_db_error(STEP, url))?;
            p.patches_total = row.get(0);
            p.patches_done = row.get(1);
            p.effects_stored = row.get(2);
            p.retries = row.get(3);
            p.stale_results = row.get(4);
            p.lease_expirations = row.get(5);
            p.elapsed_seconds = row.try_get::<Option<f64>, _>(6).ok().flatten().unwrap_or(0.0);
            let live = format!(
                "SELECT COUNT(*) FROM workers WHERE last_seen_at > {now} - $1",
                now = $now
            );
            p.workers = sqlx::query_scalar(&live)
                .bind(lease_seconds)
                .fetch_one(&mut *tx)
                .await
                .map_err(queue_db_error(STEP, url))?;
            let failures = sqlx::query(
                "SELECT id, description, COALESCE(error, ''), attempt FROM tasks \
                 WHERE sweep_id = $1 AND state = 'failed' ORDER BY id LIMIT 20",
            )
            .bind(sweep_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(queue_db_error(STEP, url))?;
            let figures = sqlx::query(
                "SELECT debias, intervention, split, metric, before, after, control_after \
                 FROM debias_results WHERE sweep_id = $1 \
                 ORDER BY debias, intervention, split, metric",
            )
            .bind(sweep_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(queue_db_error(STEP, url))?;
            p.debias = figures
                .iter()
                .map(|r| crate::store::queue::DebiasFigure {
                    debias: r.get(0),
                    intervention: r.get(1),
                    split: r.get(2),
                    metric: r.get(3),
                    before: r.get(4),
                    after: r.get(5),
                    control_after: r.get(6),
                })
                .collect();
            p.failures = failures
                .iter()
                .map(|r| TaskFailure {
                    task_id: r.get(0),
                    description: r.get(1),
                    error: r.get(2),
                    attempts: r.get(3),
                })
                .collect();
            Ok(Some(p))
        }

        /// Stores the seeded splits of the debias sections.
        pub(crate) async fn insert_splits_in(
            tx: &mut $conn,
            url: &str,
            sweep_id: i64,
            members: &[(String, String, String)],
        ) -> Result<(), QueueError> {
            for (debias, pair_id, part) in members {
                sqlx::query(
                    "INSERT INTO debias_splits (sweep_id, debias, pair_id, part) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(sweep_id)
                .bind(debias)
                .bind(pair_id)
                .bind(part)
                .execute(&mut *tx)
                .await
                .map_err(queue_db_error("store debias splits", url))?;
            }
            Ok(())
        }

        /// An experiment's mean |normalized effect| per component, over the selection
        /// pairs of a debias section only (held-out pairs never inform the selection).
        pub(crate) async fn selection_effects_in(
            tx: &mut $conn,
            url: &str,
            sweep_id: i64,
            debias: &str,
            experiment: &str,
        ) -> Result<Vec<(String, i64, Option<i64>, Option<String>, f64)>, QueueError> {
            let rows = sqlx::query(
                "SELECT e.component, CAST(e.layer AS BIGINT), CAST(e.head AS BIGINT), \
                 e.position_label, CAST(AVG(ABS(e.normalized)) AS DOUBLE PRECISION) \
                 FROM effects_v e JOIN debias_splits d ON d.sweep_id = e.sweep_id \
                 AND d.pair_id = e.pair_id AND d.debias = $2 AND d.part = 'selection' \
                 WHERE e.sweep_id = $1 AND e.experiment = $3 AND e.normalized IS NOT NULL \
                 AND e.layer IS NOT NULL \
                 GROUP BY e.component, e.layer, e.head, e.position_label",
            )
            .bind(sweep_id)
            .bind(debias)
            .bind(experiment)
            .fetch_all(&mut *tx)
            .await
            .map_err(queue_db_error("read selection effects", url))?;
            Ok(rows
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
                .collect())
        }

        /// Stores a debias task's rows (JSON array of [`DebiasRow`]); answers how many.
        pub(crate) async fn insert_debias_in(
            tx: &mut $conn,
            url: &str,
            sweep_id: i64,
            task_id: i64,
            rows_json: &str,
        ) -> Result<u64, QueueError> {
            const STEP: &str = "store debias results";
            let rows: Vec<crate::store::DebiasRow> =
                serde_json::from_str(rows_json).map_err(|e| QueueError::InvalidInput {
                    step: STEP,
                    message: format!("debias rows are not valid JSON rows: {e}"),
                })?;
            let mut n = 0;
            for r in &rows {
                n += sqlx::query(
                    "INSERT INTO debias_results (sweep_id, debias, intervention, components, \
                     split, metric, before, after, control_after, control_components, task_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
                )
                .bind(sweep_id)
                .bind(&r.debias)
                .bind(&r.intervention)
                .bind(&r.components)
                .bind(&r.split)
                .bind(&r.metric)
                .bind(r.before)
                .bind(r.after)
                .bind(r.control_after)
                .bind(&r.control_components)
                .bind(task_id)
                .execute(&mut *tx)
                .await
                .map_err(queue_db_error(STEP, url))?
                .rows_affected();
            }
            Ok(n)
        }

        /// Totals over every sweep, for the coordinator's Prometheus metrics.
        pub(crate) async fn totals_in(
            tx: &mut $conn,
            url: &str,
            lease_seconds: f64,
        ) -> Result<crate::store::queue::QueueTotals, QueueError> {
            const STEP: &str = "read totals";
            let tasks_by_state: Vec<(String, i64)> =
                sqlx::query_as("SELECT state, COUNT(*) FROM tasks GROUP BY state ORDER BY state")
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(queue_db_error(STEP, url))?;
            let (expirations, retries, stale, rows): (i64, i64, i64, i64) = sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(lease_expirations), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN attempt > 1 THEN attempt - 1 ELSE 0 END), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(stale_results), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN kind = 'patch' THEN rows_stored ELSE 0 END), 0) AS BIGINT) \
                 FROM tasks",
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(queue_db_error(STEP, url))?;
            let live = format!(
                "SELECT COUNT(*) FROM workers WHERE last_seen_at > {now} - $1",
                now = $now
            );
            let workers: i64 = sqlx::query_scalar(&live)
                .bind(lease_seconds)
                .fetch_one(&mut *tx)
                .await
                .map_err(queue_db_error(STEP, url))?;
            Ok(crate::store::queue::QueueTotals {
                tasks_by_state,
                lease_expirations: expirations,
                retries,
                stale_results: stale,
                effects_stored: rows,
                workers,
            })
        }

        pub(crate) async fn sweep_ids_in(
            tx: &mut $conn,
            url: &str,
            limit: i64,
        ) -> Result<Vec<i64>, QueueError> {
            sqlx::query_scalar("SELECT id FROM sweeps ORDER BY id DESC LIMIT $1")
                .bind(limit)
                .fetch_all(&mut *tx)
                .await
                .map_err(queue_db_error("list sweeps", url))
        }
    };
}

pub(crate) use queue_sql;
