# %% [markdown]
# # A DCGAN on MNIST, on any Keras backend (optionally class-conditional)
#
# Train a generator and a LeakyReLU discriminator in alternation, watch a
# grid of samples from fixed noise sharpen epoch by epoch, and get an animated
# GIF of the whole run. With `--conditional` both networks see the digit's
# label, and you choose which digit to draw.
#
# The same code runs on TensorFlow, JAX and PyTorch (set `KERAS_BACKEND`
# before Keras is imported), on the GPU when the backend sees one. `--data`
# also takes a folder of MNIST idx files (all 60,000 training digits) or of
# your own images.
#
# Run it as a script, `python examples/gan_mnist.py` (`--help` lists the
# options), or as the notebook `notebooks/gan_mnist.ipynb`, which is made
# from this file and opens in Colab. `--smoke` trains a tiny model on a few
# hundred images for one epoch (what the tests run).

# %%
import argparse
import os
import sys
import time

import keras
import numpy as np

from keras_genzoo import GAN, WGANGP, datasets, plots
from keras_genzoo.callbacks import ImageGridSaver, ProgressGif, save_image_grid

# %% [markdown]
# ## Options
# From a shell they are the command line's; in a notebook, put them in
# `NOTEBOOK_ARGS`, for example `["--epochs", "5", "--conditional"]`.

# %% tags=["parameters"]
NOTEBOOK_ARGS = []

# %%
parser = argparse.ArgumentParser(
    description="A DCGAN on MNIST, on any Keras backend "
                "(optionally class-conditional)")
parser.add_argument("--data", default="embedded_mnist",
                    help="embedded_mnist (offline, 10k images), mnist, "
                         "fashion_mnist, cifar10, a folder of MNIST idx "
                         "files or a folder of images")
parser.add_argument("--download", action="store_true",
                    help="let tfds download the dataset if needed")
parser.add_argument("--model", choices=["dcgan", "wgan-gp"],
                    default="dcgan")
parser.add_argument("--conditional", action="store_true",
                    help="condition both networks on the labels")
parser.add_argument("--epochs", type=int, default=20)
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--output-dir", default="outputs/gan_mnist")
parser.add_argument("--smoke", action="store_true",
                    help="a few hundred images, one epoch, tiny model "
                         "(--epochs, given, wins)")
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
    parser.set_defaults(epochs=1)
    args = parser.parse_args(argv)
if min(args.epochs, args.batch_size) < 1:
    # (0 trained nothing, then failed at the end)
    parser.error("--epochs and --batch-size must be at least 1")

keras.utils.set_random_seed(0)
print(f"Keras {keras.__version__}, backend: {keras.backend.backend()}")

# %% [markdown]
# ## The data
# Batched `(uint8 images, labels)`. An unconditional GAN ignores the labels;
# a conditional one learns "which digit" from them. GANs have no validation
# loss, so everything trains.

# %%
train_ds, _ = datasets.load_images(
    args.data, batch_size=args.batch_size, validation_split=0,
    limit=256 if args.smoke else None, download=args.download,
)
# the classes the data has (its class sub-folders for a folder; 10 for
# MNIST): `load_images` names them where its batches have labels
class_names = getattr(train_ds, "class_names", None)
if args.conditional and class_names is None:
    raise ValueError(
        f"--conditional needs labels, and {args.data} has none: put each "
        "class's images in a sub-folder of its own")

# %% [markdown]
# ## The model
# DCGAN: Dense -> Conv2DTranspose + BatchNorm generator, strided Conv2D +
# LeakyReLU + Dropout discriminator, Adam(2e-4, beta_1=0.5) for both.
# WGAN-GP: a critic with a gradient penalty, 5 critic steps per generator
# step. The image shape comes from the first batch.

# %%
small = dict(latent_dim=16, generator_filters=(16, 8),
             discriminator_filters=(8, 16)) if args.smoke else {}
num_classes = len(class_names) if args.conditional else None
if args.model == "dcgan":
    model = GAN(num_classes=num_classes, seed=0, **small)
else:
    model = WGANGP(num_classes=num_classes, seed=0, **small)

# %% [markdown]
# ## Watching it learn
# The same 64 noise vectors every epoch (with labels 0..9 in turn for a
# conditional GAN), and a GIF of all the grids at the end.

# %%
epochs = args.epochs
saver = ImageGridSaver(args.output_dir, num_images=64, seed=0)
gif = ProgressGif(saver)

start = time.time()
history = model.fit(train_ds, epochs=epochs, callbacks=[saver, gif],
                    verbose=2)
seconds = time.time() - start
logs = {k: round(float(v[-1]), 3) for k, v in history.history.items()}
print(f"Trained {epochs} epoch(s) in {seconds:.1f} s: {logs}")

# %% active="ipynb"
# from IPython.display import Image, display
# display(Image(saver.paths[-1]), Image(gif.path))

# %% [markdown]
# ## Plots
# The two players' losses per epoch in one panel (the discriminator's
# accuracy, or the critic's Wasserstein estimate and gradient penalty, in
# their own), and the saved grids from the first epoch to the last: this
# run's (`saver.paths`), not those an earlier run left in the same folder.

# %%
progress_figure = plots.plot_progress(saver)
figures = {
    f"{args.model}_history.png": plots.plot_history(history),
    f"{args.model}_progress.png": progress_figure,
}
plot_paths = []
for name, figure in figures.items():
    plot_paths.append(os.path.join(args.output_dir, name))
    figure.savefig(plot_paths[-1])

# %% active="ipynb"
# display(*figures.values())

# %% [markdown]
# ## Saving
# One `.keras` file holds both networks, both optimizers' state and the
# noise generator's state; `keras.models.load_model` reads it on any
# backend.

# %%
model_path = os.path.join(args.output_dir, f"{args.model}.keras")
model.save(model_path)
paths = [saver.paths[-1], gif.path, model_path] + plot_paths

# %% [markdown]
# ## Choosing the digit
# Conditional GANs only (`--conditional`): one row per class.

# %%
if args.conditional:
    labels = np.repeat(np.arange(num_classes), 10)
    paths.append(save_image_grid(
        model.generate(len(labels), seed=1, labels=labels),
        os.path.join(args.output_dir, "digits_by_class.png"),
        columns=10, scale=2,
    ))
for path in paths:
    print(f"Wrote {path}")
result = {"history": history.history, "seconds": seconds, "paths": paths}

# %% active="ipynb"
# if args.conditional:
#     display(Image(paths[-1]))
