"""Benchmark: VAE and AutoEncoder training speed on the embedded MNIST.

Prints one JSON object per backend and model: seconds of the first epoch
(includes tracing / compilation), steady seconds per epoch (median of the
following epochs), images per second (at the steady speed) and the final
losses. With `--epochs 1` there is no steady epoch: `steady_epoch_s` and
`images_per_s` are null (the one epoch, compilation included, is
`first_epoch_s`).

    python benchmarks/vae_mnist.py                         # all three backends
    python benchmarks/vae_mnist.py --backends jax --epochs 4

Each backend runs in its own subprocess (the backend is fixed at import); a
backend whose run fails gives a `{"benchmark", "backend", "error"}` row
with the last line of its error, and the other backends still run.
Figures depend on the machine: they are measurements, not test thresholds.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _backends import main_per_backend, positive  # noqa: E402  (a sibling module)

BENCHMARK = "vae_mnist"
MODELS = ("vae", "autoencoder")


def run_one(model_name, epochs, batch_size, train_images=None):
    import keras
    import numpy as np

    from keras_genzoo import AutoEncoder, VAE, datasets

    keras.utils.set_random_seed(0)
    train_ds, val_ds = datasets.load_images(
        "embedded_mnist", batch_size=batch_size, limit=train_images
    )
    num_images = sum(int(b[0].shape[0]) for b in train_ds)
    model = {"vae": VAE, "autoencoder": AutoEncoder}[model_name](seed=0)

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    times = []
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs,
                        callbacks=[Timer()], verbose=0)
    # the first epoch traces / compiles: no steady figure without a second
    steady = float(np.median(times[1:])) if len(times) > 1 else None
    return {
        "benchmark": f"{model_name}_embedded_mnist",
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "train_images": num_images,
        "batch_size": batch_size,
        "epochs": epochs,
        "first_epoch_s": round(times[0], 2),
        "steady_epoch_s": None if steady is None else round(steady, 2),
        "images_per_s": (None if steady is None
                         else round(num_images / steady, 1)),
        "final_loss": round(float(history.history["loss"][-1]), 2),
        "final_val_loss": round(float(history.history["val_loss"][-1]), 2),
        "params": int(model.count_params()),
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--epochs", type=positive(int), default=4,
                        help="at least 2 for a steady_epoch_s")
    parser.add_argument("--batch-size", type=positive(int), default=128)
    parser.add_argument("--train-images", type=positive(int), default=None,
                        help="train on the first N images only")
    parser.add_argument("--in-process", "--child", action="store_true",
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    if not args.models:
        parser.error("--models names no model")
    for name in args.models:
        if name not in MODELS:
            parser.error(f"unknown model {name!r}; choose from "
                         f"{','.join(MODELS)}")
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    return args


def run(args):
    """This backend's rows, one per model (printed as they come)."""
    rows = []
    for name in args.models:
        rows.append(run_one(name, args.epochs, args.batch_size,
                            args.train_images))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv=None):
    return main_per_backend(__file__, argv, parse_args, run, BENCHMARK)


if __name__ == "__main__":
    main()
