#!/usr/bin/env python3
"""GPU activation/attribution patching benchmark: patchsweep vs a PyTorch peer on a
LLaMA-2-7B-shaped model with random weights (issue 7). Made for the device machine (no
network; nvcc, PyTorch, transformers, tokenizers, safetensors there), testable on a CPU
with a tiny configuration.

    # device machine (H200), with the stripped CUDA build of patchsweep carried along:
    python3 bench/gpu_patching.py --binary bench/gpu/patchsweep-cuda.xz --workdir /tmp/gpubench
    # here, on the CPU, against the debug build:
    python bench/gpu_patching.py --tiny --device cpu --dtype f32 --binary target/debug/patchsweep

What it does
 1. Writes a small byte-level BPE tokenizer (trained with `tokenizers` on the professions
    templates; " he", " she", " man", " woman" and every profession are single tokens; BOS
    "<s>" = 1 is prepended like LLaMA's), and a LLaMA-2-7B-shaped LlamaForCausalLM
    (32 layers, d_model 4096, 32 heads, d_mlp 11008, vocab 32000, untied) with random
    weights from --seed, in --dtype, as a Hugging Face folder (config.json, safetensors
    shards + index, tokenizer.json) under --workdir/model. --tiny: 2 layers, d_model 64.
 2. Runs `patchsweep run SPEC --db sqlite://...` on that folder (device/dtype from the
    flags): activation patching (denoise) of resid_pre, attn_out, mlp_out x layers x
    positions and head_out x layers x heads (all positions jointly), and attribution patching
    of the same grids; a warm-up sweep first (one pair, one layer) so that the timed sweep
    does not pay for CUDA's PTX JIT. patches/s = patches / seconds summed over the sweep's
    patch tasks (tasks_v; a task's seconds include its clean/corrupted cache runs, not the
    model load). GPU memory: nvidia-smi sampled every 100 ms, minus the level before start.
 3. Runs the peer: the same grids with Hugging Face transformers and forward hooks (what
    TransformerLens' patching functions do, one patched forward per grid cell), batched over
    all pairs (one forward per cell gives every pair's value), clean activations cached once
    (inside the timing, as in patchsweep's tasks); and attribution patching with one clean
    forward, one corrupted forward and one backward. Peak memory: torch.cuda.max_memory_allocated.
    TransformerLens is not in the device image, so the peer is plain HF hooks.
 4. Compares the effects (patched metric - corrupted metric, metric = logit(" he") -
    logit(" she") at the last position) cell by cell and prints patches/s of each, the
    ratio, attribution time, peak memory, and the agreement. Writes --workdir/results.json.

Agreement: |effect_patchsweep - effect_peer| <= atol + rtol * |effect_peer|; with f32,
atol = 1e-3, rtol = 1e-3. With bf16 the two sides are compared the same way (atol = 0.02 *
max |clean - corrupt| + 0.02, rtol = 0.05), but that is not the pass criterion: two correct
bf16 implementations of a 32-layer network already differ by ~0.16 in their unpatched metrics
(the H200 run of 2026-12-01), and an effect is a difference of two such metrics.

The bf16 criterion (5.): the peer runs activation patching once more in f32 on the same bf16
weights, upcast (exactly representable): the reference. Each bf16 side's error against it is
measured per cell (max, 99th percentile, RMS); patchsweep passes when its RMS error is at most
1.25 times the peer's (plus 1e-4 x (1 + max |reference effect|), so that two exact runs pass)
on every grid, i.e. its bf16 numerics are as good as PyTorch's own. --no-reference skips it;
--reference-always runs it in f32 too (a check of the script on a CPU, where patchsweep has
no bf16); --self-test checks the criterion on synthetic values.
"""

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

TEMPLATES = [  # the four-word professions templates (Vig et al. 2020): equal token counts
    "The {} said that", "The {} yelled that", "The {} whispered that", "The {} wanted that",
    "The {} desired that", "The {} wished that", "The {} ate because", "The {} ran because",
    "The {} drove because", "The {} slept because", "The {} cried because",
    "The {} laughed because", "The {} yelled because",
]
# profession, counterfactual (female-stereotyped -> "man", male-stereotyped -> "woman")
PROFESSIONS = [
    ("nurse", "man"), ("engineer", "woman"), ("secretary", "man"), ("carpenter", "woman"),
    ("receptionist", "man"), ("mechanic", "woman"), ("librarian", "man"), ("surgeon", "woman"),
    ("housekeeper", "man"), ("firefighter", "woman"), ("hairdresser", "man"), ("pilot", "woman"),
    ("nanny", "man"), ("plumber", "woman"), ("dancer", "man"), ("banker", "woman"),
]
GRIDS = ["resid_pre", "attn_out", "mlp_out", "head_out"]

