//! Forward latency of one prompt, for bench/forward_vs_hf.py (prints one JSON line).
//!
//! cargo run --release -p patchsweep-model --example bench_forward -- MODEL PROMPT ITERS

use std::time::Instant;

use patchsweep_model::{load, Forward, Input, LoadOptions, ModelSpec, NoHook, Unembed};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        return Err("usage: bench_forward MODEL PROMPT ITERS".into());
    }
    let spec: ModelSpec = args[1].parse()?;
    let iters: usize = args[3].parse()?;
    let t0 = Instant::now();
    let m = load(&spec, &LoadOptions::default())?;
    let load_s = t0.elapsed().as_secs_f64();
    let ids = m.tokenizer.encode(&args[2], None)?;
    let tokens = m.model.tokens_tensor(std::slice::from_ref(&ids))?;
    let mut result = serde_json::Map::new();
    for (name, unembed) in [
        ("all_positions", Unembed::All),
        ("last_position", Unembed::Last),
    ] {
        let opts = Forward {
            unembed,
            ..Forward::default()
        };
        for _ in 0..3 {
            m.model.forward(Input::Tokens(&tokens), &mut NoHook, opts)?;
        }
        let times: Vec<f64> = (0..iters)
            .map(|_| {
                let t = Instant::now();
                m.model
                    .forward(Input::Tokens(&tokens), &mut NoHook, opts)
                    .map(|_| t.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_, _>>()?;
        result.insert(format!("{name}_ms"), median(times).into());
    }
    result.insert("tokens".into(), ids.len().into());
    result.insert("load_s".into(), load_s.into());
    println!("{}", serde_json::Value::Object(result));
    Ok(())
}
