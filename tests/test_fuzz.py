"""Bad image input, fuzzed: whatever arrays, datasets, dicts, tuples, labels
or `generate` arguments a user passes, the call succeeds with a sane result
or raises one clear `ValueError` of keras_genzoo's before any step (see
`fuzzing.py` for the property), and a failed `fit` writes no checkpoint.

The models are tiny (8x8 grayscale images) and built once per module; the
text path is fuzzed in `test_fuzz_text.py`.
"""

import hashlib
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fuzzing import (arguments, check_error, failed, junk_scalars, mostly,
                     outcome, seeds, small_junk)
from keras_genzoo import GAN, VAE, DiffusionModel, GaussianMixture

SHAPE = (8, 8, 1)
CLASSES = 3


# ---------------------------------------------------------------- models
@pytest.fixture(scope="module")
def models():
    """One tiny model of each family, built for 8x8x1 images."""
    keras.utils.set_random_seed(0)
    small = dict(image_shape=SHAPE, seed=0)
    vae = VAE(latent_dim=2, filters=(4,), **small)
    # `generate(prior="gmm")` (what an AutoEncoder generates from, too)
    vae.fit_latent_prior(np.random.default_rng(0).random((16,) + SHAPE),
                         n_components=1)
    models = {
        "vae": vae,
        "cvae": VAE(latent_dim=2, filters=(4,), num_classes=CLASSES,
                    **small),
        "gan": GAN(latent_dim=4, generator_filters=(4,),
                   discriminator_filters=(4,), **small),
        "cgan": GAN(latent_dim=4, generator_filters=(4,),
                    discriminator_filters=(4,), num_classes=CLASSES,
                    **small),
        "diffusion": DiffusionModel(widths=(8,), **small),
        "cdiffusion": DiffusionModel(widths=(8,), num_classes=CLASSES,
                                     **small),
    }
    return models


@pytest.fixture(scope="module")
def mixture():
    return GaussianMixture(n_components=2, seed=0).fit(
        np.random.default_rng(0).normal(size=(20, 2)))


CONDITIONAL = ("cvae", "cgan", "cdiffusion")


# ------------------------------------------------------------ strategies
DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "uint16",
          "uint32", "uint64", "float16", "float32", "float64", "complex64",
          "object", "str"]
RANGES = [(0, 1), (0, 255), (-1, 1), (0, 1000), (-300, 300), (0, 0)]
SPECIALS = [None, None, np.nan, np.inf, -np.inf, 1e30, -0.5, 256.0]

image_shapes = st.one_of(
    # near the models' (8, 8, 1): batches, channels, no channel axis
    st.tuples(st.integers(0, 5), st.just(8), st.just(8),
              st.sampled_from([1, 1, 1, 3, 4])),
    st.tuples(st.integers(0, 5), st.just(8), st.just(8)),
    st.just(SHAPE),
    hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=9),
)


PIXEL_DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64",
                "uint16", "uint32", "uint64", "float16", "float32",
                "float64"]


