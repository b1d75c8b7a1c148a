//! Hook semantics, checked rather than assumed, on the tiny random models.

mod common;

use candle_core::{DType, Tensor, D};
use common::*;
use patchsweep_model::{
    ActivationCache, Forward, Hook, HookPoint, Input, Join, MaskedPatch, NoHook, Patch,
    PatchTarget, Patcher, Unembed,
};

const PROMPT: &str = "The engineer said that she would come back";

fn run_cache(
    name: &str,
) -> (
    patchsweep_model::LoadedModel,
    Tensor,
    ActivationCache,
    Tensor,
) {
    let m = load_tiny(name);
    let ids = m.tokenizer.encode(PROMPT, None).unwrap();
    let tokens = m.model.tokens_tensor(&[ids]).unwrap();
    let mut cache = ActivationCache::all();
    let out = m
        .model
        .forward(Input::Tokens(&tokens), &mut cache, Forward::default())
        .unwrap();
    let logits = out.logits.unwrap();
    (m, tokens, cache, logits)
}

#[test]
fn residual_stream_hooks_chain() {
    for name in TINY_MODELS {
        let (m, _, cache, _) = run_cache(name);
        let n = m.model.cfg.n_layers;
        for l in 0..n {
            let pre = cache.get(HookPoint::ResidPre(l)).unwrap();
            let mid = cache.get(HookPoint::ResidMid(l)).unwrap();
            let post = cache.get(HookPoint::ResidPost(l)).unwrap();
            let attn = cache.get(HookPoint::AttnOut(l)).unwrap();
            let mlp = cache.get(HookPoint::MlpOut(l)).unwrap();
            assert_eq!(
                max_abs_diff(&(pre + attn).unwrap(), mid),
                0.0,
                "{name} L{l}: pre + attn_out = mid"
            );
            assert_eq!(
                max_abs_diff(&(mid + mlp).unwrap(), post),
                0.0,
                "{name} L{l}: mid + mlp_out = post"
            );
            if l + 1 < n {
                assert_eq!(
                    max_abs_diff(post, cache.get(HookPoint::ResidPre(l + 1)).unwrap()),
                    0.0,
                    "{name}: post({l}) = pre({})",
                    l + 1
                );
            }
        }
        assert_eq!(
            max_abs_diff(
                cache.get(HookPoint::Embed).unwrap(),
                cache.get(HookPoint::ResidPre(0)).unwrap()
            ),
            0.0
        );
    }
}

#[test]
fn head_results_sum_to_attn_out() {
    for name in TINY_MODELS {
        let (m, _, cache, _) = run_cache(name);
        for l in 0..m.model.cfg.n_layers {
            let z = cache.get(HookPoint::Z(l)).unwrap();
            assert_eq!(z.dims()[2], m.model.cfg.n_heads);
            let per_head = m.model.head_results(l, z).unwrap();
            let summed = per_head.sum(2).unwrap();
            let attn = cache.get(HookPoint::AttnOut(l)).unwrap();
            let err = max_abs_diff(&summed, attn);
            assert!(
                err < 1e-5 * max_abs(attn).max(1.0),
                "{name} L{l}: sum of heads vs attn_out {err}"
            );
        }
    }
}

#[test]
fn hook_shapes_are_documented_ones() {
    let (m, tokens, cache, _) = run_cache("tiny-llama3");
    let c = &m.model.cfg;
    let p = tokens.dim(1).unwrap();
    assert_eq!(
        cache.get(HookPoint::Q(0)).unwrap().dims(),
        &[1, p, c.n_heads, c.d_head]
    );
    assert_eq!(
        cache.get(HookPoint::K(0)).unwrap().dims(),
        &[1, p, c.n_kv_heads, c.d_head]
    );
    assert_eq!(
        cache.get(HookPoint::V(1)).unwrap().dims(),
        &[1, p, c.n_kv_heads, c.d_head]
    );
    assert_eq!(
        cache.get(HookPoint::Pattern(0)).unwrap().dims(),
        &[1, c.n_heads, p, p]
    );
    assert_eq!(
        cache.get(HookPoint::MlpPost(0)).unwrap().dims(),
        &[1, p, c.d_mlp]
    );
    assert_eq!(
        cache.get(HookPoint::LnFinalNormalized).unwrap().dims(),
        &[1, p, c.d_model]
    );
    // Attention rows sum to one and never look ahead.
    let pat = cache.get(HookPoint::Pattern(1)).unwrap();
    let sums = pat.sum(D::Minus1).unwrap();
    assert!(max_abs_diff(&sums, &sums.ones_like().unwrap()) < 1e-5);
    let row0: Vec<f32> = pat
        .get(0)
        .unwrap()
        .get(0)
        .unwrap()
        .get(0)
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(row0[0], 1.0);
    assert!(row0[1..].iter().all(|&x| x == 0.0));
}

