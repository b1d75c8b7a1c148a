//! How much memory a piece of work needs, estimated before any of it runs, so a worker can
//! refuse a task that would not fit instead of aborting on a failed allocation.
//!
//! The estimate follows what [`Engine`] holds at its peak for one chunk of pairs of one
//! token length (chunks run one after another, so the largest chunk decides):
//! - the cached runs: the residual entering every block, every block's keys and values, and
//!   the hook values patches read, for the clean and the corrupted prompt of each pair, in
//!   the model's dtype ([`crate::runs`]);
//! - one batched forward's working set: per row, the block's activations (residual, queries,
//!   keys, values, MLP hidden) and the attention scores and pattern (heads × positions², in
//!   f32), and the last position's logits;
//! - for attribution, the whole graph a backward pass keeps (every block's activations and
//!   scores) and its gradients.
//!
//! It is an estimate: allocator slack and the weights themselves are not in it.

use std::collections::BTreeMap;
use std::fmt;

use patchsweep_model::ModelConfig;

use crate::experiment::{Engine, Experiment, Method, PairInput};
use crate::grid::Component;

/// Bytes a task needs at its peak, with the parts that make it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryEstimate {
    pub bytes: u64,
    /// What the peak is made of, e.g. `("attention scores", 6.4e9)`.
    pub parts: Vec<(&'static str, u64)>,
    /// The chunk that needs the most: its rows and token count.
    pub rows: usize,
    pub tokens: usize,
}

impl MemoryEstimate {
    fn new(parts: Vec<(&'static str, u64)>, rows: usize, tokens: usize) -> Self {
        Self {
            bytes: parts.iter().map(|(_, b)| *b).fold(0, u64::saturating_add),
            parts,
            rows,
            tokens,
        }
    }

    fn none() -> Self {
        Self::new(Vec::new(), 0, 0)
    }

    fn max(self, other: Self) -> Self {
        if other.bytes > self.bytes {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for MemoryEstimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "about {} for {} rows of {} tokens (",
            gib(self.bytes),
            self.rows,
            self.tokens
        )?;
        for (i, (name, bytes)) in self.parts.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{name} {}", gib(*bytes))?;
        }
        write!(f, ")")
    }
}

/// `bytes` in GiB with two decimals (`0.01 GiB` at least, so small amounts do not read 0).
pub fn gib(bytes: u64) -> String {
    let g = bytes as f64 / (1u64 << 30) as f64;
    if bytes > 0 && g < 0.01 {
        "<0.01 GiB".into()
    } else {
        format!("{g:.2} GiB")
    }
}

/// Products in u64 that saturate instead of overflowing (a 10^9-token prompt must give a
/// huge number, not a wrapped small one).
fn product(factors: &[usize]) -> u64 {
    factors
        .iter()
        .fold(1u64, |acc, &f| acc.saturating_mul(f as u64))
}

/// Sizes one model's work: its config and the bytes of one element of its dtype.
struct Sizer<'a> {
    cfg: &'a ModelConfig,
    dtype_bytes: usize,
}

const F32: usize = 4;

impl Sizer<'_> {
    /// Values per position of one hook of `component`.
    fn width(&self, component: Component) -> usize {
        let c = self.cfg;
        match component {
            Component::MlpNeuron => c.d_mlp,
            Component::HeadOut | Component::HeadQ => c.n_heads * c.d_head,
            Component::HeadK | Component::HeadV => c.n_kv_heads * c.d_head,
            _ => c.d_model,
        }
    }

    /// One cached run of `tokens` positions: residual entering every block, keys and values of
    /// every block, and hook values `hook_width` wide per position (all hooks together).
    fn cached_run(&self, tokens: usize, hook_width: usize) -> u64 {
        let c = self.cfg;
        let resid = product(&[c.n_layers, tokens, c.d_model, self.dtype_bytes]);
        let kv = product(&[
            2,
            c.n_layers,
            tokens,
            c.n_kv_heads,
            c.d_head,
            self.dtype_bytes,
        ]);
        let hook_values = product(&[tokens, hook_width, self.dtype_bytes]);
        resid.saturating_add(kv).saturating_add(hook_values)
    }

    /// The activations one block holds while it runs, for `rows` rows of `tokens` positions:
    /// residual and normed input, queries, keys, values, head outputs, the MLP's gate, up and
    /// hidden values.
    fn block_activations(&self, rows: usize, tokens: usize) -> u64 {
        let c = self.cfg;
        let width = 3 * c.d_model + 2 * c.n_heads * c.d_head + 2 * c.n_kv_heads * c.d_head;
        product(&[rows, tokens, width + 3 * c.d_mlp, self.dtype_bytes])
    }

    /// Attention scores and pattern of one block: heads × queries × keys, in f32.
    fn attention_scores(&self, rows: usize, tokens: usize) -> u64 {
        product(&[2, rows, self.cfg.n_heads, tokens, tokens, F32])
    }

    /// One batched forward (no gradients): one block's working set plus the last logits.
    fn forward(&self, rows: usize, tokens: usize) -> Vec<(&'static str, u64)> {
        vec![
            ("activations", self.block_activations(rows, tokens)),
            ("attention scores", self.attention_scores(rows, tokens)),
            ("logits", product(&[rows, self.cfg.vocab_size, F32])),
        ]
    }
}

