//! The coordinator's core: sweeps in, tasks out, results back — all through the store.
//!
//! It holds no state the database lacks: kill the process, start it again on the same
//! database, and every sweep goes on. The gRPC server (`server/`) and the embedded `run`
//! both call this same type.

use patchsweep_api::args::{PrepareTask, TaskArgs};
use patchsweep_api::spec::{ParsedSpec, SpecError, SweepSpec};
pub use patchsweep_api::Registration;
use patchsweep_api::{
    HeldLease, HeldSweep, LeasedTask, NewTask, Settled, SweepProgress, TaskOutput, WorkerInfo,
    WorkerStatus,
};

use crate::store::{LeaseScope, QueuePolicy, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid request: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone)]
pub struct Coordinator {
    store: Store,
    policy: QueuePolicy,
}

impl Coordinator {
    pub fn new(store: Store, policy: QueuePolicy) -> Self {
        Self { store, policy }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn policy(&self) -> &QueuePolicy {
        &self.policy
    }

    /// Validates the whole spec (everything that needs no model), then stores the sweep and
    /// its prepare task. Nothing is stored for an invalid spec.
    pub async fn submit(&self, spec_toml: &str, origin: &str) -> Result<i64, CoordinatorError> {
        let parsed = SweepSpec::parse(spec_toml, origin)?;
        self.submit_parsed(&parsed, spec_toml).await
    }

    /// [`Coordinator::submit`] of a spec its caller parsed (and so validated) already from
    /// `spec_toml`: the embedded `run` parses once.
    pub async fn submit_parsed(
        &self,
        parsed: &ParsedSpec,
        spec_toml: &str,
    ) -> Result<i64, CoordinatorError> {
        let prepare = NewTask {
            args: TaskArgs::Prepare(PrepareTask::default()),
            description: format!("prepare {}", parsed.spec.name),
            cost: 0,
            stage: 0,
        };
        Ok(self
            .store
            .submit_sweep(
                &parsed.spec.name,
                spec_toml,
                &parsed.spec.model,
                parsed.spec.metric.min_span(),
                parsed.spec.metric.kind.neutral(),
                &[prepare],
                &self.policy,
            )
            .await?)
    }

    pub async fn register(&self, mut info: WorkerInfo) -> Result<Registration, CoordinatorError> {
        if info.name.trim().is_empty() {
            return Err(CoordinatorError::Invalid("worker name is empty".into()));
        }
        if info.id.is_empty() {
            info.id = format!("{}-{:08x}", info.name, rand::random::<u32>());
        }
        self.store.register_worker(&info).await?;
        Ok(Registration {
            worker_id: info.id,
            lease_seconds: self.policy.lease_seconds,
            heartbeat_seconds: self.policy.lease_seconds / 4.0,
        })
    }

    /// Up to `max` tasks (1..=64), those for the first of `models` first. A task of a
    /// sweep the worker holds (`held`, same spec digest) comes without its spec text.
    pub async fn lease(
        &self,
        worker_id: &str,
        models: &[String],
        held: &[HeldSweep],
        max: usize,
    ) -> Result<Vec<LeasedTask>, CoordinatorError> {
        self.lease_of(worker_id, models, held, max, None).await
    }

    /// A lease limited to one sweep's tasks when `only_sweep` names one (the embedded
    /// `run` takes only its own sweep's tasks).
    pub async fn lease_of(
        &self,
        worker_id: &str,
        models: &[String],
        held: &[HeldSweep],
        max: usize,
        only_sweep: Option<i64>,
    ) -> Result<Vec<LeasedTask>, CoordinatorError> {
        let preferred = models.first().map(String::as_str).unwrap_or("");
        let scope = LeaseScope {
            model: preferred,
            models: Some(models),
            only_sweep,
            held,
            max: max.clamp(1, 64),
        };
        Ok(self
            .store
            .lease_scoped(worker_id, &scope, &self.policy)
            .await?)
    }

    pub async fn heartbeat(
        &self,
        worker_id: &str,
        status: &WorkerStatus,
        leases: &[HeldLease],
    ) -> Result<Vec<(i64, i64)>, CoordinatorError> {
        Ok(self
            .store
            .heartbeat(worker_id, status, leases, &self.policy)
            .await?)
    }

    pub async fn complete(
        &self,
        worker_id: &str,
        task_id: i64,
        attempt: i64,
        output: &TaskOutput,
    ) -> Result<Settled, CoordinatorError> {
        let settled = self
            .store
            .complete_task(worker_id, task_id, attempt, output, &self.policy)
            .await?;
        if let Settled::Stale { reason } = &settled {
            tracing::warn!(task_id, attempt, worker_id, "result refused: {reason}");
        }
        Ok(settled)
    }

    /// A worker's failure report; `permanent` errors (the spec does not fit the model)
    /// fail the task at once instead of retrying.
    pub async fn fail(
        &self,
        worker_id: &str,
        task_id: i64,
        attempt: i64,
        error: &str,
        permanent: bool,
    ) -> Result<Settled, CoordinatorError> {
        let settled = self
            .store
            .fail_task(worker_id, task_id, attempt, error, permanent, &self.policy)
            .await?;
        tracing::info!(
            task_id,
            attempt,
            worker_id,
            ?settled,
            "task failed: {error}"
        );
        Ok(settled)
    }

    pub async fn release(
        &self,
        worker_id: &str,
        task_id: i64,
        attempt: i64,
    ) -> Result<bool, CoordinatorError> {
        Ok(self.store.release_task(worker_id, task_id, attempt).await?)
    }

    pub async fn progress(&self, sweep_id: i64) -> Result<SweepProgress, CoordinatorError> {
        Ok(self.store.sweep_progress(sweep_id, &self.policy).await?)
    }

    pub async fn list(&self, limit: usize) -> Result<Vec<SweepProgress>, CoordinatorError> {
        Ok(self.store.list_sweeps(limit, &self.policy).await?)
    }

    pub async fn cancel(&self, sweep_id: i64) -> Result<SweepProgress, CoordinatorError> {
        Ok(self.store.cancel_sweep(sweep_id, &self.policy).await?)
    }

    pub async fn resume(&self, sweep_id: i64) -> Result<SweepProgress, CoordinatorError> {
        Ok(self.store.resume_sweep(sweep_id, &self.policy).await?)
    }

    /// Returns expired leases to the queue; the server runs this periodically so sweeps
    /// move on even when no worker asks for work.
    pub async fn expire_leases(&self) -> Result<usize, CoordinatorError> {
        Ok(self.store.expire_leases().await?)
    }
}
