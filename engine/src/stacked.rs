//! Cached runs stacked along the batch axis, each part once, so that a batched forward
//! gathers its rows with one `index_select` instead of one copy per row — and, for the
//! keys and values, per row and per block. On a GPU those per-row copies were thousands of
//! tiny kernel launches per forward and made patching launch-bound.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use candle_core::{Device, Tensor};
use patchsweep_model::HookPoint;

use crate::error::{EngineError, Result};
use crate::runs::RunCache;

/// One cached tensor of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Part {
    /// The residual entering block `l`.
    ResidPre(usize),
    /// Block `l`'s keys.
    Keys(usize),
    /// Block `l`'s values.
    Values(usize),
    Hook(HookPoint),
}

impl Part {
    fn of(self, run: &RunCache) -> Result<&Tensor> {
        match self {
            Part::ResidPre(l) => run.resid_pre.get(l),
            Part::Keys(l) => run.kv.get(l).map(|kv| &kv.k),
            Part::Values(l) => run.kv.get(l).map(|kv| &kv.v),
            Part::Hook(point) => run.hooks.get(&point),
        }
        .ok_or_else(|| EngineError::Grid(format!("the cached run holds no {self:?}")))
    }
}

/// Runs whose parts are stacked on first use: row `i` of every stack is `runs[i]`.
pub(crate) struct Stacked<'a> {
    runs: Vec<&'a RunCache>,
    memo: HashMap<Part, Tensor>,
}

impl<'a> Stacked<'a> {
    pub(crate) fn new(runs: Vec<&'a RunCache>) -> Self {
        Self {
            runs,
            memo: HashMap::new(),
        }
    }

    /// The rows `rows` (indices into the runs, a [`row_index`] tensor) of `part`, in that
    /// order.
    pub(crate) fn rows(&mut self, part: Part, rows: &Tensor) -> Result<Tensor> {
        let stack = match self.memo.entry(part) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let parts = self
                    .runs
                    .iter()
                    .map(|r| part.of(r))
                    .collect::<Result<Vec<_>>>()?;
                e.insert(Tensor::cat(&parts, 0)?)
            }
        };
        Ok(stack.index_select(rows, 0)?)
    }
}

/// Row indices as a tensor on `device`, for [`Stacked::rows`].
pub(crate) fn row_index(rows: impl IntoIterator<Item = usize>, device: &Device) -> Result<Tensor> {
    let ids: Vec<u32> = rows.into_iter().map(|r| r as u32).collect();
    Ok(Tensor::new(ids, device)?)
}
