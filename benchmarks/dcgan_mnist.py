"""Benchmark: DCGAN on the full MNIST training set (60,000 digits), per backend.

Trains `keras_genzoo.GAN` for a fixed wall-clock budget (or number of
epochs), saves a grid of samples from fixed noise after every epoch, and
prints one JSON line per epoch (seconds, images per second, losses) and a
summary. The first epoch's `epoch_s` and `images_per_s` include tracing /
compilation; the summary's `steady_epoch_s` and `images_per_s` are the
median of the later epochs, null with one epoch (`--epochs 1`: only
`first_epoch_s`). Look at the grids to find the first epoch whose digits are clearly
recognisable; `docs/images/` keeps the one we committed.

    python benchmarks/dcgan_mnist.py --mnist-dir ../shared/data/mnist \\
        --backends tensorflow --minutes 10
    python benchmarks/dcgan_mnist.py --mnist-dir ../shared/data/mnist \\
        --backends tensorflow,jax,torch --epochs 3      # speed per backend

`--mnist-dir` is a folder of MNIST idx files (train-images-idx3-ubyte.gz,
...); without it the 10,000 embedded digits are used. Each backend runs in
its own subprocess; a backend whose run fails gives a
`{"benchmark", "backend", "error"}` row with the last line of its error,
and the other backends still run. Figures are measurements on the machine at hand, not test
thresholds.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _backends import main_per_backend, positive  # noqa: E402  (a sibling module)

BENCHMARK = "dcgan_mnist"


def run(args):
    import keras
    import numpy as np

    from keras_genzoo import GAN, datasets
    from keras_genzoo.callbacks import ImageGridSaver

    keras.utils.set_random_seed(0)
    source = args.mnist_dir or "embedded_mnist"
    train_ds, _ = datasets.load_images(
        source, batch_size=args.batch_size, validation_split=0,
        with_labels=False, limit=args.train_images,
    )
    num_images = sum(int(b.shape[0]) for b in train_ds)
    model = GAN(
        latent_dim=args.latent_dim,
        generator_filters=tuple(args.generator_filters),
        discriminator_filters=tuple(args.discriminator_filters),
        seed=0,
    )
    out = os.path.join(args.output_dir, keras.backend.backend())
    saver = ImageGridSaver(out, num_images=64, seed=0)
    deadline = time.time() + 60 * args.minutes if args.minutes else None
    begin = time.time()
    times, rows = [], []

    class Report(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.start
            times.append(seconds)
            rows.append({
                "backend": keras.backend.backend(),
                "epoch": epoch + 1,
                "epoch_s": round(seconds, 1),
                "images_per_s": round(num_images / seconds, 1),
                "elapsed_s": round(time.time() - begin, 1),
                **{k: round(float(v), 4) for k, v in logs.items()},
            })
            print(json.dumps(rows[-1]), flush=True)
            if deadline and time.time() > deadline:
                self.model.stop_training = True

    epochs = args.epochs or 10_000
    model.fit(train_ds, epochs=epochs, callbacks=[Report(), saver],
              verbose=0)
    # the first epoch traces / compiles: no steady figure without a second
    steady = float(np.median(times[1:])) if len(times) > 1 else None
    rows.append({
        "summary": BENCHMARK,
        "backend": keras.backend.backend(),
        "train_images": num_images,
        "batch_size": args.batch_size,
        "generator_filters": args.generator_filters,
        "discriminator_filters": args.discriminator_filters,
        "params": int(model.count_params()),
        "epochs_run": len(saver.paths),
        "first_epoch_s": round(times[0], 1) if times else None,
        "steady_epoch_s": None if steady is None else round(steady, 1),
        "images_per_s": (None if steady is None
                         else round(num_images / steady, 1)),
        "wall_s": round(time.time() - begin, 1),
        "grids": saver.paths,
    })
    print(json.dumps(rows[-1]), flush=True)
    return rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--mnist-dir", default=None)
    parser.add_argument("--epochs", type=positive(int), default=None)
    parser.add_argument("--minutes", type=positive(float), default=None,
                        help="stop after the epoch that passes this budget")
    parser.add_argument("--batch-size", type=positive(int), default=128)
    parser.add_argument("--latent-dim", type=positive(int), default=64)
    parser.add_argument("--generator-filters", type=positive(int), nargs="+",
                        default=[64, 32])
    parser.add_argument("--discriminator-filters", type=positive(int), nargs="+",
                        default=[32, 64])
    parser.add_argument("--train-images", type=positive(int), default=None,
                        help="train on the first N images only")
    parser.add_argument("--output-dir", default="outputs/dcgan_benchmark")
    parser.add_argument("--in-process", "--child", action="store_true",
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.epochs and not args.minutes:
        args.epochs = 1
    return args


def main(argv=None):
    return main_per_backend(__file__, argv, parse_args, run, BENCHMARK)


if __name__ == "__main__":
    main()
