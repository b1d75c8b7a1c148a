//! Reaching a coordinator over gRPC: the channel (lazy, so a client may start before the
//! coordinator does), TLS from a CA file, the token on every call.

use std::path::Path;
use std::time::Duration;

use patchsweep_proto::v1::sweep_service_client::SweepServiceClient;
use patchsweep_proto::v1::worker_service_client::WorkerServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::server::auth::SendToken;
use crate::server::MAX_MESSAGE_BYTES;

pub type SweepClient = SweepServiceClient<InterceptedService<Channel, SendToken>>;
pub type WorkerClient = WorkerServiceClient<InterceptedService<Channel, SendToken>>;

/// How to reach a coordinator.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://HOST:PORT`, or `https://...` with `tls_ca`.
    pub url: String,
    pub token: Option<String>,
    pub tls_ca: Option<std::path::PathBuf>,
}

fn channel(target: &Target) -> Result<Channel, String> {
    let bad = |e: &dyn std::fmt::Display| format!("coordinator URL `{}`: {e}", target.url);
    let mut endpoint = Endpoint::from_shared(target.url.clone())
        .map_err(|e| bad(&e))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(300))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    if target.url.starts_with("https://") || target.tls_ca.is_some() {
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &target.tls_ca {
            let pem = std::fs::read(ca).map_err(|e| read_err(ca, &e))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint.tls_config(tls).map_err(|e| bad(&e))?;
    }
    Ok(endpoint.connect_lazy())
}

fn read_err(p: &Path, e: &std::io::Error) -> String {
    format!("cannot read CA certificate {}: {e}", p.display())
}

pub fn sweep_client(target: &Target) -> Result<SweepClient, String> {
    let auth = SendToken::new(target.token.as_deref())?;
    Ok(SweepServiceClient::with_interceptor(channel(target)?, auth)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

pub fn worker_client(target: &Target) -> Result<WorkerClient, String> {
    let auth = SendToken::new(target.token.as_deref())?;
    Ok(
        WorkerServiceClient::with_interceptor(channel(target)?, auth)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    )
}
