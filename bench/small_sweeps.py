#!/usr/bin/env python3
"""Small sweeps on SmolLM2 (CPU, f32, 2 threads): patchsweep against TransformerLens in one run,
and patchsweep's efficiency against the compute ceiling (issue 16).

    .venv-ref/bin/python bench/small_sweeps.py [--pairs 2,4,16] [--tl-pairs 2]

For each number of pairs (professions, template "said_that", 4 tokens, dataset order):
- `patchsweep run` as a user runs it (release binary, embedded SQLite, whole process: model
  load, prepare, tasks, storage), once with the resid_pre grid and once with the
  three-component grid (resid_pre, attn_out, mlp_out × layers × positions);
- the engine alone (`engine/examples/bench_patching.rs`): the same grids, with small forwards
  packed across start positions (the CPU default) and not (rows of all layers share forwards
  either way), and candle's best f32 matmul rate here;
- TransformerLens (`get_act_patch_resid_pre` & co. over a TransformerBridge, the clean cache
  built inside the timing as patchsweep's tasks do): it runs one forward per cell and pair, so its
  rate does not depend on the number of pairs; it is measured on the first --tl-pairs pairs.

Efficiency = the grid's required FLOPs / the measured seconds / candle's best matmul rate. The
required FLOPs: the clean and corrupted runs of every pair (full forwards) plus, per cell
patched at layer L and position p, blocks L.. over positions p.. (cells before the first
differing token change nothing and cost nothing), each block 2 FLOPs per weight per token plus
its attention products, and the unembedding of the two answer tokens at the last position.
The table gives it twice: against the best rate any run saw (short bursts of several shapes, the
conservative ceiling) and, in brackets, against the rate the model's MLP products sustained in
the same run, right after the grid and for as long as it took. On a shared machine the two differ
by a quarter or more; on a dedicated one they agree.
"""

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "reference"))
BIN = ROOT / "target/release/patchsweep"
EXAMPLE = ROOT / "target/release/examples/bench_patching"
COMPONENTS = ["resid_pre", "attn_out", "mlp_out"]


def build():
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "patchsweep"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "patchsweep-engine", "--example", "bench_patching"],
                   cwd=ROOT, check=True)


def engine(n_pairs, min_tokens=None):
    cmd = [str(EXAMPLE), str(n_pairs)] + ([] if min_tokens is None else [str(min_tokens)])
    return json.loads(subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout)


def spec(n_pairs, components):
    return f"""name = "small-{n_pairs}"
model = "gguf:{ROOT}/models/SmolLM2-135M-Instruct.Q4_1.gguf"

[metric]
kind = "logit_diff"
positive = [" he"]
negative = [" she"]

[dataset]
builtin = "professions"
limit = {n_pairs}

[dataset.professions]
templates = ["said_that"]

[[experiment]]
name = "grid"
method = "activation"
direction = "denoise"
components = {json.dumps(components)}
layers = "all"
positions = "all"
"""


def whole_process(n_pairs, components):
    """Wall seconds of `patchsweep run`, and the patches it stored."""
    work = Path(tempfile.mkdtemp(prefix="small-sweep-"))
    try:
        (work / "s.toml").write_text(spec(n_pairs, components))
        t = time.perf_counter()
        subprocess.run([str(BIN), "run", str(work / "s.toml"), "--db", f"sqlite://{work / 's.db'}"], cwd=ROOT,
                       check=True, capture_output=True, text=True)
        wall = time.perf_counter() - t
        con = sqlite3.connect(work / "s.db")
        patches = con.execute("SELECT COUNT(*) FROM effects_v").fetchone()[0]
        pairs = con.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]
        con.close()
        return {"pairs": pairs, "patches": patches, "seconds": wall, "patches_per_s": patches / wall}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def required_flops(info, grid_components, n_pairs):
    m, T, fd = info["model"], info["tokens"], info["first_diff"]
    d, kv = m["d_model"], m["n_kv_heads"] * m["d_head"]
    q = m["n_heads"] * m["d_head"]
    per_token_block = 2 * (2 * d * q + 2 * d * kv + 3 * d * m["d_mlp"]) + 4 * T * q
    full_forward = m["n_layers"] * T * per_token_block + 2 * d * 2
    cell_blocks = sum((m["n_layers"] - layer) * (T - p) for layer in range(m["n_layers"]) for p in range(fd, T))
    cells_per_pair = m["n_layers"] * T
    per_pair = 2 * full_forward + len(grid_components) * (cell_blocks * per_token_block + cells_per_pair * 4 * d)
    return per_pair * n_pairs


