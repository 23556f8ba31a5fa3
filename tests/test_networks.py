"""networks/ and layers/ on their own: builders, shapes, ranges, saving."""

import os

import keras
import numpy as np
import pytest

from keras_genzoo import Sampling
from keras_genzoo.layers.seed_state import SEED_STATE_KEY
from keras_genzoo.networks import (
    conv_decoder,
    conv_encoder,
    dcgan_discriminator,
    dcgan_generator,
)


def _n(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("shape", [(28, 28, 1), (30, 22, 3), (8, 8, 1)])
def test_conv_encoder_decoder_any_shape(shape):
    encoder = conv_encoder(shape, (5, 5), filters=(4, 8))
    decoder = conv_decoder(shape, 5, filters=(4, 8))
    images = np.random.rand(2, *shape).astype("float32")
    mean, log_var = encoder(images)
    assert tuple(mean.shape) == (2, 5) == tuple(log_var.shape)
    out = _n(decoder(mean))
    assert out.shape == (2,) + shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    with pytest.raises(ValueError, match="filters"):
        conv_encoder(shape, (5,), filters=())


@pytest.mark.parametrize("num_classes", [None, 4])
def test_dcgan_networks_shapes_and_ranges(num_classes):
    shape = (20, 12, 3)
    generator = dcgan_generator(shape, 6, filters=(8, 4),
                                num_classes=num_classes)
    discriminator = dcgan_discriminator(shape, filters=(4, 8),
                                        num_classes=num_classes)
    noise = np.random.randn(3, 6).astype("float32")
    labels = np.array([0, 1, 3], "int32")
    images = _n(generator([noise, labels] if num_classes else noise))
    assert images.shape == (3,) + shape
    assert images.min() >= -1.0 and images.max() <= 1.0
    logits = discriminator([images, labels] if num_classes else images)
    assert tuple(logits.shape) == (3, 1)


def test_sampling_layer_saves_its_seed_state(tmp_path):
    inputs = keras.Input((2,))
    z = Sampling(seed=3, name="sampling")([inputs, inputs])
    model = keras.Model(inputs, z)
    x = np.zeros((4, 2), "float32")
    model(x)  # advances the seed state
    path = os.path.join(tmp_path, "sampling.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(
        _n(loaded.get_layer("sampling").seed_generator.state),
        _n(model.get_layer("sampling").seed_generator.state))
    # the next draws match too: the noise sequence continues
    np.testing.assert_array_equal(_n(loaded(x)), _n(model(x)))


def test_seed_state_is_one_more_store_entry():
    layer = Sampling(seed=0)
    store = {}
    layer.save_own_variables(store)
    assert list(store) == [SEED_STATE_KEY]
    fresh = Sampling(seed=1)
    fresh.load_own_variables(store)
    np.testing.assert_array_equal(_n(fresh.seed_generator.state),
                                  _n(layer.seed_generator.state))
    fresh.load_own_variables({})  # a file written without it


def test_seeds_beyond_int32_work_on_every_backend():
    # PyTorch holds a seed generator's state as int32: `seed=2**31` failed
    # there, and so did loading a state saved with such a seed elsewhere
    from keras_genzoo import VAE, MiniGPT

    model = VAE(latent_dim=2, filters=(4,), image_shape=(8, 8, 1),
                seed=2**32 - 1)
    images = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 1),
                                               dtype=np.uint8)
    assert np.isfinite(model.fit(images, epochs=1, verbose=0)
                       .history["loss"]).all()
    assert Sampling(seed=2**31).seed == 2**31
    gpt = MiniGPT.from_text("abcab" * 4, sequence_length=4, num_layers=1,
                            num_heads=1, hidden_dim=4, seed=2**31)
    text = gpt.generate("a", 4, seed=2**32 - 1)
    assert text == gpt.generate("a", 4, seed=2**32 - 1) and len(text) == 5
    layer = Sampling(seed=0)
    layer.load_own_variables(
        {SEED_STATE_KEY: np.array([3_000_000_000, 5], "int64")})
    state = _n(layer.seed_generator.state).astype("int64")
    expected = (3_000_000_000 % 2**31 if keras.backend.backend() == "torch"
                else 3_000_000_000)
    np.testing.assert_array_equal(state, [expected, 5])