#[test]
fn mistral_sliding_window_limits_attention() {
    let (m, _, cache, _) = run_cache("tiny-mistral");
    let w = m.model.cfg.sliding_window.unwrap();
    let pat = cache
        .get(HookPoint::Pattern(0))
        .unwrap()
        .get(0)
        .unwrap()
        .get(0)
        .unwrap();
    let rows: Vec<Vec<f32>> = pat.to_vec2().unwrap();
    for (i, row) in rows.iter().enumerate() {
        for (j, &x) in row.iter().enumerate() {
            let visible = j <= i && i - j < w;
            assert_eq!(x > 0.0, visible, "query {i} key {j}");
        }
    }
}

#[test]
fn patching_a_hook_with_its_own_value_changes_nothing() {
    for name in TINY_MODELS {
        let (m, tokens, cache, logits) = run_cache(name);
        let patches: Vec<Patch> = HookPoint::all(m.model.cfg.n_layers)
            .into_iter()
            .map(|point| Patch {
                point,
                target: PatchTarget::default(),
                value: cache.get(point).unwrap().clone(),
            })
            .collect();
        let out = m
            .model
            .forward(
                Input::Tokens(&tokens),
                &mut Patcher::new(&patches),
                Forward::default(),
            )
            .unwrap();
        assert_eq!(max_abs_diff(&out.logits.unwrap(), &logits), 0.0, "{name}");
    }
}

/// A clean prompt and a corrupted one differing in one token (the tiny tokenizer splits
/// words differently, so the corruption is made at the id level).
fn pair(m: &patchsweep_model::LoadedModel) -> (Vec<u32>, Vec<u32>) {
    let a = m.tokenizer.encode("The nurse said that", None).unwrap();
    let mut b = a.clone();
    b[2] = (b[2] + 17) % m.model.cfg.vocab_size as u32;
    (a, b)
}

#[test]
fn patching_from_another_run_moves_the_output() {
    let m = load_tiny("tiny-llama3");
    let (a, b) = pair(&m);
    let ta = m.model.tokens_tensor(&[a]).unwrap();
    let tb = m.model.tokens_tensor(&[b]).unwrap();
    let mut clean = ActivationCache::all();
    let clean_logits = m
        .model
        .forward(Input::Tokens(&ta), &mut clean, Forward::default())
        .unwrap()
        .logits
        .unwrap();
    let corrupt_logits = m
        .model
        .forward(Input::Tokens(&tb), &mut NoHook, Forward::default())
        .unwrap()
        .logits
        .unwrap();
    // Patching the whole residual entering the last block restores the clean logits exactly.
    let l = m.model.cfg.n_layers - 1;
    let patch = [Patch {
        point: HookPoint::ResidPre(l),
        target: PatchTarget::default(),
        value: clean.get(HookPoint::ResidPre(l)).unwrap().clone(),
    }];
    let out = m
        .model
        .forward(
            Input::Tokens(&tb),
            &mut Patcher::new(&patch),
            Forward::default(),
        )
        .unwrap();
    assert!(max_abs_diff(&out.logits.unwrap(), &clean_logits) < 1e-5);
    // One head at one position: the output moves, but is neither run.
    let patch = [Patch {
        point: HookPoint::Z(0),
        target: PatchTarget {
            positions: Some(vec![1, 2]),
            heads: Some(vec![3]),
            rows: None,
            features: None,
        },
        value: clean.get(HookPoint::Z(0)).unwrap().clone(),
    }];
    let out = m
        .model
        .forward(
            Input::Tokens(&tb),
            &mut Patcher::new(&patch),
            Forward::default(),
        )
        .unwrap()
        .logits
        .unwrap();
    assert!(max_abs_diff(&out, &corrupt_logits) > 1e-4);
    assert!(max_abs_diff(&out, &clean_logits) > 1e-4);
}

#[test]
fn start_and_stop_at_a_layer_compose_to_the_full_forward() {
    for name in TINY_MODELS {
        let (m, tokens, cache, logits) = run_cache(name);
        for l in 0..=m.model.cfg.n_layers {
            let stopped = m
                .model
                .forward(
                    Input::Tokens(&tokens),
                    &mut NoHook,
                    Forward {
                        stop_at_layer: Some(l),
                        unembed: Unembed::None,
                        ..Forward::default()
                    },
                )
                .unwrap();
            let expect = if l == 0 {
                cache.get(HookPoint::Embed).unwrap()
            } else {
                cache.get(HookPoint::ResidPost(l - 1)).unwrap()
            };
            assert_eq!(
                max_abs_diff(&stopped.residual, expect),
                0.0,
                "{name} stop at {l}"
            );
            let resumed = m
                .model
                .forward(
                    Input::Residual {
                        layer: l,
                        resid_pre: &stopped.residual,
                    },
                    &mut NoHook,
                    Forward::default(),
                )
                .unwrap();
            assert_eq!(
                max_abs_diff(&resumed.logits.unwrap(), &logits),
                0.0,
                "{name} start at {l}"
            );
        }
    }
}