LLAMA2_7B = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096)
TINY = dict(vocab_size=1024, hidden_size=64, intermediate_size=172, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# 1. tokenizer, pairs, model folder


def build_tokenizer(vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    words = ["he", "she", "him", "her", "his", "man", "woman"] + [p for pair in PROFESSIONS for p in pair]
    corpus = [t.format(p) + " " + a for t in TEMPLATES for p in words for a in ("he", "she")]
    corpus += [" ".join(words)] * 50
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=min(vocab_size, 1000), special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    assert tok.token_to_id("<s>") == 1
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    for w in [" he", " she"] + [" " + p for pair in PROFESSIONS for p in pair]:
        ids = tok.encode(w, add_special_tokens=False).ids
        assert len(ids) == 1, f"{w!r} is not a single token: {ids}"
    assert tok.get_vocab_size() <= vocab_size
    return tok


def make_pairs(tok, n):
    """n (clean, corrupt) pairs with equal token counts, professions cycled over templates."""
    pairs = []
    for i in range(n):
        t = TEMPLATES[i % len(TEMPLATES)]
        prof, cf = PROFESSIONS[i % len(PROFESSIONS)]
        clean, corrupt = t.format(prof), t.format(cf)
        a, b = tok.encode(clean).ids, tok.encode(corrupt).ids
        if len(a) == len(b):
            pairs.append({"id": f"p{i:03d}", "clean": clean, "corrupt": corrupt, "clean_ids": a, "corrupt_ids": b})
    lengths = {len(p["clean_ids"]) for p in pairs}
    assert len(lengths) == 1, f"pairs of several token lengths: {lengths}"
    return pairs


def torch_dtype(name):
    import torch
    return {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[name]


def build_model_folder(folder, shape, dtype, device, seed, tok):
    """Random-weight LlamaForCausalLM saved as a HF folder; returns nothing (frees the model)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    marker = folder / "BUILT.json"
    want = {"shape": shape, "dtype": dtype, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()) == want:
        log(f"model folder {folder} already built, reused")
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    cfg = LlamaConfig(**shape, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                      bos_token_id=1, eos_token_id=2, pad_token_id=None, hidden_act="silu",
                      attention_bias=False, mlp_bias=False)
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype(dtype))
    try:
        with torch.device(device):
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(prev)
    model = model.to(torch_dtype(dtype)).eval()
    n_params = sum(p.numel() for p in model.parameters())
    log(f"random model: {n_params / 1e9:.2f} B parameters in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    # 4 GB shards + model.safetensors.index.json (the tiny model: 200 KB shards, same layout)
    model.save_pretrained(folder, max_shard_size="200KB" if shape["hidden_size"] < 256 else "4GB")
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "add_bos_token": True}))
    log(f"saved to {folder} in {time.perf_counter() - t0:.1f} s: {sorted(p.name for p in folder.iterdir())}")
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    marker.write_text(json.dumps(want))


# ---------------------------------------------------------------------------------------------
# 2. patchsweep


def spec_text(name, folder, device, dtype, batch, pairs, layers="all", grids=GRIDS, attribution=True):
    """One experiment per grid and method (so each grid is timed on its own); `batch` None
    leaves batch_size unset: a GPU worker plans it from its free memory."""
    lines = [f'name = "{name}"', f'model = "{folder}"', f'device = "{device}"', f'dtype = "{dtype}"']
    if batch is not None:
        lines.append(f"batch_size = {batch}")
    lines += ["",
             "[tasks]", f"pairs_per_task = {len(pairs)}", "layers_per_task = 0", "",
             "[metric]", 'kind = "logit_diff"', 'positive = [" he"]', 'negative = [" she"]', "",
             "[dataset]", "pairs = ["]
    for p in pairs:
        lines.append(f'  {{ id = "{p["id"]}", clean = "{p["clean"]}", corrupt = "{p["corrupt"]}" }},')
    lines.append("]")
    layers_toml = f'"{layers}"' if isinstance(layers, str) else json.dumps(layers)
    methods = ["activation", "attribution"] if attribution else ["activation"]
    for method in methods:
        for g in grids:
            positions = "joint" if g == "head_out" else "all"
            lines += ["", "[[experiment]]", f'name = "{method}-{g}"', f'method = "{method}"',
                      'direction = "denoise"', f'components = ["{g}"]',
                      f"layers = {layers_toml}", f'positions = "{positions}"']
    return "\n".join(lines) + "\n"


def cuda_lib_env(binary):
    """LD_LIBRARY_PATH additions so that the binary finds libcudart/cublas/curand/nvrtc/cuda."""
    env = dict(os.environ)
    try:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return env
    missing = [l.split()[0] for l in out.splitlines() if "not found" in l]
    if not missing:
        return env
    roots = ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/local/nvidia/lib64",
             "/usr/local/nvidia/lib", "/usr/lib/x86_64-linux-gnu"]
    try:
        import nvidia  # the pip CUDA wheels next to torch
        for base in nvidia.__path__:
            for lib in Path(base).glob("*/lib"):
                roots.append(str(lib))
    except ImportError:
        pass
    found = []
    for so in missing:
        for r in roots:
            if (Path(r) / so).exists():
                found.append(r)
                break
        else:
            hit = search_lib(so)
            if hit:
                found.append(hit)
            elif so.startswith("libcurand"):  # candle links cuRAND but these runs never call it
                found.append(stub_lib(binary, so, "curand"))
            else:
                log(f"warning: {so} not found in {roots}, /usr/local or /opt")
    extra = list(dict.fromkeys(f for f in found if f))
    env["LD_LIBRARY_PATH"] = ":".join(extra + [env.get("LD_LIBRARY_PATH", "")]).rstrip(":")
    log(f"LD_LIBRARY_PATH += {extra} for {missing}")
    return env


def search_lib(so):
    """First folder under /usr/local, /opt or /usr/lib holding `so`, or None."""
    for top in ("/usr/local", "/opt", "/usr/lib"):
        for dirpath, dirnames, filenames in os.walk(top):
            if so in filenames:
                return dirpath
    return None


def stub_lib(binary, so, prefix):
    """A shared library named `so` defining the binary's undefined `prefix*` symbols (gcc)."""
    try:
        nm = subprocess.run(["nm", "-D", "--undefined-only", str(binary)], capture_output=True, text=True).stdout
        syms = sorted({l.split()[-1].split("@")[0] for l in nm.splitlines() if l.split() and l.split()[-1].startswith(prefix)})
        d = Path(binary).parent / "stub-libs"
        d.mkdir(exist_ok=True)
        (d / "stub.c").write_text("".join(f"int {n}(void){{return 0;}}\n" for n in syms))  # 0: success
        subprocess.run(["gcc", "-shared", "-fPIC", f"-Wl,-soname,{so}", "-o", str(d / so), str(d / "stub.c")], check=True)
        log(f"warning: {so} not found; stubbed {len(syms)} symbols in {d / so} (never called by these runs)")
        return str(d)
    except Exception as e:
        log(f"warning: {so} not found and no stub ({e})")
        return None


class GpuMemSampler:
    """Max of nvidia-smi memory.used (MiB) sampled every 100 ms while running, and the GPU
    utilisation (% of time a kernel ran) of those samples."""

    def __init__(self, enabled):
        self.enabled = enabled and shutil.which("nvidia-smi") is not None
        self.samples, self.util, self.stop = [], [], threading.Event()

    def read(self):
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used,utilization.gpu", "--format=csv,noheader,nounits",
                              "-i", "0"], capture_output=True, text=True, timeout=10).stdout
        used, util = (float(v) for v in out.replace(",", " ").split()[:2])
        self.util.append(util)
        return used

    def utilization(self):
        """Mean and max utilisation over the samples taken while the GPU held more than the
        level before start plus 1 GiB (the model loaded), or None."""
        busy = [u for m, u in zip(self.samples, self.util[1:]) if m > self.base + 1024]
        return {"mean": sum(busy) / len(busy), "max": max(busy), "samples": len(busy)} if busy else None

    def __enter__(self):
        if self.enabled:
            try:
                self.base = self.read()
            except Exception as e:  # no readable GPU: no memory figure
                log(f"nvidia-smi unreadable ({e}); no patchsweep memory figure")
                self.enabled = False
                return self
            self.thread = threading.Thread(target=self._loop, daemon=True)
            self.thread.start()
        return self

    def _loop(self):
        while not self.stop.is_set():
            try:
                self.samples.append(self.read())
            except Exception:
                pass
            self.stop.wait(0.1)

    def __exit__(self, *exc):
        if self.enabled:
            self.stop.set()
            self.thread.join()

    def peak_gib(self):
        if not self.enabled or not self.samples:
            return None
        return (max(self.samples) - self.base) / 1024


def run_patchsweep(binary, spec, db, env, sample_gpu, timeout):
    if db.exists():
        db.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    cmd = [str(binary), "run", str(spec), "--db", f"sqlite://{db}", "--top", "3"]
    log("$ " + " ".join(cmd))
    t0 = time.perf_counter()
    with GpuMemSampler(sample_gpu) as mem:
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            sys.stderr.write(str(e.stderr or "")[-8000:])
            raise RuntimeError(f"patchsweep run took over {timeout} s (--ps-timeout)")
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise RuntimeError(f"patchsweep run failed with {proc.returncode}: {proc.stderr[-2000:]}")
    util = mem.utilization() if mem.enabled else None
    if util:
        log(f"GPU utilisation while the model was loaded (nvidia-smi): {util}")
    return wall, mem.peak_gib(), util, proc.stderr


def worker_log_figures(stderr):
    """The worker's planned rows per forward and its CUDA pool high-water mark (info logs)."""
    import re

    rows = [int(m) for m in re.findall(r"rows=(\d+)[^\n]*planned the rows", stderr)]
    rows += [int(m) for m in re.findall(r"planned the rows[^\n]*rows=(\d+)", stderr)]
    peaks = [int(m) for m in re.findall(r"peak_bytes=(\d+)", stderr)]
    return {"planned_rows": sorted(set(rows)), "pool_peak_gib": max(peaks) / 2**30 if peaks else None}


def read_patchsweep(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    tasks = [dict(r) for r in con.execute(
        "SELECT kind, description, state, patches, seconds, error FROM tasks_v ORDER BY task_id")]
    bad = [t for t in tasks if t["state"] != "done"]
    if bad:
        raise RuntimeError(f"patchsweep tasks not done: {bad}")
    effects = {}
    for r in con.execute("SELECT experiment, component, layer, head, position, pair_id, value, effect FROM effects_v"):
        effects[(r["experiment"], r["component"], r["layer"], r["head"], r["position"], r["pair_id"])] = r["effect"]
    pairs = {r["pair_id"]: dict(r) for r in con.execute(
        "SELECT pair_id, clean_ids, corrupt_ids, clean_metric, corrupt_metric FROM pairs")}
    con.close()
    timing = {}  # "activation", "attribution" and "activation-resid_pre", ...
    for t in tasks:
        if t["kind"] != "patch":
            continue
        exp = t["description"].split(" ")[0]
        for key in (exp.split("-")[0], exp):
            e = timing.setdefault(key, {"patches": 0, "seconds": 0.0, "tasks": 0})
            e["patches"] += t["patches"]
            e["seconds"] += t["seconds"]
            e["tasks"] += 1
    for e in timing.values():
        e["patches_per_s"] = e["patches"] / e["seconds"] if e["seconds"] else None
    return effects, pairs, timing, tasks


# ---------------------------------------------------------------------------------------------
# 3. the PyTorch peer (HF transformers + forward hooks)


class Peer:
    def __init__(self, folder, device, dtype, tok):
        import torch
        from transformers import LlamaForCausalLM

        self.torch, self.device = torch, device
        t0 = time.perf_counter()
        try:  # straight onto the GPU where accelerate is installed
            self.model = LlamaForCausalLM.from_pretrained(folder, dtype=torch_dtype(dtype), device_map=device)
        except Exception as e:
            log(f"from_pretrained(device_map={device!r}) failed ({e}); loading on the CPU first")
            self.model = LlamaForCausalLM.from_pretrained(folder, dtype=torch_dtype(dtype)).to(device)
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        log(f"peer model loaded in {time.perf_counter() - t0:.1f} s")
        cfg = self.model.config
        self.n_layers, self.n_heads = cfg.num_hidden_layers, cfg.num_attention_heads
        self.d_head = cfg.hidden_size // cfg.num_attention_heads
        self.he = tok.encode(" he", add_special_tokens=False).ids[0]
        self.she = tok.encode(" she", add_special_tokens=False).ids[0]

    def sync(self):
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()

    def site(self, grid, layer):
        """(module, 'pre' = its first input | 'out' = its output)."""
        blk = self.model.model.layers[layer]
        return {"resid_pre": (blk, "pre"), "attn_out": (blk.self_attn, "out"),
                "mlp_out": (blk.mlp, "out"), "head_out": (blk.self_attn.o_proj, "pre")}[grid]

    def metric(self, tokens):
        """[batch] logit(he) - logit(she) at the last position, in f32."""
        try:
            logits = self.model(tokens, use_cache=False, logits_to_keep=1).logits
        except TypeError:
            logits = self.model(tokens, use_cache=False).logits
        last = logits[:, -1].float()
        return last[:, self.he] - last[:, self.she]

    def capture(self, tokens, grids, grad=False):
        """Activations at every (grid, layer) site of one forward; with grad, the live tensors
        with .retain_grad() (their .grad is set by a backward of the returned metric)."""
        acts, handles = {}, []
        for g in grids:
            for l in range(self.n_layers):
                mod, kind = self.site(g, l)

                def pre(m, args, kwargs, key=(g, l)):
                    x = args[0] if args else kwargs["hidden_states"]
                    if grad:
                        x.retain_grad()
                        acts[key] = x
                    else:
                        acts[key] = x.detach().clone()

                def out(m, args, output, key=(g, l)):
                    x = output[0] if isinstance(output, tuple) else output
                    if grad:
                        x.retain_grad()
                        acts[key] = x
                    else:
                        acts[key] = x.detach().clone()

                handles.append(mod.register_forward_pre_hook(pre, with_kwargs=True) if kind == "pre"
                               else mod.register_forward_hook(out))
        if grad:  # the weights need no gradient: start the graph at the embeddings
            handles.append(self.model.model.embed_tokens.register_forward_hook(
                lambda m, args, output: output.detach().requires_grad_(True)))
        try:
            m = self.metric(tokens)
        finally:
            for h in handles:
                h.remove()
        return m, acts

    def activation(self, clean, corrupt, grids):
        """{grid: tensor [layers, positions|heads, pairs] of patched metric}, baseline, timing."""
        torch = self.torch

        def patch_pre(idx, src):
            def hook(m, args, kwargs):
                x = (args[0] if args else kwargs["hidden_states"]).clone()
                x[idx] = src[idx]
                return ((x,) + tuple(args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": x})
            return hook

        def patch_out(idx, src):
            def hook(m, args, output):
                x = (output[0] if isinstance(output, tuple) else output).clone()
                x[idx] = src[idx]
                return (x,) + tuple(output[1:]) if isinstance(output, tuple) else x
            return hook

        T = clean.shape[1]
        values, timing = {}, {}
        with torch.inference_mode():
            self.metric(corrupt)  # warm-up
            self.sync()
            corrupt_m = self.metric(corrupt)
            for g in grids:
                self.sync()
                t0 = time.perf_counter()
                _, cache = self.capture(clean, [g])
                inner = self.n_heads if g == "head_out" else T
                out = torch.zeros(self.n_layers, inner, clean.shape[0], device=clean.device)
                for l in range(self.n_layers):
                    mod, kind = self.site(g, l)
                    src = cache[(g, l)]
                    for i in range(inner):
                        idx = ((slice(None), slice(None), slice(i * self.d_head, (i + 1) * self.d_head))
                               if g == "head_out" else (slice(None), i))
                        h = (mod.register_forward_pre_hook(patch_pre(idx, src), with_kwargs=True) if kind == "pre"
                             else mod.register_forward_hook(patch_out(idx, src)))
                        try:
                            out[l, i] = self.metric(corrupt)
                        finally:
                            h.remove()
                self.sync()
                secs = time.perf_counter() - t0
                values[g] = (out - corrupt_m).cpu()
                n = out.numel()
                timing[g] = {"patches": n, "forwards": self.n_layers * inner, "seconds": secs, "patches_per_s": n / secs}
                log(f"peer activation {g}: {timing[g]}")
        return values, timing

    def attribution(self, clean, corrupt, grids):
        """{grid: tensor [layers, positions|heads, pairs] of estimated effects}, seconds."""
        torch = self.torch
        self.sync()
        t0 = time.perf_counter()
        with torch.inference_mode():
            _, clean_acts = self.capture(clean, grids)
        with torch.enable_grad():
            m, acts = self.capture(corrupt, grids, grad=True)
            m.sum().backward()
        est = {}
        with torch.no_grad():
            for g in grids:
                rows = []
                for l in range(self.n_layers):
                    a = acts[(g, l)]
                    d = (clean_acts[(g, l)].float() - a.detach().float()) * a.grad.float()  # [B, T, D]
                    if g == "head_out":
                        B, T, _ = d.shape
                        rows.append(d.view(B, T, self.n_heads, self.d_head).sum(dim=(1, 3)).T)  # [heads, B]
                    else:
                        rows.append(d.sum(-1).T)  # [T, B]
                est[g] = torch.stack(rows).cpu()
        self.sync()
        secs = time.perf_counter() - t0
        log(f"peer attribution, all grids: {secs:.3f} s")
        return est, secs


# ---------------------------------------------------------------------------------------------
# 4. comparison


def ps_tensor(ps_effects, exp, g, like, pair_ids):
    """patchsweep's effects of grid `g` laid out as the peer's [layer, position|head, pair]
    tensor `like`; NaN where patchsweep stored none."""
    import torch

    L, I, _ = like.shape
    ours = torch.full_like(like, float("nan"))
    for l in range(L):
        for i in range(I):
            for p, pid in enumerate(pair_ids):
                if g == "head_out":
                    key = (f"{exp}-{g}", g, l, i, None, pid)
                else:
                    key = (f"{exp}-{g}", g, l, None, i, pid)
                v = ps_effects.get(key)
                if v is not None:
                    ours[l, i, p] = v
    return ours


def compare(ps_effects, exp, peer_values, grids, pair_ids, dtype, gap):
    import torch

    atol, rtol = (0.02 * gap + 0.02, 0.05) if dtype != "f32" else (1e-3, 1e-3)
    out = {}
    for g in grids:
        pv = peer_values[g]
        ours = ps_tensor(ps_effects, exp, g, pv, pair_ids)
        have = ~torch.isnan(ours)
        diff = (ours - pv).abs()
        ok = (diff <= atol + rtol * pv.abs()) | ~have
        a, b = ours[have].double(), pv[have].double()
        corr = float(torch.corrcoef(torch.stack([a, b]))[0, 1]) if a.numel() > 1 and a.std() > 0 and b.std() > 0 else None
        out[g] = {"cells": int(pv.numel()), "missing_in_patchsweep": int((~have).sum()),
                  "max_abs_diff": float(diff[have].max()) if have.any() else None,
                  "max_abs_effect": float(pv.abs().max()), "pearson": corr,
                  "within_tolerance": float(ok.float().mean()), "atol": atol, "rtol": rtol}
    return out


# The bf16 pass criterion: patchsweep's RMS error against the f32 reference at most this many
# times the peer's (a tie within noise passes; a kernel that loses precision does not).
RMS_RATIO_LIMIT = 1.25


def error_stats(values, reference):
    import torch

    have = ~torch.isnan(values)
    d = (values[have].double() - reference[have].double()).abs()
    if d.numel() == 0:
        return {"max": None, "p99": None, "rms": None, "cells": 0}
    return {"max": float(d.max()), "p99": float(torch.quantile(d, 0.99)),
            "rms": float(d.pow(2).mean().sqrt()), "cells": int(d.numel())}


def against_reference(ps_effects, peer_values, ref_values, grids, pair_ids):
    """Per grid: the error of each bf16 side against the f32 reference, and the verdict."""
    out = {}
    for g in grids:
        ref = ref_values[g]
        ours = error_stats(ps_tensor(ps_effects, "activation", g, ref, pair_ids), ref)
        theirs = error_stats(peer_values[g], ref)
        ratio = (ours["rms"] / theirs["rms"]) if ours["rms"] is not None and theirs["rms"] else None
        floor = 1e-4 * (1.0 + float(ref.abs().max()))
        passed = (ours["rms"] is not None and theirs["rms"] is not None
                  and ours["cells"] == ref.numel()
                  and ours["rms"] <= RMS_RATIO_LIMIT * theirs["rms"] + floor)
        out[g] = {"patchsweep": ours, "peer": theirs, "rms_ratio": ratio,
                  "max_abs_reference_effect": float(ref.abs().max()), "pass": passed}
    return out


def self_test():
    """The bf16 criterion on synthetic values: a side as close as the peer passes, one twice
    as far fails, missing cells fail, two exact runs pass."""
    import torch

    gen = torch.Generator().manual_seed(0)
    ref = torch.randn(3, 4, 2, generator=gen, dtype=torch.float64)
    peer = ref + 0.05 * torch.randn(3, 4, 2, generator=gen, dtype=torch.float64)
    ids = ["p0", "p1"]

    def effects(values, drop=0):
        out = {}
        for l in range(3):
            for i in range(4):
                for p, pid in enumerate(ids):
                    out[("activation-resid_pre", "resid_pre", l, None, i, pid)] = float(values[l, i, p])
        for key in list(out)[:drop]:
            del out[key]
        return out

    same = ref + 0.05 * torch.randn(3, 4, 2, generator=gen, dtype=torch.float64)
    worse = ref + 0.12 * torch.randn(3, 4, 2, generator=gen, dtype=torch.float64)
    check = lambda vals, drop=0, peer_vals=peer: against_reference(
        effects(vals, drop), {"resid_pre": peer_vals}, {"resid_pre": ref}, ["resid_pre"], ids)["resid_pre"]
    assert check(same)["pass"], check(same)
    assert not check(worse)["pass"], check(worse)
    assert not check(same, drop=1)["pass"], "a missing cell must fail"
    assert check(ref, peer_vals=ref)["pass"], "two exact runs pass"
    print("self-test: the bf16 criterion passes a peer-like side, fails a worse one, a missing cell, "
          "and passes two exact runs")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default="target/release/patchsweep", help="the patchsweep binary (CUDA build on the GPU; .xz is unpacked)")
    ap.add_argument("--workdir", default="/tmp/patchsweep-gpubench")
    ap.add_argument("--tiny", action="store_true", help="2 layers, d_model 64: a quick check of the script")
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f16", "f32"])
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=None,
                    help="patchsweep rows per batched forward (default: unset, planned from free GPU memory)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grids", default=",".join(GRIDS))
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--skip-patchsweep", action="store_true")
    ap.add_argument("--ps-timeout", type=float, default=360, help="seconds allowed to each patchsweep run")
    ap.add_argument("--no-warmup", action="store_true", help="skip patchsweep's warm-up sweep")
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the f32 reference run of the peer (the bf16 pass criterion)")
    ap.add_argument("--reference-always", action="store_true",
                    help="run the f32 reference in f32 too (checks the script on a CPU)")
    ap.add_argument("--self-test", action="store_true", help="check the bf16 criterion and exit")
    args = ap.parse_args()
    if args.self_test:
        self_test()
        return

    import torch

    grids = args.grids.split(",")
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    folder = work / ("model-tiny" if args.tiny else "model-llama2-7b-shape")
    shape = TINY if args.tiny else LLAMA2_7B
    cuda = args.device.startswith("cuda")
    results = {"args": vars(args), "shape": shape, "versions": {"torch": torch.__version__}}
    if cuda:
        results["gpu"] = torch.cuda.get_device_name(0)

    tok = build_tokenizer(shape["vocab_size"])
    pairs = make_pairs(tok, args.pairs)
    pair_ids = [p["id"] for p in pairs]
    results["pairs"] = len(pairs)
    results["tokens_per_prompt"] = len(pairs[0]["clean_ids"])
    results["first_diff"] = min(next(i for i, (a, b) in enumerate(zip(p["clean_ids"], p["corrupt_ids"])) if a != b)
                                for p in pairs)
    log(f"{len(pairs)} pairs of {results['tokens_per_prompt']} tokens, e.g. {pairs[0]['clean']!r} / {pairs[0]['corrupt']!r}")
    build_model_folder(folder, shape, args.dtype, args.device, args.seed, tok)

    ps_effects = None
    try:
        if not args.skip_patchsweep:
            ps_effects = patchsweep_side(args, work, folder, pairs, grids, cuda, results)
    except Exception as e:  # still run the peer: one device run should give all it can
        log(f"patchsweep side failed: {e}")
        results["patchsweep_error"] = str(e)

    if not args.skip_peer:
        peer_side(args, folder, tok, pairs, pair_ids, grids, cuda, results, ps_effects)

    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    summarize(results, work / "results.json")


def unpack_binary(path, work):
    """An .xz-compressed binary (what the device tool carries: <= 64 MiB) is unpacked first."""
    path = Path(path).resolve()
    if path.suffix != ".xz":
        return path
    import lzma

    out = work / path.stem
    with lzma.open(path) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    out.chmod(0o755)
    log(f"unpacked {path} to {out} ({out.stat().st_size / 2**20:.0f} MiB)")
    return out


def patchsweep_side(args, work, folder, pairs, grids, cuda, results):
    binary = unpack_binary(args.binary, work)
    env = cuda_lib_env(binary) if cuda else dict(os.environ)
    env.setdefault("RUST_LOG", "warn,patchsweep_worker=info")
    env.setdefault("CUDA_CACHE_MAXSIZE", str(4 << 30))  # keep the warm-up's PTX JIT results
    if not args.no_warmup:
        spec = work / "warmup.toml"
        spec.write_text(spec_text("gpu-bench-warmup", folder, args.device, args.dtype, args.batch_size,
                                  pairs[:1], layers=[0]))
        wall, _, _, _ = run_patchsweep(binary, spec, work / "warmup.db", env, False, args.ps_timeout)
        log(f"patchsweep warm-up sweep: {wall:.1f} s wall")
    spec = work / "bench.toml"
    spec.write_text(spec_text("gpu-bench", folder, args.device, args.dtype, args.batch_size, pairs, grids=grids))
    wall, peak, util, stderr = run_patchsweep(binary, spec, work / "bench.db", env, cuda, args.ps_timeout)
    ps_effects, ps_pairs, timing, tasks = read_patchsweep(work / "bench.db")
    for p in pairs:  # the peer is fed exactly the ids patchsweep stored
        stored = ps_pairs[p["id"]]
        assert json.loads(stored["clean_ids"]) == p["clean_ids"], (p, stored)
        assert json.loads(stored["corrupt_ids"]) == p["corrupt_ids"], (p, stored)
    results["patchsweep"] = {"wall_s": wall, "peak_gpu_mem_gib_nvidia_smi": peak, "timing": timing,
                             "worker": worker_log_figures(stderr),
                             "gpu_utilization_nvidia_smi": util,
                             "tasks": tasks,
                             "baselines": {k: [v["clean_metric"], v["corrupt_metric"]] for k, v in ps_pairs.items()}}
    log(f"patchsweep: {wall:.1f} s wall, timing {timing}, peak GPU memory {peak} GiB")
    return ps_effects


def peer_side(args, folder, tok, pairs, pair_ids, grids, cuda, results, ps_effects):
    import torch

    dev = torch.device(args.device)
    peer = Peer(folder, args.device, args.dtype, tok)
    clean = torch.tensor([p["clean_ids"] for p in pairs], device=dev)
    corrupt = torch.tensor([p["corrupt_ids"] for p in pairs], device=dev)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        clean_m, corrupt_m = peer.metric(clean).cpu(), peer.metric(corrupt).cpu()
    act_vals, act_timing = peer.activation(clean, corrupt, grids)
    attr_vals, attr_secs = peer.attribution(clean, corrupt, grids)
    total_p = sum(t["patches"] for t in act_timing.values())
    total_s = sum(t["seconds"] for t in act_timing.values())
    results["peer"] = {
        "kind": "transformers + forward hooks",
        "activation": act_timing, "activation_total": {"patches": total_p, "seconds": total_s,
                                                       "patches_per_s": total_p / total_s},
        "attribution_seconds": attr_secs,
        "attribution_patches_per_s": sum(v.numel() for v in attr_vals.values()) / attr_secs,
        "peak_gpu_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "baselines": {pid: [float(c), float(k)] for pid, c, k in zip(pair_ids, clean_m, corrupt_m)},
    }
    if ps_effects is not None:
        gap = float((clean_m - corrupt_m).abs().max())
        results["agreement_activation"] = compare(ps_effects, "activation", act_vals, grids, pair_ids, args.dtype, gap)
        base = results["patchsweep"]["baselines"]
        results["baseline_max_abs_diff"] = max(
            max(abs(base[pid][0] - float(c)), abs(base[pid][1] - float(k)))
            for pid, c, k in zip(pair_ids, clean_m, corrupt_m))
        # attribution estimates: same first-order formula, compared loosely (correlation)
        results["agreement_attribution"] = compare(ps_effects, "attribution", attr_vals, grids, pair_ids,
                                                   args.dtype, gap)
    if ps_effects is not None and (args.dtype != "f32" or args.reference_always) and not args.no_reference:
        # The f32 reference on the same weights, after the peer's peak memory was read.
        del peer
        if cuda:
            torch.cuda.empty_cache()
        ref = Peer(folder, args.device, "f32", tok)
        t0 = time.perf_counter()
        ref_vals, _ = ref.activation(clean, corrupt, grids)
        log(f"f32 reference activation patching: {time.perf_counter() - t0:.1f} s")
        results["reference_f32"] = against_reference(ps_effects, act_vals, ref_vals, grids, pair_ids)


H200_BF16_DATASHEET = 989e12  # dense bf16 FLOP/s (vendor datasheet)
H200_BF16_MEASURED = 790e12  # an 8192^3 bf16 product through PyTorch on this kind of machine


def required_flops(shape, grid, n_tokens, first_diff, n_pairs):
    """FLOPs activation patching of `grid` needs at least: every cell runs blocks L.. over the
    positions from its patch on (positions before the first differing token change nothing;
    head_out is patched at every position jointly), 2 FLOPs per weight per token plus the
    attention products; the unembedding of one position is left out (it is tiny)."""
    d, dm, nl = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    kv = d * shape["num_key_value_heads"] // shape["num_attention_heads"]
    per_token_block = 2 * (2 * d * d + 2 * d * kv + 3 * d * dm) + 4 * n_tokens * d
    token_blocks = 0
    for layer in range(nl):
        if grid == "head_out":
            token_blocks += shape["num_attention_heads"] * (nl - layer) * (n_tokens - first_diff)
        else:
            token_blocks += sum((nl - layer) * (n_tokens - p) for p in range(first_diff, n_tokens))
    return token_blocks * per_token_block * n_pairs


def grid_table(r):
    """Per grid: patches/s of each side, the ratio, agreement and patchsweep's FLOP rate."""
    ps, peer = r.get("patchsweep") or {}, r.get("peer") or {}
    rows = []
    for g in r["args"]["grids"].split(","):
        mine = ps.get("timing", {}).get(f"activation-{g}", {})
        theirs = peer.get("activation", {}).get(g, {})
        agree = r.get("agreement_activation", {}).get(g, {})
        flops = required_flops(r["shape"], g, r["tokens_per_prompt"], r["first_diff"], r["pairs"])
        row = {"grid": g, "patches": mine.get("patches") or theirs.get("patches"),
               "patchsweep_patches_per_s": mine.get("patches_per_s"),
               "peer_patches_per_s": theirs.get("patches_per_s"),
               "required_tflop": flops / 1e12,
               "max_abs_diff": agree.get("max_abs_diff"), "within_tolerance": agree.get("within_tolerance")}
        if row["patchsweep_patches_per_s"] and row["peer_patches_per_s"]:
            row["ratio"] = row["patchsweep_patches_per_s"] / row["peer_patches_per_s"]
        if mine.get("seconds"):
            row["patchsweep_tflop_per_s"] = flops / mine["seconds"] / 1e12
            row["patchsweep_mfu_datasheet"] = flops / mine["seconds"] / H200_BF16_DATASHEET
            row["patchsweep_mfu_measured_peak"] = flops / mine["seconds"] / H200_BF16_MEASURED
        if theirs.get("seconds"):
            row["peer_tflop_per_s"] = flops / theirs["seconds"] / 1e12
        rows.append(row)
    return rows


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def summarize(r, path):
    print(f"\n== GPU patching benchmark: {r.get('gpu', 'cpu')}, {r['args']['dtype']}, "
          f"{r['shape']['num_hidden_layers']} layers x d_model {r['shape']['hidden_size']}, "
          f"{r['pairs']} pairs x {r['tokens_per_prompt']} tokens ==")
    ps, peer = r.get("patchsweep"), r.get("peer")
    if ps:
        a = ps["timing"].get("activation", {})
        b = ps["timing"].get("attribution", {})
        print(f"patchsweep activation : {a.get('patches')} patches in {a.get('seconds', 0):.2f} s = "
              f"{a.get('patches_per_s') or 0:.1f} patches/s")
        print(f"patchsweep attribution: {b.get('patches')} estimates in {b.get('seconds', 0):.2f} s")
        print(f"patchsweep run wall   : {ps['wall_s']:.1f} s (model load included); peak GPU memory "
              f"(nvidia-smi): {ps['peak_gpu_mem_gib_nvidia_smi']} GiB")
    if peer:
        t = peer["activation_total"]
        print(f"peer ({peer['kind']}) activation: {t['patches']} patches in {t['seconds']:.2f} s = "
              f"{t['patches_per_s']:.1f} patches/s")
        print(f"peer attribution      : {peer['attribution_seconds']:.3f} s; peak GPU memory "
              f"(max_memory_allocated): {peer['peak_gpu_mem_gib']} GiB")
    if r.get("patchsweep_error"):
        print(f"patchsweep FAILED: {r['patchsweep_error']}")
    if ps and peer and ps["timing"].get("activation"):
        ratio = ps["timing"]["activation"]["patches_per_s"] / peer["activation_total"]["patches_per_s"]
        print(f"activation patches/s ratio patchsweep / peer: {ratio:.2f}x")
        r["ratio"] = ratio
    if "agreement_activation" in r:
        print(f"baselines (clean/corrupt metric) max |diff|: {r['baseline_max_abs_diff']:.4g}")
        for name in ("agreement_activation", "agreement_attribution"):
            for g, a in r[name].items():
                print(f"{name[10:]:>11} {g:>9}: max|diff| {a['max_abs_diff']:.4g} (max|effect| {a['max_abs_effect']:.4g}), "
                      f"pearson {a['pearson'] if a['pearson'] is None else round(a['pearson'], 5)}, "
                      f"within tol {a['within_tolerance']:.3f}, missing {a['missing_in_patchsweep']}")
        ok = all(a["within_tolerance"] == 1.0 and a["missing_in_patchsweep"] == 0
                 for a in r["agreement_activation"].values())
        print(f"activation patching agrees within tolerance: {ok}")
        r["agree"] = ok
    if "reference_f32" in r:
        print(f"\nbf16 against the f32 reference (the peer in f32 on the same weights): pass when "
              f"patchsweep's RMS error <= {RMS_RATIO_LIMIT} x the peer's")
        print("| grid | patchsweep max / p99 / RMS error | peer max / p99 / RMS error | RMS ratio | pass |")
        print("|---|---|---|---|---|")
        for g, e in r["reference_f32"].items():
            a, b = e["patchsweep"], e["peer"]
            print(f"| {g} | {fmt(a['max'], '.4g')} / {fmt(a['p99'], '.4g')} / {fmt(a['rms'], '.4g')} "
                  f"| {fmt(b['max'], '.4g')} / {fmt(b['p99'], '.4g')} / {fmt(b['rms'], '.4g')} "
                  f"| {fmt(e['rms_ratio'], '.3f')} | {e['pass']} |")
        r["bf16_pass"] = all(e["pass"] for e in r["reference_f32"].values())
        print(f"bf16 numerics as good as the peer's on every grid: {r['bf16_pass']}")
    r["grid_table"] = grid_table(r)
    print("\n| grid | patches | patchsweep patches/s | peer patches/s | ratio | max abs diff | within tol "
          "| patchsweep TFLOP/s (share of 989 / 790 peak) |")
    print("|---|---|---|---|---|---|---|---|")
    for t in r["grid_table"]:
        mfu = (f"{fmt(t.get('patchsweep_tflop_per_s'), '.1f')} ({fmt(t.get('patchsweep_mfu_datasheet'), '.1%')}"
               f" / {fmt(t.get('patchsweep_mfu_measured_peak'), '.1%')})")
        print(f"| {t['grid']} | {t['patches']} | {fmt(t['patchsweep_patches_per_s'], '.1f')} "
              f"| {fmt(t['peer_patches_per_s'], '.1f')} | {fmt(t.get('ratio'), '.2f')} "
              f"| {fmt(t['max_abs_diff'], '.4g')} | {fmt(t['within_tolerance'], '.3f')} | {mfu} |")
    w = (r.get("patchsweep") or {}).get("worker")
    if w:
        print(f"patchsweep worker: planned rows per forward {w['planned_rows']}, CUDA pool peak "
              f"{fmt(w['pool_peak_gib'], '.2f')} GiB")
    Path(path).write_text(json.dumps(r, indent=1, default=str))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
