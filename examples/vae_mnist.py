# %% [markdown]
# # A variational auto-encoder on MNIST, on any Keras backend
#
# Train a convolutional VAE on handwritten digits, watch sample grids appear
# while it trains, then draw new digits, reconstruct test digits and walk the
# latent space between two of them. With `--conditional` the VAE also sees
# each digit's label (a conditional VAE), and you choose which digit it draws.
#
# The same code runs on TensorFlow, JAX and PyTorch; pick one with the
# `KERAS_BACKEND` environment variable before Keras is imported. It uses the
# GPU when the backend sees one, the CPU otherwise.
#
# Run it as a script, `python examples/vae_mnist.py` (`--help` lists the
# options), or as the notebook `notebooks/vae_mnist.ipynb`, which is made
# from this file and opens in Colab. `--smoke` trains a tiny model on a few
# hundred images for one epoch (what the tests run).

# %%
import argparse
import os
import sys
import time

import keras
import numpy as np

from keras_genzoo import VAE, datasets, plots
from keras_genzoo.callbacks import (
    ImageGridSaver,
    ReconstructionGridSaver,
    save_image_grid,
)

# %% [markdown]
# ## Options
# From a shell they are the command line's; in a notebook, put them in
# `NOTEBOOK_ARGS`, for example `["--epochs", "5", "--conditional"]`.

# %% tags=["parameters"]
NOTEBOOK_ARGS = []

# %%
parser = argparse.ArgumentParser(
    description="A variational auto-encoder on MNIST, on any Keras backend")
parser.add_argument("--data", default="embedded_mnist",
                    help="embedded_mnist (offline, 10k images), mnist, "
                         "fashion_mnist, cifar10 or a folder of images")
parser.add_argument("--download", action="store_true",
                    help="let tfds download the dataset if needed")
parser.add_argument("--epochs", type=int, default=25)
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--latent-dim", type=int, default=16)
parser.add_argument("--conditional", action="store_true",
                    help="a conditional VAE: it learns from the labels "
                         "and draws the digit you ask for")