@pytest.mark.parametrize("seed", [2**31 - 1, 2**32 - 1])
def test_seeded_dropout_of_the_built_in_networks_takes_every_seed(seed):
    """The networks' dropout seeds were the model's seed plus the layer's
    index: from 2**31 - 1 on, PyTorch failed the first step ("cannot be
    converted to type int32"), at 2**32 - 1 JAX ("out of bounds for
    uint32"). They are folded into 0..2**31-1."""
    from keras_genzoo import GAN, DiffusionModel, MiniGPT

    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 1),
                                               dtype=np.uint8)
    models = [
        DiffusionModel(widths=(4,), dropout=0.3, seed=seed),
        GAN(latent_dim=4, generator_filters=(8,), discriminator_filters=(8,),
            dropout=0.3, seed=seed),
    ]
    for model in models:
        model.fit(images, epochs=1, batch_size=4, verbose=0)
    gpt = MiniGPT.from_text("abcab" * 4, sequence_length=4, num_layers=1,
                            num_heads=1, hidden_dim=4, dropout=0.1,
                            seed=seed)
    train, _ = gpt.make_datasets("abcab" * 4, batch_size=2,
                                 validation_split=0)
    gpt.fit(train, epochs=1, verbose=0)
    seeds = [layer.seed for model in models + [gpt]
             for layer in model._flatten_layers()
             if isinstance(layer, keras.layers.Dropout)]
    assert seeds and all(0 <= s < 2**31 for s in seeds), seeds


def _loads_weights_of_keras_layers(ours, kinds, tmp_path):
    """Clones `ours` with Keras' layer classes in place of the zoo's
    (`kinds`: zoo class -> Keras class), gives the clone random weights,
    saves them and loads them into `ours`; returns `(clone, rng)`."""
    def as_keras(layer):
        cls = kinds.get(type(layer), type(layer))
        return cls.from_config(layer.get_config())

    old = keras.models.clone_model(ours, clone_function=as_keras)
    assert not any(type(layer) in kinds for layer in old.layers)
    rng = np.random.default_rng(0)
    old.set_weights([rng.normal(size=w.shape).astype("float32")
                     for w in old.get_weights()])
    path = str(tmp_path / "old.weights.h5")
    old.save_weights(path)
    ours.load_weights(path)
    for a, b in zip(ours.get_weights(), old.get_weights()):
        np.testing.assert_array_equal(a, b)
    return old, rng


def test_generator_loads_weights_saved_with_keras_layers(tmp_path):
    """The DCGAN generator's data-parallel BatchNormalization and its
    Conv2DTranspose keep Keras' class names: weights saved when they were
    Keras' own layers (every GAN file from before) load into them,
    statistics included."""
    from keras_genzoo.layers import BatchNormalization, Conv2DTranspose

    ours = dcgan_generator((28, 28, 1), latent_dim=8, filters=(8,))
    kinds = {BatchNormalization: keras.layers.BatchNormalization,
             Conv2DTranspose: keras.layers.Conv2DTranspose}
    for kind in kinds:
        assert any(isinstance(layer, kind) for layer in ours.layers)

    old, rng = _loads_weights_of_keras_layers(ours, kinds, tmp_path)
    noise = rng.normal(size=(3, 8)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(noise, training=False)),
        keras.ops.convert_to_numpy(old(noise, training=False)), atol=1e-5)


@pytest.mark.parametrize("kernel_size,strides,height", [
    (4, 2, 7), (3, 2, 7), (5, 2, 4), (3, 3, 5), ((4, 3), (2, 3), 6),
    (2, 2, 1)])
