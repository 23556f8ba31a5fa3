# %% [markdown]
# # A diffusion model on MNIST, on any Keras backend
#
# Teach a small U-Net to undo noise, watch a grid of samples sharpen epoch by
# epoch, watch a few digits come out of pure noise step by step, then use the
# same model to redraw digits (image-to-image) and to fill in their missing
# halves (inpainting). With `--conditional` the model also learns the digit's
# label, and classifier-free guidance draws the digit you ask for.
#
# The same code runs on TensorFlow, JAX and PyTorch (set `KERAS_BACKEND`
# before Keras is imported), on the GPU when the backend sees one. `--data`
# also takes a folder of MNIST idx files or of your own images.
#
# Run it as a script, `python examples/diffusion_mnist.py` (`--help` lists
# the options), or as the notebook `notebooks/diffusion_mnist.ipynb`, which is
# made from this file and opens in Colab. `--smoke` trains a tiny model on a
# few hundred images for one epoch and samples with few steps (what the tests
# run).

# %%
import argparse
import os
import sys
import time

import keras
import numpy as np

from keras_genzoo import DiffusionModel, datasets, plots
from keras_genzoo.callbacks import (
    ImageGridSaver,
    ProgressGif,
    ReverseProcessSaver,
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
    description="A diffusion model on MNIST, on any Keras backend")
parser.add_argument("--data", default="embedded_mnist",
                    help="embedded_mnist (offline, 10k images), mnist, "
                         "fashion_mnist, cifar10, a folder of MNIST idx "
                         "files or a folder of images")
parser.add_argument("--download", action="store_true",
                    help="let tfds download the dataset if needed")
parser.add_argument("--epochs", type=int, default=20)
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--widths", default="32,64",
                    help="channels of the U-Net's levels, comma-separated")
parser.add_argument("--steps", type=int, default=50,
                    help="DDIM sampling steps (any number, no retraining)")
parser.add_argument("--eta", type=float, default=0.0,
                    help="0: deterministic DDIM, 1: DDPM-like sampling")
parser.add_argument("--conditional", action="store_true",
                    help="condition the model on the digit's label")
parser.add_argument("--guidance", type=float, default=2.0,
                    help="classifier-free guidance scale (--conditional)")
parser.add_argument("--output-dir", default="outputs/diffusion_mnist")
parser.add_argument("--load", default=None, metavar="MODEL.keras",
                    help="skip training: draw the figures with a saved "
                         "DiffusionModel (from this script or "
                         "benchmarks/diffusion_mnist.py --save-dir)")
parser.add_argument("--smoke", action="store_true",
                    help="a few hundred images, one epoch, tiny model, "
                         "few sampling steps (--epochs, --widths and "
                         "--steps, given, win)")
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
    parser.set_defaults(epochs=1, widths="8,16", steps=10)
    args = parser.parse_args(argv)
if min(args.epochs, args.batch_size, args.steps) < 1:
    # (0 trained nothing, then failed at the end)
    parser.error("--epochs, --batch-size and --steps must be at least 1")

keras.utils.set_random_seed(0)
print(f"Keras {keras.__version__}, backend: {keras.backend.backend()}")

# %% [markdown]
# ## The data
# Batched `(uint8 images, labels)`. The model scales the pixels to [-1, 1]
# itself; an unconditional model ignores the labels. The validation split
# gives a `val_loss` and the digits we redraw and inpaint at the end. A
# folder of images without class sub-folders has no labels: its batches are
# bare images, which `images_and_labels` takes too.


# %%
def images_and_labels(batch):
    """A batch as numpy `(images, labels)`; labels None for bare images."""
    if isinstance(batch, (tuple, list)):
        images, labels = batch
        return np.asarray(images), np.asarray(labels)
    return np.asarray(batch), None


train_ds, val_ds = datasets.load_images(
    args.data, batch_size=args.batch_size, validation_split=0.1,
    limit=256 if args.smoke else None, download=args.download,
)
num_fixed = 8
fixed_images, fixed_labels = images_and_labels(next(iter(val_ds)))
fixed_images = fixed_images[:num_fixed]  # fewer if the batches are smaller
if fixed_labels is not None:
    fixed_labels = fixed_labels[:num_fixed]

