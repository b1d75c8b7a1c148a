//! Weight deltas of targeted fine-tuning: which tensors (or column blocks of them) a set of
//! components owns, how deltas combine with the base weights, and their safetensors file.
//!
//! Ownership: `mlp_out L` owns the layer's `gate_proj`, `up_proj` and `down_proj`;
//! `attn_out L` owns the whole `o_proj`; `head LhH` owns `o_proj`'s columns
//! `h*d_head .. (h+1)*d_head` (the head's path into the residual stream). Every other tensor,
//! and every other column, of a tuned model is the base tensor itself, bit for bit.
//!
//! File: one safetensors tensor per key, holding the delta (tuned = base + delta), named
//! after the Hugging Face tensor: `model.layers.3.mlp.down_proj.weight`, or
//! `model.layers.3.self_attn.o_proj.weight.cols.16.8` for columns 16..24.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use patchsweep_model::{HookedTransformer, ModelConfig, Weights};

use super::error::{DebiasError, Result};
use super::target::{Target, TargetKind};

/// A tuned tensor, or a block of its columns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TunedParam {
    GateProj,
    UpProj,
    DownProj,
    OProj,
    /// Columns `start..start + len` of `o_proj`.
    OProjCols {
        start: usize,
        len: usize,
    },
}

/// A tuned parameter of one layer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TunedKey {
    pub layer: usize,
    pub param: TunedParam,
}

impl TunedKey {
    /// The tensor name in the deltas file.
    pub fn name(&self) -> String {
        let l = self.layer;
        match self.param {
            TunedParam::GateProj => format!("model.layers.{l}.mlp.gate_proj.weight"),
            TunedParam::UpProj => format!("model.layers.{l}.mlp.up_proj.weight"),
            TunedParam::DownProj => format!("model.layers.{l}.mlp.down_proj.weight"),
            TunedParam::OProj => format!("model.layers.{l}.self_attn.o_proj.weight"),
            TunedParam::OProjCols { start, len } => {
                format!("model.layers.{l}.self_attn.o_proj.weight.cols.{start}.{len}")
            }
        }
    }

    /// Parses a name written by [`TunedKey::name`].
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("model.layers.")?;
        let (layer, rest) = rest.split_once('.')?;
        let layer = layer.parse().ok()?;
        let param = match rest {
            "mlp.gate_proj.weight" => TunedParam::GateProj,
            "mlp.up_proj.weight" => TunedParam::UpProj,
            "mlp.down_proj.weight" => TunedParam::DownProj,
            "self_attn.o_proj.weight" => TunedParam::OProj,
            _ => {
                let cols = rest.strip_prefix("self_attn.o_proj.weight.cols.")?;
                let (s, l) = cols.split_once('.')?;
                TunedParam::OProjCols {
                    start: s.parse().ok()?,
                    len: l.parse().ok()?,
                }
            }
        };
        Some(Self { layer, param })
    }

    /// The delta's shape.
    pub fn shape(&self, cfg: &ModelConfig) -> Vec<usize> {
        let (d, m, q) = (cfg.d_model, cfg.d_mlp, cfg.n_heads * cfg.d_head);
        match self.param {
            TunedParam::GateProj | TunedParam::UpProj => vec![m, d],
            TunedParam::DownProj => vec![d, m],
            TunedParam::OProj => vec![d, q],
            TunedParam::OProjCols { len, .. } => vec![d, len],
        }
    }
}

/// The parameters `targets` own (positions play no part), each once; a whole `o_proj`
/// absorbs the head column blocks of the same layer.
pub fn tuned_keys(targets: &[Target], cfg: &ModelConfig) -> Result<Vec<TunedKey>> {
    let mut keys = BTreeSet::new();
    for t in targets {
        t.validate(cfg)?;
        let l = t.layer;
        match (t.kind, t.head) {
            (TargetKind::MlpOut, _) => {
                for p in [
                    TunedParam::GateProj,
                    TunedParam::UpProj,
                    TunedParam::DownProj,
                ] {
                    keys.insert(TunedKey { layer: l, param: p });
                }
            }
            (TargetKind::AttnOut, _) => {
                keys.insert(TunedKey {
                    layer: l,
                    param: TunedParam::OProj,
                });
            }
            (TargetKind::Head, Some(h)) => {
                keys.insert(TunedKey {
                    layer: l,
                    param: TunedParam::OProjCols {
                        start: h * cfg.d_head,
                        len: cfg.d_head,
                    },
                });
            }
            (TargetKind::Head, None) => {
                return Err(DebiasError::Finetune(format!("{t} has no head")))
            }
        }
    }
    let whole: BTreeSet<usize> = keys
        .iter()
        .filter(|k| k.param == TunedParam::OProj)
        .map(|k| k.layer)
        .collect();
    Ok(keys
        .into_iter()
        .filter(|k| !(matches!(k.param, TunedParam::OProjCols { .. }) && whole.contains(&k.layer)))
        .collect())
}

