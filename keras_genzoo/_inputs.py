"""Checks and conversions for the image data users pass to `fit`.

Everything here runs eagerly on numpy copies of *one* batch (or of a whole
numpy array), before any training step, so that bad input fails with one clear
`ValueError` that names the fix instead of a shape error deep inside a
compiled step. Nothing here imports a backend framework at module level.
"""

import itertools
import operator
import os
import sys
import types
import weakref

import numpy as np

IMAGE_KEY = "image"
LABEL_KEY = "label"

# The largest seed every backend takes (JAX keeps seeds as uint32).
MAX_SEED = 2**32 - 1


def to_numpy(value, what="the data"):
    """Converts a tensor of any backend (or a nested list) to a numpy array.

    Raises:
        ValueError: `value` does not form one array (a ragged list, or
            items of mixed kinds).
    """
    if isinstance(value, np.ndarray):
        return _widen(value)
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch
        value = value.detach().cpu()
        if value.is_floating_point() and value.element_size() < 4:
            value = value.float()  # numpy has no bfloat16: torch refuses
        return value.numpy()
    if hasattr(value, "numpy"):  # tf eager tensors
        return _widen(value.numpy())
    try:
        return _widen(np.asarray(value))
    except (TypeError, ValueError, OverflowError):
        raise ValueError(
            f"{what} is a {type(value).__name__} that does not form one "
            "array (ragged, or items of mixed kinds): pass a numpy array "
            "of one shape and dtype, e.g. `np.stack(items)`.") from None


def _widen(array):
    """`array`, with ml_dtypes' floats (bfloat16, float8: what JAX and
    TensorFlow tensors of a `mixed_bfloat16` policy convert to) as float32:
    numpy does not count them as floats (their dtype kind is "V"), so the
    checks on numbers would refuse them."""
    if array.dtype.kind == "V" and array.dtype.names is None and (
            "float" in array.dtype.name):
        return array.astype("float32")
    return array


def holds_whole_numbers(array):
    """Whether a numpy array holds only whole numbers: ints, bools, or
    finite floats without a fraction (ids and labels may come as floats)."""
    return array.dtype.kind in "iub" or (
        array.dtype.kind == "f" and bool(np.isfinite(array).all())
        and bool((np.mod(array, 1) == 0).all()))


