//! The patchsweep worker: holds a model, leases tasks from a coordinator, computes effects
//! and hands them back under fencing.
//!
//! # Layout
//! - [`link`]: what a worker asks of a coordinator ([`link::Link`]), over gRPC
//!   ([`grpc_link`]) or in the same process (the CLI's `LocalLink`, the embedded `run`,
//!   which owns the coordinator; this crate does not depend on it).
//! - [`executor`]: the compute side: [`executor::Executor`] and the thread that runs it,
//!   off the async runtime.
//! - [`model_executor`]: the real executor: model cache, prepare and patch tasks.
//! - [`memory_budget`]: `--max-task-memory` and the check a task passes before computing.
//! - `lens_task`: a logit-lens experiment's tasks (kind `patch`).
//! - `debias_task`: debias tasks (selection, control, interventions, evaluation).
//! - `generate_task`: generate tasks (the generation check's continuations).
//! - `benchmark_task`: benchmark tasks (a `[[benchmark]]`'s pairs scored on the model).
//! - [`worker_loop`]: register, lease, heartbeat, deliver with retries, drain.
//! - [`counters`]: the worker's counters, for its metrics endpoint.
//! - [`faults`]: fault injection for the reliability tests (hidden flags).

mod benchmark_task;
pub mod counters;
mod debias_task;
pub mod executor;
pub mod faults;
mod generate_task;
pub mod grpc_link;
mod lens_task;
pub mod link;
pub mod memory_budget;
pub mod model_executor;
pub mod model_root;
pub mod worker_loop;
