//! The in-process link of the embedded `run`: the worker loop calls the coordinator core
//! directly, no sockets. It lives here, with the binary that links both sides, so the
//! worker crate does not depend on the coordinator.

use patchsweep_api::{LeasedTask, Registration, Settled, TaskOutput, WorkerInfo};
use patchsweep_coordinator::service::{Coordinator, CoordinatorError};
use patchsweep_coordinator::store::StoreError;
use patchsweep_worker::link::{Link, LinkError};

pub struct LocalLink {
    pub coordinator: Coordinator,
    /// The one sweep this worker takes tasks of (the embedded `run`'s own).
    pub only_sweep: Option<i64>,
}

fn err(e: CoordinatorError) -> LinkError {
    match e {
        CoordinatorError::Store(StoreError::Connect { .. } | StoreError::Database { .. }) => {
            LinkError::Unavailable(e.to_string())
        }
        other => LinkError::Refused(other.to_string()),
    }
}

impl Link for LocalLink {
    async fn register(&self, info: WorkerInfo) -> Result<Registration, LinkError> {
        self.coordinator.register(info).await.map_err(err)
    }

    async fn lease(
        &self,
        worker_id: &str,
        models: &[String],
        max: usize,
    ) -> Result<Vec<LeasedTask>, LinkError> {
        self.coordinator
            .lease_of(worker_id, models, max, self.only_sweep)
            .await
            .map_err(err)
    }

    async fn heartbeat(
        &self,
        worker_id: &str,
        models: &[String],
        leases: &[(i64, i64)],
    ) -> Result<Vec<(i64, i64)>, LinkError> {
        self.coordinator
            .heartbeat(worker_id, models, leases)
            .await
            .map_err(err)
    }

    async fn complete(
        &self,
        worker_id: &str,
        task: &LeasedTask,
        output: &TaskOutput,
        _compute_seconds: f64,
    ) -> Result<Settled, LinkError> {
        self.coordinator
            .complete(worker_id, task.task_id, task.attempt, output)
            .await
            .map_err(err)
    }

    async fn fail(
        &self,
        worker_id: &str,
        task: &LeasedTask,
        error: &str,
        permanent: bool,
    ) -> Result<Settled, LinkError> {
        self.coordinator
            .fail(worker_id, task.task_id, task.attempt, error, permanent)
            .await
            .map_err(err)
    }

    async fn release(&self, worker_id: &str, task: &LeasedTask) -> Result<bool, LinkError> {
        self.coordinator
            .release(worker_id, task.task_id, task.attempt)
            .await
            .map_err(err)
    }
}
