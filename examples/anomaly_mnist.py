# %% [markdown]
# # Anomaly detection on MNIST with an auto-encoder and a VAE
#
# Train an `AutoEncoder` and a `VAE` on handwritten digits, then use their
# `anomaly_scores` (reconstruction error; the VAE's negative ELBO) to flag
# images that are not like the training digits: uniform noise, digits with
# their pixels shuffled, inverted digits (black on white), and a digit class
# the models never saw in training (the 7s by default).
#
# A threshold is set on held-out normal digits (their 99th percentile
# score), so about 1 % of normal digits get flagged; the script prints, per
# model and kind of image, the share flagged and the AUROC (the chance that a
# random image of that kind scores above a random normal digit), and writes
# grids of the normal digits that score highest and lowest.
#
# Run it as a script, `python examples/anomaly_mnist.py` (`--help` lists the
# options), or as the notebook `notebooks/anomaly_mnist.ipynb`, which is made
# from this file and opens in Colab.
#
#     python examples/anomaly_mnist.py                  # embedded MNIST
#     python examples/anomaly_mnist.py --mnist-dir ../shared/data/mnist
#
# The same code runs on TensorFlow, JAX and PyTorch (`KERAS_BACKEND`). With
# `--mnist-dir` (a folder of MNIST idx files) it trains on the 60,000
# training digits and tests on the 10,000 test digits; without it, on the
# package's embedded 10,000 digits (8,000 to train, 2,000 to test).
# `--smoke` trains tiny models for one epoch on a few hundred digits (what
# the tests run).

# %%
import argparse
import json
import os
import sys
import time

import keras
import numpy as np

from keras_genzoo import VAE, AutoEncoder, datasets
from keras_genzoo.callbacks import save_image_grid

# %% [markdown]
# ## Options
# From a shell they are the command line's; in a notebook, put them in
# `NOTEBOOK_ARGS`, for example `["--epochs", "3", "--unseen-class", "3"]`.

# %% tags=["parameters"]
NOTEBOOK_ARGS = []

# %%
parser = argparse.ArgumentParser(
    description="Anomaly detection on MNIST with an auto-encoder and a VAE")
parser.add_argument("--mnist-dir", default=None,
                    help="a folder of MNIST idx files (default: the "
                         "embedded 10,000 digits)")
parser.add_argument("--models", default="ae,vae",
                    help="comma-separated, from ae,vae")
parser.add_argument("--unseen-class", type=int, default=7,
                    help="the digit left out of training, to be flagged")
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--latent-dim", type=int, default=16)
parser.add_argument("--percentile", type=float, default=99.0,
                    help="threshold: this percentile of the held-out "
                         "normal digits' scores")
parser.add_argument("--output-dir", default="outputs/anomaly_mnist")
parser.add_argument("--smoke", action="store_true",
                    help="a few hundred digits, one epoch, tiny models "
                         "(--epochs and --latent-dim, given, win)")
# In a notebook the options are NOTEBOOK_ARGS: a running IPython shell, and
# code run as cells, which have no __file__ (`python script.py` and IPython's
# `%run script.py ARGS` set it, and then the command line counts)
ipython = sys.modules.get("IPython")
in_notebook = (ipython is not None and ipython.get_ipython() is not None
               and "__file__" not in globals())
argv = NOTEBOOK_ARGS if in_notebook else None
args = parser.parse_args(argv)
if args.smoke:
    # `--smoke`'s sizes, where the options do not give their own
    parser.set_defaults(epochs=1, latent_dim=4)
    args = parser.parse_args(argv)
if min(args.epochs, args.batch_size, args.latent_dim) < 1:
    # (0 trained nothing, then failed at the end)
    parser.error("--epochs, --batch-size and --latent-dim must be at least 1")
args.models = [m for m in args.models.split(",") if m]
for name in args.models:
    if name not in ("ae", "vae"):
        parser.error(f"unknown model {name!r}; choose from ae,vae")
if not 0 <= args.unseen_class <= 9:
    parser.error("--unseen-class must be a digit, 0 to 9")
if not 0 <= args.percentile <= 100:  # (NaN too; numpy refused it after a fit)
    parser.error(f"--percentile must be in 0..100; got {args.percentile}")

keras.utils.set_random_seed(0)
print(f"Keras {keras.__version__}, backend: {keras.backend.backend()}")


# %% [markdown]
# ## The data
# The models train on every digit but the unseen class. The test digits of
# the other classes are split in two: one half sets the threshold, the other
# is the "normal" test set the outliers are compared with.
#
# `load_digits` reads the digits: MNIST's own train and test files with
# `--mnist-dir`, else the embedded digits, cut to a few hundred for
# `--smoke`.

# %%
def load_digits(args):
    """`(train, train_labels, test, test_labels)`, uint8 `(N, 28, 28, 1)`."""
    if args.mnist_dir:
        train, train_labels = datasets.load_mnist_idx(args.mnist_dir, "train")
        test, test_labels = datasets.load_mnist_idx(args.mnist_dir, "t10k")
    else:
        images, labels = datasets.load_embedded_mnist()
        train, train_labels = images[:8000], labels[:8000]
        test, test_labels = images[8000:], labels[8000:]
    if args.smoke:
        train, train_labels = train[:400], train_labels[:400]
        test, test_labels = test[:300], test_labels[:300]
    return train, train_labels, test, test_labels


