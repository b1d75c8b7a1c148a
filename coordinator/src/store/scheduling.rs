//! The task queue on [`Store`]: every call is one transaction on either backend, running
//! the SQL of `queue_sql/` (written once for both) and, for a task's results, the
//! backend's own bulk inserts (`q::`).

use patchsweep_api::{HeldLease, TaskArgs, WorkerStatus};

use super::queue::{
    LeaseScope, LeasedTask, NewTask, QueuePolicy, Settled, SweepProgress, TaskOutput, WorkerInfo,
};
use super::queue_sql;
use super::rows::StoredPair;
use super::{Store, StoreError};

impl Store {
    /// Stores a new sweep (state `queued`) with its first tasks, in one transaction;
    /// `min_span` is its `[metric] min_span` (pairs below it are weak, see `cells_v`),
    /// `metric_neutral` the metric's value with no preference (a reversal crosses it).
    #[allow(clippy::too_many_arguments)]
    pub async fn submit_sweep(
        &self,
        name: &str,
        spec_toml: &str,
        model: &str,
        min_span: f64,
        metric_neutral: f64,
        tasks: &[NewTask],
        policy: &QueuePolicy,
    ) -> Result<i64, StoreError> {
        Ok(in_tx!(self, "submit sweep", |tx, url| {
            queue_sql::submit_in(
                tx,
                url,
                name,
                spec_toml,
                model,
                min_span,
                metric_neutral,
                tasks,
                policy.max_attempts,
            )
            .await?
        }))
    }

    /// Records a worker (or refreshes one that registers again under the same id).
    pub async fn register_worker(&self, worker: &WorkerInfo) -> Result<(), StoreError> {
        in_tx!(self, "register worker", |tx, url| {
            queue_sql::register_worker_in(tx, url, worker).await?
        });
        Ok(())
    }

    /// Returns expired leases to the queue, then leases up to `max` tasks to the worker,
    /// tasks for `model` first (each with its spec text).
    pub async fn lease_tasks(
        &self,
        worker_id: &str,
        model: &str,
        max: usize,
        policy: &QueuePolicy,
    ) -> Result<Vec<LeasedTask>, StoreError> {
        let scope = LeaseScope {
            model,
            models: None,
            only_sweep: None,
            held: &[],
            max,
        };
        self.lease_scoped(worker_id, &scope, policy).await
    }

    /// [`Store::lease_tasks`] within `scope`: one sweep's tasks only when it names one,
    /// and without the spec text of the sweeps the worker holds. A leased debias task's
    /// arguments get its section's selection effects and stored split.
    pub async fn lease_scoped(
        &self,
        worker_id: &str,
        scope: &LeaseScope<'_>,
        policy: &QueuePolicy,
    ) -> Result<Vec<LeasedTask>, StoreError> {
        let (touched, leased) = in_tx!(self, "lease tasks", |tx, url| {
            queue_sql::touch_worker_in(tx, url, worker_id, policy.seen_resolution()).await?;
            if let Some(models) = scope.models {
                queue_sql::record_models_in(tx, url, worker_id, models).await?;
            }
            let mut touched = queue_sql::expire_leases_in(tx, url).await?;
            let queue_sql::Leased {
                tasks: mut leased,
                failed_sweeps,
            } = queue_sql::lease_in(tx, url, worker_id, scope, policy.lease_seconds).await?;
            touched.extend(failed_sweeps);
            for t in leased.iter_mut() {
                let sweep_id = t.sweep_id;
                match &mut t.args {
                    TaskArgs::Patch(args) if args.selected => {
                        for r in args.rankings.iter_mut() {
                            r.sites =
                                queue_sql::ranking_in(tx, url, sweep_id, &r.selection).await?;
                            queue_sql::store_selected_sites_in(
                                tx,
                                url,
                                sweep_id,
                                &args.experiment,
                                &r.selection,
                                &r.sites,
                            )
                            .await?;
                            r.sites
                                .truncate(r.selection.top_k.last().copied().unwrap_or(0));
                        }
                    }
                    TaskArgs::Debias(args) => {
                        args.effects = queue_sql::selection_effects_in(
                            tx,
                            url,
                            sweep_id,
                            &args.name,
                            &args.experiment,
                        )
                        .await?;
                        args.split =
                            Some(queue_sql::stored_split_in(tx, url, sweep_id, &args.name).await?);
                    }
                    _ => {}
                }
            }
            (touched, leased)
        });
        for sweep_id in touched {
            self.settle_if_idle(sweep_id).await?;
        }
        Ok(leased)
    }