parser.add_argument("--output-dir", default="outputs/vae_mnist")
parser.add_argument("--smoke", action="store_true",
                    help="a few hundred images, one epoch, tiny model "
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
    parser.set_defaults(epochs=1, latent_dim=2)
    args = parser.parse_args(argv)
if min(args.epochs, args.batch_size, args.latent_dim) < 1:
    # (0 trained nothing, then failed at the end)
    parser.error("--epochs, --batch-size and --latent-dim must be at least 1")

keras.utils.set_random_seed(0)
print(f"Keras {keras.__version__}, backend: {keras.backend.backend()}")

# %% [markdown]
# ## The data
# `load_images` returns batched train and validation `tf.data.Dataset`s of
# `(uint8 images, labels)`; the VAE scales the pixels itself. A plain VAE
# ignores the labels; a conditional one feeds them to its encoder and
# decoder. A folder of images without class sub-folders has no labels: its
# batches are bare images, which `images_and_labels` takes too.


# %%
def images_and_labels(batch):
    """A batch as numpy `(images, labels)`; labels None for bare images."""
    if isinstance(batch, (tuple, list)):
        images, labels = batch
        return np.asarray(images), np.asarray(labels)
    return np.asarray(batch), None


train_ds, val_ds = datasets.load_images(
    args.data,
    batch_size=args.batch_size,
    validation_split=0.1,
    limit=512 if args.smoke else None,
    download=args.download,
)
fixed_images, fixed_labels = images_and_labels(next(iter(val_ds)))
fixed_images = fixed_images[:10]  # uint8
if args.conditional and fixed_labels is None:
    raise ValueError(
        f"--conditional needs labels, and {args.data} has none: put each "
        "class's images in a sub-folder of its own")
if args.conditional:
    fixed_labels = fixed_labels[:10]  # int
    # the classes the data has (its class sub-folders for a folder; 10 for
    # MNIST): `load_images` names them
    num_classes = len(train_ds.class_names)
else:
    fixed_labels = num_classes = None

# %% [markdown]
# ## The model
# The image shape is taken from the first batch; `fit` without `compile`
# uses Adam(1e-3).

# %%
vae = VAE(
    latent_dim=args.latent_dim,
    filters=(8, 16) if args.smoke else (32, 64),
    num_classes=num_classes,
    seed=0,
)

# %% [markdown]
# ## Watching it learn
# One grid of samples from fixed latent noise, and one of fixed validation
# digits over their reconstructions, every few epochs.

# %%
epochs = args.epochs
every = max(1, epochs // 5)
callbacks = [
    ImageGridSaver(args.output_dir, num_images=64, every_n_epochs=every),
    ReconstructionGridSaver(fixed_images, args.output_dir,
                            every_n_epochs=every, labels=fixed_labels),
]

start = time.time()
history = vae.fit(train_ds, validation_data=val_ds, epochs=epochs,
                  callbacks=callbacks, verbose=2)
seconds = time.time() - start
# 4 significant digits: a KL term of 0.003 is not 0.0
logs = {k: float(f"{v[-1]:.4g}") for k, v in history.history.items()}
print(f"Trained {epochs} epoch(s) in {seconds:.1f} s: {logs}")

# %% [markdown]
# ## Using the trained model
# New digits from random codes, test digits over their reconstructions, and
# a walk through the latent space from one test digit to another.

# %%
samples_path = save_image_grid(
    vae.generate(64, seed=0),
    os.path.join(args.output_dir, "vae_samples.png"), scale=2,
)
reconstructions = vae.reconstruct(fixed_images, fixed_labels)
reconstructions_path = save_image_grid(
    np.concatenate([fixed_images / 255.0, reconstructions]),
    os.path.join(args.output_dir, "vae_reconstructions.png"),
    columns=len(fixed_images), scale=2,
)
walk_path = save_image_grid(
    vae.interpolate(fixed_images[0], fixed_images[1], steps=10,
                    **({} if fixed_labels is None else
                       {"labels": fixed_labels[0]})),
    os.path.join(args.output_dir, "vae_interpolation.png"),
    columns=10, scale=2,
)
paths = [samples_path, reconstructions_path, walk_path]
print(f"Samples:         {samples_path}")
print(f"Reconstructions: {reconstructions_path}")
print(f"Interpolation:   {walk_path}")

# %% active="ipynb"
# from IPython.display import Image, display
# display(Image(samples_path), Image(reconstructions_path), Image(walk_path))

# %% [markdown]
# ## Choosing the digit
# Conditional VAEs only (`--conditional`): one row per class, the same codes
# in every column, so a column keeps its style across the digits.

# %%
if args.conditional:
    z = np.tile(np.random.default_rng(1).standard_normal(
        (10, vae.latent_dim)).astype("float32"), (num_classes, 1))
    labels = np.repeat(np.arange(num_classes), 10)
    paths.append(save_image_grid(
        vae.decode(z, labels),
        os.path.join(args.output_dir, "vae_digits_by_class.png"),
        columns=10, scale=2,
    ))
    print(f"Digits by class: {paths[-1]}")

# %% active="ipynb"
# if args.conditional:
#     display(Image(paths[-1]))

# %% [markdown]
# ## Plots
# `keras_genzoo.plots` draws matplotlib figures: the losses per epoch
# (training solid, validation dashed), where the validation digits land in
# the latent space (coloured by digit; a PCA projection above two
# dimensions), and the digits decoded over a plane of the latent space.
# A notebook shows each figure; the script saves them as PNG files.

# %%
val_images, val_labels = zip(*[images_and_labels(b) for b in val_ds])
val_images = np.concatenate(val_images)
val_labels = None if val_labels[0] is None else np.concatenate(val_labels)
figures = {
    "vae_history.png": plots.plot_history(history),
    "vae_latent_space.png": plots.plot_latent_space(vae, val_images,
                                                    val_labels),
    "vae_latent_manifold.png": plots.plot_latent_manifold(
        vae, n=15 if not args.smoke else 5,
        label=1 if args.conditional else None),
}
for name, figure in figures.items():
    paths.append(os.path.join(args.output_dir, name))
    figure.savefig(paths[-1])
    print(f"Plot:            {paths[-1]}")

# %% active="ipynb"
# display(*figures.values())

# %% [markdown]
# ## Saving
# One `.keras` file holds the architecture, the weights and the optimizer
# state; `keras.models.load_model` reads it on any backend.

# %%
model_path = os.path.join(args.output_dir, "vae.keras")
vae.save(model_path)
print(f"Model:           {model_path}")
result = {"history": history.history, "seconds": seconds,
          "paths": paths + [model_path]}
