//! Numerical building blocks with two paths: fused kernels for plain forwards, and
//! compositions of differentiable ops when gradients are needed (candle's fused kernels
//! have no backward). Norm and softmax statistics are taken in f32, as transformers does.

use candle_core::{DType, Tensor, D};

use crate::error::Result;
use crate::fused_rms_norm::FusedRmsNorm;
use crate::fused_swiglu::FusedSwiglu;
use crate::gemm_xwt::GemmXwt;
use crate::small_matmul;

/// `x / sqrt(mean(x^2) + eps)`, without the weight (TransformerLens' `hook_normalized`).
pub fn rms_normalize(x: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let xf = x.to_dtype(DType::F32)?;
    let var = xf.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = xf.broadcast_div(&(var + eps)?.sqrt()?)?;
    Ok(normed.to_dtype(dtype)?)
}

/// RMSNorm with weight: `weight * x / rms(x)`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64, differentiable: bool) -> Result<Tensor> {
    if plain_cpu_f32(&[x, weight]) {
        return Ok(x
            .contiguous()?
            .apply_op2_no_bwd(&weight.contiguous()?, &FusedRmsNorm { eps: eps as f32 })?);
    }
    if !differentiable && x.dtype() == DType::F32 {
        return Ok(candle_nn::ops::rms_norm(
            &x.contiguous()?,
            weight,
            eps as f32,
        )?);
    }
    Ok(rms_normalize(x, eps)?.broadcast_mul(weight)?)
}

/// Softmax over the last dimension.
pub fn softmax_last(x: &Tensor, differentiable: bool) -> Result<Tensor> {
    let dtype = x.dtype();
    let xf = x.to_dtype(DType::F32)?;
    let out = if differentiable {
        let max = xf.max_keepdim(D::Minus1)?.detach();
        let e = xf.broadcast_sub(&max)?.exp()?;
        e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?
    } else {
        candle_nn::ops::softmax_last_dim(&xf.contiguous()?)?
    };
    Ok(out.to_dtype(dtype)?)
}

/// Whether the CPU kernels without a backward may take these operands: f32 on the CPU,
/// and no gradient tracked through them.
fn plain_cpu_f32(operands: &[&Tensor]) -> bool {
    operands
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32 && !t.track_op())
}

/// SiLU gate: `silu(gate) * up` (one fused pass for plain f32 tensors on the CPU).
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.dims() == up.dims() && plain_cpu_f32(&[gate, up]) {
        return Ok(gate
            .contiguous()?
            .apply_op2_no_bwd(&up.contiguous()?, &FusedSwiglu)?);
    }
    Ok((gate.silu()? * up)?)
}

/// `x @ w^T (+ b)` for `x` of shape `[..., in]` and `w` of shape `[out, in]`.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let dims = x.dims();
    let (lead, inner) = dims.split_at(dims.len() - 1);
    let rows: usize = lead.iter().product();
    let x2 = x.reshape((rows, inner[0]))?;
    let y = if !plain_cpu_f32(&[x, w]) {
        x2.matmul(&w.t()?)?
    } else if rows <= small_matmul::MAX_ROWS {
        x2.contiguous()?
            .apply_op2_no_bwd(&w.contiguous()?, &small_matmul::SmallMatmul)?
    } else {
        x2.contiguous()?
            .apply_op2_no_bwd(&w.contiguous()?, &GemmXwt)?
    };
    let y = match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    };
    let mut out_shape = lead.to_vec();
    out_shape.push(w.dim(0)?);
    Ok(y.reshape(out_shape)?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::Device;

    /// The largest absolute difference between two tensors of one shape (the kernels' tests
    /// compare with candle's ops through it).
    pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn fused_and_composed_paths_agree() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 2.0, (2, 5, 16), &dev)?;
        let w = Tensor::randn(1f32, 0.3, 16, &dev)?;
        assert!(
            max_diff(
                &rms_norm(&x, &w, 1e-5, false)?,
                &rms_norm(&x, &w, 1e-5, true)?
            ) < 1e-5
        );
        assert!(max_diff(&softmax_last(&x, false)?, &softmax_last(&x, true)?) < 1e-6);
        Ok(())
    }
}
