#!/usr/bin/env python3
"""Activation/attribution patching throughput on SmolLM2: patchsweep vs TransformerLens
(and plain HF forward hooks), measured in one run on this machine, as ratios.

    .venv-ref/bin/python bench/patching_vs_tl.py [--pairs 16] [--grids resid_pre,head_out_all_pos]

Same grids as TransformerLens' get_act_patch_resid_pre / _attn_out / _mlp_out /
_attn_head_out_all_pos, denoising, logit difference " he" - " she". TransformerLens and HF
run one patched forward per cell, so their patches/s do not depend on the number of pairs;
patchsweep batches cells across pairs, so it is reported for 1 pair and for --pairs pairs.
Needs reference/requirements-tl.txt in .venv-ref and the demo model.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


def patchsweep(n_pairs: int) -> dict:
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "patchsweep-engine", "--example", "bench_patching"],
                   cwd=ROOT, check=True)
    out = subprocess.run([str(ROOT / "target/release/examples/bench_patching"), str(n_pairs)],
                         cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--grids", default="resid_pre,attn_out,mlp_out,head_out_all_pos")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    grids = args.grids.split(",")
    ours1, oursn = patchsweep(1), patchsweep(args.pairs)

    import torch
    import patching_tl as tlb
    torch.set_num_threads(2)
    tl_model, hf_model, clean, corrupt, metric = tlb.load()
    tl = tlb.tl_bench(tl_model, clean, corrupt, metric, grids, args.repeats)
    hf = tlb.hf_hooks_bench(hf_model, clean, corrupt, metric, grids, args.repeats)
    print(json.dumps({"patchsweep_1_pair": ours1, f"patchsweep_{args.pairs}_pairs": oursn, "tl": tl, "hf_hooks": hf}, indent=1))
    print()
    for g in grids:
        a1 = ours1["activation"][g]["patches_per_s"]
        an = oursn["activation"][g]["patches_per_s"]
        at = oursn["attribution"][g]["patches_per_s"]
        t = tl[g]["patches_per_s"]
        h = hf[g]["patches_per_s"]
        print(f"{g:>17}: TL {t:7.1f}/s  HF hooks {h:7.1f}/s | patchsweep activation 1 pair {a1:7.1f}/s ({a1 / t:5.1f}x TL), "
              f"{args.pairs} pairs {an:7.1f}/s ({an / t:5.1f}x TL, {an / h:5.1f}x HF) | attribution {at:8.1f}/s ({at / t:6.1f}x TL)")
    fwd = oursn["forward_ms"]
    per_pair = oursn["attribution"]["resid_attn_mlp_together"]["seconds_per_pair"] * 1e3
    print(f"attribution, resid_pre+attn_out+mlp_out grids of one pair: {per_pair:.0f} ms = {per_pair / fwd:.1f}x one clean forward ({fwd:.0f} ms)")


if __name__ == "__main__":
    main()