@st.composite
def image_arrays(draw, shapes=image_shapes, valid_every=3):
    """Arrays of any dtype and shape, with values in or out of range, and
    now and then a NaN, an Inf or a huge value; one in `valid_every` is a
    batch of 8x8 images of a pixel dtype, in range."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if draw(st.integers(0, valid_every - 1)) == 0:  # in range
        shape = (draw(st.integers(1, 5)), 8, 8) + draw(
            st.sampled_from([(1,), ()]))
        dtype = np.dtype(draw(st.sampled_from(PIXEL_DTYPES)))
        if dtype.kind == "f":
            return rng.uniform(0, 1, shape).astype(dtype)
        return rng.integers(0, 2 if dtype.kind == "b" else 256,
                            shape).astype(dtype)
    shape = draw(shapes)
    dtype = draw(st.sampled_from(DTYPES))
    low, high = draw(st.sampled_from(RANGES))
    values = rng.uniform(low, high, shape)
    if dtype == "str":
        return np.full(shape, "a")
    if dtype == "object":
        return values.astype(object)
    kind = np.dtype(dtype).kind
    if kind == "b":
        array = values > (low + high) / 2
    elif kind in "iu":
        info = np.iinfo(dtype)
        array = np.clip(np.round(values), info.min, info.max).astype(dtype)
    else:
        array = values.astype(dtype)
        special = draw(st.sampled_from(SPECIALS))
        if special is not None and array.size:
            index = draw(st.integers(0, array.size - 1))
            with np.errstate(over="ignore"):  # 1e30 is Inf in float16
                array.reshape(-1)[index] = special
    return array


def _tf(make):
    try:
        return make()
    except Exception:  # TensorFlow cannot hold this array: not our input
        return None


class _Batches(keras.utils.PyDataset):
    def __init__(self, batch):
        super().__init__()
        self.batch = batch

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.batch


CONTAINERS = ["bare", "bare", "tensor", "dict", "dict_label", "dict_no_image",
              "tuple", "list", "tf_batched", "tf_unbatched", "tf_dict",
              "tf_tuple", "generator", "py_dataset", "none", "string"]


def contain(kind, array, labels):
    """`(x, y)` for `fit`: `array` (and `labels`) in a container of `kind`;
    `None` where TensorFlow cannot make that container of this array."""
    if kind == "tensor":
        tensor = _tf(lambda: keras.ops.convert_to_tensor(array))
        return None if tensor is None else (tensor, labels)
    if kind == "dict":
        return {"image": array}, None
    if kind == "dict_label":
        return {"image": array, "label": labels}, None
    if kind == "dict_no_image":
        return {"pixels": array, "label": labels}, None
    if kind == "tuple":
        return (array, labels), None
    if kind == "list":
        return [array, labels], None
    if kind == "none":
        return None, labels
    if kind == "string":
        return "images.png", None
    if kind.startswith("tf_"):
        def make():
            slices = {"tf_batched": array, "tf_unbatched": array,
                      "tf_dict": {"image": array, "label": labels},
                      "tf_tuple": (array, labels)}[kind]
            ds = tf.data.Dataset.from_tensor_slices(slices)
            return ds if kind == "tf_unbatched" else ds.batch(2)
        ds = _tf(make)
        return None if ds is None else (ds, None)
    if kind == "generator":
        def batches():
            while True:
                yield (array, labels)
        return batches(), None
    if kind == "py_dataset":
        return _Batches((array, labels)), None
    return array, labels


# mostly containers `fit` takes: what passes the check trains
FIT_CONTAINERS = ["bare", "bare", "tensor", "dict_label", "tf_tuple",
                  "tf_dict", "generator", "py_dataset", "tf_unbatched",
                  "list"]


@st.composite
def training_data(draw, models_names=("vae", "gan", "cvae", "diffusion",
                                      "cdiffusion", "cgan"),
                  containers=CONTAINERS, valid_every=3):
    name = draw(st.sampled_from(models_names))
    array = draw(image_arrays(valid_every=valid_every))
    count = array.shape[0] if array.ndim else 1
    labels = np.arange(count) % CLASSES
    kind = draw(st.sampled_from(containers))
    return name, kind, array, labels


def _as_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _steps(model):
    if not model.compiled:
        return 0
    return int(_as_numpy(model.optimizer.iterations))


@pytest.mark.parametrize("name", ["vae", "cvae", "gan", "diffusion"])
def test_trains_on_batches_of_one_grayscale_image(models, name, tmp_path):
    """A batch of one image, and the last, partial batch of one of an
    epoch, train (PyTorch 2.13 on CPU once failed there inside its conv
    backward pass: `keras_genzoo.backend.prepare_variables`), also after a
    `.keras` round trip."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5,) + SHAPE).astype("uint8")
    labels = rng.integers(0, CLASSES, (5,))
    y = labels if name.startswith("c") else None
    model = models[name]
    before = _steps(model)
    history = model.fit(images[:1], None if y is None else y[:1], epochs=1,
                        verbose=0)
    history = model.fit(images, y, batch_size=4, epochs=1, verbose=0)
    assert _steps(model) == before + 3
    assert all(np.isfinite(v).all() for v in history.history.values())
    path = str(tmp_path / "one.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    history = loaded.fit(images[:1], None if y is None else y[:1],
                         epochs=1, verbose=0)
    assert all(np.isfinite(v).all() for v in history.history.values())


