//! The memory of the device a model lives on, read from the device itself: what is free now
//! and the most the process has held. On the CPU there is no such reading (`None`); a worker
//! reports its host memory separately.
//!
//! On CUDA, candle allocates through the device's default stream-ordered memory pool
//! (`cuMemAllocAsync`), so the pool's high-water marks are the real peak: every weight,
//! cached run and activation the process held at once, not a sample that could miss a
//! short-lived batch.

use candle_core::Device;

/// Free and total bytes of `device` now (`None` on the CPU or when the driver does not say).
pub fn free_and_total(device: &Device) -> Option<(u64, u64)> {
    imp::free_and_total(device)
}

/// The most bytes the process has held on `device` since it started or since the last
/// [`reset_peak`] (`None` on the CPU or when the driver does not say).
pub fn peak_bytes(device: &Device) -> Option<u64> {
    imp::peak_bytes(device)
}

/// Starts a new peak from what is held now (no-op on the CPU).
pub fn reset_peak(device: &Device) {
    imp::reset_peak(device)
}

#[cfg(feature = "cuda")]
mod imp {
    use candle_core::cuda_backend::cudarc::driver::sys;
    use candle_core::Device;

    pub fn free_and_total(device: &Device) -> Option<(u64, u64)> {
        let Device::Cuda(d) = device else {
            return None;
        };
        let (free, total) = d.cuda_stream().context().mem_get_info().ok()?;
        Some((free as u64, total as u64))
    }

    /// The device's default memory pool, the one candle's allocations come from.
    fn default_pool(device: &Device) -> Option<sys::CUmemoryPool> {
        let Device::Cuda(d) = device else {
            return None;
        };
        let stream = d.cuda_stream();
        let ctx = stream.context();
        if !ctx.has_async_alloc() {
            return None;
        }
        ctx.bind_to_thread().ok()?;
        let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
        // SAFETY: `pool` is a valid out-pointer and the device handle comes from a live
        // context bound to this thread.
        let rc = unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device()) };
        (rc == sys::CUresult::CUDA_SUCCESS && !pool.is_null()).then_some(pool)
    }

    pub fn peak_bytes(device: &Device) -> Option<u64> {
        let pool = default_pool(device)?;
        let mut value: u64 = 0;
        // SAFETY: RESERVED_MEM_HIGH is a cuuint64_t attribute; `value` is one.
        let rc = unsafe {
            sys::cuMemPoolGetAttribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH,
                &mut value as *mut u64 as *mut std::ffi::c_void,
            )
        };
        (rc == sys::CUresult::CUDA_SUCCESS).then_some(value)
    }

    pub fn reset_peak(device: &Device) {
        let Some(pool) = default_pool(device) else {
            return;
        };
        // Setting a high-water mark to 0 resets it to the current value.
        let mut zero: u64 = 0;
        // SAFETY: as in `peak_bytes`; the attribute takes a cuuint64_t set to 0.
        unsafe {
            sys::cuMemPoolSetAttribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH,
                &mut zero as *mut u64 as *mut std::ffi::c_void,
            );
        }
    }
}

#[cfg(not(feature = "cuda"))]
mod imp {
    use candle_core::Device;

    pub fn free_and_total(_: &Device) -> Option<(u64, u64)> {
        None
    }

    pub fn peak_bytes(_: &Device) -> Option<u64> {
        None
    }

    pub fn reset_peak(_: &Device) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_has_no_device_memory_reading() {
        assert_eq!(free_and_total(&Device::Cpu), None);
        assert_eq!(peak_bytes(&Device::Cpu), None);
        reset_peak(&Device::Cpu);
    }
}