def test_conv2d_transpose_by_phases_equals_keras(kernel_size, strides,
                                                 height, monkeypatch):
    """The phase-by-phase transposed convolution (the fast path JAX takes)
    gives Keras' outputs and, after one SGD step, the same weights (the
    gradients of kernel, bias and inputs), on every backend."""
    from keras_genzoo import backend as zoo_backend
    from keras_genzoo.layers import Conv2DTranspose

    monkeypatch.setattr(zoo_backend, "TRANSPOSED_CONV_BY_PHASES", True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, height, 5, 3)).astype("float32")

    def network(cls):
        keras.utils.set_random_seed(0)
        net = keras.Sequential([
            keras.Input(x.shape[1:]),
            keras.layers.Conv2D(2, 1, name="before"),
            cls(4, kernel_size, strides=strides, padding="same",
                activation="tanh", name="up"),
        ])
        net.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        return net

    ours, theirs = network(Conv2DTranspose), network(
        keras.layers.Conv2DTranspose)
    assert ours.get_layer("up")._by_phases()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(x)),
                               keras.ops.convert_to_numpy(theirs(x)),
                               atol=1e-5)
    target = rng.normal(size=keras.ops.shape(ours(x))).astype("float32")
    ours.train_on_batch(x, target)
    theirs.train_on_batch(x, target)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    config = ours.get_layer("up").get_config()
    assert type(Conv2DTranspose.from_config(config)) is Conv2DTranspose


@pytest.mark.parametrize("policy,atol", [("float32", 1e-5),
                                         ("mixed_bfloat16", 5e-2)])
@pytest.mark.parametrize("options", [{}, {"center": False, "scale": False},
                                     {"axis": 1}])
def test_group_normalization_equals_keras(policy, atol, options):
    """The zoo's GroupNormalization (one `group_norm` op on PyTorch, Keras'
    layer elsewhere and on other axes) gives Keras' outputs and, after one
    SGD step, the same weights (the gradients of gamma, beta and the
    inputs), on every backend, in float32 and mixed precision."""
    from keras_genzoo import backend as zoo_backend
    from keras_genzoo.layers import GroupNormalization

    rng = np.random.default_rng(0)
    x = (3 * rng.normal(size=(3, 4, 6, 8)) + 1).astype("float32")

    def network(cls):
        keras.utils.set_random_seed(0)
        net = keras.Sequential([
            keras.Input(x.shape[1:]),
            keras.layers.Conv2D(8, 1, name="before", dtype=policy),
            cls(groups=2, gamma_initializer="random_normal",
                beta_initializer="random_normal", name="norm",
                dtype=policy, **options),
            keras.layers.Dense(3, name="after", dtype=policy),
        ])
        net.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        return net

    ours, theirs = network(GroupNormalization), network(
        keras.layers.GroupNormalization)
    fused = zoo_backend.group_normalization is not None and "axis" not in (
        options)
    assert ours.get_layer("norm")._fused(x) == fused
    assert fused == (keras.backend.backend() == "torch" and not options.get(
        "axis"))
    out = keras.ops.convert_to_numpy(ours(x))
    assert str(out.dtype) == ("float32" if policy == "float32"
                              else "bfloat16")
    np.testing.assert_allclose(out.astype("float32"),
                               keras.ops.convert_to_numpy(
                                   theirs(x)).astype("float32"), atol=atol)
    target = rng.normal(size=out.shape).astype("float32")
    ours.train_on_batch(x, target)
    theirs.train_on_batch(x, target)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, atol=atol)
    config = ours.get_layer("norm").get_config()
    assert type(GroupNormalization.from_config(config)) is GroupNormalization
    assert GroupNormalization(4).groups == 4  # positional, as in Keras
    from keras_genzoo.layers import BatchNormalization
    assert BatchNormalization(1).axis == 1  # positional, as in Keras
    assert keras.saving.get_registered_name(GroupNormalization) == (
        "keras_genzoo>GroupNormalization")


