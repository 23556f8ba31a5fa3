"""Callbacks that show a model learning: sample grids, reconstructions, text.

They work on every backend: all tensors are turned into numpy with
`keras_genzoo.backend.to_numpy` before anything is written.
"""

import inspect
import os
import threading
import warnings
import weakref

import numpy as np

import keras

from keras_genzoo import _inputs
from keras_genzoo import backend as zoo_backend


def image_grid(images, columns=None, padding=2, scale=1, pad_value=1.0):
    """Tiles images into one uint8 picture.

    Args:
        images: array `(num_images, height, width, channels)`, uint8 in
            0..255 or floats in [0, 1] (grayscale may omit the channel
            axis). 1 channel is drawn in gray, 3 in colour, 4 (RGBA) from
            the first three; any other number as one gray panel per
            channel, side by side. Other values (a tanh network's [-1, 1],
            0..255 floats, NaN) raise a `ValueError`.
        columns: images per row; default: the smallest square that fits.
        padding: pixels between images and around the border.
        scale: integer upscaling factor (nearest neighbour), for small images.
        pad_value: colour of the padding, in [0, 1].

    Returns:
        uint8 array `(rows * (h + padding) + padding, ...)`, 2-D for
        grayscale and `(H, W, 3)` for colour.

    Examples:
        >>> import numpy as np
        >>> image_grid(np.zeros((4, 8, 8, 1)), padding=1).shape
        (19, 19)
    """
    images = _inputs.to_numpy(images, "`images`")
    if images.dtype.kind == "b":
        images = images.astype("uint8") * 255
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or not images.shape[-1]:
        raise ValueError(
            "`images` must be (num_images, height, width, channels); got "
            f"{images.shape}."
        )
    if images.dtype.kind not in "iuf":
        raise ValueError(
            f"`images` must be uint8 in 0..255 or floats in [0, 1]; got "
            f"dtype {images.dtype}.")
    if images.shape[-1] == 4:
        images = images[..., :3]
    elif images.shape[-1] not in (1, 3):
        # each channel a gray panel, side by side (a model of 2-channel
        # images trained, then its first grid failed: "1|3|4")
        num, height, width, channels = images.shape
        images = np.transpose(images, (0, 1, 3, 2)).reshape(
            num, height, channels * width, 1)
    if not len(images):
        raise ValueError("`images` is empty: a grid needs at least one "
                         "image.")
    if images.dtype.kind == "f":
        low, high = np.nanmin(images), np.nanmax(images)
        if -1e-3 <= low and high <= 1.0 + 1e-3:
            # float rounding just past [0, 1] (1.0000001), not a range
            images = np.clip(images, 0.0, 1.0)
    # uint8 images were turned into floats as they were, then clipped to
    # [0, 1]: a pure black-and-white grid; [-1, 1] lost its negative half
    _inputs.check_image_batch(images, what="The images of the grid")
    images = _inputs.scale_pixels(images)
    num, height, width, channels = images.shape
    columns = (int(np.ceil(np.sqrt(num))) if columns is None
               else _inputs.check_count(columns, "columns"))
    scale = _inputs.check_count(scale, "scale")
    padding = _inputs.check_count(padding, "padding", 0)
    rows = int(np.ceil(num / columns))
    grid = np.full(
        (
            rows * (height + padding) + padding,
            columns * (width + padding) + padding,
            channels,
        ),
        pad_value,
        dtype="float32",
    )
    for i in range(num):
        r, c = divmod(i, columns)
        top = padding + r * (height + padding)
        left = padding + c * (width + padding)
        grid[top:top + height, left:left + width] = images[i]
    grid = np.clip(np.round(grid * 255.0), 0, 255).astype("uint8")
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    return grid[..., 0] if channels == 1 else grid


def save_image_grid(images, path, columns=None, padding=2, scale=1):
    """Writes images as one PNG grid and returns its path.

    Args:
        images: array `(num_images, height, width, channels)`, uint8 in
            0..255 or floats in [0, 1].
        path: where to write the PNG (folders are created).
        columns: images per row; default: the smallest square that fits.
        padding: pixels between images.
        scale: integer upscaling factor.

    Returns:
        `path`.

    Examples:
        >>> import numpy as np, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "grid.png")
        >>> save_image_grid(np.ones((2, 8, 8, 3)), path) == path
        True
    """
    from PIL import Image

    grid = image_grid(images, columns=columns, padding=padding, scale=scale)
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    Image.fromarray(grid).save(path)
    return path


class _EpochCounter:
    """Numbers the epochs over the `fit` calls of one model.

    A second `fit` of the same model that starts again at epoch 1 (no
    `initial_epoch`) trains on: its epochs are numbered on from the last
    epoch of the earlier fits, as `initial_epoch=` does. Not after a
    `fit` that crashed: a `fit` run again then (or resumed by
    `BackupAndRestore`) trains those epochs again. Another model counts
    from 1 again.
    """

    def _reset_count(self):
        # `_epochs_done` is the last epoch (counted over the fits) seen to
        # end, `_trained` the model that trained it, and `_fit_ended`
        # whether that `fit` ended (no crash). `_offset` is added to Keras'
        # epoch in the current `fit`.
        self._epochs_done = 0
        self._trained = None
        self._model_ref = None  # (a weak reference to the current model)
        self._fit_ended = True
        self._offset = 0
        self._fit_started = True  # the current fit's first epoch began
        self._same_model = False

    def _begin_fit(self):
        """Per-`fit` state, from `on_train_begin`."""
        model = self.model
        trained = self._trained() if self._trained is not None else None
        self._same_model = trained is not None and trained is model
        try:
            self._model_ref = weakref.ref(model)
        except TypeError:  # (a model without weak references)
            self._model_ref = lambda: model
        self._fit_started = False
        self._offset = 0

    def _start_epochs(self, epoch):
        """From `on_epoch_begin`: True at the first epoch of this `fit`,
        whose offset it sets."""
        if self._fit_started:
            return False
        self._fit_started = True
        if epoch == 0 and self._same_model and self._fit_ended:
            self._offset = self._epochs_done
        self._fit_ended = False
        return True

    def _count_epoch(self, epoch):
        """From `on_epoch_end`: Keras' `epoch` of this `fit`, counted over
        the fits of the model (from 0)."""
        epoch += self._offset
        self._epochs_done = epoch + 1
        self._trained = self._model_ref
        return epoch

    def on_epoch_begin(self, epoch, logs=None):
        self._start_epochs(epoch)

    def on_train_end(self, logs=None):
        self._fit_ended = True