def tl_rate(n_pairs, components):
    """TransformerLens patches/s over the first n_pairs pairs of the same dataset, clean cache
    included in the timing."""
    import torch
    import tl_patching as ref  # sets HF_HUB_OFFLINE / TQDM_DISABLE
    from transformer_lens import patching

    torch.set_num_threads(2)
    tok = ref.load_tokenizer()
    model = ref.load_tl(tok)
    metric = ref.make_metric(*ref.answer_ids(tok))
    fns = {"resid_pre": patching.get_act_patch_resid_pre, "attn_out": patching.get_act_patch_attn_out,
           "mlp_out": patching.get_act_patch_mlp_out}
    jobs = professions_said_that(n_pairs)
    patches, seconds = 0, 0.0
    with torch.inference_mode():
        for clean, corrupt in jobs:
            c, k = torch.tensor([clean]), torch.tensor([corrupt])
            t = time.perf_counter()
            _, cache = model.run_with_cache(c)
            for g in components:
                patches += fns[g](model, k, cache, metric).numel()
            seconds += time.perf_counter() - t
    return {"pairs": len(jobs), "patches": patches, "seconds": seconds, "patches_per_s": patches / seconds}


def professions_said_that(n_pairs):
    """(clean ids, corrupt ids) of the first n pairs patchsweep's professions dataset gives
    (template said_that): the exact tokens a patchsweep run stored."""
    work = Path(tempfile.mkdtemp(prefix="small-sweep-pairs-"))
    try:
        (work / "s.toml").write_text(spec(n_pairs, ["resid_pre"]).replace('layers = "all"', "layers = [0]"))
        subprocess.run([str(BIN), "run", str(work / "s.toml"), "--db", f"sqlite://{work / 's.db'}"], cwd=ROOT,
                       check=True, capture_output=True, text=True)
        con = sqlite3.connect(work / "s.db")
        rows = con.execute("SELECT clean_ids, corrupt_ids FROM pairs ORDER BY pair_id").fetchall()
        con.close()
        return [(json.loads(c), json.loads(k)) for c, k in rows]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", default="2,4,16")
    ap.add_argument("--tl-pairs", type=int, default=2)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        build()
    ns = [int(n) for n in args.pairs.split(",")]
    tl = {"resid_pre": tl_rate(args.tl_pairs, ["resid_pre"]), "components": tl_rate(args.tl_pairs, COMPONENTS)}
    rows, raw = [], {"tl": tl}
    runs = {n: (engine(n), engine(n, 0)) for n in ns}
    # the ceiling: the best matmul rate any run saw (each run measures it; a busy machine lowers it)
    ceiling = max(r["matmul_gflops"] for pair in runs.values() for r in pair)
    for n in ns:
        packed, unpacked = runs[n]
        raw[f"engine_{n}"] = {"packed": packed, "unpacked": unpacked}
        for label, comps in (("resid_pre", ["resid_pre"]), ("components", COMPONENTS)):
            whole = whole_process(n, comps)
            key = "resid_pre" if label == "resid_pre" else "resid_attn_mlp_together"
            eng = packed["activation"][key]
            eng_off = unpacked["activation"][key]
            flops = required_flops(packed, comps, n)
            rows.append({
                "pairs": n, "grid": label, "patches": whole["patches"],
                "whole_process_patches_per_s": whole["patches_per_s"], "whole_process_seconds": whole["seconds"],
                "engine_patches_per_s": eng["patches"] / eng["seconds"],
                "engine_unpacked_patches_per_s": eng_off["patches"] / eng_off["seconds"],
                "tl_patches_per_s": tl[label]["patches_per_s"],
                "ratio_whole_process": whole["patches_per_s"] / tl[label]["patches_per_s"],
                "ratio_engine": eng["patches"] / eng["seconds"] / tl[label]["patches_per_s"],
                "required_gflop": flops / 1e9, "matmul_gflops": ceiling,
                "efficiency_engine": flops / eng["seconds"] / (ceiling * 1e9),
                "efficiency_whole_process": flops / whole["seconds"] / (ceiling * 1e9),
                "matmul_sustained_gflops": packed["matmul_sustained_gflops"],
                "efficiency_engine_sustained": flops / eng["seconds"] / (packed["matmul_sustained_gflops"] * 1e9),
            })
            print(json.dumps(rows[-1]), file=sys.stderr)
    print(json.dumps({"rows": rows, "raw": raw}, indent=1))
    print(f"\ncandle's best f32 matmul here: {rows[0]['matmul_gflops']:.1f} GFLOP/s; TransformerLens measured on "
          f"{tl['resid_pre']['pairs']} pairs")
    print("| pairs | grid | patches | patchsweep whole process /s | engine /s (not packed across positions) | TL /s | ratio whole | "
          "ratio engine | efficiency engine (whole) [engine against the sustained rate] |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['pairs']} | {r['grid']} | {r['patches']} | {r['whole_process_patches_per_s']:.1f} "
              f"| {r['engine_patches_per_s']:.1f} ({r['engine_unpacked_patches_per_s']:.1f}) | {r['tl_patches_per_s']:.1f} "
              f"| {r['ratio_whole_process']:.1f}x | {r['ratio_engine']:.1f}x "
              f"| {r['efficiency_engine']:.0%} ({r['efficiency_whole_process']:.0%}) "
              f"[{r['efficiency_engine_sustained']:.0%} of {r['matmul_sustained_gflops']:.0f} GFLOP/s] |")


if __name__ == "__main__":
    main()
