//! patchsweep's coordinator side: the sweep spec, the planner, the scheduler core, its gRPC
//! server, and the SQL store (SQLite or PostgreSQL).
//!
//! # Layout
//! - [`spec`]: the sweep spec (TOML), validated completely before any compute.
//! - [`plan`]: cutting a sweep into tasks, and the tasks' arguments.
//! - [`service`]: the coordinator core ([`service::Coordinator`]): submit, lease,
//!   heartbeat, complete, fail, cancel, resume — all through the store.
//! - [`server`]: `SweepService` and `WorkerService` over gRPC, token, TLS, health.
//! - [`client`]: reaching a coordinator (channel, TLS, token).
//! - [`wire`]: conversions between the protobuf types and the domain types.
//! - [`store`]: the only place with SQL; migrations in `migrations/{sqlite,postgres}`.

pub mod client;
pub mod plan;
pub mod server;
pub mod service;
pub mod spec;
pub mod store;
pub mod wire;
