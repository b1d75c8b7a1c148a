//! Hook points, named as in TransformerLens, and the hook callbacks the forward pass calls.
//!
//! Shapes (`b` batch, `p` positions, `h` query heads, `g` key/value heads, `d` d_head):
//!
//! | name | shape | value |
//! |---|---|---|
//! | `hook_embed` | `[b, p, d_model]` | token embeddings |
//! | `blocks.L.hook_resid_pre` | `[b, p, d_model]` | residual entering block L |
//! | `blocks.L.attn.hook_q` | `[b, p, h, d]` | queries before RoPE |
//! | `blocks.L.attn.hook_k` | `[b, p, g, d]` | keys before RoPE (one per key/value head) |
//! | `blocks.L.attn.hook_v` | `[b, p, g, d]` | values (one per key/value head) |
//! | `blocks.L.attn.hook_pattern` | `[b, h, p_query, p_key]` | attention probabilities |
//! | `blocks.L.attn.hook_z` | `[b, p, h, d]` | per-head attention output before `o_proj` |
//! | `blocks.L.hook_attn_out` | `[b, p, d_model]` | attention output after `o_proj` |
//! | `blocks.L.hook_resid_mid` | `[b, p, d_model]` | residual after attention |
//! | `blocks.L.mlp.hook_post` | `[b, p, d_mlp]` | `silu(gate) * up`, the input of `down_proj` |
//! | `blocks.L.hook_mlp_out` | `[b, p, d_model]` | MLP output |
//! | `blocks.L.hook_resid_post` | `[b, p, d_model]` | residual leaving block L |
//! | `ln_final.hook_normalized` | `[b, p, d_model]` | `x / rms(x)` before the norm weight |
//!
//! `ln_final.hook_normalized` is taken before the weight multiplication, which equals
//! TransformerLens' value with its default `fold_ln=True`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Tensor};

use crate::error::{ModelError, Result};

/// A place in the forward pass whose value can be read, replaced or differentiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookPoint {
    Embed,
    ResidPre(usize),
    Q(usize),
    K(usize),
    V(usize),
    Pattern(usize),
    Z(usize),
    AttnOut(usize),
    ResidMid(usize),
    MlpPost(usize),
    MlpOut(usize),
    ResidPost(usize),
    LnFinalNormalized,
}

impl HookPoint {
    /// The block the hook lives in (`None` for the embedding and the final norm).
    pub fn layer(&self) -> Option<usize> {
        use HookPoint::*;
        match *self {
            Embed | LnFinalNormalized => None,
            ResidPre(l) | Q(l) | K(l) | V(l) | Pattern(l) | Z(l) | AttnOut(l) | ResidMid(l)
            | MlpPost(l) | MlpOut(l) | ResidPost(l) => Some(l),
        }
    }

    /// Whether dimension 2 of the hook's value indexes heads (`[b, p, heads, d_head]`).
    pub fn has_head_dim(&self) -> bool {
        matches!(
            self,
            HookPoint::Q(_) | HookPoint::K(_) | HookPoint::V(_) | HookPoint::Z(_)
        )
    }

    /// Which dimension indexes positions (the query position for the pattern).
    pub fn position_dim(&self) -> usize {
        match self {
            HookPoint::Pattern(_) => 2,
            _ => 1,
        }
    }

    /// Every hook point of a model with `n_layers` blocks, in forward order.
    pub fn all(n_layers: usize) -> Vec<HookPoint> {
        use HookPoint::*;
        let mut v = vec![Embed];
        for l in 0..n_layers {
            v.extend([
                ResidPre(l),
                Q(l),
                K(l),
                V(l),
                Pattern(l),
                Z(l),
                AttnOut(l),
                ResidMid(l),
                MlpPost(l),
                MlpOut(l),
                ResidPost(l),
            ]);
        }
        v.push(LnFinalNormalized);
        v
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use HookPoint::*;
        match self {
            Embed => write!(f, "hook_embed"),
            LnFinalNormalized => write!(f, "ln_final.hook_normalized"),
            ResidPre(l) => write!(f, "blocks.{l}.hook_resid_pre"),
            Q(l) => write!(f, "blocks.{l}.attn.hook_q"),
            K(l) => write!(f, "blocks.{l}.attn.hook_k"),
            V(l) => write!(f, "blocks.{l}.attn.hook_v"),
            Pattern(l) => write!(f, "blocks.{l}.attn.hook_pattern"),
            Z(l) => write!(f, "blocks.{l}.attn.hook_z"),
            AttnOut(l) => write!(f, "blocks.{l}.hook_attn_out"),
            ResidMid(l) => write!(f, "blocks.{l}.hook_resid_mid"),
            MlpPost(l) => write!(f, "blocks.{l}.mlp.hook_post"),
            MlpOut(l) => write!(f, "blocks.{l}.hook_mlp_out"),
            ResidPost(l) => write!(f, "blocks.{l}.hook_resid_post"),
        }
    }
}