def test_unet_loads_weights_saved_with_keras_group_normalization(tmp_path):
    """The U-Net's GroupNormalization layers keep Keras' class name: weights
    saved when they were Keras' own layers (every diffusion model file from
    before) load into them and give the same outputs."""
    from keras_genzoo.layers import GroupNormalization
    from keras_genzoo.networks import unet

    ours = unet((8, 8, 1), widths=(8, 16))
    assert sum(isinstance(layer, GroupNormalization)
               for layer in ours.layers) == 15

    old, rng = _loads_weights_of_keras_layers(
        ours, {GroupNormalization: keras.layers.GroupNormalization}, tmp_path)
    inputs = [rng.normal(size=(2, 8, 8, 1)).astype("float32"),
              np.array([0.2, 0.7], "float32")]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(inputs)),
                               keras.ops.convert_to_numpy(old(inputs)),
                               atol=1e-4)


def test_neighbouring_seeds_draw_unrelated_streams():
    """Keras' PyTorch seed generators seed each draw with the seed plus the
    draw count: seeds s and s + 1 drew one stream a draw apart (MiniGPT's
    text from seed 1 was seed 0's without its first character, and
    dropout layers seeded s + i drew each other's masks a step apart);
    TensorFlow folds seeds modulo 2**31 - 2. The zoo hashes them."""
    from keras_genzoo._inputs import generator_seed, layer_seed

    def draws(seed):
        generator = keras.random.SeedGenerator(seed)
        return [_n(keras.random.uniform((16,), seed=generator))
                for _ in range(2)]

    zero, one = draws(generator_seed(0)), draws(generator_seed(1))
    assert not np.allclose(zero[1], one[0])
    first, second = draws(layer_seed(7, 0)), draws(layer_seed(7, 1))
    assert not np.allclose(first[1], second[0])
    assert not np.allclose(draws(generator_seed(1))[0],
                           draws(generator_seed(2**31 - 1))[0])
    # the same seed, the same numbers; every value in PyTorch's int32
    np.testing.assert_array_equal(draws(generator_seed(5))[1],
                                  draws(generator_seed(5))[1])
    for seed in (0, 1, 2**31 - 1, 2**32 - 1):
        assert 0 <= generator_seed(seed) < 2**31 - 2
        assert 0 <= layer_seed(seed, 3) < 2**31 - 2


def test_group_normalization_edge_cases_equal_keras():
    """PyTorch's `group_norm` refused one value per group (a batch of 1,
    one channel a group: a U-Net's 1x1 bottom generating one sample), and
    computed a float64 layer in float32 (2.6e-7 off)."""
    from keras_genzoo.layers import GroupNormalization
    from keras_genzoo.networks import unet

    x = np.arange(4, dtype="float32").reshape(1, 4)
    options = dict(groups=4, beta_initializer="random_normal")
    keras.utils.set_random_seed(0)
    ours = GroupNormalization(**options)
    keras.utils.set_random_seed(0)
    theirs = keras.layers.GroupNormalization(**options)
    np.testing.assert_allclose(_n(ours(x)), _n(theirs(x)), atol=1e-6)
    net = unet((4, 4, 1), widths=(8, 8, 8))
    out = net([np.ones((1, 4, 4, 1), "float32"), np.zeros((1,), "float32")])
    assert _n(out).shape == (1, 4, 4, 1) and np.isfinite(_n(out)).all()
    # float64, against numpy (Keras' own layer is 2.4e-7 off on PyTorch)
    x = np.random.default_rng(0).normal(size=(2, 3, 8)).astype("float64")
    groups = x.reshape(2, 3, 2, 4)
    expected = ((groups - groups.mean(axis=(1, 3), keepdims=True))
                / np.sqrt(groups.var(axis=(1, 3), keepdims=True) + 1e-3))
    out = _n(GroupNormalization(groups=2, dtype="float64")(x))
    if keras.backend.backend() == "jax":  # float32 unless JAX's x64 is on
        return
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, expected.reshape(x.shape), atol=1e-12)


