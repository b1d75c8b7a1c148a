//! The wire contract of patchsweep: protobuf package `patchsweep.v1`.
//!
//! - `SweepService` (sweep.proto): clients submit, watch, cancel and resume sweeps.
//! - `WorkerService` (worker.proto): workers register, lease tasks, heartbeat, and complete
//!   or fail them under fencing (a result names the lease attempt it was computed under).
//!
//! These generated types stay at the edge: `patchsweep_api::wire` converts them to the
//! domain types (for the typed clients of `patchsweep_api::client` and the coordinator's
//! server) where a message enters or leaves.

pub mod v1 {
    tonic::include_proto!("patchsweep.v1");
}