impl FromStr for HookPoint {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        use HookPoint::*;
        let bad = |reason: &str| ModelError::BadHook {
            hook: s.to_string(),
            reason: reason.to_string(),
        };
        match s {
            "hook_embed" => return Ok(Embed),
            "ln_final.hook_normalized" => return Ok(LnFinalNormalized),
            _ => {}
        }
        let rest = s.strip_prefix("blocks.").ok_or_else(|| {
            bad("expected hook_embed, ln_final.hook_normalized or blocks.L.<hook>")
        })?;
        let (layer, name) = rest
            .split_once('.')
            .ok_or_else(|| bad("expected blocks.L.<hook>"))?;
        let l: usize = layer.parse().map_err(|_| bad("layer is not a number"))?;
        Ok(match name {
            "hook_resid_pre" => ResidPre(l),
            "hook_resid_mid" => ResidMid(l),
            "hook_resid_post" => ResidPost(l),
            "hook_attn_out" => AttnOut(l),
            "hook_mlp_out" => MlpOut(l),
            "attn.hook_q" => Q(l),
            "attn.hook_k" => K(l),
            "attn.hook_v" => V(l),
            "attn.hook_z" => Z(l),
            "attn.hook_pattern" => Pattern(l),
            "mlp.hook_post" => MlpPost(l),
            _ => return Err(bad("unknown hook name")),
        })
    }
}

/// Called by the forward pass at every hook point with the value computed there; the
/// returned tensor continues the forward pass in its place (return `value` to observe only).
pub trait Hook {
    fn on(&mut self, point: HookPoint, value: Tensor) -> Result<Tensor>;
}

/// Observes nothing.
pub struct NoHook;

impl Hook for NoHook {
    fn on(&mut self, _point: HookPoint, value: Tensor) -> Result<Tensor> {
        Ok(value)
    }
}

/// Records the values of chosen hook points (TransformerLens' `run_with_cache`).
#[derive(Debug, Default)]
pub struct ActivationCache {
    wanted: Option<HashSet<HookPoint>>,
    values: HashMap<HookPoint, Tensor>,
}

impl ActivationCache {
    /// Records every hook point.
    pub fn all() -> Self {
        Self::default()
    }

    /// Records only the given hook points.
    pub fn only(points: impl IntoIterator<Item = HookPoint>) -> Self {
        Self {
            wanted: Some(points.into_iter().collect()),
            values: HashMap::new(),
        }
    }

    pub fn get(&self, point: HookPoint) -> Result<&Tensor> {
        self.values.get(&point).ok_or_else(|| ModelError::BadHook {
            hook: point.to_string(),
            reason: "not in this cache".into(),
        })
    }

    pub fn contains(&self, point: HookPoint) -> bool {
        self.values.contains_key(&point)
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn into_map(self) -> HashMap<HookPoint, Tensor> {
        self.values
    }
}

impl Hook for ActivationCache {
    fn on(&mut self, point: HookPoint, value: Tensor) -> Result<Tensor> {
        if self.wanted.as_ref().is_none_or(|w| w.contains(&point)) {
            self.values.insert(point, value.detach());
        }
        Ok(value)
    }
}

/// Which entries of a hook's value a patch replaces; `None` means all along that axis.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatchTarget {
    /// Batch rows.
    pub rows: Option<Vec<usize>>,
    /// Positions (query positions for the attention pattern).
    pub positions: Option<Vec<usize>>,
    /// Heads, for hooks shaped `[b, p, heads, d_head]`.
    pub heads: Option<Vec<usize>>,
    /// Entries of the last axis (neurons of `mlp.hook_post`, dimensions of the residual).
    pub features: Option<Vec<usize>>,
}

/// Replace part of a hook's value with `value` (same shape as the hook, or broadcastable).
#[derive(Debug, Clone)]
pub struct Patch {
    pub point: HookPoint,
    pub target: PatchTarget,
    pub value: Tensor,
}

