#!/usr/bin/env python3
"""Logit-lens golden from TransformerLens for SmolLM2-135M (the demo GGUF).

Run from the repository root (needs the reference venv with reference/requirements-tl.txt:
torch 2.15.0, transformers 5.23.0, gguf 0.19.0, transformer-lens 4.3.0):

    .venv-ref/bin/python reference/logit_lens.py

Output (committed): engine/tests/golden/logit_lens.json; engine/tests/logit_lens_parity.rs
compares patchsweep's lens with it (<= 1e-4).

What it does
* Loads the model exactly as reference/tl_patching.py does (its helpers are imported): the
  GGUF dequantized to float32 by transformers, saved once to models/smollm2-dequant/, and
  TransformerLens's `TransformerBridge` booted on that folder without weight processing.
  Token ids are the HF tokenizer's (SmolLM2 adds no BOS), fed as tensors.
* For 3 (clean, corrupt) pairs and each prompt: `run_with_cache`, then
  `cache.accumulated_resid(apply_ln=True, pos_slice=-1)` — the residual stream at the last
  position after the embedding and after every block, each put through the final RMSNorm on
  its own (`apply_ln_to_stack` recomputing the norm's scale per layer) — and the unembedding
  `@ W_U`. Entry 0 (the embedding) is left out, so entry L of the golden is the residual after
  block L (`blocks.L.hook_resid_post`), patchsweep's lens layer L.
* From those logits the three metrics of patchsweep for the answers " he" / " she":
  logit_diff, logprob_diff (log-softmax over the vocabulary) and odds_ratio (p(he) / p(she)).
* Cross-checks: the last layer's lens equals the model's own logits, and a plain-HF lens
  (forward hooks on every decoder layer, `model.model.norm`, `lm_head`) agrees; both maxima
  are printed and written to the golden.

CPU, float32, 1 torch thread, inference mode; deterministic.
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from tl_patching import (  # noqa: E402
    GGUF_FILE,
    NEGATIVE,
    PAIRS,
    POSITIVE,
    ROOT,
    answer_ids,
    ensure_dequant,
    load_gguf_hf,
    load_hf_dequant,
    load_tl,
    token_ids,
    versions,
)

GOLDEN = ROOT / "engine" / "tests" / "golden" / "logit_lens.json"
LENS_PAIRS = PAIRS[:3]


def metrics(logits: torch.Tensor, pos: int, neg: int) -> dict:
    """patchsweep's metrics from last-position logits [layers, vocab] (one answer each side)."""
    logits = logits.double()
    lp = torch.log_softmax(logits, dim=-1)
    return {
        "logit_diff": (logits[:, pos] - logits[:, neg]).tolist(),
        "logprob_diff": (lp[:, pos] - lp[:, neg]).tolist(),
        "odds_ratio": torch.exp(lp[:, pos] - lp[:, neg]).tolist(),
    }


def tl_lens(model, ids: torch.Tensor) -> tuple:
    """(lens logits [n_layers, vocab] after each block, the model's last-position logits)."""
    with torch.inference_mode():
        logits, cache = model.run_with_cache(ids)
        stack = cache.accumulated_resid(layer=None, incl_mid=False, apply_ln=True, pos_slice=-1)
        # [n_layers + 1, batch, d_model]: entry 0 is the embedding.
        lens = stack[1:, 0, :] @ model.W_U
    return lens, logits[0, -1]


def hf_lens(hf, ids: torch.Tensor) -> torch.Tensor:
    """The same lens with plain HF: decoder-layer outputs, model.model.norm, lm_head."""
    outs = []

    def keep(_module, _inputs, output):
        outs.append((output[0] if isinstance(output, tuple) else output)[0, -1])

    handles = [layer.register_forward_hook(keep) for layer in hf.model.layers]
    try:
        with torch.inference_mode():
            hf(ids)
            resid = torch.stack(outs)
            return hf.lm_head(hf.model.norm(resid))
    finally:
        for h in handles:
            h.remove()


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    t0 = time.perf_counter()
    tok, gguf_model = load_gguf_hf()
    ensure_dequant(tok, gguf_model)
    del gguf_model
    model = load_tl(tok)
    hf = load_hf_dequant()
    pos_id, neg_id = answer_ids(tok)
    worst_last, worst_hf = 0.0, 0.0
    out_pairs = []
    for clean_text, corrupt_text in LENS_PAIRS:
        entry = {"clean": clean_text, "corrupt": corrupt_text}
        for side, text in (("clean", clean_text), ("corrupt", corrupt_text)):
            ids_list = token_ids(tok, text)
            ids = torch.tensor([ids_list])
            lens, final = tl_lens(model, ids)
            worst_last = max(worst_last, (lens[-1] - final).abs().max().item())
            worst_hf = max(worst_hf, (hf_lens(hf, ids) - lens).abs().max().item())
            entry[f"{side}_ids"] = ids_list
            entry[side] = metrics(lens, pos_id, neg_id)
        out_pairs.append(entry)
        print(f"{clean_text!r}: logit_diff by layer {[round(v, 3) for v in entry['clean']['logit_diff']]}",
              file=sys.stderr)
    print(f"last-layer lens vs model logits: max abs diff {worst_last:.3e}; "
          f"TL lens vs plain-HF lens: {worst_hf:.3e}", file=sys.stderr)
    assert worst_last < 1e-3 and worst_hf < 1e-3, (worst_last, worst_hf)
    golden = {
        "model": f"models/{GGUF_FILE}",
        "positive": POSITIVE,
        "negative": NEGATIVE,
        "positive_id": pos_id,
        "negative_id": neg_id,
        "notes": (
            "TransformerLens TransformerBridge over the HF float32 dequantization, no weight processing; "
            "token ids without BOS. cache.accumulated_resid(apply_ln=True, pos_slice=-1)[1:] @ W_U: the "
            "residual after block L at the last position through the final RMSNorm (its scale recomputed "
            "per layer) and the unembedding; entry L of each list is layer L. Metrics: logit_diff, "
            "logprob_diff (log-softmax), odds_ratio p(positive)/p(negative)."
        ),
        "n_layers": model.cfg.n_layers,
        "last_layer_vs_logits_max_abs": worst_last,
        "tl_vs_hf_lens_max_abs_logit": worst_hf,
        "versions": versions(),
        "pairs": out_pairs,
    }
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {GOLDEN.relative_to(ROOT)} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
