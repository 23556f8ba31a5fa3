"""Quality you can measure: distances between image sets, mode coverage.

- `mnist_classifier()`: a small CNN trained on the 60,000 MNIST training
  images (`tools/train_mnist_classifier.py`), shipped inside the package.
  Its penultimate layer (128 ReLU units) is the default feature space of the
  distances; its class probabilities give `mode_coverage`.
- `frechet_distance(real, generated)`: the Fréchet distance between
  Gaussians fitted to the features of two image sets (FID's formula). With
  the MNIST classifier's features it is a "Fréchet LeNet distance", as MNIST
  papers use. **It is not comparable with Inception-based FIDs**: compare
  numbers measured with the same feature model only.
- `kernel_distance(real, generated)`: the kernel (inception) distance, KID:
  the unbiased squared MMD with the cubic polynomial kernel
  `k(x, y) = (x.y / d + 1) ** 3`, averaged over random subsets, as in
  keras-io's DDIM example. Unbiased: close to 0 (even slightly negative)
  for two samples of the same distribution, whatever their size.
- `mode_coverage(images)`: how the samples spread over the classes (a GAN
  that collapses onto a few digits shows it here).
- `quality_scores(real, generated)`: all of the above in one dict (what
  `keras_genzoo.callbacks.QualityMonitor` logs during training).

Images come as numpy arrays or tensors of any backend `(N, H, W, C)` (or
`(N, 28, 28)` grayscale), `tf.data` datasets, `keras.utils.PyDataset`s or
other iterables of batches, `(images, labels)` batches or tfds dicts; uint8
in 0..255 or floats in [0, 1]. Features are computed with the model's
`predict` (any backend); the statistics in float64 numpy.
"""

import os

import numpy as np

import keras

from keras_genzoo import _inputs
from keras_genzoo import backend as zoo_backend

CLASSIFIER_FILE = "mnist_classifier.keras"
MNIST_SHAPE = (28, 28, 1)
FEATURE_LAYER = "features"

# The shipped network, loaded once per process (the metrics share it).
_CACHE = {}


@keras.saving.register_keras_serializable(package="keras_genzoo")
class MnistClassifier(keras.Model):
    """The MNIST digit classifier behind the zoo's quality metrics.

    Wraps the shipped network (`network`, a functional model that takes
    floats in [0, 1]) so that it also takes uint8 images: integer pixels
    are scaled by 1/255 before the network sees them. `predict` returns
    class probabilities `(N, 10)`; `features` the activations of the
    penultimate layer `(N, 128)`, the feature space of the distances.

    Build it with `mnist_classifier()`, which loads the shipped weights.

    Args:
        network: the functional network: images `(N, 28, 28, 1)` in [0, 1]
            to probabilities `(N, 10)`, with a layer named `"features"`.
        **kwargs: standard `keras.Model` arguments.

    Examples:
        >>> from keras_genzoo.datasets import load_embedded_mnist
        >>> from keras_genzoo.metrics import mnist_classifier
        >>> images, labels = load_embedded_mnist()
        >>> classifier = mnist_classifier()
        >>> probabilities = classifier.predict(images[:100], verbose=0)
        >>> probabilities.shape
        (100, 10)
        >>> float((probabilities.argmax(-1) == labels[:100]).mean()) >= 0.98
        True
    """

    def __init__(self, network, **kwargs):
        super().__init__(**kwargs)
        if isinstance(network, dict):
            network = keras.saving.deserialize_keras_object(network)
        self.network = network
        self.feature_network = keras.Model(
            network.inputs, network.get_layer(FEATURE_LAYER).output,
            name="mnist_features")
        self.built = True  # the network is built

    def call(self, images):
        return self.network(_inputs.scale_pixels(images))

    def features(self, images, batch_size=500):
        """Penultimate-layer activations `(N, 128)` of images, as numpy."""
        array = collect_images(images, "images", min_images=1)
        return _predict(self.feature_network, array, batch_size)

    def get_config(self):
        config = super().get_config()
        config["network"] = keras.saving.serialize_keras_object(self.network)
        return config