/// A patch given by an explicit mask: entries where `mask` (u8, broadcastable to the hook's
/// shape) is non-zero take `value`'s. For many different patches in one batch (one per row),
/// one mask and one stacked value replace the whole set at the cost of a single select.
/// `mask` and `value` have the hook's rank; the patch covers the batch's rows from
/// `first_row` on, as many as the larger of their first axes (the other may have one row,
/// broadcast over them), so a patch holds only the rows it changes. In a forward whose rows
/// join at later blocks ([`crate::Join`]) a hook may see fewer rows than that: the patch's
/// rows beyond the batch (rows not yet joined) are left out.
#[derive(Debug, Clone)]
pub struct MaskedPatch {
    pub point: HookPoint,
    pub mask: Tensor,
    pub value: Tensor,
    pub first_row: usize,
}

/// Applies patches during a forward pass, optionally caching too.
pub struct Patcher<'a> {
    patches: HashMap<HookPoint, Vec<&'a Patch>>,
    masked: HashMap<HookPoint, Vec<&'a MaskedPatch>>,
    pub cache: Option<ActivationCache>,
}

impl<'a> Patcher<'a> {
    pub fn new(patches: &'a [Patch]) -> Self {
        let mut map: HashMap<HookPoint, Vec<&Patch>> = HashMap::new();
        for p in patches {
            map.entry(p.point).or_default().push(p);
        }
        Self {
            patches: map,
            masked: HashMap::new(),
            cache: None,
        }
    }

    /// Adds masked patches (applied after the targeted ones at the same hook).
    pub fn with_masked(mut self, patches: &'a [MaskedPatch]) -> Self {
        for p in patches {
            self.masked.entry(p.point).or_default().push(p);
        }
        self
    }

    pub fn with_cache(mut self, cache: ActivationCache) -> Self {
        self.cache = Some(cache);
        self
    }
}

impl Hook for Patcher<'_> {
    fn on(&mut self, point: HookPoint, value: Tensor) -> Result<Tensor> {
        let mut value = value;
        if let Some(list) = self.patches.get(&point) {
            for patch in list {
                value = apply_patch(point, &value, &patch.target, &patch.value)?;
            }
        }
        if let Some(list) = self.masked.get(&point) {
            for patch in list {
                value = apply_mask(point, &value, patch)?;
            }
        }
        match &mut self.cache {
            Some(cache) => cache.on(point, value),
            None => Ok(value),
        }
    }
}

/// `old` with the entries of `patch`'s rows where its mask is non-zero replaced by its
/// value's.
pub fn apply_mask(point: HookPoint, old: &Tensor, patch: &MaskedPatch) -> Result<Tensor> {
    let rows = old.dim(0)?;
    let first = patch.first_row;
    if first >= rows {
        return Ok(old.clone()); // its rows have not joined the batch yet
    }
    let n = patch
        .mask
        .dim(0)?
        .max(patch.value.dim(0)?)
        .min(rows - first);
    let head = |t: &Tensor| -> Result<Tensor> {
        Ok(if t.dim(0)? > n {
            t.narrow(0, 0, n)?
        } else {
            t.clone()
        })
    };
    let patched = select(
        point,
        &old.narrow(0, first, n)?,
        &head(&patch.mask)?,
        &head(&patch.value)?,
    )?;
    if n == rows {
        return Ok(patched);
    }
    let mut pieces = Vec::with_capacity(3);
    if first > 0 {
        pieces.push(old.narrow(0, 0, first)?);
    }
    pieces.push(patched);
    if first + n < rows {
        pieces.push(old.narrow(0, first + n, rows - first - n)?);
    }
    Ok(Tensor::cat(&pieces, 0)?)
}

/// `old` with the entries where `mask` is non-zero replaced by `new`'s (both broadcast).
fn select(point: HookPoint, old: &Tensor, mask: &Tensor, new: &Tensor) -> Result<Tensor> {
    let dims = old.dims();
    let fit = |t: &Tensor, what: &str| {
        t.broadcast_as(dims).map_err(|e| ModelError::BadHook {
            hook: point.to_string(),
            reason: format!(
                "patch {what} of shape {:?} does not fit {dims:?}: {e}",
                t.dims()
            ),
        })
    };
    let new = fit(&new.to_dtype(old.dtype())?, "value")?;
    let mask = fit(mask, "mask")?;
    Ok(mask.where_cond(&new, old)?)
}

