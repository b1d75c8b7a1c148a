//! A worker as it registers, and what the coordinator answers.

/// A worker as it registers.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerInfo {
    /// Empty on registration: the coordinator assigns one.
    pub id: String,
    pub name: String,
    pub device: String,
    /// The most memory one task may take on it (`--max-task-memory`); 0: no cap.
    pub memory_bytes: i64,
    pub models: Vec<String>,
    pub version: String,
}

/// A worker's registration: its id and the lease timing it must keep.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub worker_id: String,
    pub lease_seconds: f64,
    pub heartbeat_seconds: f64,
}
