//! Interventions on activations as a [`Hook`]: replace a component's output (ablation) or
//! remove its projection on a direction (steering), at chosen positions of each row.
//!
//! Replacements select with a mask (`where_cond`), as patches do, so an edit list that
//! touches nothing leaves every value bit for bit unchanged.

use std::collections::BTreeMap;

use candle_core::{DType, Tensor};
use patchsweep_model::{ActivationCache, Hook, HookPoint};

use super::error::{DebiasError, Result};
use crate::grid::{resolve_position, PositionRef};

/// What an edit does to the selected entries.
#[derive(Debug, Clone)]
pub enum EditOp {
    /// Replace by this vector (`[d_head]` for a head, `[d_model]` otherwise); zeros for a
    /// zero ablation, a mean for a mean ablation.
    Replace(Tensor),
    /// Replace each position by the vector of its position label (`by_label`), or by
    /// `fallback` when its label has none or the row is unlabelled; with `skip_first`,
    /// position 0 is never edited. Mean ablation per label (see [`super::ablation`]).
    ReplaceByLabel {
        by_label: BTreeMap<String, Tensor>,
        fallback: Tensor,
        skip_first: bool,
    },
    /// `x - s ((x·u) - c) u` for the unit vector `direction` (`[d_model]`), the strength `s`
    /// and the centre `c` of each position (its label's, see [`Centre`]): with `s = 1` every
    /// edited position's coordinate along `u` becomes `c`. With `skip_first`, position 0 is
    /// never edited.
    ProjectOut {
        direction: Tensor,
        strength: f64,
        centre: Centre,
        skip_first: bool,
    },
}

/// Where a projection is moved to, per position label: `by_label`, or `fallback` for a
/// label without a value and for unlabelled rows. [`Centre::zero`] removes the projection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Centre {
    pub by_label: BTreeMap<String, f64>,
    pub fallback: f64,
}

impl Centre {
    /// `c = 0` everywhere: `x - s (x·u) u`.
    pub fn zero() -> Self {
        Self::default()
    }

    /// Every value moved by `t`.
    pub fn shifted(&self, t: f64) -> Self {
        Self {
            by_label: self
                .by_label
                .iter()
                .map(|(l, c)| (l.clone(), c + t))
                .collect(),
            fallback: self.fallback + t,
        }
    }

    fn at(&self, label: Option<&String>) -> f64 {
        label
            .and_then(|l| self.by_label.get(l))
            .copied()
            .unwrap_or(self.fallback)
    }
}

/// Where in each prompt an edit applies.
#[derive(Debug, Clone, PartialEq)]
pub enum EditPositions {
    All,
    /// Positions by label (`last` = the final token) or index; on text without labels
    /// (the neutral chunks) a labelled edit applies at every position, so the capability
    /// cost is never understated.
    Refs(Vec<PositionRef>),
}

/// One intervention at one hook point.
#[derive(Debug, Clone)]
pub struct Edit {
    pub point: HookPoint,
    /// For `hook_z`: the head edited (other heads are untouched).
    pub head: Option<usize>,
    pub positions: EditPositions,
    pub op: EditOp,
}