class _GridCallback(_EpochCounter, keras.callbacks.Callback):
    """Shared scheduling and file naming of the grid callbacks."""

    def __init__(self, directory, every_n_epochs, prefix, columns, scale,
                 padding):
        super().__init__()
        # counts are checked, not cut by `int` (1.5 ran as 1)
        self.directory = os.fspath(directory)
        self.every_n_epochs = _inputs.check_count(every_n_epochs,
                                                  "every_n_epochs")
        if not isinstance(prefix, str):
            # (None wrote None_epoch_001.png)
            raise ValueError(f"`prefix` must be a string; got {prefix!r}.")
        self.prefix = prefix
        # (checked here: -2 failed in numpy after the first epoch, or after
        # all of them for a ReverseProcessSaver; 0 and 2.7 were changed)
        self.columns = None if columns is None else _inputs.check_count(
            columns, "columns")
        self.scale = _inputs.check_count(scale, "scale")
        self.padding = _inputs.check_count(padding, "padding", 0)
        self.paths = []
        self._waiting_gifs = []
        self._reset_count()

    def make_images(self):
        raise NotImplementedError

    def _path(self, epoch):
        """The file of the grid after `epoch` (counted from 1)."""
        return os.path.join(self.directory,
                            f"{self.prefix}_epoch_{epoch:03d}.png")

    def _begin_fit(self):
        """Per-`fit` state; the subclasses' `on_train_begin` calls it."""
        had_trained = self._trained is not None
        super()._begin_fit()
        if had_trained and not self._same_model:
            # another model: its grids count from epoch 1 again, and the
            # earlier model's files are not its own (they stayed in
            # `paths`, hence in its GIF, after its own last epoch). A
            # resume still has its earlier grids: they are taken from
            # `directory` when its first epoch begins.
            self.paths = []
            self._epochs_done = 0

    def on_epoch_begin(self, epoch, logs=None):
        if self._start_epochs(epoch):
            self._take_earlier_grids(epoch + self._offset)

    def _take_earlier_grids(self, start):
        """Puts the grids of the scheduled epochs up to `start` that are in
        `directory` first in `paths`, in order: a `fit` that starts past
        its first epochs (`initial_epoch=`, a `BackupAndRestore` resume
        with new callbacks) has the whole run in `paths`, hence in the
        GIF (before, only the grids written after the resume)."""
        earlier = [
            path for path in map(self._path, range(
                self.every_n_epochs, start + 1, self.every_n_epochs))
            if os.path.isfile(path)]
        if earlier:
            self.paths = earlier + [p for p in self.paths
                                    if p not in earlier]

    def _settle(self):
        """At the end of a `fit` that trained no epoch (`initial_epoch`
        or a resume at or past `epochs`): the earlier grids too, so that
        a `ProgressGif` has them. Called more than once, it does it once."""
        if self._fit_started:
            return
        self._fit_started = True
        self._take_earlier_grids(int((self.params or {}).get("epochs")
                                     or 0))

    def on_train_end(self, logs=None):
        self._settle()
        self._fit_ended = True

    def _writes_later(self, gif):
        """Whether this saver still has files to write at the end of this
        `fit` (its `on_train_end` has not run yet); if so, it has `gif`
        write its GIF once they are written."""
        return False

    def on_epoch_end(self, epoch, logs=None):
        epoch = self._count_epoch(epoch)
        if (epoch + 1) % self.every_n_epochs:
            return
        path = self._path(epoch + 1)
        save_image_grid(_model_images(self.make_images(), self, epoch + 1),
                        path, columns=self.columns, padding=self.padding,
                        scale=self.scale)
        if path not in self.paths:  # (an epoch trained again after a crash)
            self.paths.append(path)

    def _require(self, method):
        _require(self, method)


def _model_images(images, callback, epoch):
    """A model's images for a grid, as `fit` must go on with them: NaN or
    Inf (a model that diverged and kept its weights) drawn black with a
    warning, values past [0, 1] (an own network's) clipped. `image_grid`
    refuses both: raised from a callback, they ended `fit`, its history
    and GIF lost."""
    images = _inputs.to_numpy(images, "the model's images")
    if images.dtype.kind != "f":
        return images
    finite = np.isfinite(images)
    if not finite.all():
        warnings.warn(
            f"{type(callback).__name__}"
            f"{'' if epoch is None else f', epoch {epoch}'}: the model's "
            f"images hold {int(np.sum(~finite))} NaN or Inf pixel value(s) "
            "(it diverged): drawn black.", RuntimeWarning, stacklevel=3)
        images = np.where(finite, images, 0.0)
    return np.clip(images, 0.0, 1.0)


def _require_samples(callback):
    """One `ValueError` when `callback.model` cannot generate images: it
    has no `generate`, makes text, or draws from a latent prior that is
    not fitted yet."""
    from keras_genzoo.models.language import CharLanguageModel

    _require(callback, "generate")
    model = callback.model
    if isinstance(model, CharLanguageModel):
        # (its `generate` took the image count as a prompt, after the
        # first epoch had trained)
        raise ValueError(
            f"{type(callback).__name__} draws images; "
            f"{type(model).__name__} makes text: use "
            "`keras_genzoo.callbacks.TextSampler` to watch it learn.")
    if getattr(model, "generates_from_prior", False) and (
            model.latent_prior is None):
        raise ValueError(
            f"{type(callback).__name__} needs samples, and this "
            f"{type(model).__name__} draws them from its latent prior, "
            "which is not fitted yet: train once, call "
            "`model.fit_latent_prior(images)`, then train on with the "
            "callback (it redraws from that prior).")


def _check_sampling(callback, method, num_samples, sampling, **fixed):
    """One `ValueError` for sampling arguments `callback.model.<method>`
    would refuse, said when training starts.

    The grid savers and `QualityMonitor` call `generate` (or
    `reverse_process`) only after an epoch (or after all of them): a
    wrong label, a diffusion model's `steps=0` or an unknown argument
    used to fail there, after that training was done. This checks what
    the call will get with the model's own checks, without sampling.

    Args:
        callback: the callback, whose `model` will sample.
        method: `"generate"` or `"reverse_process"`.
        num_samples: the number of samples the callback asks for.
        sampling: the callback's extra keyword arguments of `method`.
        **fixed: the keyword arguments the callback itself passes
            (`seed`, `steps`, `frames`).
    """
    from keras_genzoo.models.adversarial import AdversarialModel
    from keras_genzoo.models.diffusion import DiffusionModel
    from keras_genzoo.models.vae import VAE

    model = callback.model
    name = type(callback).__name__
    function = getattr(model, method)
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # no signature to read: trust it
        signature = None
    if signature is not None:
        try:
            arguments = signature.bind(num_samples, **fixed, **sampling)
        except TypeError as error:
            given = ["num_samples"] + list(fixed) + list(sampling)
            raise ValueError(
                f"{name} calls `{type(model).__name__}.{method}` with the "
                f"arguments {given}, which it does not take ({error}): drop "
                f"or rename the extra keyword arguments given to {name}; "
                f"`{method}` takes {list(signature.parameters)}.") from None
        arguments.apply_defaults()
        arguments = arguments.arguments
    else:
        arguments = dict(sampling, **fixed)
    check_count = getattr(model, "check_num_samples", None)
    if check_count is not None:
        check_count(num_samples)
    if "batch_size" in sampling:
        _inputs.check_count(sampling["batch_size"], "batch_size")
    labels = arguments.get("labels")
    if isinstance(model, DiffusionModel):
        model._check_sampling(
            arguments.get("steps", 50), labels, arguments.get("guidance"),
            arguments.get("eta", 0.0), num_samples)
        strength = arguments.get("strength")
        if arguments.get("images") is not None or strength is not None:
            raise ValueError(
                f"{name} draws new samples: image-to-image (`images=`, "
                "`strength=`) is for `model.generate` itself.")
    elif isinstance(model, AdversarialModel):
        model._generation_labels(num_samples, labels)
    elif isinstance(model, VAE):
        model.default_labels(num_samples, labels)
        prior = arguments.get("prior", "normal")
        model.check_prior(prior)
        if prior == "gmm" and model.latent_prior is None:
            raise ValueError(
                f"{name} samples with `prior='gmm'`, but no latent prior "
                "is fitted yet: call `model.fit_latent_prior(images)` "
                "before training with the callback.")


