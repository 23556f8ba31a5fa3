"""Diffusion models on every backend: training, DDIM sampling, the EMA,
guidance, image-to-image, inpainting, saving, inputs and every error.

Kept fast on a 2-core CPU: tiny U-Nets (`widths=(8,)`), a few DDIM steps,
and on JAX few compilations: the trained models are shared (module
fixtures) and sampled in batches of one size (`N`), so each model compiles
its DDIM step once.
"""

import json
import os
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_genzoo import DiffusionModel, SinusoidalEmbedding
from keras_genzoo.callbacks import (
    ProgressGif,
    ReverseProcessSaver,
    image_grid,
)
from keras_genzoo.networks.unet import unet

N = 4  # samples per call: one batch shape, one compiled DDIM step on JAX
STEPS = 3  # DDIM steps of most samples


def _n(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _iterations(model):
    return int(_n(model.optimizer.iterations))


def _fast_compile(model):
    # a high learning rate: a clear drop of the loss within a dozen steps
    model.compile(optimizer=keras.optimizers.Adam(1e-2, global_clipnorm=1.0))
    return model


def _round_trip(model, tmp_path):
    path = os.path.join(tmp_path, "diffusion.keras")
    model.save(path)
    return keras.models.load_model(path, safe_mode=True)


def _as_floats(uint8_images):
    return uint8_images.astype("float32") / np.float32(255)


def tiny_network(image_shape=(28, 28, 1), num_classes=None, channels=None,
                 name="my_denoiser"):
    """A user's network: [noisy images, t (, labels)] -> the images' shape."""
    images = keras.Input(image_shape, name="noisy")
    t = keras.Input((), name="t")
    inputs = [images, t]
    embedding = keras.layers.Dense(8, activation="swish")(
        keras.layers.Reshape((1,))(t))
    if num_classes:
        labels = keras.Input((), dtype="int32", name="labels")
        inputs.append(labels)
        embedding = keras.layers.Add()([embedding, keras.layers.Embedding(
            num_classes + 1, 8, name="label_embedding")(labels)])
    h = keras.layers.Conv2D(8, 3, padding="same", activation="swish")(images)
    h = keras.layers.Add()([h, keras.layers.Reshape((1, 1, 8))(embedding)])
    out = keras.layers.Conv2D(channels or image_shape[-1], 3,
                              padding="same")(h)
    return keras.Model(inputs, out, name=name)


# ------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def trained(mnist, tmp_path_factory):
    """An unconditional model trained for 12 steps on real digits, with a
    ReverseProcessSaver and a ProgressGif."""
    keras.utils.set_random_seed(0)
    folder = str(tmp_path_factory.mktemp("reverse"))
    saver = ReverseProcessSaver(folder, num_images=N, steps=STEPS, frames=3,
                                seed=0, scale=1)
    gif = ProgressGif(saver, path=os.path.join(folder, "reverse.gif"))
    model = _fast_compile(DiffusionModel(widths=(8,), seed=0))
    history = model.fit(mnist[0][:128], epochs=3, batch_size=32, verbose=0,
                        callbacks=[saver, gif])
    return types.SimpleNamespace(model=model, losses=history.history["loss"],
                                 saver=saver, gif=gif)


@pytest.fixture(scope="module")
def conditional(mnist):
    """A conditional model trained for 12 steps on real digits and labels."""
    keras.utils.set_random_seed(0)
    model = _fast_compile(DiffusionModel(num_classes=10, widths=(8,), seed=0))
    model.fit(mnist[0][:128], mnist[1][:128], epochs=3, batch_size=32,
              verbose=0)
    return model


@pytest.fixture(scope="module")
def untrained():
    """Built, untrained models for the checks of bad arguments."""
    return types.SimpleNamespace(
        plain=DiffusionModel(widths=(8,), image_shape=(8, 8, 1)),
        conditional=DiffusionModel(num_classes=10, widths=(8,),
                                   image_shape=(8, 8, 1)))


# ------------------------------------------------------------ training
def test_loss_goes_down_on_real_digits(trained):
    losses = trained.losses
    assert np.all(np.isfinite(losses))
    # about 0.8 -> 0.5: the v targets have variance 1 and the untrained
    # network (zero-initialised output) predicts 0
    assert losses[-1] < 0.75 * losses[0], losses
    assert _iterations(trained.model) == 12


def test_ema_differs_from_trained_weights(trained):
    model = trained.model
    raw, ema = model.network.get_weights(), model.ema_network.get_weights()
    assert [w.shape for w in raw] == [w.shape for w in ema]
    assert any(not np.allclose(a, b) for a, b in zip(raw, ema))
    # the average is not trained by the optimizer, only followed
    assert not model.ema_network.trainable
    trainable = {id(v) for v in model.trainable_variables}
    assert not any(id(v) in trainable for v in model.ema_network.weights)


def test_keras_round_trip_keeps_ema_samples_and_training(trained, mnist,
                                                         tmp_path):
    model = trained.model
    loaded = _round_trip(model, tmp_path)
    assert isinstance(loaded, DiffusionModel)
    assert loaded.get_config() == model.get_config()
    for a, b in zip(model.ema_network.weights, loaded.ema_network.weights):
        np.testing.assert_array_equal(_n(a), _n(b))
    for a, b in zip(model.network.weights, loaded.network.weights):
        np.testing.assert_array_equal(_n(a), _n(b))
    np.testing.assert_array_equal(_n(loaded.seed_generator.state),
                                  _n(model.seed_generator.state))
    np.testing.assert_array_equal(
        loaded.generate(N, steps=STEPS, seed=3),
        model.generate(N, steps=STEPS, seed=3))
    # training continues from the saved optimizer
    steps = _iterations(model)
    assert _iterations(loaded) == steps
    assert float(_n(loaded.optimizer.learning_rate)) == pytest.approx(1e-2)
    ema_before = [_n(w).copy() for w in loaded.ema_network.weights]
    history = loaded.fit(mnist[0][:64], epochs=1, batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert _iterations(loaded) == steps + 2
    assert any(not np.array_equal(a, _n(b))
               for a, b in zip(ema_before, loaded.ema_network.weights))


# ------------------------------------------------------------ sampling
def test_generate_shape_range_and_seeds(trained):
    model = trained.model
    a = model.generate(N, steps=STEPS, seed=1)
    assert a.shape == (N, 28, 28, 1) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(a, model.generate(N, steps=STEPS, seed=1))
    assert not np.allclose(a, model.generate(N, steps=STEPS, seed=2))
    # without a seed the model's seed generator advances
    assert not np.allclose(model.generate(N, steps=STEPS),
                           model.generate(N, steps=STEPS))


def test_generate_with_eta_one(trained):
    model = trained.model
    a = model.generate(N, steps=STEPS, seed=1, eta=1.0)
    assert a.shape == (N, 28, 28, 1)
    assert 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(
        a, model.generate(N, steps=STEPS, seed=1, eta=1.0))
    assert not np.allclose(
        a, model.generate(N, steps=STEPS, seed=2, eta=1.0))
    # fresh noise at every step: not the deterministic DDIM path
    assert not np.allclose(a, model.generate(N, steps=STEPS, seed=1))
    # each sample's noise depends on the seed alone (before, it was drawn
    # batch by batch: another batch_size gave other images)
    np.testing.assert_allclose(
        a, model.generate(N, steps=STEPS, seed=1, eta=1.0, batch_size=2),
        atol=1e-5)
    np.testing.assert_allclose(
        a[:2], model.generate(2, steps=STEPS, seed=1, eta=1.0), atol=1e-5)


@pytest.mark.parametrize("steps", [1, 2, 7])
def test_generate_with_any_step_count(trained, steps):
    images = trained.model.generate(N, steps=steps, seed=0)
    assert images.shape == (N, 28, 28, 1)
    assert np.all(np.isfinite(images))
    assert 0.0 <= images.min() and images.max() <= 1.0
    np.testing.assert_array_equal(
        images, trained.model.generate(N, steps=steps, seed=0))


def test_reverse_process_ends_at_generate(trained):
    model = trained.model
    frames = model.reverse_process(N, steps=STEPS, frames=STEPS + 1, seed=4)
    assert frames.shape == (N, STEPS + 1, 28, 28, 1)
    assert frames.dtype == np.float32
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    np.testing.assert_array_equal(frames[:, -1],
                                  model.generate(N, steps=STEPS, seed=4))
    # fewer frames: the noise and the final images are kept
    two = model.reverse_process(N, steps=STEPS, frames=2, seed=4)
    assert two.shape == (N, 2, 28, 28, 1)
    np.testing.assert_array_equal(two[:, 0], frames[:, 0])
    np.testing.assert_array_equal(two[:, -1], frames[:, -1])
    # DDPM-like steps draw the same noise as generate
    np.testing.assert_array_equal(
        model.reverse_process(N, steps=STEPS, frames=2, seed=4,
                              eta=1.0)[:, -1],
        model.generate(N, steps=STEPS, seed=4, eta=1.0))


def test_reverse_process_saver_writes_frames_and_gif(trained):
    saver, gif = trained.saver, trained.gif
    assert len(saver.paths) == 3
    assert all(os.path.exists(path) for path in saver.paths)
    assert gif.num_frames == 3 and os.path.exists(gif.path)
    with Image.open(gif.path) as animation:
        assert animation.n_frames == 3
    # the last frame: the model's samples for the saver's seed
    expected = image_grid(trained.model.generate(N, steps=STEPS, seed=0),
                          padding=saver.padding, scale=saver.scale)
    with Image.open(saver.paths[-1]) as last:
        np.testing.assert_array_equal(np.asarray(last), expected)
    # bad frame counts fail when the callback is made, not after training
    with pytest.raises(ValueError, match="frames"):
        ReverseProcessSaver(saver.directory, frames=1)
    with pytest.raises(ValueError, match="steps \\+ 1 = 5"):
        ReverseProcessSaver(saver.directory, steps=4, frames=10)


# ------------------------------------------------------- conditional
def test_conditional_generation_honours_labels(conditional):
    model = conditional
    sevens = model.generate(N, steps=STEPS, seed=1, labels=7)
    assert sevens.shape == (N, 28, 28, 1)
    assert 0.0 <= sevens.min() and sevens.max() <= 1.0
    # one label for all, or one per sample (list, numpy array)
    np.testing.assert_array_equal(
        sevens, model.generate(N, steps=STEPS, seed=1, labels=[7] * N))
    np.testing.assert_array_equal(
        sevens, model.generate(N, steps=STEPS, seed=1,
                               labels=np.full((N,), 7)))
    # the label changes the image for the same noise
    threes = model.generate(N, steps=STEPS, seed=1, labels=3)
    assert np.abs(sevens - threes).max() > 1e-3
    # each image depends on its own label only
    mixed = model.generate(N, steps=STEPS, seed=1, labels=[7, 3, 7, 3])
    np.testing.assert_allclose(mixed[0], sevens[0], atol=1e-5)
    np.testing.assert_allclose(mixed[1], threes[1], atol=1e-5)
    # no labels: the classes 0, 1, 2, ... in turn (as the GANs)
    np.testing.assert_array_equal(
        model.generate(N, steps=STEPS, seed=1),
        model.generate(N, steps=STEPS, seed=1, labels=np.arange(N) % 10))


def test_guidance(conditional):
    model = conditional
    labels = [0, 1, 2, 3]
    plain = model.generate(N, steps=STEPS, seed=1, labels=labels)
    # guidance 1 is the plain conditional model (run twice as wide)
    np.testing.assert_allclose(
        model.generate(N, steps=STEPS, seed=1, labels=labels, guidance=1.0),
        plain, atol=1e-5)
    strong = model.generate(N, steps=STEPS, seed=1, labels=labels,
                            guidance=3.0)
    assert strong.shape == (N, 28, 28, 1)
    assert 0.0 <= strong.min() and strong.max() <= 1.0
    assert np.abs(strong - plain).max() > 1e-3
    np.testing.assert_array_equal(
        strong, model.generate(N, steps=STEPS, seed=1, labels=labels,
                               guidance=3.0))
    # guidance 0 is the unconditional model: the labels do not matter
    unconditional = model.generate(N, steps=STEPS, seed=1, labels=labels,
                                   guidance=0.0)
    np.testing.assert_allclose(
        unconditional, model.generate(N, steps=STEPS, seed=1, labels=7,
                                      guidance=0.0), atol=1e-5)
    assert np.abs(unconditional - plain).max() > 1e-3


# ------------------------------------------- image-to-image, inpainting
def test_image_to_image(trained, mnist):
    model = trained.model
    digits = mnist[0][:N]
    # strength 0: the images come back, as [0, 1] floats
    same = model.generate(images=digits, strength=0.0)
    assert same.dtype == np.float32
    np.testing.assert_array_equal(same, _as_floats(digits))
    np.testing.assert_array_equal(
        model.generate(images=_as_floats(digits), strength=0.0),
        _as_floats(digits))
    # in between: changed, seeded
    half = model.generate(images=digits, strength=0.5, steps=6, seed=0)
    assert half.shape == (N, 28, 28, 1) and half.dtype == np.float32
    assert 0.0 <= half.min() and half.max() <= 1.0
    assert not np.allclose(half, _as_floats(digits))
    np.testing.assert_array_equal(
        half, model.generate(images=digits, strength=0.5, steps=6, seed=0))
    assert not np.allclose(
        half, model.generate(images=digits, strength=0.5, steps=6, seed=1))
    # strength 1 starts from pure noise: a new sample
    np.testing.assert_allclose(
        model.generate(images=digits, strength=1.0, steps=STEPS, seed=5),
        model.generate(N, steps=STEPS, seed=5), atol=1e-6)


def _masks(kind):
    """A square hole in every digit, as one mask or one per image."""
    hole = np.zeros((28, 28), "float32")
    hole[8:20, 8:20] = 1
    if kind == "HW":
        return hole, np.broadcast_to(hole[None, ..., None], (N, 28, 28, 1))
    per_image = np.stack([np.roll(hole, i, axis=1) for i in range(N)])
    if kind == "NHW":
        return per_image, per_image[..., None]
    return per_image[..., None] > 0, per_image[..., None]  # booleans


@pytest.mark.parametrize("kind", ["HW", "NHW", "NHWC"])
def test_inpaint_keeps_the_unmasked_pixels(trained, mnist, kind):
    model = trained.model
    digits = mnist[0][:N]
    mask, full = _masks(kind)
    filled = model.inpaint(digits, mask, steps=STEPS, seed=0)
    assert filled.shape == (N, 28, 28, 1) and filled.dtype == np.float32
    assert 0.0 <= filled.min() and filled.max() <= 1.0
    keep = full == 0
    np.testing.assert_array_equal(filled[keep], _as_floats(digits)[keep])
    assert np.abs(filled[~keep] - _as_floats(digits)[~keep]).max() > 0.1
    np.testing.assert_array_equal(
        filled, model.inpaint(digits, mask, steps=STEPS, seed=0))
    # the noised kept pixels of sample i depend on the seed alone: before,
    # another batch_size or fewer images changed an eta=0 filling by 0.018
    np.testing.assert_allclose(
        filled, model.inpaint(digits, mask, steps=STEPS, seed=0,
                              batch_size=2), atol=1e-5)
    if kind == "HW":
        np.testing.assert_allclose(
            filled[:2], model.inpaint(digits[:2], mask, steps=STEPS,
                                      seed=0), atol=1e-5)


# ----------------------------------------------------------- inputs
class _Digits(keras.utils.PyDataset):
    def __init__(self, images, labels, batch_size=32):
        super().__init__()
        self.images, self.labels, self.batch_size = images, labels, batch_size

    def __len__(self):
        return len(self.images) // self.batch_size

    def __getitem__(self, index):
        batch = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.images[batch], self.labels[batch]


def _labelled_formats(images, labels):
    return {
        "arrays": ((images, labels), {"batch_size": 32}),
        "float_arrays": ((_as_floats(images), labels), {"batch_size": 32}),
        "tuples": ((tf.data.Dataset.from_tensor_slices(
            (images, labels)).batch(32),), {}),
        "tfds_dicts": ((tf.data.Dataset.from_tensor_slices(
            {"image": images, "label": labels}).batch(32),), {}),
        "pydataset": ((_Digits(images, labels),), {}),
    }


@pytest.mark.parametrize("fmt", ["arrays", "float_arrays", "tuples",
                                 "tfds_dicts", "pydataset"])
def test_conditional_model_takes_labels_as_they_come(mnist, fmt):
    # (a tiny network of one's own: the input handling is the model's)
    args, kwargs = _labelled_formats(mnist[0][:64], mnist[1][:64])[fmt]
    network = tiny_network(num_classes=10)
    model = DiffusionModel(num_classes=10, network=network, label_dropout=0.0,
                           seed=0)
    embedding = network.get_layer("label_embedding")
    before = _n(embedding.embeddings).copy()
    history = model.fit(*args, epochs=1, verbose=0, **kwargs)
    assert np.isfinite(history.history["loss"][0])
    assert _iterations(model) == 2
    # the digits' labels reached the network: their embeddings trained,
    # and "no label" (10) did not, without label dropout
    changed = np.abs(_n(embedding.embeddings) - before).max(axis=1) > 0
    seen = np.unique(mnist[1][:64])
    assert changed[seen].all() and changed.sum() == len(seen)


@pytest.mark.parametrize("fmt", ["images_dataset", "labelled_dataset",
                                 "float_arrays"])
def test_unconditional_model_inputs(mnist, fmt):
    images, labels = mnist[0][:64], mnist[1][:64]
    data = {
        "images_dataset": tf.data.Dataset.from_tensor_slices(images).batch(32),
        # labels are ignored by an unconditional model
        "labelled_dataset": tf.data.Dataset.from_tensor_slices(
            (images, labels)).batch(32),
        "float_arrays": _as_floats(images),
    }[fmt]
    model = DiffusionModel(network=tiny_network(), seed=0)
    history = model.fit(data, epochs=1, batch_size=None if fmt.endswith(
        "dataset") else 32, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert _iterations(model) == 2


def test_colour_and_odd_shapes_train_and_sample():
    images = np.random.RandomState(0).rand(32, 9, 11, 3).astype("float32")
    model = DiffusionModel(widths=(8,), seed=0)
    history = model.fit(images, epochs=1, batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.image_shape == (9, 11, 3)
    samples = model.generate(2, steps=2, seed=0)
    assert samples.shape == (2, 9, 11, 3)
    assert 0.0 <= samples.min() and samples.max() <= 1.0


@pytest.mark.parametrize("shape, kwargs", [
    ((9, 11, 3), {"widths": (8, 16)}),  # padded to 10x12, cropped back
    ((8, 8, 1), {"widths": (8, 16, 16)}),
    ((64, 64, 3), {"widths": (8, 16), "attention": True}),
])
def test_unet_returns_the_image_shape(shape, kwargs):
    # build only (running them eagerly is slow on JAX)
    model = DiffusionModel(image_shape=shape, seed=0, **kwargs)
    model.build()
    assert [tuple(i.shape) for i in model.network.inputs] == [
        (None,) + shape, (None,)]
    assert tuple(model.network.output.shape) == (None,) + shape
    assert tuple(model.ema_network.output.shape) == (None,) + shape


def test_narrow_unet_sees_noise_level_and_label():
    # Levels of 8 channels have GroupNorm groups of one channel, which
    # cancel a per-channel shift added before them: the embedding of t and
    # of the label must come after the normalisation.
    network = unet((8, 8, 1), widths=(8,), num_classes=10)
    kernel = network.get_layer("prediction").kernel  # zero-initialised
    kernel.assign(np.random.RandomState(0).randn(*kernel.shape)
                  .astype("float32") * 0.1)
    noisy = np.random.RandomState(1).randn(2, 8, 8, 1).astype("float32")

    def predict(t, label):
        return _n(network([noisy, np.full((2,), t, "float32"),
                           np.full((2,), label, "int32")]))

    reference = predict(0.5, 1)
    assert np.abs(predict(0.9, 1) - reference).max() > 1e-3
    assert np.abs(predict(0.5, 2) - reference).max() > 1e-3
    assert np.abs(predict(0.5, 10) - reference).max() > 1e-3  # no label


def test_unet_dropout_is_seeded():
    """Unseeded, Keras' `Dropout` draws from torch's global generator on
    PyTorch, which no checkpoint holds: a `DiffusionModel(dropout=...)`
    did not resume exactly there (0.011 apart after 3 epochs)."""
    noisy = np.random.RandomState(1).randn(2, 8, 8, 1).astype("float32")
    t = np.full((2,), 0.5, "float32")

    weights = unet((8, 8, 1), widths=(8,)).get_weights()
    weights[-2] = np.full(weights[-2].shape, 0.1, "float32")  # zeros

    def outputs(seed):
        network = unet((8, 8, 1), widths=(8,), dropout=0.5, seed=seed)
        network.set_weights(weights)
        return _n(network([noisy, t], training=True))

    np.testing.assert_array_equal(outputs(3), outputs(3))
    assert np.abs(outputs(3) - outputs(4)).max() > 1e-3
    model = DiffusionModel(image_shape=(8, 8, 1), widths=(8,), dropout=0.3,
                           seed=7)
    model.build()
    seeds = [layer.seed for layer in model.network.layers
             if isinstance(layer, keras.layers.Dropout)]
    # one per residual block, none that of the model's own noise
    assert len(seeds) == 4 and len(set(seeds)) == 4 and 7 not in seeds


def test_padded_unet_samples_odd_shapes():
    model = DiffusionModel(widths=(8, 16), image_shape=(9, 11, 3), seed=0)
    samples = model.generate(2, steps=1, seed=0)
    assert samples.shape == (2, 9, 11, 3)
    assert 0.0 <= samples.min() and samples.max() <= 1.0


# --------------------------------------------------- user networks
def test_user_network_trains_saves_and_reloads(mnist, tmp_path):
    network = tiny_network()
    model = DiffusionModel(network=network, seed=0)
    assert model.network is network and model.image_shape == (28, 28, 1)
    before = [w.copy() for w in network.get_weights()]
    model.fit(mnist[0][:64], epochs=1, batch_size=32, verbose=0)
    assert any(not np.array_equal(a, b)
               for a, b in zip(before, network.get_weights()))
    samples = model.generate(N, steps=STEPS, seed=0)
    assert samples.shape == (N, 28, 28, 1)
    loaded = _round_trip(model, tmp_path)
    assert loaded.network.name == "my_denoiser"
    # (Keras gives shapes as tuples before saving and lists after)
    assert json.loads(json.dumps(loaded.get_config())) == json.loads(
        json.dumps(model.get_config()))
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(_n(a), _n(b))
    np.testing.assert_array_equal(loaded.generate(N, steps=STEPS, seed=0),
                                  samples)


@keras.saving.register_keras_serializable(package="test_diffusion")
class LayerDenoiser(keras.layers.Layer):
    """A denoiser written as a layer without `build`: its sublayers get
    their weights at its first call."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.embedding = SinusoidalEmbedding(8)
        self.dense = keras.layers.Dense(1)
        self.conv = keras.layers.Conv2D(1, 3, padding="same")

    def call(self, inputs):
        noisy, t = inputs[0], inputs[1]
        shift = keras.ops.reshape(self.dense(self.embedding(t)),
                                  (-1, 1, 1, 1))
        return self.conv(noisy) + shift


def test_a_layer_without_build_is_a_network(mnist):
    # its averaged copy, rebuilt from its config, counted as built with no
    # weights: `set_weights` failed when the model was made
    network = LayerDenoiser()
    network([np.zeros((2, 28, 28, 1), "float32"), np.ones((2,), "float32")])
    model = DiffusionModel(network=network, image_shape=(28, 28, 1), seed=0)
    for a, b in zip(model.network.weights, model.ema_network.weights):
        np.testing.assert_array_equal(_n(a), _n(b))
    model.fit(mnist[0][:32], epochs=1, batch_size=16, verbose=0)
    assert model.generate(2, steps=2, seed=0).shape == (2, 28, 28, 1)


def test_inpaint_takes_one_mask_with_a_channel_axis():
    # (H, W, 1) for colour images was refused, its message quoting the
    # shape made of it, (8, 8, 1, 1)
    model = DiffusionModel(widths=(8,), image_shape=(8, 8, 3), seed=0)
    images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3),
                                               dtype=np.uint8)
    mask = np.zeros((8, 8), "float32")
    mask[:, 4:] = 1
    expected = model.inpaint(images, mask, steps=2, seed=0)
    for given in (mask[..., None], np.repeat(mask[..., None], 3, -1),
                  np.stack([mask, mask])):
        np.testing.assert_array_equal(
            model.inpaint(images, given, steps=2, seed=0), expected)
    with pytest.raises(ValueError, match=r"`mask` of shape \(8, 5\)"):
        model.inpaint(images, np.zeros((8, 5)), steps=2)


def test_gradient_accumulation_trains():
    # Keras' `iterations` is computed with `gradient_accumulation_steps`:
    # reading it in the step failed on every backend
    images = np.random.default_rng(0).random((8, 8, 8, 1)).astype("float32")
    model = DiffusionModel(widths=(8,), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(
        1e-3, gradient_accumulation_steps=2))
    model.fit(images, epochs=1, batch_size=2, verbose=0)
    assert int(_n(model.optimizer.iterations)) == 2  # 4 batches
    assert any(not np.array_equal(_n(a), _n(b)) for a, b in zip(
        model.network.weights, model.ema_network.weights))
    # the average moves when the weights do: after a micro-step that only
    # accumulates, it is where it was
    before = [_n(w).copy() for w in model.ema_network.weights]
    model.fit(images[:2], epochs=1, batch_size=2, verbose=0)
    for a, b in zip(before, model.ema_network.weights):
        np.testing.assert_array_equal(a, _n(b))
    assert int(_n(model.ema_updates)) == 2  # the updates, not micro-steps


def _decay_of_one_step(model, images):
    """The decay the EMA used in one training step on `images`, read from
    the average before and after and the weights after."""
    before = _n(model.ema_network.weights[0]).copy()
    model.fit(images, epochs=1, batch_size=len(images), verbose=0)
    after = _n(model.ema_network.weights[0])
    weights = _n(model.network.weights[0])
    apart = np.abs(before - weights) > 1e-3
    return float(np.median((after - weights)[apart]
                           / (before - weights)[apart]))


def test_compiling_anew_keeps_the_averages_warmup():
    """The decay's warmup counts the average's own updates (saved with the
    weights): after 20 steps and a new `compile` (a new optimizer, to
    fine-tune), step 21 averages with min(0.999, 22/31), not 2/11 as the
    new optimizer's first step did (82 % of the average replaced). A file
    saved before the count existed continues from the optimizer's."""
    images = np.random.default_rng(0).random((8, 8, 8, 1)).astype("float32")
    model = DiffusionModel(widths=(4,), seed=0, ema_decay=0.999)
    _fast_compile(model)
    model.fit(images, epochs=20, batch_size=8, verbose=0)
    assert int(_n(model.ema_updates)) == 20
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert _decay_of_one_step(model, images) == pytest.approx(22 / 31,
                                                              abs=1e-3)
    assert int(_n(model.ema_updates)) == 21
    # a file from before: no count in the model's own entry
    store = {}
    model.save_own_variables(store)
    del store["0"]
    model.load_own_variables(store)
    assert int(_n(model.ema_updates)) == -1
    # (the new optimizer's second step)
    assert _decay_of_one_step(model, images) == pytest.approx(3 / 12,
                                                              abs=1e-3)
    assert int(_n(model.ema_updates)) == 2  # the optimizer's count, on


def test_user_network_breaking_the_contract():
    one_input = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(1, 3, padding="same")])
    with pytest.raises(ValueError, match="Contract"):
        DiffusionModel(network=one_input)
    with pytest.raises(ValueError, match="Contract.*returns shape"):
        DiffusionModel(network=tiny_network(channels=2))
    # a conditional model needs the labels as a third input
    with pytest.raises(ValueError, match="Contract"):
        DiffusionModel(num_classes=10, network=tiny_network())
    with pytest.raises(ValueError, match="Keras model or layer"):
        DiffusionModel(network=lambda inputs: inputs[0])


# ------------------------------------------------------------ errors
@pytest.mark.parametrize("kwargs, message", [
    ({"ema_decay": 1.0}, "ema_decay"),
    ({"ema_decay": -0.1}, "ema_decay"),
    ({"label_dropout": 1.0}, "label_dropout"),
    ({"num_classes": 1}, "num_classes"),
    ({"blocks_per_level": 0}, "blocks_per_level"),
    ({"dropout": 1.0}, "dropout"),
    ({"widths": ()}, "widths"),
])
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DiffusionModel(**kwargs)


_IMAGES = np.zeros((2, 8, 8, 1), "uint8")
_BAD_CALLS = {
    "steps_below_1": (
        lambda m, c: m.generate(2, steps=0), "`steps` must be at least 1"),
    "inpaint_steps_below_1": (
        lambda m, c: m.inpaint(_IMAGES, np.ones((8, 8)), steps=0),
        "`steps` must be at least 1"),
    "labels_unconditional": (
        lambda m, c: m.generate(2, labels=1), "only for conditional"),
    "guidance_unconditional": (
        lambda m, c: m.generate(2, guidance=2.0), "only for conditional"),
    "strength_without_images": (
        lambda m, c: m.generate(2, strength=0.5), "images="),
    "negative_guidance": (
        lambda m, c: c.generate(2, labels=1, guidance=-1.0), "guidance"),
    "label_too_large": (
        lambda m, c: c.generate(2, labels=[0, 10]), "0\\.\\.9"),
    "negative_label": (lambda m, c: c.generate(2, labels=-1), "0\\.\\.9"),
    "label_count": (
        lambda m, c: c.generate(3, labels=[1, 2]), "one per sample"),
    "strength_above_1": (
        lambda m, c: m.generate(images=_IMAGES, strength=1.5), "strength"),
    "strength_below_0": (
        lambda m, c: m.generate(images=_IMAGES, strength=-0.1), "strength"),
    "eta": (lambda m, c: m.generate(2, eta=2.0), "eta"),
    "no_num_samples": (lambda m, c: m.generate(), "num_samples"),
    "num_samples_vs_images": (
        lambda m, c: m.generate(3, images=_IMAGES), "disagrees"),
    "mask_shape": (
        lambda m, c: m.inpaint(_IMAGES, np.ones((7, 8))), "does not fit"),
    "mask_values": (
        lambda m, c: m.inpaint(_IMAGES, np.full((8, 8), 0.5)),
        "0 \\(keep the pixel\\) and 1"),
    "frames": (
        lambda m, c: m.reverse_process(2, steps=3, frames=5), "frames"),
    # checked whatever the strength (strength=0 took any seed before)
    "seed_at_strength_0": (
        lambda m, c: m.generate(images=_IMAGES, strength=0.0, seed=-3),
        "`seed` must be an integer"),
    # image-to-image and inpainting on a conditional model without labels:
    # classes 0, 1, 2, ... in turn, in silence, before
    "img2img_without_labels": (
        lambda m, c: c.generate(images=_IMAGES, strength=0.5),
        "pass `labels=` to `generate\\(images=...\\)`"),
    "inpaint_without_labels": (
        lambda m, c: c.inpaint(_IMAGES, np.ones((8, 8))),
        "pass `labels=` to `inpaint`.*or `guidance=0`"),
    # a dataset: "images of shape () (rank 0) ... Reshape" before
    "images_dataset": (
        lambda m, c: m.generate(images=iter([_IMAGES])),
        "got 'list_iterator': take the images out first"),
}


@pytest.mark.parametrize("name", sorted(_BAD_CALLS))
def test_bad_sampling_arguments(untrained, name):
    call, message = _BAD_CALLS[name]
    with pytest.raises(ValueError, match=message):
        call(untrained.plain, untrained.conditional)


def test_bad_training_data(mnist):
    # the method a subclass overrides for another loss (the message named
    # `compute_loss`, which the diffusion step never calls)
    with pytest.raises(ValueError, match="override `diffusion_loss`"):
        DiffusionModel(widths=(8,)).compile(loss="mse")
    model = DiffusionModel(num_classes=10, widths=(8,), seed=0)
    with pytest.raises(ValueError, match="conditional .* has no labels"):
        model.fit(mnist[0][:32], epochs=1, verbose=0)
    assert not model.compiled or _iterations(model) == 0
    model = DiffusionModel(widths=(8,), seed=0)
    with pytest.raises(ValueError, match="divide by 255"):
        model.fit(mnist[0][:32].astype("float32"), epochs=1, verbose=0)
    assert not model.compiled or _iterations(model) == 0
    with pytest.raises(ValueError, match="generate` needs a built model"):
        DiffusionModel(widths=(8,)).generate(2)


@pytest.mark.parametrize("image_shape", [None, (8, 8, 1)])
def test_predict_and_call_take_the_networks_inputs(image_shape):
    """`predict` and `call` run the denoising network: images alone (what
    the other models' `predict` takes) are one `ValueError` that says what
    it takes and points to `generate`, not Keras' "expects 2 named
    inputs"; the network's inputs give its v prediction, from a model not
    built yet too (TensorFlow failed to build one inside `predict`)."""
    images = np.zeros((3, 8, 8, 1), "uint8")
    noisy = np.zeros((3, 8, 8, 1), "float32")
    t = np.full((3,), 0.5, "float32")
    labels = np.zeros((3,), "int32")
    for num_classes, right, wrong in ((None, [noisy, t], [noisy, t, labels]),
                                      (10, [noisy, t, labels], [noisy, t])):
        model = DiffusionModel(num_classes=num_classes, widths=(8,),
                               image_shape=image_shape)
        for bad in (images, wrong):
            with pytest.raises(ValueError, match="`generate\\(n\\)`"):
                model.predict(bad, verbose=0)
        assert model.predict(right, verbose=0).shape == (3, 8, 8, 1)
        assert tuple(model(right).shape) == (3, 8, 8, 1)
        if num_classes:
            # labels out of range (an output with no error before, or an
            # error inside the embedding); num_classes is "no label"
            for label in (-1, 11):
                with pytest.raises(ValueError, match="in 0\\.\\.10"):
                    model.predict([noisy, t, np.full((3,), label)],
                                  verbose=0)
            assert model.predict([noisy, t, np.full((3,), 10)],
                                 verbose=0).shape == (3, 8, 8, 1)
            with pytest.raises(ValueError,
                               match="int labels \\(batch,\\)"):
                model(images)


def test_predict_takes_datasets_of_the_networks_inputs():
    """A dataset of `[noisy, t, labels]` predicts as the arrays do (it
    failed with an AttributeError: `ops.shape` of the dataset); a dataset
    of images gets the message that points to `generate`."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    noisy = rng.standard_normal((6, 8, 8, 1)).astype("float32")
    t = np.full((6,), 0.5, "float32")
    labels = (np.arange(6) % 3).astype("int32")
    model = DiffusionModel(num_classes=3, widths=(8,), image_shape=(8, 8, 1))
    expected = model.predict([noisy, t, labels], verbose=0)
    for dataset in (
            tf.data.Dataset.from_tensor_slices(((noisy, t, labels),)).batch(4),
            tf.data.Dataset.from_tensor_slices(
                ((noisy, t, labels), noisy)).batch(3)):
        np.testing.assert_allclose(model.predict(dataset, verbose=0),
                                   expected, rtol=1e-5, atol=1e-5)
    unbuilt = DiffusionModel(widths=(8,), image_shape=(8, 8, 1))
    pairs = tf.data.Dataset.from_tensor_slices(((noisy, t),)).batch(3)
    assert unbuilt.predict(pairs, verbose=0).shape == (6, 8, 8, 1)
    images = tf.data.Dataset.from_tensor_slices(
        (np.zeros((6, 8, 8, 1), "uint8"), labels)).batch(3)
    with pytest.raises(ValueError, match="`generate\\(n\\)`"):
        model.predict(images, verbose=0)


def test_redrawing_takes_the_labels_the_images_carry():
    """`generate(images=...)` and `inpaint` of a conditional model use the
    labels that come with the images (they were dropped, and the images
    redrawn as classes 0, 1, 2, ... in turn); `guidance=0` needs none."""
    model = DiffusionModel(num_classes=3, widths=(8,), image_shape=(8, 8, 1),
                           seed=0)
    rng = np.random.default_rng(0)
    model.ensure_built("generate")
    for weight in model.weights:  # (the output starts at zero)
        if weight.dtype == "float32":
            weight.assign(0.3 * rng.standard_normal(weight.shape))
    images = rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
    labels = np.array([2, 0, 1, 2])
    mask = np.zeros((8, 8))
    mask[4:] = 1
    expected = model.generate(images=images, labels=labels, strength=0.6,
                              steps=3, seed=1)
    for given in ((images, labels), {"image": images, "label": labels}):
        np.testing.assert_allclose(
            model.generate(images=given, strength=0.6, steps=3, seed=1),
            expected, atol=1e-6)
    filled = model.inpaint(images, mask, labels=labels, steps=3, seed=1)
    np.testing.assert_allclose(
        model.inpaint((images, labels), mask, steps=3, seed=1), filled,
        atol=1e-6)
    # nothing is redrawn at strength 0: no labels needed
    np.testing.assert_allclose(model.generate(images=images, strength=0),
                               images / 255.0, atol=1e-6)
    in_turn = model.generate(images=images, labels=np.arange(4) % 3,
                             strength=0.6, steps=3, seed=1)
    assert not np.allclose(in_turn, expected)
    unconditional = model.generate(images=images, guidance=0, strength=0.6,
                                   steps=3, seed=1)
    np.testing.assert_allclose(
        unconditional,
        model.generate(images=images, labels=3 * [0] + [1], guidance=0,
                       strength=0.6, steps=3, seed=1), atol=1e-6)


def test_guidance_needs_label_dropout():
    # with label_dropout=0 the "no label" embedding never trains: guidance
    # mixed it in, in silence
    model = DiffusionModel(num_classes=3, widths=(8,), image_shape=(8, 8, 1),
                           label_dropout=0.0)
    for guidance in (0.0, 2.0):
        with pytest.raises(ValueError, match="label_dropout=0"):
            model.generate(2, guidance=guidance, steps=2)
    assert model.generate(2, guidance=1.0, steps=2).shape == (2, 8, 8, 1)
    assert model.generate(2, steps=2).shape == (2, 8, 8, 1)


def test_unet_output_is_float32_under_a_mixed_policy_when_padded():
    # the final crop of a padded U-Net took the global policy: float16 v
    from keras_genzoo.networks import unet

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        for shape in ((9, 11, 3), (8, 8, 1)):  # padded, not padded
            network = unet(shape, widths=(8, 16))
            assert network.output.dtype == "float32", shape
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
def test_own_network_with_a_bounding_final_activation_is_refused(activation):
    # a sigmoid or relu cannot predict negative v: it trained to a worse
    # loss, in silence (the GANs and the VAE refuse such networks)
    noisy = keras.Input((8, 8, 1))
    t = keras.Input(())
    x = keras.layers.Concatenate()(
        [noisy, keras.layers.Reshape((1, 1, 1))(t) * keras.ops.ones_like(
            noisy)])
    out = keras.layers.Conv2D(1, 3, padding="same", activation=activation)(x)
    with pytest.raises(ValueError, match=f"ends in a {activation}"):
        DiffusionModel(network=keras.Model([noisy, t], out))
    linear = keras.layers.Conv2D(1, 3, padding="same")(x)
    DiffusionModel(network=keras.Model([noisy, t], linear))


def test_own_network_with_a_lambda_layer_is_copied():
    # the averaged copy, made from the network's config, refused a Lambda
    # with Keras' advice for loading files (the user loaded none)
    noisy = keras.Input((8, 8, 1))
    t = keras.Input(())
    plane = keras.layers.Lambda(lambda v: v[:, None, None, None]
                                * keras.ops.ones((1, 8, 8, 1)),
                                output_shape=(8, 8, 1))(t)
    out = keras.layers.Conv2D(1, 3, padding="same")(
        keras.layers.Concatenate()([noisy, plane]))
    model = DiffusionModel(network=keras.Model([noisy, t], out), seed=0)
    images = np.random.default_rng(0).random((8, 8, 8, 1)).astype("float32")
    history = model.fit(images, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_half_precision_policy_trains(dtype):
    # the EMA update multiplied a float32 decay by half-precision weights:
    # TensorFlow refused it at the first step
    model = DiffusionModel(widths=(8,), image_shape=(8, 8, 1), dtype=dtype,
                           seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    images = np.random.default_rng(0).random((8, 8, 8, 1)).astype("float32")
    model.fit(images, epochs=1, batch_size=8, verbose=0)
    average = keras.ops.convert_to_numpy(model.ema_network.weights[0])
    assert str(model.ema_network.weights[0].dtype) == dtype
    assert np.isfinite(average.astype("float32")).all()


def test_generate_meets_few_batch_sizes(trained):
    """The first 4 numbers of samples run as they are, later ones padded
    to a batch size met before or to one of a few (each new number
    compiled the step again: up to 1.6 s on TensorFlow), with the samples'
    own results."""
    model = trained.model
    model.generate(1, steps=1)  # the step made
    model._compiled.rows.clear()
    step = model._compiled.steps[False]
    rows = []

    def spy(x, *args):
        rows.append(int(keras.ops.shape(x)[0]))
        return step(x, *args)

    model._compiled.steps[False] = spy
    try:
        samples = {}
        for n in (3, 5, 6, 7, 9, 10, 11, 5):
            samples[n] = model.generate(n, steps=1, seed=5, eta=0.5)
        assert rows == [3, 5, 6, 7, 16, 16, 16, 5]
        exact = model.generate(10, steps=1, seed=5, eta=0.5, batch_size=10)
    finally:
        model._compiled.steps[False] = step
    assert samples[10].shape == (10, 28, 28, 1)
    np.testing.assert_allclose(samples[10].astype("int32"), exact, atol=1)
    np.testing.assert_allclose(samples[11][:10].astype("int32"), exact,
                               atol=1)
