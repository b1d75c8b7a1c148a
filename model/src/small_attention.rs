//! Attention over short contexts on the CPU, in two kernels around the pattern hook:
//! [`AttentionPattern`] (scores, mask, softmax) and [`AttentionMix`] (the pattern's weighted
//! sum of values, written straight in `hook_z`'s `[batch, positions, heads, d_head]` layout).
//!
//! Patching forwards run a few positions over many rows. There candle's batched matmul
//! calls GEMM once per row and key/value head on a few-by-four product (768 calls per
//! product for 256 rows), and the scaling, mask, softmax and transposes each take a pass
//! over the scores: the attention took about 7% of a forward whose products are a few
//! thousand FLOPs. These kernels do the same arithmetic in one pass each, rows in parallel.
//! Forward only: the differentiable path composes candle's ops.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape};

use crate::par_fill::par_filled;

/// `softmax(q · kᵀ · scale + mask)` for `q` `[b, h, t, d]` and `k` `[b, g, total, d]`
/// (query head `i` reads key head `i / (h / g)`), giving `[b, h, t, total]`.
pub struct AttentionPattern<'a> {
    pub scale: f32,
    /// Additive mask `[t, total]` (0 or -inf), or none when every key is visible.
    pub mask: Option<&'a [f32]>,
}

/// `pattern · v` for `pattern` `[b, h, t, total]` and `v` `[b, g, total, d]`, giving
/// `[b, t, h, d]`.
pub struct AttentionMix;

fn contiguous<'s>(s: &'s CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'s [f32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<f32>()?[a..b]),
        None => candle_core::bail!("small attention: {what} must be contiguous"),
    }
}

/// Query heads per key/value head, checking that the two shapes belong together: `[b, h,
/// .., d]` queries (or pattern rows) and `[b2, g, .., d2]` keys or values.
fn heads_per_group(q: &[usize], kv: &[usize], what: &str) -> candle_core::Result<usize> {
    let ((b, h, d), (b2, g, d2)) = ((q[0], q[1], q[3]), (kv[0], kv[1], kv[3]));
    if b != b2 || d != d2 || g == 0 || h % g != 0 {
        candle_core::bail!(
            "small attention: {what} of {b2} rows × {g} heads × {d2} do not fit {b} rows × {h} heads × {d}"
        );
    }
    Ok(h / g)
}

impl CustomOp2 for AttentionPattern<'_> {
    fn name(&self) -> &'static str {
        "small-attention-pattern"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, h, t, d) = ql.shape().dims4()?;
        let (_, g, total, _) = kl.shape().dims4()?;
        let rep = heads_per_group(ql.dims(), kl.dims(), "keys")?;
        if self.mask.is_some_and(|m| m.len() != t * total) {
            candle_core::bail!("small attention: the mask does not cover {t} × {total}");
        }
        let (q, k) = (contiguous(qs, ql, "q")?, contiguous(ks, kl, "k")?);
        let out = par_filled(b * h * t * total, h * t * total, |row, dst| {
            for (hq, head) in dst.chunks_mut(t * total).enumerate() {
                let keys = &k[(row * g + hq / rep) * total * d..][..total * d];
                for (i, scores) in head.chunks_mut(total).enumerate() {
                    let query = &q[((row * h + hq) * t + i) * d..][..d];
                    for (j, s) in scores.iter_mut().enumerate() {
                        *s = dot(query, &keys[j * d..(j + 1) * d]) * self.scale;
                    }
                    if let Some(mask) = self.mask {
                        for (s, m) in scores.iter_mut().zip(&mask[i * total..]) {
                            *s += m;
                        }
                    }
                    softmax_in_place(scores);
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((b, h, t, total))))
    }
}