def classifier_path():
    """Path of the shipped classifier file (`.keras`, ~0.7 MB)."""
    return os.path.join(os.path.dirname(__file__), "data", CLASSIFIER_FILE)


def mnist_classifier():
    """Loads the MNIST classifier shipped with the package (offline).

    A LeNet-style CNN (~180k parameters) trained by
    `tools/train_mnist_classifier.py` on the 60,000 MNIST training images
    only; 99.61 % accuracy on the 10,000 test images. It loads with
    `safe_mode=True` on every backend. Each call returns a new copy.

    Returns:
        A `MnistClassifier`: images `(N, 28, 28, 1)` (uint8 or floats in
        [0, 1]) to class probabilities `(N, 10)`; `.features(images)` gives
        the 128 penultimate activations used by the distances.

    Examples:
        >>> from keras_genzoo.metrics import mnist_classifier
        >>> mnist_classifier().count_params()
        177066
    """
    network = keras.saving.load_model(classifier_path(), compile=False,
                                      safe_mode=True)
    return MnistClassifier(network, name="mnist_classifier")


def _shared_classifier():
    backend = keras.backend.backend()
    if backend not in _CACHE:
        _CACHE[backend] = mnist_classifier()
    return _CACHE[backend]


# ----------------------------------------------------------------- images
def _is_single_image(shape, what="The images"):
    """Whether a rank-3 array shape is one `(H, W, C)` image rather than a
    batch of grayscale `(N, H, W)` images: a square one with 1, 3 or 4
    channels (square grayscale images, `(10, 4, 4)`, are a batch). Another
    shape of 1, 3 or 4 "channels" is one image or a batch of strips: one
    `ValueError` asks which (a (16, 24, 3) image was read as 16 grayscale
    images of 24 x 3)."""
    if len(shape) != 3 or shape[-1] not in (1, 3, 4):
        return False
    if shape[0] == shape[1]:
        return True
    if shape[1] == shape[2]:
        return False  # square grayscale images, e.g. (10, 4, 4)
    raise ValueError(
        f"{what} has shape {tuple(shape)}: one {shape[0]}x{shape[1]} image "
        f"with {shape[2]} channel(s), or {shape[0]} grayscale images of "
        f"{shape[1]}x{shape[2]}? Pass one image as `image[None]` "
        "(N, H, W, C), grayscale images as `images[..., None]`.")


def _is_pair(items):
    """Whether a tuple or list is `(images, labels)`: images (rank 3 or 4)
    and as many labels (rank 1)."""
    if len(items) != 2 or not all(map(_inputs._is_array_like, items)):
        return False
    images, labels = items
    return (len(images.shape) in (3, 4) and len(labels.shape) in (1, 2)
            and images.shape[0] == labels.shape[0])


def collect_images(images, what="images", max_images=None, min_images=2):
    """Reads images of any supported kind into one float32 numpy array.

    Args:
        images: an array or tensor `(N, H, W, C)`, `(N, H, W)` (grayscale)
            or one image `(H, W, C)`; a dict with an `"image"` key or an
            `(images, labels)` pair; a `tf.data.Dataset` (batched or not),
            a `keras.utils.PyDataset` or any iterable of batches (bare,
            `(images, labels)` or dicts; a list of `(N, H, W, C)` arrays).
        what: words naming the images in error messages.
        max_images: read at most this many images (from the start);
            required for an endlessly repeating dataset.
        min_images: fewer images than this raise a `ValueError`.

    Returns:
        float32 array `(N, H, W, C)` in [0, 1].
    """
    return _collect_images(images, what, max_images, min_images)