def _require(callback, method):
    """One `ValueError` when `callback.model` lacks `method` (or only
    inherits the base's abstract one)."""
    from keras_genzoo.models.base import GenerativeModel

    model = callback.model
    inherited = getattr(GenerativeModel, method, None)
    if not callable(getattr(model, method, None)) or (
            inherited is not None
            and getattr(type(model), method) is inherited):
        raise ValueError(
            f"{type(callback).__name__} needs a model with a `{method}` "
            f"method; {type(model).__name__} has none."
        )


class ImageGridSaver(_GridCallback):
    """Saves a PNG grid of generated samples every `every_n_epochs` epochs.

    The samples come from `model.generate(num_images, seed=seed)`, so every
    grid decodes the same latent noise and the grids show the model learning.
    Works with any model that has `generate` (VAE and the zoo's other
    generative models). The files are `{directory}/{prefix}_epoch_NNN.png`;
    `paths` lists those written.

    The epochs are counted over the `fit` calls of one model: a second
    `fit` of the same model (without `initial_epoch`) numbers its grids
    on, as `initial_epoch=` does, instead of replacing the first fit's
    (not after a `fit` that crashed, whose epochs a new `fit` trains
    again). A `fit` that starts past its first epochs (`initial_epoch`,
    a `BackupAndRestore` resume) puts the grids of the earlier scheduled
    epochs found in `directory` first in `paths`, so that a `ProgressGif`
    covers the whole run. The same holds for `ReconstructionGridSaver`.

    Args:
        directory: folder for the PNG files (created if needed).
        num_images: samples per grid.
        every_n_epochs: save after every n-th epoch.
        seed: the fixed seed of the samples (an int in 0..2**32 - 1);
            `None` draws new samples for every grid.
        columns: images per row; default: square grid.
        scale: integer upscaling of the grid (nearest neighbour).
        padding: pixels between images.
        prefix: file name prefix.
        **sampling: more `generate` arguments (a diffusion model's `steps`,
            a conditional model's `labels`; not image-to-image's `images`
            and `strength`: the grids are new samples); checked against
            the model when training starts, before the first step.

    Examples:
        >>> import numpy as np, tempfile
        >>> from keras_genzoo import VAE
        >>> from keras_genzoo.callbacks import ImageGridSaver
        >>> saver = ImageGridSaver(tempfile.mkdtemp(), num_images=4)
        >>> images = np.random.rand(32, 8, 8, 1).astype("float32")
        >>> _ = VAE(latent_dim=2, filters=(4,)).fit(
        ...     images, epochs=2, callbacks=[saver], verbose=0)
        >>> len(saver.paths)
        2
    """

    def __init__(self, directory, num_images=16, every_n_epochs=1, seed=0,
                 columns=None, scale=2, padding=2, prefix="samples",
                 **sampling):
        super().__init__(directory, every_n_epochs, prefix, columns, scale,
                         padding)
        self.num_images = _inputs.check_count(num_images, "num_images")
        # `None` (fresh samples each time, as `generate` and
        # `TextSampler` take it) used to fail with a bare
        # TypeError from `int(None)`; a bad seed fails here
        self.seed = _inputs.check_seed(seed)
        self.sampling = sampling

    def on_train_begin(self, logs=None):
        self._begin_fit()
        _require_samples(self)
        # checked now: a wrong label or `steps` failed only after the first
        # epoch had trained, in `generate`
        _check_sampling(self, "generate", self.num_images, self.sampling,
                        seed=self.seed)

    def make_images(self):
        return self.model.generate(self.num_images, seed=self.seed,
                                   **self.sampling)


def _batch_to_show(images, what):
    """`(images, labels or None)`: the images of a batch given as an
    array, an `(images, labels)` pair or a dict with an `"image"` key (as
    a dataset yields them), as numpy `(N, H, W, C)` (unchecked), and the
    labels it carried.

    Before, a pair failed in numpy ("inhomogeneous shape"), a dict or a
    dataset was "a batch of shape ()", and one `(H, W, C)` image was read
    as H grayscale images."""
    from keras_genzoo.metrics import _is_single_image

    if _inputs._is_stream_of_batches(images):
        raise ValueError(
            f"{what} must be a batch of images, not a "
            f"{_inputs.data_kind(images)}: take one batch out, e.g. "
            "`images, labels = "
            "next(iter(dataset))`, and pass 8 to 16 of its images.")
    labels = _inputs.carried_labels(images)
    if isinstance(images, (list, tuple)):
        images = _inputs._image_list(images, what)
    images = zoo_backend.to_numpy(_inputs.extract_images(images))
    if images.ndim == 3:
        images = (images[None] if _is_single_image(images.shape, what)
                  else images[..., None])
    if labels is not None:
        labels = _inputs.to_numpy(labels, "`labels`")
    return images, labels


