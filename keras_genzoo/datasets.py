"""Datasets that `fit` takes directly: tfds, embedded offline data, your files.

Image loaders return `(train_ds, val_ds)`: batched `tf.data.Dataset`s of
`(images, labels)` (or bare images with `with_labels=False`), images as uint8
in 0..255 with shape `(batch, height, width, channels)`. Every zoo model, on
every backend, trains on them as they are.

- `load_images("embedded_mnist")`: the 10,000 MNIST test images shipped
  inside the package; works offline, no download.
- `load_images("mnist" | "fashion_mnist" | "cifar10")`: TensorFlow Datasets.
  Nothing is downloaded unless you pass `download=True`; without a prepared
  copy you get a clear error right away instead of a hang.
- `load_images("/path/to/folder")`: your own images (png, jpg, bmp, gif),
  labelled by sub-folder when there are sub-folders.

Text: `load_text("tiny_shakespeare")` (embedded) or `load_text(path)` returns
the text; `text_datasets(text, ...)` turns it into batched character windows
`(inputs, targets)` for next-character prediction.
"""

import codecs
import gzip
import math
import os
import struct
import warnings

import numpy as np

from keras_genzoo import _inputs

_DATA_DIR = os.path.join(os.path.dirname(__file__), "data")
TFDS_IMAGE_DATASETS = ("mnist", "fashion_mnist", "cifar10")
EMBEDDED_IMAGE_DATASETS = ("embedded_mnist",)
EMBEDDED_TEXTS = {"tiny_shakespeare": "tinyshakespeare.txt.gz"}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def read_idx(path):
    """Reads an IDX file (MNIST's format), gzipped or not, into numpy.

    Args:
        path: path of a `.gz` or raw IDX file.

    Returns:
        A uint8 numpy array with the shape stored in the file.

    Examples:
        >>> from keras_genzoo.datasets import read_idx, embedded_path
        >>> read_idx(embedded_path("t10k-labels-idx1-ubyte.gz")).shape
        (10000,)
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not a uint8 IDX file.")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    array = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    return array.reshape(shape).copy()  # writable, unlike the buffer


def embedded_path(filename):
    """Path of a file in the package's embedded data folder."""
    return os.path.join(_DATA_DIR, filename)


def load_embedded_mnist():
    """The 10,000 MNIST test images shipped inside the package, as numpy.

    Returns:
        `(images, labels)`: uint8 images `(10000, 28, 28, 1)` in 0..255 and
        uint8 labels `(10000,)`.

    Examples:
        >>> from keras_genzoo.datasets import load_embedded_mnist
        >>> images, labels = load_embedded_mnist()
        >>> images.shape, labels.shape
        ((10000, 28, 28, 1), (10000,))
    """
    images = read_idx(embedded_path("t10k-images-idx3-ubyte.gz"))
    labels = read_idx(embedded_path("t10k-labels-idx1-ubyte.gz"))
    return images[..., None], labels


