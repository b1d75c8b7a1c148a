//! Activation patching, fast path. A cell patched at layer `L` and position `p` cannot
//! change anything below `L` nor any position before `p` (causal attention), so its row
//! enters the forward at block `L` from the cached residual, runs only positions `p..`, and
//! reads the earlier positions' keys and values from the cache. Cells of one prompt length
//! and start position share one batched forward across pairs, components and layers: the
//! forward starts at the lowest layer among them and the rows of higher layers join it at
//! their own block ([`Join`]), so every block runs exactly the rows that need it, in one
//! product per weight. Each row carries its own patch through one mask; only the last
//! position is unembedded.
//!
//! A forward of few tokens is bound by reading the weights, not by arithmetic (on a GPU
//! below a few thousand tokens, on a CPU below some tens): such forwards of one length are
//! packed with those of the next start positions, up to [`Packing::min_tokens`] tokens and
//! [`Packing::max_rows`] rows. A row patched at a later position then recomputes the
//! unpatched positions before it, which gives the same values as reading them from the
//! cache.

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Tensor};
use patchsweep_model::{
    Forward, HookPoint, HookedTransformer, Input, Join, LayerKv, MaskedPatch, Patcher, Unembed,
};

use crate::error::Result;
use crate::grid::{Cell, Site};
use crate::metric::{answer_ids, values_on_subset, Metric};
use crate::runs::RunCache;
use crate::stacked::{row_index, Part, Stacked};

/// The cells of one pair: patch `source` values into the `base` run.
pub struct PairJob<'a> {
    /// Positions before this one hold the same tokens in both prompts, so every activation
    /// there is identical in both runs and patching it changes nothing.
    pub first_diff: usize,
    pub base: &'a RunCache,
    pub source: &'a RunCache,
    pub metric: &'a Metric,
    pub n_tokens: usize,
    pub cells: &'a [Cell],
}

/// How cells are packed into batched forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packing {
    /// Rows per forward at most.
    pub max_rows: usize,
    /// Forwards of fewer tokens (rows × positions run) than this take in the rows of the
    /// next start positions of the same length; 0 never packs across positions.
    pub min_tokens: usize,
}

/// The metric of the patched run for every cell: `values[job][cell]`.
pub fn patch_values(
    model: &HookedTransformer,
    jobs: &[PairJob],
    packing: Packing,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<f32>>> {
    let mut groups: BTreeMap<(usize, usize, usize), Vec<(usize, usize)>> = BTreeMap::new();
    let mut values: Vec<Vec<f32>> = jobs.iter().map(|j| vec![f32::NAN; j.cells.len()]).collect();
    let mut unchanged = 0;
    for (j, job) in jobs.iter().enumerate() {
        for (c, cell) in job.cells.iter().enumerate() {
            // Positions before the first differing token are identical in both runs:
            // patching only those changes nothing, and a patch never needs to start there.
            let start = cell
                .sites
                .iter()
                .map(|s| s.position.unwrap_or(0).max(job.first_diff))
                .min()
                .unwrap_or(0);
            let changes = cell
                .sites
                .iter()
                .any(|s| s.position.is_none_or(|p| p >= job.first_diff));
            if !changes || start >= job.n_tokens {
                values[j][c] = job.base.metric;
                unchanged += 1;
                continue;
            }
            groups
                .entry((job.n_tokens, start, cell.start_layer()))
                .or_default()
                .push((j, c));
        }
    }
    progress(unchanged);
    let mut bases = Stacked::new(jobs.iter().map(|j| j.base).collect());
    let mut sources = Stacked::new(jobs.iter().map(|j| j.source).collect());
    for forward in pack(groups, packing) {
        let out = run_forward(model, jobs, &mut bases, &mut sources, &forward)?;
        for (row, v) in forward.rows.iter().zip(out) {
            values[row.job][row.cell] = v;
        }
        progress(forward.rows.len());
    }
    Ok(values)
}

/// One row of a batched forward: cell `cell` of job `job`, entering at block `layer`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Row {
    job: usize,
    cell: usize,
    layer: usize,
}

