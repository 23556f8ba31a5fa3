"""Benchmark: how often a PyTorch step or generated character waits for
the device.

On a GPU, a read of a device tensor on the host (`int(t)`, `.item()`,
`bool(t)`, a copy to the CPU) makes Python wait until the GPU has run
everything queued before it: the host then cannot queue the next kernels
while the GPU works. This script counts, per `fit` step of the DCGAN, the
VAE, WGAN-GP and MiniGPT and per character of `MiniGPT.generate` (greedy
and seeded top-k), eager and with `jit_compile=True`:

- `cuda_syncs`: the synchronising CUDA calls PyTorch reports
  (`torch.cuda.set_sync_debug_mode("warn")`), on a CUDA device only
  (`null` elsewhere);
- `python_host_reads`: reads of a tensor on the host made from Python
  (`int`, `bool`, `float`, `.item()`, `.tolist()`, `.numpy()` seen by a
  `TorchFunctionMode`), on any device. Reads inside PyTorch's C++ (e.g.
  `torch.narrow` at a tensor position) and inside compiled graphs are not
  seen.

Each figure is the difference between a run of `2 N` and one of `N` steps
(or characters), divided by `N`, so what happens once per call (a `fit`'s
start and end, a prompt's conversion) cancels out.

    KERAS_BACKEND=torch python benchmarks/host_syncs.py
    KERAS_BACKEND=torch python benchmarks/host_syncs.py --models gpt \
        --jit-compile false,true --n 8

Prints one JSON object per model, `jit_compile` and what is counted, as
each is counted.
Figures are counts on the machine at hand, not test thresholds.
"""

import argparse
import json
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _backends import device, positive  # noqa: E402  (a sibling module)

TEXT = "to be or not to be, that is the question. " * 40


def counter():
    """`count(fn) -> (cuda_syncs or None, python_host_reads)` of one call."""
    import torch
    from torch.overrides import TorchFunctionMode

    reads = {torch.Tensor.item, torch.Tensor.__bool__, torch.Tensor.__int__,
             torch.Tensor.__index__, torch.Tensor.__float__,
             torch.Tensor.tolist, torch.Tensor.numpy}

    class HostReads(TorchFunctionMode):
        count = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func in reads:
                HostReads.count += 1
            return func(*args, **(kwargs or {}))

    cuda = torch.cuda.is_available() and hasattr(
        torch.cuda, "set_sync_debug_mode")

    def count(fn):
        HostReads.count = 0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.set_sync_debug_mode("warn")
            try:
                with HostReads():
                    fn()
            finally:
                if cuda:
                    torch.cuda.set_sync_debug_mode("default")
        syncs = sum("synchroniz" in str(w.message).lower() for w in caught)
        return (syncs if cuda else None), HostReads.count

    return count


def _per_unit(count, smaller, larger, units):
    """`(count(larger) - count(smaller)) / units`, each count of one call
    after a first call of `larger` (which compiles, builds, warms up)."""
    larger()
    once, twice = count(smaller), count(larger)
    return {
        "cuda_syncs": (None if once[0] is None
                       else round((twice[0] - once[0]) / units, 2)),
        "python_host_reads": round((twice[1] - once[1]) / units, 2),
    }


def _generation_rows(model, sampling, count):
    """Per character in the context (the key/value cache) and past it
    (one window per character). `generate` always samples to the end of
    its buffer: in the context, from a prompt of 5 + `sequence_length //
    2` or of 5 characters; past it, one more buffer of `sequence_length`
    characters."""
    length = model.sequence_length

    def generate(prompt, characters):
        return lambda: model.generate(prompt, max_new_tokens=characters,
                                      **sampling)

    return [dict(what=f"generated character {where}", model="gpt",
                 jit_compile=model.jit_compile is True, sampling=sampling,
                 **_per_unit(count, smaller, larger, units))
            for where, units, smaller, larger in (
                ("in the context", length // 2,
                 generate(TEXT[:5 + length // 2], 1), generate("to be", 1)),
                ("past the context", length,
                 generate("to be", length), generate("to be", 2 * length)))]


def _model(name, jit_compile):
    import keras

    from keras_genzoo import GAN, VAE, WGANGP, MiniGPT

    keras.utils.set_random_seed(0)
    if name == "gpt":
        model = MiniGPT.from_text(TEXT, sequence_length=32, num_layers=2,
                                  num_heads=2, hidden_dim=32)
    else:
        model = {"gan": GAN, "vae": VAE, "wgan": WGANGP}[name](seed=0)
    if jit_compile:
        model.compile(jit_compile=True)
    return model


def run(models, jit_compiles, n):
    import keras
    import numpy as np

    if keras.backend.backend() != "torch":
        raise SystemExit("host_syncs.py counts PyTorch's host reads: run it "
                         "with KERAS_BACKEND=torch")
    count = counter()
    rows = []

    def report(*new):
        # printed as they come: a run cut short keeps what it counted
        for row in new:
            print(json.dumps({"benchmark": "host_syncs", "backend": "torch",
                              "device": device(), **row}), flush=True)
        rows.extend(new)

    for name in models:
        for jit_compile in jit_compiles:
            model = _model(name, jit_compile)
            batch = 8
            if name == "gpt":
                # NumPy windows (no tf.data: the GPU machine has no
                # TensorFlow)
                ids = np.asarray(model.encode_text(TEXT))
                length = model.sequence_length
                starts = np.arange(2 * n * batch) % (len(ids) - length - 1)
                windows = ids[starts[:, None] + np.arange(length + 1)]
                data = dict(x=windows[:, :-1], y=windows[:, 1:])
            else:
                images = np.random.default_rng(0).integers(
                    0, 256, (2 * n * batch, 28, 28, 1)).astype("uint8")
                data = dict(x=images)

            def fit(steps):
                sliced = {k: v[:steps * batch] for k, v in data.items()}
                model.fit(**sliced, batch_size=batch, epochs=1, verbose=0)

            report(dict(what="fit step", model=name,
                        jit_compile=jit_compile,
                        **_per_unit(count, lambda: fit(n),
                                    lambda: fit(2 * n), n)))
            if name != "gpt":
                continue
            for sampling in ({"top_k": 1}, {"top_k": 10, "seed": 1}):
                report(*_generation_rows(model, sampling, count))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # the quickest to compile first (WGAN-GP's compiled step is the slowest)
    parser.add_argument("--models", default="gpt,vae,gan,wgan")
    parser.add_argument("--jit-compile", default="false,true",
                        help="comma-separated false/true")
    parser.add_argument("--n", type=positive(int), default=6,
                        help="steps (characters: 4 n) counted")
    args = parser.parse_args()
    run([m for m in args.models.split(",") if m],
        [j == "true" for j in args.jit_compile.split(",") if j], args.n)


if __name__ == "__main__":
    main()
