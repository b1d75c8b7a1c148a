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

/// The most rows per forward a memory plan gives: a forward of this many rows is
/// compute-bound on any current GPU, so more would only hold memory.
pub const MAX_PLANNED_BATCH: usize = 4096;

/// The share of the free memory a planned batch may fill: the rest is for the allocator's
/// slack and what the estimate leaves out.
pub const PLAN_MARGIN: f64 = 0.8;

/// Rows per forward for one task: the spec's `batch_size` when it fixes one; else, on a
/// device that reports its free memory (`free`, read after the model is loaded), the largest
/// number of rows up to [`MAX_PLANNED_BATCH`] whose estimated peak (`need(rows)`, which grows
/// with rows) fits [`PLAN_MARGIN`] of it and the task budget; else `default`. When not even
/// one row fits, one row: the budget check then refuses the task with the numbers.
pub fn plan_batch(
    fixed: Option<usize>,
    default: usize,
    free: Option<u64>,
    budget: Option<u64>,
    mut need: impl FnMut(usize) -> u64,
) -> usize {
    if let Some(rows) = fixed {
        return rows;
    }
    let Some(free) = free else {
        return default;
    };
    let room = ((free as f64 * PLAN_MARGIN) as u64).min(budget.unwrap_or(u64::MAX));
    let (mut lo, mut hi) = (1, MAX_PLANNED_BATCH);
    if need(lo) > room {
        return 1;
    }
    // invariant: need(lo) fits; find the largest such lo
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if need(mid) <= room {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_batch_size_is_kept_whatever_the_memory() {
        assert_eq!(
            plan_batch(Some(48), 64, Some(1 << 40), None, |r| r as u64),
            48
        );
        assert_eq!(plan_batch(Some(48), 64, Some(1), Some(1), |r| r as u64), 48);
    }

    #[test]
    fn without_a_device_reading_the_default_applies() {
        assert_eq!(plan_batch(None, 64, None, Some(1 << 40), |r| r as u64), 64);
    }

    #[test]
    fn the_plan_is_the_largest_batch_that_fits_the_margin() {
        // 1 GiB of fixed cost plus 10 MiB per row, 8 GiB free: 0.8 × 8 GiB = 6.4 GiB → 552 rows
        let need = |rows: usize| (1u64 << 30) + rows as u64 * (10 << 20);
        let rows = plan_batch(None, 64, Some(8 << 30), None, need);
        assert_eq!(rows, 552);
        assert!(need(rows) as f64 <= 0.8 * (8u64 << 30) as f64);
        assert!(need(rows + 1) as f64 > 0.8 * (8u64 << 30) as f64);
        // a task budget below the free memory caps the plan
        assert_eq!(
            plan_batch(None, 64, Some(8 << 30), Some(2 << 30), need),
            102
        );
    }

    #[test]
    fn the_plan_is_capped_and_never_zero() {
        assert_eq!(
            plan_batch(None, 64, Some(1 << 50), None, |r| r as u64),
            MAX_PLANNED_BATCH
        );
        assert_eq!(plan_batch(None, 64, Some(100), None, |_| 1 << 40), 1);
    }

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