# %% [markdown]
# ## The model
# A U-Net predicts `v = alpha * noise - sigma * image` from an image noised
# to a random level t of a cosine schedule; an exponential moving average of
# its weights (the "EMA network") is what samples. The image shape comes
# from the first batch; `fit` without `compile` uses Adam(2e-3) with a
# gradient-norm clip of 1. With `--load`, a saved model (EMA network
# included) draws the figures instead.

# %%
if args.load:
    model = keras.saving.load_model(args.load)
    if not isinstance(model, DiffusionModel):
        # (a VAE's file failed later: "unexpected keyword argument 'steps'")
        parser.error(f"--load {args.load} holds a {type(model).__name__}, "
                     "not a DiffusionModel")
    args.conditional = bool(model.num_classes)
if args.conditional and fixed_labels is None:
    raise ValueError(
        f"A conditional model needs labels, and {args.data} has none: put "
        "each class's images in a sub-folder of its own")
if args.load:
    num_classes = model.num_classes
else:
    widths = tuple(int(w) for w in args.widths.split(","))
    # the classes the data has (its class sub-folders for a folder; 10 for
    # MNIST): `load_images` names them
    num_classes = len(train_ds.class_names) if args.conditional else None
    model = DiffusionModel(num_classes=num_classes, widths=widths, seed=0)

# %% [markdown]
# ## Sampling settings
# The smoke run takes few steps and few images. `guided(n)` gives the
# sampling calls their extra arguments for `n` images: none for an
# unconditional model; for a conditional one, one digit per sample, 0..9 in
# turn, pulled towards its label by classifier-free guidance.

# %%
steps = args.steps
num_samples = 8 if args.smoke else 64


def guided(n):
    # conditional: one digit per sample, 0..9 in turn, pulled towards
    # its label by classifier-free guidance
    if not args.conditional:
        return {}
    return {"labels": np.arange(n) % num_classes, "guidance": args.guidance}


# %% [markdown]
# ## Watching it learn
# A grid of samples from the same noise after every epoch (drawn by the EMA
# network; the extra arguments go to `generate`), and a GIF of them. At the
# end, `ReverseProcessSaver` writes one grid per moment of the way from pure
# noise to digits, and a second `ProgressGif`, listed after it, animates
# them. With `--load` there is no training, and this step does nothing.

# %%
paths = []
history = None
seconds = 0.0
if not args.load:
    epochs = args.epochs
    saver = ImageGridSaver(args.output_dir, num_images=num_samples, seed=0,
                           steps=steps, eta=args.eta, **guided(num_samples))
    progress_gif = ProgressGif(
        saver, path=os.path.join(args.output_dir, "samples.gif"))
    reverse = ReverseProcessSaver(
        os.path.join(args.output_dir, "reverse"), num_images=num_fixed,
        steps=steps, frames=min(26, steps + 1), seed=0,
        columns=num_fixed, eta=args.eta, **guided(num_fixed))
    reverse_gif = ProgressGif(
        reverse, path=os.path.join(args.output_dir, "reverse.gif"),
        frame_seconds=0.15)

    start = time.time()
    history = model.fit(
        train_ds, validation_data=val_ds, epochs=epochs,
        callbacks=[saver, progress_gif, reverse, reverse_gif], verbose=2)
    seconds = time.time() - start
    logs = {k: round(float(v[-1]), 4) for k, v in history.history.items()}
    print(f"Trained {epochs} epoch(s) in {seconds:.1f} s "
          f"(sampling callbacks included): {logs}")
    paths = [saver.paths[-1], progress_gif.path, reverse_gif.path]

# %% active="ipynb"
# from IPython.display import Image, display
# if not args.load:
#     display(Image(saver.paths[-1]), Image(progress_gif.path),
#             Image(reverse_gif.path))

