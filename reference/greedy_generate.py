#!/usr/bin/env python3
"""Golden greedy continuations from Hugging Face transformers, for `patchsweep generate`.

Run from the repository root (the GGUF must be in models/):

    .venv-ref/bin/python reference/greedy_generate.py

Writes engine/tests/golden/greedy_smollm2.json: for SmolLM2 (the GGUF, dequantized to float32
by transformers; its tokenizer adds no BOS), each prompt's token ids and the 8 token ids of
`generate(do_sample=False, max_new_tokens=8)`. End-of-text does not stop it (patchsweep always
generates the tokens asked for): `eos_token_id` is unset. engine/tests/greedy_parity.rs checks
the engine's KV-cached greedy decode against them.
"""

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
OUT = ROOT / "engine" / "tests" / "golden" / "greedy_smollm2.json"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = ["The nurse said that", "The man said that", "The engineer told the nurse that"]
TOKENS = 8


def main():
    tok = AutoTokenizer.from_pretrained(ROOT / "models", gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(
        ROOT / "models", gguf_file=GGUF_FILE, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    cases = []
    for prompt in PROMPTS:
        ids = tok(prompt)["input_ids"]
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                do_sample=False,
                max_new_tokens=TOKENS,
                min_new_tokens=TOKENS,
                eos_token_id=None,
                pad_token_id=tok.eos_token_id,
            )
        generated = out[0, len(ids):].tolist()
        cases.append(
            {"prompt": prompt, "ids": ids, "generated": generated, "text": tok.decode(generated)}
        )
    versions = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "gguf": importlib.metadata.version("gguf"),
        "python": platform.python_version(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    golden = {"spec": f"gguf:models/{GGUF_FILE}", "versions": versions, "cases": cases}
    OUT.write_text(json.dumps(golden, indent=1) + "\n")
    for c in cases:
        print(f"{c['prompt']!r} -> {c['text']!r} {c['generated']}")


if __name__ == "__main__":
    main()
