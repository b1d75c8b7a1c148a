//! `x @ w^T` on the CPU through `gemm` (the crate candle's CPU matmul calls), writing into an
//! output that is not zeroed first.
//!
//! candle's matmul allocates its output with `vec![0; m * n]` on the calling thread before
//! the parallel product starts, so the other threads wait for a memset (and the page faults
//! of a fresh allocation) of every product. Here the product writes each output element
//! once without reading it, on the threads that compute it. Forward only.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape};

use crate::small_matmul::XwtOperands;

pub struct GemmXwt;

impl CustomOp2 for GemmXwt {
    fn name(&self) -> &'static str {
        "gemm-xwt"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let XwtOperands { x, w, m, k, n } = XwtOperands::new(s1, l1, s2, l2, "gemm x@w^T")?;
        let threads = crate::cpu_pool::matmul_threads();
        let parallelism = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        let mut out: Vec<f32> = Vec::with_capacity(m * n);
        // Safety: `x` holds m × k values in rows of k, `w` n × k in rows of k (read as the
        // k × n matrix w^T: row stride 1, column stride k), and `out` has room for m × n
        // values in rows of n. With `read_dst` false, gemm writes every element of `out`
        // (`out = 1 · x w^T`) without reading it, so all m × n are initialised on return.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out.as_mut_ptr(),
                1,
                n as isize,
                false,
                x.as_ptr(),
                1,
                k as isize,
                w.as_ptr(),
                k as isize,
                1,
                0f32,
                1f32,
                false,
                false,
                false,
                parallelism,
            );
            out.set_len(m * n);
        }
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::tests::max_diff;
    use candle_core::{Device, Tensor};

    #[test]
    fn equals_candle_matmul() -> candle_core::Result<()> {
        for (m, k, n) in [(1, 3, 2), (37, 64, 19), (300, 96, 130)] {
            let x = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
            let w = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu)?;
            let ours = x.apply_op2_no_bwd(&w, &GemmXwt)?;
            assert!(max_diff(&ours, &x.matmul(&w.t()?)?) < 1e-4, "{m}×{k}×{n}");
        }
        Ok(())
    }

    #[test]
    fn mismatched_inner_dimensions_are_refused() -> candle_core::Result<()> {
        let x = Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu)?;
        let w = Tensor::zeros((4, 5), candle_core::DType::F32, &Device::Cpu)?;
        let err = x.apply_op2_no_bwd(&w, &GemmXwt).unwrap_err().to_string();
        assert!(err.contains("inner dimensions 3 and 5"), "{err}");
        Ok(())
    }
}
