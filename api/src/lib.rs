//! The vocabulary the coordinator and its workers share, and the one typed edge between
//! them and the wire.
//!
//! # Layout
//! - [`task`]: task kinds and states, tasks as stored, leased and finished
//!   ([`NewTask`], [`LeasedTask`], [`TaskOutput`], [`Settled`]).
//! - [`args`]: the arguments of each kind of task ([`PatchTask`], [`DebiasTask`], …).
//! - [`rows`]: the result rows ([`PairRow`], [`EffectRow`], [`LensRow`], [`DebiasRow`],
//!   [`GenerationRow`], [`BenchmarkRow`]).
//! - [`worker`]: a worker as it registers ([`WorkerInfo`], [`Registration`]).
//! - [`progress`]: where a sweep stands ([`SweepProgress`], [`TaskCounts`]).
//! - [`spec`]: the sweep spec (TOML), validated completely before any compute.
//! - [`spec_files`]: the files a spec names, read (bounded) by the submitting client and
//!   inlined; [`byte_size`]: sizes as flags take them (`256MiB`).
//! - [`plan`]: cutting a prepared sweep into tasks (run by the worker's prepare task).
//! - [`wire`]: prost ↔ domain conversions, both ways (client and server share them).
//! - [`client`]: typed clients of both services ([`client::SweepApi`],
//!   [`client::WorkerApi`]) and their [`client::ClientError`].
//!
//! Prost types appear only in [`wire`] and [`client`] here, and in the coordinator's
//! server.

pub mod args;
pub mod byte_size;
pub mod client;
pub mod plan;
pub mod progress;
pub mod rows;
pub mod spec;
pub mod spec_files;
pub mod task;
pub mod wire;
pub mod worker;

pub use args::{
    BenchmarkTask, DebiasTask, GenerateTask, PatchTask, PrepareTask, SelectionEffect, StoredSplit,
    TaskArgs, UnreadableArgs,
};
pub use progress::{DebiasFigure, SweepProgress, TaskCounts, TaskFailure};
pub use rows::{BenchmarkRow, DebiasRow, EffectRow, GenerationRow, LensRow, PairRow, BASE_STATE};
pub use task::{
    spec_digest, DroppedPair, HeldSweep, LeasedTask, NewTask, PreparedSweep, Settled, TaskKind,
    TaskOutput, TaskState, UnknownName,
};
pub use worker::{HeldLease, Registration, WorkerInfo, WorkerStatus};

/// An error with its sources, for messages (each source once).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let next = c.to_string();
        if !s.contains(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        cur = c.source();
    }
    s
}
