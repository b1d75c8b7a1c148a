//! What a worker asks of its coordinator. One trait, two wirings: gRPC for a cluster, a
//! direct call for the embedded `run` — the worker loop is the same.

use std::future::Future;

use patchsweep_api::{
    HeldLease, HeldSweep, LeasedTask, Registration, Settled, TaskOutput, WorkerInfo, WorkerStatus,
};

#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    /// The coordinator could not be reached or answered with a transient error: retry.
    #[error("coordinator unavailable: {0}")]
    Unavailable(String),
    /// The coordinator refused the call (wrong token, invalid request): do not retry.
    #[error("coordinator refused: {0}")]
    Refused(String),
}

pub trait Link: Send + Sync + 'static {
    fn register(
        &self,
        info: WorkerInfo,
    ) -> impl Future<Output = Result<Registration, LinkError>> + Send;

    /// Up to `max` tasks; those of a sweep in `held` come without their spec text.
    fn lease(
        &self,
        worker_id: &str,
        models: &[String],
        held: &[HeldSweep],
        max: usize,
    ) -> impl Future<Output = Result<Vec<LeasedTask>, LinkError>> + Send;

    /// Extends the leases (reporting how far each has got) and the worker's `status`;
    /// answers the leases lost, `(task_id, attempt)`.
    fn heartbeat(
        &self,
        worker_id: &str,
        status: &WorkerStatus,
        leases: &[HeldLease],
    ) -> impl Future<Output = Result<Vec<(i64, i64)>, LinkError>> + Send;

    fn complete(
        &self,
        worker_id: &str,
        task: &LeasedTask,
        output: &TaskOutput,
        compute_seconds: f64,
    ) -> impl Future<Output = Result<Settled, LinkError>> + Send;

    fn fail(
        &self,
        worker_id: &str,
        task: &LeasedTask,
        error: &str,
        permanent: bool,
    ) -> impl Future<Output = Result<Settled, LinkError>> + Send;

    fn release(
        &self,
        worker_id: &str,
        task: &LeasedTask,
    ) -> impl Future<Output = Result<bool, LinkError>> + Send;
}