/// One batched forward over rows of `n` tokens, positions `start..n`; its rows come by
/// ascending layer, the first ones starting the forward, the others joining at theirs.
#[derive(Debug, PartialEq)]
struct PackedForward {
    n: usize,
    start: usize,
    rows: Vec<Row>,
}

impl PackedForward {
    /// The layer the forward starts at.
    fn layer(&self) -> usize {
        self.rows[0].layer
    }
}

/// The forwards that run `groups` (keyed `(n, start, layer)`, in key order): consecutive
/// groups of one length and start position fill a forward up to `max_rows` rows (a group
/// larger than that is cut); a forward of fewer than `min_tokens` tokens also takes in the
/// next start positions' rows. Each forward starts at the earliest position among its rows.
fn pack(
    groups: BTreeMap<(usize, usize, usize), Vec<(usize, usize)>>,
    packing: Packing,
) -> Vec<PackedForward> {
    let max_rows = packing.max_rows.max(1);
    let mut out: Vec<PackedForward> = Vec::new();
    for ((n, start, layer), items) in groups {
        let mut items = items
            .iter()
            .map(|&(job, cell)| Row { job, cell, layer })
            .peekable();
        while items.peek().is_some() {
            let fits = out.last().is_some_and(|last| {
                last.n == n
                    && last.rows.len() < max_rows
                    && (last.start == start
                        || last.rows.len() * (n - last.start) < packing.min_tokens)
            });
            if !fits {
                out.push(PackedForward {
                    n,
                    start,
                    rows: Vec::new(),
                });
            }
            let last = out.last_mut().expect("a forward was just pushed");
            let room = max_rows - last.rows.len();
            last.rows.extend(items.by_ref().take(room));
        }
    }
    for forward in &mut out {
        forward.rows.sort_by_key(|r| r.layer);
    }
    out
}

/// Runs one packed forward; `bases` and `sources` stack the jobs' runs (row `j` is job `j`).
fn run_forward(
    model: &HookedTransformer,
    jobs: &[PairJob],
    bases: &mut Stacked,
    sources: &mut Stacked,
    forward: &PackedForward,
) -> Result<Vec<f32>> {
    let (n, start, layer) = (forward.n, forward.start, forward.layer());
    let len = n - start;
    let rows = row_index(forward.rows.iter().map(|r| r.job), model.device())?;
    // Rows entering at each layer, as (layer, first row, count), by ascending layer.
    let mut entries: Vec<(usize, usize, usize)> = Vec::new();
    for (i, row) in forward.rows.iter().enumerate() {
        match entries.last_mut() {
            Some(e) if e.0 == row.layer => e.2 += 1,
            _ => entries.push((row.layer, i, 1)),
        }
    }
    let mut residuals = Vec::with_capacity(entries.len());
    for &(l, first, count) in &entries {
        let idx = rows.narrow(0, first, count)?;
        residuals.push(bases.rows(Part::ResidPre(l), &idx)?.narrow(1, start, len)?);
    }
    let joins: Vec<Join> = entries[1..]
        .iter()
        .zip(&residuals[1..])
        .map(|(&(layer, _, _), resid_pre)| Join { layer, resid_pre })
        .collect();
    let past: Option<Vec<LayerKv>> = if start > 0 {
        Some(
            (0..model.cfg.n_layers)
                .map(|l| {
                    // The rows in the batch at block `l`: those entering at or below it.
                    let active: usize = entries.iter().filter(|e| e.0 <= l).map(|e| e.2).sum();
                    if active == 0 {
                        // Blocks below the start are never run; any tensor of the right length will do.
                        let kv = &jobs[forward.rows[0].job].base.kv[l];
                        Ok(LayerKv {
                            k: kv.k.narrow(2, 0, start)?,
                            v: kv.v.narrow(2, 0, start)?,
                        })
                    } else {
                        let idx = rows.narrow(0, 0, active)?;
                        Ok(LayerKv {
                            k: bases.rows(Part::Keys(l), &idx)?.narrow(2, 0, start)?,
                            v: bases.rows(Part::Values(l), &idx)?.narrow(2, 0, start)?,
                        })
                    }
                })
                .collect::<Result<_>>()?,
        )
    } else {
        None
    };
    let sites: Vec<&[Site]> = forward
        .rows
        .iter()
        .map(|r| jobs[r.job].cells[r.cell].sites.as_slice())
        .collect();
    let patches = masked_patches(sources, &rows, &sites, start, len)?;
    let mut patcher = Patcher::new(&[]).with_masked(&patches);
    let metrics: Vec<&Metric> = forward.rows.iter().map(|r| jobs[r.job].metric).collect();
    // Unembed only the answer tokens when the metrics allow it.
    let subset = answer_ids(&metrics);
    let out = model.forward(
        Input::Residual {
            layer,
            resid_pre: &residuals[0],
        },
        &mut patcher,
        Forward {
            unembed: Unembed::Last,
            past: past.as_deref(),
            joins: &joins,
            vocab_subset: subset.as_deref(),
            ..Forward::default()
        },
    )?;
    let logits = out.logits.expect("unembed requested");
    Ok(values_on_subset(&logits, &metrics, subset.as_deref())?.to_vec1()?)
}

