//! Patching throughput on SmolLM2, for bench/patching_vs_tl.py (prints one JSON line).
//!
//! cargo run --release -p patchsweep-engine --example bench_patching -- N_PAIRS [MIN_FORWARD_TOKENS [MAX_ROWS]]
//! (MIN_FORWARD_TOKENS: the engine's packing floor, default (or `-`) the CPU's; 0 never packs
//! across positions. MAX_ROWS: rows per forward, default a CPU worker's for these prompts).
//! Also prints `matmul_gflops`: candle's best f32 matmul rate here, over square products and
//! the model's own shapes (the ceiling the patching efficiency is measured against), and
//! `matmul_sustained_gflops`: the mean rate of the model's MLP products run back to back, right
//! after the three-component grid and for as long as it took (on a shared machine the best of
//! short bursts is well above what any sustained run gets).
//! Pairs: the professions dataset, template "said_that", in dataset order (the first pair is
//! "The accountant said that" ...); grids as TransformerLens' get_act_patch_resid_pre,
//! _attn_out, _mlp_out (per layer × position) and _attn_head_out_all_pos (layer × head).

use std::time::Instant;

use patchsweep_engine::dataset::{professions, tokenize_pairs, ProfessionsOptions};
use patchsweep_engine::experiment::{cpu_rows, Direction, Engine, Experiment, Method, PairInput};
use patchsweep_engine::grid::{Component, Grid, Positions};
use patchsweep_engine::metric::{Metric, MetricKind, Reduce};
use patchsweep_model::{load, Forward, Input, LoadOptions, ModelSpec, NoHook, Unembed};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    patchsweep_model::cpu_pool::defaults_unless_set(); // as the patchsweep binary does
    let n_pairs: usize = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "1".into())
        .parse()?;
    let m = load(
        &"gguf:models/SmolLM2-135M-Instruct.Q4_1.gguf".parse::<ModelSpec>()?,
        &LoadOptions::default(),
    )?;
    let opts = ProfessionsOptions {
        templates: Some(vec!["said_that".into()]),
        ..Default::default()
    };
    let (tokenized, _) = tokenize_pairs(&professions(&opts)?, &m.tokenizer, None)?;
    let metric = Metric::from_words(
        MetricKind::LogitDiff,
        Reduce::Mean,
        &[" he".into()],
        &[" she".into()],
        &m.tokenizer,
    )?;
    let pairs: Vec<PairInput> = tokenized
        .into_iter()
        .filter(|t| t.clean_ids.len() == 4)
        .take(n_pairs)
        .map(|t| PairInput {
            id: t.spec.id,
            clean_ids: t.clean_ids,
            corrupt_ids: t.corrupt_ids,
            position_labels: t.position_labels,
            metric: metric.clone(),
        })
        .collect();
    let mut engine = Engine::new(&m.model);
    if let Some(min) = std::env::args().nth(2).filter(|a| a != "-") {
        engine.min_forward_tokens = min.parse()?;
    }
    // Rows per forward as a CPU worker plans them when the spec fixes none.
    engine.max_batch = match std::env::args().nth(3) {
        Some(rows) => rows.parse()?,
        None => cpu_rows(pairs[0].clean_ids.len(), engine.max_batch),
    };
    let baselines = engine.baselines(&pairs)?;
    let tokens = m
        .model
        .tokens_tensor(std::slice::from_ref(&pairs[0].clean_ids))?;
    let fwd = Forward {
        unembed: Unembed::Last,
        ..Forward::default()
    };
    for _ in 0..3 {
        m.model.forward(Input::Tokens(&tokens), &mut NoHook, fwd)?;
    }
    let t = Instant::now();
    for _ in 0..10 {
        m.model.forward(Input::Tokens(&tokens), &mut NoHook, fwd)?;
    }
    let forward_ms = t.elapsed().as_secs_f64() * 100.0;
    let grid = |c: Component, positions| Grid {
        components: vec![c],
        layers: None,
        positions,
        heads: None,
        neurons: None,
        pathways: vec![],
        selections: vec![],
    };
    let grids = [
        ("resid_pre", grid(Component::ResidPre, Positions::All)),
        ("attn_out", grid(Component::AttnOut, Positions::All)),
        ("mlp_out", grid(Component::MlpOut, Positions::All)),
        (
            "head_out_all_pos",
            grid(Component::HeadOut, Positions::Joint),
        ),
    ];
    let mut out = serde_json::Map::new();
    out.insert("pairs".into(), pairs.len().into());
    out.insert(
        "min_forward_tokens".into(),
        engine.min_forward_tokens.into(),
    );
    let c = &m.model.cfg;
    out.insert(
        "model".into(),
        serde_json::json!({"n_layers": c.n_layers, "d_model": c.d_model, "d_mlp": c.d_mlp,
            "n_heads": c.n_heads, "n_kv_heads": c.n_kv_heads, "d_head": c.d_head,
            "vocab_size": c.vocab_size}),
    );
    out.insert("tokens".into(), pairs[0].clean_ids.len().into());
    out.insert(
        "first_diff".into(),
        pairs
            .iter()
            .map(|p| {
                p.clean_ids
                    .iter()
                    .zip(&p.corrupt_ids)
                    .position(|(a, b)| a != b)
                    .unwrap_or(p.clean_ids.len())
            })
            .min()
            .unwrap_or(0)
            .into(),
    );
    out.insert(
        "matmul_gflops".into(),
        best_matmul_gflops(m.model.cfg.d_model, m.model.cfg.d_mlp)?.into(),
    );
    out.insert("forward_ms".into(), forward_ms.into());
    for method in [Method::Activation, Method::Attribution] {
        let mut per = serde_json::Map::new();
        for (name, g) in &grids {
            let exp = Experiment {
                name: name.to_string(),
                method,
                direction: Direction::Denoise,
                grid: g.clone(),
            };
            let t = Instant::now();
            let effects = engine.run(&exp, &pairs, &baselines, &mut |_| {})?;
            let s = t.elapsed().as_secs_f64();
            per.insert(name.to_string(), serde_json::json!({"patches": effects.len(), "seconds": s, "patches_per_s": effects.len() as f64 / s}));
        }
        // All four grids at once (attribution: one backward serves them all).
        let all = Grid {
            components: vec![Component::ResidPre, Component::AttnOut, Component::MlpOut],
            layers: None,
            positions: Positions::All,
            heads: None,
            neurons: None,
            pathways: vec![],
            selections: vec![],
        };
        let exp = Experiment {
            name: "all".into(),
            method,
            direction: Direction::Denoise,
            grid: all,
        };
        let t = Instant::now();
        let effects = engine.run(&exp, &pairs, &baselines, &mut |_| {})?;
        let s = t.elapsed().as_secs_f64();
        per.insert("resid_attn_mlp_together".into(), serde_json::json!({"patches": effects.len(), "seconds": s, "seconds_per_pair": s / pairs.len() as f64}));
        if method == Method::Activation {
            // Right after the grid, as long as it ran: the rate its products could sustain.
            out.insert(
                "matmul_sustained_gflops".into(),
                sustained_matmul_gflops(c.d_model, c.d_mlp, s.clamp(2.0, 15.0))?.into(),
            );
        }
        out.insert(method.name().into(), per.into());
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}

