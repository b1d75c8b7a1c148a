//! The task queue's SQL, written once for both backends.
//!
//! Each function is generic over [`QueueConn`], which `SqliteConnection` and
//! `PgConnection` implement, and runs inside a transaction its caller (`scheduling.rs`)
//! opened and commits. Statements take `$N` parameters on both backends; what differs
//! (the clock expressions, and the row locks PostgreSQL needs for concurrent leases where
//! SQLite has one writer) is named by placeholders that `backend.rs` fills in.
//!
//! - `submit.rs`: a sweep and its tasks;
//! - `workers.rs`: registering, heartbeats;
//! - `lease.rs`: leasing, lease expiry, a debias task's selection effects and stored split;
//! - `ranking.rs`: a selected pathway's ranking at lease time, its chosen sites stored;
//! - `complete.rs`: the fence, completion, failure with retries, release;
//! - `generations.rs`: a generate task's continuations;
//! - `benchmarks.rs`: benchmark pair scores (benchmark and debias tasks);
//! - `settle.rs`: waiting tasks queued, a sweep's final state, cancel, resume;
//! - `progress.rs`: a sweep's progress, totals, the list of sweeps;
//! - `sweeps.rs`: a sweep created and finished directly, its experiments and dropped
//!   pairs.

mod backend;
mod benchmarks;
mod complete;
mod generations;
mod lease;
mod progress;
mod ranking;
mod settle;
mod submit;
mod sweeps;
mod workers;

pub(crate) use backend::{bind_all, Arg};
pub(crate) use benchmarks::insert_benchmarks_in;
pub(crate) use complete::{
    fence_in, insert_debias_in, insert_splits_in, mark_done_in, record_stale_in, release_in,
    retry_or_fail_in,
};
pub(crate) use generations::insert_generations_in;
pub(crate) use lease::{expire_leases_in, lease_in, selection_effects_in, stored_split_in, Leased};
pub(crate) use progress::{progress_in, sweep_ids_in, totals_in};
pub(crate) use ranking::{ranking_in, store_selected_sites_in};
pub(crate) use settle::{active_in, cancel_in, open_sweeps_in, resume_in, settle_sweep_in};
pub(crate) use submit::{insert_tasks_in, submit_in};
pub(crate) use sweeps::{
    add_experiment_in, create_sweep_in, finish_sweep_in, insert_dropped_pairs_in, set_dropped_in,
};
pub(crate) use workers::{heartbeat_in, record_models_in, register_worker_in, touch_worker_in};