# %% [markdown]
# `make_outliers` makes as many images of each kind in `KINDS` as there are
# normal test digits (the unseen class comes as it is). Shuffled pixels are
# every digit's own pixels in a random order: the same brightness as a
# digit, none of its strokes.

# %%
KINDS = ("noise", "shuffled pixels", "inverted", "unseen class")


def make_outliers(normal, unseen, seed=0):
    """Images of each kind in `KINDS`, as many as `normal` (uint8)."""
    rng = np.random.default_rng(seed)
    n = len(normal)
    noise = rng.integers(0, 256, normal.shape, dtype=np.uint8)
    flat = normal.reshape(n, -1)
    # Every digit's own pixels in a random order: the same brightness as a
    # digit, none of its strokes.
    shuffled = np.stack([row[rng.permutation(row.size)] for row in flat])
    return {
        "noise": noise,
        "shuffled pixels": shuffled.reshape(normal.shape),
        "inverted": 255 - normal,
        "unseen class": unseen,
    }


# %%
train, train_labels, test, test_labels = load_digits(args)
train = train[train_labels != args.unseen_class]
seen = test[test_labels != args.unseen_class]
calibration, normal = seen[: len(seen) // 2], seen[len(seen) // 2:]
unseen = test[test_labels == args.unseen_class]
outliers = make_outliers(normal, unseen)
epochs = args.epochs
os.makedirs(args.output_dir, exist_ok=True)


# %% [markdown]
# ## The models and the score
# `make_model` builds a small convolutional `AutoEncoder` or `VAE` (tinier
# still for `--smoke`). `auroc` is the chance that an outlier scores above a
# normal image, ties counting one half: 1 separates them perfectly, 0.5 is
# a coin toss.

# %%
def make_model(name, args):
    cls = VAE if name == "vae" else AutoEncoder
    return cls(latent_dim=args.latent_dim,
               filters=(8,) if args.smoke else (32, 64), seed=0)


def auroc(normal_scores, outlier_scores):
    """The chance that an outlier scores above a normal image (ties: 1/2)."""
    normal = np.sort(normal_scores)
    below = np.searchsorted(normal, outlier_scores, side="left")
    not_above = np.searchsorted(normal, outlier_scores, side="right")
    return float(np.mean(below + not_above) / (2 * len(normal)))


# %% [markdown]
# ## Training and scoring, model by model
# One loop over `--models`, so one cell:
#
# - **Training.** Plain `fit` on uint8 images: the models scale pixels
#   themselves.
# - **Scoring.** One score per image, higher for images the model explains
#   worse. The VAE's is seeded (it samples codes), so it repeats exactly.
#   The threshold is the `--percentile` of the calibration digits' scores.
# - **Which normal digits look unusual?** The 20 highest-scoring normal test
#   digits, over the 20 lowest.

# %%
rows = []
for name in args.models:
    # Training
    model = make_model(name, args)
    start = time.time()
    model.fit(train, batch_size=args.batch_size, epochs=epochs,
              shuffle=True, verbose=2)
    train_s = time.time() - start

    # Scoring
    threshold = np.percentile(model.anomaly_scores(calibration),
                              args.percentile)
    normal_scores = model.anomaly_scores(normal)
    row = {"model": name, "backend": keras.backend.backend(),
           "epochs": epochs, "train_s": round(train_s, 1),
           "train_digits": len(train), "threshold": float(threshold),
           "normal_flagged": float(np.mean(normal_scores > threshold))}
    for kind in KINDS:
        scores = model.anomaly_scores(outliers[kind])
        row[kind] = {"flagged": round(float(np.mean(scores > threshold)),
                                      4),
                     "auroc": round(auroc(normal_scores, scores), 4),
                     "count": len(scores)}
    rows.append(row)
    print(json.dumps(row))

    # Which normal digits look unusual?
    order = np.argsort(normal_scores)
    path = save_image_grid(
        np.concatenate([normal[order[::-1][:20]], normal[order[:20]]])
        / 255.0,
        os.path.join(args.output_dir, f"{name}_extremes.png"),
        columns=20, scale=2)
    row["extremes"] = path
    print(f"Highest (top) and lowest (bottom) scores: {path}")

# %% active="ipynb"
# from IPython.display import Image, display
# display(*(Image(row["extremes"]) for row in rows))

# %% [markdown]
# ## The results
# Per model and kind of image, the share flagged at the threshold and the
# AUROC; for the normal digits, the share flagged (near 100 % minus the
# `--percentile`, as the threshold comes from digits like them).

# %%
print(f"{'model':5} {'kind':16} {'flagged':>8} {'AUROC':>7}")
for row in rows:
    print(f"{row['model']:5} {'normal digits':16} "
          f"{row['normal_flagged']:8.3f}")
    for kind in KINDS:
        print(f"{row['model']:5} {kind:16} {row[kind]['flagged']:8.3f} "
              f"{row[kind]['auroc']:7.3f}")
result = rows