class ReconstructionGridSaver(_GridCallback):
    """Saves a PNG of fixed images above their reconstructions.

    Every `every_n_epochs` epochs, the first row of the grid shows the given
    images and the second row `model.reconstruct(images, labels)`: for
    `AutoEncoder` and `VAE`. For a denoising auto-encoder pass noisy images
    to watch it denoise. `paths` lists the files written.

    Args:
        images: the images to reconstruct, `(num_images, H, W, C)`, uint8 or
            float in [0, 1] (8 to 16 make a readable grid), of the
            model's image shape: checked when training starts. An
            `(images, labels)` batch or a dict with `"image"` and
            `"label"` keys, as a dataset yields them, brings its labels
            (which an unconditional model leaves).
        directory: folder for the PNG files (created if needed).
        every_n_epochs: save after every n-th epoch.
        scale: integer upscaling of the grid (nearest neighbour).
        padding: pixels between images.
        prefix: file name prefix.
        labels: the images' int labels, for a conditional model
            (`num_classes=`), which encodes and decodes with them; one int
            stands for all (default: for a conditional model, those
            `images` bring). Checked against the model when training
            starts.

    Examples:
        >>> import numpy as np, tempfile
        >>> from keras_genzoo import AutoEncoder
        >>> from keras_genzoo.callbacks import ReconstructionGridSaver
        >>> images = np.random.rand(32, 8, 8, 1).astype("float32")
        >>> saver = ReconstructionGridSaver(images[:4], tempfile.mkdtemp())
        >>> _ = AutoEncoder(latent_dim=4, filters=(4,)).fit(
        ...     images, epochs=1, callbacks=[saver], verbose=0)
        >>> len(saver.paths)
        1
    """

    def __init__(self, images, directory, every_n_epochs=1, scale=2,
                 padding=2, prefix="reconstructions", labels=None):
        images, self._carried_labels = _batch_to_show(
            images, "ReconstructionGridSaver's `images`")
        if images.ndim != 4 or len(images) == 0:
            raise ValueError(
                "`images` must be a non-empty batch (num_images, H, W, C); "
                f"got shape {images.shape}."
            )
        super().__init__(directory, every_n_epochs, prefix, len(images),
                         scale, padding)
        self.images = images
        self.labels = None if labels is None else np.asarray(
            zoo_backend.to_numpy(labels))

    def _model_labels(self):
        """The labels given, else for a conditional model those the batch
        brought (an unconditional model takes none)."""
        if self.labels is None and getattr(self.model, "num_classes", None):
            return self._carried_labels
        return self.labels

    def on_train_begin(self, logs=None):
        self._begin_fit()
        self._require("reconstruct")
        # a conditional model needs the labels, another takes none: say so
        # now, not after the first epoch
        check = getattr(self.model, "check_labels", None)
        if check is not None:
            check(self._model_labels(), len(self.images),
                  "ReconstructionGridSaver")
        # and images the model cannot take (another size or number of
        # channels, floats in 0..255): they used to fail in `reconstruct`,
        # after the first epoch had trained
        image_shape = getattr(self.model, "image_shape", None)
        if image_shape is not None:
            _inputs.images_to_array(self.images, image_shape,
                                    "ReconstructionGridSaver's images")

    def make_images(self):
        labels = self._model_labels()
        reconstructions = (
            self.model.reconstruct(self.images) if labels is None
            else self.model.reconstruct(self.images, labels))
        return np.concatenate(
            [_inputs.scale_pixels(self.images), reconstructions], axis=0
        )


class ReverseProcessSaver(_GridCallback):
    """Saves the reverse process of a diffusion model as PNG frames.

    At the end of training it runs `model.reverse_process(num_images,
    steps, frames, seed=seed)` and writes one grid per frame, pure noise
    first and the final images last, as `{directory}/{prefix}_NNN.png`;
    `paths` lists them, so a `ProgressGif` in the same `callbacks` turns
    them into a noise-to-image animation. Works with any model that has
    `reverse_process` (`DiffusionModel`).

    Args:
        directory: folder for the PNG files (created if needed).
        num_images: samples per frame.
        steps: sampling steps from noise to image.
        frames: how many frames (states evenly spaced along the way).
        seed: the fixed seed of the samples (an int in 0..2**32 - 1);
            `None` draws new ones.
        columns: images per row; default: square grid.
        scale: integer upscaling of the grid (nearest neighbour).
        padding: pixels between images.
        prefix: file name prefix.
        **sampling: more `reverse_process` arguments (`labels`,
            `guidance`, `eta`); checked against the model when training
            starts, not after it.

    Examples:
        >>> import numpy as np, tempfile
        >>> from keras_genzoo import DiffusionModel
        >>> from keras_genzoo.callbacks import ProgressGif, ReverseProcessSaver
        >>> saver = ReverseProcessSaver(tempfile.mkdtemp(), num_images=4,
        ...                             steps=4, frames=3)
        >>> gif = ProgressGif(saver, path=saver.directory + "/reverse.gif")
        >>> images = np.random.rand(32, 8, 8, 1).astype("float32")
        >>> _ = DiffusionModel(widths=(8,)).fit(
        ...     images, epochs=1, callbacks=[saver, gif], verbose=0)
        >>> len(saver.paths), gif.num_frames
        (3, 3)
    """

    def __init__(self, directory, num_images=8, steps=50, frames=10, seed=0,
                 columns=None, scale=2, padding=2, prefix="reverse",
                 **sampling):
        super().__init__(directory, 1, prefix, columns, scale, padding)
        # counts are checked, not cut by `int` (steps=2.7 ran as 2)
        self.num_images = _inputs.check_count(num_images, "num_images")
        self.steps = _inputs.check_count(steps, "steps")
        self.frames = _inputs.check_count(frames, "frames", 2)
        if self.frames > self.steps + 1:
            # checked here, not after training, in `reverse_process`
            raise ValueError(
                f"`frames` must be from 2 to steps + 1 = {self.steps + 1} "
                f"(the states along the way); got {frames}.")
        # `None` (fresh samples each time, as `generate` and
        # `TextSampler` take it) used to fail with a bare
        # TypeError from `int(None)`; a bad seed fails here
        self.seed = _inputs.check_seed(seed)
        self.sampling = sampling

    def on_train_begin(self, logs=None):
        self._require("reverse_process")
        # checked now, not in `on_train_end` after every epoch has trained
        _check_sampling(self, "reverse_process", self.num_images,
                        self.sampling, steps=self.steps, frames=self.frames,
                        seed=self.seed)
        self.paths = []
        self._waiting_gifs = []
        self._frames_due = True

    def on_epoch_begin(self, epoch, logs=None):
        pass  # its frames are of this `fit` only: no epoch numbers

    def on_epoch_end(self, epoch, logs=None):
        pass  # the frames are written once, at the end of training

    def _settle(self):
        pass

    def _writes_later(self, gif):
        if not getattr(self, "_frames_due", False):
            return False
        if gif not in self._waiting_gifs:
            self._waiting_gifs.append(gif)
        return True

    def on_train_end(self, logs=None):
        self._frames_due = False
        waiting, self._waiting_gifs = self._waiting_gifs, []
        frames = self.model.reverse_process(
            self.num_images, steps=self.steps, frames=self.frames,
            seed=self.seed, **self.sampling)
        frames = _model_images(frames, self, None)
        for i in range(frames.shape[1]):
            path = os.path.join(self.directory,
                                f"{self.prefix}_{i:03d}.png")
            self.paths.append(save_image_grid(
                frames[:, i], path, columns=self.columns,
                padding=self.padding, scale=self.scale))
        for gif in waiting:  # the ProgressGifs listed before this saver
            gif.write()


