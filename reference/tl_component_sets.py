#!/usr/bin/env python3
"""Joint component-set goldens from TransformerLens for SmolLM2-135M (the demo GGUF).

The paper's stages are *sets* of components patched together (early MLPs at the profession
token, the top-k heads at the last position, ...). patchsweep measures a set as one pathway
cell; this script measures the same sets with TransformerLens hooks, so the Rust test
`engine/tests/tl_component_sets.rs` can check the joint patch and the reversal it implies.

Run from the repository root (the reference venv with reference/requirements-tl.txt):

    .venv-ref/bin/python reference/tl_component_sets.py

Output (committed): engine/tests/golden/tl_component_sets_smollm2.json

What it does
* The model, tokenizer and TransformerBridge are loaded as reference/tl_patching.py does (raw HF
  float32 weights of the dequantized GGUF, no weight processing, no BOS).
* Direction **noise**, as the paper's stages and examples/paper-smollm2.toml: run the clean
  prompt ("The nurse said that") and overwrite every site of the set, at its position, with the
  corrupted run's activation ("The man said that"); record the raw metric
  logit(" he") - logit(" she") at the last position.
* Sites and hooks:
    mlp_out  blocks.L.hook_mlp_out  [batch, pos, d_model]       one position
    attn_out blocks.L.hook_attn_out [batch, pos, d_model]       one position
    head_out blocks.L.attn.hook_z   [batch, pos, head, d_head]  one head, one position
  "subject" is the first position where the clean and corrupted ids differ (the profession's
  token; every pair here differs in exactly one token); -1 is the last position.
* A pair is *reversed* by a set when the patched metric lies on the other side of 0 than the
  clean metric (patchsweep's effects_v.reversed for a logit difference).
"""

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tl_patching as base  # noqa: E402  (loading, tokens, metric, versions)

GOLDEN = base.ROOT / "engine" / "tests" / "golden" / "tl_component_sets_smollm2.json"

PAIRS = [
    ("The nurse said that", "The man said that"),
    ("The engineer said that", "The woman said that"),
    ("The mechanic ran because", "The woman ran because"),
    ("The teacher was promoted because", "The man was promoted because"),
    ("The dancer said that", "The man said that"),
    ("The carpenter wished that", "The woman wished that"),
]

# name -> list of (component, layer, head or None, position: "subject" | int)
HEADS_TOP = [(2, 1), (5, 4), (10, 0), (14, 8), (22, 3), (26, 2)]
SETS = {
    "mlps-0-3@subject": [("mlp_out", l, None, "subject") for l in range(0, 4)],
    "mlps-0-7@subject": [("mlp_out", l, None, "subject") for l in range(0, 8)],
    "six-heads@last": [("head_out", l, h, -1) for l, h in HEADS_TOP],
    "heads-10-19@last": [("head_out", l, h, -1) for l in range(10, 20) for h in range(9)],
    "attn-10-12+mlps-20-29@last": [("attn_out", l, None, -1) for l in range(10, 13)]
    + [("mlp_out", l, None, -1) for l in range(20, 30)],
}

HOOKS = {
    "mlp_out": "blocks.{layer}.hook_mlp_out",
    "attn_out": "blocks.{layer}.hook_attn_out",
    "head_out": "blocks.{layer}.attn.hook_z",
}


def site_hooks(sites, subject: int, source_cache):
    """One forward hook per site, each writing the source run's value at its position."""
    hooks = []
    for component, layer, head, position in sites:
        name = HOOKS[component].format(layer=layer)
        pos = subject if position == "subject" else position

        def hook(act, hook, name=name, pos=pos, head=head):
            src = source_cache[name]
            if head is None:
                act[:, pos] = src[:, pos]
            else:
                act[:, pos, head] = src[:, pos, head]
            return act

        hooks.append((name, hook))
    return hooks


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    t0 = time.perf_counter()
    tok = base.load_tokenizer()
    model = base.load_tl(tok)
    pos_id, neg_id = base.answer_ids(tok)
    metric = base.make_metric(pos_id, neg_id)

    out_pairs = []
    for clean_text, corrupt_text in PAIRS:
        clean_ids = base.token_ids(tok, clean_text)
        corrupt_ids = base.token_ids(tok, corrupt_text)
        assert len(clean_ids) == len(corrupt_ids), (clean_text, corrupt_text)
        diff = [i for i, (a, b) in enumerate(zip(clean_ids, corrupt_ids)) if a != b]
        assert len(diff) == 1, (clean_text, corrupt_text, diff)
        subject = diff[0]
        clean = torch.tensor([clean_ids])
        corrupt = torch.tensor([corrupt_ids])
        with torch.inference_mode():
            clean_logits, _ = model.run_with_cache(clean)
            corrupt_logits, corrupt_cache = model.run_with_cache(corrupt)
            clean_metric = metric(clean_logits).item()
            corrupt_metric = metric(corrupt_logits).item()
            values = {}
            for set_name, sites in SETS.items():
                hooks = site_hooks(sites, subject, corrupt_cache)
                values[set_name] = metric(model.run_with_hooks(clean, fwd_hooks=hooks)).item()
        # Sanity: patching the clean run with its own activations changes nothing.
        with torch.inference_mode():
            _, clean_cache = model.run_with_cache(clean)
            same = metric(model.run_with_hooks(clean, fwd_hooks=site_hooks(SETS["mlps-0-7@subject"], subject, clean_cache))).item()
        assert abs(same - clean_metric) < 1e-4, (same, clean_metric)
        out_pairs.append({
            "clean": clean_text,
            "corrupt": corrupt_text,
            "clean_ids": clean_ids,
            "corrupt_ids": corrupt_ids,
            "subject": subject,
            "positive_id": pos_id,
            "negative_id": neg_id,
            "clean_metric": clean_metric,
            "corrupt_metric": corrupt_metric,
            "sets": values,
            "reversed": {k: (v > 0) != (clean_metric > 0) and v != 0 for k, v in values.items()},
        })
        print(f"{clean_text!r}: clean {clean_metric:.4f} corrupt {corrupt_metric:.4f} "
              + " ".join(f"{k}={v:.4f}" for k, v in values.items()), file=sys.stderr)

    golden = {
        "model": f"models/{base.GGUF_FILE}",
        "metric": "logit_diff he-she",
        "direction": "noise",
        "notes": (
            "TransformerLens TransformerBridge over the HF float32 dequantization, no weight processing; "
            "token ids without BOS. Each set's sites are patched together in the clean run with the "
            "corrupted run's activations (noise); values are the raw patched metric "
            "logit(positive)-logit(negative) at the last position. 'subject' = the one position where "
            "clean and corrupted ids differ; -1 = last position."
        ),
        "hooks": HOOKS,
        "sets": {k: [list(s) for s in v] for k, v in SETS.items()},
        "versions": base.versions(),
        "pairs": out_pairs,
    }
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {GOLDEN.relative_to(base.ROOT)} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
