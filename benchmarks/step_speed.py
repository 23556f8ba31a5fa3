"""Benchmark: training throughput of the image models per backend and device.

Trains `GAN` (DCGAN defaults) and `VAE` (defaults), and with `--models
gan,vae,diffusion,wgan` a `DiffusionModel` and a `WGANGP` (defaults: its
gradient penalty is a gradient inside the step), on MNIST-shaped uint8
images at batch 128 (`--batch-size`) and prints one JSON object per
backend, model and path: the first `fit` (compilation included) and the
steady images per second of a second one. `--transposed-conv both` runs Keras'
`Conv2DTranspose` arithmetic and the zoo's phase-by-phase one
(`keras_genzoo.layers.Conv2DTranspose`) side by side, whichever the backend
uses by default; `--group-norm both` runs Keras' `GroupNormalization`
arithmetic and the backend's one-op group normalisation
(`keras_genzoo.backend.group_normalization`, PyTorch only) side by side;
`--batch-end both` runs `fit` as it is (`async`: on JAX and PyTorch Keras
reads each step's logs in a worker thread while the next step runs) and
with one more callback whose batch-end hook makes Keras read them on
`fit`'s thread before the next step (`sync`: every zoo `fit` did so before
2026-12-02, through `StopOnDivergence`). TensorFlow's Keras always runs
them on `fit`'s thread: there `--batch-end both` runs `sync` only, and
every row says `sync`.

    python benchmarks/step_speed.py                          # 3 backends
    python benchmarks/step_speed.py --backends jax --transposed-conv both
    python benchmarks/step_speed.py --backends torch --models diffusion \
        --group-norm both --batches 4
    python benchmarks/step_speed.py --backends torch --jit-compile true
    python benchmarks/step_speed.py --backends jax,torch --batch-end both
    python benchmarks/step_speed.py --backends torch --jit-compile true \
        --layer-guards both  # with and without dynamo's guards on layers
    python benchmarks/step_speed.py --backends jax,torch --batch-size 2 \
        --batches 40    # the time per step that is not arithmetic

Each backend runs in its own subprocess. Figures are measurements on the
machine at hand, not test thresholds.
"""

import argparse
import itertools
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _backends import device, run_child, positive  # noqa: E402  (a sibling module)

# a child's exit status when its backend has no one-op group normalisation:
# the parent skips that run (the backend module decides, not this script)
NO_FUSED_GROUP_NORM = 3
MODELS = ("gan", "vae", "diffusion", "wgan")