#[test]
fn cached_keys_and_values_reproduce_later_positions() {
    for name in TINY_MODELS {
        let (m, tokens, _, logits) = run_cache(name);
        let p = tokens.dim(1).unwrap();
        let split = p - 3;
        let prefix = tokens.narrow(1, 0, split).unwrap();
        let rest = tokens.narrow(1, split, p - split).unwrap();
        let first = m
            .model
            .forward(
                Input::Tokens(&prefix),
                &mut NoHook,
                Forward {
                    record_kv: true,
                    ..Forward::default()
                },
            )
            .unwrap();
        let second = m
            .model
            .forward(
                Input::Tokens(&rest),
                &mut NoHook,
                Forward {
                    past: Some(&first.kv),
                    ..Forward::default()
                },
            )
            .unwrap()
            .logits
            .unwrap();
        let expect = logits.narrow(1, split, p - split).unwrap();
        let err = max_abs_diff(&second, &expect);
        assert!(err < 1e-5, "{name}: kv-cached logits differ by {err}");
    }
}

#[test]
fn batches_equal_single_runs_and_last_only_unembedding_agrees() {
    for name in TINY_MODELS {
        let m = load_tiny(name);
        let (a, b) = pair(&m);
        let batch = m.model.tokens_tensor(&[a.clone(), b.clone()]).unwrap();
        let both = m
            .model
            .forward(
                Input::Tokens(&batch),
                &mut NoHook,
                Forward {
                    unembed: Unembed::Last,
                    ..Forward::default()
                },
            )
            .unwrap()
            .logits
            .unwrap();
        for (row, ids) in [a, b].into_iter().enumerate() {
            let t = m.model.tokens_tensor(&[ids]).unwrap();
            let full = m
                .model
                .forward(Input::Tokens(&t), &mut NoHook, Forward::default())
                .unwrap()
                .logits
                .unwrap();
            let n = full.dim(1).unwrap();
            let err = max_abs_diff(
                &both.get(row).unwrap(),
                &full.get(0).unwrap().narrow(0, n - 1, 1).unwrap(),
            );
            assert!(err < 1e-5, "{name} row {row}: {err}");
        }
    }
}

/// Metric: logit(id a) - logit(id b) at the last position.
fn logit_diff(logits: &Tensor, a: usize, b: usize) -> patchsweep_model::Result<Tensor> {
    let flat = logits.flatten_all()?;
    Ok((flat.get(a)? - flat.get(b)?)?)
}

#[test]
fn gradients_match_finite_differences() {
    for name in TINY_MODELS {
        let m = load_tiny(name);
        let ids = m.tokenizer.encode(PROMPT, None).unwrap();
        let tokens = m.model.tokens_tensor(&[ids]).unwrap();
        let points = [
            HookPoint::ResidPre(0),
            HookPoint::Z(0),
            HookPoint::MlpOut(1),
            HookPoint::Pattern(1),
            HookPoint::V(0),
        ];
        let metric = |l: &Tensor| logit_diff(l, 5, 7);
        let g = m
            .model
            .gradients(&tokens, &points, &mut NoHook, &metric)
            .unwrap();
        for point in points {
            let act = g.activations[&point].clone();
            let grad = g.grads[&point].clone();
            assert_eq!(grad.dims(), act.dims());
            // Directional derivative along a fixed pseudo-random direction (the same every
            // run: an unseeded draw made this f32 check fail now and then), by central
            // differences.
            let n = act.elem_count();
            let values: Vec<f32> = (0..n)
                .map(|i| ((i as f32 * 12.9898).sin() * 43758.547).fract() * 2.0)
                .collect();
            let dir = Tensor::from_vec(values, act.dims(), act.device())
                .unwrap()
                .to_dtype(act.dtype())
                .unwrap();
            let analytic: f32 = (&grad * &dir)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            let eps = 1e-3f32;
            let eval = |sign: f32| -> f32 {
                let value = (&act + (&dir * (sign * eps) as f64).unwrap()).unwrap();
                let patch = [Patch {
                    point,
                    target: PatchTarget::default(),
                    value,
                }];
                let out = m
                    .model
                    .forward(
                        Input::Tokens(&tokens),
                        &mut Patcher::new(&patch),
                        Forward {
                            unembed: Unembed::Last,
                            ..Forward::default()
                        },
                    )
                    .unwrap();
                metric(&out.logits.unwrap())
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap()
                    .to_scalar()
                    .unwrap()
            };
            let numeric = (eval(1.0) - eval(-1.0)) / (2.0 * eps);
            let tol = 2e-2 * analytic.abs().max(numeric.abs()).max(0.1);
            assert!(
                (analytic - numeric).abs() <= tol,
                "{name} {point}: analytic {analytic} vs numeric {numeric}"
            );
        }
        // The metric value from the gradient run equals a plain forward's.
        let plain = m
            .model
            .forward(
                Input::Tokens(&tokens),
                &mut NoHook,
                Forward {
                    unembed: Unembed::Last,
                    ..Forward::default()
                },
            )
            .unwrap();
        let v: f32 = metric(&plain.logits.unwrap()).unwrap().to_scalar().unwrap();
        assert!((v - g.metric).abs() < 1e-4, "{name}: {v} vs {}", g.metric);
    }
}

