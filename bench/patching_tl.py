#!/usr/bin/env python3
"""Activation-patching throughput of the Python peers on SmolLM2-135M (CPU, float32, 2 threads):
TransformerLens (`transformer_lens.patching` over a TransformerBridge) and a plain Hugging Face
transformers model patched with forward hooks. Denoising grids for one (clean, corrupt) pair:

    resid_pre         [layer x pos]   one position of the decoder layer's input
    attn_out          [layer x pos]   one position of self_attn's output (o_proj output)
    mlp_out           [layer x pos]   one position of the MLP output (down_proj output)
    head_out_all_pos  [layer x head]  one query head's slice of the o_proj input, all positions

    .venv-ref/bin/python bench/patching_tl.py [--repeats 2] [--threads 2] [--grids resid_pre,attn_out,...]

Prints one JSON object on stdout:
    {"tl": {grid: {"patches", "seconds", "patches_per_s"}}, "hf_hooks": {...},
     "forward_ms": {"tl", "hf"}, "max_abs_diff_tl_vs_hf": {grid: x}, ...}
`seconds` is the median over --repeats of one full grid (the clean cache is built once, outside
the timing). A patch = one grid cell = one patched forward. Importable: `tl_bench(...)` and
`hf_hooks_bench(...)` return the per-grid dicts; `load(...)` returns models and token tensors.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "reference"))

import torch  # noqa: E402

import tl_patching as ref  # noqa: E402  (sets HF_HUB_OFFLINE / TQDM_DISABLE)

GRIDS = ref.GRIDS


def load(pair=ref.PAIRS[0]):
    """(tl_model, hf_model, clean [1,T], corrupt [1,T], metric)."""
    tok = ref.load_tokenizer()
    clean_ids, corrupt_ids = ref.token_ids(tok, pair[0]), ref.token_ids(tok, pair[1])
    assert len(clean_ids) == len(corrupt_ids)
    metric = ref.make_metric(*ref.answer_ids(tok))
    return ref.load_tl(tok), ref.load_hf_dequant(), torch.tensor([clean_ids]), torch.tensor([corrupt_ids]), metric


def _timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def _entry(patches, seconds):
    return {"patches": patches, "seconds": seconds, "patches_per_s": patches / seconds}


def forward_ms(model_call, tokens, iters=20):
    with torch.inference_mode():
        for _ in range(3):
            model_call(tokens)
        times = []
        for _ in range(iters):
            t = time.perf_counter()
            model_call(tokens)
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def tl_bench(model, clean, corrupt, metric, grids=GRIDS, repeats=2, return_values=False):
    """TransformerLens patching grids; {grid: {patches, seconds, patches_per_s}}."""
    from transformer_lens import patching

    fns = {
        "resid_pre": patching.get_act_patch_resid_pre,
        "attn_out": patching.get_act_patch_attn_out,
        "mlp_out": patching.get_act_patch_mlp_out,
        "head_out_all_pos": patching.get_act_patch_attn_head_out_all_pos,
    }
    result, values = {}, {}
    with torch.inference_mode():
        _, cache = model.run_with_cache(clean)
        for g in grids:
            secs, vals = _timed(lambda: fns[g](model, corrupt, cache, metric), repeats)
            result[g] = _entry(vals.numel(), secs)
            print(f"tl {g}: {result[g]}", file=sys.stderr)
            values[g] = vals
    return (result, values) if return_values else result


def hf_hooks_bench(model, clean, corrupt, metric, grids=GRIDS, repeats=2, return_values=False, max_layers=None):
    """Plain transformers + register_forward_(pre_)hook, one patch per forward, same grids.
    max_layers limits the grid to the first layers (quick checks)."""
    layers = model.model.layers
    n_layers, T = min(len(layers), max_layers or len(layers)), clean.shape[1]
    n_heads, d_head = model.config.num_attention_heads, model.config.head_dim

    # Where each grid reads/writes: (module, kind) with kind "pre" = first input, "out" = output.
    def site(g, l):
        return {
            "resid_pre": (layers[l], "pre"),
            "attn_out": (layers[l].self_attn, "out"),
            "mlp_out": (layers[l].mlp, "out"),
            "head_out_all_pos": (layers[l].self_attn.o_proj, "pre"),
        }[g]

    def first(x):
        return x[0] if isinstance(x, tuple) else x

    def logits(tokens):
        return model(tokens, use_cache=False).logits

    result, values = {}, {}
    with torch.inference_mode():
        # Clean cache for every grid's sites in one forward.
        cache, handles = {}, []
        for g in grids:
            for l in range(n_layers):
                mod, kind = site(g, l)

                def save(key):
                    def pre(m, args, kwargs):
                        cache[key] = (args[0] if args else kwargs["hidden_states"]).clone()

                    def out(m, args, output):
                        cache[key] = first(output).clone()

                    return pre, out

                pre, out = save((g, l))
                handles.append(mod.register_forward_pre_hook(pre, with_kwargs=True) if kind == "pre"
                               else mod.register_forward_hook(out))
        logits(clean)
        for h in handles:
            h.remove()

        def patch_pre(idx, clean_act):
            def hook(m, args, kwargs):
                if args:
                    x = args[0].clone()
                    x[idx] = clean_act[idx]
                    return (x,) + tuple(args[1:]), kwargs
                x = kwargs["hidden_states"].clone()
                x[idx] = clean_act[idx]
                return args, {**kwargs, "hidden_states": x}

            return hook

        def patch_out(idx, clean_act):
            def hook(m, args, output):
                x = first(output).clone()
                x[idx] = clean_act[idx]
                return (x,) + tuple(output[1:]) if isinstance(output, tuple) else x

            return hook

        def run_grid(g):
            inner = T if g != "head_out_all_pos" else n_heads
            out = torch.zeros(n_layers, inner)
            for l in range(n_layers):
                mod, kind = site(g, l)
                clean_act = cache[(g, l)]
                for i in range(inner):
                    if g == "head_out_all_pos":
                        # o_proj input [b, pos, n_heads*d_head]: head i = columns i*d_head..(i+1)*d_head
                        idx = (slice(None), slice(None), slice(i * d_head, (i + 1) * d_head))
                    else:
                        idx = (slice(None), i)
                    h = (mod.register_forward_pre_hook(patch_pre(idx, clean_act), with_kwargs=True)
                         if kind == "pre" else mod.register_forward_hook(patch_out(idx, clean_act)))
                    try:
                        out[l, i] = metric(logits(corrupt))
                    finally:
                        h.remove()
            return out

        for g in grids:
            secs, vals = _timed(lambda: run_grid(g), repeats)
            result[g] = _entry(vals.numel(), secs)
            print(f"hf_hooks {g}: {result[g]}", file=sys.stderr)
            values[g] = vals
    return (result, values) if return_values else result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--grids", default=",".join(GRIDS))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    grids = args.grids.split(",")
    torch.set_num_threads(args.threads)

    tl_model, hf_model, clean, corrupt, metric = load()
    tl, tl_vals = tl_bench(tl_model, clean, corrupt, metric, grids, args.repeats, return_values=True)
    hf, hf_vals = hf_hooks_bench(hf_model, clean, corrupt, metric, grids, args.repeats, return_values=True)
    with torch.inference_mode():
        fwd = {
            "tl": forward_ms(lambda t: tl_model(t), corrupt),
            "hf": forward_ms(lambda t: hf_model(t, use_cache=False).logits, corrupt),
        }
    print(json.dumps({
        "tl": tl,
        "hf_hooks": hf,
        "forward_ms": fwd,
        "max_abs_diff_tl_vs_hf": {g: (tl_vals[g] - hf_vals[g]).abs().max().item() for g in grids},
        "pair": list(ref.PAIRS[0]),
        "tokens": clean.shape[1],
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "versions": ref.versions(),
    }, indent=1))


if __name__ == "__main__":
    main()
