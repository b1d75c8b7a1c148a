//! `WorkerService`: what workers call. Every answer about a lease comes from the store,
//! under fencing.

use patchsweep_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::status;
use crate::service::Coordinator;
use crate::store::{Settled, WorkerInfo};
use crate::wire::{output_from_wire, task_to_wire};

pub struct WorkerApi {
    pub coordinator: Coordinator,
}

fn settled_reply(s: &Settled) -> (bool, String) {
    match s {
        Settled::Completed { .. } => (true, "completed".into()),
        Settled::Requeued { retry_in } => (true, format!("requeued (retry in {retry_in:.1}s)")),
        Settled::Failed => (true, "failed".into()),
        Settled::Stale { reason } => (false, reason.clone()),
    }
}

#[tonic::async_trait]
impl pb::worker_service_server::WorkerService for WorkerApi {
    async fn register(
        &self,
        req: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let r = req.into_inner();
        let reg = self
            .coordinator
            .register(WorkerInfo {
                id: String::new(),
                name: r.name,
                device: r.device,
                memory_bytes: r.memory_bytes.min(i64::MAX as u64) as i64,
                models: r.models,
                version: r.version,
            })
            .await
            .map_err(status)?;
        tracing::info!(worker = %reg.worker_id, "worker registered");
        Ok(Response::new(pb::RegisterResponse {
            worker_id: reg.worker_id,
            lease_seconds: reg.lease_seconds,
            heartbeat_seconds: reg.heartbeat_seconds,
        }))
    }

    async fn lease_tasks(
        &self,
        req: Request<pb::LeaseTasksRequest>,
    ) -> Result<Response<pb::LeaseTasksResponse>, Status> {
        let r = req.into_inner();
        let tasks = self
            .coordinator
            .lease(&r.worker_id, &r.models, r.max_tasks.max(1) as usize)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::LeaseTasksResponse {
            tasks: tasks.iter().map(task_to_wire).collect(),
            lease_seconds: self.coordinator.policy().lease_seconds,
        }))
    }

    async fn heartbeat(
        &self,
        req: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let r = req.into_inner();
        let leases: Vec<(i64, i64)> = r
            .leases
            .iter()
            .map(|l| (l.task_id, l.attempt as i64))
            .collect();
        let lost = self
            .coordinator
            .heartbeat(&r.worker_id, &r.models, &leases)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::HeartbeatResponse {
            lost: lost
                .into_iter()
                .map(|(task_id, attempt)| pb::LeaseRef {
                    task_id,
                    attempt: attempt as i32,
                })
                .collect(),
        }))
    }

    async fn complete_task(
        &self,
        req: Request<pb::CompleteTaskRequest>,
    ) -> Result<Response<pb::CompleteTaskResponse>, Status> {
        let r = req.into_inner();
        let output = output_from_wire(r.output).map_err(Status::invalid_argument)?;
        let settled = self
            .coordinator
            .complete(&r.worker_id, r.task_id, r.attempt as i64, &output)
            .await
            .map_err(status)?;
        let rows_inserted = match settled {
            Settled::Completed { rows } => rows,
            _ => 0,
        };
        let (accepted, reason) = settled_reply(&settled);
        Ok(Response::new(pb::CompleteTaskResponse {
            accepted,
            reason,
            rows_inserted,
        }))
    }

    async fn fail_task(
        &self,
        req: Request<pb::FailTaskRequest>,
    ) -> Result<Response<pb::FailTaskResponse>, Status> {
        let r = req.into_inner();
        let settled = self
            .coordinator
            .fail(
                &r.worker_id,
                r.task_id,
                r.attempt as i64,
                &r.error,
                r.permanent,
            )
            .await
            .map_err(status)?;
        let (accepted, outcome) = settled_reply(&settled);
        Ok(Response::new(pb::FailTaskResponse { accepted, outcome }))
    }

    async fn release_task(
        &self,
        req: Request<pb::ReleaseTaskRequest>,
    ) -> Result<Response<pb::ReleaseTaskResponse>, Status> {
        let r = req.into_inner();
        let accepted = self
            .coordinator
            .release(&r.worker_id, r.task_id, r.attempt as i64)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ReleaseTaskResponse { accepted }))
    }
}
