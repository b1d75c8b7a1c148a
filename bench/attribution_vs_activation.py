#!/usr/bin/env python3
"""How well attribution patching approximates activation patching on a finished sweep:
Pearson correlation per component kind between the two experiments' values for the same
(pair, component, layer, head, position) cells.

    python3 bench/attribution_vs_activation.py [--db sqlite://patchsweep-demo.db]
        [--activation components] [--attribution components-attribution]

Uses `patchsweep query --format json` (build with cargo build --release first); no
third-party Python packages.
"""
import argparse
import json
import math
import subprocess
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pearson(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default="sqlite://patchsweep-demo.db")
    ap.add_argument("--activation", default="components")
    ap.add_argument("--attribution", default="components-attribution")
    args = ap.parse_args()
    sql = (
        "SELECT a.component, a.effect AS act, b.effect AS attr FROM effects_v a JOIN effects_v b "
        "ON a.sweep_id = b.sweep_id AND a.pair_id = b.pair_id AND a.component = b.component "
        "AND a.layer = b.layer AND COALESCE(a.head, -1) = COALESCE(b.head, -1) "
        "AND COALESCE(a.position, -1) = COALESCE(b.position, -1) "
        f"WHERE a.experiment = '{args.activation}' AND b.experiment = '{args.attribution}' "
        "AND a.sweep_id = (SELECT MAX(id) FROM sweeps)"
    )
    out = subprocess.run([str(ROOT / "target/release/patchsweep"), "query", "--db", args.db, "--format", "json", sql],
                         check=True, capture_output=True, text=True, cwd=ROOT)
    rows = json.loads(out.stdout)
    by = defaultdict(lambda: ([], []))
    for r in rows:
        by[r["component"]][0].append(r["act"])
        by[r["component"]][1].append(r["attr"])
    result = {c: {"cells": len(a), "pearson_r": round(pearson(a, b), 4)} for c, (a, b) in sorted(by.items())}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
