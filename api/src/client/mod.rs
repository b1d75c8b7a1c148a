//! Typed clients of a coordinator's two services: [`SweepApi`] (submit and follow sweeps)
//! and [`WorkerApi`] (what a worker asks). They take and return domain types; prost types
//! stay inside (conversions in [`crate::wire`]). Channels connect lazily, so a client may
//! start before the coordinator does; create them inside a tokio runtime.

mod sweeps;
mod token;
mod workers;

use std::path::PathBuf;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// gRPC status codes, as [`ClientError::code`] answers them.
pub use tonic::Code;

pub use sweeps::{SweepApi, SweepWatch};
pub use token::SendToken;
pub use workers::WorkerApi;

use crate::wire::WireError;

/// How to reach a coordinator.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://HOST:PORT`, or `https://...` with `tls_ca`.
    pub url: String,
    pub token: Option<String>,
    pub tls_ca: Option<PathBuf>,
}

/// Why a call to the coordinator failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The coordinator's URL (or its TLS settings) cannot make a channel.
    #[error("coordinator URL `{url}`: {reason}")]
    Endpoint { url: String, reason: String },
    #[error("cannot read CA certificate {path}: {reason}")]
    CaCertificate { path: String, reason: String },
    #[error("the token holds characters a gRPC header cannot carry")]
    Token,
    /// The coordinator answered with an error: its status code and its message.
    #[error("{message} ({code:?})")]
    Status { code: Code, message: String },
    /// The call did not reach the coordinator (connection, TLS, timeout).
    #[error("cannot reach the coordinator at {address}: {message} ({code:?})")]
    Unreachable {
        address: String,
        code: Code,
        message: String,
    },
    /// The coordinator's answer does not convert to the domain types.
    #[error("malformed answer from the coordinator at {address}: {source}")]
    Malformed {
        address: String,
        #[source]
        source: WireError,
    },
}

impl ClientError {
    /// The gRPC status code, when the call got as far as one.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Status { code, .. } | ClientError::Unreachable { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A failed call: the server's own status, or the transport's (naming the address).
    fn from_status(address: &str, s: tonic::Status) -> Self {
        match std::error::Error::source(&s) {
            Some(cause) => ClientError::Unreachable {
                address: address.to_string(),
                code: s.code(),
                message: if s.message().is_empty() {
                    crate::error_chain(cause)
                } else {
                    format!("{}: {}", s.message(), crate::error_chain(cause))
                },
            },
            None => ClientError::Status {
                code: s.code(),
                message: s.message().to_string(),
            },
        }
    }
}

/// The channel to `target`: lazy, with timeouts, keep-alives and TLS when asked for.
fn channel(target: &Target) -> Result<Channel, ClientError> {
    let bad = |e: &dyn std::fmt::Display| ClientError::Endpoint {
        url: target.url.clone(),
        reason: e.to_string(),
    };
    let mut endpoint = Endpoint::from_shared(target.url.clone())
        .map_err(|e| bad(&e))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(300))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    if target.url.starts_with("https://") || target.tls_ca.is_some() {
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &target.tls_ca {
            let pem = std::fs::read(ca).map_err(|e| ClientError::CaCertificate {
                path: ca.display().to_string(),
                reason: e.to_string(),
            })?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint.tls_config(tls).map_err(|e| bad(&e))?;
    }
    Ok(endpoint.connect_lazy())
}