#[test]
fn rows_joining_at_later_blocks_equal_their_own_runs() {
    for name in TINY_MODELS {
        let m = load_tiny(name);
        let (a, b) = pair(&m);
        let cached = |ids: &[u32]| {
            let t = m.model.tokens_tensor(&[ids.to_vec()]).unwrap();
            let mut cache = ActivationCache::all();
            let out = m
                .model
                .forward(Input::Tokens(&t), &mut cache, Forward::default())
                .unwrap();
            (t, cache, out.logits.unwrap())
        };
        let (ta, cache_a, logits_a) = cached(&a);
        let (_, cache_b, logits_b) = cached(&b);
        let b_at_0 = cache_b.get(HookPoint::ResidPre(0)).unwrap().clone();
        let b_at_1 = cache_b.get(HookPoint::ResidPre(1)).unwrap().clone();
        let a_at_1 = cache_a.get(HookPoint::ResidPre(1)).unwrap().clone();
        // Row 0 starts from the tokens of `a` and takes all of `b`'s residual at block 0
        // through a masked patch of three rows, of which only one is in the batch there.
        let mask = Tensor::new(&[1u8, 0, 0], m.model.device())
            .unwrap()
            .reshape((3, 1, 1))
            .unwrap();
        let value = Tensor::cat(&[&b_at_0, &b_at_0, &b_at_0], 0).unwrap();
        let one = Tensor::new(&[1u8], m.model.device())
            .unwrap()
            .reshape((1, 1, 1))
            .unwrap();
        let patch = [
            MaskedPatch {
                point: HookPoint::ResidPre(0),
                mask,
                value,
                first_row: 0,
            },
            // Row 1 alone (joined at block 1) takes `a`'s residual there.
            MaskedPatch {
                point: HookPoint::ResidPre(1),
                mask: one.clone(),
                value: a_at_1.clone(),
                first_row: 1,
            },
            // Rows that never join are never patched.
            MaskedPatch {
                point: HookPoint::ResidPre(1),
                mask: one,
                value: b_at_1.clone(),
                first_row: 3,
            },
        ];
        let with_joins = |hook: &mut dyn Hook, joins: &[Join]| {
            m.model.forward(
                Input::Tokens(&ta),
                hook,
                Forward {
                    joins,
                    ..Forward::default()
                },
            )
        };
        let mut patcher = Patcher::new(&[]).with_masked(&patch);
        let joins = [
            Join {
                layer: 1,
                resid_pre: &b_at_1,
            },
            Join {
                layer: 1,
                resid_pre: &a_at_1,
            },
        ];
        let out = with_joins(&mut patcher, &joins).unwrap().logits.unwrap();
        assert_eq!(out.dim(0).unwrap(), 3, "{name}: the joined rows come out");
        for (row, expect) in [&logits_b, &logits_a, &logits_a].into_iter().enumerate() {
            let err = max_abs_diff(&out.narrow(0, row, 1).unwrap(), expect);
            assert!(err < 1e-5, "{name} row {row}: {err}");
        }
        // Joins out of order, below the start, or of another length are refused by name.
        let short = a_at_1.narrow(1, 0, 2).unwrap();
        for (bad, why) in [
            (
                vec![
                    joins[0],
                    Join {
                        layer: 0,
                        resid_pre: &a_at_1,
                    },
                ],
                "ascending",
            ),
            (
                vec![Join {
                    layer: 1,
                    resid_pre: &short,
                }],
                "positions",
            ),
        ] {
            let err = with_joins(&mut NoHook, &bad).unwrap_err().to_string();
            assert!(err.contains(why), "{name}: {err}");
        }
    }
}