# ----------------------------------------------------------------- tests
@given(training_data())
@settings(max_examples=120)
@example(data=("vae", "tf_batched", np.zeros((3, 0, 8, 1), "uint8"),
               None))
@example(data=("vae", "bare", np.zeros((2, 8, 8, 1), "uint16"), None))
@example(data=("vae", "dict", np.array([[1.0], [1.0, 2.0]], object),
               None))
def test_data_checks_before_fit(models, data):
    """What `fit`, `evaluate` and `train_on_batch` check first: any array
    in any container passes (and is ready for Keras) or fails clearly."""
    name, kind, array, labels = data
    made = contain(kind, array, labels)
    if made is None:
        return
    x, y = made
    model = models[name]
    result = outcome(model.check_data, x, y)
    if not failed(result) and hasattr(array, "ndim") and kind in (
            "bare", "tensor", "dict", "dict_label"):
        # what passes is a batch of 8x8x1 images of a pixel dtype
        assert array.ndim in (3, 4) and array.shape[0] > 0
        assert array.shape[1:3] == (8, 8)


@given(training_data(("vae", "gan", "cvae", "cgan"), FIT_CONTAINERS,
                     valid_every=2))
@settings(max_examples=8)  # each new shape or dtype compiles a step
@example(data=("vae", "bare", np.zeros((2, 8, 8, 1), "uint16"), None))
@example(data=("gan", "bare", np.ones((2, 8, 8, 1), "uint64"), None))
@example(data=("gan", "tf_batched", np.ones((2, 8, 8, 1), "uint64"), None))
@example(data=("vae", "py_dataset", np.ones((2, 8, 8, 1), "uint64"), None))
@example(data=("cgan", "generator", np.ones((2, 8, 8, 1), "int8"),
               np.array([0, 2])))
def test_fit_trains_or_fails_clearly(models, data):
    """`fit` itself: data that passes the check trains (a finite loss),
    data that does not leaves the model untrained."""
    name, kind, array, labels = data
    made = contain(kind, array, labels)
    if made is None:
        return
    x, y = made
    model = models[name]
    before = _steps(model)
    history = outcome(model.fit, x, y, epochs=1, steps_per_epoch=1,
                      batch_size=4, verbose=0)
    if failed(history):
        assert _steps(model) == before
        return
    assert _steps(model) == before + 1
    for values in history.history.values():
        assert np.isfinite(values).all(), history.history


@given(image_arrays(st.one_of(
    st.tuples(st.integers(1, 3), st.integers(0, 12), st.integers(0, 12),
              st.integers(0, 5)),
    hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=6))))
@settings(max_examples=20)
def test_a_new_model_builds_for_any_image_shape(array):
    """A model without `image_shape` builds itself for the data it is
    given, or says why it cannot."""
    model = VAE(latent_dim=2, filters=(4,))
    result = outcome(model.check_data, array)
    if not failed(result):
        assert model.built
        assert model.image_shape == tuple(
            array.shape[1:] if array.ndim == 4 else array.shape[1:] + (1,))


@given(image_arrays(), st.sampled_from(
    ["encode", "reconstruct", "anomaly_scores", "encode_data"]))
@settings(max_examples=40)
def test_image_methods_take_any_array(models, array, method):
    """`encode`, `reconstruct` and `anomaly_scores` check their images
    like `fit`."""
    model = models["vae"]
    result = outcome(getattr(model, method), array)
    if not failed(result):
        assert np.isfinite(result).all()
        single = array.shape in (SHAPE, SHAPE[:2])
        assert len(result) == (1 if single else len(array))


