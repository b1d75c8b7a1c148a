//! A worker's counters, shared between the worker loop, the executor and the metrics
//! endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct WorkerCounters {
    pub tasks_completed: AtomicU64,
    pub tasks_failed: AtomicU64,
    pub results_refused: AtomicU64,
    /// Patched forwards (or attribution estimates) delivered: one per effect row.
    pub patches: AtomicU64,
    /// Seconds the last model load took (f64 bits).
    model_load_seconds: AtomicU64,
    pub models_loaded: AtomicU64,
    /// The most device (GPU) memory the process has held, in bytes; 0 on the CPU.
    device_memory_peak: AtomicU64,
}

impl WorkerCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn set_model_load_seconds(&self, s: f64) {
        self.model_load_seconds
            .store(s.to_bits(), Ordering::Relaxed);
        Self::add(&self.models_loaded, 1);
    }

    pub fn model_load_seconds(&self) -> f64 {
        f64::from_bits(self.model_load_seconds.load(Ordering::Relaxed))
    }

    /// Raises the device memory peak to `bytes` if it is higher.
    pub fn note_device_memory_peak(&self, bytes: u64) {
        self.device_memory_peak.fetch_max(bytes, Ordering::Relaxed);
    }

    pub fn device_memory_peak(&self) -> u64 {
        Self::get(&self.device_memory_peak)
    }

    /// The Prometheus text exposition of these counters.
    pub fn render(&self, worker: &str) -> String {
        let g = Self::get;
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{worker=\"{worker}\"}} {value}\n"
            ));
        };
        metric(
            "patchsweep_worker_tasks_completed_total",
            "counter",
            "Tasks whose results were accepted.",
            g(&self.tasks_completed).to_string(),
        );
        metric(
            "patchsweep_worker_tasks_failed_total",
            "counter",
            "Tasks that failed on this worker.",
            g(&self.tasks_failed).to_string(),
        );
        metric(
            "patchsweep_worker_results_refused_total",
            "counter",
            "Results refused as stale (fencing).",
            g(&self.results_refused).to_string(),
        );
        metric(
            "patchsweep_worker_patches_total",
            "counter",
            "Patches delivered (one per effect row); rate() gives patches/s.",
            g(&self.patches).to_string(),
        );
        metric(
            "patchsweep_worker_model_load_seconds",
            "gauge",
            "Seconds the last model load took.",
            format!("{}", self.model_load_seconds()),
        );
        metric(
            "patchsweep_worker_models_loaded_total",
            "counter",
            "Models loaded since start.",
            g(&self.models_loaded).to_string(),
        );
        metric(
            "patchsweep_worker_resident_memory_bytes",
            "gauge",
            "Resident memory of the worker process (host side).",
            resident_bytes().to_string(),
        );
        metric(
            "patchsweep_worker_device_memory_peak_bytes",
            "gauge",
            "Most GPU memory the worker process has held (its CUDA memory pool's high-water \
             mark: weights, cached runs and activations); 0 on the CPU.",
            self.device_memory_peak().to_string(),
        );
        out
    }
}

/// Resident set size from /proc (0 where there is none).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}
