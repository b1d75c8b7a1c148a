#!/usr/bin/env python3
"""Compare `patchsweep logits --json` with Hugging Face transformers on any prompts, for
checking parity on prompts that are not in the committed goldens.

    .venv-ref/bin/python reference/compare_logits.py "Some prompt" "Another prompt" ...
    .venv-ref/bin/python reference/compare_logits.py --model model/tests/data/tiny-qwen2 "x y z"

Prints, per prompt, whether the token ids agree, whether the top-5 ids agree, and the max
absolute logit error over patchsweep's top-k; exits non-zero past --tol.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("prompts", nargs="+")
    ap.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--top-k", type=int, default=20)
    ap.add_argument("--tol", type=float, default=1e-3)
    args = ap.parse_args()
    path = ROOT / args.model
    if path.suffix == ".gguf":
        kw = dict(gguf_file=path.name)
        src, spec = path.parent, f"gguf:{path}"
    else:
        kw, src, spec = {}, path, str(path)
    tok = AutoTokenizer.from_pretrained(src, **kw)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="eager", **kw).eval()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    worst = 0.0
    ok = True
    for prompt in args.prompts:
        ids = tok(prompt).input_ids
        with torch.inference_mode():
            hf = model(torch.tensor([ids])).logits[0, -1]
        out = subprocess.run([str(ROOT / "target/release/patchsweep"), "logits", "--model", spec, "--prompt", prompt,
                              "--top-k", str(args.top_k), "--json"], check=True, capture_output=True, text=True)
        ours = json.loads(out.stdout)
        our_ids = [t["id"] for t in ours["tokens"]]
        err = max(abs(t["logit"] - hf[t["id"]].item()) for t in ours["top"])
        top5_hf = torch.topk(hf, 5).indices.tolist()
        top5_ours = [t["id"] for t in ours["top"][:5]]
        worst = max(worst, err)
        good = our_ids == ids and top5_hf == top5_ours and err <= args.tol
        ok &= good
        print(f"{'ok ' if good else 'BAD'} tokens={'same' if our_ids == ids else 'DIFFERENT'} "
              f"top5={'same' if top5_hf == top5_ours else 'DIFFERENT'} max|err|={err:.2e}  {prompt!r}")
    print(f"worst max|logit error| {worst:.2e} over {len(args.prompts)} prompts")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
