"""Benchmark: training throughput of the image models per backend and device.

Trains `GAN` (DCGAN defaults) and `VAE` (defaults) on MNIST-shaped uint8
images at batch 128 and prints one JSON object per backend, model and
transposed-convolution path: the first `fit` (compilation included) and the
steady images per second of a second one. `--transposed-conv both` runs
Keras' `Conv2DTranspose` arithmetic and the zoo's phase-by-phase one
(`keras_genzoo.layers.Conv2DTranspose`) side by side, whichever the backend
uses by default.

    python benchmarks/step_speed.py                          # 3 backends
    python benchmarks/step_speed.py --backends jax --transposed-conv both
    python benchmarks/step_speed.py --backends torch --jit-compile true

Each backend runs in its own subprocess. Figures are measurements on the
machine at hand, not test thresholds.
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _backends import device  # noqa: E402  (a sibling module)


def run_one(model_name, by_phases, batches, jit_compile):
    import keras
    import numpy as np

    from keras_genzoo import GAN, VAE
    from keras_genzoo import backend as zoo_backend

    if by_phases is not None:
        zoo_backend.TRANSPOSED_CONV_BY_PHASES = by_phases
    keras.utils.set_random_seed(0)
    images = np.random.default_rng(0).integers(
        0, 256, (128 * batches, 28, 28, 1)).astype("uint8")
    model = {"gan": GAN, "vae": VAE}[model_name](seed=0)
    if jit_compile is not None:
        model.compile(jit_compile=jit_compile)
    start = time.perf_counter()
    model.fit(images[:256], batch_size=128, epochs=1, verbose=0)
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(images, batch_size=128, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    return {
        "benchmark": "step_speed",
        "backend": keras.backend.backend(),
        "device": device(),
        "model": model_name,
        "transposed_conv": ("phases" if zoo_backend.TRANSPOSED_CONV_BY_PHASES
                            else "keras"),
        "jit_compile": jit_compile,
        "batch_size": 128,
        "first_fit_2_steps_s": round(first_s, 1),
        "ms_per_step": round(1000 * seconds / batches, 1),
        "images_per_s": round(len(images) / seconds, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--models", default="gan,vae")
    parser.add_argument("--batches", type=int, default=12,
                        help="steps of the timed fit")
    parser.add_argument("--transposed-conv", default="default",
                        choices=["default", "keras", "phases", "both"])
    parser.add_argument("--jit-compile", default=None,
                        choices=["true", "false", "auto"])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    jit = {"true": True, "false": False, "auto": "auto", None: None}[
        args.jit_compile]
    if args.child:
        model_name, path = args.child
        by_phases = {"default": None, "keras": False, "phases": True}[path]
        print(json.dumps(run_one(model_name, by_phases, args.batches, jit)),
              flush=True)
        return
    paths = (["keras", "phases"] if args.transposed_conv == "both"
             else [args.transposed_conv])
    for backend in filter(None, args.backends.split(",")):
        for model_name in args.models.split(","):
            for path in paths:
                command = [sys.executable, __file__, "--child", model_name,
                           path, "--batches", str(args.batches)]
                if args.jit_compile:
                    command += ["--jit-compile", args.jit_compile]
                subprocess.run(command, check=True, stderr=subprocess.DEVNULL,
                               env=dict(os.environ, KERAS_BACKEND=backend))


if __name__ == "__main__":
    main()
