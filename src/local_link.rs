//! The in-process link of the embedded `run`: the worker loop calls the coordinator core
//! directly, no sockets. It lives here, with the binary that links both sides, so the
//! worker crate does not depend on the coordinator.

use patchsweep_api::{
    HeldLease, HeldSweep, LeasedTask, Registration, Settled, TaskOutput, WorkerInfo, WorkerStatus,
};
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
        held: &[HeldSweep],
        max: usize,
    ) -> Result<Vec<LeasedTask>, LinkError> {
        self.coordinator
            .lease_of(worker_id, models, held, max, self.only_sweep)
            .await
            .map_err(err)
    }

    async fn heartbeat(
        &self,
        worker_id: &str,
        status: &WorkerStatus,
        leases: &[HeldLease],
    ) -> Result<Vec<(i64, i64)>, LinkError> {
        self.coordinator
            .heartbeat(worker_id, status, leases)
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

#[cfg(test)]
mod tests {
    use patchsweep_api::spec_digest;
    use patchsweep_coordinator::store::{QueuePolicy, Store};

    use super::*;

    /// The embedded worker names the sweep it adopted when it leases, as a remote worker
    /// does: its tasks come without the spec text.
    #[tokio::test]
    async fn a_held_sweep_s_tasks_come_without_their_spec() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("r.db").display());
        let coordinator =
            Coordinator::new(Store::connect(&url).await.unwrap(), QueuePolicy::default());
        let spec = format!(
            "name = \"local\"\nmodel = \"{}/model/tests/data/tiny-llama2\"\n\n[metric]\n\
             kind = \"logit_diff\"\npositive = [\" to\"]\nnegative = [\" the\"]\n\n[dataset]\n\
             pairs = [{{ clean = \"The cat said that\", corrupt = \"The bat said that\" }}]\n\n\
             [[experiment]]\nname = \"resid\"\nmethod = \"activation\"\n\
             components = [\"resid_pre\"]\n",
            env!("CARGO_MANIFEST_DIR")
        );
        let sweep_id = coordinator.submit(&spec, "test").await.unwrap();
        let link = LocalLink {
            coordinator: coordinator.clone(),
            only_sweep: Some(sweep_id),
        };
        let worker = link
            .register(WorkerInfo::new("embedded", "cpu"))
            .await
            .unwrap()
            .worker_id;
        let held = [HeldSweep {
            sweep_id,
            spec_digest: spec_digest(&spec),
        }];
        let task = link.lease(&worker, &[], &held, 1).await.unwrap().remove(0);
        assert_eq!(task.sweep_id, sweep_id);
        assert_eq!(task.spec_toml, None);
        assert_eq!(task.spec_digest, spec_digest(&spec));
    }
}
