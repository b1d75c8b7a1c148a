//! What to patch: components, the sites they name inside the model, and the grid of cells
//! (one measurement each) an experiment expands to for one prompt pair.

use std::fmt;
use std::str::FromStr;

use patchsweep_model::{HookPoint, ModelConfig, PatchTarget};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// A kind of model component, named as in the results tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    ResidPre,
    ResidMid,
    ResidPost,
    AttnOut,
    MlpOut,
    /// One head's output (its `z`, i.e. its contribution through `o_proj`).
    HeadOut,
    HeadQ,
    /// Key of one key/value head (grouped-query models have fewer of them).
    HeadK,
    HeadV,
    /// One neuron of the MLP hidden layer (`mlp.hook_post`).
    MlpNeuron,
}

pub const ALL_COMPONENTS: &[Component] = &[
    Component::ResidPre,
    Component::ResidMid,
    Component::ResidPost,
    Component::AttnOut,
    Component::MlpOut,
    Component::HeadOut,
    Component::HeadQ,
    Component::HeadK,
    Component::HeadV,
    Component::MlpNeuron,
];

impl Component {
    pub fn name(&self) -> &'static str {
        match self {
            Component::ResidPre => "resid_pre",
            Component::ResidMid => "resid_mid",
            Component::ResidPost => "resid_post",
            Component::AttnOut => "attn_out",
            Component::MlpOut => "mlp_out",
            Component::HeadOut => "head_out",
            Component::HeadQ => "head_q",
            Component::HeadK => "head_k",
            Component::HeadV => "head_v",
            Component::MlpNeuron => "mlp_neuron",
        }
    }

    pub fn hook(&self, layer: usize) -> HookPoint {
        match self {
            Component::ResidPre => HookPoint::ResidPre(layer),
            Component::ResidMid => HookPoint::ResidMid(layer),
            Component::ResidPost => HookPoint::ResidPost(layer),
            Component::AttnOut => HookPoint::AttnOut(layer),
            Component::MlpOut => HookPoint::MlpOut(layer),
            Component::HeadOut => HookPoint::Z(layer),
            Component::HeadQ => HookPoint::Q(layer),
            Component::HeadK => HookPoint::K(layer),
            Component::HeadV => HookPoint::V(layer),
            Component::MlpNeuron => HookPoint::MlpPost(layer),
        }
    }

    /// How many heads the component indexes (0 for components without heads).
    pub fn heads(&self, cfg: &ModelConfig) -> usize {
        match self {
            Component::HeadOut | Component::HeadQ => cfg.n_heads,
            Component::HeadK | Component::HeadV => cfg.n_kv_heads,
            _ => 0,
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Component {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        ALL_COMPONENTS
            .iter()
            .copied()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ALL_COMPONENTS.iter().map(|c| c.name()).collect();
                EngineError::Grid(format!(
                    "unknown component {s:?}; known: {}",
                    names.join(", ")
                ))
            })
    }
}

/// One selection inside one hook: a layer's component, optionally one head, one position
/// (`None` = every position at once) and one neuron.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Site {
    pub component: Component,
    pub layer: usize,
    pub head: Option<usize>,
    pub position: Option<usize>,
    pub neuron: Option<usize>,
}

impl Site {
    pub fn hook(&self) -> HookPoint {
        self.component.hook(self.layer)
    }

    pub fn target(&self) -> PatchTarget {
        PatchTarget {
            rows: None,
            positions: self.position.map(|p| vec![p]),
            heads: self.head.map(|h| vec![h]),
            features: self.neuron.map(|n| vec![n]),
        }
    }
}

/// How a measurement is reported: the component (or `pathway:NAME`) and its coordinates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EffectKey {
    pub component: String,
    pub layer: Option<usize>,
    pub head: Option<usize>,
    pub position: Option<usize>,
    pub neuron: Option<usize>,
}

/// One measurement: the sites patched together, and how the result is keyed.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub key: EffectKey,
    pub sites: Vec<Site>,
}

impl Cell {
    fn single(site: Site) -> Self {
        Self {
            key: EffectKey {
                component: site.component.name().to_string(),
                layer: Some(site.layer),
                head: site.head,
                position: site.position,
                neuron: site.neuron,
            },
            sites: vec![site],
        }
    }

    /// The earliest layer any site touches: the forward pass can start there.
    pub fn start_layer(&self) -> usize {
        self.sites.iter().map(|s| s.layer).min().unwrap_or(0)
    }

    /// The earliest position any site touches (0 when a site spans every position).
    pub fn start_position(&self) -> usize {
        self.sites
            .iter()
            .map(|s| s.position.unwrap_or(0))
            .min()
            .unwrap_or(0)
    }
}

/// A position given by index (negative counts from the end) or by label (`subject`, `end`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PositionRef {
    Index(i64),
    Label(String),
}

