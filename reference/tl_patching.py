#!/usr/bin/env python3
"""Activation-patching goldens from TransformerLens for SmolLM2-135M (the demo GGUF).

Run from the repository root (needs the reference venv with reference/requirements-tl.txt):

    .venv-ref/bin/python reference/tl_patching.py

Output (committed): engine/tests/golden/tl_patching_smollm2.json

What it does
* Loads `models/SmolLM2-135M-Instruct.Q4_1.gguf` with Hugging Face transformers (dequantized to
  float32, eager attention), writes that float32 model once to the git-ignored folder
  `models/smollm2-dequant/` (a GGUF-loaded model cannot be `save_pretrained`-ed directly, so the
  weights are copied into a plain LlamaForCausalLM first), and boots TransformerLens's
  `TransformerBridge.boot_transformers` from that folder. The bridge keeps raw HF weights (no
  LayerNorm folding, no centering), so its logits equal HF's; the script checks and prints this.
* Tokens are the HF tokenizer's ids (SmolLM2 adds no BOS) and are fed to TL as tensors, so TL
  never prepends a BOS.
* For each (clean, corrupt) pair, denoising patching with `transformer_lens.patching`:
  run the corrupted tokens, patch one activation from the clean cache, record the raw metric
  logit(" he") - logit(" she") at the last position (not normalized).
    resid_pre        get_act_patch_resid_pre               blocks.L.hook_resid_pre  [layer][pos]
    attn_out         get_act_patch_attn_out                blocks.L.hook_attn_out   [layer][pos]
    mlp_out          get_act_patch_mlp_out                 blocks.L.hook_mlp_out    [layer][pos]
    head_out_all_pos get_act_patch_attn_head_out_all_pos   blocks.L.attn.hook_z     [layer][head]
      (hook_z is [batch, pos, n_heads=9, d_head=64], the per-head attention output before o_proj;
       one head is patched at every position at once)

CPU, float32, 1 torch thread by default (--threads), inference mode; deterministic. ~10 min on
one busy core (about 3,600 patched forwards at ~0.15 s).
"""

import importlib.metadata
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "models"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEQUANT_DIR = MODELS_DIR / "smollm2-dequant"
GOLDEN = ROOT / "engine" / "tests" / "golden" / "tl_patching_smollm2.json"

PAIRS = [
    ("The nurse said that", "The man said that"),
    ("The engineer said that", "The woman said that"),
    ("The secretary wished that", "The man wished that"),
    ("The mechanic ran because", "The woman ran because"),
    ("The teacher was promoted because", "The man was promoted because"),
]
POSITIVE = " he"
NEGATIVE = " she"

GRIDS = ["resid_pre", "attn_out", "mlp_out", "head_out_all_pos"]


def versions() -> dict:
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "transformer_lens": importlib.metadata.version("transformer-lens"),
        "gguf": importlib.metadata.version("gguf"),
        "python": platform.python_version(),
    }


def load_gguf_hf():
    """(tokenizer, HF model) straight from the GGUF, float32, eager attention."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(MODELS_DIR, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(
        MODELS_DIR, gguf_file=GGUF_FILE, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    return tok, model


def ensure_dequant(tok=None, gguf_model=None) -> Path:
    """Write the dequantized float32 model to models/smollm2-dequant/ (once)."""
    if (DEQUANT_DIR / "model.safetensors").exists():
        return DEQUANT_DIR
    from transformers import LlamaForCausalLM

    if gguf_model is None:
        tok, gguf_model = load_gguf_hf()
    cfg = gguf_model.config.__class__.from_dict(gguf_model.config.to_dict())
    if hasattr(cfg, "quantization_config"):
        delattr(cfg, "quantization_config")
    plain = LlamaForCausalLM(cfg)
    plain.load_state_dict(gguf_model.state_dict())
    plain.save_pretrained(DEQUANT_DIR)
    tok.save_pretrained(DEQUANT_DIR)
    return DEQUANT_DIR


def load_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ensure_dequant())


def load_hf_dequant():
    """Plain HF model from the dequantized folder (eager attention), for the hooks baseline."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        ensure_dequant(), dtype=torch.float32, attn_implementation="eager"
    ).eval()


def load_tl(tok=None):
    """TransformerBridge over the dequantized folder: raw HF weights, no weight processing."""
    from transformer_lens.model_bridge import TransformerBridge

    if tok is None:
        tok = load_tokenizer()
    bridge = TransformerBridge.boot_transformers(
        str(ensure_dequant()), tokenizer=tok, dtype=torch.float32, device="cpu"
    )
    bridge.eval()
    return bridge


def token_ids(tok, text: str) -> list:
    return tok(text).input_ids  # add_special_tokens default; SmolLM2 adds no BOS


def answer_ids(tok):
    pos, neg = token_ids(tok, POSITIVE), token_ids(tok, NEGATIVE)
    assert len(pos) == 1 and len(neg) == 1, (pos, neg)
    return pos[0], neg[0]


def make_metric(pos_id: int, neg_id: int):
    def logit_diff(logits: torch.Tensor) -> torch.Tensor:
        return logits[0, -1, pos_id] - logits[0, -1, neg_id]

    return logit_diff


def tl_grids(model, clean: torch.Tensor, corrupt: torch.Tensor, metric, grids=GRIDS) -> dict:
    """Denoising grids with transformer_lens.patching; returns {grid: tensor}."""
    from transformer_lens import patching

    fns = {
        "resid_pre": patching.get_act_patch_resid_pre,
        "attn_out": patching.get_act_patch_attn_out,
        "mlp_out": patching.get_act_patch_mlp_out,
        "head_out_all_pos": patching.get_act_patch_attn_head_out_all_pos,
    }
    with torch.inference_mode():
        _, clean_cache = model.run_with_cache(clean)
        return {g: fns[g](model, corrupt, clean_cache, metric) for g in grids}


