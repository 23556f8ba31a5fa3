"""Benchmark: VAE and AutoEncoder training speed on the embedded MNIST.

Prints one JSON object per backend and model: seconds of the first epoch
(includes tracing / compilation), steady seconds per epoch (median of the
following epochs), images per second and the final losses.

    python benchmarks/vae_mnist.py                         # all three backends
    python benchmarks/vae_mnist.py --backends jax --epochs 4

Each backend runs in its own subprocess (the backend is fixed at import).
Figures depend on the machine: they are measurements, not test thresholds.
"""

import argparse
import json
import os
import subprocess
import sys
import time


def run_one(model_name, epochs, batch_size):
    import keras
    import numpy as np

    from keras_genzoo import AutoEncoder, VAE, datasets

    keras.utils.set_random_seed(0)
    train_ds, val_ds = datasets.load_images(
        "embedded_mnist", batch_size=batch_size
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
    steady = float(np.median(times[1:])) if len(times) > 1 else times[0]
    return {
        "benchmark": f"{model_name}_embedded_mnist",
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "train_images": num_images,
        "batch_size": batch_size,
        "epochs": epochs,
        "first_epoch_s": round(times[0], 2),
        "steady_epoch_s": round(steady, 2),
        "images_per_s": round(num_images / steady, 1),
        "final_loss": round(float(history.history["loss"][-1]), 2),
        "final_val_loss": round(float(history.history["val_loss"][-1]), 2),
        "params": int(model.count_params()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--models", default="vae,autoencoder")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--child", action="store_true",
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        for name in args.models.split(","):
            print(json.dumps(run_one(name, args.epochs, args.batch_size)),
                  flush=True)
        return
    for backend in args.backends.split(","):
        env = dict(os.environ, KERAS_BACKEND=backend)
        subprocess.run(
            [sys.executable, __file__, "--child", "--models", args.models,
             "--epochs", str(args.epochs), "--batch-size",
             str(args.batch_size)],
            env=env, check=True, stderr=subprocess.DEVNULL,
        )


if __name__ == "__main__":
    main()
