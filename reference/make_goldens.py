#!/usr/bin/env python3
"""Generate tiny random-weight checkpoints and golden JSON files from Hugging Face transformers.

Run from the repository root:

    .venv-ref/bin/python reference/make_goldens.py

Outputs (all committed):
    model/tests/data/<tiny-name>/   config.json, model.safetensors, tokenizer.json, tokenizer_config.json
    model/tests/golden/<name>.json  token ids, top-20 last-position logits, hook norms/slices

Everything is float32, eager attention, fixed seeds, 2 CPU threads.
"""

import importlib.metadata
import json
import os
import platform
import shutil
import sys
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "model" / "tests" / "data"
GOLDEN_DIR = ROOT / "model" / "tests" / "golden"
MODELS_DIR = ROOT / "models"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

TOP_K = 20
SLICE_LEN = 8

VERSIONS = {
    "torch": torch.__version__,
    "transformers": transformers.__version__,
    "gguf": importlib.metadata.version("gguf"),
    "python": platform.python_version(),
}

# ---------------------------------------------------------------------------------------------
# Tiny tokenizer
# ---------------------------------------------------------------------------------------------

TRAIN_SENTENCES = [
    "The nurse said that the doctor would arrive soon.",
    "The engineer said that the bridge was safe.",
    "The man said that he was tired.",
    "The woman said that she was happy.",
    "A quick brown fox jumps over the lazy dog.",
    "In the morning the sun rises in the east.",
    "She sells sea shells by the sea shore.",
    "He walked to the store and bought some bread.",
    "They said that the weather would be nice today.",
    "The cat sat on the mat and looked at the bird.",
    "We went to the park to play with the ball.",
    "The children were reading books in the library.",
    "Music makes the people come together.",
    "The teacher asked the students to open their books.",
    "There are seven days in a week and twelve months in a year.",
    "The river flows from the mountains to the sea.",
    "I think that this is a good idea.",
    "You should try to finish the work before dinner.",
    "The train was late because of the snow.",
    "Please close the door when you leave the room.",
    "My friend likes to cook pasta on the weekend.",
    "The old house on the hill was empty for years.",
    "Birds sing in the trees when the spring comes.",
    "The president said that the meeting was over.",
    "Water boils at one hundred degrees.",
    "The moon is bright tonight, and the stars are out.",
    "Reading is a way to learn about the world.",
    "The scientist said that the results were clear.",
    "It was the best of times, it was the worst of times.",
    "All that glitters is not gold.",
    "The painter said that the colors were wrong.",
    "Hello world! How are you doing today?",
]

BOS, EOS = "<s>", "</s>"
TINY_VOCAB = 300


def build_tokenizer(add_bos: bool) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB,
        special_tokens=[BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TRAIN_SENTENCES, trainer=trainer)
    assert tok.token_to_id(BOS) == 0 and tok.token_to_id(EOS) == 1
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, 0)]
        )
    return tok


def wrap_tokenizer(tok: Tokenizer, add_bos: bool):
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        add_bos_token=add_bos,
        add_eos_token=False,
    )


# ---------------------------------------------------------------------------------------------
# Tiny models
# ---------------------------------------------------------------------------------------------


def common_cfg(vocab: int) -> dict:
    return dict(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=None,
        attn_implementation="eager",
        dtype="float32",
    )


def tiny_specs(vocab: int):
    return {
        "tiny-llama2": dict(
            cls=LlamaForCausalLM,
            config=LlamaConfig(
                **common_cfg(vocab),
                num_hidden_layers=2,
                num_key_value_heads=4,
                rope_theta=10000.0,
                tie_word_embeddings=False,
            ),
            add_bos=True,
        ),
        "tiny-llama3": dict(
            cls=LlamaForCausalLM,
            config=LlamaConfig(
                **common_cfg(vocab),
                num_hidden_layers=2,
                num_key_value_heads=2,
                head_dim=8,
                rope_theta=500000.0,
                rope_scaling={
                    "rope_type": "llama3",
                    "factor": 8.0,
                    "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 16,
                },
                tie_word_embeddings=False,
            ),
            add_bos=True,
        ),
        "tiny-mistral": dict(
            cls=MistralForCausalLM,
            config=MistralConfig(
                **common_cfg(vocab),
                num_hidden_layers=3,
                num_key_value_heads=2,
                head_dim=8,
                rope_theta=10000.0,
                sliding_window=4,
                tie_word_embeddings=False,
            ),
            add_bos=True,
        ),
        "tiny-qwen2": dict(
            cls=Qwen2ForCausalLM,
            config=Qwen2Config(
                **common_cfg(vocab),
                num_hidden_layers=2,
                num_key_value_heads=2,
                rope_theta=10000.0,
                use_sliding_window=False,
                sliding_window=None,
                tie_word_embeddings=True,
            ),
            add_bos=False,
        ),
    }