struct PositionRefVisitor;

impl serde::de::Visitor<'_> for PositionRefVisitor {
    type Value = PositionRef;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "a position: an index (0, 1, … or negative from the end: -1 is the last token) or a \
             label such as \"subject\""
        )
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<PositionRef, E> {
        Ok(PositionRef::Index(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<PositionRef, E> {
        i64::try_from(v)
            .map(PositionRef::Index)
            .map_err(|_| E::custom(format!("position {v} is too large")))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<PositionRef, E> {
        Ok(PositionRef::Label(v.to_string()))
    }
}

impl<'de> Deserialize<'de> for PositionRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(PositionRefVisitor)
    }
}

/// Which positions a grid measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Positions {
    /// Each position separately.
    All,
    /// All positions patched at once (one cell, position NULL in the results).
    Joint,
    /// The listed positions, each separately.
    List(Vec<PositionRef>),
}

/// A named set of sites patched together: a hypothesised bias pathway.
#[derive(Debug, Clone, PartialEq)]
pub struct Pathway {
    pub name: String,
    pub sites: Vec<PathwaySite>,
}

/// Which heads a pathway site names: none (a component without heads), every head, or
/// the listed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteHeads {
    None,
    All,
    List(Vec<usize>),
}

/// A pathway's site: one component over some layers (and heads), all patched together.
#[derive(Debug, Clone, PartialEq)]
pub struct PathwaySite {
    pub component: Component,
    /// `None`: every layer.
    pub layers: Option<Vec<usize>>,
    pub heads: SiteHeads,
    /// `None`: every position.
    pub position: Option<PositionRef>,
    pub neuron: Option<usize>,
}

impl PathwaySite {
    /// One layer, one head (or none).
    pub fn one(component: Component, layer: usize, head: Option<usize>) -> Self {
        Self {
            component,
            layers: Some(vec![layer]),
            heads: head.map_or(SiteHeads::None, |h| SiteHeads::List(vec![h])),
            position: None,
            neuron: None,
        }
    }

    /// The `(layer, head)` coordinates this site expands to in a model.
    pub fn coordinates(&self, cfg: &ModelConfig) -> Vec<(usize, Option<usize>)> {
        let layers = self
            .layers
            .clone()
            .unwrap_or_else(|| (0..cfg.n_layers).collect());
        let heads: Vec<Option<usize>> = match &self.heads {
            SiteHeads::None => vec![None],
            SiteHeads::All => (0..self.component.heads(cfg)).map(Some).collect(),
            SiteHeads::List(v) => v.iter().copied().map(Some).collect(),
        };
        layers
            .iter()
            .flat_map(|&l| heads.iter().map(move |&h| (l, h)))
            .collect()
    }
}

/// The grid of an experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub components: Vec<Component>,
    /// `None`: every layer.
    pub layers: Option<Vec<usize>>,
    pub positions: Positions,
    /// Restrict per-head components to these heads (`None`: all).
    pub heads: Option<Vec<usize>>,
    /// Neurons for `mlp_neuron` (`None`: all of `d_mlp`).
    pub neurons: Option<Vec<usize>>,
    pub pathways: Vec<Pathway>,
    /// Pathways chosen from another experiment's ranking; they become [`Pathway`]s once the
    /// ranking is read ([`crate::selection`]), in tasks of their own.
    pub selections: Vec<crate::selection::PathwaySelection>,
}

/// Resolves a position reference in a prompt of `n` tokens with the given labels.
pub fn resolve_position(r: &PositionRef, n: usize, labels: &[String]) -> Result<Vec<usize>> {
    match r {
        PositionRef::Index(i) => {
            let p = if *i < 0 { n as i64 + i } else { *i };
            if p < 0 || p >= n as i64 {
                return Err(EngineError::Grid(format!(
                    "position {i} is outside a prompt of {n} tokens"
                )));
            }
            Ok(vec![p as usize])
        }
        PositionRef::Label(l) => {
            let ps: Vec<usize> = labels
                .iter()
                .enumerate()
                .filter(|(_, x)| *x == l)
                .map(|(i, _)| i)
                .collect();
            if ps.is_empty() {
                return Err(EngineError::Grid(format!(
                    "no position labelled {l:?} (labels: {})",
                    labels.join(", ")
                )));
            }
            Ok(ps)
        }
    }
}