# %% [markdown]
# The losses per epoch, training solid and validation dashed
# (`keras_genzoo.plots`; after training only).

# %%
if history is not None:
    history_figure = plots.plot_history(history)
    paths.append(os.path.join(args.output_dir, "diffusion_history.png"))
    history_figure.savefig(paths[-1])

# %% active="ipynb"
# if history is not None:
#     display(history_figure)

# %% [markdown]
# ## New digits
# DDIM from pure noise in `steps` steps; the same seed gives the same
# digits. A conditional model draws one row per digit, guided.

# %%
if args.conditional:
    labels = np.repeat(np.arange(num_classes), 10)
    samples = model.generate(len(labels), steps=steps, seed=1, eta=args.eta,
                             labels=labels, guidance=args.guidance)
    columns = 10
else:
    samples = model.generate(num_samples, steps=steps, seed=1,
                             eta=args.eta)
    columns = None
paths.append(save_image_grid(
    samples, os.path.join(args.output_dir, "diffusion_samples.png"),
    columns=columns, scale=2))

# %% active="ipynb"
# display(Image(paths[-1]))

# %% [markdown]
# ## From noise to digit, in one picture
# One row per sample, pure noise on the left (t = 1), the digit on the
# right (t = 0): `plots.plot_reverse_process` draws `model.reverse_process`.

# %%
reverse_figure = plots.plot_reverse_process(
    model, num_fixed, steps=steps, frames=min(10, steps + 1), seed=0,
    eta=args.eta, **guided(num_fixed))
paths.append(os.path.join(args.output_dir, "diffusion_reverse.png"))
reverse_figure.savefig(paths[-1])

# %% active="ipynb"
# display(reverse_figure)

# %% [markdown]
# ## Image-to-image
# Noise real digits to level `strength` and denoise them again: at 0.25 they
# barely change, at 1.0 they are new samples. Rows: the digits, then
# strength 0.25, 0.5, 0.75 and 1.0 (same seed for all). `steps * strength`
# steps are taken each time. A conditional model is told each digit's own
# label, so it redraws the same digit.

# %%
own = ({"labels": fixed_labels, "guidance": args.guidance}
       if args.conditional else {})
rows = [fixed_images / 255.0]
for strength in (0.25, 0.5, 0.75, 1.0):
    rows.append(model.generate(images=fixed_images, strength=strength,
                               steps=steps, seed=2, eta=args.eta, **own))
paths.append(save_image_grid(
    np.concatenate(rows),
    os.path.join(args.output_dir, "diffusion_img2img.png"),
    columns=len(fixed_images), scale=2))

# %% active="ipynb"
# display(Image(paths[-1]))

# %% [markdown]
# ## Inpainting
# The mask is 1 where pixels are to be generated: the lower half. The upper
# half stays as given and the model draws a lower half that fits. Rows: the
# digits, what the model is given (masked pixels grey), and two fillings
# with different seeds. A conditional model is told to keep each digit's own
# label (`own`, as above).

# %%
height, width = fixed_images.shape[1:3]
mask = np.zeros((height, width), "float32")
mask[height // 2:] = 1.0
given = fixed_images / 255.0 * (1.0 - mask[..., None]) + (
    0.5 * mask[..., None])
rows = [fixed_images / 255.0, given]
for seed in (3, 4):
    rows.append(model.inpaint(fixed_images, mask, steps=steps, seed=seed,
                              eta=args.eta, **own))
paths.append(save_image_grid(
    np.concatenate(rows),
    os.path.join(args.output_dir, "diffusion_inpaint.png"),
    columns=len(fixed_images), scale=2))

# %% active="ipynb"
# display(Image(paths[-1]))

# %% [markdown]
# ## Save
# The `.keras` file holds the U-Net, its EMA copy, the optimizer state and
# the seed generator.

# %%
model_path = os.path.join(args.output_dir, "diffusion.keras")
model.save(model_path)
paths.append(model_path)
for path in paths:
    print(f"Wrote {path}")
result = {"history": history.history if history else None,
          "seconds": seconds, "paths": paths}