    /// Returns expired leases to the queue without leasing anything, and settles every
    /// open sweep with nothing left to run (also one whose last task finished just before
    /// a crash); answers how many leases sweeps were touched.
    pub async fn expire_leases(&self) -> Result<usize, StoreError> {
        let (touched, open) = in_tx!(self, "expire leases", |tx, url| {
            let touched = queue_sql::expire_leases_in(tx, url).await?;
            (touched, queue_sql::open_sweeps_in(tx, url).await?)
        });
        for &sweep_id in &open {
            self.settle_if_idle(sweep_id).await?;
        }
        Ok(touched.len())
    }

    /// Extends the worker's leases `(task_id, attempt)`; answers those it lost.
    pub async fn heartbeat(
        &self,
        worker_id: &str,
        status: &WorkerStatus,
        leases: &[HeldLease],
        policy: &QueuePolicy,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(in_tx!(self, "heartbeat", |tx, url| {
            queue_sql::heartbeat_in(tx, url, worker_id, status, leases, policy.lease_seconds)
                .await?
        }))
    }

    /// Stores a task's output and its completion in one transaction, if the worker still
    /// holds the lease of `attempt`; a stale result is refused and counted.
    pub async fn complete_task(
        &self,
        worker_id: &str,
        task_id: i64,
        attempt: i64,
        output: &TaskOutput,
        policy: &QueuePolicy,
    ) -> Result<Settled, StoreError> {
        let pairs = match output {
            TaskOutput::Prepare(p) => p
                .pairs
                .iter()
                .map(StoredPair::from_row)
                .collect::<Result<Vec<_>, _>>()?,
            _ => Vec::new(),
        };
        let (settled, sweep) = in_tx!(self, "complete task", |tx, url| {
            queue_sql::touch_worker_in(tx, url, worker_id, policy.seen_resolution()).await?;
            match queue_sql::fence_in(tx, url, task_id, attempt, worker_id).await? {
                Err(reason) => {
                    queue_sql::record_stale_in(tx, url, task_id).await?;
                    (Settled::Stale { reason }, None)
                }
                Ok((sweep_id, _kind)) => {
                    let rows = match output {
                        TaskOutput::Patch(effects) => {
                            q::insert_effects_in(tx, url, sweep_id, effects).await?
                        }
                        TaskOutput::Lens(rows) => {
                            q::insert_lens_in(tx, url, sweep_id, rows).await?
                        }
                        TaskOutput::Prepare(p) => {
                            for (name, method, direction) in &p.experiments {
                                queue_sql::add_experiment_in(
                                    tx, url, sweep_id, name, method, direction,
                                )
                                .await?;
                            }
                            q::insert_pairs_in(tx, url, sweep_id, &pairs).await?;
                            queue_sql::set_dropped_in(tx, url, sweep_id, &p.dropped).await?;
                            queue_sql::insert_dropped_pairs_in(tx, url, sweep_id, &p.dropped_pairs)
                                .await?;
                            queue_sql::insert_splits_in(tx, url, sweep_id, &p.splits).await?;
                            queue_sql::insert_tasks_in(
                                tx,
                                url,
                                sweep_id,
                                &p.tasks,
                                policy.max_attempts,
                            )
                            .await?;
                            pairs.len() as u64
                        }
                        TaskOutput::Debias { rows, benchmarks } => {
                            queue_sql::insert_debias_in(tx, url, sweep_id, task_id, rows).await?
                                + queue_sql::insert_benchmarks_in(tx, url, sweep_id, benchmarks)
                                    .await?
                        }
                        TaskOutput::Benchmark(rows) => {
                            queue_sql::insert_benchmarks_in(tx, url, sweep_id, rows).await?
                        }
                        TaskOutput::Generate(rows) => {
                            queue_sql::insert_generations_in(tx, url, sweep_id, rows).await?
                        }
                    };
                    queue_sql::mark_done_in(tx, url, task_id, rows).await?;
                    (Settled::Completed { rows }, Some(sweep_id))
                }
            }
        });
        if let Some(sweep_id) = sweep {
            self.settle_if_idle(sweep_id).await?;
        }
        Ok(settled)
    }

