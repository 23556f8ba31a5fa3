"""Bring your own networks: GAN, WGAN-GP, VAE and AutoEncoder take the
user's Keras models, read their shapes, check their contracts, and save
them inside the `.keras` file."""

import json
import os

import keras
import numpy as np
import pytest

from keras_genzoo import GAN, VAE, WGANGP, AutoEncoder


def _n(x):
    return keras.ops.convert_to_numpy(x)


def tutorial_generator(latent_dim=16, activation="tanh"):
    # keras-io's DCGAN generator, shrunk
    return keras.Sequential([
        keras.Input((latent_dim,)),
        keras.layers.Dense(7 * 7 * 8),
        keras.layers.LeakyReLU(0.2),
        keras.layers.Reshape((7, 7, 8)),
        keras.layers.Conv2DTranspose(8, 4, strides=2, padding="same"),
        keras.layers.LeakyReLU(0.2),
        keras.layers.Conv2DTranspose(8, 4, strides=2, padding="same"),
        keras.layers.LeakyReLU(0.2),
        keras.layers.Conv2D(1, 5, padding="same", activation=activation),
    ], name="my_generator")


def tutorial_discriminator(outputs=1):
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(8, 4, strides=2, padding="same"),
        keras.layers.LeakyReLU(0.2),
        keras.layers.Flatten(),
        keras.layers.Dense(outputs),
    ], name="my_discriminator")


def tutorial_vae_networks(latent_dim=3):
    # keras-io's VAE encoder/decoder, shrunk (no Lambda: a functional model)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same",
                            activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    encoder = keras.Model(inputs, [keras.layers.Dense(latent_dim)(x),
                                   keras.layers.Dense(latent_dim)(x)],
                          name="my_encoder")
    decoder = keras.Sequential([
        keras.Input((latent_dim,)),
        keras.layers.Dense(14 * 14 * 8, activation="relu"),
        keras.layers.Reshape((14, 14, 8)),
        keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same",
                                     activation="sigmoid"),
    ], name="my_decoder")
    return encoder, decoder


def _json(config):
    # Keras gives shapes as tuples before saving and lists after
    return json.loads(json.dumps(config))


def _round_trip(model, tmp_path):
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    return keras.models.load_model(path, safe_mode=True)


@pytest.mark.parametrize("cls", [GAN, WGANGP])
def test_gan_trains_saves_and_restores_user_networks(mnist, tmp_path, cls):
    generator, discriminator = tutorial_generator(), tutorial_discriminator()
    gan = cls(generator=generator, discriminator=discriminator, d_steps=1,
              seed=0)
    assert gan.generator is generator and gan.discriminator is discriminator
    assert (gan.latent_dim, gan.image_shape) == (16, (28, 28, 1))
    before = _n(generator.weights[0]).copy()
    gan.fit(mnist[0][:64], epochs=1, batch_size=32, verbose=0)
    assert not np.array_equal(before, _n(generator.weights[0]))
    assert gan.generate(3, seed=0).shape == (3, 28, 28, 1)
    loaded = _round_trip(gan, tmp_path)
    assert loaded.generator.name == "my_generator"
    assert len(loaded.generator.layers) == len(generator.layers)
    np.testing.assert_array_equal(loaded.generate(4, seed=1),
                                  gan.generate(4, seed=1))
    assert _json(loaded.get_config()) == _json(gan.get_config())
    loaded.fit(mnist[0][:64], epochs=1, batch_size=32, verbose=0)
    assert int(_n(loaded.optimizer.iterations)) == 4


def test_one_own_network_and_one_built_in(mnist):
    gan = GAN(generator=tutorial_generator(latent_dim=5),
              discriminator_filters=(8,), seed=0)
    gan.fit(mnist[0][:32], epochs=1, batch_size=32, verbose=0)
    assert gan.latent_dim == 5
    assert gan.discriminator.name == "discriminator"  # the built-in one
    only_d = GAN(discriminator=tutorial_discriminator(),
                 generator_filters=(8,), latent_dim=4)
    assert only_d.image_shape == (28, 28, 1)
    assert only_d.generate(2, seed=0).shape == (2, 28, 28, 1)


def test_conditional_gan_with_own_networks(mnist):
    noise = keras.Input((4,))
    label = keras.Input((), dtype="int32")
    h = keras.layers.Concatenate()(
        [noise, keras.layers.Embedding(10, 4)(label)])
    h = keras.layers.Dense(28 * 28, activation="tanh")(h)
    generator = keras.Model([noise, label],
                            keras.layers.Reshape((28, 28, 1))(h))
    images = keras.Input((28, 28, 1))
    label_d = keras.Input((), dtype="int32")
    h = keras.layers.Concatenate()([keras.layers.Flatten()(images),
                                    keras.layers.Embedding(10, 4)(label_d)])
    discriminator = keras.Model([images, label_d], keras.layers.Dense(1)(h))
    gan = GAN(num_classes=10, generator=generator,
              discriminator=discriminator)
    gan.fit(mnist[0][:32], mnist[1][:32], epochs=1, batch_size=32, verbose=0)
    sevens = gan.generate(2, seed=0, labels=7)
    assert not np.allclose(sevens, gan.generate(2, seed=0, labels=3))