impl Engine<'_> {
    fn sizer(&self) -> Sizer<'_> {
        Sizer {
            cfg: &self.model.cfg,
            dtype_bytes: self.model.dtype().size_in_bytes(),
        }
    }

    /// How many pairs have each token count (the longer prompt of a pair counts).
    fn lengths(pairs: &[PairInput]) -> BTreeMap<usize, usize> {
        let mut by_len = BTreeMap::new();
        for p in pairs {
            *by_len
                .entry(p.clean_ids.len().max(p.corrupt_ids.len()))
                .or_insert(0) += 1;
        }
        by_len
    }

    /// The peak of [`Engine::baselines`]: chunks of `max_batch` pairs, the clean and
    /// corrupted prompts of a chunk in one forward that caches nothing.
    pub fn baselines_memory(&self, pairs: &[PairInput]) -> MemoryEstimate {
        let s = self.sizer();
        Self::lengths(pairs)
            .into_iter()
            .map(|(tokens, n)| {
                let rows = 2 * n.min(self.max_batch.max(1));
                MemoryEstimate::new(s.forward(rows, tokens), rows, tokens)
            })
            .fold(MemoryEstimate::none(), MemoryEstimate::max)
    }

    /// The peak of [`Engine::run`] for `exp` on `pairs`: a chunk's cached runs (source and,
    /// for activation patching, base) plus the largest batched forward (activation patching)
    /// or backward pass (attribution) over them.
    pub fn run_memory(&self, exp: &Experiment, pairs: &[PairInput]) -> MemoryEstimate {
        let s = self.sizer();
        let cfg = &self.model.cfg;
        let layers = exp
            .grid
            .layers
            .as_ref()
            .map_or(cfg.n_layers, |l| l.len().min(cfg.n_layers));
        // Hooks read per layer (the residual entering a block is cached anyway), plus the
        // pathways' sites.
        let per_layer: usize = exp
            .grid
            .components
            .iter()
            .filter(|c| **c != Component::ResidPre)
            .map(|c| s.width(*c))
            .sum();
        let sites: usize = exp
            .grid
            .pathways
            .iter()
            .flat_map(|p| &p.sites)
            .map(|site| s.width(site.component) * site.coordinates(cfg).len())
            .sum();
        let hooks = per_layer.saturating_mul(layers).saturating_add(sites);
        Self::lengths(pairs)
            .into_iter()
            .map(|(tokens, n)| {
                let chunk = n.min(self.pairs_per_chunk.max(1));
                let sources = match exp.method {
                    Method::LogitLens => 0,
                    _ => s.cached_run(tokens, hooks).saturating_mul(chunk as u64),
                };
                let (bases, rows, work) = match exp.method {
                    Method::Activation => {
                        let rows = self.max_batch.max(1);
                        let bases = s.cached_run(tokens, 0).saturating_mul(chunk as u64);
                        (bases, rows, s.forward(rows, tokens))
                    }
                    Method::Attribution => {
                        let rows = chunk.min(8);
                        let graph = s
                            .block_activations(rows, tokens)
                            .saturating_add(s.attention_scores(rows, tokens))
                            .saturating_mul(cfg.n_layers as u64);
                        let logits = product(&[rows, cfg.vocab_size, F32]);
                        let work = vec![
                            ("activations kept for the backward pass", graph),
                            ("gradients", graph),
                            ("logits", logits),
                        ];
                        (0, rows, work)
                    }
                    Method::LogitLens => {
                        // One forward of the chunk caching `layers` block outputs, then
                        // their last positions unembedded `max_batch` rows at a time.
                        let resid = product(&[chunk, layers, tokens, cfg.d_model, s.dtype_bytes]);
                        let rows = (chunk * layers).min(self.max_batch.max(1));
                        let mut work = s.forward(chunk, tokens);
                        work.push(("lens logits", product(&[rows, cfg.vocab_size, F32])));
                        (resid, chunk, work)
                    }
                };
                let mut parts = vec![("cached runs", sources.saturating_add(bases))];
                if exp.method == Method::Activation {
                    // The same runs stacked into batch tensors for the forwards' gathers
                    // (`crate::stacked`), at most all of them.
                    parts.push(("cached runs stacked", sources.saturating_add(bases)));
                }
                parts.extend(work);
                MemoryEstimate::new(parts, rows, tokens)
            })
            .fold(MemoryEstimate::none(), MemoryEstimate::max)
    }
}
