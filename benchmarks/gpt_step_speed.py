"""Benchmark: MiniGPT's training step against nanoGPT's, in one process.

The time of one training step (`train_on_batch` of one fixed batch: forward,
backward, AdamW with nanoGPT's schedule and gradient clipping) of `MiniGPT`
with each block type (`"fused"`: `CausalSelfAttentionBlock`, the default;
`"keras_hub"`: keras-hub `TransformerDecoder` blocks; `"fused_keras_ops"`:
the fused blocks with the backend's own ops switched off, on PyTorch, to
measure what `keras_genzoo.backend.causal_self_attention_block`,
`token_and_position_embedding`, `tied_embedding_logits` and
`next_token_cross_entropy` give),
and, with
`--nanogpt-dir`, of nanoGPT's own `model.py` GPT trained the way its
`train.py` does (PyTorch, eager, its AdamW, `clip_grad_norm_`), on the same
batch shape. The step kinds run in turn, one step each per round, and the
medians are printed: on a shared or throttling machine the speed drifts by
tens of percent between runs, but all kinds see the same drift.

nanoGPT's CPU recipe by default: 4 layers x 4 heads x 128, context 64,
batch 12, 65 characters, dropout 0. `--recipe overhead` keeps its layers
at width 16, context 4 and batch 1, where the arithmetic is negligible and
the step time is each framework's Python and dispatch per op.

    python benchmarks/gpt_step_speed.py --nanogpt-dir ../nanoGPT
    python benchmarks/gpt_step_speed.py --backends torch --rounds 100
    python benchmarks/gpt_step_speed.py --backends torch \
        --block-types fused,fused_keras_ops --nanogpt-dir ../nanoGPT
    python benchmarks/gpt_step_speed.py --recipe gpu --backends jax,torch \
        --dtype mixed_bfloat16 --nanogpt-dir ../nanoGPT --nanogpt-compile
    python benchmarks/gpt_step_speed.py --backends torch --block-types \
        fused --jit-compile default,true --nanogpt-dir ../nanoGPT

`--generate N` also times `generate` of N characters from a 6-character
prompt for each kind (`first_generate_s`: the first call, where the
sampling loop compiles; `generate_ms_per_char`: the median of three more),
and nanoGPT's own `generate` (one forward pass of the last `block_size`
characters per new character; eager even with `--nanogpt-compile`: its
`generate` calls the module, not the compiled wrapper) with
`--nanogpt-dir`:

    python benchmarks/gpt_step_speed.py --backends jax,torch \
        --block-types fused --jit-compile default,true --generate 300 \
        --nanogpt-dir ../nanoGPT

`--jit-compile default,true` times each block type once with the model's
default `jit_compile` and once with `jit_compile=True` (a kind of its own,
`fused_jit_compile_true`); `first_step_and_forward_s` holds each kind's
first step and forward pass, where the compilation happens.

Prints one JSON object per backend: median ms per step (`ms_per_step`) and
per forward pass in inference (`ms_per_forward`, `predict_on_batch`) of each
kind, and each MiniGPT kind's ratio to nanoGPT's step. Each backend runs in
its own subprocess; nanoGPT runs next to each (it needs PyTorch), in
`torch.autocast` when `--dtype` is a mixed policy, through `torch.compile`
with `--nanogpt-compile`. Figures
are measurements on the machine at hand, not test thresholds.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

RECIPES = {
    "cpu": dict(sequence_length=64, num_layers=4, num_heads=4,
                hidden_dim=128, dropout=0.0, batch_size=12),
    "gpu": dict(sequence_length=256, num_layers=6, num_heads=6,
                hidden_dim=384, dropout=0.2, batch_size=64),
    # the CPU recipe's layers at a negligible width, length and batch:
    # what is left is each framework's time per op and per step (Python,
    # dispatch), what bounds a GPU at small sizes
    "overhead": dict(sequence_length=4, num_layers=4, num_heads=4,
                     hidden_dim=16, dropout=0.0, batch_size=1),
}
BLOCK_TYPES = ("fused", "keras_hub")
# the fused blocks with the backend's own ops for MiniGPT switched off
# (Keras' ops one by one), where the backend has them (PyTorch); not run
# elsewhere
KERAS_OPS = "fused_keras_ops"
VOCABULARY_SIZE = 65  # Tiny Shakespeare's characters


def _nanogpt_step(nanogpt_dir, recipe, ids, targets, device, dtype,
                  compile_model):
    """nanoGPT's GPT and one training step as its train.py takes it: in
    `torch.autocast` to bfloat16 or float16 when MiniGPT's policy is mixed,
    optionally through `torch.compile` (its GPU default)."""
    import contextlib

    import torch

    sys.path.insert(0, os.path.abspath(nanogpt_dir))
    from model import GPT, GPTConfig

    torch.manual_seed(1337)
    config = GPTConfig(block_size=recipe["sequence_length"],
                       vocab_size=VOCABULARY_SIZE,
                       n_layer=recipe["num_layers"],
                       n_head=recipe["num_heads"],
                       n_embd=recipe["hidden_dim"],
                       dropout=recipe["dropout"], bias=True)
    model = GPT(config).to(device)
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99),
                                           device.split(":")[0])
    if compile_model:
        model = torch.compile(model)
    x = torch.from_numpy(ids).long().to(device)
    y = torch.from_numpy(targets).long().to(device)
    half = {"mixed_bfloat16": torch.bfloat16,
            "mixed_float16": torch.float16}.get(dtype)
    autocast = (lambda: torch.autocast(device.split(":")[0], dtype=half)
                ) if half else contextlib.nullcontext

    def step():
        with autocast():
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def forward():
        # with targets: logits at every position, as MiniGPT's forward
        model.eval()
        with torch.no_grad(), autocast():
            model(x, y)
        model.train()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def generate(num_characters):
        # its own sampling: the last block_size characters, one forward
        # pass per new character, multinomial sampling
        model.eval()
        start = torch.from_numpy(ids[:1, :6]).long().to(device)
        with torch.no_grad(), autocast():
            model.generate(start, num_characters)
        model.train()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return step, forward, generate


JIT_COMPILE = {"default": None, "true": True, "false": False}


def _kind(block_type, jit_compile):
    """A step kind's name: the block type, and the `jit_compile` where it
    is not the model's default (e.g. `fused_jit_compile_true`)."""
    if jit_compile == "default":
        return block_type
    return f"{block_type}_jit_compile_{jit_compile}"