/// `base` with `blocks` (start, delta) added to column blocks (dimension 1); the other
/// columns are slices of `base`, unchanged.
fn add_columns(base: &Tensor, blocks: &[(usize, &Tensor)]) -> Result<Tensor> {
    let width = base.dim(1)?;
    let mut pieces = Vec::new();
    let mut at = 0;
    let mut sorted: Vec<_> = blocks.to_vec();
    sorted.sort_by_key(|b| b.0);
    for (start, delta) in sorted {
        let len = delta.dim(1)?;
        if start < at || start + len > width {
            return Err(DebiasError::Finetune(format!(
                "column block {start}..{} overlaps another or exceeds {width} columns",
                start + len
            )));
        }
        if start > at {
            pieces.push(base.narrow(1, at, start - at)?);
        }
        pieces.push((base.narrow(1, start, len)? + delta)?);
        at = start + len;
    }
    if at < width {
        pieces.push(base.narrow(1, at, width - at)?);
    }
    Ok(Tensor::cat(&pieces, 1)?)
}

/// The base weights with `deltas` added (differentiable in the deltas).
pub fn compose_weights(
    base: &Weights,
    cfg: &ModelConfig,
    deltas: &BTreeMap<TunedKey, Tensor>,
) -> Result<Weights> {
    let mut w = base.clone();
    let mut cols: BTreeMap<usize, Vec<(usize, &Tensor)>> = BTreeMap::new();
    for (k, d) in deltas {
        let layer = w.layers.get_mut(k.layer).ok_or_else(|| {
            DebiasError::Finetune(format!(
                "{}: layer {} does not exist (the model has {})",
                k.name(),
                k.layer,
                cfg.n_layers
            ))
        })?;
        let want = k.shape(cfg);
        if d.dims() != want.as_slice() {
            return Err(DebiasError::Finetune(format!(
                "{}: delta of shape {:?}, expected {want:?}",
                k.name(),
                d.dims()
            )));
        }
        let d = d.to_dtype(layer.o_proj.dtype())?;
        match k.param {
            TunedParam::GateProj => layer.gate_proj = (&layer.gate_proj + &d)?,
            TunedParam::UpProj => layer.up_proj = (&layer.up_proj + &d)?,
            TunedParam::DownProj => layer.down_proj = (&layer.down_proj + &d)?,
            TunedParam::OProj => layer.o_proj = (&layer.o_proj + &d)?,
            TunedParam::OProjCols { start, .. } => cols
                .entry(k.layer)
                .or_default()
                .push((start, deltas_get(deltas, k)?)),
        }
    }
    for (l, blocks) in cols {
        let blocks: Vec<(usize, Tensor)> = blocks
            .into_iter()
            .map(|(s, d)| Ok((s, d.to_dtype(w.layers[l].o_proj.dtype())?)))
            .collect::<Result<_>>()?;
        let refs: Vec<(usize, &Tensor)> = blocks.iter().map(|(s, d)| (*s, d)).collect();
        w.layers[l].o_proj = add_columns(&w.layers[l].o_proj, &refs)?;
    }
    Ok(w)
}

fn deltas_get<'a>(deltas: &'a BTreeMap<TunedKey, Tensor>, k: &TunedKey) -> Result<&'a Tensor> {
    deltas
        .get(k)
        .ok_or_else(|| DebiasError::Finetune(format!("no delta for {}", k.name())))
}

/// A copy of `model` with `deltas` applied; the original is untouched.
pub fn apply_deltas(
    model: &HookedTransformer,
    deltas: &BTreeMap<TunedKey, Tensor>,
) -> Result<HookedTransformer> {
    let w = compose_weights(&model.weights, &model.cfg, deltas)?;
    Ok(HookedTransformer::new(
        model.cfg.clone(),
        w,
        model.device().clone(),
        model.dtype(),
    ))
}

/// Writes the deltas as safetensors (creating the folder).
pub fn save_deltas(deltas: &BTreeMap<TunedKey, Tensor>, path: &Path) -> Result<()> {
    let err = |reason: String| DebiasError::Deltas {
        path: path.to_path_buf(),
        reason,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create folder: {e}")))?;
    }
    let map: HashMap<String, Tensor> = deltas.iter().map(|(k, t)| (k.name(), t.clone())).collect();
    candle_core::safetensors::save(&map, path).map_err(|e| err(e.to_string()))
}

/// Reads deltas written by [`save_deltas`].
pub fn load_deltas(path: &Path, device: &Device) -> Result<BTreeMap<TunedKey, Tensor>> {
    let err = |reason: String| DebiasError::Deltas {
        path: path.to_path_buf(),
        reason,
    };
    if !path.exists() {
        return Err(err("no such file".into()));
    }
    let map = candle_core::safetensors::load(path, device)
        .map_err(|e| err(patchsweep_model::error::candle_message(&e)))?;
    map.into_iter()
        .map(|(name, t)| {
            let k = TunedKey::parse(&name)
                .ok_or_else(|| err(format!("tensor {name:?} is not a known delta name")))?;
            Ok((k, t))
        })
        .collect()
}
