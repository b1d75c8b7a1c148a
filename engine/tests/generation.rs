//! Greedy generation: the KV-cached decode gives the tokens of full uncached forwards, and a
//! patch that replaces everything at the prompt's positions makes the patched prompt
//! continue as the other prompt does.

use std::path::PathBuf;

use candle_core::D;
use patchsweep_engine::experiment::{Direction, PairInput};
use patchsweep_engine::generate::{greedy, pair_generations, GenerationRun};
use patchsweep_engine::grid::{Cell, Component, EffectKey, Site};
use patchsweep_engine::metric::{Metric, MetricKind, Reduce};
use patchsweep_model::{load, Forward, HookedTransformer, Input, LoadOptions, ModelSpec, NoHook};

const MODELS: [&str; 4] = ["tiny-llama2", "tiny-llama3", "tiny-mistral", "tiny-qwen2"];
const TOKENS: usize = 12;

fn tiny(name: &str) -> HookedTransformer {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("model/tests/data")
        .join(name);
    load(&ModelSpec::Folder(dir), &LoadOptions::default())
        .unwrap()
        .model
}

/// Greedy tokens from full forwards over the whole sequence at every step (no cache).
fn uncached_greedy(model: &HookedTransformer, prompt: &[u32], tokens: usize) -> Vec<u32> {
    let mut seq = prompt.to_vec();
    for _ in 0..tokens {
        let input = model.tokens_tensor(std::slice::from_ref(&seq)).unwrap();
        let out = model
            .forward(Input::Tokens(&input), &mut NoHook, Forward::default())
            .unwrap();
        let logits = out.logits.unwrap().squeeze(0).unwrap();
        let last = logits.get(seq.len() - 1).unwrap();
        seq.push(last.argmax(D::Minus1).unwrap().to_scalar::<u32>().unwrap());
    }
    seq[prompt.len()..].to_vec()
}

fn pair(model: &HookedTransformer) -> PairInput {
    let vocab = model.cfg.vocab_size as u32;
    let clean: Vec<u32> = [1, 40, 77, 120, 33, 210]
        .iter()
        .map(|t| t % vocab)
        .collect();
    let mut corrupt = clean.clone();
    corrupt[2] = (corrupt[2] + 31) % vocab;
    PairInput {
        id: "p0".into(),
        position_labels: vec![String::new(); clean.len()],
        clean_ids: clean,
        corrupt_ids: corrupt,
        metric: Metric {
            kind: MetricKind::LogitDiff,
            reduce: Reduce::Mean,
            positive: vec![5],
            negative: vec![7],
        },
    }
}

/// A pathway cell patching one component at one layer, every position.
fn whole(component: Component, layer: usize, name: &str) -> Cell {
    Cell {
        key: EffectKey {
            component: format!("pathway:{name}"),
            layer: None,
            head: None,
            position: None,
            neuron: None,
        },
        sites: vec![Site {
            component,
            layer,
            head: None,
            position: None,
            neuron: None,
        }],
    }
}

#[test]
fn kv_cached_greedy_tokens_equal_uncached_full_forwards() {
    for name in MODELS {
        let model = tiny(name);
        let p = pair(&model);
        let prompts = vec![p.clean_ids.clone(), p.corrupt_ids.clone()];
        let cached = greedy(&model, &prompts, TOKENS, &mut NoHook).unwrap();
        for (prompt, got) in prompts.iter().zip(&cached) {
            assert_eq!(got.len(), TOKENS, "{name}");
            assert_eq!(*got, uncached_greedy(&model, prompt, TOKENS), "{name}");
        }
    }
}

#[test]
fn patching_everything_at_the_prompt_continues_as_the_other_prompt() {
    for name in MODELS {
        let model = tiny(name);
        let p = pair(&model);
        let last = model.cfg.n_layers - 1;
        let cells = [
            whole(Component::ResidPre, 0, "all"),
            // Below the last block, only the last block's residual and keys/values count.
            whole(Component::ResidPost, last, "last"),
        ];
        for direction in [Direction::Noise, Direction::Denoise] {
            let g = pair_generations(&model, &p, &cells, direction, TOKENS).unwrap();
            assert_eq!(g.len(), 4, "{name}");
            let (clean, corrupt) = (&g[0], &g[1]);
            assert_eq!(
                (clean.cell.as_deref(), clean.run),
                (None, GenerationRun::Clean)
            );
            assert_eq!(corrupt.run, GenerationRun::Corrupt);
            let (base, source) = match direction {
                Direction::Noise => (GenerationRun::Clean, corrupt),
                Direction::Denoise => (GenerationRun::Corrupt, clean),
            };
            let all = &g[2];
            assert_eq!(all.cell.as_deref(), Some("pathway:all"), "{name}");
            assert_eq!(all.run, base, "{name}");
            assert_eq!(all.tokens, source.tokens, "{name} {direction:?}");
            // resid_post of the last block feeds only the unembedding: the prompt's keys
            // and values stay the base prompt's, so only the first token must follow.
            assert_eq!(g[3].tokens[0], source.tokens[0], "{name} {direction:?}");
        }
    }
}

#[test]
fn the_two_prompts_continue_differently_on_some_model() {
    // Guards the test above against passing because both prompts give the same tokens.
    let differ = MODELS.iter().filter(|name| {
        let model = tiny(name);
        let p = pair(&model);
        let g = greedy(&model, &[p.clean_ids, p.corrupt_ids], TOKENS, &mut NoHook).unwrap();
        g[0] != g[1]
    });
    assert!(differ.count() >= 2);
}

#[test]
fn a_generation_beyond_the_context_is_refused() {
    let model = tiny("tiny-llama2");
    let most = model.cfg.max_positions.unwrap();
    let err = greedy(&model, &[vec![1, 2, 3]], most, &mut NoHook).unwrap_err();
    assert!(err.to_string().contains("max_position_embeddings"), "{err}");
}