def _time_generation(generate, num_characters):
    """`(first call s, median ms per character of three more calls)`."""
    import numpy as np

    start = time.perf_counter()
    generate(num_characters)
    first = time.perf_counter() - start
    times = []
    for _ in range(3):
        start = time.perf_counter()
        generate(num_characters)
        times.append(time.perf_counter() - start)
    return (round(first, 2),
            round(1000 * float(np.median(times)) / num_characters, 2))


def run_in_process(recipe_name, rounds, dtype, block_types, nanogpt_dir,
                   nanogpt_compile=False, jit_compiles=("default",),
                   generate=0):
    import keras
    import numpy as np
    from keras import ops

    from keras_genzoo import MiniGPT, warmup_cosine_adamw

    recipe = RECIPES[recipe_name]
    keras.utils.set_random_seed(1337)
    rng = np.random.default_rng(0)
    shape = (recipe["batch_size"], recipe["sequence_length"])
    ids = rng.integers(0, VOCABULARY_SIZE, shape).astype("int32")
    targets = rng.integers(0, VOCABULARY_SIZE, shape).astype("int32")
    x, y = ops.convert_to_tensor(ids), ops.convert_to_tensor(targets)
    vocabulary = [chr(32 + i) for i in range(VOCABULARY_SIZE)]
    from keras_genzoo import backend as zoo_backend

    def keras_ops_only(fn):
        def run():
            saved = {name: getattr(zoo_backend, name)
                     for name in zoo_backend.GPT_OPS}
            for name in zoo_backend.GPT_OPS:
                setattr(zoo_backend, name, None)
            try:
                return fn()
            finally:
                for name, op in saved.items():
                    setattr(zoo_backend, name, op)
        return run

    if zoo_backend.causal_self_attention_block is None:
        block_types = [b for b in block_types if b != KERAS_OPS]
    steps, forwards, compile_s, generators = {}, {}, {}, {}
    kinds = []
    for block_type in block_types:
        wrap = keras_ops_only if block_type == KERAS_OPS else (lambda f: f)
        layer_type = "fused" if block_type == KERAS_OPS else block_type
        for jit_compile in jit_compiles:
            kind = _kind(block_type, jit_compile)
            kinds.append(kind)
            gpt = MiniGPT(vocabulary, dtype=dtype, block_type=layer_type,
                          **{k: recipe[k] for k in (
                              "sequence_length", "num_layers", "num_heads",
                              "hidden_dim", "dropout")})
            jit = JIT_COMPILE[jit_compile]
            gpt.compile(optimizer=warmup_cosine_adamw(2000),
                        jit_compile=(gpt.default_jit_compile() if jit is None
                                     else jit))
            steps[kind] = wrap((lambda g: lambda: g.train_on_batch(x, y))(
                gpt))
            forwards[kind] = wrap((lambda g: lambda: g.predict_on_batch(x))(
                gpt))
            generators[kind] = (lambda g, w: lambda n: w(
                lambda: g.generate("ROMEO:", max_new_tokens=n, seed=0))())(
                    gpt, wrap)
            # the first step and forward pass: where compilation happens
            start = time.perf_counter()
            steps[kind]()
            forwards[kind]()
            compile_s[kind] = round(time.perf_counter() - start, 1)
    from _backends import device as backend_device

    device = backend_device()
    if nanogpt_dir:
        torch_device = ("cuda:0" if device.startswith(("gpu", "cuda"))
                        else "cpu")
        start = time.perf_counter()
        steps["nanogpt"], forwards["nanogpt"], generators["nanogpt"] = (
            _nanogpt_step(nanogpt_dir, recipe, ids, targets, torch_device,
                          dtype, nanogpt_compile))
        steps["nanogpt"]()
        forwards["nanogpt"]()
        compile_s["nanogpt"] = round(time.perf_counter() - start, 1)
    times = {kind: [] for kind in steps}
    forward_times = {kind: [] for kind in steps}
    warmup = max(3, rounds // 10)
    for i in range(warmup + rounds):
        for kind in steps:
            start = time.perf_counter()
            steps[kind]()
            middle = time.perf_counter()
            forwards[kind]()
            end = time.perf_counter()
            if i >= warmup:
                times[kind].append(middle - start)
                forward_times[kind].append(end - middle)

    def median_ms(values):
        return round(1000 * float(np.median(values)), 1)

    row = {
        "benchmark": f"gpt_step_speed_{recipe_name}_recipe",
        "backend": keras.backend.backend(),
        "device": device,
        "dtype": dtype,
        "keras": keras.__version__,
        "batch_size": recipe["batch_size"],
        "rounds": rounds,
        "ms_per_step": {k: median_ms(v) for k, v in times.items()},
        "ms_per_forward": {k: median_ms(v) for k, v in forward_times.items()},
        "first_step_and_forward_s": compile_s,
    }
    if generate:
        timed = {kind: _time_generation(fn, generate)
                 for kind, fn in generators.items()}
        row["generate_characters"] = generate
        row["first_generate_s"] = {k: v[0] for k, v in timed.items()}
        row["generate_ms_per_char"] = {k: v[1] for k, v in timed.items()}
    if nanogpt_dir:
        row["nanogpt_autocast"] = dtype if dtype.startswith("mixed") else None
        row["nanogpt_compile"] = nanogpt_compile
        row["ratio_to_nanogpt"] = {
            k: round(row["ms_per_step"][k] / row["ms_per_step"]["nanogpt"], 2)
            for k in kinds}
    return row


def main(argv=None):
    from _backends import positive

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="cpu")
    parser.add_argument("--rounds", type=positive(int), default=60,
                        help="timed steps of each kind (after a warm-up)")
    parser.add_argument("--dtype", default="float32",
                        help="MiniGPT's dtype policy, e.g. mixed_bfloat16")
    parser.add_argument("--block-types", default=",".join(BLOCK_TYPES))
    parser.add_argument("--nanogpt-dir", default=None,
                        help="a nanoGPT checkout: time its model.py too")
    parser.add_argument("--nanogpt-compile", action="store_true",
                        help="nanoGPT through torch.compile (its GPU default)")
    parser.add_argument("--jit-compile", default="default",
                        help="comma-separated `jit_compile` settings to "
                        "time, each a kind of its own: default (the "
                        "model's), true, false")
    parser.add_argument("--generate", type=int, default=0,
                        help="also time generating this many characters "
                        "(first call, then ms per character)")
    parser.add_argument("--in-process", action="store_true",
                        help="only the backend of this process")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.generate < 0:
        parser.error("--generate must be 0 (off) or more")
    block_types = [b for b in args.block_types.split(",") if b]
    if not set(block_types) <= set(BLOCK_TYPES + (KERAS_OPS,)):
        parser.error(f"--block-types: choose from "
                     f"{','.join(BLOCK_TYPES + (KERAS_OPS,))}")
    # each setting once (`default` may equal `true` or `false`: XLA for a
    # GPT on TensorFlow, eager on PyTorch, so such a pair times one thing
    # twice)
    jit_compiles = list(dict.fromkeys(j for j in args.jit_compile.split(",")
                                      if j))
    if not jit_compiles or not set(jit_compiles) <= set(JIT_COMPILE):
        parser.error(f"--jit-compile: choose from {','.join(JIT_COMPILE)}")
    if args.in_process:
        row = run_in_process(args.recipe, args.rounds, args.dtype,
                             block_types, args.nanogpt_dir,
                             args.nanogpt_compile, jit_compiles,
                             args.generate)
        print(json.dumps(row), flush=True)
        return [row]
    from _backends import run_per_backend

    return run_per_backend(__file__, argv if argv is not None
                           else sys.argv[1:], args.backends,
                           "gpt_step_speed")


if __name__ == "__main__":
    main()
