"""Checks and conversions for the image data users pass to `fit`.

Everything here runs eagerly on numpy copies of *one* batch (or of a whole
numpy array), before any training step, so that bad input fails with one clear
`ValueError` that names the fix instead of a shape error deep inside a
compiled step. Nothing here imports a backend framework at module level.
"""

import itertools
import types

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


def extract_images(batch):
    """Returns the images of one batch.

    A batch is a bare image tensor, an `(images, labels, ...)` tuple or list,
    or a dict with an `"image"` key (as tfds yields them).
    """
    if isinstance(batch, dict):
        if IMAGE_KEY not in batch:
            raise ValueError(
                f"A dict batch needs an '{IMAGE_KEY}' key holding the images; "
                f"got keys {sorted(batch)}. Rename your image key to "
                f"'{IMAGE_KEY}' (tfds image datasets already use it)."
            )
        return batch[IMAGE_KEY]
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise ValueError("Got an empty tuple as a batch: pass images.")
        return batch[0]
    return batch


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
    if isinstance(first, tuple) and len(first) == 1:
        first = first[0]
    images = to_numpy(extract_images(first))
    return x, check_image_batch(images, expected_shape, what)


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
    if array.dtype.kind in "iu":
        return array.astype("float32") / 255.0
    return array.astype("float32")


def _batch_has_labels(batch):
    if isinstance(batch, dict):
        return LABEL_KEY in batch
    if isinstance(batch, (tuple, list)):
        return len(batch) > 1 or (
            len(batch) == 1 and _batch_has_labels(batch[0])
        )
    return False


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
        return _batch_has_labels(x.element_spec)
    if hasattr(x, "__getitem__") and hasattr(x, "__len__"):
        return _batch_has_labels(x[0])
    if hasattr(x, "__iter__"):
        return _batch_has_labels(next(iter(x)))
    return False
