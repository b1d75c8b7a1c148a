//! patchsweep's coordinator side: the scheduler core, its gRPC server, and the SQL store
//! (SQLite or PostgreSQL). The vocabulary it shares with workers (tasks, rows, the sweep
//! spec, the planner, the wire conversions, the clients) is `patchsweep_api`.
//!
//! # Layout
//! - [`service`]: the coordinator core ([`service::Coordinator`]): submit, lease,
//!   heartbeat, complete, fail, cancel, resume — all through the store.
//! - [`server`]: `SweepService` and `WorkerService` over gRPC, token, TLS, health.
//! - [`store`]: the only place with SQL; migrations in `migrations/{sqlite,postgres}`.

pub mod server;
pub mod service;
pub mod store;
