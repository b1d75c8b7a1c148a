//! RMSNorm with weight, `w * x / sqrt(mean(x^2) + eps)`, over the last dimension on the CPU,
//! rows split across threads with the output zeroed on them ([`par_filled`]). candle's own
//! kernel zeroes its output on the calling thread first. Forward only.

use candle_core::{CpuStorage, CustomOp2, Layout};

use crate::par_fill::par_filled;

/// Values per parallel task, in whole rows.
const CHUNK: usize = 16 * 1024;

pub struct FusedRmsNorm {
    pub eps: f32,
}

impl CustomOp2 for FusedRmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
        let d = xl.dims().last().copied().unwrap_or(0);
        if wl.dims() != [d] {
            candle_core::bail!(
                "rms norm: weight {:?} does not match rows of {d}",
                wl.dims()
            );
        }
        let (Some((x0, x1)), Some((w0, w1))) = (xl.contiguous_offsets(), wl.contiguous_offsets())
        else {
            candle_core::bail!("rms norm: operands must be contiguous");
        };
        let x = &xs.as_slice::<f32>()?[x0..x1];
        let w = &ws.as_slice::<f32>()?[w0..w1];
        let rows_per_task = (CHUNK / d.max(1)).max(1);
        let out = par_filled(x.len(), rows_per_task * d, |task, out| {
            let rows = x[task * rows_per_task * d..].chunks(d);
            for (dst, row) in out.chunks_mut(d).zip(rows) {
                let mean_sq = row.iter().map(|v| v * v).sum::<f32>() / d as f32;
                let inv = 1.0 / (mean_sq + self.eps).sqrt();
                for ((o, v), g) in dst.iter_mut().zip(row).zip(w) {
                    *o = v * inv * g;
                }
            }
        });
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::tests::max_diff;
    use candle_core::{Device, Tensor};

    #[test]
    fn equals_candle_rms_norm() -> candle_core::Result<()> {
        let x = Tensor::randn(0f32, 2.0, (3, 700, 48), &Device::Cpu)?;
        let w = Tensor::randn(1f32, 0.3, 48, &Device::Cpu)?;
        let ours = x.apply_op2_no_bwd(&w, &FusedRmsNorm { eps: 1e-5 })?;
        let candle = candle_nn::ops::rms_norm(&x, &w, 1e-5)?;
        assert!(max_diff(&ours, &candle) < 1e-5);
        Ok(())
    }

    #[test]
    fn a_weight_of_another_width_is_refused() -> candle_core::Result<()> {
        let x = Tensor::zeros((2, 8), candle_core::DType::F32, &Device::Cpu)?;
        let w = Tensor::zeros(7, candle_core::DType::F32, &Device::Cpu)?;
        let err = x
            .apply_op2_no_bwd(&w, &FusedRmsNorm { eps: 1e-5 })
            .unwrap_err()
            .to_string();
        assert!(err.contains("weight [7]"), "{err}");
        Ok(())
    }
}
