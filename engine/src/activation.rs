//! Activation patching, fast path. A cell patched at layer `L` and position `p` cannot
//! change anything below `L` nor any position before `p` (causal attention), so its forward
//! starts at block `L` from the cached residual, runs only positions `p..`, and reads the
//! earlier positions' keys and values from the cache. Cells that start at the same
//! `(length, L, p)` — across pairs and components — share one batched forward, each row
//! carrying its own patch through one mask; only the last position is unembedded.
//!
//! A forward of few tokens is bound by reading the weights, not by arithmetic (on a GPU
//! below a few thousand tokens, on a CPU below some tens): such forwards of one length are
//! packed together, starting at the earliest position and the lowest start layer among
//! them, up to [`Packing::min_tokens`] tokens and [`Packing::max_rows`] rows. A row patched
//! at a later position or a higher layer then recomputes the unpatched positions before it
//! and the unpatched blocks below it, which gives the same values as reading them from the
//! cache. Packing across start layers is bounded: a row runs at most a quarter more blocks
//! than its own ([`EXTRA_BLOCKS_DIVISOR`]), and only rows starting at the forward's position
//! or later join it (an earlier one would make every row run more positions).

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Tensor};
use patchsweep_model::{
    Forward, HookPoint, HookedTransformer, Input, LayerKv, MaskedPatch, Patcher, Unembed,
};

use crate::error::Result;
use crate::grid::{Cell, Site};
use crate::metric::{values_per_row, Metric};
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
    /// Forwards of fewer tokens (rows × positions run) than this are packed with the next
    /// ones of the same length and start layer; 0 never packs.
    pub min_tokens: usize,
}

/// A row joins a forward that starts below its own start layer only if the blocks it runs
/// in extra are at most 1/`EXTRA_BLOCKS_DIVISOR` of the blocks it needs (`n_layers - L`).
pub const EXTRA_BLOCKS_DIVISOR: usize = 4;

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
                .entry((job.n_tokens, cell.start_layer(), start))
                .or_default()
                .push((j, c));
        }
    }
    progress(unchanged);
    let mut bases = Stacked::new(jobs.iter().map(|j| j.base).collect());
    let mut sources = Stacked::new(jobs.iter().map(|j| j.source).collect());
    for forward in pack(groups, packing, model.cfg.n_layers) {
        let out = run_chunk(model, jobs, &mut bases, &mut sources, &forward)?;
        for (&(j, c), v) in forward.items.iter().zip(out) {
            values[j][c] = v;
        }
        progress(forward.items.len());
    }
    Ok(values)
}

/// One batched forward: rows `(job, cell)` of `n` tokens run from block `layer`, positions
/// `start..n`.
#[derive(Debug, PartialEq)]
struct PackedForward {
    n: usize,
    layer: usize,
    start: usize,
    items: Vec<(usize, usize)>,
}

/// The forwards that run `groups` (keyed `(n, layer, start)`, in key order): each group cut
/// into chunks of at most `max_rows` rows, then consecutive chunks of one length `n` packed
/// while the forward so far has fewer than `min_tokens` tokens, the rows still fit, and the
/// chunk's start layer is close enough to the forward's (see [`EXTRA_BLOCKS_DIVISOR`]; the
/// model has `n_layers` blocks) and its position not earlier. A packed forward starts at its
/// first chunk's layer and position, the lowest and earliest among its rows.
fn pack(
    groups: BTreeMap<(usize, usize, usize), Vec<(usize, usize)>>,
    packing: Packing,
    n_layers: usize,
) -> Vec<PackedForward> {
    let max_rows = packing.max_rows.max(1);
    let mut out: Vec<PackedForward> = Vec::new();
    for ((n, layer, start), items) in groups {
        for chunk in items.chunks(max_rows) {
            if let Some(last) = out.last_mut() {
                // Key order: a forward of the same length never starts above this chunk (and
                // within one layer never at a later position).
                let near = last.n == n
                    && start >= last.start
                    && (layer - last.layer) * EXTRA_BLOCKS_DIVISOR
                        <= n_layers.saturating_sub(layer);
                if near
                    && last.items.len() * (n - last.start) < packing.min_tokens
                    && last.items.len() + chunk.len() <= max_rows
                {
                    last.items.extend_from_slice(chunk);
                    continue;
                }
            }
            out.push(PackedForward {
                n,
                layer,
                start,
                items: chunk.to_vec(),
            });
        }
    }
    out
}