@pytest.mark.parametrize("cls", [VAE, AutoEncoder])
def test_latent_models_take_user_networks(mnist, tmp_path, cls):
    encoder, decoder = tutorial_vae_networks()
    if cls is AutoEncoder:
        encoder = keras.Model(encoder.inputs[0], encoder.outputs[0])
    model = cls(encoder=encoder, decoder=decoder, seed=0)
    assert (model.latent_dim, model.image_shape) == (3, (28, 28, 1))
    history = model.fit(mnist[0][:128], epochs=3, batch_size=32,
                        verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    codes = model.encode(mnist[0][:4])
    assert codes.shape == (4, 3)
    loaded = _round_trip(model, tmp_path)
    np.testing.assert_array_equal(loaded.encode(mnist[0][:4]), codes)
    np.testing.assert_array_equal(loaded.decode(codes), model.decode(codes))
    assert loaded.decoder.name == "my_decoder"


class SubclassedDecoder(keras.Model):
    """A decoder without a `keras.Input`: the shapes come from the
    arguments."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(8 * 8, activation="sigmoid")

    def call(self, z):
        return keras.ops.reshape(self.dense(z), (-1, 8, 8, 1))


def test_subclassed_networks_need_and_use_the_shape_arguments():
    encoder = keras.Sequential([keras.layers.Flatten(),
                                keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="pass `image_shape="):
        AutoEncoder(encoder=encoder, decoder=SubclassedDecoder())
    model = AutoEncoder(encoder=encoder, decoder=SubclassedDecoder(),
                        image_shape=(8, 8, 1))
    assert model.latent_dim == 2
    assert model.reconstruct(np.zeros((3, 8, 8, 1))).shape == (3, 8, 8, 1)


@pytest.mark.parametrize("case, message", [
    ("generator_not_tanh", "images in \\[-1, 1\\].*end it with a tanh"),
    ("generator_rank_2", "Contract: a generator maps noise"),
    ("discriminator_many_outputs", "one logit or score per image"),
    ("discriminator_wrong_images", "disagrees with the discriminator"),
    ("not_a_network", "must be a Keras model or layer"),
    ("latent_dim_disagrees", "latent_dim=3` disagrees"),
    ("conditional_discriminator_without_labels",
     "int labels of shape \\(batch,\\) as a second input"),
])
def test_gan_contract_violations_are_named(case, message):
    kwargs = {
        "generator_not_tanh": dict(
            generator=tutorial_generator(activation=None)),
        "generator_rank_2": dict(generator=keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(5)])),
        "discriminator_many_outputs": dict(
            discriminator=tutorial_discriminator(outputs=3)),
        "discriminator_wrong_images": dict(
            generator=tutorial_generator(),
            discriminator=keras.Sequential([
                keras.Input((32, 32, 1)), keras.layers.Flatten(),
                keras.layers.Dense(1)])),
        "not_a_network": dict(generator=lambda z: z),
        "latent_dim_disagrees": dict(generator=tutorial_generator(),
                                     latent_dim=3),
        "conditional_discriminator_without_labels": dict(
            num_classes=10, discriminator=tutorial_discriminator()),
    }[case]
    if case == "generator_not_tanh":
        # a linear output layer whose probe values leave [-1, 1]
        kwargs["generator"].layers[-1].kernel.assign(
            np.full(kwargs["generator"].layers[-1].kernel.shape, 5.0))
    with pytest.raises(ValueError, match=message):
        GAN(**kwargs)


@pytest.mark.parametrize("case, message", [
    ("one_output", "two tensors \\(z_mean, z_log_var\\)"),
    ("decoder_shape", "to images of the encoder's input shape"),
    ("decoder_range", "images in \\[0, 1\\] \\(end it with a sigmoid\\)"),
    ("only_one", "Pass both `encoder=` and `decoder=`"),
    ("image_shape_disagrees", "image_shape=\\(8, 8, 1\\)` disagrees"),
])
def test_vae_contract_violations_are_named(case, message):
    encoder, decoder = tutorial_vae_networks()
    if case == "one_output":
        encoder = keras.Model(encoder.inputs[0], encoder.outputs[0])
    elif case == "decoder_shape":
        decoder = keras.Sequential([keras.Input((3,)),
                                    keras.layers.Dense(4, "sigmoid")])
    elif case == "decoder_range":
        decoder = keras.Sequential([
            keras.Input((3,)), keras.layers.Dense(28 * 28, "relu",
                                                  bias_initializer="ones"),
            keras.layers.Reshape((28, 28, 1))])
    elif case == "only_one":
        decoder = None
    kwargs = {"image_shape": (8, 8, 1)} if "image_shape" in case else {}
    with pytest.raises(ValueError, match=message):
        VAE(encoder=encoder, decoder=decoder, **kwargs)