/// The positions of each row an edit applies to (`None` = all).
fn row_positions(edit: &Edit, labels: Option<&[String]>, n: usize) -> Result<Option<Vec<usize>>> {
    let (EditPositions::Refs(refs), Some(labels)) = (&edit.positions, labels) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for r in refs {
        let r = match r {
            PositionRef::Label(l) if l == "last" => PositionRef::Index(-1),
            other => other.clone(),
        };
        for p in resolve_position(&r, n, labels)? {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    Ok(Some(out))
}

/// Applies edits during a forward pass over a batch of rows of equal length.
pub struct EditHook<'a> {
    edits: &'a [Edit],
    /// Per edit: a `[batch, positions]` u8 mask, or `None` when it covers everything.
    masks: Vec<Option<Vec<u8>>>,
    /// Per edit with [`EditOp::ReplaceByLabel`]: the replacement table `[k, width]` (row 0
    /// the fallback) and the `[batch * positions]` row of it each position takes.
    by_label: Vec<Option<(Tensor, Vec<u32>)>>,
    /// Per edit with [`EditOp::ProjectOut`] and a centre that is not zero: `c` for each of
    /// the `[batch * positions]` positions.
    centres: Vec<Option<Vec<f32>>>,
    batch: usize,
    n: usize,
    /// Records values after the edits (for tests and inspection).
    pub cache: Option<ActivationCache>,
}

impl<'a> EditHook<'a> {
    /// `labels` holds each row's position labels (`None` for unlabelled text); every row
    /// has `n` positions.
    pub fn new(edits: &'a [Edit], labels: &[Option<&[String]>], n: usize) -> Result<Self> {
        let mut masks = Vec::with_capacity(edits.len());
        let mut tables = Vec::with_capacity(edits.len());
        let mut centres = Vec::with_capacity(edits.len());
        for e in edits {
            centres.push(centre_values(&e.op, labels, n));
            let rows = labels
                .iter()
                .map(|l| row_positions(e, *l, n))
                .collect::<Result<Vec<_>>>()?;
            let skip_first = match e.op {
                EditOp::ReplaceByLabel { skip_first, .. }
                | EditOp::ProjectOut { skip_first, .. } => skip_first,
                EditOp::Replace(_) => false,
            };
            tables.push(label_table(&e.op, labels, n)?);
            if rows.iter().all(Option::is_none) && !(skip_first && n > 0) {
                masks.push(None);
                continue;
            }
            let mut m = vec![0u8; labels.len() * n];
            for (r, ps) in rows.iter().enumerate() {
                match ps {
                    None => m[r * n..(r + 1) * n].fill(1),
                    Some(ps) => ps.iter().for_each(|&p| m[r * n + p] = 1),
                }
                if skip_first && n > 0 {
                    m[r * n] = 0;
                }
            }
            masks.push(Some(m));
        }
        Ok(Self {
            edits,
            masks,
            by_label: tables,
            centres,
            batch: labels.len(),
            n,
            cache: None,
        })
    }

    pub fn with_cache(mut self, cache: ActivationCache) -> Self {
        self.cache = Some(cache);
        self
    }

    fn apply(&self, i: usize, value: Tensor) -> Result<Tensor> {
        let e = &self.edits[i];
        let dims = value.dims().to_vec();
        if dims.len() < 3 || dims[0] != self.batch || dims[1] != self.n {
            return Err(DebiasError::Evaluation(format!(
                "{}: value of shape {dims:?} does not match {} rows of {} positions",
                e.point, self.batch, self.n
            )));
        }
        // Mask shaped like the value with 1s on the axes it does not select.
        let mut mshape = vec![1usize; dims.len()];
        let mut mask_data: Vec<u8> = match &self.masks[i] {
            Some(m) => {
                mshape[0] = self.batch;
                mshape[1] = self.n;
                m.clone()
            }
            None => vec![1],
        };
        if let Some(h) = e.head {
            if dims.len() != 4 || h >= dims[2] {
                return Err(DebiasError::Evaluation(format!(
                    "{}: head {h} does not fit a value of shape {dims:?}",
                    e.point
                )));
            }
            let heads = dims[2];
            mask_data = mask_data
                .iter()
                .flat_map(|&v| (0..heads).map(move |k| if k == h { v } else { 0 }))
                .collect();
            mshape[2] = heads;
        }
        let mask = Tensor::from_vec(mask_data, mshape, value.device())?
            .to_dtype(DType::U8)?
            .broadcast_as(dims.as_slice())?;
        let new = match &e.op {
            EditOp::Replace(v) => v.to_dtype(value.dtype())?.broadcast_as(dims.as_slice())?,
            EditOp::ReplaceByLabel { .. } => {
                let (table, rows) = self.by_label[i]
                    .as_ref()
                    .expect("a table is built for every ReplaceByLabel edit");
                let idx = Tensor::new(rows.as_slice(), value.device())?;
                let width = *dims.last().expect("rank checked above");
                let mut shape = vec![self.batch, self.n];
                shape.extend(std::iter::repeat_n(1, dims.len() - 3));
                shape.push(width);
                table
                    .to_device(value.device())?
                    .to_dtype(value.dtype())?
                    .index_select(&idx, 0)?
                    .reshape(shape)?
                    .broadcast_as(dims.as_slice())?
            }
            EditOp::ProjectOut {
                direction,
                strength,
                ..
            } => {
                let u = direction.to_dtype(value.dtype())?;
                let mut proj = value.broadcast_mul(&u)?.sum_keepdim(dims.len() - 1)?;
                if let Some(c) = &self.centres[i] {
                    let mut shape = vec![self.batch, self.n];
                    shape.resize(dims.len(), 1);
                    let c = Tensor::from_slice(c.as_slice(), shape, value.device())?
                        .to_dtype(value.dtype())?;
                    proj = proj.broadcast_sub(&c)?;
                }
                let removed = proj.broadcast_mul(&u)?;
                let removed = if *strength == 1.0 {
                    removed
                } else {
                    (removed * *strength)?
                };
                (&value - removed)?
            }
        };
        Ok(mask.where_cond(&new, &value)?)
    }
}

/// For a [`EditOp::ProjectOut`] whose centre is not zero: the centre of each (row,
/// position), from its label.
fn centre_values(op: &EditOp, labels: &[Option<&[String]>], n: usize) -> Option<Vec<f32>> {
    let EditOp::ProjectOut { centre, .. } = op else {
        return None;
    };
    if *centre == Centre::zero() {
        return None;
    }
    let mut out = Vec::with_capacity(labels.len() * n);
    for l in labels {
        for p in 0..n {
            out.push(centre.at(l.and_then(|l| l.get(p))) as f32);
        }
    }
    Some(out)
}

/// For a [`EditOp::ReplaceByLabel`]: the vectors stacked `[fallback, labels…]` and, per
/// (row, position), the index of the one it takes.
fn label_table(
    op: &EditOp,
    labels: &[Option<&[String]>],
    n: usize,
) -> Result<Option<(Tensor, Vec<u32>)>> {
    let EditOp::ReplaceByLabel {
        by_label, fallback, ..
    } = op
    else {
        return Ok(None);
    };
    let names: Vec<&String> = by_label.keys().collect();
    let mut vectors = vec![fallback.clone()];
    vectors.extend(by_label.values().cloned());
    let table = Tensor::stack(&vectors, 0)?;
    let mut rows = Vec::with_capacity(labels.len() * n);
    for l in labels {
        for p in 0..n {
            let k = l
                .and_then(|l| l.get(p))
                .and_then(|label| names.iter().position(|x| *x == label))
                .map_or(0, |k| k + 1);
            rows.push(k as u32);
        }
    }
    Ok(Some((table, rows)))
}

impl Hook for EditHook<'_> {
    fn on(&mut self, point: HookPoint, value: Tensor) -> patchsweep_model::Result<Tensor> {
        let mut value = value;
        for i in 0..self.edits.len() {
            if self.edits[i].point == point {
                value =
                    self.apply(i, value)
                        .map_err(|e| patchsweep_model::ModelError::BadHook {
                            hook: point.to_string(),
                            reason: e.to_string(),
                        })?;
            }
        }
        match &mut self.cache {
            Some(c) => c.on(point, value),
            None => Ok(value),
        }
    }
}