/// Runs one packed forward; `bases` and `sources` stack the jobs' runs (row `j` is job `j`).
fn run_chunk(
    model: &HookedTransformer,
    jobs: &[PairJob],
    bases: &mut Stacked,
    sources: &mut Stacked,
    forward: &PackedForward,
) -> Result<Vec<f32>> {
    let PackedForward {
        n,
        layer,
        start,
        items: ref chunk,
    } = *forward;
    let len = n - start;
    let rows = row_index(chunk.iter().map(|&(j, _)| j), model.device())?;
    let residual = bases
        .rows(Part::ResidPre(layer), &rows)?
        .narrow(1, start, len)?;
    let past: Option<Vec<LayerKv>> = if start > 0 {
        Some(
            (0..model.cfg.n_layers)
                .map(|l| {
                    if l < layer {
                        // Blocks below the start are never run; any tensor of the right length will do.
                        let kv = &jobs[chunk[0].0].base.kv[l];
                        Ok(LayerKv {
                            k: kv.k.narrow(2, 0, start)?,
                            v: kv.v.narrow(2, 0, start)?,
                        })
                    } else {
                        Ok(LayerKv {
                            k: bases.rows(Part::Keys(l), &rows)?.narrow(2, 0, start)?,
                            v: bases.rows(Part::Values(l), &rows)?.narrow(2, 0, start)?,
                        })
                    }
                })
                .collect::<Result<_>>()?,
        )
    } else {
        None
    };
    let sites: Vec<&[Site]> = chunk
        .iter()
        .map(|&(j, c)| jobs[j].cells[c].sites.as_slice())
        .collect();
    let patches = masked_patches(sources, &rows, &sites, start, len)?;
    let mut patcher = Patcher::new(&[]).with_masked(&patches);
    let metrics: Vec<&Metric> = chunk.iter().map(|&(j, _)| jobs[j].metric).collect();
    // Unembed only the answer tokens when the metrics allow it.
    let subset: Option<Vec<u32>> = (!metrics.iter().any(|m| m.needs_full_vocab())).then(|| {
        let mut ids: Vec<u32> = metrics
            .iter()
            .flat_map(|m| m.positive.iter().chain(&m.negative).copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    });
    let out = model.forward(
        Input::Residual {
            layer,
            resid_pre: &residual,
        },
        &mut patcher,
        Forward {
            unembed: Unembed::Last,
            past: past.as_deref(),
            vocab_subset: subset.as_deref(),
            ..Forward::default()
        },
    )?;
    let logits = out.logits.expect("unembed requested");
    let values = match &subset {
        Some(ids) => {
            let local: Vec<Metric> = metrics.iter().map(|m| m.on_subset(ids)).collect();
            values_per_row(&logits, &local.iter().collect::<Vec<_>>())?
        }
        None => values_per_row(&logits, &metrics)?,
    };
    Ok(values.to_vec1()?)
}

/// One masked patch per hook point the rows' sites touch, over positions `start..start +
/// len`: row `r` takes the values of source run `source_rows[r]` (an index into `sources`)
/// where its sites `sites[r]` select (a row without sites is left as it is). Every source
/// must hold the hooks any row's sites name.
pub(crate) fn masked_patches(
    sources: &mut Stacked,
    source_rows: &Tensor,
    sites: &[&[Site]],
    start: usize,
    len: usize,
) -> Result<Vec<MaskedPatch>> {
    let rows = sites.len();
    let mut by_hook: HashMap<HookPoint, Vec<(usize, &Site)>> = HashMap::new();
    for (r, row_sites) in sites.iter().enumerate() {
        for site in *row_sites {
            by_hook.entry(site.hook()).or_default().push((r, site));
        }
    }
    let mut patches = Vec::new();
    for (point, sites) in by_hook {
        let value = sources
            .rows(Part::Hook(point), source_rows)?
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
                        mask[((r * len + p) * heads + h) * feat + f] = 1;
                    }
                }
            }
        }
        let mask = Tensor::from_vec(mask, mask_dims, value.device())?.to_dtype(DType::U8)?;
        patches.push(MaskedPatch { point, mask, value });
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

    fn shape(forwards: &[PackedForward]) -> Vec<(usize, usize, usize, usize)> {
        forwards
            .iter()
            .map(|f| (f.n, f.layer, f.start, f.items.len()))
            .collect()
    }

    #[test]
    fn without_a_token_floor_every_group_is_cut_by_rows_alone() {
        let g = groups(&[((6, 0, 2), 5), ((6, 0, 3), 5), ((6, 1, 2), 3)]);
        let packed = pack(
            g,
            Packing {
                max_rows: 4,
                min_tokens: 0,
            },
            30,
        );
        assert_eq!(
            shape(&packed),
            vec![
                (6, 0, 2, 4),
                (6, 0, 2, 1),
                (6, 0, 3, 4),
                (6, 0, 3, 1),
                (6, 1, 2, 3)
            ]
        );
    }

    #[test]
    fn small_forwards_of_one_layer_and_length_pack_from_the_earliest_start() {
        // Two blocks: a row of layer 1 never joins one of layer 0 (1 extra block > 1/4 of 1).
        // 2 rows × 4 tokens = 8 < 20: the next start's rows join; 4 rows × 4 = 16 < 20: the
        // third joins too; then 6 × 4 = 24, so the fourth starts a forward of its own.
        let g = groups(&[
            ((6, 0, 2), 2),
            ((6, 0, 3), 2),
            ((6, 0, 4), 2),
            ((6, 0, 5), 2),
            ((6, 1, 2), 2),
            ((7, 1, 2), 2),
        ]);
        let packed = pack(
            g,
            Packing {
                max_rows: 64,
                min_tokens: 20,
            },
            2,
        );
        assert_eq!(
            shape(&packed),
            vec![(6, 0, 2, 6), (6, 0, 5, 2), (6, 1, 2, 2), (7, 1, 2, 2)]
        );
        // every row is run exactly once, in order
        let rows: Vec<usize> = packed
            .iter()
            .flat_map(|f| f.items.iter().map(|i| i.0))
            .collect();
        assert_eq!(rows, (0..12).collect::<Vec<_>>());
    }

    #[test]
    fn small_forwards_pack_across_start_layers_within_a_quarter_more_blocks() {
        // 10 blocks. Layer 0's forward (2 rows × 3 tokens, from position 3) takes layer 1's
        // chunk (1 extra block ≤ 9/4) but not layer 2's, which starts at an earlier position:
        // that one starts a forward, which layer 3's joins (1 ≤ 7/4) but not layer 4's
        // (2 > 6/4). Layer 9 runs alone (5 extra blocks for 1 of its own), and so does the
        // other length.
        let g = groups(&[
            ((6, 0, 3), 2),
            ((6, 1, 3), 2),
            ((6, 2, 1), 2),
            ((6, 3, 2), 2),
            ((6, 4, 2), 2),
            ((6, 9, 2), 2),
            ((7, 9, 2), 2),
        ]);
        let packed = pack(
            g,
            Packing {
                max_rows: 64,
                min_tokens: 64,
            },
            10,
        );
        assert_eq!(
            shape(&packed),
            vec![
                (6, 0, 3, 4),
                (6, 2, 1, 4),
                (6, 4, 2, 2),
                (6, 9, 2, 2),
                (7, 9, 2, 2)
            ]
        );
        let rows: Vec<usize> = packed
            .iter()
            .flat_map(|f| f.items.iter().map(|i| i.0))
            .collect();
        assert_eq!(
            rows,
            (0..14).collect::<Vec<_>>(),
            "every row once, in order"
        );
        // A full forward takes nobody, whatever the layer.
        let g = groups(&[((6, 0, 0), 20), ((6, 0, 1), 1), ((6, 1, 1), 1)]);
        let full = Packing {
            max_rows: 64,
            min_tokens: 100,
        };
        assert_eq!(shape(&pack(g, full, 30)), vec![(6, 0, 0, 20), (6, 0, 1, 2)]);
    }

    #[test]
    fn packing_never_exceeds_the_row_limit() {
        let g = groups(&[((6, 0, 1), 3), ((6, 0, 2), 3), ((6, 0, 3), 3)]);
        let packed = pack(
            g,
            Packing {
                max_rows: 4,
                min_tokens: 1000,
            },
            30,
        );
        assert!(packed.iter().all(|f| f.items.len() <= 4), "{packed:?}");
        assert_eq!(packed.iter().map(|f| f.items.len()).sum::<usize>(), 9);
    }
}
