# %% [markdown]
# # A denoising auto-encoder on MNIST, on any Keras backend
#
# Train a convolutional auto-encoder that sees noisy digits and learns to
# return the clean ones, then use it to denoise digits it has never seen.
# With `--noise-stddev 0` it is a plain auto-encoder.
#
# The same code runs on TensorFlow, JAX and PyTorch (set `KERAS_BACKEND`
# before Keras is imported), on the GPU when the backend sees one.
#
# Run it as a script, `python examples/autoencoder_mnist.py` (`--help` lists
# the options), or as the notebook `notebooks/autoencoder_mnist.ipynb`, which
# is made from this file and opens in Colab. `--smoke` trains a tiny model on
# a few hundred images for one epoch (what the tests run).

# %%
import argparse
import os
import sys
import time

import keras
import numpy as np

from keras_genzoo import AutoEncoder, datasets, plots
from keras_genzoo.callbacks import ReconstructionGridSaver, save_image_grid

# %% [markdown]
# ## Options
# From a shell they are the command line's; in a notebook, put them in
# `NOTEBOOK_ARGS`, for example `["--epochs", "5", "--noise-stddev", "0.5"]`.

# %% tags=["parameters"]
NOTEBOOK_ARGS = []

# %%
parser = argparse.ArgumentParser(
    description="A denoising auto-encoder on MNIST, on any Keras backend")
parser.add_argument("--data", default="embedded_mnist",
                    help="embedded_mnist (offline, 10k images), mnist, "
                         "fashion_mnist, cifar10 or a folder of images")
parser.add_argument("--download", action="store_true",
                    help="let tfds download the dataset if needed")
parser.add_argument("--epochs", type=int, default=15)
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--latent-dim", type=int, default=32)
parser.add_argument("--noise-stddev", type=float, default=0.3)
parser.add_argument("--output-dir", default="outputs/autoencoder_mnist")
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
    parser.set_defaults(epochs=1, latent_dim=8)
    args = parser.parse_args(argv)
if min(args.epochs, args.batch_size, args.latent_dim) < 1:
    # (0 trained nothing, then failed at the end)
    parser.error("--epochs, --batch-size and --latent-dim must be at least 1")

keras.utils.set_random_seed(0)
print(f"Keras {keras.__version__}, backend: {keras.backend.backend()}")

# %% [markdown]
# ## The data
# Batched `(uint8 images, labels)`; labels are ignored. A folder of images
# without class sub-folders gives bare image batches, which
# `images_and_labels` takes too.


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
clean = images_and_labels(next(iter(val_ds)))[0][:10].astype(
    "float32") / 255.0

# %% [markdown]
# ## The model
# Noise is added to the encoder's input during training only; the loss
# compares the output with the clean image.

# %%
model = AutoEncoder(
    latent_dim=args.latent_dim,
    noise_stddev=args.noise_stddev,
    filters=(8, 16) if args.smoke else (32, 64),
    seed=0,
)

# %% [markdown]
# ## Watching it learn
# Noisy validation digits, made the same way, to watch it denoise every few
# epochs.

# %%
rng = np.random.default_rng(0)
noisy = np.clip(clean + rng.normal(0, args.noise_stddev, clean.shape),
                0, 1).astype("float32")
epochs = args.epochs
callbacks = [ReconstructionGridSaver(noisy, args.output_dir,
                                     every_n_epochs=max(1, epochs // 5),
                                     prefix="denoised")]

start = time.time()
history = model.fit(train_ds, validation_data=val_ds, epochs=epochs,
                    callbacks=callbacks, verbose=2)
seconds = time.time() - start
print(f"Trained {epochs} epoch(s) in {seconds:.1f} s: "
      f"loss {history.history['loss'][-1]:.2f}, "
      f"val_loss {history.history['val_loss'][-1]:.2f}")

# %% [markdown]
# ## Denoising
# Rows are clean digits, their noisy versions, and what the auto-encoder
# makes of the noisy ones.

# %%
denoised = model.reconstruct(noisy)
grid_path = save_image_grid(
    np.concatenate([clean, noisy, denoised]),
    os.path.join(args.output_dir, "autoencoder_denoising.png"),
    columns=len(clean), scale=2,
)
error_noisy = float(np.mean((noisy - clean) ** 2))
error_denoised = float(np.mean((denoised - clean) ** 2))
print(f"Mean squared error to the clean digits: noisy {error_noisy:.4f},"
      f" denoised {error_denoised:.4f}")
print(f"Denoising grid: {grid_path}")

# %% active="ipynb"
# from IPython.display import Image, display
# display(Image(grid_path))

# %% [markdown]
# ## Plots
# The losses per epoch (training solid, validation dashed) and where the
# validation digits land in the latent space, coloured by digit (a PCA
# projection of the codes onto their two main directions).

# %%
figures = {
    "autoencoder_history.png": plots.plot_history(history),
    "autoencoder_latent_space.png": plots.plot_latent_space(model, val_ds),
}
plot_paths = []
for name, figure in figures.items():
    plot_paths.append(os.path.join(args.output_dir, name))
    figure.savefig(plot_paths[-1])
    print(f"Plot:           {plot_paths[-1]}")

# %% active="ipynb"
# display(*figures.values())

# %% [markdown]
# ## Saving
# One `.keras` file holds the architecture, the weights and the optimizer
# state; `keras.models.load_model` reads it on any backend.

# %%
model_path = os.path.join(args.output_dir, "autoencoder.keras")
model.save(model_path)
print(f"Model:          {model_path}")
result = {"history": history.history, "seconds": seconds,
          "mse_noisy": error_noisy, "mse_denoised": error_denoised,
          "paths": [grid_path, model_path] + plot_paths}
