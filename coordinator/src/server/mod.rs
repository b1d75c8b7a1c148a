//! The coordinator's gRPC server: `SweepService` and `WorkerService` behind the bearer
//! token, the standard health service (unauthenticated, for probes), optional TLS, message
//! size limits, and a background sweep that returns expired leases to the queue.
//!
//! # Layout
//! - `sweeps.rs`, `workers.rs`: the two services, thin over [`Coordinator`];
//! - `auth.rs`: the token the server requires.
//!
//! Prost types are converted by `patchsweep_api::wire` where they enter and leave.

pub mod auth;
mod sweeps;
mod workers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use patchsweep_proto::v1::sweep_service_server::SweepServiceServer;
use patchsweep_proto::v1::worker_service_server::WorkerServiceServer;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::Status;

use crate::service::{Coordinator, CoordinatorError};
use crate::store::StoreError;

pub use patchsweep_api::error_chain;
pub use patchsweep_api::wire::MAX_MESSAGE_BYTES;

/// Maps a coordinator error to the status a client sees.
pub(crate) fn status(e: CoordinatorError) -> Status {
    match &e {
        CoordinatorError::Spec(_) | CoordinatorError::Invalid(_) => {
            Status::invalid_argument(e.to_string())
        }
        CoordinatorError::Store(StoreError::SweepNotFound { .. }) => {
            Status::not_found(e.to_string())
        }
        CoordinatorError::Store(StoreError::InvalidInput { .. }) => {
            Status::invalid_argument(e.to_string())
        }
        CoordinatorError::Store(StoreError::Connect { .. }) => Status::unavailable(e.to_string()),
        CoordinatorError::Store(_) => Status::internal(e.to_string()),
    }
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Required whenever `listen` is not a loopback address.
    pub token: Option<String>,
    pub tls: Option<TlsFiles>,
    pub max_message_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on {0} without a token: set PATCHSWEEP_TOKEN or --token-file \
         (only loopback addresses may run without one)"
    )]
    TokenRequired(SocketAddr),
    #[error("TLS: cannot read {path}: {reason}")]
    TlsFile { path: String, reason: String },
    #[error("cannot serve on {addr}: {reason}")]
    Transport { addr: SocketAddr, reason: String },
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    coordinator: Coordinator,
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    if opts.token.is_none() && !opts.listen.ip().is_loopback() {
        return Err(ServeError::TokenRequired(opts.listen));
    }
    let transport = |e: tonic::transport::Error| ServeError::Transport {
        addr: opts.listen,
        reason: error_chain(&e),
    };
    let mut builder = Server::builder();
    if let Some(tls) = &opts.tls {
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| ServeError::TlsFile {
                path: p.display().to_string(),
                reason: e.to_string(),
            })
        };
        let identity = Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(identity))
            .map_err(transport)?;
    }
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<SweepServiceServer<sweeps::SweepHandler>>()
        .await;
    health
        .set_serving::<WorkerServiceServer<workers::WorkerHandler>>()
        .await;
    let auth = auth::RequireToken::new(opts.token.as_deref());
    let sweeps = SweepServiceServer::new(sweeps::SweepHandler {
        coordinator: coordinator.clone(),
    })
    .max_decoding_message_size(opts.max_message_bytes)
    .max_encoding_message_size(opts.max_message_bytes);
    let workers = WorkerServiceServer::new(workers::WorkerHandler {
        coordinator: coordinator.clone(),
    })
    .max_decoding_message_size(opts.max_message_bytes)
    .max_encoding_message_size(opts.max_message_bytes);
    let expiry = tokio::spawn(expire_periodically(coordinator.clone()));
    tracing::info!(listen = %opts.listen, tls = opts.tls.is_some(), token = opts.token.is_some(), "coordinator serving");
    let served = builder
        .add_service(health_service)
        .add_service(InterceptedService::new(sweeps, auth.clone()))
        .add_service(InterceptedService::new(workers, auth))
        .serve_with_shutdown(opts.listen, shutdown)
        .await
        .map_err(transport);
    expiry.abort();
    served
}

/// Returns expired leases to the queue every quarter lease.
async fn expire_periodically(coordinator: Coordinator) {
    let every = Duration::from_secs_f64((coordinator.policy().lease_seconds / 4.0).max(0.1));
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = coordinator.expire_leases().await {
            tracing::warn!("expiring leases: {e}");
        }
    }
}