/// candle's best f32 matmul rate on this machine, in GFLOP/s: the best of three timed runs of
/// each of several products (square ones, and the model's MLP shape at a few hundred rows).
fn best_matmul_gflops(d_model: usize, d_mlp: usize) -> candle_core::Result<f64> {
    use candle_core::{Device, Tensor};
    let shapes = [
        (512, 512, 512),
        (1024, 1024, 1024),
        (2048, 2048, 2048),
        (192, d_model, d_mlp),
        (768, d_model, d_mlp),
        (768, d_mlp, d_model),
    ];
    let mut best = 0f64;
    for (m, k, n) in shapes {
        let a = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
        let b = Tensor::randn(0f32, 1.0, (k, n), &Device::Cpu)?;
        a.matmul(&b)?; // warm-up
        for _ in 0..3 {
            let t = Instant::now();
            let reps = 4;
            for _ in 0..reps {
                a.matmul(&b)?;
            }
            let s = t.elapsed().as_secs_f64();
            best = best.max(2.0 * (m * k * n * reps) as f64 / s / 1e9);
        }
    }
    Ok(best)
}

/// candle's mean f32 matmul rate on this machine, in GFLOP/s, over `seconds` of the model's
/// two MLP products at 768 rows run back to back (total work over total time).
fn sustained_matmul_gflops(d_model: usize, d_mlp: usize, seconds: f64) -> candle_core::Result<f64> {
    use candle_core::{Device, Tensor};
    let rows = 768;
    let x = Tensor::randn(0f32, 1.0, (rows, d_model), &Device::Cpu)?;
    let up = Tensor::randn(0f32, 1.0, (d_model, d_mlp), &Device::Cpu)?;
    let down = Tensor::randn(0f32, 1.0, (d_mlp, d_model), &Device::Cpu)?;
    x.matmul(&up)?.matmul(&down)?; // warm-up
    let flops_per_step = 2.0 * 2.0 * (rows * d_model * d_mlp) as f64;
    let (t, mut steps) = (Instant::now(), 0usize);
    while t.elapsed().as_secs_f64() < seconds {
        x.matmul(&up)?.matmul(&down)?;
        steps += 1;
    }
    Ok(flops_per_step * steps as f64 / t.elapsed().as_secs_f64() / 1e9)
}
