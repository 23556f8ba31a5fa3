"""Figures of training, samples, latent spaces and attention (matplotlib).

Every function returns a `matplotlib.figure.Figure`: a notebook shows it
inline (as the last expression of a cell, or with `display(fig)`; it has
its own `_repr_png_`, so it needs no `%matplotlib inline`), a script saves
it with `fig.savefig("name.png")`. The figures are made without
`matplotlib.pyplot`, so they open no window, need no display and are not
kept alive by pyplot's figure list. Nothing here depends on the
backend: the models' numpy methods (`generate`, `encode`, `decode`) and
`keras.ops` give the numbers.

- `plot_history(history)`: every metric `fit` logged, train and validation
  together, one panel per kind of quantity (a GAN's `d_loss` and `g_loss`
  share one).
- `plot_samples(model_or_images)`: a grid of samples, as the PNG grids.
- `plot_reverse_process(model)`: a diffusion model's way from noise to
  images, one row per sample.
- `plot_latent_space(model, images, labels)`: an auto-encoder's or VAE's
  codes in 2-D (a PCA projection above 2 dimensions), coloured by label.
- `plot_latent_manifold(model)`: the images decoded over a plane of the
  latent space.
- `plot_attention(gpt, text)`: a MiniGPT's causal self-attention over a
  text, one panel per head.
- `plot_progress(directory)`: the grids `ImageGridSaver` saved during a
  run, first epoch to last.
"""

import functools
import glob
import io
import os
import re
import warnings

import numpy as np
from keras import ops

from keras_genzoo import _inputs
from keras_genzoo import backend as zoo_backend
from keras_genzoo.callbacks import image_grid
from keras_genzoo.layers.transformer import CausalSelfAttentionBlock

# Logged quantities drawn in one panel together (a GAN's two players)
ADVERSARIAL = ("d_loss", "g_loss")
_GRID_FILE = re.compile(r"_epoch_(\d+)\.png$")


@functools.cache
def _figure_class():
    from matplotlib.figure import Figure

    class GenzooFigure(Figure):
        """A `matplotlib.figure.Figure` that Jupyter shows as a PNG.

        A figure made without pyplot has no picture for IPython unless
        pyplot's inline backend was loaded (in a fresh kernel it prints
        `<Figure size ...>`), so it brings its own.
        """

        def _repr_png_(self):
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", bbox_inches="tight")
            return buffer.getvalue()

    return GenzooFigure


def _figure(rows, columns, width=3.6, height=3.0, **kwargs):
    figure = _figure_class()(figsize=(columns * width, rows * height),
                             layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, **kwargs)
    return figure, axes


def _hide_unused(axes, used):
    for ax in axes.flat[used:]:
        ax.remove()


def _show_image(ax, grid):
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0,
              vmax=255, interpolation="nearest")
    ax.set_axis_off()


def _history_dict(history):
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise ValueError(
            "`history` must be what `fit` returns (a keras.callbacks."
            f"History) or its `.history` dict; got {type(history).__name__}.")
    logs = {str(k): np.asarray(v, dtype="float64").reshape(-1)
            for k, v in logs.items() if len(np.atleast_1d(v))}
    if not logs:
        raise ValueError(
            "`history` has no logged values: train with `fit` first and "
            "pass what it returns.")
    return logs