def _idx_file(directory, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def is_mnist_idx_folder(directory):
    """Whether `directory` holds MNIST-format idx files (train split)."""
    return _idx_file(directory, "train-images-idx3-ubyte") is not None


def load_mnist_idx(directory, split="train"):
    """Reads MNIST-format idx files (MNIST, Fashion-MNIST) from a folder.

    Args:
        directory: folder with `{split}-images-idx3-ubyte[.gz]` and
            `{split}-labels-idx1-ubyte[.gz]` (`split` "train" or "t10k").
        split: `"train"` (60,000 images for MNIST) or `"t10k"` (10,000).

    Returns:
        `(images, labels)`: uint8 `(N, 28, 28, 1)` and `(N,)`.

    Examples:
        >>> import os
        >>> from keras_genzoo.datasets import load_mnist_idx, embedded_path
        >>> images, labels = load_mnist_idx(os.path.dirname(
        ...     embedded_path("t10k-images-idx3-ubyte.gz")), split="t10k")
        >>> images.shape
        (10000, 28, 28, 1)
    """
    images_path = _idx_file(directory, f"{split}-images-idx3-ubyte")
    labels_path = _idx_file(directory, f"{split}-labels-idx1-ubyte")
    if images_path is None or labels_path is None:
        raise FileNotFoundError(
            f"No {split}-images-idx3-ubyte[.gz] and {split}-labels-idx1-ubyte"
            f"[.gz] in {directory}."
        )
    images, labels = read_idx(images_path), read_idx(labels_path)
    return images[..., None], labels


def _check_split(validation_split):
    if not 0.0 <= _inputs.check_number(validation_split,
                                       "validation_split") < 1.0:
        raise ValueError(
            "`validation_split` must be in [0, 1), e.g. 0.1; got "
            f"{validation_split}."
        )
    return float(validation_split)


def _tensorflow():
    """TensorFlow, for tf.data; kept off the GPUs unless it is the backend.

    On JAX and PyTorch, TensorFlow only runs the input pipelines, on the
    CPU. Left alone it would claim nearly all of every GPU's memory the
    first time it runs an operation, beside the backend that trains (a
    Colab GPU shared by JAX and TensorFlow), so its GPUs are hidden from it
    first. Too late once TensorFlow has run something (it raises
    `RuntimeError` then, and the user's own setup stands).
    """
    import keras
    import tensorflow as tf

    global _tensorflow_placed
    if not _tensorflow_placed and keras.backend.backend() != "tensorflow":
        _tensorflow_placed = True
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:
            pass
    return tf


_tensorflow_placed = False


def _even_count(count, batch_size, devices):
    """How many of `count` examples batches of `batch_size` can share
    evenly among `devices`: all, less those that make the last batch
    uneven."""
    return count - count % batch_size % devices


def _batched(ds, batch_size, shuffle, seed, size=None, validation=False):
    from keras_genzoo import backend as zoo_backend

    tf = _tensorflow()

    batch_size = int(batch_size)
    # Under a `keras.distribution` (JAX) every batch must be a multiple of
    # the devices: a last batch that is not failed inside Keras' step with
    # JAX's `IndivisibleError`. As `text_datasets`: the images that make
    # it uneven (fewer than the devices) are left out.
    devices = zoo_backend.batch_devices()
    uneven = False
    if devices > 1:
        if batch_size % devices:
            raise ValueError(
                f"batch_size={batch_size} cannot be shared evenly by the "
                f"{devices} devices of the distribution (or tf.distribute "
                f"replicas): pass a batch_size that is a multiple of "
                f"{devices}.")
        count = int(ds.cardinality())
        if count >= 0:  # known: the same images left out every epoch
            keep = _even_count(count, batch_size, devices)
            if not keep:
                # (the validation part was named as if it were the data)
                raise ValueError(
                    f"{count} {'validation ' if validation else ''}"
                    f"image(s), fewer than the distribution's {devices} "
                    "devices: "
                    + ("hold out more for validation (a larger "
                       "`validation_split`), or none (`validation_split=0`)."
                       if validation else "use more images."))
            ds = ds.take(keep)
            size = keep if size is not None else None
        else:
            uneven = True
    if shuffle:
        ds = ds.shuffle(
            size or 10_000, seed=seed, reshuffle_each_iteration=True
        )
    ds = ds.batch(batch_size)
    if uneven:  # a size tf.data does not know: trim each batch
        def even(*element):
            kept = tf.shape(element[0])[0]
            kept -= kept % devices
            element = tuple(part[:kept] for part in element)
            return element if len(element) > 1 else element[0]

        ds = ds.map(even).filter(
            lambda *element: tf.shape(element[0])[0] > 0)
    return ds.prefetch(tf.data.AUTOTUNE)


def arrays_to_datasets(
    images,
    labels=None,
    batch_size=128,
    validation_split=0.1,
    shuffle=True,
    seed=0,
):
    """Splits image arrays into batched train and validation datasets.

    The last `validation_split` fraction of the arrays is the validation set.

    Args:
        images: array `(num_images, height, width, channels)` (or
            `(num_images, height, width)` for grayscale), uint8 or floats
            in [0, 1]; the datasets yield uint8, as the loaders do.
        labels: optional array `(num_images,)` of int class indices
            0..K-1 (map other labels with `np.unique(labels,
            return_inverse=True)`).
        batch_size: images per batch.
        validation_split: fraction held out for validation (0 for none;
            at least one image otherwise).
        shuffle: whether to reshuffle the training set every epoch.
        seed: shuffling seed.

    Returns:
        `(train_ds, val_ds)`; `val_ds` is `None` when `validation_split` is 0.
        With labels, both have a `class_names` attribute (as `load_images`
        gives): `"0"` ... up to the largest label.

    Examples:
        >>> import numpy as np
        >>> from keras_genzoo.datasets import arrays_to_datasets
        >>> images = np.zeros((100, 8, 8, 1), "uint8")
        >>> train_ds, val_ds = arrays_to_datasets(images, batch_size=10)
        >>> len(train_ds), len(val_ds)
        (9, 1)
    """
    validation_split = _check_split(validation_split)
    batch_size = _inputs.check_count(batch_size, "batch_size")
    images = _inputs.to_numpy(images, "`images`")
    if images.ndim == 0:
        raise ValueError("`images` must be an array of images "
                         "(num_images, height, width, channels).")
    if images.ndim == 3:  # grayscale without a channel axis
        images = images[..., None]
    # what the loaders yield, uint8 (N, H, W, C): floats in [0, 1] and
    # 3-D arrays went through as they were
    _inputs.check_image_batch(images, what="`images`")
    if images.dtype != np.uint8:
        images = np.round(_inputs.scale_pixels(images) * 255.0).astype(
            "uint8")
    if labels is not None:
        labels = _inputs.to_numpy(labels, "`labels`")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(
                f"`labels` must hold one label per image: {len(images)} "
                f"images, labels of shape {labels.shape}.")
        _check_label_indices(labels)
    num_val = int(round(len(images) * validation_split))
    if validation_split:
        # at least one, as `load_images` keeps (no validation set, in
        # silence, when the split rounded to none)
        num_val = max(num_val, 1)
    parts = _split_arrays(images, labels, num_val, batch_size, shuffle, seed)
    if labels is not None:
        for part in parts:
            if part is not None:
                part.class_names = _label_names(labels)
    return parts


# The most classes `arrays_to_datasets` names ("0" ... "65535").
_MAX_CLASSES = 2**16


def _check_label_indices(labels):
    """One `ValueError` unless `labels` are class indices 0..K-1 (strings
    failed inside numpy; two labels 0 and 5,000,000 made 5,000,001 class
    names)."""
    fix = ("map them to 0..K-1 first: `class_names, labels = "
           "np.unique(labels, return_inverse=True)`")
    whole = labels.dtype.kind in "biuf" and (
        labels.dtype.kind != "f" or _inputs.holds_whole_numbers(labels))
    if not whole:
        raise ValueError(
            f"`labels` must be int class indices 0..K-1 (one per image); "
            f"got {labels.dtype} values: {fix}.")
    if labels.size and labels.min() < 0:
        raise ValueError(
            f"`labels` must be class indices 0..K-1; got values from "
            f"{labels.min()}: {fix}.")
    if labels.size and labels.max() >= _MAX_CLASSES:
        raise ValueError(
            f"`labels` go up to {labels.max()} ({len(np.unique(labels))} "
            f"distinct values); class indices are 0..K-1, K at most "
            f"{_MAX_CLASSES}: {fix}.")


def _label_names(labels):
    """`"0"` ... the largest of integer labels."""
    labels = np.asarray(labels)
    return [str(c) for c in range(int(labels.max()) + 1 if labels.size else 0)]


def _split_arrays(images, labels, num_val, batch_size, shuffle, seed):
    tf = _tensorflow()

    num_train = len(images) - num_val
    if num_train <= 0:
        raise ValueError(
            f"Only {len(images)} image(s): nothing left to train on after "
            f"holding out {num_val} for validation."
        )

    def make(start, stop, is_train):
        parts = images[start:stop]
        if labels is not None:
            parts = (parts, labels[start:stop])
        ds = tf.data.Dataset.from_tensor_slices(parts)
        return _batched(ds, batch_size, shuffle and is_train, seed,
                        size=stop - start, validation=not is_train)

    train_ds = make(0, num_train, True)
    val_ds = make(num_train, len(images), False) if num_val else None
    return train_ds, val_ds


def load_images(
    name,
    batch_size=128,
    validation_split=0.1,
    with_labels=True,
    shuffle=True,
    seed=0,
    limit=None,
    download=False,
    data_dir=None,
    image_size=None,
    color_mode=None,
):
    """Loads an image dataset as batched train and validation datasets.

    Args:
        name: `"embedded_mnist"` (offline, 10,000 images, in the package),
            `"mnist"`, `"fashion_mnist"` or `"cifar10"` (TensorFlow Datasets),
            the path of a folder of images, or of a folder of MNIST-format
            idx files (`train-images-idx3-ubyte[.gz]`, ...: its train split).
        batch_size: images per batch.
        validation_split: fraction of the training images held out for
            validation (0 for none). For tfds it must be a whole percentage.
        with_labels: yield `(images, labels)` tuples; `False` yields bare
            image batches.
        shuffle: reshuffle the training set every epoch.
        seed: shuffling (and, for folders, splitting) seed; `None` draws
            one (from NumPy's generator for a folder).
        limit: use at most this many training images (and at most
            `limit * validation_split` validation images), the same ones
            every epoch; handy for quick runs. (For a folder they are read
            once and kept in memory.)
        download: tfds only. `False` (the default) never touches the network
            and fails at once if the data was not prepared; `True` lets tfds
            download and prepare it.
        data_dir: tfds only: where tfds keeps its data (tfds' default,
            `~/tensorflow_datasets`, when `None`).
        image_size: folders of image files only (a `ValueError` for the
            other sources): `(height, width)` to resize to; default: the
            size of the first image found.
        color_mode: folders of image files only: `"grayscale"`, `"rgb"` or
            `"rgba"`;
            default: what the first image found holds (`"rgba"` when it
            has transparency, grey-with-alpha included; `"grayscale"` when
            it is grey, a grey palette included; else `"rgb"`).

    Returns:
        `(train_ds, val_ds)`: batched `tf.data.Dataset`s of uint8 images
        (with labels unless `with_labels=False`, or for a folder of images
        without class sub-folders, which has no labels: bare image
        batches); `val_ds` is `None` when `validation_split` is 0. With
        labels, both have a `class_names` attribute, as Keras'
        `image_dataset_from_directory` gives: the class sub-folders' names
        (sorted: label `i` is `class_names[i]`), the tfds label names, or
        `"0"` ... `"9"` for MNIST; its length is a conditional model's
        `num_classes`.

    Raises:
        ValueError: unknown name, or bad arguments.
        FileNotFoundError: a tfds dataset that is not prepared while
            `download=False`, or a folder without images.

    Examples:
        >>> from keras_genzoo.datasets import load_images
        >>> train_ds, val_ds = load_images("embedded_mnist", batch_size=32, limit=64)
        >>> images, labels = next(iter(train_ds))
        >>> tuple(images.shape), images.dtype.name
        ((32, 28, 28, 1), 'uint8')
        >>> len(train_ds.class_names)
        10
    """
    validation_split = _check_split(validation_split)
    batch_size = _inputs.check_count(batch_size, "batch_size")
    # (a string seed was a TypeError from a message's formatting, a NaN
    # limit a conversion error, 2.5 images cut to 2 in silence)
    seed = _inputs.check_seed(seed, none="draw one")
    if limit is not None:
        limit = _inputs.check_count(limit, "limit")
    *parts, class_names = _load_images(
        name, batch_size, validation_split, with_labels, shuffle, seed,
        limit, download, data_dir, image_size, color_mode)
    if class_names is not None:
        # as Keras' `image_dataset_from_directory` names them, for every
        # source: `len(train_ds.class_names)` is a conditional model's
        # `num_classes`
        for part in parts:
            if part is not None:
                part.class_names = list(class_names)
    return tuple(parts)


def _load_images(name, batch_size, validation_split, with_labels, shuffle,
                 seed, limit, download, data_dir, image_size, color_mode):
    """`load_images`: `(train_ds, val_ds, class_names)`, the names `None`
    where the batches have no labels."""
    if not isinstance(name, (str, os.PathLike)):
        raise ValueError(
            f"`name` must be a dataset name or the path of a folder; got a "
            f"{type(name).__name__}. For arrays of images use "
            "`arrays_to_datasets(images, labels)`.")
    is_folder = os.path.isdir(name)
    arrays = None
    if name in EMBEDDED_IMAGE_DATASETS:
        arrays = load_embedded_mnist()
    elif is_folder and is_mnist_idx_folder(name):
        arrays = load_mnist_idx(name, "train")
    given = [f"{option}={value!r}" for option, value in (
        ("image_size", image_size), ("color_mode", color_mode))
        if value is not None]
    if given and (arrays is not None or name in TFDS_IMAGE_DATASETS):
        # (they were ignored: 28x28 grey images came out of
        # `image_size=(32, 32), color_mode="rgb"` without a word)
        raise ValueError(
            f"{', '.join(given)}: only a folder of image files is resized "
            f"or converted; {name!r} yields its images as they are stored. "
            "Leave it out, and resize or convert the batches with "
            "`dataset.map(...)` (e.g. `keras.layers.Resizing`).")
    if arrays is not None:
        images, labels = arrays
        # the classes of all the labels (a limit of 3 named 8 of MNIST's)
        names = _label_names(labels) if with_labels else None
        num_val = int(round(len(images) * validation_split))
        if validation_split:
            # (a split under 1 / 20,000 of the 10,000 held none out, where
            # the other sources keep one)
            num_val = max(num_val, 1)
        if limit is not None and int(limit) < len(images):
            # at least one validation image for a split > 0 (as the tfds
            # and folder datasets keep): before, a tenth of a limit of 5
            # rounded to none, and `genzoo train ae` failed on it. (A
            # limit from 9,000 to 9,999 of the embedded 10,000 kept all
            # 1,000 validation images, not a tenth of the limit.)
            num_val = int(round(int(limit) * validation_split))
            if validation_split:
                num_val = max(num_val, 1)
            keep = min(int(limit) + num_val, len(images))
            images, labels = images[:keep], labels[:keep]
        return _split_arrays(
            images, labels if with_labels else None, num_val, batch_size,
            shuffle, seed,
        ) + (names,)
    if name in TFDS_IMAGE_DATASETS:
        return _load_tfds(
            name, batch_size, validation_split, with_labels, shuffle, seed,
            limit, download, data_dir,
        )
    if is_folder:
        return _load_folder(
            os.fspath(name), batch_size, validation_split, with_labels,
            shuffle, seed, limit, image_size, color_mode,
        )
    raise ValueError(
        f"Unknown image dataset {name!r}. Use one of "
        f"{EMBEDDED_IMAGE_DATASETS + TFDS_IMAGE_DATASETS} or the path of an "
        "existing folder of images."
    )


def _load_tfds(name, batch_size, validation_split, with_labels, shuffle,
               seed, limit, download, data_dir):
    import tensorflow_datasets as tfds

    tf = _tensorflow()

    percent = validation_split * 100
    if abs(percent - round(percent)) > 1e-9:
        raise ValueError(
            "For tfds datasets `validation_split` must be a whole percentage "
            f"(e.g. 0.1); got {validation_split}."
        )
    cut = 100 - int(round(percent))
    splits = [f"train[:{cut}%]"] + ([f"train[{cut}%:]"] if cut < 100 else [])
    try:
        parts, info = tfds.load(
            name,
            split=splits,
            data_dir=data_dir,
            download=bool(download),
            shuffle_files=False,
            with_info=True,
        )
    except (AssertionError, tfds.core.registered.DatasetNotFoundError,
            FileNotFoundError) as error:
        where = data_dir or "~/tensorflow_datasets"
        raise FileNotFoundError(
            f"TensorFlow Datasets has no prepared copy of {name!r} in "
            f"{where}. Pass download=True to let tfds download it (needs "
            "internet), pass data_dir= pointing at a folder that has it, or "
            "train offline on load_images('embedded_mnist')."
            f" (tfds said: {error})"
        ) from None

    def select(element):
        if with_labels:
            return element["image"], element["label"]
        return element["image"]

    parts = [p.map(select, num_parallel_calls=tf.data.AUTOTUNE)
             for p in parts]
    names = list(info.features["label"].names) if with_labels else None
    return _limit_and_batch(parts, limit, validation_split, batch_size,
                            shuffle, seed) + (names,)


def _limit_and_batch(parts, limit, validation_split, batch_size, shuffle,
                     seed, keep_limited=False):
    """Caps `[train, val]` element datasets at `limit` and batches them.

    `keep_limited`: the training elements come in a new order every pass
    (Keras' folder datasets), so that the first `limit` of them would be
    other images every epoch: they are read once and kept in memory."""
    out = []
    for i, part in enumerate(parts):
        reshuffle = shuffle and i == 0
        if limit is not None:
            part = part.take(
                int(limit) if i == 0
                else max(1, int(round(int(limit) * validation_split)))
            )
            if keep_limited and i == 0:
                part = part.cache()
        elif keep_limited:
            # Keras shuffles the folder's files at every pass: a second
            # shuffle, of decoded images in a buffer of 10,000, decoded
            # that many before each epoch's first batch (and held them)
            reshuffle = False
        out.append(_batched(part, batch_size, reshuffle, seed,
                            validation=i == 1))
    return out[0], (out[1] if len(out) > 1 else None)


def _class_folders(folder):
    """The sub-folders Keras' `image_dataset_from_directory` takes as
    classes (hidden ones are skipped), sorted."""
    return [d for d in sorted(os.listdir(folder))
            if os.path.isdir(os.path.join(folder, d))
            and not d.startswith(".")]


def _image_files(folder, class_folders):
    """The image files `image_dataset_from_directory` reads, in its order:
    those under each class folder when there are any, else all those
    under `folder`."""
    found = []
    for sub in class_folders or [""]:
        for root, _, files in sorted(os.walk(os.path.join(folder, sub)),
                                     key=lambda entry: entry[0]):
            found.extend(os.path.join(root, f) for f in sorted(files)
                         if f.lower().endswith(IMAGE_EXTENSIONS))
    return found


def _color_mode(image):
    """The Keras `color_mode` that keeps what a PIL image holds: `"rgba"`
    when it has transparency, else `"grayscale"` when it is grey, else
    `"rgb"`. Keras has no grey-with-alpha mode, so an `LA` image (or a grey
    palette with transparency) reads as `"rgba"`, which keeps its alpha."""
    mode = image.mode
    # transparency as a tRNS chunk (grey or RGB PNGs) too: it was read
    # as grayscale or rgb, dropping the alpha
    if mode in ("LA", "La", "PA", "RGBA", "RGBa") or (
            "transparency" in image.info):
        return "rgba"
    if mode in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F"):
        return "grayscale"
    if mode == "P":
        # a palette image is grey when every colour it shows is
        red, green, blue = (channel.tobytes()
                            for channel in image.convert("RGB").split())
        return "grayscale" if red == green == blue else "rgb"
    return "rgb"


# What TensorFlow's `decode_image` reads (by the content, not the name),
# as PIL names the formats: MPO is the JPEG of many cameras and phones
_DECODABLE = ("PNG", "JPEG", "MPO", "BMP", "GIF", "WEBP")
# those it decodes in colour only (RGB, or RGBA)
_COLOUR_ONLY = ("BMP", "GIF", "WEBP")
# those it decodes without transparency
_NO_ALPHA = ("GIF", "JPEG", "MPO")


def _check_decodable(files):
    """One `ValueError` naming the first file TensorFlow could not decode:
    it failed inside `fit`, at the batch that held it, with "Unknown image
    file format" and no file name. Only each file's header is read (PIL
    opens images lazily: ~0.1 s per 1,000 files). Returns the formats
    found, each with its first file."""
    from PIL import Image

    formats = {}
    for path in files:
        try:
            with Image.open(path) as image:
                found, mode = image.format, image.mode
        except (OSError, SyntaxError, ValueError) as error:
            raise ValueError(
                f"{path} cannot be read as an image ({error}): remove it "
                "from the folder or replace it.") from None
        if found not in _DECODABLE:
            raise ValueError(
                f"{path} holds a {found} image, which TensorFlow does not "
                f"decode (it reads {', '.join(_DECODABLE)}, whatever the "
                "file's name): convert it to PNG or remove it.")
        if found == "BMP" and mode == "1":
            # (TensorFlow reads 8, 24 and 32 bits per pixel: "Number of
            # channels ... was 0" inside `fit`, no file named)
            raise ValueError(
                f"{path} is a BMP of 1 bit per pixel, which TensorFlow does "
                "not decode: convert it to PNG (or an 8-bit or 24-bit "
                "BMP).")
        formats.setdefault(found, path)
    return formats


def _load_folder(folder, batch_size, validation_split, with_labels, shuffle,
                 seed, limit, image_size, color_mode):
    import keras
    from PIL import Image

    tf = _tensorflow()

    class_folders = _class_folders(folder)
    files = _image_files(folder, class_folders)
    if not files:
        raise FileNotFoundError(
            f"No images ({', '.join(IMAGE_EXTENSIONS)}) found in {folder}"
            + (" (with sub-folders, only theirs are read: one class each)."
               if class_folders else "."))
    formats = _check_decodable(files)
    if color_mode not in (None, "grayscale", "rgb", "rgba"):
        raise ValueError(
            f"`color_mode` must be \"grayscale\", \"rgb\", \"rgba\" or None "
            f"(what the first image holds); got {color_mode!r}.")
    # TensorFlow decodes GIFs as RGB only and BMPs and WebPs as RGB or
    # RGBA: a folder holding them is decoded as RGB, and made grey below
    # where it is to be read as "grayscale" (TensorFlow's "`channels` must
    # be 0, 3 or 4 for BMP" or GIFs' 3 channels in a grey folder before)
    # GIFs, JPEGs: no alpha channel (a JPEG in an "rgba" folder failed
    # inside `fit`: "JPEG does not support 4 channels", no file named)
    opaque = [formats[f] for f in _NO_ALPHA if f in formats]
    if opaque and color_mode == "rgba":
        raise ValueError(
            f"{folder} holds GIF or JPEG images "
            f"({os.path.basename(opaque[0])}, ...), which TensorFlow "
            "decodes without transparency (no alpha channel): pass "
            "`color_mode=\"rgb\"` or \"grayscale\" (or leave it out), or "
            "convert them to PNG to read them as 'rgba'.")
    if class_folders and any(
            f.lower().endswith(IMAGE_EXTENSIONS) for f in os.listdir(folder)
            if os.path.isfile(os.path.join(folder, f))):
        # Keras reads only the class sub-folders: the images beside them
        # were left out in silence
        warnings.warn(
            f"{folder} has class sub-folders ({', '.join(class_folders[:3])}"
            f"{', ...' if len(class_folders) > 3 else ''}) and images beside "
            "them, which are not read: with sub-folders only their images "
            "are (one class each). Move the images into a sub-folder.",
            stacklevel=3)
    if image_size is not None:
        if isinstance(image_size, (int, np.integer)) and not isinstance(
                image_size, bool):
            image_size = (image_size, image_size)
        try:
            height, width = image_size
            image_size = (_inputs.check_count(height, "image_size"),
                          _inputs.check_count(width, "image_size"))
        except (TypeError, ValueError):
            # an int, (0, 4): a TypeError, or tf.data's error at the first
            # batch, before
            raise ValueError(
                "`image_size` must be (height, width), two positive "
                f"integers (or one for a square); got {image_size!r}."
            ) from None
    with Image.open(files[0]) as image:
        if image_size is None:
            image_size = (image.height, image.width)
        if color_mode is None:
            color_mode = _color_mode(image)
            if opaque and color_mode == "rgba":
                color_mode = "rgb"  # (GIFs, JPEGs: without transparency)
    # decoded as RGB, then made grey by `to_uint8` (GIFs, BMPs and WebPs,
    # by their content, whatever their names)
    to_grey = color_mode == "grayscale" and bool(set(formats)
                                                 & set(_COLOUR_ONLY))
    labels = "inferred" if class_folders else None
    if with_labels and labels is None:
        with_labels = False  # no sub-folders: nothing to label by
    if validation_split:
        # Keras holds out int(split * count) images and would find none
        # left to train on (its message blames the folder) when that is 0
        count = len(files)
        if int(validation_split * count) == 0:
            raise ValueError(
                f"{folder} holds {count} image(s): too few to hold out "
                f"validation_split={validation_split} of them for "
                f"validation. Add images (at least "
                f"{math.ceil(1 / validation_split)}), or pass "
                "`validation_split=0`.")
    kwargs = dict(
        labels=labels,
        color_mode="rgb" if to_grey else color_mode,
        image_size=tuple(image_size),
        batch_size=None,
        shuffle=bool(shuffle),
        seed=seed,
        # (with Keras set to channels_first, (batch, C, H, W) came out)
        data_format="channels_last",
    )
    if seed is None and validation_split:
        # (Keras refuses a split without a seed: the other sources take
        # `seed=None`, drawn from numpy's generator as here)
        kwargs["seed"] = seed = np.random.randint(1e6)
    if shuffle and validation_split:
        train, val = keras.utils.image_dataset_from_directory(
            folder, validation_split=validation_split, subset="both",
            **kwargs,
        )
        parts = [train, val]
    elif shuffle:
        parts = [keras.utils.image_dataset_from_directory(folder, **kwargs)]
    else:
        # Keras reshuffles the files of every pass when it shuffles them
        # for its split (`shuffle=False` was ignored): the files in their
        # sorted order, split here as Keras splits them (a seeded
        # permutation of the files, the last `int(split * count)` held
        # out), so that both settings validate on the same images
        everything = keras.utils.image_dataset_from_directory(
            folder, **kwargs)
        parts = [everything]
        if validation_split:
            count = len(files)
            held_out = int(validation_split * count)
            order = np.arange(count)
            np.random.RandomState(seed).shuffle(order)
            is_val = np.zeros(count, bool)
            is_val[order[count - held_out:]] = True
            is_val = tf.constant(is_val)

            def part(validation, size):
                kept = everything.enumerate().filter(
                    lambda i, element: tf.equal(tf.gather(is_val, i),
                                                validation))
                kept = kept.map(lambda i, element: element)
                return kept.apply(
                    tf.data.experimental.assert_cardinality(size))

            parts = [part(False, count - held_out), part(True, held_out)]

    def to_uint8(*element):
        image = element[0]
        if to_grey:
            # (ITU-R 601 luma, as PIL's "L"; a grey image keeps its values)
            image = tf.image.rgb_to_grayscale(image)
        image = tf.cast(tf.round(tf.clip_by_value(image, 0, 255)), tf.uint8)
        if labels is None or not with_labels:
            return image
        return image, element[1]

    return _limit_and_batch([p.map(to_uint8) for p in parts], limit,
                            validation_split, batch_size, shuffle, seed,
                            keep_limited=True) + (
        class_folders if with_labels else None,)


# ------------------------------------------------------------------- text
def load_text(name, encoding="utf-8"):
    """Loads a text: the embedded Tiny Shakespeare, or any UTF-8 file.

    Args:
        name: `"tiny_shakespeare"` or the path of a text file.
        encoding: the file's encoding (a Python codec name). UTF-8, in any
            spelling (`"utf-8"`, `"UTF8"`, `"utf_8"`...), is read as
            `"utf-8-sig"`: a leading byte-order mark (which some Windows
            editors write) is dropped rather than becoming a character of
            the text and of its vocabulary.

    Returns:
        The text, as a `str`.

    Examples:
        >>> from keras_genzoo.datasets import load_text
        >>> text = load_text("tiny_shakespeare")
        >>> len(text), text[:9]
        (1115394, 'First Cit')
    """
    if isinstance(name, (str, os.PathLike)) and name in EMBEDDED_TEXTS:
        with gzip.open(embedded_path(EMBEDDED_TEXTS[name]), "rb") as f:
            return f.read().decode("utf-8")
    if isinstance(name, (str, os.PathLike)) and os.path.isfile(name):
        try:
            codec = codecs.lookup(encoding).name
        except (LookupError, TypeError):
            raise ValueError(
                f"Unknown encoding {encoding!r}: pass a Python codec name, "
                "e.g. encoding='utf-8' or encoding='latin-1'.") from None
        # Plain "utf-8" kept a byte-order mark as a '\ufeff' character at
        # the start of the text: an invisible extra vocabulary entry and
        # training character. "utf-8-sig" drops it (and reads files without
        # one unchanged).
        decoding = "utf-8-sig" if codec == "utf-8" else encoding
        with open(name, "rb") as f:
            raw = f.read()
        try:
            return raw.decode(decoding)
        except UnicodeDecodeError as error:
            raise ValueError(
                f"{name} is not valid {encoding} text ({error}). Save it "
                "as UTF-8, or pass its real encoding to `load_text`, e.g. "
                "encoding='latin-1'."
            ) from None
    raise ValueError(
        f"Unknown text {name!r}. Use one of {sorted(EMBEDDED_TEXTS)} or the "
        "path of an existing text file."
    )


def char_vocabulary(text):
    """The sorted list of distinct characters of `text`.

    Examples:
        >>> char_vocabulary("hello")
        ['e', 'h', 'l', 'o']
    """
    return sorted(set(text))


def text_datasets(
    text,
    sequence_length=64,
    batch_size=32,
    validation_split=0.1,
    vocabulary=None,
    stride=None,
    shuffle=True,
    seed=0,
):
    """Cuts a text into batched next-character windows.

    The first `1 - validation_split` of the text trains, the rest validates
    (as nanoGPT splits Tiny Shakespeare). Each element is `(inputs,
    targets)`: int32 character ids of shape `(batch, sequence_length)`, the
    targets shifted one character ahead of the inputs.

    Args:
        text: the text (a `str`), e.g. from `load_text`.
        sequence_length: characters per window.
        batch_size: windows per batch.
        validation_split: fraction of the text held out (0 for none).
        vocabulary: list of characters; id `i` is `vocabulary[i]`. Default:
            `char_vocabulary(text)`.
        stride: characters between the starts of two training windows;
            default `sequence_length` (windows do not overlap). `stride=1`
            trains on every window of the text. The validation windows
            never overlap, whatever the stride: overlapping ones score the
            same characters again (with `stride=1`, 64 times as many
            validation steps at `sequence_length=64`).
        shuffle: reshuffle the training windows every epoch.
        seed: shuffling seed.

    Under a `keras.distribution` (JAX), whose devices must share every
    batch evenly, each dataset leaves out the few windows (fewer than the
    devices) that would make its last batch uneven: before, that batch
    failed in the middle of training with JAX's `IndivisibleError`. The
    shuffled training windows leave out different ones each epoch.

    Returns:
        `(train_ds, val_ds)` of `(inputs, targets)` batches of token ids;
        `val_ds` is `None` when `validation_split` is 0.

    Raises:
        ValueError: for a text too short for one window, or, under a
            `keras.distribution`, a `batch_size` that its devices cannot
            share evenly.

    Examples:
        >>> from keras_genzoo.datasets import text_datasets
        >>> train_ds, val_ds = text_datasets("abcdefgh" * 50, sequence_length=8,
        ...                                  batch_size=4)
        >>> x, y = next(iter(train_ds))
        >>> tuple(x.shape), tuple(y.shape)
        ((4, 8), (4, 8))
    """
    tf = _tensorflow()

    if not isinstance(text, str) or not text:
        raise ValueError("`text` must be a non-empty string.")
    validation_split = _check_split(validation_split)
    sequence_length = _inputs.check_count(sequence_length, "sequence_length")
    stride = sequence_length if stride is None else _inputs.check_count(
        stride, "stride")
    batch_size = _inputs.check_count(batch_size, "batch_size")
    seed = _inputs.check_seed(seed)
    vocabulary = list(char_vocabulary(text) if vocabulary is None
                      else vocabulary)
    index = {c: i for i, c in enumerate(vocabulary)}
    unknown = sorted(set(text) - set(index))
    if unknown:
        raise ValueError(
            f"The text has characters missing from the vocabulary: "
            f"{unknown[:20]}. Build the vocabulary from this text "
            "(`char_vocabulary(text)`) or remove those characters."
        )
    ids = np.fromiter((index[c] for c in text), dtype=np.int32,
                      count=len(text))
    cut = int(len(ids) * (1.0 - validation_split))
    pieces = [("training", ids[:cut])]
    if validation_split:
        pieces.append(("validation", ids[cut:]))

    from keras_genzoo import backend as zoo_backend

    devices = zoo_backend.batch_devices()
    out = []
    for i, (what, part) in enumerate(pieces):
        if len(part) < sequence_length + 1:
            raise ValueError(
                f"The {what} text has {len(part)} characters, fewer than one "
                f"window of sequence_length + 1 = {sequence_length + 1}. Use "
                "a longer text or a shorter sequence_length"
                + (", or hold out more (a larger `validation_split`) or none "
                   "(`validation_split=0`)." if what == "validation" else ".")
            )
        starts = np.arange(0, len(part) - sequence_length,
                           stride if i == 0 else sequence_length)
        # the windows the devices can share (all of them on one device)
        count = _even_count(len(starts), batch_size, devices)
        if batch_size % devices:
            # the batch size is the fix, however many windows there are
            zoo_backend.check_batch_split(len(starts), batch_size,
                                          f"the {what} text", datasets=False)
        if not count:
            raise ValueError(
                f"The {what} text has {len(starts)} window(s), fewer than "
                f"the distribution's {devices} devices. Use a longer text.")
        zoo_backend.check_batch_split(count, batch_size, f"the {what} text",
                                      datasets=False)
        tokens = tf.constant(part)

        def window_batch(batch_starts, tokens=tokens):
            # one gather per batch: (batch, sequence_length + 1) ids
            offsets = tf.range(sequence_length + 1, dtype=batch_starts.dtype)
            chunks = tf.gather(tokens, batch_starts[:, None] + offsets)
            return chunks[:, :-1], chunks[:, 1:]

        if shuffle and i == 0:
            # a fresh permutation of all window starts at every iteration
            # (epoch), without a shuffle buffer (with one window per
            # character it would hold a million elements and take ~1 s to
            # fill before the first batch)
            ds = tf.data.Dataset.random(
                seed=seed, rerandomize_each_iteration=True).take(1)
            ds = ds.map(lambda r, s=tf.constant(starts): (
                tf.random.experimental.stateless_shuffle(
                    s, seed=tf.stack([r, tf.constant(0, tf.int64)]))))
            ds = ds.unbatch().apply(
                tf.data.experimental.assert_cardinality(len(starts)))
            ds = ds.take(count)
        else:
            ds = tf.data.Dataset.from_tensor_slices(starts[:count])
        ds = ds.batch(int(batch_size)).map(window_batch).prefetch(2)
        # Without tf.data's autotuning thread: deleting an iterator (at the
        # end of `fit`) waits for that thread's current sleep, which doubles
        # up to 60 s (TensorFlow 2.21; measured up to 51 s after a 2000-step
        # fit; benchmarks/tf_data_teardown.py reproduces it). Nothing here
        # is autotuned.
        options = tf.data.Options()
        options.autotune.enabled = False
        out.append(ds.with_options(options))
    return out[0], (out[1] if len(out) > 1 else None)