/// `old` with the entries selected by `target` replaced by `new` (exactly, not by arithmetic).
pub fn apply_patch(
    point: HookPoint,
    old: &Tensor,
    target: &PatchTarget,
    new: &Tensor,
) -> Result<Tensor> {
    let dims = old.dims().to_vec();
    let new = new
        .to_dtype(old.dtype())?
        .broadcast_as(dims.as_slice())
        .map_err(|e| ModelError::BadHook {
            hook: point.to_string(),
            reason: format!(
                "patch value of shape {:?} does not fit {:?}: {e}",
                new.dims(),
                dims
            ),
        })?;
    if target.heads.is_some() && !point.has_head_dim() {
        return Err(ModelError::BadHook {
            hook: point.to_string(),
            reason: "heads given for a hook without a head dimension".into(),
        });
    }
    let axes = [
        (0usize, &target.rows),
        (point.position_dim(), &target.positions),
        (2usize, &target.heads),
        (dims.len() - 1, &target.features),
    ];
    // A mask shaped like `old` with size 1 on untouched axes, built on the CPU then moved.
    let mut mask_shape = vec![1usize; dims.len()];
    let mut selections: Vec<(usize, Vec<bool>)> = Vec::new();
    for (axis, sel) in axes {
        if let Some(indices) = sel {
            let n = dims[axis];
            let mut keep = vec![false; n];
            for &i in indices {
                if i >= n {
                    return Err(ModelError::BadHook {
                        hook: point.to_string(),
                        reason: format!("index {i} out of range for axis {axis} of size {n}"),
                    });
                }
                keep[i] = true;
            }
            mask_shape[axis] = n;
            selections.push((axis, keep));
        }
    }
    if selections.is_empty() {
        return Ok(new.contiguous()?);
    }
    let total: usize = mask_shape.iter().product();
    let mut mask = vec![1u8; total];
    for (flat, m) in mask.iter_mut().enumerate() {
        let mut rem = flat;
        for axis in (0..dims.len()).rev() {
            let idx = rem % mask_shape[axis];
            rem /= mask_shape[axis];
            for (a, keep) in &selections {
                if *a == axis && !keep[idx] {
                    *m = 0;
                }
            }
        }
    }
    let mask = Tensor::from_vec(mask, mask_shape, old.device())?
        .to_dtype(DType::U8)?
        .broadcast_as(dims.as_slice())?;
    Ok(mask.where_cond(&new, old)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn names_round_trip() {
        for p in HookPoint::all(3) {
            let name = p.to_string();
            assert_eq!(name.parse::<HookPoint>().unwrap(), p, "{name}");
        }
    }

    #[test]
    fn bad_names_are_named() {
        let err = "blocks.x.hook_resid_pre".parse::<HookPoint>().unwrap_err();
        assert!(err.to_string().contains("blocks.x.hook_resid_pre"));
        assert!("blocks.1.hook_foo".parse::<HookPoint>().is_err());
    }

    #[test]
    fn patch_replaces_only_the_target() -> Result<()> {
        let dev = Device::Cpu;
        let old = Tensor::zeros((2, 3, 4, 2), DType::F32, &dev)?;
        let new = Tensor::ones((2, 3, 4, 2), DType::F32, &dev)?;
        let target = PatchTarget {
            rows: Some(vec![1]),
            positions: Some(vec![0, 2]),
            heads: Some(vec![3]),
            features: None,
        };
        let out = apply_patch(HookPoint::Z(0), &old, &target, &new)?;
        let v: Vec<f32> = out.flatten_all()?.to_vec1()?;
        let ones: Vec<usize> = v
            .iter()
            .enumerate()
            .filter(|(_, x)| **x == 1.0)
            .map(|(i, _)| i)
            .collect();
        // row 1, positions 0 and 2, head 3, both d entries.
        let expect: Vec<usize> = [0usize, 2]
            .iter()
            .flat_map(|p| (0..2).map(move |d| 24 + p * 8 + 3 * 2 + d))
            .collect();
        assert_eq!(ones, expect);
        Ok(())
    }

    #[test]
    fn out_of_range_index_is_an_error() {
        let dev = Device::Cpu;
        let old = Tensor::zeros((1, 3, 4), DType::F32, &dev).unwrap();
        let target = PatchTarget {
            positions: Some(vec![5]),
            ..Default::default()
        };
        let err = apply_patch(HookPoint::ResidPre(0), &old, &target, &old).unwrap_err();
        assert!(err.to_string().contains("out of range"));
    }
}