impl CustomOp2 for AttentionMix {
    fn name(&self) -> &'static str {
        "small-attention-mix"
    }

    fn cpu_fwd(
        &self,
        ps: &CpuStorage,
        pl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, h, t, total) = pl.shape().dims4()?;
        let (_, g, total_v, d) = vl.shape().dims4()?;
        if total != total_v {
            candle_core::bail!("small attention: a pattern over {total} keys, values of {total_v}");
        }
        let rep = heads_per_group(&[b, h, t, d], vl.dims(), "values")?;
        let (p, v) = (contiguous(ps, pl, "pattern")?, contiguous(vs, vl, "v")?);
        let out = par_filled(b * t * h * d, t * h * d, |row, dst| {
            for (i, position) in dst.chunks_mut(h * d).enumerate() {
                for (hq, z) in position.chunks_mut(d).enumerate() {
                    let values = &v[(row * g + hq / rep) * total * d..][..total * d];
                    let weights = &p[((row * h + hq) * t + i) * total..][..total];
                    for (w, value) in weights.iter().zip(values.chunks_exact(d)) {
                        for (z, x) in z.iter_mut().zip(value) {
                            *z += w * x;
                        }
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((b, t, h, d))))
    }
}

/// `a · b` in eight independent lanes (so the compiler vectorizes it).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn softmax_in_place(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::tests::max_diff;
    use candle_core::{Device, Tensor, D};

    /// The kernels against candle's ops on grouped heads, with and without a causal mask
    /// over cached positions.
    #[test]
    fn equals_candle_ops() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        for (b, h, g, t, past, d, masked) in [
            (3, 6, 2, 3, 2, 16, true),
            (2, 4, 4, 1, 0, 8, false),
            (1, 9, 3, 4, 0, 64, true),
        ] {
            let total = past + t;
            let q = Tensor::randn(0f32, 1.0, (b, h, t, d), &dev)?;
            let k = Tensor::randn(0f32, 1.0, (b, g, total, d), &dev)?;
            let v = Tensor::randn(0f32, 1.0, (b, g, total, d), &dev)?;
            let mask: Vec<f32> = (0..t)
                .flat_map(|i| (0..total).map(move |j| (i, j)))
                .map(|(i, j)| {
                    if j <= past + i {
                        0.0
                    } else {
                        f32::NEG_INFINITY
                    }
                })
                .collect();
            let scale = 1.0 / (d as f32).sqrt();
            let rep = h / g;
            let scores = (q
                .reshape((b, g, rep * t, d))?
                .matmul(&k.t()?.contiguous()?)?
                * scale as f64)?
                .reshape((b, h, t, total))?;
            let scores = if masked {
                scores.broadcast_add(&Tensor::from_vec(mask.clone(), (t, total), &dev)?)?
            } else {
                scores
            };
            let want_pattern = candle_nn::ops::softmax(&scores, D::Minus1)?;
            let want_z = want_pattern
                .reshape((b, g, rep * t, total))?
                .matmul(&v)?
                .reshape((b, h, t, d))?
                .transpose(1, 2)?;
            let pattern = q.apply_op2_no_bwd(
                &k,
                &AttentionPattern {
                    scale,
                    mask: masked.then_some(&mask[..]),
                },
            )?;
            let z = pattern.apply_op2_no_bwd(&v, &AttentionMix)?;
            assert!(max_diff(&pattern, &want_pattern) < 1e-6);
            assert!(max_diff(&z, &want_z) < 1e-5);
        }
        Ok(())
    }

    #[test]
    fn mismatched_shapes_are_refused_by_name() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let q = Tensor::zeros((2, 6, 3, 8), candle_core::DType::F32, &dev)?;
        let k = Tensor::zeros((2, 4, 3, 8), candle_core::DType::F32, &dev)?;
        let err = q
            .apply_op2_no_bwd(
                &k,
                &AttentionPattern {
                    scale: 1.0,
                    mask: None,
                },
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("keys of 2 rows × 4 heads"),
            "{err}"
        );
        let short_mask = [0f32; 2];
        let k = Tensor::zeros((2, 3, 3, 8), candle_core::DType::F32, &dev)?;
        let err = q
            .apply_op2_no_bwd(
                &k,
                &AttentionPattern {
                    scale: 1.0,
                    mask: Some(&short_mask),
                },
            )
            .unwrap_err();
        assert!(err.to_string().contains("mask"), "{err}");
        Ok(())
    }
}