def plot_history(history, columns=None):
    """Every metric of a `fit`, train and validation on shared axes.

    One panel per kind of quantity: `loss` and `val_loss` together,
    `kl_loss` and `val_kl_loss` together, and so on; a GAN's `d_loss` and
    `g_loss` (and their validation values) share one "adversarial losses"
    panel. Training values are solid lines, validation values dashed, in
    the same colour.

    Args:
        history: what `fit` returns (a `keras.callbacks.History`), or its
            `.history` dict of lists (one value per epoch). Values logged
            only at some epochs (`validation_freq`, `QualityMonitor`) are
            drawn at their epochs where the `History` of a keras_genzoo
            model says which (`logged_epochs`); a dict does not say: they
            are drawn at epochs 1, 2, ... with a warning. NaN and Inf
            values (a diverged epoch) are not drawn, with a warning.
        columns: panels per row (default: up to 3).

    Returns:
        A `matplotlib.figure.Figure`.

    Raises:
        ValueError: `history` is neither, or holds no values.

    Examples:
        >>> fig = plot_history({"loss": [3.0, 2.0, 1.5],
        ...                     "val_loss": [3.1, 2.2, 1.9],
        ...                     "kl_loss": [1.0, 1.2, 1.3]})
        >>> [ax.get_title() for ax in fig.axes]
        ['loss', 'kl_loss']
    """
    from matplotlib.ticker import MaxNLocator

    logs = _history_dict(history)
    logged = getattr(history, "logged_epochs", None) or {}
    longest = max(len(values) for values in logs.values())
    epochs_of, unknown = {}, []
    for key, values in logs.items():
        if len(logged.get(key, ())) == len(values):
            epochs_of[key] = np.asarray(logged[key])
        else:
            epochs_of[key] = np.arange(1, len(values) + 1)
            if len(values) < longest:
                unknown.append(f"`{key}` ({len(values)} values)")
    if unknown:
        warnings.warn(
            f"{', '.join(unknown)}: fewer values than the {longest} epochs, "
            "logged only at some epochs (`validation_freq`, "
            "`QualityMonitor(every_n_epochs=)`), and which epochs is not "
            "known: they are drawn at epochs 1, 2, ... Pass the `History` "
            "a keras_genzoo model's `fit` returns (it records the epochs) "
            "rather than its `.history` dict.", stacklevel=2)
    bad = []
    for key, values in logs.items():
        finite = np.isfinite(values)
        if not finite.all():
            bad.append(f"`{key}` at epoch(s) "
                       f"{epochs_of[key][~finite].tolist()[:5]}")
    if bad:
        # (a gap in a line, or an empty panel, said nothing)
        warnings.warn(
            f"NaN or Inf values, not drawn: {'; '.join(bad)} (the model "
            "diverged there, or a QualityMonitor scored diverged samples).",
            stacklevel=2)
    panels = {}
    for key in logs:
        base = key[4:] if key.startswith("val_") else key
        kind = "adversarial losses" if base in ADVERSARIAL else base
        panels.setdefault(kind, {}).setdefault(base, []).append(key)
    # (None was a TypeError, where the other plots take it as the default)
    columns = min(3 if columns is None else _inputs.check_count(
        columns, "columns"), len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = _figure(rows, columns)
    colours = [f"C{i}" for i in range(10)]
    for ax, (kind, bases) in zip(axes.flat, panels.items()):
        for colour, (base, keys) in zip(colours, bases.items()):
            for key in sorted(keys, key=lambda k: k.startswith("val_")):
                values = logs[key]
                epochs = epochs_of[key]
                validation = key.startswith("val_")
                if len(bases) > 1:  # e.g. d_loss, validation d_loss
                    label = f"validation {base}" if validation else base
                else:
                    label = "validation" if validation else "train"
                ax.plot(epochs, values, color=colour,
                        linestyle="--" if validation else "-",
                        marker="o" if len(values) <= 12 else None,
                        markersize=3, label=label)
        ax.set_title(kind)
        ax.set_xlabel("epoch")
        # (one tick for a one-epoch history: at least two were 0.945 ...
        # 1.065, written over one another)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
        if len(ax.lines) > 1:
            ax.legend(fontsize="small")
    _hide_unused(axes, len(panels))
    return figure


def _is_text_model(model):
    from keras_genzoo.models.language import CharLanguageModel

    return isinstance(model, CharLanguageModel)


def _sample_images(model_or_images, num, seed, labels, what):
    if _is_text_model(model_or_images):
        raise ValueError(
            f"{what} draws images; {type(model_or_images).__name__} "
            "generates text: print `model.generate(prompt)` instead.")
    if hasattr(model_or_images, "generate"):
        kwargs = {} if labels is None else {"labels": labels}
        return model_or_images.generate(num, seed=seed, **kwargs)
    if labels is not None:
        raise ValueError(
            f"{what}: `labels` choose what a conditional model draws; "
            "they do not apply to images you pass.")
    message = (f"{what} takes a model with `generate` or an array of "
               f"images (N, H, W, C) in [0, 1]; got "
               f"{type(model_or_images).__name__}")
    try:
        images = _inputs.to_numpy(model_or_images, "The images")
    except (TypeError, ValueError) as error:
        raise ValueError(f"{message}.") from error
    if images.dtype.kind not in "iuf" or images.ndim not in (3, 4):
        raise ValueError(f"{message} of shape {images.shape}, dtype "
                         f"{images.dtype}.")
    if images.ndim == 3:
        from keras_genzoo.metrics import _is_single_image

        # one (H, W, C) image, as the metrics read it (before: H strips of
        # W x C pixels), else grayscale images without a channel axis
        images = (images[None] if _is_single_image(
            images.shape, f"The images given to {what}")
                  else images[..., None])
    # the metrics' checks: values outside [0, 1] (e.g. a tanh GAN's
    # [-1, 1]), 0..255 floats and NaN were clipped into a grid in silence,
    # an empty array was a ZeroDivisionError
    _inputs.check_image_batch(images, what=f"The images given to {what}")
    return _inputs.scale_pixels(images)


def plot_samples(model_or_images, num=64, seed=None, labels=None,
                 columns=None, title=None):
    """A grid of samples as a figure (the same layout as the PNG grids).

    Args:
        model_or_images: an image model with `generate` (a VAE, GAN,
            diffusion model...), or images `(N, H, W, C)` (floats in [0, 1]
            or uint8) to show as they are.
        num: how many samples to draw from a model.
        seed: optional integer; the same seed draws the same samples.
        labels: the classes a conditional model draws (one int for all, or
            one per sample).
        columns: images per row (default: the smallest square).
        title: optional title above the grid.

    Returns:
        A `matplotlib.figure.Figure` with one axes.

    Raises:
        ValueError: a text model, something that is neither a model nor
            images, or images outside [0, 1] (floats) or 0..255 (ints), with
            NaN, or none.

    Examples:
        >>> import numpy as np
        >>> fig = plot_samples(np.random.default_rng(0).random((6, 8, 8, 1)),
        ...                    columns=3)
        >>> len(fig.axes), fig.axes[0].images[0].get_array().shape
        (1, (22, 32))
    """
    images = _sample_images(model_or_images, num, seed, labels,
                            "plot_samples")
    grid = image_grid(images, columns=columns)
    height, width = grid.shape[:2]
    scale = 6.0 / max(height, width)
    figure, axes = _figure(1, 1, width=max(width * scale, 2.0),
                           height=max(height * scale, 2.0))
    _show_image(axes[0, 0], grid)
    if title:
        axes[0, 0].set_title(title)
    return figure


def plot_reverse_process(model_or_states, num=8, steps=50, frames=10,
                         seed=None, eta=0.0, labels=None, guidance=None):
    """A diffusion model's way from noise to images: one row per sample.

    Columns go from pure noise (left) to the final image (right), each
    titled with its time `t` (1 is noise, 0 the image). It draws with
    `model.reverse_process` (or takes what it returned) and shows the
    states as `plot_samples` does.

    Args:
        model_or_states: a `DiffusionModel`, or the states its
            `reverse_process` returned, `(num, frames, H, W, C)` (then the
            other arguments are not used).
        num: how many samples (rows).
        steps: DDIM sampling steps.
        frames: states shown per sample, evenly spaced (at least 2).
        seed: optional integer; the same seed as `generate` gives the same
            final images.
        eta: DDIM's noise (0: deterministic; see `generate`).
        labels: the classes a conditional model draws.
        guidance: classifier-free guidance scale (see `generate`).

    Returns:
        A `matplotlib.figure.Figure` with one axes.

    Raises:
        ValueError: neither a model with `reverse_process` nor states of
            shape `(num, frames, H, W, C)`.

    Examples:
        >>> import numpy as np
        >>> states = np.linspace(1, 0, 3)[None, :, None, None, None] \\
        ...     * np.ones((2, 3, 8, 8, 1))   # 2 samples, 3 states each
        >>> fig = plot_reverse_process(states)
        >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
        ['1.00', '0.50', '0.00']
    """
    times = None
    if hasattr(model_or_states, "reverse_process"):
        from keras_genzoo.models.diffusion import reverse_process_times

        states = model_or_states.reverse_process(
            num, steps=steps, frames=frames, seed=seed, eta=eta,
            labels=labels, guidance=guidance)
        # the states' own times: whole steps (with 3 frames of 3 steps,
        # the middle one is at 0.33, which was labelled 0.50)
        times = reverse_process_times(steps, frames)
    else:
        shape = getattr(model_or_states, "shape", None)
        if shape is None or len(shape) != 5 or shape[1] < 2:
            raise ValueError(
                "plot_reverse_process needs a DiffusionModel (a model with "
                "`reverse_process`) or the states it returned, (num, "
                "frames, H, W, C) with at least 2 frames; got "
                f"{type(model_or_states).__name__}"
                + ("" if shape is None else f" of shape {tuple(shape)}")
                + ".")
        states = _inputs.to_numpy(model_or_states, "The states")
    num, frames = states.shape[:2]
    if times is None:  # states given: evenly spaced, as far as known
        times = np.linspace(1, 0, frames)
    figure = plot_samples(states.reshape((num * frames,) + states.shape[2:]),
                          columns=frames)
    ax = figure.axes[0]
    grid_width = ax.images[0].get_array().shape[1]
    cell = grid_width / frames
    ax.set_axis_on()
    ax.set_xticks((np.arange(frames) + 0.5) * cell)
    ax.set_xticklabels([f"{t:.2f}" for t in times])
    ax.set_yticks([])
    ax.set_xlabel("t (1: noise, 0: image)")
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(length=0)
    return figure


def _check_latent_model(model, what):
    if not (hasattr(model, "encode") and hasattr(model, "decode")
            and hasattr(model, "latent_dim")):
        raise ValueError(
            f"{what} needs a model with an encoder and a decoder (an "
            f"AutoEncoder or a VAE); got {type(model).__name__}, which "
            "has no `encode`/`decode`.")
    model.ensure_built(what)


def pca_2d(codes):
    """Projects codes onto their first two principal components (numpy).

    Args:
        codes: array `(n, d)`, `d >= 2`.

    Returns:
        `(projected, explained)`: `(n, 2)` float64 coordinates and the
        share of the variance each of the two components explains.

    Examples:
        >>> import numpy as np
        >>> points = np.array([[0., 0., 0.], [2., 0., 0.], [0., 1., 0.]])
        >>> xy, explained = pca_2d(points)
        >>> xy.shape, round(float(explained.sum()), 6)
        ((3, 2), 1.0)
    """
    codes = np.asarray(codes, dtype="float64")
    centred = codes - codes.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    if len(vt) < 2:
        # one code: one component (an IndexError before); the second
        # axis is zero
        vt = np.concatenate([vt, np.zeros((2 - len(vt), vt.shape[1]))])
        singular = np.concatenate([singular, np.zeros(2 - len(singular))])
    variance = singular ** 2
    total = variance.sum()
    explained = variance[:2] / total if total > 0 else np.zeros(2)
    # A sign convention (the largest loading positive) so that the same
    # codes always give the same picture
    signs = np.sign(vt[:2][np.arange(2), np.argmax(np.abs(vt[:2]), axis=1)])
    signs[signs == 0] = 1.0
    return centred @ (vt[:2].T * signs), explained


def _colour_labels(labels):
    """`plot_latent_space`'s labels as one value per image; one-hot rows
    are a `ValueError` (they were flattened: "18 labels for 6 images")."""
    if labels.ndim == 2 and labels.shape[1] > 1:
        raise ValueError(
            f"`labels` has shape {labels.shape}: one-hot rows? Pass one "
            "label per image, e.g. `labels.argmax(axis=-1)`.")
    return labels.reshape(-1)


def plot_latent_space(model, images, labels=None, batch_size=256):
    """The codes of images scattered in 2-D, coloured by label.

    A 2-D latent space is drawn as it is; above 2 dimensions, the codes are
    projected onto their first two principal components (computed with
    numpy; the axes say how much of the variance each keeps).

    Args:
        model: a trained `AutoEncoder` or `VAE` (for a VAE, the code is the
            mean of the latent Gaussian).
        images: images `(N, H, W, C)`, uint8 or floats in [0, 1], or any
            data `fit` takes.
        labels: optional int labels `(N,)` to colour the points (and, for a
            conditional model, to encode with: then they are required).
            A dataset of `(images, labels)` batches brings its own.
        batch_size: images encoded at once.

    Returns:
        A `matplotlib.figure.Figure` with the scatter (and a colour bar
        when labelled).

    Raises:
        ValueError: a model without an encoder, or labels that do not
            match the images.

    Examples:
        >>> import numpy as np
        >>> from keras_genzoo import AutoEncoder
        >>> ae = AutoEncoder(latent_dim=2, filters=(4,),
        ...                  image_shape=(8, 8, 1), seed=0)
        >>> fig = plot_latent_space(ae, np.zeros((5, 8, 8, 1)),
        ...                         [0, 1, 2, 1, 0])
        >>> fig.axes[0].get_xlabel(), len(fig.axes)   # and a colour bar
        ('z[0]', 2)
    """
    _check_latent_model(model, "plot_latent_space")
    if labels is not None:
        labels = _colour_labels(_inputs.to_numpy(labels, "`labels`"))
        # counted as `encode` counts them: before, one (H, W, C) image
        # counted as H images
        count = len(_inputs.as_image_batch(
            _inputs.to_numpy(images), model.image_shape)) \
            if _inputs._is_array_like(images) else None
        if count is not None and len(labels) != count:
            raise ValueError(
                f"{len(labels)} labels for {count} images: pass one label "
                "per image.")
    # `encode_data`, keeping the labels a dataset carries to colour with
    codes, found = model._encode_labelled(images, batch_size, labels,
                                          "plot_latent_space")
    if labels is None and found is not None:
        if len(found) != len(codes):  # (flattened rows)
            raise ValueError(
                f"The data's labels are {len(found) // len(codes)} values per "
                "image (one-hot rows?): plot_latent_space colours by one "
                "label per image; map the dataset to class indices, e.g. "
                "`tf.argmax(labels, axis=-1)`.")
        labels = found
    if codes.shape[1] == 1:
        xy = np.stack([codes[:, 0], np.zeros(len(codes))], axis=1)
        names = ("z[0]", "")
    elif codes.shape[1] == 2:
        xy, names = codes, ("z[0]", "z[1]")
    else:
        xy, explained = pca_2d(codes)
        names = tuple(f"principal component {i + 1} "
                      f"({100 * e:.0f} % of the variance)"
                      for i, e in enumerate(explained))
    figure, axes = _figure(1, 1, width=5.6, height=4.8)
    ax = axes[0, 0]
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=4, alpha=0.6)
    else:
        # up to 10 classes, each its own colour, by its place among the
        # classes (by value, labels 0, 1, 2 and 50 gave 0..2 one colour;
        # strings failed); more: a colour scale of the values
        classes, index = np.unique(labels, return_inverse=True)
        if len(classes) <= 10 or labels.dtype.kind not in "iufb":
            from matplotlib import colormaps
            from matplotlib.colors import ListedColormap

            few = len(classes) <= 10
            cmap = (ListedColormap(colormaps["tab10"].colors[:len(classes)])
                    if few else "viridis")
            points = ax.scatter(xy[:, 0], xy[:, 1], c=index, cmap=cmap, s=4,
                                alpha=0.8, vmin=-0.5,
                                vmax=len(classes) - 0.5)
            bar = figure.colorbar(points, ax=ax, label="label")
            if few:
                bar.set_ticks(range(len(classes)),
                              labels=[str(c) for c in classes])
        else:
            points = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="viridis",
                                s=4, alpha=0.8, vmin=labels.min() - 0.5,
                                vmax=labels.max() + 0.5)
            figure.colorbar(points, ax=ax, label="label")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(f"{type(model).__name__} latent space "
                 f"({codes.shape[1]}-D, {len(codes):,} images)")
    return figure


