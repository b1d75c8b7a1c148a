//! How much memory one task may take on this worker (`--max-task-memory`), and the check
//! every task passes before it computes: a task whose estimate exceeds the budget fails for
//! good with the numbers, instead of aborting the worker on a failed allocation.

pub use patchsweep_api::byte_size::parse_bytes;
use patchsweep_engine::memory::{gib, MemoryEstimate};

use crate::executor::TaskError;

/// The default budget on `device`: on the CPU the memory available now (`MemAvailable` of
/// `/proc/meminfo`), on `cuda:N` that GPU's free memory (from `nvidia-smi`). A worker takes
/// it once at start, before it loads a model: the check weighs a task's working memory
/// (activations, caches, attention scores), not the weights.
pub fn default_max_task_memory(device: &str) -> Result<u64, String> {
    match device.strip_prefix("cuda") {
        None => available_host_memory(),
        Some(rest) => {
            let ordinal = rest.strip_prefix(':').unwrap_or("0");
            let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
            free_gpu_memory(&physical_gpu(ordinal, visible.as_deref())?)
        }
    }
}

/// The GPU `nvidia-smi -i` must be asked about for CUDA ordinal `ordinal`: CUDA numbers the
/// devices `CUDA_VISIBLE_DEVICES` lists (indices or UUIDs) from 0, nvidia-smi does not.
fn physical_gpu(ordinal: &str, visible: Option<&str>) -> Result<String, String> {
    let Some(list) = visible.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(ordinal.to_string());
    };
    let n: usize = ordinal
        .parse()
        .map_err(|_| format!("cuda:{ordinal} is not a device number"))?;
    list.split(',')
        .map(str::trim)
        .nth(n)
        .map(str::to_string)
        .ok_or_else(|| format!("cuda:{n} is not among CUDA_VISIBLE_DEVICES={list}"))
}

fn available_host_memory() -> Result<u64, String> {
    let text = std::fs::read_to_string("/proc/meminfo")
        .map_err(|e| format!("reading /proc/meminfo: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| "/proc/meminfo has no MemAvailable line".into())
}

fn free_gpu_memory(ordinal: &str) -> Result<u64, String> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=memory.free",
            "--format=csv,noheader,nounits",
            "-i",
            ordinal,
        ])
        .output()
        .map_err(|e| format!("running nvidia-smi: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse::<u64>()
        .map(|mib| mib << 20)
        .map_err(|_| format!("nvidia-smi gave no free memory for GPU {ordinal}"))
}

/// The budget a worker runs with: `flag` when given, else the device's default; without
/// either (no `/proc/meminfo`, no `nvidia-smi`) no cap, with a warning.
pub fn resolve(flag: Option<u64>, device: &str) -> Option<u64> {
    if flag.is_some() {
        return flag;
    }
    match default_max_task_memory(device) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            tracing::warn!("no memory cap per task ({e}); set --max-task-memory");
            None
        }
    }
}

/// Fails the task for good when `need` exceeds `budget`: the same task needs the same
/// memory on every attempt.
pub fn check(what: &str, need: &MemoryEstimate, budget: Option<u64>) -> Result<(), TaskError> {
    match budget {
        Some(limit) if need.bytes > limit => Err(TaskError::permanent(format!(
            "{what} needs {need}, more than this worker allows one task ({}, \
             --max-task-memory); use shorter prompts or a smaller batch_size or \
             tasks.pairs_per_task",
            gib(limit)
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_has_memory_available() {
        let bytes = default_max_task_memory("cpu").unwrap();
        assert!(bytes > 1 << 20, "{bytes}");
    }

    #[test]
    fn cuda_ordinals_map_through_cuda_visible_devices() {
        assert_eq!(physical_gpu("1", None).unwrap(), "1");
        assert_eq!(physical_gpu("0", Some("3")).unwrap(), "3");
        assert_eq!(physical_gpu("1", Some("2, 5")).unwrap(), "5");
        assert_eq!(
            physical_gpu("0", Some("GPU-8a1b,GPU-77")).unwrap(),
            "GPU-8a1b"
        );
        let err = physical_gpu("2", Some("3")).unwrap_err();
        assert!(err.contains("not among CUDA_VISIBLE_DEVICES=3"), "{err}");
    }
}