def padded_rows(count, limit):
    """How many rows a compiled inference function is given for `count`:
    `count` where it is `limit` (a full batch), else the next power of two
    up to 16 and the next multiple of 16 past it, at most `limit`: a few
    batch sizes, each compiled once, where every new `count` compiled the
    function again (XLA and `jax.jit` compile one program per input
    shape), for at most 15 rows computed in vain."""
    count = int(count)
    if count >= limit:
        return count
    if count > 16:
        return min(limit, -(-count // 16) * 16)
    return min(limit, 1 << max(0, count - 1).bit_length())


class RowCounts:
    """The batch sizes a compiled inference function has met, and the one
    to call it with next.

    XLA and `jax.jit` compile one program per input shape: every new
    number of samples compiled the function again (1.6 s for a diffusion
    model's step on TensorFlow, kept). The first `EXACT` sizes run as they
    are (a callback's grid of 9, every epoch, pays nothing); a size met
    before runs as it is; another one runs padded to a size already
    compiled that `padded_rows` would allow, else to `padded_rows` (a few
    sizes, at most 15 rows computed in vain)."""

    EXACT = 4

    def __init__(self):
        self.seen = set()

    def rows(self, count, limit):
        if count not in self.seen and count < limit:
            bucket = padded_rows(count, limit)
            compiled = [size for size in self.seen if count < size <= bucket]
            if compiled:
                count = min(compiled)
            elif len(self.seen) >= self.EXACT:
                count = bucket
        self.seen.add(count)
        return count


def pad_rows(array, rows):
    """A numpy `array` with zero rows added up to `rows` rows."""
    array = np.asarray(array)
    if len(array) >= rows:
        return array
    return np.concatenate(
        [array, np.zeros((rows - len(array),) + array.shape[1:],
                         array.dtype)])


def check_count(value, name, minimum=1):
    """`value` as an int >= `minimum`, or one clear `ValueError`.

    Ints, numpy ints (0-d arrays too) and whole floats (`2.0`) pass;
    bools, fractions, strings, `None`, NaN and other arrays do not.
    """
    number = None
    if not isinstance(value, (bool, np.bool_)):
        try:
            number = operator.index(value)
        except TypeError:
            if isinstance(value, (float, np.floating)) and float(
                    value).is_integer():
                number = int(value)
    if number is None or number < minimum:
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return int(number)


def check_number(value, name):
    """`value` as a float (NaN and Inf included: range checks follow), or
    one clear `ValueError` for what is not one real number."""
    if not isinstance(value, (bool, np.bool_, str, bytes)):
        try:
            array = np.asarray(value)
        except (TypeError, ValueError):
            array = None
        if array is not None and array.size == 1 and (
                array.dtype.kind in "iuf"):
            return float(array.reshape(()))
    raise ValueError(f"`{name}` must be a number; got {value!r}.")


def check_seed(seed, none="draw from the model's own seed generator"):
    """`None`, or `seed` as an int in 0..MAX_SEED (what every backend's
    random numbers and numpy take), or one clear `ValueError` (which says
    that `None` would `none`)."""
    if seed is None:
        return None
    number = None
    if not isinstance(seed, (bool, np.bool_)):
        try:
            number = operator.index(seed)
        except TypeError:
            pass
    if number is None or not 0 <= number <= MAX_SEED:
        raise ValueError(
            f"`seed` must be an integer in 0..{MAX_SEED} (or None to "
            f"{none}); got {seed!r}.")
    return int(number)


# Keras' seed generators hold `[seed, draws]`. PyTorch seeds each draw's
# generator with their sum, so the streams of seeds s and s + 1 were one
# stream shifted by a draw (MiniGPT's text from seeds 0, 1, 2: "het y
# ktqn...", "he y ktqn...", "hey ktqn..."; neighbouring dropout layers, seeded
# s + i, drew each other's masks a step apart), and TensorFlow folds seeds
# modulo 2**31 - 2 (seeds 1 and 2**31 - 1 drew the same numbers). The zoo
# hands Keras a hash of the seed instead, below 2**31 - 2: the same on
# every backend, and in the int32 that PyTorch holds.
_SEED_RANGE = 2**31 - 2


def _spread_seed(*entropy):
    # (mod 2**64: a negative seed given to a network builder was folded
    # into range before, as it is here)
    return int(np.random.SeedSequence([int(e) % 2**64 for e in entropy])
               .generate_state(1)[0]) % _SEED_RANGE


def layer_seed(seed, offset):
    """The seed of a network's `offset`-th seeded layer (its dropout) made
    from a model's `seed`: a hash of both, in 0..2**31-3 (see above; before,
    `seed + offset`, whose streams overlapped on PyTorch, and which from
    2**31 - 1 on failed the first training step on PyTorch and JAX), the
    same on every backend."""
    return _spread_seed(seed, int(offset) + 1)


def generator_seed(seed):
    """A seed for `keras.random.SeedGenerator`: `seed` checked as
    `check_seed` does, then hashed into 0..2**31-3 (see above: on PyTorch
    the streams of neighbouring seeds overlapped, and `SeedGenerator(2**31)`
    failed, "value cannot be converted to type int32"; on TensorFlow seeds
    2**31 - 2 apart drew the same numbers). `None` stays `None`."""
    seed = check_seed(seed)
    return None if seed is None else _spread_seed(seed)


def check_class_labels(labels, num_classes, count, what="`labels`",
                       one_for_all=False):
    """Class labels as int32 numpy `(count,)`, or one clear `ValueError`.

    Args:
        labels: ints in `0..num_classes - 1` (any array or list; whole
            floats pass), one per sample; with `one_for_all`, one int is
            repeated `count` times.
        num_classes: the number of classes.
        count: how many samples the labels belong to.
        what: words naming the labels in messages.
        one_for_all: whether one int stands for all samples.
    """
    array = to_numpy(labels, what)
    if array.ndim == 0 and array.dtype == bool:
        # `labels=True` read as class 1 before
        raise ValueError(
            f"{what} got {labels!r}: labels are class indices (ints in "
            f"0..{num_classes - 1}), not a switch. Pass the classes to "
            "draw, e.g. `labels=3` or `labels=[0, 1, 2]`.")
    if array.ndim == 0 and one_for_all:
        array = np.full((count,), array)
    if array.ndim == 2 and array.shape[1] == num_classes and (
            array.shape[0] == count and num_classes > 1):
        raise ValueError(
            f"{what} has shape {array.shape}: one-hot rows. Pass class "
            "indices, one int per sample, e.g. `labels.argmax(axis=-1)`.")
    ints = " or one int" if one_for_all else ""
    if array.ndim > 1 and all(d == 1 for d in array.shape[1:]):
        array = array.reshape(len(array))
    if array.ndim != 1 or len(array) != count or not holds_whole_numbers(
            array):
        got = (f"{array.dtype} values of shape {array.shape}"
               if array.ndim != 1 or len(array) == count
               else f"{len(array)} labels")
        raise ValueError(
            f"{what} must be {count} ints (one per sample){ints}, class "
            f"indices in 0..{num_classes - 1}; got {got}.")
    if len(array) and (array.min() < 0 or array.max() >= num_classes):
        raise ValueError(
            f"{what} must be class indices in 0..{num_classes - 1}; got "
            f"values from {int(array.min())} to {int(array.max())}.")
    return array.astype("int32")


def check_output_size(num_samples, sample_shape, what="`num_samples`"):
    """One clear `ValueError` when `num_samples` float32 samples of
    `sample_shape` would not fit in this machine's memory."""
    needed = 4 * int(num_samples) * int(np.prod(sample_shape))
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system
        return
    if needed > memory:
        raise ValueError(
            f"{what}={num_samples} samples of shape {tuple(sample_shape)} "
            f"need {needed / 2**30:.3g} GiB, more than this machine's "
            f"{memory / 2**30:.3g} GiB of memory: generate them in several "
            "smaller calls.")


def split_batch(batch):
    """Splits one batch into `(images, labels)`; the one place that knows
    the batch structures of the zoo.

    A batch is a bare image tensor, an `(images, labels, ...)` tuple or
    list, a dict with an `"image"` (and optional `"label"`) key as tfds
    yields them, or a tuple whose first element is such a dict (what Keras
    hands a model as `(x, y, sample_weight)`). The same works on
    `tf.data` element specs and on structures of shapes.

    Returns:
        `(images, labels)`; `labels` is `None` when the batch has none.
    """
    if isinstance(batch, dict):
        if IMAGE_KEY not in batch:
            raise ValueError(
                f"A dict batch needs an '{IMAGE_KEY}' key holding the images; "
                f"got keys {sorted(batch)}. Rename your image key to "
                f"'{IMAGE_KEY}' (tfds image datasets already use it)."
            )
        return batch[IMAGE_KEY], batch.get(LABEL_KEY)
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise ValueError("Got an empty tuple as a batch: pass images.")
        images = batch[0]
        labels = batch[1] if len(batch) > 1 else None
        if isinstance(images, dict):
            images, inner = split_batch(images)
            labels = inner if inner is not None else labels
        return images, labels
    return batch, None


def extract_images(batch):
    """Returns the images of one batch (see `split_batch`)."""
    return split_batch(batch)[0]


def image_shape_of(input_shape):
    """The `(height, width, channels)` in what Keras passes to `build`.

    `input_shape` is one shape `(batch, H, W, C)` or a structure of shapes
    (a dict with an `"image"` key, or `(images, labels)` shapes).
    """
    is_shape = isinstance(input_shape, (tuple, list)) and all(
        d is None or isinstance(d, (int, np.integer)) for d in input_shape)
    if not is_shape:
        input_shape = extract_images(input_shape)
    return tuple(input_shape)[1:]


def scale_pixels(images, signed=False):
    """Turns uint8 (0..255) or float (0..1) images into float32.

    The one place where pixels are scaled. Numpy in, numpy out; a tensor of
    any backend in, a tensor out (through `keras.ops`).

    Args:
        images: uint8 (0..255), bool or float (0..1) images.
        signed: scale to [-1, 1] (what GAN networks work in) instead of
            [0, 1].

    Returns:
        float32 images in [0, 1], or in [-1, 1] with `signed=True`.
    """
    if isinstance(images, np.ndarray):
        floats = images.astype("float32")
        if images.dtype.kind in "iu":
            floats /= 255.0
    else:
        from keras import backend, ops

        integer = "int" in backend.standardize_dtype(images.dtype)
        floats = ops.cast(images, "float32")
        if integer:
            floats = floats / 255.0
    return floats * 2.0 - 1.0 if signed else floats


def is_foreign_tf_tensor(x):
    """Whether `x` is a symbolic TensorFlow tensor on another Keras
    backend: what a `tf.data` map gives a function on JAX or PyTorch
    (`keras.ops` cannot take it there; an eager one converts to numpy)."""
    from keras import backend

    if backend.backend() == "tensorflow" or not (
            type(x).__module__.startswith("tensorflow")
            and hasattr(x, "dtype") and not _is_tf_dataset(x)):
        return False
    import tensorflow as tf

    return not tf.executing_eagerly()


def tf_noisy_pixels(images, stddev):
    """Gaussian noise on images in TensorFlow's own ops, clipped to [0, 1]:
    a denoising auto-encoder's corruption inside a `tf.data` map on any
    backend (Keras' preprocessing layers also switch to TensorFlow there).

    Args:
        images: a TensorFlow tensor of uint8 (0..255) or float (0..1)
            images.
        stddev: the noise's standard deviation.

    Returns:
        float32 images in [0, 1]. The noise is TensorFlow's stateful draw:
        new at every call, repeatable under `keras.utils.set_random_seed`.
    """
    import tensorflow as tf

    integer = images.dtype.is_integer or images.dtype == tf.bool
    floats = tf.cast(images, "float32")
    if integer:
        floats = floats / 255.0
    if stddev == 0.0:
        return floats
    noise = tf.random.normal(tf.shape(floats), stddev=stddev)
    return tf.clip_by_value(floats + noise, 0.0, 1.0)


def unsigned_pixels(images):
    """Maps float images in [-1, 1] (a numpy array) back to [0, 1]."""
    images = np.asarray(images, dtype="float32")
    return np.clip((images + 1.0) / 2.0, 0.0, 1.0)


def check_image_batch(images, expected_shape=None, what="the training data"):
    """Validates one batch of images given as a numpy array.

    Args:
        images: numpy array, expected `(batch, height, width, channels)`.
        expected_shape: `(height, width, channels)` the model was built for,
            or `None`.
        what: words naming the data in error messages.

    Returns:
        The image shape `(height, width, channels)`.
    """
    if images.ndim == 3:
        raise ValueError(
            f"{what} yields single images of shape {images.shape} (rank 3), "
            "but the model trains on batches. Batch it first, e.g. "
            "`dataset.batch(64)`; if these are already batches of grayscale "
            "images without a channel axis, add one with "
            "`images[..., None]` (or `tf.expand_dims(images, -1)`)."
        )
    if images.ndim != 4:
        raise ValueError(
            f"{what} has images of shape {images.shape} (rank {images.ndim}); "
            "expected batches of shape (batch, height, width, channels), "
            "e.g. (64, 28, 28, 1). Reshape your images to that layout "
            "(channels last)."
        )
    if images.shape[0] == 0:
        raise ValueError(f"{what} is empty: it holds no images.")
    if 0 in images.shape[1:]:
        raise ValueError(
            f"{what} has images of shape {tuple(images.shape[1:])}, with a "
            "size of 0: images need a positive height, width and number of "
            "channels.")
    if images.shape[1] in (1, 3, 4) and min(images.shape[2:]) > 4 and (
            expected_shape is None
            or tuple(images.shape[1:]) != tuple(expected_shape)):
        # PyTorch's layout (torchvision's `ToTensor`): (64, 1, 28, 28)
        # trained a model of 1 x 28 images with 28 channels, in silence
        raise ValueError(
            f"{what} has images of shape {tuple(images.shape[1:])}: channels "
            "first, as PyTorch gives them? The zoo takes channels last "
            "(batch, height, width, channels): move the axis, e.g. "
            "`x.permute(0, 2, 3, 1)` for a torch tensor (in the "
            "DataLoader's transform) or `np.moveaxis(x, 1, -1)` for numpy. "
            f"(Images {images.shape[1]} pixels high with "
            f"{images.shape[3]} channels? Make the model with "
            f"`image_shape={tuple(int(d) for d in images.shape[1:])}`.)")
    kind = images.dtype.kind
    if kind in "iu":
        low, high = images.min(), images.max()
        if low < 0 or high > 255:
            raise ValueError(
                f"{what} has integer pixel values from {low} to {high}; "
                "integer images must lie in 0..255 (uint8). Rescale them, or "
                "pass floats in [0, 1]."
            )
    elif kind == "f":
        finite = np.isfinite(images)
        if not finite.all():
            bad = images[~finite]
            raise ValueError(
                f"{what} contains {bad.size} NaN or Inf pixel value(s) "
                f"(first: {bad.flat[0]}). Clean or drop those images before "
                "training, e.g. `images = np.nan_to_num(images)`."
            )
        low, high = float(images.min()), float(images.max())
        if low < 0.0 or high > 1.0:
            hint = (
                # a resize or a blur overshoots [0, 1] a little
                " They overshoot [0, 1] a little (after a resize or a blur?): "
                "clip them, `np.clip(images, 0, 1)`."
                if low >= -0.01 and high <= 1.01
                else " They look like 0..255 values: divide by 255."
                if high <= 255.0 and low >= 0.0
                else " If they are in [-1, 1], use (images + 1) / 2."
                if low >= -1.0 and high <= 1.0
                else ""
            )
            raise ValueError(
                f"{what} has float pixel values from {low:g} to {high:g}; "
                "float images must lie in [0, 1], or be uint8 in 0..255."
                + hint
            )
    elif kind != "b":
        raise ValueError(
            f"{what} has images of dtype {images.dtype}; pass uint8 (0..255) "
            "or floats in [0, 1]."
        )
    shape = tuple(int(d) for d in images.shape[1:])
    if expected_shape is not None and shape != tuple(expected_shape):
        if shape[-1] != expected_shape[-1]:
            fix = (
                f"convert the images to {expected_shape[-1]} channel(s) "
                "(e.g. `tf.image.rgb_to_grayscale` or "
                "`tf.image.grayscale_to_rgb`)"
            )
        else:
            fix = f"resize the images to {expected_shape[:2]}"
        raise ValueError(
            f"{what} has images of shape {shape}, but this model was built "
            f"for images of shape {tuple(expected_shape)}: {fix}, or create "
            "a new model for the new shape."
        )
    return shape


_BACKEND_WARNED = []


def warn_if_backend_changed():
    """Warns once when `KERAS_BACKEND` names another backend than the one
    Keras runs: it was set after Keras was imported (a notebook cell run
    after the imports), which Keras ignores in silence."""
    import keras

    wanted = os.environ.get("KERAS_BACKEND")
    running = keras.backend.backend()
    if wanted and wanted != running and wanted not in _BACKEND_WARNED:
        _BACKEND_WARNED.append(wanted)
        import warnings

        warnings.warn(
            f"KERAS_BACKEND is {wanted!r}, but Keras runs on {running!r}: "
            "the variable was set after Keras was imported. Restart the "
            "Python process (the notebook's kernel) and set it before "
            "`import keras` or `import keras_genzoo`.",
            stacklevel=_user_stacklevel())


def _user_stacklevel():
    """The `stacklevel` of a warning raised here that points at the first
    line outside keras_genzoo (and Keras): the user's."""
    import inspect

    package = os.path.dirname(os.path.abspath(__file__))
    level = 1
    frame = inspect.currentframe().f_back  # the caller of this function
    while frame is not None:
        name = os.path.abspath(frame.f_code.co_filename)
        if not name.startswith(package) and (
                os.sep + "keras" + os.sep) not in name:
            return level
        frame, level = frame.f_back, level + 1
    return 1


def _is_array_like(x):
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(
        x, type
    )


def _is_tf_dataset(x):
    module = type(x).__module__
    return module.startswith("tensorflow") and hasattr(x, "element_spec")


def data_kind(x):
    """The name of `x`'s kind for messages: "tf.data.Dataset" for any
    tf.data dataset (not its private class, `_BatchDataset`), else its
    type's name."""
    return "tf.data.Dataset" if _is_tf_dataset(x) else type(x).__name__


def _pixel_array(images):
    """Checked images in a dtype every backend holds: uint8 for any
    integer or bool array (its values are 0..255), float32 for float64."""
    kind = images.dtype.kind
    if kind == "b":
        return images.astype("uint8") * np.uint8(255)
    if kind in "iu" and images.dtype != np.uint8:
        return images.astype("uint8")
    if images.dtype == np.float64:
        return images.astype("float32")
    return images


def _check_not_targets(images, labels, reconstructs, what):
    """For a model that learns to reconstruct its input (`reconstructs`:
    its name, else `None`): a `ValueError` for "labels" that are target
    images (each as large as an image, and not the images themselves).

    Before, `AutoEncoder.fit(noisy, clean)` trained to reproduce `noisy`
    and ignored `clean` in silence. Labels (one-hot ones too) are still
    taken and ignored, and so are targets that are the inputs
    (`fit(x, x)`, `validation_data=(x, x)`: the same thing)."""
    if not reconstructs or labels is None:
        return
    array = to_numpy(labels, f"The labels of {what}")
    if (array.ndim < 2 or len(array) != len(images) or not len(array)
            or array[0].size != images[0].size):
        return
    if np.array_equal(array.reshape(images.shape), images):
        return
    raise ValueError(
        f"{what} comes with targets of shape {array.shape}, but "
        f"{reconstructs} reconstructs its input: it has no targets to "
        "learn (they would be ignored). Drop `y` (or the second element "
        "of the batches). For a denoising auto-encoder, pass the clean "
        "images alone and set `AutoEncoder(noise_stddev=...)`: it adds "
        "the noise itself during training.")


def _check_fit_labels(labels, count, num_classes, what):
    """The labels that come with `count` images of `what` (a conditional
    model's class labels, returned as int32, else only their number)."""
    if labels is None:
        return None
    if num_classes:
        return check_class_labels(labels, num_classes, count,
                                  f"The labels of {what}")
    array = to_numpy(labels, f"The labels of {what}")
    if array.ndim == 0 or len(array) != count:
        raise ValueError(
            f"{what} has {count} images but `y` has shape {array.shape}: "
            "pass one label per image, or no `y` (this model does not use "
            "labels).")
    return None


def prepare_images_for_fit(x, expected_shape=None, what="the training data",
                           y=None, num_classes=None, reconstructs=None):
    """Validates `x` and finds the image shape, before training starts.

    Args:
        x: what the user passes to `fit`: an array (numpy, tf, jax or torch),
            a dict of arrays with an `"image"` key, a `tf.data.Dataset`, a
            `keras.utils.PyDataset`, a torch `DataLoader` or a generator.
        expected_shape: the image shape of an already-built model, or `None`.
        what: words naming the data in error messages.
        y: the labels passed next to an array `x`, or `None`.
        num_classes: a conditional model's number of classes: the labels
            (`y`, a dict's `"label"`, or those of the first batch) must be
            ints in `0..num_classes - 1`, one per image. `None`: labels are
            not looked into (only their number, for `y`).
        reconstructs: the name of a model that reconstructs its input
            (an auto-encoder): target images as labels are refused.

    Returns:
        `(x, image_shape)`: `x` ready to hand to `keras.Model.fit` (a numpy
        array of grayscale images without a channel axis gets one; integer
        and bool arrays become uint8, float64 ones float32; a generator is
        re-wrapped after its first batch was looked at) and the
        `(height, width, channels)` of its images.

    Whole arrays are checked image by image. Datasets, generators and
    loaders are checked on their first batch, so that looking costs nothing
    for large streams; their later batches are not read here.
    """
    if x is None:
        raise ValueError(f"{what} is None: pass images to `fit`.")
    if isinstance(x, (str, bytes)):
        raise ValueError(
            f"{what} is a string ({x!r:.40}): load the images first, e.g. "
            "with `keras_genzoo.datasets.load_images(path)`, and pass the "
            "arrays or the dataset.")
    # Whole arrays (or dicts of arrays): check every image, it is cheap.
    if isinstance(x, dict) or _is_array_like(x):
        images = to_numpy(extract_images(x), what)
        original = images
        if (images.ndim == 3 and expected_shape is not None
                and tuple(images.shape) == tuple(expected_shape)
                and images.shape[1:] != (1, 1)):
            # one image of the model's shape, which was read as H grey
            # images of W x C pixels: the message then blamed their size
            # ("resize to ...") or their channels (`rgb_to_grayscale`)
            raise ValueError(
                f"{what} is one image {tuple(images.shape)}, and batches "
                "of images (N, H, W, C) are expected: pass `images[None]` "
                "(a batch of one).")
        if images.ndim == 3 and images.shape[0] > 0:
            # (N, H, W), as `keras.datasets.mnist.load_data()` returns.
            images = images[..., None]
        if images.ndim >= 1 and images.shape[0] == 0:
            raise ValueError(f"{what} is empty: it holds no images.")
        shape = check_image_batch(images, expected_shape, what)
        labels = x.get(LABEL_KEY) if isinstance(x, dict) else None
        _check_not_targets(images, y if labels is None else labels,
                           reconstructs, what)
        checked = _check_fit_labels(y if labels is None else labels,
                                    len(images), num_classes, what)
        images = _pixel_array(images)
        if isinstance(x, dict):
            x = dict(x, **{IMAGE_KEY: images})
            if labels is not None and checked is not None:
                x[LABEL_KEY] = checked
        elif images is not original:
            x = images
        return x, shape
    if isinstance(x, (tuple, list)):
        raise ValueError(
            f"{what} is a {type(x).__name__}; pass the images as `x` and the "
            "labels (if any) as `y`, e.g. `model.fit(images, labels)`, or a "
            "dataset that yields (images, labels) tuples."
        )
    if y is not None:
        raise ValueError(
            f"{what} is a {type(x).__name__} and `y` was given too: a "
            "dataset carries its own labels, as (images, labels) batches or "
            "dicts with a 'label' key. Drop `y`.")
    if isinstance(x, types.GeneratorType):
        first, batches = peek_generator(x, what)
        images, labels = split_batch(first)
        images = to_numpy(images, what)
        _remember_sample_weights(x, first)
        shape = check_image_batch(images, expected_shape, what)
        _check_not_targets(images, labels, reconstructs, what)
        _check_stream_labels(labels, len(images), num_classes, what)
        _check_stream_dtypes(images, None if labels is None else to_numpy(
            labels, what), what)

        # Keras wants tuples from generators: wrap bare image batches (a
        # generator again: Keras reads no other iterator), without the
        # `None` of `(images, None)`
        return (without_nones(batch) for batch in batches), shape
    images, labels = _first_batch(x, what)
    shape = check_image_batch(images, expected_shape, what)
    _check_not_targets(images, labels, reconstructs, what)
    _check_stream_labels(labels, len(images), num_classes, what)
    _check_stream_dtypes(images, labels, what)
    if _is_torch_dataloader(x) and (labels is None or x in _DICT_BATCHES):
        # (a loader of labelled dicts failed on TensorFlow and JAX too:
        # Keras' adapter made each dict the tuple of its keys)
        x = _tuple_loader(x)
    return x, shape


def peek_generator(x, what, fix=None):
    """`(first batch, generator of every batch)` of the generator `x`: its
    first batch read to check, and put back in front (Keras reads no other
    iterator than a generator); one `ValueError` for an empty one."""
    try:
        first = next(x)
    except StopIteration:
        raise ValueError(
            f"{what} is empty: the generator yields nothing"
            + (f": {fix}." if fix else ".")) from None
    return first, (batch for batch in itertools.chain([first], x))


def _as_tuple(batch):
    """A batch as Keras' data adapters read it: a bare array of images
    becomes `(images,)`, a dict (tfds' layout) `(dict,)` (Keras' generator
    adapter refused both: "must return a tuple"); tuples stay as they
    are."""
    if isinstance(batch, tuple):
        return batch
    if isinstance(batch, list):
        return tuple(batch)
    return (batch,)


def _is_torch_dataloader(x):
    torch = sys.modules.get("torch")  # a DataLoader means torch is imported
    return torch is not None and isinstance(x, torch.utils.data.DataLoader)


def _keep(batch):
    return batch


def _tuple_loader(loader, convert=None):
    """A DataLoader that yields `loader`'s batches as tuples (or as
    `convert(batch)` makes them), in the same order (a fresh pass of
    `loader`, with its own shuffling and workers, each epoch) and with the
    same length.

    A loader of bare image batches (no labels) trains as it is on PyTorch,
    but Keras' DataLoader adapter on TensorFlow and JAX calls `tuple()` on
    every batch (keras 3.15, `TorchDataLoaderAdapter.get_numpy_iterator`),
    which splits a bare batch into its single images."""
    import torch

    class Batches(torch.utils.data.IterableDataset):
        def __iter__(self):
            return map(convert or _as_tuple, loader)

    class SizedBatches(Batches):
        def __len__(self):
            return len(loader)

    # Keras reads the number of batches where the dataset has a length
    sized = hasattr(loader.dataset, "__len__")
    return torch.utils.data.DataLoader(
        SizedBatches() if sized else Batches(), batch_size=None,
        collate_fn=_keep)


def _check_stream_dtypes(images, labels, what):
    """Dtypes a stream's batches reach the backend in, unconverted: PyTorch
    holds no uint64, so none may come (the same data works on every
    backend)."""
    for name, array in (("images", images), ("labels", labels)):
        if array is not None and array.dtype == np.uint64:
            target = "uint8" if name == "images" else "int32"
            raise ValueError(
                f"{what} has {name} of dtype uint64, which PyTorch cannot "
                f"hold: cast them to {target} where the batches are made, "
                f"e.g. `tf.cast(x, tf.{target})` in a tf.data pipeline.")


def _check_stream_labels(labels, count, num_classes, what):
    """The labels of a stream's first batch (`None` if it has none)."""
    if num_classes and labels is None:
        raise ValueError(
            f"This model is conditional (num_classes={num_classes}) but "
            f"{what} has no labels in its batches: make it yield (images, "
            "labels) tuples, or dicts with a 'label' key.")
    _check_fit_labels(labels, count, num_classes, what)


# The first batch of each dataset, loader or PyDataset already looked at:
# reading it again on every `fit` would refill a tf.data shuffle buffer
# (9,000 images for the embedded MNIST) only to throw it away.
_FIRST_BATCHES = weakref.WeakKeyDictionary()
# the datasets and loaders whose first batch was a dict (tfds' layout)
_DICT_BATCHES = weakref.WeakSet()
# those whose first batch held a `None` (`(images, None)`)
_NONE_BATCHES = weakref.WeakSet()


def yields_none(x):
    """Whether the first batch of `x` that `fit`'s data check read was a
    tuple holding a `None` (`(images, None)`)."""
    try:
        return x in _NONE_BATCHES
    except TypeError:
        return False


def without_nones(batch):
    """A batch as a tuple without its trailing `None`s: `(images, None)` as
    `(images,)`. Keras' TensorFlow adapters of `PyDataset`s and generators
    type a `None` from the first batches and then refuse it ("`generator`
    yielded an element that did not match the expected structure"), where
    JAX and PyTorch take it. Bare batches and dicts as `_as_tuple` makes
    them."""
    if isinstance(batch, (tuple, list)):
        batch = tuple(batch)
        while len(batch) > 1 and batch[-1] is None:
            batch = batch[:-1]
        return batch
    return _as_tuple(batch)


def first_batch(x, what="the data"):
    """The first batch of a dataset, loader or PyDataset as numpy
    `(first element, second element or None)`, read once per object."""
    return _first_batch(x, what)


def _first_batch(x, what):
    """`(images as numpy, labels or None)` of the first batch of `x`, read
    once per dataset object."""
    try:
        return _FIRST_BATCHES[x]
    except (KeyError, TypeError):
        pass
    if _is_tf_dataset(x):
        first = _first_tf_batch(x, what)
    elif hasattr(x, "__getitem__") and hasattr(x, "__len__"):  # PyDataset
        if len(x) == 0:
            raise ValueError(f"{what} is empty: it has no batches.")
        first = x[0]
    elif hasattr(x, "__iter__"):  # torch DataLoader and other iterables
        try:
            first = next(iter(x))
        except StopIteration:
            raise ValueError(f"{what} is empty: it yields no batches.")
    else:
        raise ValueError(
            f"{what} is of type {type(x).__name__}, which `fit` cannot read. "
            "Pass a numpy array, a tf.data.Dataset, a keras.utils.PyDataset "
            "or a torch DataLoader of image batches."
        )
    images, labels = split_batch(first)
    result = (to_numpy(images, what),
              None if labels is None else to_numpy(labels, what))
    try:
        if isinstance(first, dict):
            _DICT_BATCHES.add(x)
        if isinstance(first, (tuple, list)) and any(
                element is None for element in first):
            _NONE_BATCHES.add(x)
        _FIRST_BATCHES[x] = result
    except TypeError:  # not weak-referenceable: read again next time
        pass
    _remember_sample_weights(x, first)
    return result


# Whether the first batch of each stream read by `fit`'s data check held
# sample weights (see `yields_sample_weights`).
_WEIGHTED = weakref.WeakKeyDictionary()


def _remember_sample_weights(x, batch):
    try:
        _WEIGHTED[x] = _holds_sample_weights(batch)
    except TypeError:  # not weak-referenceable
        pass


def _holds_sample_weights(batch):
    """Whether a batch is Keras' `(x, y, sample_weight)` with weights."""
    return (isinstance(batch, (tuple, list)) and len(batch) > 2
            and batch[2] is not None)


def yields_sample_weights(x):
    """Whether the first batch of a dataset, loader, PyDataset or generator
    that `fit`'s data check read held sample weights (`False` for data it
    did not read)."""
    try:
        return _WEIGHTED[x]
    except (KeyError, TypeError):
        return False


def _first_tf_batch(dataset, what):
    spec = extract_images(dataset.element_spec)
    rank = spec.shape.rank
    if rank == 3 and spec.shape[0] is None and spec.shape[-1] not in (
            None, 1, 3, 4):
        # `.batch()` leaves the batch axis unknown, and the last axis is
        # no image's channels: batches of grayscale images without a
        # channel axis (called unbatched before)
        raise ValueError(
            f"{what} yields batches of shape {tuple(spec.shape)}: grayscale "
            "images without a channel axis? Add one, e.g. "
            "`dataset.map(lambda images: images[..., None])` (for "
            "`(images, labels)`: `lambda x, y: (x[..., None], y)`).")
    if rank == 3:
        raise ValueError(
            f"{what} is an unbatched dataset: its elements are single images "
            f"of shape {tuple(spec.shape)}. Batch it before `fit`, e.g. "
            "`dataset.batch(64)`; if these are already batches of grayscale "
            "images without a channel axis, add one with "
            "`dataset.map(lambda images: images[..., None])`."
        )
    for batch in dataset.take(1):
        return batch
    raise ValueError(f"{what} is empty: the dataset yields no batches.")


def _image_list(items, what):
    """A list of images as one numpy array; an `(images, labels, ...)`
    batch (images first, then one label per image) as it is.

    Before, every list was taken as such a batch: `encode(list_of_images)`
    used only the first image, in silence."""
    if not items:
        raise ValueError(f"{what} is empty: it holds no images.")
    if isinstance(items[0], dict):
        return items
    arrays = [to_numpy(item, what) for item in items]
    if isinstance(items, list) and len(arrays) > 1 and all(
            array.ndim >= 4 for array in arrays):
        # a list of batches: all of them (only the first before); a tuple
        # stays Keras' `(x, y)`, whose `x` is used
        if len({array.shape[1:] for array in arrays}) > 1:
            raise ValueError(
                f"{what}: a list of batches of different image shapes "
                f"{[array.shape for array in arrays]}; pass batches of "
                "one shape.")
        return np.concatenate(arrays)
    # (images, labels, ...): a batch (or one image) first, then its labels
    # (one per image, or one label for one image: `(image, 3)`)
    labelled = len(arrays) > 1 and arrays[0].ndim >= 3 and (
        arrays[1].ndim == 0 or arrays[1].ndim in (1, 2)
        and len(arrays[1]) in (len(arrays[0]), 1))
    if arrays[0].ndim >= 4 or labelled:
        return items
    return to_numpy(arrays, what)  # ragged: one clear error


def carried_labels(images):
    """The labels that images given as an `(images, labels)` batch or a
    dict with a `"label"` key carry (`images_to_array` drops them);
    `None` for images alone."""
    if isinstance(images, dict):
        return images.get(LABEL_KEY)
    if (isinstance(images, (list, tuple)) and len(images) > 1
            and not isinstance(images[0], dict)):
        first = to_numpy(images[0], "images")
        second = to_numpy(images[1], "images")
        # as `_image_list` tells such a batch from a list of images
        if first.ndim >= 3 and (second.ndim == 0 or second.ndim in (1, 2)
                                and len(second) in (len(first), 1)):
            return second
    return None


def _is_stream_of_batches(x):
    """A tf.data dataset, an iterator or generator, a torch `DataLoader`
    or a Keras `PyDataset`: what `fit` reads batch by batch (other
    sequences numpy reads, a `deque` or `memoryview`, are arrays)."""
    if _is_tf_dataset(x):
        return True
    if isinstance(x, (np.ndarray, list, tuple, dict, str, bytes)) or (
            _is_array_like(x)):
        return False
    try:
        if iter(x) is x:  # generators and other iterators
            return True
    except TypeError:
        pass
    return type(x).__module__.startswith("torch.utils.data") or any(
        cls.__name__ == "PyDataset" for cls in type(x).__mro__)


def pair_as_inputs(batch):
    """`((images, labels),)` for a batch `(images, labels)` of bare image
    and label arrays; any other batch as it is (`((images, labels),
    targets)`, dicts, bare images)."""
    if (isinstance(batch, (tuple, list)) and len(batch) == 2
            and not isinstance(batch[0], (tuple, list, dict))):
        return (tuple(batch),)
    if isinstance(batch, dict):
        return (batch,)  # (Keras' generator adapter: "must return a tuple")
    return batch


def pairs_as_inputs(stream, what):
    """A tf.data dataset or a generator of `(images, labels)` batches as
    one of `((images, labels),)`: the whole pair is `x` to Keras, which
    takes a pair as `(x, y)` and drops `y` in `predict` (a conditional
    model then saw its images without their labels). Bare images in a
    dataset are one `ValueError` naming the fix; other batches go as they
    come (see `pair_as_inputs`). A `PyDataset` is wrapped by the caller."""
    if _is_tf_dataset(stream):
        spec = stream.element_spec
        if (isinstance(spec, tuple) and len(spec) == 2
                and not isinstance(spec[0], (tuple, list, dict))):
            return stream.map(lambda images, labels: ((images, labels),))
        if not isinstance(spec, (tuple, dict)):
            raise ValueError(
                f"{what} is a dataset of bare images, and the model is "
                "conditional: make it yield (images, labels) pairs.")
        return stream
    return (pair_as_inputs(batch) for batch in stream)


def images_to_array(images, expected_shape=None, what="images"):
    """Turns images given to `encode`/`reconstruct` into a float32 array.

    Accepts one image `(H, W, C)`, a batch `(N, H, W, C)`, grayscale images
    without a channel axis, uint8 (0..255) or floats in [0, 1]; also a
    list of such images or of batches, a dict with an `"image"` key, or an `(images,
    labels)` tuple (the labels are not used here).
    """
    if _is_stream_of_batches(images):
        # a dataset, loader or generator: "images of shape () (rank 0)
        # ... Reshape your images" before
        raise ValueError(
            f"{what} takes images as arrays (one image, a batch or a list); "
            f"got {type(images).__name__!r}: take the images out first, e.g. "
            "`np.concatenate([np.asarray(x) for x, _ in dataset])` (auto-"
            "encoders' `encode_data` reads datasets).")
    if isinstance(images, (list, tuple)):
        images = _image_list(images, what)
    array = as_image_batch(to_numpy(extract_images(images), what),
                           expected_shape)
    check_image_batch(array, expected_shape, what)
    return scale_pixels(array)


def as_image_batch(array, expected_shape=None):
    """A numpy array of images as a batch `(N, H, W, C)` (unchecked): one
    image `(H, W, C)` gets a batch axis, grayscale images `(H, W)` or
    `(N, H, W)` of a model of `expected_shape` a channel axis."""
    if expected_shape is not None:
        expected_shape = tuple(expected_shape)
        if array.shape == expected_shape:  # one image
            array = array[None]
        elif expected_shape[-1] == 1 and array.shape[-2:] == expected_shape[:2]:
            # grayscale without a channel axis: one (H, W) image or (N, H, W)
            array = array.reshape((-1,) + expected_shape)
    return array


def has_labels(x, y=None):
    """Whether the data handed to `fit` carries class labels.

    Labels come as `y`, as the second element of `(images, labels)` batches,
    or under the `"label"` key of dict batches. Generators cannot be looked
    into without consuming them: they count as labelled.
    """
    if y is not None:
        return True
    if isinstance(x, dict) or _is_array_like(x):
        return isinstance(x, dict) and x.get(LABEL_KEY) is not None
    if isinstance(x, types.GeneratorType):
        return True
    if _is_tf_dataset(x):
        spec = split_batch(x.element_spec)[1]
        # `from_tensor_slices((images, None))` holds a NoneTensorSpec
        return spec is not None and type(spec).__name__ != "NoneTensorSpec"
    return _first_batch(x, "the data")[1] is not None


def iterate_image_batches(x, batch_size=256, expected_shape=None,
                          what="the data", labels=None, with_labels=False):
    """Yields the images of any data `fit` takes, batch by batch.

    For methods that read a whole dataset once (fitting a latent prior,
    scoring anomalies): an array (numpy, tf, jax or torch; grayscale
    without a channel axis too), a dict of arrays with an `"image"` key, a
    `tf.data.Dataset`, a `keras.utils.PyDataset`, a torch `DataLoader`, a
    generator or any iterable of batches; bare batches, `(images, labels)`
    tuples or dicts.

    Args:
        x: the data.
        batch_size: images per batch for whole arrays (datasets keep their
            own batches).
        expected_shape: `(height, width, channels)` of the model's images.
        what: words naming the data in error messages.
        labels: labels of an array `x`; with a dataset, loader or
            generator, whose batches carry their own, a `ValueError`.
        with_labels: yield `(images, labels or None)` pairs instead of
            images.

    Yields:
        float32 numpy batches `(n, H, W, C)` in [0, 1], each checked (with
        their labels as numpy, or `None`, when `with_labels`).
    """
    if x is None:
        raise ValueError(f"{what} is None: pass images.")
    if isinstance(x, (str, bytes)):
        raise ValueError(
            f"{what} is a string ({x!r:.40}): load the images first and "
            "pass the arrays or the dataset.")
    step = check_count(batch_size, "batch_size")
    if isinstance(x, dict) or _is_array_like(x):
        array = images_to_array(x, expected_shape, what)
        if labels is None and isinstance(x, dict):
            labels = x.get(LABEL_KEY)
        if labels is not None:
            labels = to_numpy(labels, "`labels`")
            if labels.ndim == 0:  # one label for all images
                labels = np.full((len(array),), labels)
            if labels.ndim > 1 and all(d == 1 for d in labels.shape[1:]):
                labels = labels.reshape(len(labels))
        for start in range(0, len(array), step):
            images = array[start:start + step]
            if with_labels:
                yield images, (None if labels is None
                               else labels[start:start + step])
            else:
                yield images
        return
    if isinstance(x, (tuple, list)):
        # a list of images or of batches, an `(images, labels)` pair: as
        # `encode` and `reconstruct` take them (refused before)
        items = _image_list(x, what)
        if isinstance(items, np.ndarray):
            x = items
        elif not isinstance(items[0], dict) and len(items) <= 2 and (
                len(items) == 1 or labels is None):
            x = items[0]
            if len(items) == 2:
                labels = items[1]
        else:
            raise ValueError(
                f"{what} is a {type(x).__name__} of {len(x)} items; pass "
                "an array of images, `(images, labels)` or a dataset of "
                "image batches.")
        yield from iterate_image_batches(x, batch_size, expected_shape,
                                         what, labels, with_labels)
        return
    if labels is not None:
        # (they were dropped in silence: `plot_latent_space` coloured the
        # codes with labels of another count, a conditional model asked
        # for the `labels=` it was given)
        raise ValueError(
            f"`labels=` goes with an array of images, and {what} is a "
            f"{data_kind(x)}, whose batches bring their own: make it "
            "yield `(images, labels)` pairs, or pass the images as an "
            "array.")
    if _is_tf_dataset(x):
        _first_tf_batch(x, what)  # an unbatched dataset fails clearly
        batches = x.as_numpy_iterator()
    elif hasattr(x, "__getitem__") and hasattr(x, "__len__"):  # PyDataset
        batches = (x[i] for i in range(len(x)))
    elif hasattr(x, "__iter__"):
        batches = iter(x)
    else:
        raise ValueError(
            f"{what} is of type {type(x).__name__}, which cannot be read. "
            "Pass a numpy array, a tf.data.Dataset, a keras.utils.PyDataset "
            "or a torch DataLoader of image batches.")
    for batch in batches:
        images, batch_labels = split_batch(batch)
        images = images_to_array(images, expected_shape, what)
        if with_labels:
            yield images, (None if batch_labels is None
                           else to_numpy(batch_labels, "`labels`"))
        else:
            yield images