def _collect_images(images, what="images", max_images=None, min_images=2,
                    max_name="max_images"):
    """The body of `collect_images`; `max_name` is the argument that sets
    `max_images` where the caller is not `collect_images` (its message
    named `max_images=` to QualityMonitor's users)."""
    if images is None:
        raise ValueError(f"{what} is None: pass an array or a dataset of "
                         "images.")
    if max_images is not None:
        # a negative count sliced from the end in silence before
        max_images = _inputs.check_count(max_images, max_name)
    if isinstance(images, dict) or _inputs._is_array_like(images):
        array = _inputs.to_numpy(_inputs.extract_images(images))
        if _is_single_image(array.shape, what):
            array = array[None]
        batches = [array[:max_images] if max_images else array]
    else:
        if isinstance(images, (tuple, list)) and _is_pair(images):
            images = images[0]  # (images, labels), as a batch holds them
            return _collect_images(images, what, max_images, min_images,
                                   max_name)
        if isinstance(images, (tuple, list)) and not all(
                _inputs._is_array_like(b) and len(b.shape) == 4
                for b in images):
            raise ValueError(
                f"{what} is a {type(images).__name__}; pass one array of "
                "images (e.g. `np.stack(images)`) or a dataset.")
        if _inputs._is_tf_dataset(images):
            import tensorflow as tf

            if (images.cardinality() == tf.data.INFINITE_CARDINALITY
                    and not max_images):
                raise ValueError(
                    f"{what} is a dataset that repeats forever: pass "
                    f"`{max_name}=` (or a finite dataset).")
            spec = _inputs.extract_images(images.element_spec).shape
            # a dataset of single images: (H, W) or (H, W, C), of any
            # size (tfds' own, e.g. (218, 178, 3), or (None, None, 3));
            # a non-square one was read as H grayscale images of W x C
            if spec.rank == 2 or (spec.rank == 3 and spec[-1] in (1, 3, 4)):
                images = images.batch(256)
        if hasattr(images, "__getitem__") and hasattr(images, "__len__"):
            iterator = (images[i] for i in range(len(images)))  # PyDataset
        elif hasattr(images, "__iter__"):
            iterator = iter(images)
        else:
            raise ValueError(
                f"{what} is of type {type(images).__name__}; pass a numpy "
                "array, a tensor, a tf.data.Dataset, a keras.utils.PyDataset "
                "or an iterable of image batches.")
        batches, count = [], 0
        for batch in iterator:
            array = _inputs.to_numpy(_inputs.extract_images(batch))
            batches.append(array)
            count += len(array)
            if max_images and count >= max_images:
                break
        if not batches:
            raise ValueError(f"{what} is empty: it yields no images.")
    shapes = {b.shape[1:] for b in batches}
    if len(shapes) > 1:
        raise ValueError(f"{what} holds images of different shapes "
                         f"{sorted(shapes)}; pass images of one shape.")
    array = np.concatenate(batches) if len(batches) > 1 else batches[0]
    if max_images:
        array = array[:max_images]
    if array.ndim == 3:  # grayscale without a channel axis
        array = array[..., None]
    _check_enough(len(array), min_images, what, "image(s)")
    _inputs.check_image_batch(array, what=what)
    return _inputs.scale_pixels(array)


def _check_enough(count, minimum, what, unit):
    """One wording for too few images or feature rows."""
    if count < minimum:
        raise ValueError(
            f"{what} holds {count} {unit}; the statistics need at "
            f"least {minimum} (a few thousand for stable figures).")


def _feature_array(features, what, min_rows=2, kind="feature vectors"):
    """Checks `kind` rows `(N, D)` and returns them as float64 numpy.

    The `*_from_features` functions used to take any array: one row gave
    numpy's `LinAlgError: Eigenvalues did not converge` (the covariance of
    one row is NaN) or a NaN KID (a division by `n * (n - 1)`), and other
    ranks failed deep inside numpy. They now check what `collect_images`
    checks for images.
    """
    if features is None:
        raise ValueError(f"{what} is None: pass an array (N, D) of {kind}.")
    array = _inputs.to_numpy(features, what)
    if array.ndim != 2:
        raise ValueError(
            f"{what} has shape {array.shape}; pass a 2-D array (N, D) of "
            f"{kind}, one row per image (e.g. "
            "`array.reshape(len(array), -1)`).")
    _check_enough(len(array), min_rows, what, "row(s)")
    array = array.astype("float64")
    if not np.isfinite(array).all():
        # a diverged feature model or classifier: numpy's LinAlgError, a
        # NaN KID, or NaN rows counted as class 0, before
        rows = int(np.sum(~np.isfinite(array).all(axis=1)))
        raise ValueError(
            f"{what} has NaN or Inf values in {rows} of its {len(array)} "
            f"rows: the model that computed these {kind} gave non-finite "
            "outputs (check its weights and its input range).")
    return array