def run_one(model_name, by_phases, batches, jit_compile, group_norm=None,
            batch_end="async", batch_size=128, layer_guards="default"):
    import keras
    import numpy as np

    from keras_genzoo import GAN, VAE, WGANGP, DiffusionModel
    from keras_genzoo import backend as zoo_backend

    compiled_torch = (keras.backend.backend() == "torch"
                      and jit_compile is True)
    if compiled_torch:
        from keras_genzoo.backend import torch_steps
        torch_steps.SKIP_LAYER_GUARDS = layer_guards != "keras"

    if by_phases is not None:
        zoo_backend.TRANSPOSED_CONV_BY_PHASES = by_phases
    if group_norm == "keras":
        zoo_backend.group_normalization = None
    elif group_norm == "fused" and zoo_backend.group_normalization is None:
        print(f"{keras.backend.backend()} has no one-op group normalisation:"
              " skipped", file=sys.stderr)
        sys.exit(NO_FUSED_GROUP_NORM)
    keras.utils.set_random_seed(0)
    images = np.random.default_rng(0).integers(
        0, 256, (batch_size * batches, 28, 28, 1)).astype("uint8")
    model = {"gan": GAN, "vae": VAE, "diffusion": DiffusionModel,
             "wgan": WGANGP}[model_name](seed=0)
    if jit_compile is not None:
        model.compile(jit_compile=jit_compile)
    # a batch-end hook that is not `async_safe` turns off Keras' async
    # dispatch (keras/src/callbacks/callback_list.py); Keras then reads the
    # logs on fit's thread after every step
    callbacks = {"async": [], "sync": [keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: None)]}[batch_end]
    start = time.perf_counter()
    model.fit(images[:2 * batch_size], batch_size=batch_size, epochs=1,
              verbose=0, callbacks=callbacks)
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(images, batch_size=batch_size, epochs=1, verbose=0,
              callbacks=callbacks)
    seconds = time.perf_counter() - start
    # what the step ran with: a step that fell back to Keras' compile (a
    # graph break) keeps every guard
    step = getattr(model.train_function, "_genzoo_step", None)
    return {
        "benchmark": "step_speed",
        "backend": keras.backend.backend(),
        "device": device(),
        "model": model_name,
        "transposed_conv": ("phases" if zoo_backend.TRANSPOSED_CONV_BY_PHASES
                            else "keras"),
        "group_norm": ("fused" if zoo_backend.group_normalization
                       else "keras"),
        "jit_compile": jit_compile,
        # TensorFlow's Keras never dispatches the batch hooks to a thread
        "batch_end": ("sync" if keras.backend.backend() == "tensorflow"
                      else batch_end),
        # PyTorch with jit_compile=True: the zoo's compiled step without
        # dynamo's guards on the layers, or with them (as Keras compiles)
        "layer_guards": (("skipped" if getattr(step, "_filtered", False)
                          else "keras") if compiled_torch else None),
        "batch_size": batch_size,
        "first_fit_2_steps_s": round(first_s, 1),
        "ms_per_step": round(1000 * seconds / batches, 1),
        "images_per_s": round(len(images) / seconds, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--models", default="gan,vae")
    parser.add_argument("--batches", type=positive(int), default=12,
                        help="steps of the timed fit")
    parser.add_argument("--transposed-conv", default="default",
                        choices=["default", "keras", "phases", "both"])
    parser.add_argument("--group-norm", default="default",
                        choices=["default", "keras", "fused", "both"])
    parser.add_argument("--jit-compile", default=None,
                        choices=["true", "false", "auto"])
    parser.add_argument("--batch-size", type=positive(int), default=128)
    parser.add_argument("--batch-end", default="async",
                        choices=["async", "sync", "both"])
    parser.add_argument("--layer-guards", default="default",
                        choices=["default", "keras", "both"],
                        help="PyTorch with --jit-compile true: the zoo's "
                        "compiled step (default: without dynamo's guards on "
                        "the layers) or Keras' (keras: with them)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.batches < 1 or args.batch_size < 1:
        parser.error("--batches and --batch-size must be at least 1")
    unknown = set(args.models.split(",")) - set(MODELS)
    if unknown:
        parser.error(f"--models: unknown {sorted(unknown)}; choose from "
                     f"{','.join(MODELS)}")
    jit = {"true": True, "false": False, "auto": "auto", None: None}[
        args.jit_compile]
    if args.child:
        model_name, path, norm, batch_end, guards = args.child
        by_phases = {"default": None, "keras": False, "phases": True}[path]
        print(json.dumps(run_one(model_name, by_phases, args.batches, jit,
                                 None if norm == "default" else norm,
                                 batch_end, args.batch_size, guards)),
              flush=True)
        return
    paths = (["keras", "phases"] if args.transposed_conv == "both"
             else [args.transposed_conv])
    norms = (["keras", "fused"] if args.group_norm == "both"
             else [args.group_norm])
    batch_ends = (["sync", "async"] if args.batch_end == "both"
                  else [args.batch_end])
    failed = 0
    for backend in filter(None, args.backends.split(",")):
        guards = (["default", "keras"] if args.layer_guards == "both"
                  and backend == "torch" and jit is True
                  else [args.layer_guards])
        # settings whose default run already compiled as Keras does (a
        # PyTorch older than 2.13): their `keras` run would repeat it
        as_keras = set()
        for model_name in args.models.split(","):
            for path, norm, batch_end, guard in itertools.product(
                    paths, norms, batch_ends
                    if backend != "tensorflow" else batch_ends[:1], guards):
                setting = (model_name, path, norm, batch_end)
                if guard == "keras" and setting in as_keras:
                    continue
                command = [sys.executable, __file__, "--child",
                           model_name, path, norm, batch_end, guard,
                           "--batches", str(args.batches),
                           "--batch-size", str(args.batch_size)]
                if args.jit_compile:
                    command += ["--jit-compile", args.jit_compile]
                code, stdout = run_child(
                    command, dict(os.environ, KERAS_BACKEND=backend),
                    "step_speed", backend, skip_codes=(NO_FUSED_GROUP_NORM,),
                    model=model_name, transposed_conv=path, group_norm=norm,
                    batch_end=batch_end, layer_guards=guard)
                failed += code not in (0, NO_FUSED_GROUP_NORM)
                if guard == "default" and '"layer_guards": "keras"' in (
                        stdout):
                    as_keras.add(setting)
    if failed:
        # (after every backend ran; the error rows say why)
        sys.exit(f"step_speed: {failed} run(s) failed (their error rows "
                 "above)")


if __name__ == "__main__":
    main()