def main():
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 default: on a shared, busy 2-core box 2 threads is 2-4x slower)")
    torch.set_num_threads(ap.parse_args().threads)
    torch.use_deterministic_algorithms(True)
    t0 = time.perf_counter()

    tok, gguf_model = load_gguf_hf()
    ensure_dequant(tok, gguf_model)
    model = load_tl(tok)
    pos_id, neg_id = answer_ids(tok)
    metric = make_metric(pos_id, neg_id)

    # 1. TL logits == HF (GGUF-loaded) logits, no BOS on either side.
    ids = torch.tensor([token_ids(tok, PAIRS[0][0])])
    with torch.inference_mode():
        hf_logits = gguf_model(ids).logits
        tl_logits = model(ids)
    tl_vs_hf = (tl_logits - hf_logits).abs().max().item()
    print(f"TL vs HF logits on {PAIRS[0][0]!r} {ids.tolist()}: max abs diff {tl_vs_hf:.3e}", file=sys.stderr)
    assert tl_vs_hf < 1e-3, tl_vs_hf
    del gguf_model

    # 2. hook_z (all heads, all positions) and hook_attn_out patching must agree: proves the
    #    bridge's hook_z feeds o_proj (a patch there is not silently dropped).
    c = torch.tensor([token_ids(tok, PAIRS[0][0])])
    x = torch.tensor([token_ids(tok, PAIRS[0][1])])
    with torch.inference_mode():
        _, cc = model.run_with_cache(c)
        L = 3

        def put(name):
            return lambda act, hook: cc[name].clone()

        m_z = metric(model.run_with_hooks(x, fwd_hooks=[(f"blocks.{L}.attn.hook_z", put(f"blocks.{L}.attn.hook_z"))]))
        m_a = metric(model.run_with_hooks(x, fwd_hooks=[(f"blocks.{L}.hook_attn_out", put(f"blocks.{L}.hook_attn_out"))]))
    print(f"check layer {L}: patch all hook_z -> {m_z.item():.6f}, patch all hook_attn_out -> {m_a.item():.6f}",
          file=sys.stderr)
    assert abs(m_z.item() - m_a.item()) < 1e-3

    out_pairs = []
    for clean_text, corrupt_text in PAIRS:
        t = time.perf_counter()
        clean_ids, corrupt_ids = token_ids(tok, clean_text), token_ids(tok, corrupt_text)
        assert len(clean_ids) == len(corrupt_ids), (clean_text, corrupt_text, clean_ids, corrupt_ids)
        assert 4 <= len(clean_ids) <= 5
        clean = torch.tensor([clean_ids])
        corrupt = torch.tensor([corrupt_ids])
        with torch.inference_mode():
            clean_metric = metric(model(clean)).item()
            corrupt_metric = metric(model(corrupt)).item()
        res = tl_grids(model, clean, corrupt, metric)
        diff_pos = [i for i, (a, b) in enumerate(zip(clean_ids, corrupt_ids)) if a != b]
        # Sanity: with a single differing token, patching resid_pre at layer 0 at that position
        # makes the corrupted run the clean run -> exactly clean_metric.
        if len(diff_pos) == 1:
            v = res["resid_pre"][0, diff_pos[0]].item()
            print(f"  sanity {clean_text!r}: resid_pre[0][{diff_pos[0]}] = {v:.6f} vs clean {clean_metric:.6f}",
                  file=sys.stderr)
            assert abs(v - clean_metric) < 1e-3
        out_pairs.append({
            "clean": clean_text,
            "corrupt": corrupt_text,
            "clean_ids": clean_ids,
            "corrupt_ids": corrupt_ids,
            "positive_id": pos_id,
            "negative_id": neg_id,
            "clean_metric": clean_metric,
            "corrupt_metric": corrupt_metric,
            **{g: res[g].tolist() for g in GRIDS},
        })
        print(f"{clean_text!r} / {corrupt_text!r}: clean {clean_metric:.4f} corrupt {corrupt_metric:.4f} "
              f"({time.perf_counter() - t:.1f}s)", file=sys.stderr)

    golden = {
        "model": f"models/{GGUF_FILE}",
        "metric": "logit_diff he-she",
        "direction": "denoise",
        "notes": (
            "TransformerLens TransformerBridge over the HF float32 dequantization, no weight processing; "
            "token ids without BOS; values are the raw patched metric logit(positive)-logit(negative) at the "
            "last position (not normalized). resid_pre/attn_out/mlp_out: [layer][pos], one position patched "
            "at blocks.L.hook_resid_pre / hook_attn_out (o_proj output) / hook_mlp_out (down_proj output). "
            "head_out_all_pos: [layer][head], blocks.L.attn.hook_z (per-head attention output before o_proj, "
            "query heads) patched at all positions."
        ),
        "hooks": {
            "resid_pre": "blocks.{layer}.hook_resid_pre",
            "attn_out": "blocks.{layer}.hook_attn_out",
            "mlp_out": "blocks.{layer}.hook_mlp_out",
            "head_out_all_pos": "blocks.{layer}.attn.hook_z",
        },
        "n_layers": model.cfg.n_layers,
        "n_heads": model.cfg.n_heads,
        "tl_vs_hf_max_abs_logit_diff": tl_vs_hf,
        "versions": versions(),
        "pairs": out_pairs,
    }
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {GOLDEN.relative_to(ROOT)} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