def _feature_pair(real_features, generated_features):
    a = _feature_array(real_features, "`real_features`")
    b = _feature_array(generated_features, "`generated_features`")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"`real_features` has {a.shape[1]} features per row but "
            f"`generated_features` {b.shape[1]}: compute both with the same "
            "feature model.")
    return a, b


def _predict(model, images, batch_size):
    # (None was a bare TypeError, 0 and 2.5 ran, -1 failed differently on
    # each backend)
    batch_size = _inputs.check_count(batch_size, "batch_size")
    # (on JAX an error or a Ctrl-C inside `predict` left the variables
    # empty: every later metric, for the rest of the process, failed with
    # "'NoneType' object is not callable" on the shared classifier)
    with zoo_backend.keep_state_on_error(model):
        outputs = model.predict(images, batch_size=batch_size, verbose=0)
    outputs = np.asarray(zoo_backend.to_numpy(outputs), "float64")
    return outputs.reshape(len(outputs), -1)


def _feature_model_for(shape, feature_model, what):
    if feature_model is not None:
        feature_model = _as_model(feature_model, "feature_model")
        expected = _inputs_shape(feature_model)
        if expected is not None and not _compatible(expected, shape):
            raise ValueError(
                f"{what} has images of shape {shape}, but `feature_model` "
                f"takes inputs of shape {expected}. Resize the images, or put "
                "the resizing inside the feature model (e.g. a "
                "keras.layers.Resizing layer).")
        return feature_model
    if shape != MNIST_SHAPE:
        raise ValueError(
            f"{what} has images of shape {shape}; the default features come "
            "from the shipped MNIST classifier, which only takes (28, 28, 1) "
            "images. Pass `feature_model=` a Keras model that maps your "
            "images (floats in [0, 1]) to feature vectors, e.g. an "
            "InceptionV3 loaded from a local weights file with "
            "`include_top=False, pooling='avg'` behind "
            "`keras.layers.Resizing(299, 299)` and "
            "`keras.layers.Rescaling(2.0, offset=-1.0)` (it takes [-1, 1] "
            "and 3 channels): see docs/quality.md.")
    return _shared_classifier().feature_network


def _as_model(model, name):
    """A Keras model with `predict`; a bare layer is wrapped in one."""
    if callable(getattr(model, "predict", None)):
        return model
    if isinstance(model, keras.layers.Layer):
        return keras.Sequential([model])
    raise ValueError(
        f"`{name}` must be a Keras model or layer; got "
        f"{type(model).__name__}.")


def _inputs_shape(model):
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    if not inputs or len(inputs) != 1:
        return None
    return tuple(inputs[0].shape)[1:]


def _compatible(expected, shape):
    return len(expected) == len(shape) and all(
        e is None or e == s for e, s in zip(expected, shape))


def _paired_features(real, generated, feature_model, batch_size, max_images):
    real = collect_images(real, "the real images", max_images)
    generated = collect_images(generated, "the generated images", max_images)
    return _features_of(real, generated, feature_model, batch_size)


def _features_of(real, generated, feature_model, batch_size):
    """Features of two collected image arrays (see `collect_images`)."""
    if real.shape[1:] != generated.shape[1:]:
        raise ValueError(
            f"The real images have shape {real.shape[1:]} but the generated "
            f"ones {generated.shape[1:]}: compare images of one shape.")
    model = _feature_model_for(real.shape[1:], feature_model,
                               "the real images")
    return (_predict(model, real, batch_size),
            _predict(model, generated, batch_size))