@pytest.mark.parametrize("builder", ["conv_decoder", "dcgan_generator"])
def test_cropping_decoders_give_float32_under_mixed_precision(builder):
    # the final crop took the global policy: bfloat16 probabilities for
    # 30x30 images under mixed_bfloat16, which the docstrings say are
    # float32
    from keras_genzoo import networks

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        net = getattr(networks, builder)((30, 30, 1), latent_dim=2,
                                         filters=(8, 4))
    finally:
        keras.config.set_dtype_policy(previous)
    out = net(np.zeros((2, 2), "float32"))
    assert _n(out).shape == (2, 30, 30, 1)
    assert str(_n(out).dtype) == "float32"


@pytest.mark.parametrize("call, words", [
    (lambda: conv_encoder((8, 8, 1), (4,), filters=32), "`filters`"),
    (lambda: conv_encoder((8, 8, 1), (4,), filters=(2.5,)), "`filters`"),
    (lambda: conv_encoder((8, 8, 1), (), filters=(4,)), "`output_sizes`"),
    (lambda: conv_encoder((8, 8), (4,), filters=(4,)), "`image_shape`"),
    (lambda: conv_decoder((8, 8, 1), 0, filters=(4,)), "`latent_dim`"),
    (lambda: conv_decoder((8, 8, 1), 2, filters=(4,), num_classes=0),
     "`num_classes`"),
    (lambda: dcgan_generator((8, 8), 2, filters=(4,)), "`image_shape`"),
    (lambda: dcgan_discriminator((None, None, 1), filters=(4,)),
     "image_shape's sizes"),
    (lambda: __import__("keras_genzoo.networks").networks.unet(
        (8, 8, 1), widths=(4,), attention=True, attention_heads=0),
     "`attention_heads`"),
    (lambda: __import__("keras_genzoo.networks").networks.unet(
        (None, None, 1), widths=(4,)), "image_shape's sizes"),
])
def test_network_builders_refuse_bad_arguments(call, words):
    # before: a TypeError (filters=32, (None, None, 1)), an IndexError
    # (output_sizes=()), "not enough values to unpack" (a 2-D shape), a
    # ZeroDivisionError (attention_heads=0), or silence (2.5 cut to 2,
    # latent_dim=0, num_classes=0 unconditional)
    with pytest.raises(ValueError, match=words):
        call()


def test_sinusoidal_embedding_takes_one_value_per_sample():
    """`(batch,)` and `(batch, 1)` give the same embedding (a numpy
    reference; float64 layers compute in float64); other shapes and odd or
    fractional sizes are one ValueError."""
    from keras_genzoo import SinusoidalEmbedding

    t = np.array([0.0, 0.25, 1.0])
    half = np.arange(4) / 4.0
    angles = 1000.0 * t[:, None] * np.exp(-np.log(10000.0) * half)[None]
    expected = np.concatenate([np.sin(angles), np.cos(angles)], -1)
    layer = SinusoidalEmbedding(8, dtype="float64")
    out = keras.ops.convert_to_numpy(layer(t))
    # (JAX computes float64 only with jax_enable_x64)
    if keras.backend.backend() != "jax":
        assert out.dtype == np.float64
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer(t[:, None])), out)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(SinusoidalEmbedding(8)(
            t.astype("float32"))), expected, atol=1e-3)
    with pytest.raises(ValueError, match="one value per sample"):
        layer(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="one value per sample"):
        layer.compute_output_shape((3, 2))
    for dim in (2.5, 3, 0, "8x", True):
        with pytest.raises(ValueError, match="positive even"):
            SinusoidalEmbedding(dim)
    assert SinusoidalEmbedding(8.0).dim == 8


def test_unet_with_an_odd_first_width():
    """(Its time embedding took the first width as its size, which must be
    even: `DiffusionModel(widths=(3, 6))` failed at the first `fit`, "`dim`
    must be a positive even number".)"""
    from keras_genzoo.networks.unet import unet

    net = unet((8, 8, 1), widths=(3, 6))
    out = net([np.zeros((2, 8, 8, 1), "float32"), np.zeros((2,), "float32")])
    assert tuple(out.shape) == (2, 8, 8, 1)