class ProgressGif(keras.callbacks.Callback):
    """Assembles the grids a grid saver wrote into one animated GIF.

    At the end of training it reads the PNG files of `saver.paths` (an
    `ImageGridSaver`, `ReconstructionGridSaver` or `ReverseProcessSaver`
    in the same `callbacks`, before or after it), first to last, and
    writes them as frames of a GIF that loops forever. `path` is where it
    was written. If the saver wrote no file, it warns and writes nothing.

    Args:
        saver: the grid-saving callback whose files become frames.
        path: the GIF to write (a name ending in `.gif`); default
            `{saver.directory}/progress.gif`
            for a saver of the default prefix `"samples"`, else
            `{saver.directory}/{saver.prefix}_progress.gif` (so that two
            savers in one folder have a GIF each).
        frame_seconds: how long each frame shows (at least 0.01: GIF
            timing is in hundredths of a second).
        last_frame_seconds: how long the last frame shows.

    Examples:
        >>> import numpy as np, tempfile
        >>> from keras_genzoo import VAE
        >>> from keras_genzoo.callbacks import ImageGridSaver, ProgressGif
        >>> saver = ImageGridSaver(tempfile.mkdtemp(), num_images=4)
        >>> gif = ProgressGif(saver)
        >>> images = np.random.rand(32, 8, 8, 1).astype("float32")
        >>> _ = VAE(latent_dim=2, filters=(4,)).fit(
        ...     images, epochs=3, callbacks=[saver, gif], verbose=0)
        >>> gif.path.endswith("progress.gif"), gif.num_frames
        (True, 3)
    """

    def __init__(self, saver, path=None, frame_seconds=0.4,
                 last_frame_seconds=2.0):
        super().__init__()
        if not isinstance(saver, _GridCallback):
            raise ValueError(
                "`saver` must be an ImageGridSaver, ReconstructionGridSaver "
                "or ReverseProcessSaver "
                f"(the callback whose grids become frames); got {saver!r}."
            )
        self.saver = saver
        # (the default was progress.gif whatever the saver: a sample and a
        # reconstruction saver in one folder wrote one GIF, the second
        # over the first)
        self.path = _check_gif_path(path) if path is not None \
            else os.path.join(
                saver.directory, "progress.gif" if saver.prefix == "samples"
                else f"{saver.prefix}_progress.gif")
        # (checked here: -1 ended the training with Pillow's OverflowError)
        self.frame_seconds = _check_seconds(frame_seconds, "frame_seconds")
        self.last_frame_seconds = _check_seconds(last_frame_seconds,
                                                 "last_frame_seconds")
        self.num_frames = 0

    def on_train_end(self, logs=None):
        # (a `fit` that trained no epoch: the grids of the earlier ones)
        self.saver._settle()
        if self.saver._writes_later(self):
            # a `ReverseProcessSaver` listed after this callback writes its
            # frames in its own `on_train_end`, which Keras calls after
            # this one: it calls `write` then. (This used to write no GIF,
            # without a word.)
            return
        self.write()

    def write(self):
        """Writes the GIF of the saver's files now (`on_train_end` does it
        at the end of training); warns instead if there are none."""
        if not self.saver.paths:
            warnings.warn(
                f"ProgressGif wrote no GIF: its {type(self.saver).__name__} "
                "saved no grid. Put the saver in the same `callbacks` list "
                "of `fit` (and, for an ImageGridSaver or "
                "ReconstructionGridSaver, train at least `every_n_epochs` "
                "epochs).", RuntimeWarning, stacklevel=2)
            return
        self.num_frames = save_gif(
            self.saver.paths, self.path, self.frame_seconds,
            self.last_frame_seconds,
        )


def _check_seconds(value, name):
    """A frame duration as a float of at least 0.01 s (GIF timing is in
    hundredths of a second), or one `ValueError`."""
    seconds = _inputs.check_number(value, name)
    if not np.isfinite(seconds) or seconds < 0.01:
        raise ValueError(
            f"`{name}` must be a number of seconds >= 0.01 (GIF timing is "
            f"in hundredths of a second); got {value!r}.")
    return seconds