def plot_latent_manifold(model, n=15, span=2.0, label=None, dims=(0, 1)):
    """The images decoded over a plane of the latent space.

    An `n x n` grid of codes from `-span` to `span` along two latent
    dimensions (the others 0, the prior's mean for a VAE), each decoded
    into an image, as in keras-io's VAE example. For a VAE, `span=2`
    covers about 95 % of the prior along each axis.

    Args:
        model: a trained `AutoEncoder` or `VAE`.
        n: images per side.
        span: half the side of the plane, in latent units.
        label: the class to draw (a conditional model: required).
        dims: the two latent dimensions that span the plane.

    Returns:
        A `matplotlib.figure.Figure` with one axes, its ticks in latent
        units.

    Raises:
        ValueError: a model without a decoder, or bad `n`, `span` or
            `dims`.

    Examples:
        >>> from keras_genzoo import AutoEncoder
        >>> ae = AutoEncoder(latent_dim=2, filters=(4,),
        ...                  image_shape=(8, 8, 1), seed=0)
        >>> fig = plot_latent_manifold(ae, n=3)
        >>> fig.axes[0].images[0].get_array().shape   # 3 x 3 images of 8 x 8
        (24, 24)
    """
    _check_latent_model(model, "plot_latent_manifold")
    n = _inputs.check_count(n, "n")
    try:
        number = _inputs.check_number(span, "span")
    except ValueError:  # before, a string failed inside numpy (TypeError)
        number = None
    if number is None or not (np.isfinite(number) and number > 0):
        raise ValueError(f"`span` must be a positive number; got {span!r}.")
    span = number
    dims = tuple(int(d) for d in dims)
    if (len(dims) != 2 or dims[0] == dims[1]
            or not all(0 <= d < model.latent_dim for d in dims)):
        raise ValueError(
            f"`dims` must be two different latent dimensions in [0, "
            f"{model.latent_dim}); got {dims}.")
    num_classes = getattr(model, "num_classes", None)
    if num_classes and label is None:
        raise ValueError(
            f"This model is conditional (num_classes={num_classes}): pass "
            f"`label=` (an int in 0..{num_classes - 1}), the class to draw.")
    if label is not None and not num_classes:
        raise ValueError("`label` is for conditional models (created with "
                         "`num_classes=`); this one is not: drop it.")
    values = np.linspace(-float(span), float(span), n).astype("float32")
    z = np.zeros((n * n, model.latent_dim), "float32")
    rows, cols = np.meshgrid(values[::-1], values, indexing="ij")
    z[:, dims[0]] = cols.reshape(-1)  # x: left to right
    z[:, dims[1]] = rows.reshape(-1)  # y: bottom to top
    kwargs = {} if label is None else {"labels": np.full(n * n, label)}
    images = model.decode(z, **kwargs)
    grid = image_grid(images, columns=n, padding=0)
    figure, axes = _figure(1, 1, width=6.0, height=6.0)
    ax = axes[0, 0]
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0,
              vmax=255, extent=(-span, span, -span, span),
              interpolation="nearest")
    ax.set_xlabel(f"z[{dims[0]}]")
    ax.set_ylabel(f"z[{dims[1]}]")
    ax.set_title(f"decoded over z[{dims[0]}], z[{dims[1]}]"
                 + ("" if model.latent_dim == 2 else " (the others 0)"))
    return figure


