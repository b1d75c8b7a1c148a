#!/usr/bin/env python3
"""Golden sentence log-likelihoods from Hugging Face transformers, for the benchmark score.

Run from the repository root (the GGUF must be in models/):

    .venv-ref/bin/python reference/sentence_loglik.py

Writes engine/tests/golden/sentence_loglik.json: for SmolLM2 (the GGUF, dequantized to float32
by transformers; its tokenizer adds no BOS) and the tiny random checkpoints tiny-llama2 (its
tokenizer adds BOS) and tiny-mistral (sliding window 4), each sentence's token ids and total
log-likelihood: the sum over every token after the first of log p(token | prefix), from
float32 log-softmax, summed in float64. Each sentence runs alone (no batching, no padding), so
the Rust test checks batching against unbatched runs too. Sentences: the first six CrowS-Pairs
pairs and its longest sentence, the first three WinoBias type-1 dev pairs (brackets and numbers
removed), and a two-word sentence, read from the vendored copies.
"""

import csv
import importlib.metadata
import json
import os
import platform
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "engine" / "data" / "benchmarks"
OUT = ROOT / "engine" / "tests" / "golden" / "sentence_loglik.json"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def sentences():
    with open(BENCH / "crows-pairs" / "crows_pairs_anonymized.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows[:6]:
        out += [r["sent_more"], r["sent_less"]]
    out.append(max((r["sent_more"] for r in rows), key=len))
    wino = BENCH / "winobias"
    for kind in ("pro", "anti"):
        lines = (wino / f"{kind}_stereotyped_type1.txt.dev").read_text().splitlines()[:3]
        out += [" ".join(w.replace("[", "").replace("]", "") for w in line.split()[1:]) for line in lines]
    out.append("He left.")
    return out


def logliks(model, tok, texts):
    result = []
    for text in texts:
        ids = tok(text)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()
        lp = torch.log_softmax(logits[:-1], dim=-1)
        picked = lp.gather(1, torch.tensor(ids[1:]).unsqueeze(1)).squeeze(1)
        result.append({"text": text, "ids": ids, "loglik": float(picked.double().sum())})
    return result


def main():
    texts = sentences()
    models = {}
    tok = AutoTokenizer.from_pretrained(ROOT / "models", gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(
        ROOT / "models", gguf_file=GGUF_FILE, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    models["smollm2"] = {"spec": f"gguf:models/{GGUF_FILE}", "sentences": logliks(model, tok, texts)}
    for name in ("tiny-llama2", "tiny-mistral"):
        path = ROOT / "model" / "tests" / "data" / name
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch.float32, attn_implementation="eager"
        ).eval()
        models[name] = {"spec": f"model/tests/data/{name}", "sentences": logliks(model, tok, texts)}
    versions = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "gguf": importlib.metadata.version("gguf"),
        "python": platform.python_version(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"versions": versions, "models": models}, indent=1) + "\n")
    for name, m in models.items():
        s = m["sentences"]
        print(f"{name}: {len(s)} sentences, first {s[0]['loglik']:.4f} ({len(s[0]['ids'])} tokens)")


if __name__ == "__main__":
    main()