/// One masked patch per hook point the rows' sites touch, over positions `start..start +
/// len` and the rows from the first to the last that touch it: row `r` takes the values of
/// source run `source_rows[r]` (an index into `sources`) where its sites `sites[r]` select (a
/// row without sites is left as it is). Every source must hold the hooks any row's sites name.
pub(crate) fn masked_patches(
    sources: &mut Stacked,
    source_rows: &Tensor,
    sites: &[&[Site]],
    start: usize,
    len: usize,
) -> Result<Vec<MaskedPatch>> {
    let mut by_hook: HashMap<HookPoint, Vec<(usize, &Site)>> = HashMap::new();
    for (r, row_sites) in sites.iter().enumerate() {
        for site in *row_sites {
            by_hook.entry(site.hook()).or_default().push((r, site));
        }
    }
    let mut patches = Vec::new();
    for (point, sites) in by_hook {
        // Only the rows from the first to the last that patch this hook (rows come by layer,
        // so in a forward over many layers a hook's rows are a small run of them).
        let first = sites.iter().map(|(r, _)| *r).min().unwrap_or(0);
        let rows = sites.iter().map(|(r, _)| *r).max().unwrap_or(0) + 1 - first;
        let value = sources
            .rows(Part::Hook(point), &source_rows.narrow(0, first, rows)?)?
            .narrow(1, start, len)?;
        let dims = value.dims().to_vec();
        // Mask shape: [rows, len, heads?, ...] with the trailing axis kept only for neurons.
        let has_heads = point.has_head_dim();
        let uses_features = sites.iter().any(|(_, s)| s.neuron.is_some());
        let mut mask_dims = vec![rows, len];
        if has_heads {
            mask_dims.push(dims[2]);
        }
        mask_dims.push(if uses_features {
            dims[dims.len() - 1]
        } else {
            1
        });
        let inner: usize = mask_dims[2..].iter().product();
        let heads = if has_heads { dims[2] } else { 1 };
        let feat = *mask_dims.last().unwrap_or(&1);
        let mut mask = vec![0u8; rows * len * inner];
        for (r, site) in &sites {
            let positions: Vec<usize> = match site.position {
                Some(p) if p < start => continue,
                Some(p) => vec![p - start],
                None => (0..len).collect(),
            };
            let hs: Vec<usize> = site
                .head
                .map(|h| vec![h])
                .unwrap_or_else(|| (0..heads).collect());
            let fs: Vec<usize> = site
                .neuron
                .map(|f| vec![f])
                .unwrap_or_else(|| (0..feat).collect());
            for &p in &positions {
                for &h in &hs {
                    for &f in &fs {
                        mask[(((r - first) * len + p) * heads + h) * feat + f] = 1;
                    }
                }
            }
        }
        let mask = Tensor::from_vec(mask, mask_dims, value.device())?.to_dtype(DType::U8)?;
        patches.push(MaskedPatch {
            point,
            mask,
            value,
            first_row: first,
        });
    }
    Ok(patches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(
        keys: &[((usize, usize, usize), usize)],
    ) -> BTreeMap<(usize, usize, usize), Vec<(usize, usize)>> {
        let mut next = 0;
        keys.iter()
            .map(|&(key, rows)| {
                let items = (next..next + rows).map(|r| (r, 0)).collect();
                next += rows;
                (key, items)
            })
            .collect()
    }

    /// Per forward: (length, start position, the layer of each row).
    fn shape(forwards: &[PackedForward]) -> Vec<(usize, usize, Vec<usize>)> {
        forwards
            .iter()
            .map(|f| (f.n, f.start, f.rows.iter().map(|r| r.layer).collect()))
            .collect()
    }

    fn packing(max_rows: usize, min_tokens: usize) -> Packing {
        Packing {
            max_rows,
            min_tokens,
        }
    }

    #[test]
    fn rows_of_one_start_share_forwards_across_layers_up_to_the_row_limit() {
        let g = groups(&[((6, 2, 0), 5), ((6, 2, 1), 3), ((6, 3, 0), 5)]);
        assert_eq!(
            shape(&pack(g, packing(4, 0))),
            vec![
                (6, 2, vec![0, 0, 0, 0]),
                (6, 2, vec![0, 1, 1, 1]),
                (6, 3, vec![0, 0, 0, 0]),
                (6, 3, vec![0]),
            ]
        );
    }

    #[test]
    fn a_forward_joins_rows_by_ascending_layer_whatever_the_key_order() {
        // start 2 at layers 0 and 5, then start 3 at layer 1 taken in (1 × 4 tokens < 20)
        let g = groups(&[((6, 2, 0), 1), ((6, 2, 5), 1), ((6, 3, 1), 1)]);
        let packed = pack(g, packing(64, 20));
        assert_eq!(shape(&packed), vec![(6, 2, vec![0, 1, 5])]);
        let jobs: Vec<usize> = packed[0].rows.iter().map(|r| r.job).collect();
        assert_eq!(jobs, vec![0, 2, 1], "each row keeps its cell");
    }

    #[test]
    fn small_forwards_of_one_length_take_in_the_next_start_positions() {
        // 2 rows × 4 tokens = 8 < 20: start 3's rows join; 4 rows × 4 = 16 < 20: start 4's
        // too; then 6 × 4 = 24, so start 5 has a forward of its own, and so has length 7.
        let g = groups(&[
            ((6, 2, 0), 2),
            ((6, 3, 0), 2),
            ((6, 4, 1), 2),
            ((6, 5, 0), 2),
            ((7, 2, 1), 2),
        ]);
        let packed = pack(g, packing(64, 20));
        assert_eq!(
            shape(&packed),
            vec![
                (6, 2, vec![0, 0, 0, 0, 1, 1]),
                (6, 5, vec![0, 0]),
                (7, 2, vec![1, 1])
            ]
        );
        let rows: Vec<usize> = packed
            .iter()
            .flat_map(|f| f.rows.iter().map(|r| r.job))
            .collect();
        assert_eq!(rows, (0..10).collect::<Vec<_>>(), "every row once");
        // Without a token floor no start position takes in another's rows.
        let g = groups(&[((6, 2, 0), 2), ((6, 3, 0), 2)]);
        assert_eq!(pack(g, packing(64, 0)).len(), 2);
    }

    #[test]
    fn packing_never_exceeds_the_row_limit() {
        let g = groups(&[((6, 1, 0), 3), ((6, 2, 0), 3), ((6, 3, 0), 3)]);
        let packed = pack(g, packing(4, 1000));
        assert!(packed.iter().all(|f| f.rows.len() <= 4), "{packed:?}");
        assert_eq!(packed.iter().map(|f| f.rows.len()).sum::<usize>(), 9);
    }
}