def randomize(model: torch.nn.Module) -> None:
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied params appear once
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape))
            else:
                p.copy_(0.3 * torch.randn(p.shape))


TINY_PROMPTS = [
    "The nurse said that",
    "Hi",
    "The quick brown fox jumps over the lazy dog and the cat sat on the mat.",
    "Hello world! 123",
]

SMOL_PROMPTS = [
    "The nurse said that",
    "The engineer said that",
    "The man said that",
    "The woman said that",
    "In 2024 there were 365 days and 12 months",
    "Hello, World! Is THIS (really) the U.S.A.? Yes: it's 'fine'...",
    "Once upon a time, in a small village at the edge of a great forest, there lived an old "
    "woodcutter and his daughter, who spent her days exploring the hills and rivers nearby.",
    "Café naïve résumé — ok",
    "<|im_start|>user\nHello<|im_end|>",
    "When Mary and John went to the store, John gave a drink to",
    "  leading spaces and\ttabs\n\nnewlines",
    "x",
]


# ---------------------------------------------------------------------------------------------
# Hook capture
# ---------------------------------------------------------------------------------------------


def first_arg(args, kwargs, key="hidden_states"):
    if args:
        return args[0]
    return kwargs[key]


def first_out(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def register_hooks(model, layers, store):
    handles = []
    dec_layers = model.model.layers
    for L in layers:
        layer = dec_layers[L]

        def mk_pre(name):
            def hook(_m, args, kwargs):
                store[name] = first_arg(args, kwargs).detach().clone()

            return hook

        def mk_post(name):
            def hook(_m, _args, _kwargs, out):
                store[name] = first_out(out).detach().clone()

            return hook

        handles.append(
            layer.register_forward_pre_hook(mk_pre(f"blocks.{L}.hook_resid_pre"), with_kwargs=True)
        )
        handles.append(
            layer.register_forward_hook(mk_post(f"blocks.{L}.hook_resid_post"), with_kwargs=True)
        )
        handles.append(
            layer.self_attn.register_forward_hook(mk_post(f"blocks.{L}.hook_attn_out"), with_kwargs=True)
        )
        handles.append(layer.mlp.register_forward_hook(mk_post(f"blocks.{L}.hook_mlp_out"), with_kwargs=True))
        handles.append(
            layer.self_attn.o_proj.register_forward_pre_hook(mk_pre(f"blocks.{L}.attn.hook_z"), with_kwargs=True)
        )
        handles.append(
            layer.mlp.down_proj.register_forward_pre_hook(mk_pre(f"blocks.{L}.mlp.hook_post"), with_kwargs=True)
        )
    return handles


HOOK_ORDER = ["hook_resid_pre", "hook_attn_out", "attn.hook_z", "mlp.hook_post", "hook_mlp_out", "hook_resid_post"]


def run_prompt(model, token_ids, layers):
    store = {}
    handles = register_hooks(model, layers, store)
    try:
        with torch.no_grad():
            out = model(input_ids=torch.tensor([token_ids], dtype=torch.long), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    logits = out.logits[0, -1].float()
    assert logits.dtype == torch.float32
    vals, idx = torch.topk(logits, TOP_K)
    top = [{"id": int(i), "logit": float(v)} for v, i in zip(vals.tolist(), idx.tolist())]
    hooks = {}
    n = len(token_ids)
    for L in layers:
        for h in HOOK_ORDER:
            name = f"blocks.{L}.{h}"
            t = store[name]
            assert t.dtype == torch.float32, (name, t.dtype)
            assert t.shape[0] == 1 and t.shape[1] == n, (name, t.shape)
            t = t[0].reshape(n, -1)  # [pos, ...] -> [pos, d]
            norms = torch.linalg.vector_norm(t.double(), dim=-1)
            hooks[name] = {
                "norms": [float(x) for x in norms.tolist()],
                "last_slice": [float(x) for x in t[-1, :SLICE_LEN].tolist()],
            }
    return out.logits[0].float(), top, hooks


def make_golden(name, source, model, tokenizer, prompts, layers, raw_tok=None):
    model.eval()
    records = []
    for text in prompts:
        ids = tokenizer(text)["input_ids"]
        ids = [int(i) for i in ids]
        if raw_tok is not None:
            raw_ids = raw_tok.encode(text).ids
            assert raw_ids == ids, (name, text, raw_ids, ids)
        _, top, hooks = run_prompt(model, ids, layers)
        records.append({"text": text, "token_ids": ids, "top_logits": top, "hooks": hooks})
    golden = {"model": name, "source": source, "versions": VERSIONS, "prompts": records}
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    path = GOLDEN_DIR / f"{name}.json"
    with open(path, "w") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")
    maxlog = max(abs(r["top_logits"][0]["logit"]) for r in records)
    print(f"[{name}] wrote {path.relative_to(ROOT)} ({path.stat().st_size} B); "
          f"max top-1 |logit| {maxlog:.3f}; token counts {[len(r['token_ids']) for r in records]}")
    return golden


def add_legacy_rope_keys(path: Path) -> None:
    """transformers 5 writes only `rope_parameters`; also write the transformers-4 style top-level
    `rope_theta` / `rope_scaling` keys (same values) so that Rust config parsers expecting the
    classic layout read the same rope settings. transformers 5 reloads this identically (asserted)."""
    cfg = json.loads(path.read_text())
    rp = dict(cfg["rope_parameters"])
    cfg["rope_theta"] = rp.pop("rope_theta")
    if rp.get("rope_type", "default") != "default":
        cfg["rope_scaling"] = rp
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


KEEP_FILES = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}


def make_tiny(name, spec):
    out_dir = DATA_DIR / name
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)

    raw_tok = build_tokenizer(spec["add_bos"])
    vocab = raw_tok.get_vocab_size()
    cfg = spec["config"]
    assert cfg.vocab_size == vocab
    torch.manual_seed(0)
    model = spec["cls"](cfg).to(torch.float32).eval()
    randomize(model)

    model.save_pretrained(out_dir, safe_serialization=True)
    hf_tok = wrap_tokenizer(raw_tok, spec["add_bos"])
    hf_tok.save_pretrained(out_dir)
    for p in out_dir.iterdir():
        if p.name not in KEEP_FILES:
            p.unlink()
    add_legacy_rope_keys(out_dir / "config.json")

    # Reload from disk to make sure the golden reflects exactly the committed files.
    model = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32, attn_implementation="eager").eval()
    assert model.config.rope_parameters == cfg.rope_parameters, (model.config.rope_parameters, cfg.rope_parameters)
    print(f"[{name}] reloaded rope_parameters {model.config.rope_parameters}; "
          f"rotary rope_type {model.model.rotary_emb.rope_type}; sliding_window {getattr(model.config, 'sliding_window', None)}")
    tok = AutoTokenizer.from_pretrained(out_dir)
    file_tok = Tokenizer.from_file(str(out_dir / "tokenizer.json"))
    layers = list(range(cfg.num_hidden_layers))
    make_golden(name, f"model/tests/data/{name}", model, tok, TINY_PROMPTS, layers, raw_tok=file_tok)

    all_logits = model(input_ids=torch.tensor([tok(TINY_PROMPTS[2])["input_ids"]])).logits
    print(f"[{name}] max |logit| over all positions of long prompt: {all_logits.abs().max().item():.3f}; "
          f"folder size {sum(p.stat().st_size for p in out_dir.iterdir())} B")

    if name == "tiny-mistral":
        check_sliding_window(out_dir, tok)
    return model