# --------------------------------------------------------------- labels
label_arrays = st.builds(
    lambda shape, dtype, span, seed: _labels(shape, dtype, span, seed),
    st.sampled_from([(4,), (3,), (5,), (4, 1), (4, 3), (), (0,), (1,)]),
    st.sampled_from(["int32", "int64", "uint8", "int8", "uint16", "uint64",
                     "float32", "float64", "bool", "object", "str",
                     "complex64"]),
    st.sampled_from([(0, CLASSES), (-2, CLASSES + 2), (0, 1000),
                     (0.3, 2.7)]),
    st.integers(0, 2**16),
)


def _labels(shape, dtype, span, seed):
    values = np.random.default_rng(seed).uniform(span[0], span[1], shape)
    if dtype == "str":
        return np.full(shape, "1")
    if dtype in ("float32", "float64", "complex64", "object"):
        if isinstance(span[0], int):
            values = np.floor(values)
        return values.astype(dtype)
    if dtype == "bool":
        return values > 1
    return np.floor(values).astype(dtype)


labels_anything = st.one_of(
    label_arrays, junk_scalars,
    st.sampled_from([[0, 1, 2, 0], [0, 1, 2, 3], ["a", "b", "c", "d"],
                     [0.5] * 4, [[0], [1], [2], [0]], [0, [1], 2, 0],
                     np.array([0, 1, np.nan, 2])]))

LABEL_CONTAINERS = ["y", "tuple", "dict", "tf_tuple", "tf_dict",
                    "py_dataset"]


@given(st.sampled_from(CONDITIONAL), st.sampled_from(LABEL_CONTAINERS),
       labels_anything)
@settings(max_examples=14)
@example("cgan", "y", np.array([0, 1, 3, 1]))  # out of range
@example("cvae", "y", np.array([0.0, 1.5, 2.0, 1.0]))  # not integral
@example("cdiffusion", "y", np.array([0, 1, 2]))  # too few
@example("cgan", "dict", np.array(["0", "1", "2", "1"]))
@example("cvae", "tf_tuple", np.eye(3, dtype="int32")[[0, 1, 2, 0]])
def test_fit_labels_are_checked(models, name, kind, labels):
    """A conditional model's labels: one int in 0..num_classes - 1 per
    image, or one clear ValueError before any step."""
    images = np.random.default_rng(0).integers(0, 256, (4,) + SHAPE,
                                               dtype="uint8")
    made = contain(kind, images, labels) if kind != "y" else (images,
                                                              labels)
    if made is None:
        return
    x, y = made
    model = models[name]
    before = _steps(model)
    result = outcome(model.check_data, x, y)
    if failed(result):
        assert _steps(model) == before
        return
    # labels that pass train
    history = model.fit(x, y, epochs=1, steps_per_epoch=1, verbose=0)
    assert _steps(model) == before + 1
    for values in history.history.values():
        assert np.isfinite(values).all(), history.history


# --------------------------------------------------- generate arguments
counts = mostly(st.integers(1, 5))  # huge ones included
small_counts = mostly(st.integers(1, 5), small_junk)  # no huge ones


def _check_images(result, num_samples):
    assert isinstance(result, np.ndarray) and result.dtype == "float32"
    assert result.shape == (int(num_samples),) + SHAPE
    assert np.isfinite(result).all()
    assert result.min() >= 0.0 and result.max() <= 1.0


valid_seeds = st.one_of(st.none(), st.integers(0, 2**32 - 1))
valid_labels = st.one_of(st.none(), st.integers(0, CLASSES - 1))