def _check_gif_path(path):
    """`path` as a string, or one `ValueError` if it does not end in
    `.gif` (checked before training: Pillow picks the format by the name,
    so another name failed at the end of `fit`, losing its history, or
    wrote an animated PNG)."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise ValueError(f"`path` must be a file path; got {path!r}.")
    path = os.fsdecode(path)
    if not path.lower().endswith(".gif"):
        raise ValueError(
            f"`path` must name a .gif file; got {path!r}: e.g. "
            f"{os.path.splitext(path)[0] + '.gif'!r}.")
    return path


def save_gif(png_paths, path, frame_seconds=0.4, last_frame_seconds=2.0):
    """Writes PNG files as the frames of a looping animated GIF.

    Frames of different sizes (grids of another `num_images`, `scale` or
    `padding`, e.g. before and after a resume) are padded with white to
    the largest, at the top left, with a warning.

    Args:
        png_paths: the frames, in order.
        path: the GIF to write, a name ending in `.gif` (folders are
            created).
        frame_seconds: how long each frame shows.
        last_frame_seconds: how long the last frame shows.

    Returns:
        The number of frames in the GIF (identical consecutive PNGs are
        one frame that shows for their total time).

    Examples:
        >>> import numpy as np, tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> pngs = [save_image_grid(np.full((1, 4, 4), v), os.path.join(
        ...     folder, f"{i}.png")) for i, v in enumerate([0.0, 1.0])]
        >>> save_gif(pngs, os.path.join(folder, "a.gif"))
        2
    """
    from PIL import Image

    path = _check_gif_path(path)
    frame_seconds = _check_seconds(frame_seconds, "frame_seconds")
    last_frame_seconds = _check_seconds(last_frame_seconds,
                                        "last_frame_seconds")
    frames = []
    for png in png_paths:
        with Image.open(png) as image:
            frames.append(image.convert("RGB").copy())
    if not frames:
        raise ValueError("No frames: `png_paths` is empty.")
    sizes = {frame.size for frame in frames}
    if len(sizes) > 1:
        # (the GIF is the first frame's size: larger frames were cropped)
        width = max(w for w, _ in sizes)
        height = max(h for _, h in sizes)
        odd = [os.fspath(png) for png, frame in zip(png_paths, frames)
               if frame.size != (width, height)]
        warnings.warn(
            f"save_gif: the frames are of {len(sizes)} sizes; {len(odd)} "
            f"smaller than {width}x{height} are padded with white (first: "
            f"{odd[0]}).", RuntimeWarning, stacklevel=2)
        for i, frame in enumerate(frames):
            if frame.size != (width, height):
                canvas = Image.new("RGB", (width, height), (255, 255, 255))
                canvas.paste(frame, (0, 0))
                frames[i] = canvas
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    durations = [round(frame_seconds * 1000)] * (len(frames) - 1) + [
        round(last_frame_seconds * 1000)]
    frames[0].save(path, save_all=True, append_images=frames[1:],
                   duration=durations, loop=0)
    # Pillow merges identical consecutive frames (adding up their
    # durations): the count is the file's (it was `len(frames)`)
    with Image.open(path) as gif:
        return int(getattr(gif, "n_frames", 1))


class TextSampler(_EpochCounter, keras.callbacks.Callback):
    """Prints a text sample every `every_n_epochs` epochs and appends it to
    a file.

    The samples come from `model.generate(prompt, ..., seed=seed)` with a
    fixed prompt and seed, so successive samples show the model learning.
    Works with the zoo's language models (`BigramLM`, `MiniGPT`). The
    prompt is checked against the model's vocabulary before training
    starts. `samples` lists `(epoch, text)` pairs. As with the grid
    savers, the epochs are counted over the `fit` calls of one model: a
    second `fit` (without `initial_epoch`) numbers its samples on.

    Args:
        prompt: the start of every sample (characters of the vocabulary).
        max_new_tokens: characters generated after the prompt.
        every_n_epochs: sample after every n-th epoch.
        path: text file the samples are appended to (folders created as
            needed), each after an `=== epoch N ... ===` header; `None`
            writes no file.
        seed: the fixed sampling seed.
        temperature: sampling temperature (> 0).
        top_k: sample among the `top_k` likeliest characters.
        top_p: nucleus sampling threshold.
        verbose: print each sample (`False`: only keep/write it).

    Examples:
        >>> from keras_genzoo import BigramLM
        >>> from keras_genzoo.callbacks import TextSampler
        >>> text = "abcabcabc" * 40
        >>> model = BigramLM.from_text(text, sequence_length=8)
        >>> sampler = TextSampler("a", max_new_tokens=5, top_k=1,
        ...                       verbose=False)
        >>> _ = model.fit(model.make_datasets(text, batch_size=8)[0],
        ...               epochs=10, callbacks=[sampler], verbose=0)
        >>> sampler.samples[-1]
        (10, 'abcabc')
    """

    def __init__(self, prompt, max_new_tokens=200, every_n_epochs=1,
                 path=None, seed=0, temperature=0.8, top_k=None, top_p=None,
                 verbose=True):
        super().__init__()
        if not isinstance(prompt, str) or not prompt:
            raise ValueError(
                "`prompt` must be a non-empty string, e.g. '\\n' or 'ROMEO:'."
            )
        # counts and the seed are checked here, not cut by `int` (2.7 ran
        # as 2) nor found bad only at the end of the first epoch (seed=-5)
        self.prompt = prompt
        self.max_new_tokens = _inputs.check_count(max_new_tokens,
                                                  "max_new_tokens")
        self.every_n_epochs = _inputs.check_count(every_n_epochs,
                                                  "every_n_epochs")
        self.path = None if path is None else os.fspath(path)
        self.seed = _inputs.check_seed(seed)
        self.sampling = {"temperature": temperature, "top_k": top_k,
                         "top_p": top_p}
        self.verbose = bool(verbose)
        self.samples = []
        self._reset_count()

    def on_train_begin(self, logs=None):
        self._begin_fit()
        if not callable(getattr(self.model, "generate", None)) or not hasattr(
                self.model, "encode_text"):
            raise ValueError(
                "TextSampler needs a language model of the zoo (BigramLM, "
                f"MiniGPT); got {type(self.model).__name__}."
            )
        self.model.encode_text(self.prompt)  # unknown characters: ValueError
        self.model._check_sampling(self.prompt, **self.sampling)

    def on_epoch_end(self, epoch, logs=None):
        # (a second `fit` numbered its samples from epoch 1 again)
        epoch = self._count_epoch(epoch)
        if (epoch + 1) % self.every_n_epochs:
            return
        text = self.model.generate(self.prompt, self.max_new_tokens,
                                   seed=self.seed, **self.sampling)
        self.samples.append((epoch + 1, text))
        header = f"=== epoch {epoch + 1}"
        for name in ("loss", "val_loss"):
            if logs and name in logs:
                header += f", {name} {float(logs[name]):.4f}"
        header += " ==="
        if self.verbose:
            print(f"\n{header}\n{text}\n", flush=True)
        if self.path is not None:
            folder = os.path.dirname(self.path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(f"{header}\n{text}\n\n")


class QualityMonitor(_EpochCounter, keras.callbacks.Callback):
    """Logs sample-quality numbers while a generative model trains.

    After the first epoch of each `fit`, every `every_n_epochs`-th epoch
    and the last one, it generates the same `num_samples` images
    (`model.generate(num_samples, seed=seed)`) and scores them against
    `real_images` with
    `keras_genzoo.metrics.quality_scores`: the Fréchet distance `fd`, the
    kernel distance `kid` and, with a classifier (the shipped MNIST one for
    28x28x1 images), the mode coverage `classes_covered`,
    `kl_to_uniform` and `confidence`. The numbers go into the epoch's logs,
    hence into `history.history` (epochs in between get no entry, as with
    Keras' `validation_freq`; `scores` pairs each with its epoch) and into
    callbacks after this one (`CSVLogger`, which writes `NA` for the
    epochs in between, `TensorBoard`, `EarlyStopping(monitor="fd",
    mode="min")`: Keras cannot tell the direction of `fd` itself), and are
    printed. The first epoch is scored because a `CSVLogger` takes its
    columns from the first epoch's logs. A GAN that collapses shows it
    here while it happens: `classes_covered` drops and `kl_to_uniform`
    rises.

    The features of the real images are computed once, at the start of
    training. Scoring costs a `generate` and one `predict` over the samples:
    a few seconds for 1,000 MNIST samples on a CPU.

    Args:
        real_images: the reference images (an array or dataset, uint8 or
            floats in [0, 1]), e.g. held-out test images; a few thousand
            give stable figures.
        every_n_epochs: score after every n-th epoch (and the first and
            the last of each `fit`).
        num_samples: generated images scored each time.
        seed: the fixed seed of the samples (an int in 0..2**32 - 1);
            `None` draws new samples each time.
        feature_model: feature model of the distances (see
            `keras_genzoo.metrics.frechet_distance`); required for images
            that are not 28x28x1.
        classifier: class-probability model of the mode coverage; without
            one (and for images that are not 28x28x1) only `fd` and `kid`
            are logged.
        prefix: put before each key (e.g. `"q_"` gives `q_fd`).
        max_real_images: use at most this many of `real_images`.
        verbose: print the numbers after each scoring.
        every: short alias of `every_n_epochs`.
        **sampling: more `generate` arguments (a diffusion model's `steps`,
            a conditional model's `labels`; not image-to-image's `images`
            and `strength`); checked against the model when training
            starts.

    Examples:
        >>> from keras_genzoo import VAE
        >>> from keras_genzoo.callbacks import QualityMonitor
        >>> from keras_genzoo.datasets import load_embedded_mnist
        >>> images, _ = load_embedded_mnist()
        >>> monitor = QualityMonitor(images[-500:], num_samples=200,
        ...                          verbose=False)
        >>> history = VAE(latent_dim=2, filters=(8,)).fit(
        ...     images[:512], epochs=2, callbacks=[monitor], verbose=0)
        >>> sorted(k for k in history.history if k != "loss"
        ...        and "_loss" not in k)
        ['classes_covered', 'confidence', 'fd', 'kid', 'kl_to_uniform']
        >>> len(history.history["fd"])
        2
    """

    def __init__(self, real_images, every_n_epochs=1, num_samples=1000,
                 seed=0, feature_model=None, classifier=None, prefix="",
                 max_real_images=None, verbose=True, every=None,
                 **sampling):
        super().__init__()
        from keras_genzoo import metrics

        if every is not None:
            # (given both, `every` won in silence; its errors named
            # `every_n_epochs`)
            if every_n_epochs not in (1, every):
                raise ValueError(
                    f"Pass `every` or `every_n_epochs`, not both (got "
                    f"{every} and {every_n_epochs}).")
            every_n_epochs = _inputs.check_count(every, "every")
        every_n_epochs = _inputs.check_count(every_n_epochs, "every_n_epochs")
        num_samples = _inputs.check_count(num_samples, "num_samples", 2)
        # read and checked now: bad images fail before training starts
        self.real_images = metrics._collect_images(
            real_images, "QualityMonitor's real_images", max_real_images,
            max_name="max_real_images")
        self.every_n_epochs = int(every_n_epochs)
        self.num_samples = int(num_samples)
        # `None` (fresh samples each time, as `generate` and
        # `TextSampler` take it) used to fail with a bare
        # TypeError from `int(None)`; a bad seed fails here
        self.seed = _inputs.check_seed(seed)
        self.feature_model = feature_model
        self.classifier = classifier
        self.prefix = "" if prefix is None else str(prefix)  # ("Nonefd")
        self.verbose = bool(verbose)
        self.sampling = sampling
        self.scores = []  # (epoch, scores dict) pairs
        self._reset_count()
        self._real_features = None
        self._first_epoch = True  # of the current `fit`

    def on_train_begin(self, logs=None):
        from keras_genzoo import metrics
        from keras_genzoo.models.language import CharLanguageModel

        self._begin_fit()
        if isinstance(self.model, CharLanguageModel):
            raise ValueError(
                "QualityMonitor scores images; for a language model watch "
                "`bits_per_char` (validation data) or call "
                "`model.evaluate_text(text)`.")
        _require_samples(self)
        shape = self.real_images.shape[1:]
        model_shape = getattr(self.model, "image_shape", None)
        if model_shape is not None and tuple(model_shape) != shape:
            raise ValueError(
                f"QualityMonitor's real_images have shape {shape}, but the "
                f"model makes images of shape {tuple(model_shape)}: pass real "
                "images like the training images.")
        # before the first epoch trains, not at its end in `generate`
        _check_sampling(self, "generate", self.num_samples, self.sampling,
                        seed=self.seed)
        self._first_epoch = True
        if self._real_features is None:
            model = metrics._feature_model_for(
                shape, self.feature_model, "QualityMonitor's real_images")
            self._features = model
            self._real_features = metrics._predict(model, self.real_images,
                                                   500)
            if self.classifier is None and shape == metrics.MNIST_SHAPE:
                self.classifier = metrics._shared_classifier().network

    def _due(self, epoch):
        # The first epoch of every `fit` is scored too: Keras' `CSVLogger`
        # takes its columns from the first epoch's logs, so with
        # `every_n_epochs > 1` the numbers never reached its file. (Logging
        # NaN on the other epochs would not do: `EarlyStopping` counts a
        # NaN as no improvement.)
        first, self._first_epoch = self._first_epoch, False
        last = self.params and epoch + 1 == self.params.get("epochs")
        counted = epoch + self._offset + 1  # over the fits of the model
        return first or counted % self.every_n_epochs == 0 or last

    def on_epoch_end(self, epoch, logs=None):
        due = self._due(epoch)
        # `scores` numbers the epochs over the model's fits, as the grid
        # savers do (a second fit's were 1, 2, ... again)
        logged_epoch = self._count_epoch(epoch)
        if not due:
            return
        from keras_genzoo import metrics

        samples = _inputs.to_numpy(self.model.generate(
            self.num_samples, seed=self.seed, **self.sampling))
        if samples.dtype.kind == "f" and not np.isfinite(samples).all():
            # a model that diverged and kept its weights
            # (`StopOnDivergence(restore=False)`, `TerminateOnNaN`): its
            # `fit` raised here, the history and the other callbacks' end
            # of the epoch lost, with advice to clean the training images
            self._log(logged_epoch, logs, {key: float("nan") for key in (
                ("fd", "kid") + (() if self.classifier is None else (
                    "classes_covered", "kl_to_uniform", "confidence")))})
            warnings.warn(
                f"QualityMonitor, epoch {logged_epoch + 1}: the model's samples "
                "hold NaN or Inf (it diverged): its scores are NaN.",
                RuntimeWarning, stacklevel=2)
            return
        generated = metrics.collect_images(
            samples, f"{type(self.model).__name__}.generate's images")
        features = metrics._predict(self._features, generated, 500)
        probabilities = None
        if self.classifier is not None:
            probabilities = metrics._predict(
                metrics._as_model(self.classifier, "classifier"), generated,
                500)
        # quality_scores' defaults: KID over 100 subsets of 1,000, seed 0
        scores = metrics.scores_from_features(
            self._real_features, features, probabilities)
        scores.pop("histogram", None)
        self._log(logged_epoch, logs, scores)

    def _log(self, epoch, logs, scores):
        self.scores.append((epoch + 1, scores))
        if logs is not None:
            for key, value in scores.items():
                logs[self.prefix + key] = value
        if self.verbose:
            text = ", ".join(
                f"{self.prefix}{k} {v:.4g}" for k, v in scores.items())
            # on a line of its own: it ran before `verbose=1`'s bar ended
            # its line, and was printed onto it
            print(f"\nQualityMonitor, epoch {epoch + 1}: {text}", flush=True)


class _LoggedEpochs(keras.callbacks.Callback):
    """Records the epochs (1-based) at which each key was logged.

    Keras' `History` appends a key's value only at the epochs that log it
    (`validation_freq`, `QualityMonitor(every_n_epochs=)`), so its lists
    alone do not say which epochs they belong to; `GenerativeModel.fit`
    puts this record on the `History` it returns, as `logged_epochs`,
    which `plots.plot_history` reads. Last in the callbacks, it sees the
    logs `History` sees."""

    def __init__(self):
        super().__init__()
        self.epochs = {}

    def on_epoch_end(self, epoch, logs=None):
        for key in logs or {}:
            self.epochs.setdefault(key, []).append(epoch + 1)


class StopOnDivergence(keras.callbacks.Callback):
    """Stops training at the first NaN or Inf loss and restores the last
    good epoch.

    Keras' `TerminateOnNaN` stops a diverged `fit` but leaves the NaN
    weights in the model and gives no reason. This callback stops at the
    batch whose loss (any log whose name ends in `loss`: `loss`, `d_loss`,
    `g_loss`...) is not finite, puts back the weights and optimizer state of
    the end of the last epoch whose losses were all finite (or of the start
    of training), and warns once with the likely causes. Every zoo model's
    `fit` adds one, first in `callbacks`, unless `callbacks` already holds
    a `StopOnDivergence` or a `keras.callbacks.TerminateOnNaN`.

    It does not make `fit` wait for each step: it is `async_safe`, so on
    JAX and PyTorch Keras reads each batch's loss in a worker thread while
    the next steps run, and training stops a few steps after the bad batch
    (at the latest at the end of its epoch). The weights are put back, and
    the warning raised, at the end of that epoch (after its validation,
    which runs on the diverged weights), before the `on_epoch_end` of the
    callbacks that come after this one: put your own `StopOnDivergence`
    first in `callbacks`. If `fit` raises after the bad batch (e.g. a
    `KeyboardInterrupt`), a zoo model's `fit` puts them back before the
    error goes on.

    Args:
        restore: put the last good weights and optimizer state back (`True`)
            or leave the diverged ones (`False`; training still stops).

    Attributes:
        diverged: after a stopped `fit`, a dict with the `epoch` and `batch`
            (0-based) of the first non-finite loss, its `log` name and
            `value`, and `restored_epoch` (the number of epochs whose end is
            restored; 0 is the start of training); `None` otherwise.

    Example:
        >>> import numpy as np
        >>> from keras_genzoo import AutoEncoder
        >>> from keras_genzoo.callbacks import StopOnDivergence
        >>> images = np.zeros((8, 28, 28, 1), "uint8")
        >>> model = AutoEncoder(latent_dim=2, filters=(4,), seed=0)
        >>> stop = StopOnDivergence()
        >>> _ = model.fit(images, epochs=1, verbose=0, callbacks=[stop])
        >>> print(stop.diverged)
        None
    """

    # Keras runs `on_train_batch_end` in a worker thread when every
    # callback of `fit` is `async_safe` (JAX and PyTorch), so that the next
    # step is dispatched before this one's loss is read: otherwise Python
    # waits for the device at every step. The batch hook below only reads
    # the logs and sets `stop_training`; the weights are put back and the
    # warning raised on `fit`'s own thread, at the end of the epoch.
    async_safe = True
    # one for every instance (a lock in the instance would make it
    # impossible to copy or pickle); it guards one comparison
    _lock = threading.Lock()

    def __init__(self, restore=True):
        super().__init__()
        self.restore = bool(restore)
        self.diverged = None
        self._good = None
        self._good_epoch = 0
        self._found = None  # (epoch, batch, log, value) of the first NaN
        self._epoch = 0
        self._trainee = None

    def set_model(self, model):
        super().set_model(model)
        # the batch hook uses this, not `self.model`: on JAX that property
        # copies the trainer's state into the model's variables, which from
        # the worker thread races with the next step (its state is donated).
        # Read here, before training, it is the Keras model (unwrapped from
        # PyTorch's DistributedDataParallel)
        self._trainee = self.model

    def _variables(self):
        variables = list(self.model.variables)
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            variables += list(optimizer.variables)
        return variables

    def _snapshot(self):
        return [zoo_backend.to_numpy(v) for v in self._variables()]

    def on_train_begin(self, logs=None):
        self.diverged = None
        self._found = None
        self._good = None
        self._good_epoch = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self.restore and self._good is None:
            # the start of training: taken here, after every callback's
            # `on_train_begin` (e.g. `BackupAndRestore` loading a backup)
            optimizer = getattr(self.model, "optimizer", None)
            if self.model.built and optimizer is not None and (
                    not optimizer.built):
                # so that the snapshot holds the optimizer's state too (as
                # `BackupAndRestore` does before it loads a backup)
                optimizer.build(self.model.trainable_variables)
            self._good = self._snapshot()
            # the epochs done before this `fit`'s first (`initial_epoch`,
            # a resume): a resumed run that diverged at once said "the
            # start of training" was restored
            self._good_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        # maybe in Keras' worker thread (see `async_safe`): read, flag, stop
        if self._found is not None and self._found[:2] < (
                self._epoch, batch):
            return
        bad = _bad_loss(logs)
        if bad is None:
            return
        with self._lock:  # Keras' pool may run two batches' hooks at once,
            # in any order: keep the first batch
            if self._found is None or (self._epoch, batch) < self._found[:2]:
                self._found = (self._epoch, batch) + bad
        self._trainee.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        # Keras has run every batch hook of the epoch when it calls this
        if self._found is not None:
            self._stop()
        elif self.restore and not _bad_loss(logs):
            self._good = self._snapshot()
            self._good_epoch = epoch + 1

    def after_exception(self):
        """Puts the last good weights back (and warns) if the loss diverged
        before `fit` raised: Keras calls no `on_epoch_end` then. A zoo
        model's `fit` calls it."""
        self._stop()

    def _stop(self):
        if self._found is None or self.diverged is not None:
            return
        epoch, batch, name, value = self._found
        self.model.stop_training = True
        self.diverged = {"epoch": epoch, "batch": batch, "log": name,
                         "value": value, "restored_epoch": None}
        if self.restore and self._good is not None:
            for variable, value_ in zip(self._variables(), self._good,
                                        strict=True):
                variable.assign(value_)
            self.diverged["restored_epoch"] = self._good_epoch
        restored = (
            "the diverged weights were left in the model"
            if self.diverged["restored_epoch"] is None else
            "the weights and optimizer state of "
            + ("the start of training" if self._good_epoch == 0 else
               f"the end of epoch {self._good_epoch}")
            + " were restored")
        warnings.warn(
            f"Training diverged: `{name}` became {value} at epoch "
            f"{epoch + 1}, batch {batch + 1}; training stopped and "
            f"{restored}. Likely causes: a learning rate too high (compile "
            f"with a lower one), input data outside the expected range "
            f"(images as uint8 0-255 or floats in [0, 1]; no NaN or Inf), "
            f"or mixed precision without loss scaling (wrap the optimizer "
            f"in keras.optimizers.LossScaleOptimizer){_label_cause(self.model)}"
            f".", RuntimeWarning, stacklevel=2)


def _label_cause(model):
    """For a conditional model: labels out of range in a later batch (only
    a dataset's first batch is checked), which JAX's embedding lookup
    turns into NaN without an error."""
    classes = getattr(model, "num_classes", None)
    if not classes:
        return ""
    return (f", or labels outside 0..{classes - 1} in a batch after the "
            "first (only a dataset's first batch is checked; on JAX they "
            "give NaN, not an error)")


def _bad_loss(logs):
    """`(name, value)` of the first non-finite loss in `logs`, or `None`."""
    logs = logs or {}
    for name in sorted(logs, key=lambda name: name != "loss"):  # loss first
        value = logs[name]
        if not name.endswith("loss"):
            continue
        value = float(zoo_backend.to_numpy(value))
        if not np.isfinite(value):
            return name, value
    return None