# -------------------------------------------------------------- distances
def frechet_from_features(real_features, generated_features):
    """The Fréchet distance between Gaussians fitted to two feature sets.

    `|mu_r - mu_g|^2 + tr(S_r) + tr(S_g) - 2 tr((S_r S_g)^(1/2))`, with the
    trace of the matrix square root computed from the eigenvalues of
    `S_r^(1/2) S_g S_r^(1/2)` (symmetric, so no complex parts and no
    scipy).

    Args:
        real_features: array `(N, D)`, N >= 2.
        generated_features: array `(M, D)`, M >= 2.

    Returns:
        The distance, a float >= 0.

    Raises:
        ValueError: an array is not 2-D, has fewer than 2 rows, or the two
            have different numbers of features.
    """
    a, b = _feature_pair(real_features, generated_features)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = root_a @ cov_b @ root_a
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(
        (middle + middle.T) / 2), 0, None)).sum()
    distance = (np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a)
                + np.trace(cov_b) - 2.0 * trace_root)
    return float(max(distance, 0.0))


def kernel_distance_from_features(real_features, generated_features,
                                  subsets=100, subset_size=1000, seed=0):
    """KID from two feature sets: unbiased MMD^2, cubic polynomial kernel.

    Args:
        real_features: array `(N, D)`, N >= 2.
        generated_features: array `(M, D)`, M >= 2.
        subsets: how many random subset pairs to average over.
        subset_size: images per subset (at most `min(N, M)`).
        seed: seed of the subset draws.

    Returns:
        The mean over subsets, a float (close to 0 for samples of the same
        distribution; it may be slightly negative).

    Raises:
        ValueError: an array is not 2-D, has fewer than 2 rows, or the two
            have different numbers of features.
    """
    a, b = _feature_pair(real_features, generated_features)
    # fractions were truncated in silence, None a TypeError
    subsets = _inputs.check_count(subsets, "subsets")
    subset_size = _inputs.check_count(subset_size, "subset_size", 2)
    dim = a.shape[1]
    size = int(min(subset_size, len(a), len(b)))
    if size == len(a) == len(b):
        subsets = 1  # every subset would be the whole of both sets
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(int(subsets)):
        x = a if size == len(a) else a[rng.choice(len(a), size, False)]
        y = b if size == len(b) else b[rng.choice(len(b), size, False)]
        k_xx = (x @ x.T / dim + 1.0) ** 3
        k_yy = (y @ y.T / dim + 1.0) ** 3
        k_xy = (x @ y.T / dim + 1.0) ** 3
        off = size * (size - 1)
        values.append((k_xx.sum() - np.trace(k_xx)) / off
                      + (k_yy.sum() - np.trace(k_yy)) / off
                      - 2.0 * k_xy.mean())
    return float(np.mean(values))


def frechet_distance(real, generated, feature_model=None, batch_size=500,
                     max_images=None):
    """Fréchet distance between the features of real and generated images.

    FID's formula on the MNIST classifier's 128 penultimate features by
    default (a "Fréchet LeNet distance"): lower is better, 0 for identical
    statistics. These numbers are **not** comparable with Inception-based
    FIDs from papers; compare figures measured with the same feature model
    and the same number of images (the estimate is biased upwards for small
    sets: use thousands of images).

    Args:
        real: real images (array, tensor or dataset; uint8 or [0, 1]).
        generated: generated images, same shape.
        feature_model: a Keras model mapping float images in [0, 1] to
            feature vectors (its outputs are flattened). Required for images
            that are not 28x28x1.
        batch_size: images per `predict` batch.
        max_images: use at most this many images of each set.

    Returns:
        The distance, a float >= 0.

    Examples:
        >>> from keras_genzoo.datasets import load_embedded_mnist
        >>> from keras_genzoo.metrics import frechet_distance
        >>> images, _ = load_embedded_mnist()
        >>> same = frechet_distance(images[:2000], images[2000:4000])
        >>> noise = frechet_distance(images[:2000],
        ...                          np.random.rand(2000, 28, 28, 1))
        >>> same < noise / 10
        True
    """
    real_f, generated_f = _paired_features(real, generated, feature_model,
                                           batch_size, max_images)
    return frechet_from_features(real_f, generated_f)