@st.composite
def image_generate_calls(draw):
    """`(model name, generate's keyword arguments)`."""
    name = draw(st.sampled_from(["vae", "cvae", "gan", "cgan"]))
    valid = {"num_samples": st.integers(1, 4), "seed": valid_seeds,
             "batch_size": st.integers(1, 5)}
    junk = {"num_samples": counts, "seed": seeds, "batch_size": counts}
    valid["labels"] = valid_labels if name.startswith("c") else st.none()
    junk["labels"] = labels_anything
    if name.endswith("vae"):
        valid["prior"] = (st.sampled_from(["normal", "gmm"]) if name == "vae"
                          else st.just("normal"))
        junk["prior"] = st.sampled_from(["gmm", "nope", None, 3])
    return name, draw(arguments(valid, junk))


@given(image_generate_calls())
@settings(max_examples=80)
@example(("gan", dict(num_samples=2, batch_size=0)))
@example(("gan", dict(num_samples=2, batch_size=-1)))  # was an empty result
@example(("vae", dict(num_samples=2, seed=-1)))  # a negative seed
@example(("vae", dict(num_samples=2, seed=2**32)))  # a seed over 32 bits
@example(("vae", dict(num_samples=10**13, prior="gmm")))  # > the memory
@example(("cgan", dict(num_samples=2, labels=[0.5, 1.5])))
@example(("cgan", dict(num_samples=2, labels=["a", "b"])))
@example(("cvae", dict(num_samples=4, labels=np.eye(3)[[0, 1, 2, 0]])))
def test_generate_arguments(models, call):
    name, kwargs = call
    result = outcome(models[name].generate, **kwargs)
    if not failed(result):
        _check_images(result, kwargs["num_samples"])


@st.composite
def diffusion_generate_calls(draw):
    name = draw(st.sampled_from(["diffusion", "cdiffusion"]))
    conditional = name == "cdiffusion"
    valid = {"num_samples": st.integers(1, 3), "steps": st.integers(1, 3),
             "seed": valid_seeds, "eta": st.sampled_from([0.0, 0.5, 1.0]),
             "labels": valid_labels if conditional else st.none(),
             "guidance": (st.sampled_from([None, 0.0, 1.0, 2.0])
                          if conditional else st.none()),
             "images": st.none(), "strength": st.none(),
             "batch_size": st.integers(1, 4)}
    junk = {"num_samples": st.one_of(st.none(), counts),
            "steps": small_counts, "seed": seeds, "eta": junk_scalars,
            "labels": labels_anything, "guidance": junk_scalars,
            "images": image_arrays(), "strength": junk_scalars,
            "batch_size": small_counts}
    kwargs = draw(arguments(valid, junk))
    if draw(st.integers(0, 3)) == 0:  # image-to-image
        kwargs.update(num_samples=None, images=np.full(
            (2,) + SHAPE, 128, "uint8"), strength=draw(st.one_of(
                st.sampled_from([None, 0.0, 0.5, 1.0]), junk_scalars)))
    return name, kwargs


@given(diffusion_generate_calls())
@settings(max_examples=60)
@example(("diffusion", dict(num_samples=2, steps=2, seed=-5)))
@example(("cdiffusion", dict(num_samples=2, steps=2, labels=[0.5, 1.0])))
@example(("cdiffusion", dict(num_samples=2, steps=2, labels=1,
                             guidance=float("inf"))))
@example(("diffusion", dict(num_samples=10**13, steps=2)))
@example(("diffusion", dict(num_samples=None, steps=2, strength=0.5,
                            images=np.zeros((2, 8, 8, 1), "uint8"))))
def test_diffusion_generate_arguments(models, call):
    name, kwargs = call
    result = outcome(models[name].generate, verbose=False, **kwargs)
    if not failed(result):
        count = len(result)
        _check_images(result, count)
        if kwargs.get("num_samples") is not None:
            assert count == int(kwargs["num_samples"])


@given(st.one_of(label_arrays, st.sampled_from(
    [np.zeros((2, 2)), np.zeros((2,)), np.zeros((2, 3)),
     np.full((2, 2), np.nan), np.zeros((0, 2)), np.full((2, 2), 1e30)]),
    hnp.arrays("float32", (2, 2))), st.one_of(st.none(), labels_anything),
    small_counts)
