//! [`WorkerApi`]: what a worker asks of its coordinator, under fencing (a result or a
//! failure names the lease attempt it was computed under).

use patchsweep_proto::v1 as pb;
use patchsweep_proto::v1::worker_service_client::WorkerServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::{channel, ClientError, SendToken, Target};
use crate::task::{HeldSweep, LeasedTask, Settled, TaskOutput};
use crate::wire::{self, MAX_MESSAGE_BYTES};
use crate::worker::{HeldLease, Registration, WorkerInfo, WorkerStatus};

type Raw = WorkerServiceClient<InterceptedService<Channel, SendToken>>;

/// A client of `WorkerService`. Cheap to clone.
#[derive(Clone)]
pub struct WorkerApi {
    raw: Raw,
    address: String,
}

impl WorkerApi {
    /// Connects lazily: the coordinator may come up later.
    pub fn new(target: &Target) -> Result<Self, ClientError> {
        let auth = SendToken::new(target.token.as_deref())?;
        Ok(Self {
            raw: WorkerServiceClient::with_interceptor(channel(target)?, auth)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            address: target.url.clone(),
        })
    }

    fn err(&self) -> impl Fn(tonic::Status) -> ClientError + '_ {
        |s| ClientError::from_status(&self.address, s)
    }

    /// Registers the worker (`info.id` is ignored: the coordinator assigns one).
    pub async fn register(&self, info: WorkerInfo) -> Result<Registration, ClientError> {
        let r = self
            .raw
            .clone()
            .register(wire::worker_to_wire(info))
            .await
            .map_err(self.err())?;
        Ok(wire::registration_from_wire(r.into_inner()))
    }

    /// Up to `max` tasks, those for a model in `models` first; empty when there are none.
    /// Tasks of a sweep in `held` come without their spec text.
    pub async fn lease(
        &self,
        worker_id: &str,
        models: &[String],
        held: &[HeldSweep],
        max: usize,
    ) -> Result<Vec<LeasedTask>, ClientError> {
        let r = self
            .raw
            .clone()
            .lease_tasks(pb::LeaseTasksRequest {
                worker_id: worker_id.to_string(),
                models: models.to_vec(),
                max_tasks: max as u32,
                held: wire::held_to_wire(held),
            })
            .await
            .map_err(self.err())?;
        r.into_inner()
            .tasks
            .into_iter()
            .map(wire::task_from_wire)
            .collect::<Result<_, _>>()
            .map_err(|source| ClientError::Malformed {
                address: self.address.clone(),
                source,
            })
    }

    /// Extends the leases and records how far each has got; answers those lost
    /// `(task_id, attempt)`.
    pub async fn heartbeat(
        &self,
        worker_id: &str,
        status: &WorkerStatus,
        leases: &[HeldLease],
    ) -> Result<Vec<(i64, i64)>, ClientError> {
        let r = self
            .raw
            .clone()
            .heartbeat(pb::HeartbeatRequest {
                worker_id: worker_id.to_string(),
                leases: wire::held_leases_to_wire(leases),
                models: status.models.clone(),
                device_memory_peak_bytes: status.device_memory_peak_bytes,
            })
            .await
            .map_err(self.err())?;
        Ok(wire::leases_from_wire(&r.into_inner().lost))
    }

    /// Delivers a task's output; it is stored only if the lease is still the worker's.
    pub async fn complete(
        &self,
        worker_id: &str,
        task: &LeasedTask,
        output: &TaskOutput,
        compute_seconds: f64,
    ) -> Result<Settled, ClientError> {
        let r = self
            .raw
            .clone()
            .complete_task(pb::CompleteTaskRequest {
                worker_id: worker_id.to_string(),
                task_id: task.task_id,
                attempt: task.attempt as i32,
                output: Some(wire::output_to_wire(output)),
                compute_seconds,
            })
            .await
            .map_err(self.err())?;
        Ok(wire::settled_from_complete(r.into_inner()))
    }

    /// Reports a task's failure; `permanent`: retrying cannot help.
    pub async fn fail(
        &self,
        worker_id: &str,
        task: &LeasedTask,
        error: &str,
        permanent: bool,
    ) -> Result<Settled, ClientError> {
        let r = self
            .raw
            .clone()
            .fail_task(pb::FailTaskRequest {
                worker_id: worker_id.to_string(),
                task_id: task.task_id,
                attempt: task.attempt as i32,
                error: error.to_string(),
                permanent,
            })
            .await
            .map_err(self.err())?;
        Ok(wire::settled_from_fail(r.into_inner()))
    }

    /// Hands a lease back unfinished; answers whether the worker held it.
    pub async fn release(&self, worker_id: &str, task: &LeasedTask) -> Result<bool, ClientError> {
        let r = self
            .raw
            .clone()
            .release_task(pb::ReleaseTaskRequest {
                worker_id: worker_id.to_string(),
                task_id: task.task_id,
                attempt: task.attempt as i32,
            })
            .await
            .map_err(self.err())?;
        Ok(r.into_inner().accepted)
    }
}