def _display_char(char):
    return {" ": "␣", "\n": "↵", "\t": "→"}.get(char, char)


def attention_weights(gpt, text, layer=-1):
    """The causal self-attention weights of one MiniGPT block over a text.

    Runs the text through the embedding and the blocks before `layer`,
    then asks the block for its attention probabilities
    (`CausalSelfAttentionBlock.attention_probabilities`; for keras-hub
    blocks, the block's own layer norm, then its attention layer's query
    and key projections and Keras' scaled, causally masked softmax): the
    same weights the block uses, on any backend.

    Args:
        gpt: a `MiniGPT`.
        text: a string of the model's characters, at most
            `gpt.sequence_length` long.
        layer: which block (negative counts from the last).

    Returns:
        numpy float32 array `(num_heads, len(text), len(text))`: row `i` is
        how much character `i` attends to each character (zero after `i`;
        each row sums to 1).

    Raises:
        ValueError: not a MiniGPT, a bad layer, an empty or too long text,
            or characters outside the vocabulary.

    Examples:
        >>> from keras_genzoo import MiniGPT
        >>> gpt = MiniGPT(vocabulary=list("ab"), num_layers=1, num_heads=2,
        ...               hidden_dim=8, sequence_length=8, seed=0)
        >>> attention_weights(gpt, "abba").shape
        (2, 4, 4)
    """
    if not hasattr(gpt, "blocks") or not hasattr(gpt, "encode_text"):
        raise ValueError(
            "plot_attention needs a MiniGPT (a model of attention blocks); "
            f"got {type(gpt).__name__}.")
    num_layers = len(gpt.blocks)
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) \
            or not -num_layers <= int(layer) < num_layers:
        raise ValueError(
            f"`layer` must be a block index in [{-num_layers}, {num_layers})"
            f"; got {layer!r}.")
    if not isinstance(text, str) or not text:
        raise ValueError("`text` must be a non-empty string.")
    if len(text) > gpt.sequence_length:
        raise ValueError(
            f"The text has {len(text)} characters; the model reads at most "
            f"sequence_length={gpt.sequence_length}. Pass a shorter text.")
    ids = gpt.encode_text(text)[None]
    layer = int(layer) % num_layers
    scores = gpt._as_called(_attention_scores, gpt, ids, layer)
    return np.asarray(zoo_backend.to_numpy(scores),
                      dtype="float32")[0]


