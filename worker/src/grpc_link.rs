//! The gRPC link to a remote coordinator.

use patchsweep_coordinator::client::{worker_client, Target, WorkerClient};
use patchsweep_coordinator::server::error_chain;
use patchsweep_coordinator::service::Registration;
use patchsweep_coordinator::store::{LeasedTask, Settled, TaskOutput, WorkerInfo};
use patchsweep_coordinator::wire::{output_to_wire, task_from_wire};
use patchsweep_proto::v1 as pb;
use tonic::Code;

use crate::link::{Link, LinkError};

pub struct GrpcLink {
    client: WorkerClient,
}

impl GrpcLink {
    /// Connects lazily: the coordinator may come up later.
    pub fn new(target: &Target) -> Result<Self, String> {
        Ok(Self {
            client: worker_client(target)?,
        })
    }
}

fn err(s: tonic::Status) -> LinkError {
    let msg = if s.message().is_empty() {
        format!("{:?}", s.code())
    } else {
        let mut m = s.message().to_string();
        if let Some(src) = std::error::Error::source(&s) {
            m = format!("{m}: {}", error_chain(src));
        }
        m
    };
    match s.code() {
        Code::Unauthenticated
        | Code::PermissionDenied
        | Code::InvalidArgument
        | Code::NotFound
        | Code::Unimplemented
        | Code::FailedPrecondition => LinkError::Refused(msg),
        _ => LinkError::Unavailable(msg),
    }
}

fn lease_refs(leases: &[(i64, i64)]) -> Vec<pb::LeaseRef> {
    leases
        .iter()
        .map(|&(task_id, attempt)| pb::LeaseRef {
            task_id,
            attempt: attempt as i32,
        })
        .collect()
}

fn settled(accepted: bool, reason: String, rows: u64) -> Settled {
    if !accepted {
        Settled::Stale { reason }
    } else if reason == "failed" {
        Settled::Failed
    } else if reason.starts_with("requeued") {
        Settled::Requeued { retry_in: 0.0 }
    } else {
        Settled::Completed { rows }
    }
}

impl Link for GrpcLink {
    async fn register(&self, info: WorkerInfo) -> Result<Registration, LinkError> {
        let r = self
            .client
            .clone()
            .register(pb::RegisterRequest {
                name: info.name,
                device: info.device,
                memory_bytes: info.memory_bytes.max(0) as u64,
                models: info.models,
                version: info.version,
            })
            .await
            .map_err(err)?
            .into_inner();
        Ok(Registration {
            worker_id: r.worker_id,
            lease_seconds: r.lease_seconds,
            heartbeat_seconds: r.heartbeat_seconds,
        })
    }

    async fn lease(
        &self,
        worker_id: &str,
        models: &[String],
        max: usize,
    ) -> Result<Vec<LeasedTask>, LinkError> {
        let r = self
            .client
            .clone()
            .lease_tasks(pb::LeaseTasksRequest {
                worker_id: worker_id.to_string(),
                models: models.to_vec(),
                max_tasks: max as u32,
            })
            .await
            .map_err(err)?
            .into_inner();
        Ok(r.tasks.into_iter().map(task_from_wire).collect())
    }

    async fn heartbeat(
        &self,
        worker_id: &str,
        models: &[String],
        leases: &[(i64, i64)],
    ) -> Result<Vec<(i64, i64)>, LinkError> {
        let r = self
            .client
            .clone()
            .heartbeat(pb::HeartbeatRequest {
                worker_id: worker_id.to_string(),
                leases: lease_refs(leases),
                models: models.to_vec(),
            })
            .await
            .map_err(err)?
            .into_inner();
        Ok(r.lost
            .into_iter()
            .map(|l| (l.task_id, l.attempt as i64))
            .collect())
    }

    async fn complete(
        &self,
        worker_id: &str,
        task: &LeasedTask,
        output: &TaskOutput,
        compute_seconds: f64,
    ) -> Result<Settled, LinkError> {
        let r = self
            .client
            .clone()
            .complete_task(pb::CompleteTaskRequest {
                worker_id: worker_id.to_string(),
                task_id: task.task_id,
                attempt: task.attempt as i32,
                output: Some(output_to_wire(output)),
                compute_seconds,
            })
            .await
            .map_err(err)?
            .into_inner();
        Ok(settled(r.accepted, r.reason, r.rows_inserted))
    }

    async fn fail(
        &self,
        worker_id: &str,
        task: &LeasedTask,
        error: &str,
        permanent: bool,
    ) -> Result<Settled, LinkError> {
        let r = self
            .client
            .clone()
            .fail_task(pb::FailTaskRequest {
                worker_id: worker_id.to_string(),
                task_id: task.task_id,
                attempt: task.attempt as i32,
                error: error.to_string(),
                permanent,
            })
            .await
            .map_err(err)?
            .into_inner();
        Ok(settled(r.accepted, r.outcome, 0))
    }

    async fn release(&self, worker_id: &str, task: &LeasedTask) -> Result<bool, LinkError> {
        let r = self
            .client
            .clone()
            .release_task(pb::ReleaseTaskRequest {
                worker_id: worker_id.to_string(),
                task_id: task.task_id,
                attempt: task.attempt as i32,
            })
            .await
            .map_err(err)?
            .into_inner();
        Ok(r.accepted)
    }
}
