#!/usr/bin/env python3
"""CPU forward latency of SmolLM2 (the demo GGUF): patchsweep vs Hugging Face transformers,
measured in one run on the same machine, reported as a ratio.

    .venv-ref/bin/python bench/forward_vs_hf.py [--iters 30] [--prompt TEXT]

Needs the reference venv (reference/requirements.txt) and the demo model
(scripts/fetch-demo-model.sh). Medians of --iters runs after warm-up; both sides use every
core (torch's default thread count, candle's rayon pool).
"""
import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def patchsweep(prompt: str, iters: int) -> dict:
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "patchsweep-model", "--example", "bench_forward"],
                   cwd=ROOT, check=True)
    out = subprocess.run([str(ROOT / "target/release/examples/bench_forward"), f"gguf:models/{GGUF}", prompt, str(iters)],
                         cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def hf(prompt: str, iters: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ROOT / "models", gguf_file=GGUF)
    result = {"torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    ids = tok(prompt, return_tensors="pt").input_ids
    result["tokens"] = ids.shape[1]
    for attn in ["eager", "sdpa"]:
        model = AutoModelForCausalLM.from_pretrained(ROOT / "models", gguf_file=GGUF, dtype=torch.float32,
                                                     attn_implementation=attn).eval()
        for keep, name in [(0, "all_positions"), (1, "last_position")]:
            times = []
            with torch.inference_mode():
                for i in range(iters + 3):
                    t = time.perf_counter()
                    model(ids, logits_to_keep=keep, use_cache=False)
                    if i >= 3:
                        times.append((time.perf_counter() - t) * 1e3)
            result[f"{attn}_{name}_ms"] = statistics.median(times)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--prompt", default="The nurse said that")
    args = ap.parse_args()
    ours = patchsweep(args.prompt, args.iters)
    theirs = hf(args.prompt, args.iters)
    print(json.dumps({"patchsweep": ours, "hf": theirs}, indent=1))
    assert ours["tokens"] == theirs["tokens"], "both sides must run the same token ids"
    for name in ["all_positions", "last_position"]:
        for attn in ["eager", "sdpa"]:
            ratio = theirs[f"{attn}_{name}_ms"] / ours[f"{name}_ms"]
            print(f"{name:>14}: patchsweep {ours[f'{name}_ms']:.2f} ms, HF {attn} {theirs[f'{attn}_{name}_ms']:.2f} ms"
                  f" -> patchsweep is {ratio:.2f}x HF {attn}")


if __name__ == "__main__":
    main()
