//! A worker as it registers, what it reports with each heartbeat, and what the coordinator
//! answers.

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

impl WorkerInfo {
    /// A worker named `name` on `device`, as it registers first: no id yet (the
    /// coordinator assigns one), no model loaded, this build's version.
    pub fn new(name: &str, device: &str) -> Self {
        Self {
            id: String::new(),
            name: name.to_string(),
            device: device.to_string(),
            memory_bytes: 0,
            models: Vec::new(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// A worker's registration: its id and the lease timing it must keep.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub worker_id: String,
    pub lease_seconds: f64,
    pub heartbeat_seconds: f64,
}

/// What a worker reports of itself with each heartbeat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerStatus {
    /// The models it holds loaded.
    pub models: Vec<String>,
    /// The most GPU memory its process has held (CUDA memory pool high-water mark); 0 on
    /// the CPU.
    pub device_memory_peak_bytes: u64,
}

impl WorkerStatus {
    /// A status holding `models`, with no device memory figure.
    pub fn with_models(models: &[String]) -> Self {
        Self {
            models: models.to_vec(),
            device_memory_peak_bytes: 0,
        }
    }
}

/// A lease as its worker heartbeats it: the task, the attempt (the fencing token), and how
/// far the computation has got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeldLease {
    pub task_id: i64,
    pub attempt: i64,
    /// The share of the task computed so far, 0 to 1 (0 when the worker cannot tell).
    pub fraction_done: f64,
}

impl HeldLease {
    /// The lease of `attempt` of task `task_id`, with nothing computed yet.
    pub fn new(task_id: i64, attempt: i64) -> Self {
        Self {
            task_id,
            attempt,
            fraction_done: 0.0,
        }
    }

    /// The share done as the store keeps it: within [0, 1], 0 for a NaN.
    pub fn fraction_clamped(&self) -> f64 {
        if self.fraction_done.is_nan() {
            0.0
        } else {
            self.fraction_done.clamp(0.0, 1.0)
        }
    }
}
