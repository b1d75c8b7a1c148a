//! The gRPC link to a remote coordinator, over the typed client of `patchsweep_api`.

use patchsweep_api::client::{ClientError, Code, Target, WorkerApi};
use patchsweep_api::{
    HeldLease, HeldSweep, LeasedTask, Registration, Settled, TaskOutput, WorkerInfo, WorkerStatus,
};

use crate::link::{Link, LinkError};

pub struct GrpcLink {
    client: WorkerApi,
}

impl GrpcLink {
    /// Connects lazily: the coordinator may come up later.
    pub fn new(target: &Target) -> Result<Self, ClientError> {
        Ok(Self {
            client: WorkerApi::new(target)?,
        })
    }
}

/// Refused (do not retry) when the coordinator will answer the same again; else retry.
fn err(e: ClientError) -> LinkError {
    let message = match &e {
        ClientError::Status { code, message } if message.is_empty() => format!("{code:?}"),
        ClientError::Status { message, .. } => message.clone(),
        other => other.to_string(),
    };
    match e.code() {
        Some(
            Code::Unauthenticated
            | Code::PermissionDenied
            | Code::InvalidArgument
            | Code::NotFound
            | Code::Unimplemented
            | Code::FailedPrecondition,
        ) => LinkError::Refused(message),
        Some(_) => LinkError::Unavailable(message),
        // Not a call that failed: the client or the answer is unusable.
        None => LinkError::Refused(message),
    }
}

impl Link for GrpcLink {
    async fn register(&self, info: WorkerInfo) -> Result<Registration, LinkError> {
        self.client.register(info).await.map_err(err)
    }

    async fn lease(
        &self,
        worker_id: &str,
        models: &[String],
        held: &[HeldSweep],
        max: usize,
    ) -> Result<Vec<LeasedTask>, LinkError> {
        self.client
            .lease(worker_id, models, held, max)
            .await
            .map_err(err)
    }

    async fn heartbeat(
        &self,
        worker_id: &str,
        status: &WorkerStatus,
        leases: &[HeldLease],
    ) -> Result<Vec<(i64, i64)>, LinkError> {
        self.client
            .heartbeat(worker_id, status, leases)
            .await
            .map_err(err)
    }

    async fn complete(
        &self,
        worker_id: &str,
        task: &LeasedTask,
        output: &TaskOutput,
        compute_seconds: f64,
    ) -> Result<Settled, LinkError> {
        self.client
            .complete(worker_id, task, output, compute_seconds)
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
        self.client
            .fail(worker_id, task, error, permanent)
            .await
            .map_err(err)
    }

    async fn release(&self, worker_id: &str, task: &LeasedTask) -> Result<bool, LinkError> {
        self.client.release(worker_id, task).await.map_err(err)
    }
}