def kernel_distance(real, generated, feature_model=None, batch_size=500,
                    subsets=100, subset_size=1000, seed=0, max_images=None):
    """Kernel distance (KID) between real and generated images.

    The unbiased estimate of the squared maximum mean discrepancy with the
    kernel `k(x, y) = (x.y / d + 1) ** 3` on the features (the MNIST
    classifier's by default), averaged over `subsets` random subsets of
    `subset_size` images of each set (keras-io's KID; Bińkowski et al.
    2018). Unlike the Fréchet distance it has no bias from the sample size;
    lower is better, about 0 for samples of one distribution. Its scale
    follows the features: with the MNIST classifier's, real test digits
    against themselves give about 0 (within +-0.2), blurred digits about
    8, uniform noise about 21 (Inception features give values near 0.01;
    keras-io and papers often report KID x 1000).

    Args:
        real: real images (array, tensor or dataset; uint8 or [0, 1]).
        generated: generated images, same shape.
        feature_model: a Keras model mapping float images in [0, 1] to
            feature vectors; required for images that are not 28x28x1.
        batch_size: images per `predict` batch.
        subsets: number of random subset pairs averaged.
        subset_size: images per subset (at most the smaller set's size).
        seed: seed of the subset draws (the result is deterministic).
        max_images: use at most this many images of each set.

    Returns:
        The mean over subsets, a float.

    Examples:
        >>> from keras_genzoo.datasets import load_embedded_mnist
        >>> from keras_genzoo.metrics import kernel_distance
        >>> images, _ = load_embedded_mnist()
        >>> same = kernel_distance(images[:1000], images[1000:2000])
        >>> noise = kernel_distance(images[:1000],
        ...                         np.random.rand(1000, 28, 28, 1))
        >>> abs(same) < noise / 50
        True
    """
    real_f, generated_f = _paired_features(real, generated, feature_model,
                                           batch_size, max_images)
    return kernel_distance_from_features(real_f, generated_f, subsets,
                                         subset_size, seed)


# ---------------------------------------------------------- mode coverage
def coverage_from_probabilities(probabilities, min_share=0.01):
    """`mode_coverage` from class probabilities `(N, K)` (see there).

    Raises:
        ValueError: `probabilities` is not 2-D or has no rows (it used to
            give NaN shares for no rows, an IndexError for 1-D input).
    """
    probabilities = _feature_array(probabilities, "`probabilities`",
                                   min_rows=1, kind="class probabilities")
    classes = probabilities.shape[1]
    counts = np.bincount(probabilities.argmax(1), minlength=classes)
    histogram = counts / counts.sum()
    nonzero = histogram > 0
    kl = float(np.sum(histogram[nonzero]
                      * np.log(histogram[nonzero] * classes)))
    return {
        "histogram": [round(float(h), 6) for h in histogram],
        # a class with no image is not covered, even at min_share=0
        "classes_covered": int(np.sum((histogram >= min_share)
                                      & (counts > 0))),
        "kl_to_uniform": kl,
        "confidence": float(probabilities.max(1).mean()),
    }


