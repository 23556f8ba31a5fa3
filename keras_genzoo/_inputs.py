"""Checks and conversions for the image data users pass to `fit`.

Everything here runs eagerly on numpy copies of *one* batch (or of a whole
numpy array), before any training step, so that bad input fails with one clear
`ValueError` that names the fix instead of a shape error deep inside a
compiled step. Nothing here imports a backend framework at module level.
"""

import itertools
import types
import weakref

import numpy as np

IMAGE_KEY = "image"
LABEL_KEY = "label"


def to_numpy(value):
    """Converts a tensor of any backend (or a nested list) to a numpy array."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch
        return value.detach().cpu().numpy()
    if hasattr(value, "numpy"):  # tf eager tensors
        return value.numpy()
    return np.asarray(value)


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
                " They look like 0..255 values: divide by 255."
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


def _is_array_like(x):
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(
        x, type
    )


def _is_tf_dataset(x):
    module = type(x).__module__
    return module.startswith("tensorflow") and hasattr(x, "element_spec")


def prepare_images_for_fit(x, expected_shape=None, what="the training data"):
    """Validates `x` and finds the image shape, before training starts.

    Args:
        x: what the user passes to `fit`: an array (numpy, tf, jax or torch),
            a dict of arrays with an `"image"` key, a `tf.data.Dataset`, a
            `keras.utils.PyDataset`, a torch `DataLoader` or a generator.
        expected_shape: the image shape of an already-built model, or `None`.
        what: words naming the data in error messages.

    Returns:
        `(x, image_shape)`: `x` ready to hand to `keras.Model.fit` (a numpy
        array of grayscale images without a channel axis gets one; a
        generator is re-wrapped after its first batch was looked at) and the
        `(height, width, channels)` of its images.

    Whole arrays are checked image by image. Datasets, generators and
    loaders are checked on their first batch, so that looking costs nothing
    for large streams; their later batches are not read here.
    """
    if x is None:
        raise ValueError(f"{what} is None: pass images to `fit`.")
    # Whole arrays (or dicts of arrays): check every image, it is cheap.
    if isinstance(x, dict) or _is_array_like(x):
        images = to_numpy(extract_images(x))
        if images.ndim == 3 and images.shape[0] > 0:
            # (N, H, W), as `keras.datasets.mnist.load_data()` returns.
            images = images[..., None]
            if isinstance(x, dict):
                x = dict(x, **{IMAGE_KEY: images})
            else:
                x = images
        if images.size == 0:
            raise ValueError(f"{what} is empty: it holds no images.")
        shape = check_image_batch(images, expected_shape, what)
        return x, shape
    if isinstance(x, (tuple, list)):
        raise ValueError(
            f"{what} is a {type(x).__name__}; pass the images as `x` and the "
            "labels (if any) as `y`, e.g. `model.fit(images, labels)`, or a "
            "dataset that yields (images, labels) tuples."
        )
    if isinstance(x, types.GeneratorType):
        try:
            first = next(x)
        except StopIteration:
            raise ValueError(f"{what} is empty: the generator yields nothing.")
        shape = check_image_batch(
            to_numpy(extract_images(first)), expected_shape, what
        )

        def regenerate(first=first, rest=x):
            # Keras wants tuples from generators: wrap bare image batches.
            for batch in itertools.chain([first], rest):
                if isinstance(batch, (tuple, dict)):
                    yield batch
                elif isinstance(batch, list):
                    yield tuple(batch)
                else:
                    yield (batch,)

        return regenerate(), shape
    images, _ = _first_batch(x, what)
    return x, check_image_batch(images, expected_shape, what)


# The first batch of each dataset, loader or PyDataset already looked at:
# reading it again on every `fit` would refill a tf.data shuffle buffer
# (9,000 images for the embedded MNIST) only to throw it away.
_FIRST_BATCHES = weakref.WeakKeyDictionary()


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
    result = (to_numpy(images), None if labels is None else to_numpy(labels))
    try:
        _FIRST_BATCHES[x] = result
    except TypeError:  # not weak-referenceable: read again next time
        pass
    return result


def _first_tf_batch(dataset, what):
    spec = extract_images(dataset.element_spec)
    rank = spec.shape.rank
    if rank == 3:
        raise ValueError(
            f"{what} is an unbatched dataset: its elements are single images "
            f"of shape {tuple(spec.shape)}. Batch it before `fit`, e.g. "
            "`dataset.batch(64)`."
        )
    for batch in dataset.take(1):
        return batch
    raise ValueError(f"{what} is empty: the dataset yields no batches.")


def images_to_array(images, expected_shape=None, what="images"):
    """Turns images given to `encode`/`reconstruct` into a float32 array.

    Accepts one image `(H, W, C)`, a batch `(N, H, W, C)`, grayscale images
    without a channel axis, uint8 (0..255) or floats in [0, 1].
    """
    array = to_numpy(extract_images(images))
    if expected_shape is not None:
        expected_shape = tuple(expected_shape)
        if array.shape == expected_shape:  # one image
            array = array[None]
        elif expected_shape[-1] == 1 and array.shape[-2:] == expected_shape[:2]:
            # grayscale without a channel axis: one (H, W) image or (N, H, W)
            array = array.reshape((-1,) + expected_shape)
    check_image_batch(array, expected_shape, what)
    return scale_pixels(array)


def has_labels(x, y=None):
    """Whether the data handed to `fit` carries class labels.

    Labels come as `y`, as the second element of `(images, labels)` batches,
    or under the `"label"` key of dict batches. Generators cannot be looked
    into without consuming them: they count as labelled.
    """
    if y is not None:
        return True
    if isinstance(x, dict) or _is_array_like(x):
        return isinstance(x, dict) and LABEL_KEY in x
    if isinstance(x, types.GeneratorType):
        return True
    if _is_tf_dataset(x):
        return split_batch(x.element_spec)[1] is not None
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
        labels: labels of an array `x` (datasets carry their own).
        with_labels: yield `(images, labels or None)` pairs instead of
            images.

    Yields:
        float32 numpy batches `(n, H, W, C)` in [0, 1], each checked (with
        their labels as numpy, or `None`, when `with_labels`).
    """
    if x is None:
        raise ValueError(f"{what} is None: pass images.")
    if isinstance(x, dict) or _is_array_like(x):
        array = images_to_array(x, expected_shape, what)
        if labels is None and isinstance(x, dict):
            labels = x.get(LABEL_KEY)
        if labels is not None:
            labels = to_numpy(labels).reshape(-1)
        step = int(batch_size)
        for start in range(0, len(array), step):
            images = array[start:start + step]
            if with_labels:
                yield images, (None if labels is None
                               else labels[start:start + step])
            else:
                yield images
        return
    if isinstance(x, (tuple, list)):
        raise ValueError(
            f"{what} is a {type(x).__name__}; pass an array of images or a "
            "dataset of image batches.")
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
                           else to_numpy(batch_labels).reshape(-1))
        else:
            yield images