@settings(max_examples=40)
def test_decode_takes_any_codes(models, z, labels, batch_size):
    model = models["cvae" if labels is not None else "vae"]
    result = outcome(model.decode, z, labels=labels, batch_size=batch_size)
    if not failed(result):
        assert result.shape == (len(z),) + SHAPE
        assert result.dtype == "float32"


@given(arguments({"n_samples": st.integers(1, 5), "seed": valid_seeds},
                 {"n_samples": counts, "seed": seeds}))
@settings(max_examples=40)
@example(dict(n_samples=2, seed=-1))
@example(dict(n_samples=2, seed="abc"))
@example(dict(n_samples=10**13, seed=0))
def test_mixture_sample_arguments(mixture, kwargs):
    result = outcome(mixture.sample, **kwargs)
    if not failed(result):
        samples, components = result
        assert samples.shape == (int(kwargs["n_samples"]), 2)
        assert np.isfinite(samples).all()


@given(hnp.arrays(st.sampled_from(["float32", "float64", "int32", "bool",
                                   "object", "complex64"]),
                  hnp.array_shapes(min_dims=0, max_dims=3, min_side=0,
                                   max_side=4)))
@settings(max_examples=30)
def test_mixture_fit_takes_any_array(x):
    result = outcome(GaussianMixture(n_components=1, max_iter=5).fit, x)
    if not failed(result):
        assert result.means_.shape == (1, x.shape[1])


# ----------------------------------------------------------- checkpoints
def _files(folder):
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, _, names in os.walk(folder) for name in names)


def _digest(path):
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


BAD_FIT_DATA = {
    "floats_0_255": lambda: np.full((4,) + SHAPE, 200.0, "float32"),
    "nan": lambda: np.full((4,) + SHAPE, np.nan, "float32"),
    "wrong_channels": lambda: np.zeros((4, 8, 8, 3), "uint8"),
    "unbatched_dataset": lambda: tf.data.Dataset.from_tensor_slices(
        np.zeros((4,) + SHAPE, "uint8")),
    "empty": lambda: np.zeros((0,) + SHAPE, "uint8"),
    "strings": lambda: np.full((4,) + SHAPE, "a"),
    "labels_out_of_range": lambda: (np.zeros((4,) + SHAPE, "uint8"),
                                    np.array([0, 1, 2, 7])),
    "labels_missing": lambda: (np.zeros((4,) + SHAPE, "uint8"), None),
}


@pytest.mark.parametrize("case", sorted(BAD_FIT_DATA))
def test_failed_fit_writes_no_checkpoint(tmp_path, case):
    """`fit` on bad data raises before any callback runs: no checkpoint, no
    backup, and a model saved before stays as it was (file and weights)."""
    keras.utils.set_random_seed(0)
    model = GAN(latent_dim=4, generator_filters=(4,),
                discriminator_filters=(4,), num_classes=CLASSES,
                image_shape=SHAPE, seed=0)
    model.build()
    saved = tmp_path / "saved" / "model.keras"
    saved.parent.mkdir()
    model.save(saved)
    digest, weights = _digest(saved), [w.copy() for w in model.get_weights()]
    checkpoints, backup = tmp_path / "checkpoints", tmp_path / "backup"
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(checkpoints / "{epoch}.keras")),
        keras.callbacks.ModelCheckpoint(str(saved)),  # would overwrite it
        keras.callbacks.BackupAndRestore(str(backup)),
    ]
    data = BAD_FIT_DATA[case]()
    x, y = data if isinstance(data, tuple) else (data, np.zeros(4, "int32"))
    with pytest.raises(ValueError) as info:
        model.fit(x, y, epochs=2, verbose=0, callbacks=callbacks)
    check_error(info.value)
    assert not (checkpoints.exists() and _files(checkpoints))
    assert not (backup.exists() and _files(backup))
    assert _files(saved.parent) == ["model.keras"]
    assert _digest(saved) == digest
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert _steps(model) == 0
