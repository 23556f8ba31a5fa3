"""Benchmark: MiniGPT on Tiny Shakespeare with nanoGPT's CPU recipe.

nanoGPT's "baby GPT" on a CPU: first 90 % of Tiny Shakespeare trains, the
last 10 % validates; context 64, batch 12, 4 layers x 4 heads x 128
dimensions, dropout 0, 2000 iterations of AdamW (lr 1e-3, 100 warmup steps,
cosine decay to 1e-4 at step 2000, beta_2 0.99, weight decay 0.1 on
matrices, gradient norm clipped at 1). nanoGPT itself, on this kind of
2-core machine: validation loss 1.8857 in 1 min 14 s.

Prints one JSON object per backend: validation loss (nats per character,
over every non-overlapping window of the validation text), training wall
time (including tracing / compilation; `ms_per_iter_by_250` splits it into
blocks of 250 steps, the first holding the compile), tokens per second, and
the time to generate 300 characters (first call, which compiles the
sampling loop, and a second call).

    python benchmarks/minigpt_shakespeare.py                    # 3 backends
    python benchmarks/minigpt_shakespeare.py --backends jax --iters 500
    python benchmarks/minigpt_shakespeare.py --dtype mixed_bfloat16
    python benchmarks/minigpt_shakespeare.py --nanogpt-dir ../nanoGPT
    python benchmarks/minigpt_shakespeare.py --block-type keras_hub
    python benchmarks/minigpt_shakespeare.py --recipe gpu --dtype mixed_bfloat16 \
        --backends jax,torch --nanogpt-dir ../nanoGPT     # on a GPU machine

`--recipe gpu` is nanoGPT's `config/train_shakespeare_char.py` as it is (6
layers x 6 heads x 384, context 256, batch 64, dropout 0.2, 5000
iterations); nanoGPT then runs on CUDA with torch.compile and bf16, its
defaults.

With `--nanogpt-dir` (a checkout of github.com/karpathy/nanoGPT) nanoGPT's
own `train.py` runs the same recipe first, in the same run, on the same Tiny
Shakespeare split (nanoGPT's `prepare.py`, from the embedded text): its
median ms per iteration, final validation loss (its estimate: 20 random
batches) and wall time are printed as one more JSON object.

Each backend runs in its own subprocess (the backend is fixed at import).
Figures depend on the machine: they are measurements, not test thresholds.
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _backends import run_child, positive  # noqa: E402  (a sibling module)

NANOGPT = {"val_loss": 1.8857, "wall_s": 74.0}

# nanoGPT's two shakespeare_char recipes: its CPU "baby GPT" (README) and
# config/train_shakespeare_char.py as it is, for a GPU (bf16 there:
# `--dtype mixed_bfloat16`); iterations and batch size may be overridden
RECIPES = {
    "cpu": dict(sequence_length=64, num_layers=4, num_heads=4,
                hidden_dim=128, dropout=0.0, iters=2000, batch_size=12),
    "gpu": dict(sequence_length=256, num_layers=6, num_heads=6,
                hidden_dim=384, dropout=0.2, iters=5000, batch_size=64),
}
MODEL_KEYS = ("sequence_length", "num_layers", "num_heads", "hidden_dim",
              "dropout")


def run_one(iters, batch_size, dtype, steps_per_execution, recipe="cpu",
            block_type="fused"):
    import keras

    from keras_genzoo import MiniGPT, datasets, warmup_cosine_adamw

    keras.utils.set_random_seed(1337)
    start = time.perf_counter()
    text = datasets.load_text("tiny_shakespeare")
    gpt = MiniGPT.from_text(text, dtype=dtype, block_type=block_type, **{
        key: RECIPES[recipe][key] for key in MODEL_KEYS})
    # training windows start at every character (nanoGPT draws random
    # offsets); validation: every non-overlapping window of the last 10 %
    train_ds, _ = gpt.make_datasets(text, batch_size=batch_size, stride=1,
                                    seed=1337)
    _, val_ds = gpt.make_datasets(text, batch_size=64, shuffle=False)
    gpt.compile(optimizer=warmup_cosine_adamw(iters),
                jit_compile=gpt.default_jit_compile(),
                steps_per_execution=steps_per_execution)
    setup_s = time.perf_counter() - start

    class SegmentTimer(keras.callbacks.Callback):
        """Milliseconds per step over each block of 250 steps."""

        def on_train_batch_end(self, batch, logs=None):
            if (batch + 1) % 250 == 0 or batch + 1 == iters:
                now = time.perf_counter()
                steps = (batch + 1) - self.last_batch
                segments.append(round(1000 * (now - self.last) / steps, 1))
                self.last, self.last_batch = now, batch + 1

    segments = []
    timer = SegmentTimer()
    start = timer.last = time.perf_counter()
    timer.last_batch = 0
    history = gpt.fit(train_ds, steps_per_epoch=iters, epochs=1, verbose=0,
                      callbacks=[timer])
    train_s = time.perf_counter() - start
    # seconds between the last step and `fit` returning (end of training)
    end_of_fit_s = round(time.perf_counter() - timer.last, 1)
    start = time.perf_counter()
    val = gpt.evaluate(val_ds, verbose=0, return_dict=True)
    eval_s = time.perf_counter() - start

    timings = []
    for _ in range(2):
        start = time.perf_counter()
        sample = gpt.generate("ROMEO:", max_new_tokens=300, temperature=0.8,
                              top_k=40, seed=0)
        timings.append(time.perf_counter() - start)
    tokens = iters * batch_size * gpt.sequence_length
    return {
        "benchmark": f"minigpt_tiny_shakespeare_nanogpt_{recipe}_recipe",
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "dtype": dtype,
        "block_type": block_type,
        "params": int(gpt.count_params()),
        "iters": iters,
        "batch_size": batch_size,
        "steps_per_execution": steps_per_execution,
        "final_train_loss": round(float(history.history["loss"][-1]), 4),
        "val_loss": round(float(val["loss"]), 4),
        "val_bits_per_char": round(float(val["bits_per_char"]), 4),
        "setup_s": round(setup_s, 1),
        "train_s": round(train_s, 1),
        "eval_s": round(eval_s, 1),
        "ms_per_iter": round(1000 * train_s / iters, 1),
        "ms_per_iter_by_250": segments,
        "end_of_fit_s": end_of_fit_s,
        "tokens_per_s": round(tokens / train_s),
        "generate_300_first_s": round(timings[0], 2),
        "generate_300_s": round(timings[1], 2),
        "sample": sample,
        "nanogpt": NANOGPT,
    }


def run_nanogpt(nanogpt_dir, iters, batch_size, recipe="cpu"):
    """nanoGPT's `train.py` on the recipe (CPU: the "baby GPT" of its README;
    GPU: its config as it is, on CUDA with torch.compile and bf16), in a
    temporary copy; returns its figures."""
    import pickle
    import re
    import shutil
    import statistics
    import tempfile

    import numpy as np
    import torch

    from keras_genzoo import datasets

    work = tempfile.mkdtemp(prefix="nanogpt_")
    for name in ("train.py", "model.py", "configurator.py"):
        shutil.copy(os.path.join(nanogpt_dir, name), work)
    shutil.copytree(os.path.join(nanogpt_dir, "config"),
                    os.path.join(work, "config"))
    # data/shakespeare_char/prepare.py, without its download
    text = datasets.load_text("tiny_shakespeare")
    chars = datasets.char_vocabulary(text)  # nanoGPT's sorted(set(data))
    stoi = {c: i for i, c in enumerate(chars)}
    data_dir = os.path.join(work, "data", "shakespeare_char")
    os.makedirs(data_dir)
    cut = int(len(text) * 0.9)
    for name, part in (("train", text[:cut]), ("val", text[cut:])):
        np.array([stoi[c] for c in part], np.uint16).tofile(
            os.path.join(data_dir, f"{name}.bin"))
    with open(os.path.join(data_dir, "meta.pkl"), "wb") as f:
        pickle.dump({"vocab_size": len(chars), "stoi": stoi,
                     "itos": dict(enumerate(chars))}, f)
    command = [
        sys.executable, "train.py", "config/train_shakespeare_char.py",
        f"--batch_size={batch_size}", f"--max_iters={iters}",
        f"--lr_decay_iters={iters}", "--log_interval=1",
        "--always_save_checkpoint=False"]
    if recipe == "cpu":
        command += ["--device=cpu", "--compile=False", "--eval_iters=20",
                    "--block_size=64", "--n_layer=4", "--n_head=4",
                    "--n_embd=128", "--dropout=0.0"]
    start = time.perf_counter()
    out = subprocess.run(command, cwd=work, capture_output=True, text=True,
                         check=True).stdout
    wall_s = time.perf_counter() - start
    shutil.rmtree(work, ignore_errors=True)
    step_ms = [float(m) for m in re.findall(r"^iter \d+: loss [\d.]+, "
                                            r"time ([\d.]+)ms", out, re.M)]
    val = re.findall(r"val loss ([\d.]+)", out)
    return {
        "benchmark": f"nanogpt_tiny_shakespeare_{recipe}_recipe",
        "device": "cpu" if recipe == "cpu" else "cuda",
        "torch": torch.__version__,
        "iters": iters,
        "val_loss": float(val[-1]) if val else None,
        "wall_s": round(wall_s, 1),
        # (the first 10 iterations compile; fewer: all of them)
        "ms_per_iter_median": round(statistics.median(
            step_ms[10:] or step_ms), 1) if step_ms else None,
        "threads": torch.get_num_threads(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="cpu",
                        help="nanoGPT's CPU recipe (4x4x128, context 64) or "
                             "its GPU one (6x6x384, context 256, dropout "
                             "0.2; add --dtype mixed_bfloat16)")
    parser.add_argument("--iters", type=positive(int), default=None,
                        help="default: the recipe's (2000 CPU, 5000 GPU)")
    parser.add_argument("--batch-size", type=positive(int), default=None,
                        help="default: the recipe's (12 CPU, 64 GPU)")
    parser.add_argument("--dtype", default="float32",
                        help="float32, mixed_bfloat16 or mixed_float16")
    parser.add_argument("--steps-per-execution", type=positive(int), default=1)
    parser.add_argument("--block-type", default="fused",
                        choices=["fused", "keras_hub"],
                        help="MiniGPT's blocks (see MiniGPT's block_type)")
    parser.add_argument("--nanogpt-dir", default=None,
                        help="a nanoGPT checkout: run it first, same recipe")
    parser.add_argument("--child", action="store_true",
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.iters = args.iters or RECIPES[args.recipe]["iters"]
    args.batch_size = args.batch_size or RECIPES[args.recipe]["batch_size"]
    if args.child:
        print(json.dumps(run_one(args.iters, args.batch_size, args.dtype,
                                 args.steps_per_execution, args.recipe,
                                 args.block_type)),
              flush=True)
        return
    if args.nanogpt_dir:
        print(json.dumps(run_nanogpt(args.nanogpt_dir, args.iters,
                                     args.batch_size, args.recipe)),
              flush=True)
    failed = 0
    for backend in filter(None, args.backends.split(",")):
        env = dict(os.environ, KERAS_BACKEND=backend)
        code, _ = run_child(
            [sys.executable, __file__, "--child", "--iters", str(args.iters),
             "--batch-size", str(args.batch_size), "--dtype", args.dtype,
             "--steps-per-execution", str(args.steps_per_execution),
             "--recipe", args.recipe, "--block-type", args.block_type],
            env, f"minigpt_tiny_shakespeare_{args.recipe}_recipe", backend,
            dtype=args.dtype)
        failed += bool(code)
    if failed:
        # (after every backend ran; the error rows say why)
        sys.exit(f"minigpt_shakespeare: {failed} backend(s) failed (their "
                 "error rows above)")


if __name__ == "__main__":
    main()