    /// Ends the sweep (or starts its waiting tasks) when nothing is queued or leased.
    ///
    /// Runs in its own transaction after the one that finished a task has committed: of
    /// two tasks finishing at once, the later check sees both, so the last one always
    /// settles the sweep, without serializing every completion on the sweep row.
    async fn settle_if_idle(&self, sweep_id: i64) -> Result<(), StoreError> {
        in_tx!(self, "settle sweep", |tx, url| {
            if queue_sql::active_in(tx, url, sweep_id).await? == 0 {
                queue_sql::settle_sweep_in(tx, url, sweep_id).await?;
            }
        });
        Ok(())
    }

    /// Records a worker's failure of a task it holds: retried after a backoff, or failed
    /// on its last attempt or when `permanent` (the sweep goes on). A stale report is
    /// refused.
    #[allow(clippy::too_many_arguments)]
    pub async fn fail_task(
        &self,
        worker_id: &str,
        task_id: i64,
        attempt: i64,
        error: &str,
        permanent: bool,
        policy: &QueuePolicy,
    ) -> Result<Settled, StoreError> {
        Ok(in_tx!(self, "fail task", |tx, url| {
            queue_sql::touch_worker_in(tx, url, worker_id, policy.seen_resolution()).await?;
            match queue_sql::fence_in(tx, url, task_id, attempt, worker_id).await? {
                Err(reason) => Settled::Stale { reason },
                Ok((sweep_id, _)) => {
                    let settled =
                        queue_sql::retry_or_fail_in(tx, url, task_id, error, permanent, policy)
                            .await?;
                    queue_sql::settle_sweep_in(tx, url, sweep_id).await?;
                    settled
                }
            }
        }))
    }

    /// Hands a lease back unfinished; answers whether the worker held it.
    pub async fn release_task(
        &self,
        worker_id: &str,
        task_id: i64,
        attempt: i64,
    ) -> Result<bool, StoreError> {
        Ok(in_tx!(self, "release task", |tx, url| {
            // Rare (a draining worker): always written.
            queue_sql::touch_worker_in(tx, url, worker_id, 0.0).await?;
            match queue_sql::fence_in(tx, url, task_id, attempt, worker_id).await? {
                Err(_) => false,
                Ok(_) => {
                    queue_sql::release_in(tx, url, task_id).await?;
                    true
                }
            }
        }))
    }

    /// Cancels a sweep that has not ended (its tasks too); answers its progress.
    pub async fn cancel_sweep(
        &self,
        sweep_id: i64,
        policy: &QueuePolicy,
    ) -> Result<SweepProgress, StoreError> {
        in_tx!(self, "cancel sweep", |tx, url| {
            queue_sql::cancel_in(tx, url, sweep_id).await?
        });
        self.sweep_progress(sweep_id, policy).await
    }

    /// Queues a sweep's failed and cancelled tasks again; answers its progress.
    pub async fn resume_sweep(
        &self,
        sweep_id: i64,
        policy: &QueuePolicy,
    ) -> Result<SweepProgress, StoreError> {
        self.sweep_progress(sweep_id, policy).await?;
        in_tx!(self, "resume sweep", |tx, url| {
            queue_sql::resume_in(tx, url, sweep_id).await?
        });
        self.sweep_progress(sweep_id, policy).await
    }

    /// Where a sweep stands.
    pub async fn sweep_progress(
        &self,
        sweep_id: i64,
        policy: &QueuePolicy,
    ) -> Result<SweepProgress, StoreError> {
        let found = in_tx!(self, "read sweep", |tx, url| {
            queue_sql::progress_in(tx, url, sweep_id, policy.lease_seconds).await?
        });
        found.ok_or(StoreError::SweepNotFound {
            step: "read sweep",
            sweep_id,
        })
    }

    /// Totals over every sweep, for metrics.
    pub async fn queue_totals(
        &self,
        policy: &QueuePolicy,
    ) -> Result<super::queue::QueueTotals, StoreError> {
        Ok(in_tx!(self, "read totals", |tx, url| {
            queue_sql::totals_in(tx, url, policy.lease_seconds).await?
        }))
    }

    /// The newest sweeps, newest first.
    pub async fn list_sweeps(
        &self,
        limit: usize,
        policy: &QueuePolicy,
    ) -> Result<Vec<SweepProgress>, StoreError> {
        let ids = in_tx!(self, "list sweeps", |tx, url| {
            queue_sql::sweep_ids_in(tx, url, limit as i64).await?
        });
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.sweep_progress(id, policy).await?);
        }
        Ok(out)
    }
}