impl Grid {
    /// Checks layers, heads and neurons against the model before any compute.
    pub fn validate(&self, cfg: &ModelConfig) -> Result<()> {
        let layer_ok = |l: usize| -> Result<()> {
            if l >= cfg.n_layers {
                return Err(EngineError::Grid(format!(
                    "layer {l} does not exist: the model has {} layers, numbered 0..={}",
                    cfg.n_layers,
                    cfg.n_layers.saturating_sub(1)
                )));
            }
            Ok(())
        };
        for &l in self.layers.iter().flatten() {
            layer_ok(l)?;
        }
        for c in &self.components {
            if let Some(heads) = &self.heads {
                if let Some(&h) = heads
                    .iter()
                    .find(|&&h| c.heads(cfg) > 0 && h >= c.heads(cfg))
                {
                    return Err(EngineError::Grid(format!(
                        "{c}: head {h} does not exist (it has {})",
                        c.heads(cfg)
                    )));
                }
            }
        }
        if let Some(&n) = self.neurons.iter().flatten().find(|&&n| n >= cfg.d_mlp) {
            return Err(EngineError::Grid(format!(
                "neuron {n} does not exist (d_mlp is {})",
                cfg.d_mlp
            )));
        }
        if self.components.contains(&Component::MlpNeuron)
            && matches!(self.positions, Positions::All)
        {
            return Err(EngineError::Grid(
                "mlp_neuron needs chosen positions (a list) or \"joint\", not every position"
                    .into(),
            ));
        }
        for p in &self.pathways {
            for s in &p.sites {
                for &l in s.layers.iter().flatten() {
                    layer_ok(l)?;
                }
                let heads = s.component.heads(cfg);
                match &s.heads {
                    SiteHeads::List(_) | SiteHeads::All if heads == 0 => {
                        return Err(EngineError::Grid(format!(
                            "pathway {}: {} has no heads",
                            p.name, s.component
                        )))
                    }
                    SiteHeads::List(v) => {
                        if let Some(h) = v.iter().find(|&&h| h >= heads) {
                            return Err(EngineError::Grid(format!(
                                "pathway {}: {} head {h} does not exist (it has {heads})",
                                p.name, s.component
                            )));
                        }
                    }
                    SiteHeads::None if heads > 0 => {
                        return Err(EngineError::Grid(format!(
                            "pathway {}: {} needs a head (`head = N`, `heads = [..]` or \
                             `heads = \"all\"`)",
                            p.name, s.component
                        )))
                    }
                    _ => {}
                }
                if let Some(n) = s.neuron.filter(|&n| n >= cfg.d_mlp) {
                    return Err(EngineError::Grid(format!(
                        "pathway {}: neuron {n} does not exist (d_mlp is {})",
                        p.name, cfg.d_mlp
                    )));
                }
            }
        }
        Ok(())
    }

    /// The cells of this grid for one prompt of `n` tokens with these position labels.
    pub fn cells(&self, cfg: &ModelConfig, n: usize, labels: &[String]) -> Result<Vec<Cell>> {
        let layers: Vec<usize> = self
            .layers
            .clone()
            .unwrap_or_else(|| (0..cfg.n_layers).collect());
        let positions: Vec<Option<usize>> = match &self.positions {
            Positions::All => (0..n).map(Some).collect(),
            Positions::Joint => vec![None],
            Positions::List(refs) => {
                let mut ps = Vec::new();
                for r in refs {
                    for p in resolve_position(r, n, labels)? {
                        if !ps.contains(&Some(p)) {
                            ps.push(Some(p));
                        }
                    }
                }
                ps
            }
        };
        let mut cells = Vec::new();
        for &component in &self.components {
            let heads: Vec<Option<usize>> = match component.heads(cfg) {
                0 => vec![None],
                h => self
                    .heads
                    .clone()
                    .unwrap_or_else(|| (0..h).collect())
                    .into_iter()
                    .map(Some)
                    .collect(),
            };
            let neurons: Vec<Option<usize>> = match component {
                Component::MlpNeuron => self
                    .neurons
                    .clone()
                    .unwrap_or_else(|| (0..cfg.d_mlp).collect())
                    .into_iter()
                    .map(Some)
                    .collect(),
                _ => vec![None],
            };
            for &layer in &layers {
                for &head in &heads {
                    for &position in &positions {
                        for &neuron in &neurons {
                            cells.push(Cell::single(Site {
                                component,
                                layer,
                                head,
                                position,
                                neuron,
                            }));
                        }
                    }
                }
            }
        }
        for p in &self.pathways {
            let mut sites = Vec::new();
            for s in &p.sites {
                let ps: Vec<Option<usize>> = match &s.position {
                    None => vec![None],
                    Some(r) => resolve_position(r, n, labels)?
                        .into_iter()
                        .map(Some)
                        .collect(),
                };
                for (layer, head) in s.coordinates(cfg) {
                    for &position in &ps {
                        sites.push(Site {
                            component: s.component,
                            layer,
                            head,
                            position,
                            neuron: s.neuron,
                        });
                    }
                }
            }
            cells.push(Cell {
                key: EffectKey {
                    component: format!("pathway:{}", p.name),
                    layer: None,
                    head: None,
                    position: None,
                    neuron: None,
                },
                sites,
            });
        }
        Ok(cells)
    }
}