def mode_coverage(images, min_share=0.01, classifier=None, batch_size=500,
                  max_images=None):
    """How generated images spread over the classes of a classifier.

    Each image counts for the class the classifier gives it the highest
    probability (the shipped MNIST classifier by default). A model that
    covers the data's modes spreads its samples like the data (for MNIST,
    about 10 % per digit); a collapsed one piles them onto a few classes.

    Args:
        images: images (array, tensor or dataset; uint8 or [0, 1]).
        min_share: a class counts as covered when at least this share of the
            images falls in it (0.01: one image in a hundred).
        classifier: a Keras model mapping float images in [0, 1] to class
            probabilities `(N, K)`; required for images that are not
            28x28x1.
        batch_size: images per `predict` batch.
        max_images: use at most this many images.

    Returns:
        A dict: `histogram` (share of the images per class, K floats),
        `classes_covered` (classes with at least `min_share` of the images),
        `kl_to_uniform` (KL divergence of the histogram to the uniform one,
        in nats: 0 for perfect balance, log(K) = 2.30 for one class) and
        `confidence` (mean top-class probability: low for blurry or
        ambiguous images).

    Examples:
        >>> from keras_genzoo.datasets import load_embedded_mnist
        >>> from keras_genzoo.metrics import mode_coverage
        >>> images, labels = load_embedded_mnist()
        >>> mode_coverage(images[:2000])["classes_covered"]
        10
        >>> mode_coverage(images[labels == 1])["classes_covered"] <= 2
        True
    """
    # (None was a bare TypeError from `float`)
    if not 0.0 <= _inputs.check_number(min_share, "min_share") <= 1.0:
        raise ValueError(f"`min_share` must be in [0, 1]; got {min_share}.")
    # (one image is a histogram too, as `coverage_from_probabilities`
    # takes one row; 2 were required, as the distances need them)
    array = collect_images(images, "the images", max_images, min_images=1)
    if classifier is None:
        if array.shape[1:] != MNIST_SHAPE:
            raise ValueError(
                f"The images have shape {array.shape[1:]}; the default "
                "classifier is the shipped MNIST one, which only takes "
                "(28, 28, 1) images. Pass `classifier=` a Keras model that "
                "maps your images (floats in [0, 1]) to class probabilities.")
        classifier = _shared_classifier().network
    probabilities = _predict(_as_model(classifier, "classifier"), array,
                             batch_size)
    return coverage_from_probabilities(probabilities, min_share)


def quality_scores(real, generated, feature_model=None, classifier=None,
                   batch_size=500, subsets=100, subset_size=1000, seed=0,
                   min_share=0.01, max_images=None):
    """Fréchet distance, KID and mode coverage of generated images, at once.

    The features of each set are computed once. Mode coverage needs a
    classifier: the shipped MNIST one for 28x28x1 images (then it is also
    the feature model), else `classifier=` (without one, only the
    distances are returned).

    Args:
        real: real images (array, tensor or dataset; uint8 or [0, 1]).
        generated: generated images of the same shape.
        feature_model: feature model of the distances (see
            `frechet_distance`); the MNIST classifier's features by default.
        classifier: class-probability model of `mode_coverage`.
        batch_size: images per `predict` batch.
        subsets: KID subsets.
        subset_size: KID subset size.
        seed: seed of the KID subsets.
        min_share: `mode_coverage`'s threshold.
        max_images: use at most this many images of each set.

    Returns:
        A dict with `fd`, `kid` and, when a classifier applies,
        `classes_covered`, `kl_to_uniform`, `confidence` and `histogram`.
    """
    real = collect_images(real, "the real images", max_images)
    generated = collect_images(generated, "the generated images", max_images)
    real_f, generated_f = _features_of(real, generated, feature_model,
                                       batch_size)
    if classifier is None and generated.shape[1:] == MNIST_SHAPE:
        classifier = _shared_classifier().network
    probabilities = None
    if classifier is not None:
        probabilities = _predict(_as_model(classifier, "classifier"),
                                 generated, batch_size)
    return scores_from_features(real_f, generated_f, probabilities, subsets,
                                subset_size, seed, min_share)


def scores_from_features(real_features, generated_features,
                         probabilities=None, subsets=100, subset_size=1000,
                         seed=0, min_share=0.01):
    """`quality_scores` from features (and class probabilities, if any)
    already computed: what `QualityMonitor` uses to score each epoch
    without recomputing the real images' features."""
    scores = {
        "fd": frechet_from_features(real_features, generated_features),
        "kid": kernel_distance_from_features(
            real_features, generated_features, subsets, subset_size, seed),
    }
    if probabilities is not None:
        scores.update(coverage_from_probabilities(probabilities, min_share))
    return scores
