"""Benchmark: sample quality on full MNIST for the same wall-clock budget.

Trains each model on the 60,000 MNIST training digits for the same number
of minutes (`--budget-minutes`; training stops after the batch that uses the
budget up), then scores `--num-samples` generated images against the 10,000
test digits (`--reference-images`) with the definition of
`keras_genzoo.metrics.quality_scores` (Fréchet and kernel distances on the
shipped MNIST classifier's features, KID over `--kid-subsets` subsets of up
to 1,000 images, mode coverage; the test digits' features are computed once
per backend and shared by every row) and, for the VAEs, the test negative
log-likelihood (`VAE.nll`, when the package has it). Prints one JSON line
per model and backend, plus one `real_train_vs_test` row per backend:
training digits scored against the test digits, the floor of the metrics.

Models: `vae`, `dcgan`, `wgan_gp`, `cdcgan` (the zoo's defaults; the
conditional DCGAN on `(images, labels)`), `peer_tf_dcgan` (TensorFlow's DCGAN
tutorial rebuilt as `GAN(generator=..., discriminator=...)`) and
`peer_kerasio_vae` (keras-io's VAE example, latent_dim 2, as
`VAE(encoder=..., decoder=...)`).

    python benchmarks/quality_mnist.py                         # 6 models x 3
    python benchmarks/quality_mnist.py --backends jax --models vae,dcgan \\
        --budget-minutes 5 --grid-dir outputs/quality_grids
    python benchmarks/quality_mnist.py --smoke --backends torch  # ~100 s

`--smoke` is a tiny run: a 3 s budget on 2,000 training digits, 500
samples scored against the first 1,000 test digits with 10 KID subsets
(its numbers are not comparable with a full run's), 50 NLL images; all six
models on one backend took 100 s on a 2-core CPU (PyTorch; 165 s
when every row recomputed the 10,000 test digits' features).

`--mnist-dir` is a folder of MNIST idx files (train-images-idx3-ubyte.gz,
...; default `../shared/data/mnist` next to the repository). Each backend
runs in its own subprocess (the backend is fixed at import). `train_s`
counts from the start of `fit` (tracing / compilation included) and
`images_per_s` is the images trained on divided by it; `score_s` covers
generation, the quality scores and the NLL. Figures are measurements on the
machine at hand, not test thresholds.
"""

import argparse
import gc
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _backends import main_per_backend, positive  # noqa: E402  (a sibling module)

BENCHMARK = "quality_mnist"

MODELS = ("vae", "dcgan", "wgan_gp", "cdcgan", "peer_tf_dcgan",
          "peer_kerasio_vae")
BATCH_SIZES = {"peer_tf_dcgan": 256}  # the others: 128
DEFAULT_MNIST_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
    "shared", "data", "mnist")
MAX_EPOCHS = 100_000  # the time budget stops training long before


def tf_tutorial_networks():
    """Generator and discriminator of tensorflow.org's DCGAN tutorial."""
    import keras
    from keras import layers

    generator = keras.Sequential([
        keras.Input((100,)),
        layers.Dense(7 * 7 * 256, use_bias=False),
        layers.BatchNormalization(),
        layers.LeakyReLU(),
        layers.Reshape((7, 7, 256)),
        layers.Conv2DTranspose(128, 5, strides=1, padding="same",
                               use_bias=False),
        layers.BatchNormalization(),
        layers.LeakyReLU(),
        layers.Conv2DTranspose(64, 5, strides=2, padding="same",
                               use_bias=False),
        layers.BatchNormalization(),
        layers.LeakyReLU(),
        layers.Conv2DTranspose(1, 5, strides=2, padding="same",
                               use_bias=False, activation="tanh"),
    ], name="tf_tutorial_generator")
    discriminator = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(64, 5, strides=2, padding="same"),
        layers.LeakyReLU(),
        layers.Dropout(0.3),
        layers.Conv2D(128, 5, strides=2, padding="same"),
        layers.LeakyReLU(),
        layers.Dropout(0.3),
        layers.Flatten(),
        layers.Dense(1),
    ], name="tf_tutorial_discriminator")
    return generator, discriminator


