//! `patchsweep coordinator` and `patchsweep worker`: the two long-running processes of a
//! cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use patchsweep_api::client::Target;
use patchsweep_coordinator::server::{self, auth::read_token, ServeOptions, TlsFiles};
use patchsweep_coordinator::service::Coordinator;
use patchsweep_coordinator::store::{QueuePolicy, Store};
use patchsweep_worker::executor::ComputeThread;
use patchsweep_worker::faults::Faults;
use patchsweep_worker::grpc_link::GrpcLink;
use patchsweep_worker::memory_budget;
use patchsweep_worker::model_executor::ModelExecutor;
use patchsweep_worker::worker_loop::{run_worker, Controls, WorkerOptions};
use tokio::sync::watch;

/// The bearer token, from `PATCHSWEEP_TOKEN` or a file.
#[derive(Args, Clone)]
pub struct TokenArgs {
    /// File holding the shared bearer token (or set PATCHSWEEP_TOKEN).
    #[arg(long, env = "PATCHSWEEP_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

impl TokenArgs {
    pub fn token(&self) -> Result<Option<String>> {
        let from_env = std::env::var("PATCHSWEEP_TOKEN")
            .ok()
            .filter(|t| !t.is_empty());
        read_token(from_env, self.token_file.as_deref()).map_err(anyhow::Error::msg)
    }
}

/// How to reach a coordinator.
#[derive(Args, Clone)]
pub struct RemoteArgs {
    /// The coordinator, e.g. http://127.0.0.1:50051 (https:// with --tls-ca).
    #[arg(
        long,
        env = "PATCHSWEEP_COORDINATOR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub coordinator: String,
    /// CA certificate (PEM) to trust for a TLS coordinator.
    #[arg(long, env = "PATCHSWEEP_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    #[command(flatten)]
    pub token: TokenArgs,
}

impl RemoteArgs {
    pub fn target(&self) -> Result<Target> {
        Ok(Target {
            url: self.coordinator.clone(),
            token: self.token.token()?,
            tls_ca: self.tls_ca.clone(),
        })
    }
}

/// Bounds of `--lease-seconds`: a lease shorter than this cannot be heartbeated in time;
/// a longer one would hide a dead worker for more than a day (and overflows durations).
const MIN_LEASE_SECONDS: f64 = 0.2;
const MAX_LEASE_SECONDS: f64 = 86_400.0;

/// Lease and retry timing.
#[derive(Args, Clone)]
pub struct PolicyArgs {
    /// Seconds a lease lasts without a heartbeat (workers heartbeat every quarter).
    #[arg(long, default_value_t = 60.0)]
    pub lease_seconds: f64,
    /// Attempts per task before it fails (expired leases count).
    #[arg(long, default_value_t = 4)]
    pub max_attempts: i64,
    /// First retry delay in seconds; doubled per attempt.
    #[arg(long, default_value_t = 2.0)]
    pub backoff_seconds: f64,
    /// Longest retry delay in seconds.
    #[arg(long, default_value_t = 300.0)]
    pub max_backoff_seconds: f64,
}

impl PolicyArgs {
    pub fn policy(&self) -> Result<QueuePolicy> {
        let within = |v: f64, lo: f64, hi: f64| v.is_finite() && (lo..=hi).contains(&v);
        if !within(self.lease_seconds, MIN_LEASE_SECONDS, MAX_LEASE_SECONDS) {
            bail!(
                "--lease-seconds must be between {MIN_LEASE_SECONDS} and {MAX_LEASE_SECONDS} (one day), got {}",
                self.lease_seconds
            );
        }
        if !(1..=1000).contains(&self.max_attempts) {
            bail!(
                "--max-attempts must be between 1 and 1000, got {}",
                self.max_attempts
            );
        }
        if !within(self.backoff_seconds, 0.0, MAX_LEASE_SECONDS)
            || !within(self.max_backoff_seconds, 0.0, MAX_LEASE_SECONDS)
        {
            bail!("--backoff-seconds and --max-backoff-seconds must be between 0 and {MAX_LEASE_SECONDS}");
        }
        Ok(QueuePolicy {
            lease_seconds: self.lease_seconds,
            backoff_base_seconds: self.backoff_seconds,
            backoff_max_seconds: self.max_backoff_seconds.max(self.backoff_seconds),
            max_attempts: self.max_attempts,
        })
    }
}

#[derive(Args)]
pub struct CoordinatorArgs {
    /// Database URL: sqlite://FILE or postgres://USER@HOST:PORT/DB.
    #[arg(long, env = "PATCHSWEEP_DB", default_value = "sqlite://patchsweep.db")]
    db: String,
    /// Address to serve gRPC on; beyond loopback a token is required.
    #[arg(long, env = "PATCHSWEEP_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    #[command(flatten)]
    token: TokenArgs,
    /// TLS certificate chain (PEM); with --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); with --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Serve Prometheus metrics (GET /metrics) on this address, e.g. 127.0.0.1:9090.
    #[arg(long, env = "PATCHSWEEP_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Allow --metrics-listen beyond loopback (metrics are served without a token).
    #[arg(long, env = "PATCHSWEEP_METRICS_PUBLIC")]
    metrics_public: bool,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub fn coordinator(args: CoordinatorArgs) -> Result<()> {
    let policy = args.policy.policy()?;
    crate::metrics::check_exposure(args.metrics_listen, args.metrics_public)?;
    let opts = ServeOptions {
        listen: args.listen,
        token: args.token.token()?,
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| TlsFiles { cert, key }),
        max_message_bytes: server::MAX_MESSAGE_BYTES,
    };
    runtime()?.block_on(async move {
        let store = Store::connect(&args.db).await?;
        eprintln!(
            "coordinator: database {} ready, serving on {}",
            store.url(),
            opts.listen
        );
        let coordinator = Coordinator::new(store, policy);
        if let Some(addr) = args.metrics_listen {
            let c = coordinator.clone();
            tokio::spawn(async move {
                let render = move || crate::metrics::coordinator_metrics(c.clone());
                if let Err(e) = crate::metrics::serve(addr, render).await {
                    tracing::error!("metrics on {addr}: {e}");
                }
            });
        }
        server::serve(coordinator, opts, shutdown_signal()).await?;
        eprintln!("coordinator: stopped");
        Ok(())
    })
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[derive(Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// Device for the model: cpu or cuda:N (overrides the spec's device).
    #[arg(long, env = "PATCHSWEEP_DEVICE")]
    device: Option<String>,
    /// Name shown in status and workers_v (default: host name and process id).
    #[arg(long)]
    name: Option<String>,
    /// Serve grpc.health.v1 on this address for probes, e.g. 0.0.0.0:50052.
    #[arg(long, env = "PATCHSWEEP_HEALTH_LISTEN")]
    health_listen: Option<SocketAddr>,
    /// Serve Prometheus metrics (GET /metrics) on this address, e.g. 127.0.0.1:9091.
    #[arg(long, env = "PATCHSWEEP_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Allow --metrics-listen beyond loopback (metrics are served without a token).
    #[arg(long, env = "PATCHSWEEP_METRICS_PUBLIC")]
    metrics_public: bool,
    /// The most memory one task may need, e.g. 8GiB: a task estimated above it fails for
    /// good with the numbers instead of aborting the worker. Default: the memory available
    /// on the device at start (CPU: MemAvailable; CUDA: the GPU's free memory).
    #[arg(long, env = "PATCHSWEEP_MAX_TASK_MEMORY", value_parser = memory_budget::parse_bytes)]
    max_task_memory: Option<u64>,
    /// Open local model files and folders only under this folder (paths are resolved, `..`
    /// and links included); Hub models (hf:ORG/NAME) are unaffected. Default: any path.
    #[arg(long, env = "PATCHSWEEP_MODEL_ROOT")]
    model_root: Option<std::path::PathBuf>,
    /// Testing only: sleep this long before each patch task.
    #[arg(long, hide = true, default_value_t = 0)]
    fault_task_delay_ms: u64,
    /// Testing only: patch tasks of this experiment fail.
    #[arg(long, hide = true)]
    fault_fail_experiment: Option<String>,
}

fn default_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "worker".into());
    format!("{host}-{}", std::process::id())
}

pub fn worker(args: WorkerArgs) -> Result<()> {
    crate::metrics::check_exposure(args.metrics_listen, args.metrics_public)?;
    let target = args.remote.target()?;
    let faults = Faults {
        task_delay: Duration::from_millis(args.fault_task_delay_ms),
        fail_experiment: args.fault_fail_experiment.clone(),
    };
    let device = args.device.clone().unwrap_or_else(|| "cpu".into());
    let max_task_memory = memory_budget::resolve(args.max_task_memory, &device);
    let opts = WorkerOptions::new(args.name.unwrap_or_else(default_name), device)
        .with_memory_budget(max_task_memory);
    let executor = ModelExecutor::new(args.device.clone(), faults)
        .with_counters(opts.counters.clone())
        .with_max_task_memory(max_task_memory)
        .with_model_root(args.model_root.clone());
    let compute = ComputeThread::spawn(Box::new(executor));
    runtime()?.block_on(async move {
        let link = Arc::new(GrpcLink::new(&target)?);
        if let Some(addr) = args.health_listen {
            let (_reporter, health) = tonic_health::server::health_reporter();
            tokio::spawn(async move {
                let served = tonic::transport::Server::builder()
                    .add_service(health)
                    .serve(addr)
                    .await;
                if let Err(e) = served {
                    tracing::error!("health service on {addr}: {e}");
                }
            });
        }
        if let Some(addr) = args.metrics_listen {
            let (counters, name) = (opts.counters.clone(), opts.name.clone());
            tokio::spawn(async move {
                let render = move || {
                    let text = counters.render(&name);
                    async move { Ok(text) }
                };
                if let Err(e) = crate::metrics::serve(addr, render).await {
                    tracing::error!("metrics on {addr}: {e}");
                }
            });
        }
        let (drain_tx, drain) = watch::channel(false);
        let (abort_tx, abort) = watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            eprintln!("worker: draining (finishing the current task); signal again to hand it back");
            let _ = drain_tx.send(true);
            shutdown_signal().await;
            let _ = abort_tx.send(true);
        });
        eprintln!("worker {}: coordinator {}", opts.name, target.url);
        let stats = run_worker(link, compute, opts, Controls { drain, abort })
            .await
            .context("worker")?;
        eprintln!(
            "worker: stopped after {} tasks completed, {} failed, {} refused as stale, {} handed back",
            stats.completed, stats.failed, stats.stale, stats.released
        );
        Ok(())
    })
}
