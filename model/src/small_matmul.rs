//! `x @ w^T` for few rows of `x` on the CPU (a batch-1 forward has as many rows as tokens).
//!
//! There the product is bound by reading `w` from memory, and a general GEMM spends much
//! of its time packing `w` into panels it uses only a few times. This kernel streams each
//! row of `w` once, multiplying it with every row of `x` while it sits in L1, split across
//! threads by rows of `w`. Forward only: the differentiable path uses candle's matmul.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape};

use crate::par_fill::par_filled;

/// At most this many rows of `x` go through the kernel; more are left to GEMM.
pub const MAX_ROWS: usize = 16;

/// Rows of `w` per parallel task.
const W_ROWS_PER_TASK: usize = 64;

pub struct SmallMatmul;

impl CustomOp2 for SmallMatmul {
    fn name(&self) -> &'static str {
        "small-m-matmul-xwt"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let XwtOperands { x, w, m, k, n } = XwtOperands::new(s1, l1, s2, l2, "small matmul")?;
        // Computed as [n, m] so each task owns a contiguous block, then transposed.
        let out_t = par_filled(n * m, W_ROWS_PER_TASK * m, |task, block| {
            for (j, dst) in block.chunks_mut(m).enumerate() {
                let row = (task * W_ROWS_PER_TASK + j) * k;
                dot_rows(x, m, k, &w[row..row + k], dst);
            }
        });
        let out = if m == 1 {
            out_t // [n, 1] is [1, n]
        } else {
            (0..m * n).map(|at| out_t[(at % n) * m + at / n]).collect()
        };
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }
}

/// The operands of `x @ w^T`: `x` holds `m` rows of `k` values, `w` `n` rows of `k`.
pub(crate) struct XwtOperands<'a> {
    pub x: &'a [f32],
    pub w: &'a [f32],
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

impl<'a> XwtOperands<'a> {
    /// Checks that both are contiguous matrices of one inner dimension (`what` names the
    /// kernel in the error).
    pub fn new(
        s1: &'a CpuStorage,
        l1: &Layout,
        s2: &'a CpuStorage,
        l2: &Layout,
        what: &str,
    ) -> candle_core::Result<Self> {
        let (m, k) = l1.shape().dims2()?;
        let (n, k2) = l2.shape().dims2()?;
        if k != k2 {
            candle_core::bail!("{what}: inner dimensions {k} and {k2} differ");
        }
        let (Some((x0, x1)), Some((w0, w1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("{what}: operands must be contiguous");
        };
        let x = &s1.as_slice::<f32>()?[x0..x1];
        let w = &s2.as_slice::<f32>()?[w0..w1];
        Ok(Self { x, w, m, k, n })
    }
}

/// `dst[i] = x[i, :] · w_row` for each of the `m` rows of `x`.
fn dot_rows(x: &[f32], m: usize, k: usize, w_row: &[f32], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // Safety: the features were just detected; slices are bounds-checked below.
            unsafe { dot_rows_avx2(x, m, k, w_row, dst) };
            return;
        }
    }
    for (i, d) in dst.iter_mut().enumerate().take(m) {
        *d = x[i * k..(i + 1) * k]
            .iter()
            .zip(w_row)
            .map(|(a, b)| a * b)
            .sum();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_rows_avx2(x: &[f32], m: usize, k: usize, w_row: &[f32], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    assert!(x.len() >= m * k && w_row.len() >= k && dst.len() >= m);
    let k8 = k / 8 * 8;
    let mut i = 0;
    while i < m {
        let rows = (m - i).min(4);
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut kk = 0;
        while kk < k8 {
            let wv = _mm256_loadu_ps(w_row.as_ptr().add(kk));
            for (r, a) in acc.iter_mut().enumerate().take(rows) {
                let xv = _mm256_loadu_ps(x.as_ptr().add((i + r) * k + kk));
                *a = _mm256_fmadd_ps(xv, wv, *a);
            }
            kk += 8;
        }
        for (r, a) in acc.iter().enumerate().take(rows) {
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), *a);
            let mut s = lanes.iter().sum::<f32>();
            for t in k8..k {
                s += x[(i + r) * k + t] * w_row[t];
            }
            dst[i + r] = s;
        }
        i += 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn equals_gemm() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        for (m, k, n) in [(1, 576, 300), (4, 37, 130), (16, 64, 65), (5, 8, 1)] {
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
            let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
            let fast = x.apply_op2_no_bwd(&w, &SmallMatmul)?;
            let slow = x.matmul(&w.t()?)?;
            let err: f32 = (fast - slow)?.abs()?.flatten_all()?.max(0)?.to_scalar()?;
            assert!(err < 1e-3, "{m}x{k}x{n}: {err}");
        }
        Ok(())
    }
}