def kerasio_vae_networks(latent_dim=2):
    """Encoder and decoder of keras.io's VAE example."""
    import keras
    from keras import layers

    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(32, 3, activation="relu", strides=2,
                      padding="same")(inputs)
    x = layers.Conv2D(64, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(16, activation="relu")(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    encoder = keras.Model(inputs, [z_mean, z_log_var], name="encoder")
    latent = keras.Input((latent_dim,))
    x = layers.Dense(7 * 7 * 64, activation="relu")(latent)
    x = layers.Reshape((7, 7, 64))(x)
    x = layers.Conv2DTranspose(64, 3, activation="relu", strides=2,
                               padding="same")(x)
    x = layers.Conv2DTranspose(32, 3, activation="relu", strides=2,
                               padding="same")(x)
    outputs = layers.Conv2DTranspose(1, 3, activation="sigmoid",
                                     padding="same")(x)
    decoder = keras.Model(latent, outputs, name="decoder")
    return encoder, decoder


def make_model(name):
    """The model named `name`, compiled where it has its own settings."""
    import keras

    from keras_genzoo import GAN, VAE, WGANGP

    if name == "vae":
        return VAE(seed=0)
    if name == "dcgan":
        return GAN(seed=0)
    if name == "wgan_gp":
        return WGANGP(seed=0)
    if name == "cdcgan":
        return GAN(num_classes=10, seed=0)
    if name == "peer_tf_dcgan":
        generator, discriminator = tf_tutorial_networks()
        model = GAN(generator=generator, discriminator=discriminator, seed=0)
        model.compile(d_optimizer=keras.optimizers.Adam(1e-4),
                      g_optimizer=keras.optimizers.Adam(1e-4))
        return model
    if name == "peer_kerasio_vae":
        encoder, decoder = kerasio_vae_networks()
        model = VAE(encoder=encoder, decoder=decoder, seed=0)
        model.compile(optimizer=keras.optimizers.Adam())
        return model
    raise ValueError(f"Unknown model {name!r}; choose from {MODELS}.")


def budget_callback(budget_s, num_images, batch_size, state):
    """Stops `fit` after the batch that uses `budget_s` up; counts images."""
    import keras

    class Budget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            state["start"] = time.perf_counter()
            state["images"] = 0
            state["paused"] = 0.0

        def on_train_batch_end(self, batch, logs=None):
            state["images"] += min(batch_size,
                                   num_images - batch * batch_size)
            spent = time.perf_counter() - state["start"] - state["paused"]
            if spent >= budget_s:
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            state["train_s"] = (time.perf_counter() - state["start"]
                                - state["paused"])

    return Budget()


# what QualityMonitor logs each epoch (into `history.history`)
QUALITY_LOGS = ("fd", "kid", "classes_covered", "kl_to_uniform", "confidence")


def monitor_callback(real_images, num_samples, state):
    """A `QualityMonitor` whose scoring time is not charged to the budget;
    its per-epoch figures become the row's `curve`."""
    from keras_genzoo.callbacks import QualityMonitor

    class TimedMonitor(QualityMonitor):
        def on_train_begin(self, logs=None):  # features of the real digits
            begin = time.perf_counter()
            super().on_train_begin(logs)
            state["paused"] += time.perf_counter() - begin

        def on_epoch_end(self, epoch, logs=None):
            begin = time.perf_counter()
            super().on_epoch_end(epoch, logs)
            state["paused"] += time.perf_counter() - begin
            if self.scores and self.scores[-1][0] == epoch + 1:
                scores = self.scores[-1][1]
                state["curve"].append({
                    "epoch": epoch + 1,
                    "train_s": round(time.perf_counter() - state["start"]
                                     - state["paused"], 1),
                    "fd": round(scores["fd"], 2),
                    "classes_covered": scores.get("classes_covered"),
                    "kl_to_uniform": round(scores.get("kl_to_uniform", 0), 3),
                })

    return TimedMonitor(real_images, num_samples=num_samples, seed=2,
                        verbose=False)


def rounded(scores):
    """The row's share of `quality_scores`' dict, rounded."""
    return {
        "fd": round(float(scores["fd"]), 2),
        "kid": round(float(scores["kid"]), 4),
        "classes_covered": scores.get("classes_covered"),
        "kl_to_uniform": (None if scores.get("kl_to_uniform") is None
                          else round(float(scores["kl_to_uniform"]), 4)),
        "confidence": (None if scores.get("confidence") is None
                       else round(float(scores["confidence"]), 4)),
    }


def base_row(name, args):
    import keras

    return {
        "benchmark": BENCHMARK,
        "model": name,
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "budget_s": round(60 * args.budget_minutes, 1),
    }


def run_model(name, args, data, score):
    import numpy as np
    import keras

    from keras_genzoo import plots
    from keras_genzoo.callbacks import save_image_grid

    train_images, train_labels, test_images = data
    row = base_row(name, args)
    keras.utils.set_random_seed(0)
    batch_size = BATCH_SIZES.get(name, 128)
    state = {"images": 0, "train_s": None}
    model = None
    try:
        model = make_model(name)
        labels = train_labels if name == "cdcgan" else None
        budget = budget_callback(60 * args.budget_minutes, len(train_images),
                                 batch_size, state)
        callbacks = [budget]
        state["curve"] = []
        if args.monitor_samples:
            # scores every epoch (and the last, partial one) on the first
            # 2,000 test digits; its time is not charged to the budget
            callbacks.append(monitor_callback(
                test_images[:2000], args.monitor_samples, state))
        history = model.fit(train_images, labels, batch_size=batch_size,
                            epochs=MAX_EPOCHS, shuffle=True,
                            callbacks=callbacks, verbose=0)
        train_s = state["train_s"]
        row.update({
            "train_s": round(train_s, 1),
            "epochs": round(state["images"] / len(train_images), 3),
            "images_per_s": round(state["images"] / train_s, 1),
        })

        begin = time.perf_counter()
        generated = model.generate(args.num_samples, seed=1)
        row.update(rounded(score(generated)))
        nll = None
        if name.endswith("vae") and hasattr(model, "nll") and args.nll_images:
            value = model.nll(test_images[:args.nll_images], num_samples=100,
                              seed=0)
            nll = round(float(np.mean(keras.ops.convert_to_numpy(value))), 2)
        row["nll"] = nll
        row["params"] = int(model.count_params())
        row["score_s"] = round(time.perf_counter() - begin, 1)
        if state["curve"]:
            row["curve"] = state["curve"]

        if args.grid_dir:
            path = os.path.join(args.grid_dir,
                                f"{name}_{row['backend']}.png")
            if name == "cdcgan":
                grid = model.generate(100, seed=1,
                                      labels=np.repeat(np.arange(10), 10))
                save_image_grid(grid, path, columns=10)
            else:
                save_image_grid(generated[:64], path)
            row["grid"] = path
            # the QualityMonitor's numbers per epoch, as they are in the
            # history, one panel each
            curves = {k: v for k, v in history.history.items()
                      if k in QUALITY_LOGS}
            if curves:
                row["quality_curve"] = path[:-4] + "_quality.png"
                plots.plot_history(curves).savefig(row["quality_curve"])
    except Exception as error:  # report it, go on with the next model
        if state.get("images") and "epochs" not in row:
            row["images_trained"] = state["images"]
        row["error"] = f"{type(error).__name__}: {error}"[:1000]
    del model
    gc.collect()
    return row


def make_scorer(real_images, args):
    """`score(generated)`: `metrics.quality_scores(real_images, generated,
    subsets=args.kid_subsets, subset_size=min(1000, args.num_samples))`,
    with the real images' features computed here, once, not per call."""
    import numpy as np

    from keras_genzoo.metrics import (collect_images, mnist_classifier,
                                      scores_from_features)

    classifier = mnist_classifier()
    real_features = classifier.features(
        collect_images(real_images, "the real images"), 500)
    subset_size = min(1000, args.num_samples)

    def score(generated):
        generated = collect_images(generated, "the generated images")
        probabilities = np.asarray(classifier.network.predict(
            generated, batch_size=500, verbose=0), "float64")
        return scores_from_features(
            real_features, classifier.features(generated, 500),
            probabilities.reshape(len(probabilities), -1),
            subsets=args.kid_subsets, subset_size=subset_size)

    return score


def run(args):
    import numpy as np

    from keras_genzoo.datasets import load_mnist_idx

    train_images, train_labels = load_mnist_idx(args.mnist_dir, "train")
    test_images, _ = load_mnist_idx(args.mnist_dir, "t10k")
    test_images = test_images[:args.reference_images]
    score = make_scorer(test_images, args)
    rows = []

    # The floor: real training digits, as many as the generated samples.
    row = base_row("real_train_vs_test", args)
    begin = time.perf_counter()
    row.update({"train_s": None, "epochs": None, "images_per_s": None})
    try:
        row.update(rounded(score(train_images[:args.num_samples])))
        row.update({"nll": None, "params": None,
                    "score_s": round(time.perf_counter() - begin, 1)})
    except Exception as error:
        row["error"] = f"{type(error).__name__}: {error}"[:1000]
    print(json.dumps(row), flush=True)
    rows.append(row)

    if args.train_images:
        train_images = train_images[:args.train_images]
        train_labels = train_labels[:args.train_images]
    data = (np.asarray(train_images), np.asarray(train_labels), test_images)
    for name in args.models:
        rows.append(run_model(name, args, data, score))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--budget-minutes", type=positive(float), default=10.0,
                        help="training time per model and backend")
    parser.add_argument("--num-samples", type=positive(int), default=10_000,
                        help="generated images scored per model")
    parser.add_argument("--nll-images", type=positive(int, zero=True),
                        default=1000,
                        help="test images of the VAEs' NLL (0: none)")
    parser.add_argument("--monitor-samples", type=positive(int, zero=True),
                        default=1000,
                        help="QualityMonitor samples per epoch for the "
                             "row's curve (0: no curve)")
    parser.add_argument("--train-images", type=positive(int), default=None,
                        help="train on the first N images only")
    parser.add_argument("--mnist-dir", default=DEFAULT_MNIST_DIR)
    parser.add_argument("--grid-dir", default=None,
                        help="save a PNG grid of samples per model here")
    parser.add_argument("--reference-images", type=positive(int), default=None,
                        help="test digits the samples are scored against "
                             "(default 10000; --smoke: 1000)")
    parser.add_argument("--kid-subsets", type=positive(int), default=None,
                        help="KID subsets (default 100; --smoke: 10)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny run: 3 s budget, 2,000 training images, "
                             "500 samples against 1,000 test digits, 10 "
                             "KID subsets, 50 NLL images")
    parser.add_argument("--in-process", "--child", action="store_true",
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    for name in args.models:
        if name not in MODELS:
            parser.error(f"unknown model {name!r}; choose from "
                         f"{','.join(MODELS)}")
    if args.smoke:
        args.budget_minutes = 0.05
        args.train_images = 2000
        args.num_samples = 500
        args.nll_images = 50
        args.monitor_samples = min(args.monitor_samples, 200)
    if args.reference_images is None:
        args.reference_images = 1000 if args.smoke else 10_000
    if args.kid_subsets is None:
        args.kid_subsets = 10 if args.smoke else 100
    for option in ("reference_images", "kid_subsets"):
        if getattr(args, option) < (2 if option == "reference_images" else 1):
            parser.error(f"--{option.replace('_', '-')} is too small")
    return args


def main(argv=None):
    return main_per_backend(__file__, argv, parse_args, run, BENCHMARK)


if __name__ == "__main__":
    main()
