//! [`SweepApi`]: submit sweeps and follow them.

use patchsweep_proto::v1 as pb;
use patchsweep_proto::v1::sweep_service_client::SweepServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::{channel, ClientError, SendToken, Target};
use crate::progress::SweepProgress;
use crate::wire::{progress_from_wire, MAX_MESSAGE_BYTES};

type Raw = SweepServiceClient<InterceptedService<Channel, SendToken>>;

/// A client of `SweepService`. Cheap to clone.
#[derive(Clone)]
pub struct SweepApi {
    raw: Raw,
    address: String,
}

impl SweepApi {
    /// Connects lazily: nothing is sent until the first call.
    pub fn new(target: &Target) -> Result<Self, ClientError> {
        let auth = SendToken::new(target.token.as_deref())?;
        Ok(Self {
            raw: SweepServiceClient::with_interceptor(channel(target)?, auth)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            address: target.url.clone(),
        })
    }

    fn err(&self) -> impl Fn(tonic::Status) -> ClientError + '_ {
        |s| ClientError::from_status(&self.address, s)
    }

    /// Submits a spec (TOML); `origin` names it in error messages. Answers the sweep id.
    pub async fn submit(&self, spec_toml: &str, origin: &str) -> Result<i64, ClientError> {
        let r = self
            .raw
            .clone()
            .submit_sweep(pb::SubmitSweepRequest {
                spec_toml: spec_toml.to_string(),
                origin: origin.to_string(),
            })
            .await
            .map_err(self.err())?;
        Ok(r.into_inner().sweep_id)
    }

    /// Where a sweep stands.
    pub async fn get(&self, sweep_id: i64) -> Result<SweepProgress, ClientError> {
        let r = self
            .raw
            .clone()
            .get_sweep(pb::GetSweepRequest { sweep_id })
            .await
            .map_err(self.err())?;
        Ok(progress_from_wire(r.into_inner()))
    }

    /// The newest sweeps, newest first (`limit` 0: the coordinator's default, 100).
    pub async fn list(&self, limit: u32) -> Result<Vec<SweepProgress>, ClientError> {
        let r = self
            .raw
            .clone()
            .list_sweeps(pb::ListSweepsRequest { limit })
            .await
            .map_err(self.err())?;
        Ok(r.into_inner()
            .sweeps
            .into_iter()
            .map(progress_from_wire)
            .collect())
    }

    /// A sweep's progress every `interval_seconds` until it ends.
    pub async fn watch(
        &self,
        sweep_id: i64,
        interval_seconds: f64,
    ) -> Result<SweepWatch, ClientError> {
        let r = self
            .raw
            .clone()
            .watch_sweep(pb::WatchSweepRequest {
                sweep_id,
                interval_seconds,
            })
            .await
            .map_err(self.err())?;
        Ok(SweepWatch {
            stream: r.into_inner(),
            address: self.address.clone(),
        })
    }

    /// Stops handing out the sweep's tasks; answers its progress.
    pub async fn cancel(&self, sweep_id: i64) -> Result<SweepProgress, ClientError> {
        let r = self
            .raw
            .clone()
            .cancel_sweep(pb::CancelSweepRequest { sweep_id })
            .await
            .map_err(self.err())?;
        Ok(progress_from_wire(r.into_inner()))
    }

    /// Queues the sweep's failed and cancelled tasks again; answers its progress.
    pub async fn resume(&self, sweep_id: i64) -> Result<SweepProgress, ClientError> {
        let r = self
            .raw
            .clone()
            .resume_sweep(pb::ResumeSweepRequest { sweep_id })
            .await
            .map_err(self.err())?;
        Ok(progress_from_wire(r.into_inner()))
    }
}

/// The progress messages of [`SweepApi::watch`].
pub struct SweepWatch {
    stream: tonic::Streaming<pb::SweepStatus>,
    address: String,
}

impl SweepWatch {
    /// The next progress message; `None` once the sweep has ended and the stream closed.
    pub async fn next(&mut self) -> Result<Option<SweepProgress>, ClientError> {
        let msg = self
            .stream
            .message()
            .await
            .map_err(|s| ClientError::from_status(&self.address, s))?;
        Ok(msg.map(progress_from_wire))
    }
}