def check_sliding_window(out_dir, tok):
    ids = torch.tensor([tok(TINY_PROMPTS[2])["input_ids"]])
    n = ids.shape[1]
    with_sw = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32, attn_implementation="eager").eval()
    assert with_sw.config.sliding_window == 4
    cfg = MistralConfig.from_pretrained(out_dir)
    cfg.sliding_window = None
    no_sw = AutoModelForCausalLM.from_pretrained(
        out_dir, config=cfg, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    with torch.no_grad():
        a = with_sw(input_ids=ids).logits[0]
        b = no_sw(input_ids=ids).logits[0]
    diff = (a - b).abs().max(dim=-1).values
    print(f"[tiny-mistral] sliding-window check ({n} tokens): max|logit diff| per position = "
          f"{[round(x, 4) for x in diff.tolist()]}")
    assert diff.max() > 1e-3, "sliding window 4 had no effect in eager mode!"
    first = int((diff > 0).nonzero()[0])
    print(f"[tiny-mistral] sliding window IS applied by HF eager attention; first differing position = {first} "
          f"(position p attends to keys k with p - k < {first})")


# ---------------------------------------------------------------------------------------------
# SmolLM2 (GGUF)
# ---------------------------------------------------------------------------------------------


def reverse_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    # inverse of llama.cpp convert_hf_to_gguf permute()
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def check_qk_permutation(model):
    import gguf

    reader = gguf.GGUFReader(str(MODELS_DIR / GGUF_FILE))
    tensors = {t.name: t for t in reader.tensors}
    cfg = model.config
    for gname, hname, nh in [
        ("blk.0.attn_q.weight", "q_proj", cfg.num_attention_heads),
        ("blk.0.attn_k.weight", "k_proj", cfg.num_key_value_heads),
        ("blk.0.attn_v.weight", "v_proj", cfg.num_key_value_heads),
    ]:
        t = tensors[gname]
        raw = gguf.quants.dequantize(t.data, t.tensor_type).reshape(
            [int(x) for x in reversed(t.shape.tolist())]
        ).astype(np.float32)
        hf = getattr(model.model.layers[0].self_attn, hname).weight.detach().numpy()
        eq_raw = np.array_equal(hf, raw)
        eq_rev = np.array_equal(hf, reverse_permute(raw, nh))
        print(f"[smollm2] {gname} ({t.tensor_type.name}, shape {list(raw.shape)}): HF == raw gguf: {eq_raw}; "
              f"HF == reverse_permute(raw, {nh}): {eq_rev}")


def make_smollm2():
    tok = AutoTokenizer.from_pretrained(MODELS_DIR, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(
        MODELS_DIR, gguf_file=GGUF_FILE, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    print(f"[smollm2] model class {type(model).__name__}, tokenizer class {type(tok).__name__}")
    print(f"[smollm2] config: {model.config.to_diff_dict()}")
    bt = tok.backend_tokenizer
    print(f"[smollm2] normalizer: {bt.normalizer}")
    print(f"[smollm2] pre_tokenizer: {bt.pre_tokenizer}")
    print(f"[smollm2] post_processor: {bt.post_processor}")
    print(f"[smollm2] decoder: {bt.decoder}")
    print(f"[smollm2] model: {type(bt.model).__name__} vocab {bt.get_vocab_size()} "
          f"bos={tok.bos_token!r}/{tok.bos_token_id} eos={tok.eos_token!r}/{tok.eos_token_id} "
          f"add_bos={getattr(tok, 'add_bos_token', None)}")
    print(f"[smollm2] added/special tokens: {len(bt.get_added_tokens_decoder())}: "
          f"{[t.content for t in list(bt.get_added_tokens_decoder().values())[:20]]}")
    check_qk_permutation(model)
    for p in SMOL_PROMPTS:
        ids = tok(p)["input_ids"]
        print(f"[smollm2] tokens {p!r}: {ids} -> {tok.convert_ids_to_tokens(ids)}")

    mid = model.config.num_hidden_layers // 2
    layers = [0, mid, model.config.num_hidden_layers - 1]
    golden = make_golden("smollm2", f"models/{GGUF_FILE}", model, tok, SMOL_PROMPTS, layers)
    top = golden["prompts"][0]["top_logits"][:5]
    print("[smollm2] top-5 after 'The nurse said that':",
          [(t["id"], tok.decode([t["id"]]), round(t["logit"], 3)) for t in top])


def main():
    print("versions:", VERSIONS)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    vocab = build_tokenizer(True).get_vocab_size()
    for name, spec in tiny_specs(vocab).items():
        make_tiny(name, spec)
    if "--tiny-only" not in sys.argv:
        make_smollm2()


if __name__ == "__main__":
    main()
