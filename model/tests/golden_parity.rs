//! Parity with Hugging Face transformers: logits and hook activations of the committed
//! goldens (reference/make_goldens.py) for the four tiny architecture variants and the real
//! SmolLM2 GGUF.

mod common;

use common::*;
use patchsweep_model::{load, ActivationCache, Forward, HookPoint, Input, LoadOptions, ModelSpec};

const LOGIT_TOL: f32 = 1e-3;

struct Errors {
    logits: f32,
    hook_rel: f64,
}

fn check(name: &str) -> Errors {
    let g = golden(name);
    let spec: ModelSpec = if g.source.ends_with(".gguf") {
        ModelSpec::Gguf(repo_root().join(&g.source))
    } else {
        ModelSpec::Folder(repo_root().join(&g.source))
    };
    if name == "smollm2" {
        demo_model_path();
    }
    let loaded = load(&spec, &LoadOptions::default()).unwrap();
    let mut worst = Errors {
        logits: 0.0,
        hook_rel: 0.0,
    };
    for p in &g.prompts {
        let ids = loaded.tokenizer.encode(&p.text, None).unwrap();
        assert_eq!(ids, p.token_ids, "{name}: tokens of {:?}", p.text);
        let tokens = loaded.model.tokens_tensor(&[ids]).unwrap();
        let points: Vec<HookPoint> = p.hooks.keys().map(|k| k.parse().unwrap()).collect();
        let mut cache = ActivationCache::only(points.clone());
        let out = loaded
            .model
            .forward(Input::Tokens(&tokens), &mut cache, Forward::default())
            .unwrap();
        let logits = out.logits.unwrap();
        let n = logits.dim(1).unwrap();
        let last: Vec<f32> = logits
            .narrow(1, n - 1, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (rank, gl) in p.top_logits.iter().enumerate() {
            let err = (last[gl.id as usize] - gl.logit).abs();
            worst.logits = worst.logits.max(err);
            assert!(
                err <= LOGIT_TOL,
                "{name} {:?}: logit of id {} (rank {rank}) is {} vs HF {}",
                p.text,
                gl.id,
                last[gl.id as usize],
                gl.logit
            );
        }
        let mut order: Vec<usize> = (0..last.len()).collect();
        order.sort_by(|&a, &b| last[b].total_cmp(&last[a]));
        let ours: Vec<u32> = order.iter().take(5).map(|&i| i as u32).collect();
        let theirs: Vec<u32> = p.top_logits.iter().take(5).map(|l| l.id).collect();
        assert_eq!(ours, theirs, "{name} {:?}: top-5 ids", p.text);
        for (hook_name, gh) in &p.hooks {
            let point: HookPoint = hook_name.parse().unwrap();
            let act = cache.get(point).unwrap().squeeze(0).unwrap();
            let flat = act.flatten_from(1).unwrap();
            let norms: Vec<f32> = flat
                .sqr()
                .unwrap()
                .sum(1)
                .unwrap()
                .sqrt()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(norms.len(), gh.norms.len(), "{name} {hook_name}: positions");
            for (ours, theirs) in norms.iter().zip(&gh.norms) {
                let rel = (*ours as f64 - theirs).abs() / theirs.abs().max(1e-3);
                worst.hook_rel = worst.hook_rel.max(rel);
                assert!(
                    rel < 1e-4,
                    "{name} {:?} {hook_name}: norm {ours} vs HF {theirs}",
                    p.text
                );
            }
            let last_row: Vec<f32> = flat
                .get(flat.dim(0).unwrap() - 1)
                .unwrap()
                .to_vec1()
                .unwrap();
            let scale = gh.norms.last().copied().unwrap_or(1.0).max(1.0) as f32;
            for (i, (a, b)) in last_row.iter().zip(&gh.last_slice).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * scale,
                    "{name} {hook_name}: last_slice[{i}] {a} vs HF {b}"
                );
            }
        }
    }
    println!(
        "{name}: {} prompts, max |logit error| {:.2e}, max relative hook-norm error {:.2e}",
        g.prompts.len(),
        worst.logits,
        worst.hook_rel
    );
    worst
}

#[test]
fn tiny_llama2_matches_hf() {
    check("tiny-llama2");
}

#[test]
fn tiny_llama3_matches_hf() {
    check("tiny-llama3");
}

#[test]
fn tiny_mistral_matches_hf() {
    check("tiny-mistral");
}

#[test]
fn tiny_qwen2_matches_hf() {
    check("tiny-qwen2");
}

#[test]
fn smollm2_gguf_matches_hf() {
    let e = check("smollm2");
    assert!(e.logits <= LOGIT_TOL);
}
