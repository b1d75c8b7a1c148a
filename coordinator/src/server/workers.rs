//! `WorkerService`: what workers call. Every answer about a lease comes from the store,
//! under fencing.

use patchsweep_api::wire::{
    complete_reply, fail_reply, held_from_wire, held_leases_from_wire, leases_to_wire,
    output_from_wire, registration_to_wire, task_to_wire, worker_from_wire,
};
use patchsweep_proto::v1 as pb;
use tonic::{Request, Response, Status};

use patchsweep_api::WorkerStatus;

use super::status;
use crate::service::Coordinator;

pub struct WorkerHandler {
    pub coordinator: Coordinator,
}

#[tonic::async_trait]
impl pb::worker_service_server::WorkerService for WorkerHandler {
    async fn register(
        &self,
        req: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let reg = self
            .coordinator
            .register(worker_from_wire(req.into_inner()))
            .await
            .map_err(status)?;
        tracing::info!(worker = %reg.worker_id, "worker registered");
        Ok(Response::new(registration_to_wire(reg)))
    }

    async fn lease_tasks(
        &self,
        req: Request<pb::LeaseTasksRequest>,
    ) -> Result<Response<pb::LeaseTasksResponse>, Status> {
        let r = req.into_inner();
        let tasks = self
            .coordinator
            .lease(
                &r.worker_id,
                &r.models,
                &held_from_wire(r.held),
                r.max_tasks.max(1) as usize,
            )
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
        let lost = self
            .coordinator
            .heartbeat(
                &r.worker_id,
                &WorkerStatus {
                    models: r.models,
                    device_memory_peak_bytes: r.device_memory_peak_bytes,
                },
                &held_leases_from_wire(&r.leases),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::HeartbeatResponse {
            lost: leases_to_wire(&lost),
        }))
    }

    async fn complete_task(
        &self,
        req: Request<pb::CompleteTaskRequest>,
    ) -> Result<Response<pb::CompleteTaskResponse>, Status> {
        let r = req.into_inner();
        let output =
            output_from_wire(r.output).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let settled = self
            .coordinator
            .complete(&r.worker_id, r.task_id, r.attempt as i64, &output)
            .await
            .map_err(status)?;
        Ok(Response::new(complete_reply(&settled)))
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
        Ok(Response::new(fail_reply(&settled)))
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
