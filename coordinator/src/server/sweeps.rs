//! `SweepService`: what clients call.

use std::pin::Pin;
use std::time::Duration;

use patchsweep_api::wire::progress_to_wire;
use patchsweep_proto::v1 as pb;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::status;
use crate::service::Coordinator;

pub struct SweepHandler {
    pub coordinator: Coordinator,
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<pb::SweepStatus, Status>> + Send>>;

#[tonic::async_trait]
impl pb::sweep_service_server::SweepService for SweepHandler {
    async fn submit_sweep(
        &self,
        req: Request<pb::SubmitSweepRequest>,
    ) -> Result<Response<pb::SubmitSweepResponse>, Status> {
        let r = req.into_inner();
        let origin = if r.origin.is_empty() {
            "submitted spec".to_string()
        } else {
            r.origin
        };
        let sweep_id = self
            .coordinator
            .submit(&r.spec_toml, &origin)
            .await
            .map_err(status)?;
        tracing::info!(sweep_id, "sweep submitted from {origin}");
        Ok(Response::new(pb::SubmitSweepResponse { sweep_id }))
    }

    async fn get_sweep(
        &self,
        req: Request<pb::GetSweepRequest>,
    ) -> Result<Response<pb::SweepStatus>, Status> {
        let p = self
            .coordinator
            .progress(req.into_inner().sweep_id)
            .await
            .map_err(status)?;
        Ok(Response::new(progress_to_wire(&p)))
    }

    async fn list_sweeps(
        &self,
        req: Request<pb::ListSweepsRequest>,
    ) -> Result<Response<pb::ListSweepsResponse>, Status> {
        let limit = match req.into_inner().limit {
            0 => 100,
            n => n as usize,
        };
        let sweeps = self.coordinator.list(limit).await.map_err(status)?;
        Ok(Response::new(pb::ListSweepsResponse {
            sweeps: sweeps.iter().map(progress_to_wire).collect(),
        }))
    }

    type WatchSweepStream = StatusStream;

    async fn watch_sweep(
        &self,
        req: Request<pb::WatchSweepRequest>,
    ) -> Result<Response<Self::WatchSweepStream>, Status> {
        let r = req.into_inner();
        let interval = if r.interval_seconds > 0.0 {
            r.interval_seconds.clamp(0.05, 3600.0)
        } else {
            1.0
        };
        // Fail at once on an unknown sweep rather than in the stream.
        self.coordinator
            .progress(r.sweep_id)
            .await
            .map_err(status)?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let coordinator = self.coordinator.clone();
        tokio::spawn(async move {
            loop {
                let msg = coordinator.progress(r.sweep_id).await;
                let done = matches!(&msg, Ok(p) if p.is_final()) || msg.is_err();
                let msg = msg.map(|p| progress_to_wire(&p)).map_err(status);
                if tx.send(msg).await.is_err() || done {
                    break;
                }
                tokio::time::sleep(Duration::from_secs_f64(interval)).await;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn cancel_sweep(
        &self,
        req: Request<pb::CancelSweepRequest>,
    ) -> Result<Response<pb::SweepStatus>, Status> {
        let p = self
            .coordinator
            .cancel(req.into_inner().sweep_id)
            .await
            .map_err(status)?;
        Ok(Response::new(progress_to_wire(&p)))
    }

    async fn resume_sweep(
        &self,
        req: Request<pb::ResumeSweepRequest>,
    ) -> Result<Response<pb::SweepStatus>, Status> {
        let p = self
            .coordinator
            .resume(req.into_inner().sweep_id)
            .await
            .map_err(status)?;
        Ok(Response::new(progress_to_wire(&p)))
    }
}