def _attention_scores(gpt, ids, layer):
    """`attention_weights`' probabilities, as a tensor: the model's own
    embedding (a quantized table's too: keras-hub's embedding layer, called
    directly, failed on TensorFlow under mixed_bfloat16) and blocks."""
    x = gpt._embed(ops.convert_to_tensor(ids))
    for block in gpt.blocks[:layer]:
        x = block(x)
    block = gpt.blocks[layer]
    if hasattr(block, "attention_probabilities"):  # CausalSelfAttentionBlock
        scores = block.attention_probabilities(x)
    else:
        # keras-hub's TransformerDecoder has no option to return its
        # attention scores (and keras-hub 0.21's CachedMultiHeadAttention
        # takes no `return_attention_scores`): its layer norm
        # as its `call` runs it (normalize_first=True), then the attention
        # layer's query and key projections and the scaled causal softmax
        # of the zoo's own block (Keras' MultiHeadAttention scales by
        # 1 / sqrt(key_dim), the head size, as it does)
        attention = block._self_attention_layer
        h = block._self_attention_layer_norm(x)
        scores = CausalSelfAttentionBlock.causal_probabilities(
            attention._query_dense(h), attention._key_dense(h))
    return scores


def plot_attention(gpt, text, layer=-1, columns=None):
    """A MiniGPT's causal self-attention over a text, one panel per head.

    Each panel is the lower-triangular matrix of "Let's build GPT": row `i`
    (a character of the text, read downwards) shows how much it attends to
    each character up to itself (columns); nothing attends to the future.

    Args:
        gpt: a `MiniGPT`.
        text: a string of the model's characters, at most
            `gpt.sequence_length` long (short texts, 10 to 40 characters,
            read best).
        layer: which block (default: the last).
        columns: panels per row (default: up to 4).

    Returns:
        A `matplotlib.figure.Figure` with one axes per head (and a colour
        bar).

    Raises:
        ValueError: not a MiniGPT, a bad layer, an empty or too long text,
            or characters outside the vocabulary.

    Examples:
        >>> from keras_genzoo import MiniGPT
        >>> gpt = MiniGPT(vocabulary=list("ab "), num_layers=1, num_heads=2,
        ...               hidden_dim=8, sequence_length=8, seed=0)
        >>> fig = plot_attention(gpt, "ab ba")
        >>> [ax.get_title() for ax in fig.axes[:2]]
        ['block 0, head 0', 'block 0, head 1']
    """
    # (checked as `plot_history` checks it, before the model runs: -1 was
    # matplotlib's "figure size must be positive", 2.5 became 2)
    if columns is not None:
        columns = _inputs.check_count(columns, "columns")
    weights = attention_weights(gpt, text, layer)
    heads = len(weights)
    if columns is None:
        columns = min(4, heads)
    rows = -(-heads // columns)
    size = min(3.2 + 0.06 * len(text), 7.0)
    figure, axes = _figure(rows, columns, width=size, height=size)
    chars = [_display_char(c) for c in text]
    layer = int(layer) % len(gpt.blocks)
    image = None
    for head, ax in zip(range(heads), axes.flat):
        image = ax.imshow(weights[head], cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"block {layer}, head {head}")
        if len(text) <= 48:
            ax.set_xticks(range(len(text)), chars, fontsize=7)
            ax.set_yticks(range(len(text)), chars, fontsize=7)
            ax.tick_params(length=0)
        ax.set_xlabel("attends to")
        ax.set_ylabel("character")
    _hide_unused(axes, heads)
    # beside the panels shown: the last column's empty panels are removed
    # (6 heads in 4 columns, or `columns` above the heads, failed there)
    figure.colorbar(image, ax=list(axes.flat[:heads]), shrink=0.8,
                    label="attention weight")
    return figure


def progress_files(directory, prefix="samples"):
    """The grids `ImageGridSaver` wrote to `directory`, by epoch.

    Args:
        directory: the saver's folder.
        prefix: the saver's `prefix`.

    Returns:
        list of `(epoch, path)`, in epoch order.

    Examples:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from keras_genzoo.callbacks import save_image_grid
        >>> folder = tempfile.mkdtemp()
        >>> for epoch in (2, 10):
        ...     _ = save_image_grid(np.zeros((4, 8, 8, 1)), os.path.join(
        ...         folder, f"samples_epoch_{epoch:03d}.png"))
        >>> [epoch for epoch, _ in progress_files(folder)]
        [2, 10]
    """
    found = []
    pattern = os.path.join(glob.escape(str(directory)),
                           f"{glob.escape(prefix)}_epoch_*.png")
    for path in glob.glob(pattern):
        match = _GRID_FILE.search(path)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def plot_progress(directory, prefix="samples", max_panels=6):
    """The grids a run saved, from the first epoch to the last, side by side.

    The "first image vs last image" of a GAN's training: the grids
    `ImageGridSaver` (or `genzoo train`) wrote as
    `{directory}/{prefix}_epoch_NNN.png`, the first and the last always
    shown and the others evenly spaced between them. Given the saver
    itself, it shows the grids of its `paths`: those of the run it saved,
    not those an earlier run left in the same folder (a folder holds every
    run's files).

    Args:
        directory: the folder the grids are in, or the `ImageGridSaver`
            (or `ReconstructionGridSaver`) that saved them.
        prefix: the saver's file prefix (`"samples"` by default;
            `"reconstructions"` for `ReconstructionGridSaver`); not used
            with a saver.
        max_panels: the most grids to show.

    Returns:
        A `matplotlib.figure.Figure` with one axes per grid shown, titled
        with its epoch.

    Raises:
        ValueError: no grids in `directory`, or `max_panels` below 2.

    Examples:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from keras_genzoo.callbacks import save_image_grid
        >>> folder = tempfile.mkdtemp()
        >>> for epoch in (1, 2, 3):
        ...     _ = save_image_grid(np.full((4, 8, 8, 1), epoch / 3),
        ...         os.path.join(folder, f"samples_epoch_{epoch:03d}.png"))
        >>> [ax.get_title() for ax in plot_progress(folder).axes]
        ['epoch 1', 'epoch 2', 'epoch 3']
    """
    from PIL import Image

    max_panels = _inputs.check_count(max_panels, "max_panels")
    if max_panels < 2:
        raise ValueError(
            f"`max_panels` must be at least 2 (first and last); got "
            f"{max_panels}.")
    paths = getattr(directory, "paths", None)
    if paths is not None and hasattr(directory, "prefix"):
        from keras_genzoo.callbacks import ReverseProcessSaver

        if isinstance(directory, ReverseProcessSaver):
            raise ValueError(
                "plot_progress shows the grids of training epochs; a "
                "ReverseProcessSaver's frames are one reverse process: use "
                "`plot_reverse_process(model)`.")
        files = sorted(
            (int(match.group(1)), path) for path, match in (
                (path, _GRID_FILE.search(path)) for path in paths) if match)
        if not files:
            raise ValueError(
                f"The {type(directory).__name__} saved no grid yet: train "
                "with it in `callbacks` first.")
        directory = directory.directory
    else:
        files = progress_files(directory, prefix)
    if not files:
        raise ValueError(
            f"No grids named {prefix}_epoch_NNN.png in {directory}: train "
            "with `keras_genzoo.callbacks.ImageGridSaver(directory)` (or "
            "pass its `prefix`).")
    if len(files) > max_panels:
        keep = np.unique(np.round(
            np.linspace(0, len(files) - 1, max_panels)).astype(int))
        files = [files[i] for i in keep]
    figure, axes = _figure(1, len(files), width=3.0, height=3.3)
    for ax, (epoch, path) in zip(axes.flat, files):
        with Image.open(path) as image:
            grid = np.asarray(image.convert("L") if image.mode in ("L", "LA")
                              else image.convert("RGB"))
        _show_image(ax, grid)
        ax.set_title(f"epoch {epoch}")
    return figure
