"""Bring your own networks: GAN, WGAN-GP, VAE and AutoEncoder take the
user's Keras models, read their shapes, check their contracts, and save
them inside the `.keras` file."""

import json
import os

import keras
import numpy as np
import pytest

from keras_genzoo import GAN, VAE, WGANGP, AutoEncoder, DiffusionModel


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


def _conditional_gan_networks(generator_rows=10, discriminator_rows=10):
    noise = keras.Input((4,))
    label = keras.Input((), dtype="int32")
    h = keras.layers.Concatenate()(
        [noise, keras.layers.Embedding(generator_rows, 4)(label)])
    h = keras.layers.Dense(28 * 28, activation="tanh")(h)
    generator = keras.Model([noise, label],
                            keras.layers.Reshape((28, 28, 1))(h))
    images = keras.Input((28, 28, 1))
    label_d = keras.Input((), dtype="int32")
    h = keras.layers.Concatenate()([
        keras.layers.Flatten()(images),
        keras.layers.Embedding(discriminator_rows, 4)(label_d)])
    discriminator = keras.Model([images, label_d], keras.layers.Dense(1)(h))
    return generator, discriminator


@pytest.mark.parametrize("rows, name", [((9, 10), "generator"),
                                        ((10, 9), "discriminator")])
def test_a_conditional_gan_network_without_every_label_is_named(rows, name):
    """(The probe tried class 0 alone: a table of 9 rows for 10 classes
    failed the first step on TensorFlow and PyTorch, NaN on JAX.)"""
    generator, discriminator = _conditional_gan_networks(*rows)
    with pytest.raises(ValueError, match=f"this {name} failed on label 9 "
                       r"\(of `num_classes=10`\).*10 rows"):
        GAN(num_classes=10, generator=generator, discriminator=discriminator)
    # a discriminator without a batch axis gets the shape contract (the
    # label check indexed its outputs: an IndexError)
    _, discriminator = _conditional_gan_networks()
    scalar = keras.Model(discriminator.inputs, keras.layers.Lambda(
        lambda t: keras.ops.mean(t))(discriminator.outputs[0]))
    with pytest.raises(ValueError, match="returns shape \\(\\) for 2"):
        GAN(num_classes=10, discriminator=scalar)


def test_conditional_gan_with_own_networks(mnist):
    generator, discriminator = _conditional_gan_networks()
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


def test_conditional_vae_takes_user_networks(mnist, tmp_path):
    """As the VAE docstring says: networks of `[images, labels]` and
    `[z, labels]`."""
    images = keras.Input((28, 28, 1))
    label = keras.Input((), dtype="int32")
    h = keras.layers.Concatenate()([keras.layers.Flatten()(images),
                                    keras.layers.Embedding(10, 4)(label)])
    encoder = keras.Model([images, label], [keras.layers.Dense(3)(h),
                                            keras.layers.Dense(3)(h)])
    z = keras.Input((3,))
    label_z = keras.Input((), dtype="int32")
    h = keras.layers.Concatenate()([z, keras.layers.Embedding(10, 4)(label_z)])
    h = keras.layers.Dense(28 * 28, activation="sigmoid")(h)
    decoder = keras.Model([z, label_z], keras.layers.Reshape((28, 28, 1))(h))
    vae = VAE(encoder=encoder, decoder=decoder, num_classes=10, seed=0)
    assert (vae.latent_dim, vae.image_shape) == (3, (28, 28, 1))
    vae.fit(mnist[0][:64], mnist[1][:64], epochs=1, batch_size=32,
            verbose=0)
    sevens = vae.generate(2, seed=0, labels=7)
    assert not np.allclose(sevens, vae.generate(2, seed=0, labels=3))
    loaded = _round_trip(vae, tmp_path)
    np.testing.assert_array_equal(loaded.generate(2, seed=0, labels=7),
                                  sevens)


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
    # probabilities where images in [-1, 1] or logits belong; each passes
    # the probe's range check (so only the final layer can tell)
    ("generator_sigmoid", "ends in a sigmoid \\(`pixels`\\).*tanh"),
    ("generator_sigmoid_then_reshape",
     "ends in a hard_sigmoid \\(`pixels`\\).*tanh"),
    ("discriminator_sigmoid", "ends in a sigmoid.*drop that activation"),
    ("discriminator_nested_sigmoid",
     "ends in a sigmoid \\(`probability`\\).*drop that activation"),
    # a linear generator whose probe stays in [-1, 1] (taken before, and
    # its images clipped later; refused or not by the probe's draw)
    ("generator_linear_small", "ends in a linear \\(`pixels`\\).*tanh"),
    # ints carry no gradient (JAX trained on zero gradients in silence)
    ("generator_int", "this generator returns int32"),
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
        "generator_sigmoid": dict(generator=keras.Sequential([
            keras.Input((4,)),
            keras.layers.Dense(8 * 8, "sigmoid", name="pixels"),
            keras.layers.Reshape((8, 8, 1))])),
        "generator_sigmoid_then_reshape": dict(generator=keras.Sequential([
            keras.Input((4,)),
            keras.layers.Dense(4 * 4, "hard_sigmoid", name="pixels"),
            keras.layers.Reshape((4, 4, 1)),
            keras.layers.UpSampling2D()])),
        "discriminator_sigmoid": dict(discriminator=keras.Sequential([
            keras.Input((8, 8, 1)), keras.layers.Flatten(),
            keras.layers.Dense(1, activation="sigmoid")])),
        "discriminator_nested_sigmoid": dict(discriminator=keras.Sequential([
            tutorial_discriminator(),
            keras.layers.Activation("sigmoid", name="probability")])),
        "generator_linear_small": dict(generator=keras.Sequential([
            keras.Input((4,)),
            keras.layers.Dense(8 * 8, name="pixels",
                               kernel_initializer="zeros"),
            keras.layers.Reshape((8, 8, 1))])),
        "generator_int": dict(generator=keras.Sequential([
            keras.Input((4,)), keras.layers.Dense(8 * 8, "tanh"),
            keras.layers.Reshape((8, 8, 1)),
            keras.layers.Lambda(lambda t: keras.ops.cast(
                keras.ops.round(t), "int32"))])),
    }[case]
    if case == "generator_not_tanh":
        # a linear output layer whose probe values leave [-1, 1]
        kwargs["generator"].layers[-1].kernel.assign(
            np.full(kwargs["generator"].layers[-1].kernel.shape, 5.0))
    for cls in (GAN, WGANGP):
        with pytest.raises(ValueError, match=message):
            cls(**kwargs)


def test_a_wgan_gp_critic_without_batch_norm_or_dropout():
    """Refused on every backend alike, when the model is made (JAX's input
    gradient failed inside the first step; TensorFlow and PyTorch trained
    on a penalty that means something else); a plain GAN takes both."""
    def critic(*middle):
        return keras.Sequential([
            keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3), *middle,
            keras.layers.Flatten(), keras.layers.Dense(1)])

    for middle, message in (
            ((keras.layers.BatchNormalization(name="bn"),),
             "no batch normalisation.*`bn`.*LayerNormalization"),
            ((keras.layers.SpatialDropout2D(0.2, name="drop"),),
             "no dropout.*`drop` \\(SpatialDropout2D, 0.2\\)"),
            # random layers that are not Dropout's subclasses got through
            ((keras.layers.GaussianNoise(0.3, name="noise"),),
             "no dropout, noise.*`noise` \\(GaussianNoise, 0.3\\)"),
            ((keras.layers.GaussianDropout(0.3, name="gdrop"),),
             "`gdrop` \\(GaussianDropout, 0.3\\)"),
            ((keras.layers.AlphaDropout(0.3, name="adrop"),),
             "`adrop` \\(AlphaDropout, 0.3\\)"),
            ((keras.layers.RandomFlip(name="flip"),),
             "`flip` \\(RandomFlip\\).*data pipeline"),
            # inside a nested block too
            ((keras.Sequential([keras.layers.Dense(
                4), keras.layers.BatchNormalization(name="inner_bn")]),),
             "`inner_bn`")):
        with pytest.raises(ValueError, match=message):
            WGANGP(discriminator=critic(*middle))
        GAN(discriminator=critic(*middle))
    # normalisation of each image alone and a zero rate are fine
    WGANGP(discriminator=critic(keras.layers.LayerNormalization(),
                                keras.layers.Dropout(0.0),
                                keras.layers.GaussianNoise(0.0)))
    # a recurrent layer holds a seed generator at any dropout: without
    # dropout it is deterministic and taken
    recurrent = [keras.layers.Reshape((36, 4)), keras.layers.LSTM(4)]
    WGANGP(discriminator=critic(*recurrent))
    with pytest.raises(ValueError, match="no dropout.*0.2"):
        WGANGP(discriminator=critic(keras.layers.Reshape((36, 4)),
                                    keras.layers.GRU(4, dropout=0.2)))


@pytest.mark.parametrize("case, message", [
    ("one_output", "two tensors \\(z_mean, z_log_var\\)"),
    ("decoder_shape", "to images of the encoder's input shape"),
    ("decoder_range", "images in \\[0, 1\\] \\(end it with a sigmoid\\)"),
    ("decoder_relu", "in \\[0, 1\\] \\(end it with a sigmoid\\); this "
                     "decoder ends in a relu"),
    ("decoder_linear", "this decoder ends in a linear"),
    ("latent_width", "latent_dim=3, but this decoder takes inputs of "
                     "shape\\(s\\) \\[\\(None, 2\\)\\]"),
    ("only_one", "Pass both `encoder=` and `decoder=`"),
    ("image_shape_disagrees", "image_shape=\\(8, 8, 1\\)` disagrees"),
    # ints carry no gradient (JAX trained on zero gradients in silence)
    ("decoder_int", "this decoder returns int32"),
    # the message did not say that labels come second
    ("conditional_images_only", "with `num_classes=2` the encoder takes "
                                "\\[images, labels\\]"),
])
def test_vae_contract_violations_are_named(case, message):
    encoder, decoder = tutorial_vae_networks()
    if case == "one_output":
        encoder = keras.Model(encoder.inputs[0], encoder.outputs[0])
    elif case == "decoder_shape":
        decoder = keras.Sequential([keras.Input((3,)),
                                    keras.layers.Dense(4, "sigmoid")])
    elif case == "decoder_range":  # no activation to read: the probe
        decoder = keras.Sequential([
            keras.Input((3,)), keras.layers.Dense(28 * 28, "sigmoid"),
            keras.layers.Rescaling(2.0), keras.layers.Reshape((28, 28, 1))])
    elif case in ("decoder_relu", "decoder_linear"):
        # before, only the probe's values were checked: a linear decoder
        # whose first images lay in [0, 1] passed, and `generate` later
        # returned values above 1
        decoder = keras.Sequential([
            keras.Input((3,)),
            keras.layers.Dense(28 * 28, case.split("_")[1],
                               bias_initializer=keras.initializers.Constant(
                                   0.5), kernel_initializer="zeros"),
            keras.layers.Reshape((28, 28, 1))])
    elif case == "latent_width":  # before, Keras' input-spec error
        decoder = keras.Sequential([keras.Input((2,)),
                                    keras.layers.Dense(28 * 28, "sigmoid"),
                                    keras.layers.Reshape((28, 28, 1))])
    elif case == "only_one":
        decoder = None
    elif case == "decoder_int":
        decoder = keras.Sequential([
            decoder, keras.layers.Lambda(lambda t: keras.ops.cast(
                keras.ops.round(t), "int32"))])
    kwargs = {"image_shape": (8, 8, 1)} if "image_shape" in case else {}
    if case == "conditional_images_only":
        kwargs["num_classes"] = 2
    with pytest.raises(ValueError, match=message):
        VAE(encoder=encoder, decoder=decoder, **kwargs)


def _conditional_vae_networks(encoder_rows=3, decoder_rows=3,
                              decoder_labels=True):
    images = keras.Input((8, 8, 1))
    label = keras.Input((), dtype="int32")
    h = keras.layers.Concatenate()([
        keras.layers.Flatten()(images),
        keras.layers.Embedding(encoder_rows, 4)(label)])
    encoder = keras.Model([images, label], [keras.layers.Dense(2)(h),
                                            keras.layers.Dense(2)(h)])
    z = keras.Input((2,))
    label_z = keras.Input((), dtype="int32")
    h = (keras.layers.Concatenate()(
        [z, keras.layers.Embedding(decoder_rows, 4)(label_z)])
        if decoder_labels else z)
    h = keras.layers.Dense(64, activation="sigmoid")(h)
    decoder = keras.Model([z, label_z] if decoder_labels else z,
                          keras.layers.Reshape((8, 8, 1))(h))
    return encoder, decoder


def test_conditional_vae_networks_that_break_the_contract_are_named():
    """A decoder of the codes alone was taken (Keras dropped the labels
    with a warning: `generate`'s labels changed nothing); a label table
    smaller than `num_classes` failed the first step on TensorFlow and
    PyTorch and trained on NaN on JAX (the probe tried class 0 only); a
    VAE encoder returning a dict was told to return one tensor."""
    encoder, decoder = _conditional_vae_networks(decoder_labels=False)
    with pytest.raises(ValueError, match="with `num_classes=3` the decoder "
                       r"takes \[codes, labels\].*takes 1 input"):
        VAE(encoder=encoder, decoder=decoder, num_classes=3)
    _, labelled_decoder = _conditional_vae_networks()
    with pytest.raises(ValueError, match="unconditional, the decoder takes "
                       "the codes alone"):  # (was Keras' "expects 2 inputs")
        VAE(encoder=keras.Model(*_image_only_encoder()),
            decoder=labelled_decoder)
    for rows, name in (((3, 5), "encoder"), ((5, 3), "decoder")):
        encoder, decoder = _conditional_vae_networks(*rows)
        with pytest.raises(ValueError, match=f"this {name} failed on label "
                           r"4 \(of `num_classes=5`\).*num_classes=5 rows"):
            VAE(encoder=encoder, decoder=decoder, num_classes=5)
    encoder, decoder = _conditional_vae_networks(5, 5)
    VAE(encoder=encoder, decoder=decoder, num_classes=5)  # taken
    encoder, decoder = _conditional_vae_networks()
    as_dict = keras.Model(encoder.inputs, {"z_mean": encoder.outputs[0],
                                           "z_log_var": encoder.outputs[1]})
    with pytest.raises(ValueError, match="returns a dict .*return a list "
                       "of its 2 tensors"):
        VAE(encoder=as_dict, decoder=decoder, num_classes=3)


def _image_only_encoder():
    images = keras.Input((8, 8, 1))
    h = keras.layers.Flatten()(images)
    return images, [keras.layers.Dense(2)(h), keras.layers.Dense(2)(h)]


# ------------------------------------------------ the networks' own losses
@keras.saving.register_keras_serializable(package="test_own_networks")
class ConstantLoss(keras.layers.Layer):
    """Adds `value` to the losses at every call: an `add_loss` term of the
    inputs alone (no gradient), so its count is exact."""

    def __init__(self, value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.value = float(value)

    def call(self, x):
        self.add_loss(self.value + 0.0 * keras.ops.mean(
            keras.ops.cast(x, "float32")))
        return x

    def get_config(self):
        return {**super().get_config(), "value": self.value}


def _l2(weight):
    return keras.regularizers.L2(weight) if weight else None


def _penalised_networks(family, penalties, constant):
    """Tiny networks of a model family on 4x4x1 images: each calls a
    `ConstantLoss(constant)` once per call, and a Dense layer has an L2
    kernel penalty where `penalties` names its network."""
    def dense(units, network, **kwargs):
        return keras.layers.Dense(units, kernel_regularizer=_l2(
            penalties.get(network, 0.0)), name=f"{network}_dense", **kwargs)

    image = (4, 4, 1)
    if family == "gan":
        generator = keras.Sequential([
            keras.Input((3,)), ConstantLoss(constant),
            dense(16, "generator", activation="tanh"),
            keras.layers.Reshape(image)])
        discriminator = keras.Sequential([
            keras.Input(image), keras.layers.Flatten(),
            ConstantLoss(constant), dense(1, "discriminator")])
        return {"generator": generator, "discriminator": discriminator}
    conditional = family.startswith("conditional_")

    def with_label(h, inputs):
        # a conditional network's second (last) input: int labels
        if not conditional:
            return h
        label = keras.Input((), dtype="int32")
        inputs.append(label)
        # (a diffusion network's label 3 is "no label")
        classes = 4 if family.endswith("diffusion") else 3
        return keras.layers.Concatenate()(
            [h, keras.layers.Embedding(classes, 2)(label)])

    if family.endswith("diffusion"):
        noisy, t = keras.Input(image), keras.Input(())
        inputs = [noisy, t]
        h = ConstantLoss(constant)(keras.layers.Flatten()(noisy))
        h = dense(16, "network")(with_label(h, inputs))
        return {"network": keras.Model(inputs,
                                       keras.layers.Reshape(image)(h))}
    inputs = [keras.Input(image)]
    h = ConstantLoss(constant)(keras.layers.Flatten()(inputs[0]))
    h = with_label(h, inputs)
    codes = [dense(2, "encoder")(h)]
    if family.endswith("vae"):
        codes.append(keras.layers.Dense(2, name="log_var")(h))
    z = [keras.Input((2,))]
    g = with_label(ConstantLoss(constant)(z[0]), z)
    g = dense(16, "decoder", activation="sigmoid")(g)
    decoder = keras.Model(z if conditional else z[0],
                          keras.layers.Reshape(image)(g))
    encoder = keras.Model(inputs if conditional else inputs[0], codes)
    return {"encoder": encoder, "decoder": decoder}


def _twins(cls, family, penalties, constant=0.25):
    """A model of networks with their own losses, and its twin without
    them: same weights, same seed, SGD(0.1) for every network (a GAN: one
    discriminator update per step)."""
    models = []
    kwargs = {"d_steps": 1} if family == "gan" else {}
    if family.startswith("conditional_"):
        kwargs["num_classes"] = 3
    for penalty, value in ((penalties, constant), ({}, 0.0)):
        networks = _penalised_networks(family, penalty, value)
        models.append(cls(seed=3, **networks, **kwargs))
    for name in models[0].network_arguments:
        getattr(models[1], name).set_weights(
            getattr(models[0], name).get_weights())
    for model in models:
        if family == "gan":
            model.compile(d_optimizer=keras.optimizers.SGD(0.1),
                          g_optimizer=keras.optimizers.SGD(0.1))
        else:
            model.compile(optimizer=keras.optimizers.SGD(0.1))
    return models


def _kernel(model, network):
    return _n(getattr(model, network).get_layer(f"{network}_dense").kernel)


def _l2_penalty(model, network, weight):
    return weight * float(np.sum(np.square(_kernel(model, network))))


IMAGES = np.random.RandomState(0).rand(8, 4, 4, 1).astype("float32")


@pytest.mark.parametrize("cls", [GAN, WGANGP])
@pytest.mark.parametrize("penalised", ["discriminator", "generator"])
def test_each_gan_update_minimizes_its_networks_own_losses(cls, penalised):
    """`d_loss` and `g_loss` include each network's own `losses` (its
    weights' regularization penalties once, the `add_loss` terms of each of
    its calls: the discriminator's on the real and the fake batch), as
    Keras' `loss` does; and each update follows their gradient."""
    model, twin = _twins(cls, "gan", {penalised: 0.3})
    with_terms = model.test_on_batch(IMAGES, return_dict=True)
    without = twin.test_on_batch(IMAGES, return_dict=True)
    d_penalty = _l2_penalty(model, "discriminator", 0.3) * (
        penalised == "discriminator")
    g_penalty = _l2_penalty(model, "generator", 0.3) * (
        penalised == "generator")
    np.testing.assert_allclose(with_terms["d_loss"] - without["d_loss"],
                               d_penalty + 2 * 0.25, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(with_terms["g_loss"] - without["g_loss"],
                               g_penalty + 0.25, rtol=1e-4, atol=1e-5)

    # one step of SGD(0.1): the penalised kernel moves by -0.1 * 2 * 0.3 *
    # its value more than its twin's (the constant terms have no gradient)
    before = _kernel(model, penalised)
    model.train_on_batch(IMAGES)
    twin.train_on_batch(IMAGES)
    np.testing.assert_allclose(
        _kernel(model, penalised) - _kernel(twin, penalised),
        -0.1 * 2 * 0.3 * before, rtol=1e-3, atol=1e-6)
    if penalised == "generator":  # the discriminator's update is its twin's
        np.testing.assert_allclose(_kernel(model, "discriminator"),
                                   _kernel(twin, "discriminator"),
                                   rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cls, family", [
    (VAE, "vae"), (AutoEncoder, "autoencoder"),
    (DiffusionModel, "diffusion"), (VAE, "conditional_vae"),
    (DiffusionModel, "conditional_diffusion")])
def test_one_loss_models_minimize_their_networks_own_losses(cls, family):
    """A VAE's, an auto-encoder's and a diffusion model's loss include
    their networks' `losses`, and the update follows their gradient (on
    JAX too, where the diffusion model's own step once dropped `add_loss`
    terms and `ops.sum` of terms with and without a gradient failed, and
    a conditional VAE, whose networks run in `compute_loss`, dropped
    them)."""
    networks = ("network",) if family.endswith("diffusion") else (
        "encoder", "decoder")
    model, twin = _twins(cls, family, {name: 0.3 for name in networks})
    penalty = sum(_l2_penalty(model, name, 0.3) for name in networks)
    before = {name: _kernel(model, name) for name in networks}
    labels = ((np.arange(len(IMAGES)) % 3,)
              if family.startswith("conditional_") else ())
    if family.endswith("diffusion"):
        # sampling calls the EMA copy, whose terms stayed in the model's
        # `losses`: counted again (PyTorch), or a tensor of the sampling
        # graph in the next traced step (TensorFlow)
        for each in (model, twin):
            each.generate(2, seed=0, steps=1)
    with_terms = model.train_on_batch(IMAGES, *labels, return_dict=True)
    without = twin.train_on_batch(IMAGES, *labels, return_dict=True)
    np.testing.assert_allclose(with_terms["loss"] - without["loss"],
                               penalty + 0.25 * len(networks),
                               rtol=1e-4, atol=1e-5)
    for name in networks:
        np.testing.assert_allclose(
            _kernel(model, name) - _kernel(twin, name),
            -0.1 * 2 * 0.3 * before[name], rtol=1e-3, atol=1e-6)


def test_networks_of_several_outputs_are_named():
    # a list or dict where one tensor belongs was an AttributeError
    # ("'list' object has no attribute 'dtype'") from inside the model
    image = keras.Input((8, 8, 1))
    flat = keras.layers.Flatten()(image)
    two_scores = keras.Model(image, [keras.layers.Dense(1)(flat),
                                     keras.layers.Dense(1)(flat)])
    noise = keras.Input((4,))
    pixels = keras.layers.Reshape((8, 8, 1))(
        keras.layers.Dense(64, "tanh")(noise))
    two_images = keras.Model(noise, [pixels, pixels])
    for cls in (GAN, WGANGP):
        with pytest.raises(ValueError, match="returns a list of 2 outputs"):
            cls(discriminator=two_scores)
        with pytest.raises(ValueError, match="returns a list of 2 outputs"):
            cls(generator=two_images)
    encoder, decoder = tutorial_vae_networks()
    as_dict = keras.Model(encoder.inputs, {"mean": encoder.outputs[0],
                                           "log_var": encoder.outputs[1]})
    with pytest.raises(ValueError, match="returns a dict .*return a list of its 2"):
        VAE(encoder=as_dict, decoder=decoder)
    noisy, t = keras.Input((8, 8, 1)), keras.Input(())
    with pytest.raises(ValueError, match="returns a list of 2 outputs"):
        DiffusionModel(network=keras.Model([noisy, t], [noisy, noisy]))


def test_a_conditional_diffusion_network_needs_the_no_label_row():
    # Embedding(num_classes): JAX trained on NaN (its missing row),
    # TensorFlow and PyTorch raised Keras' gather error
    noisy, t, labels = (keras.Input((4, 4, 1)), keras.Input(()),
                        keras.Input((), dtype="int32"))
    h = keras.layers.Concatenate()([keras.layers.Flatten()(noisy),
                                    keras.layers.Embedding(3, 2)(labels)])
    network = keras.Model([noisy, t, labels], keras.layers.Reshape(
        (4, 4, 1))(keras.layers.Dense(16)(h)))
    with pytest.raises(ValueError, match=r"Embedding\(4, \.\.\.\)"):
        DiffusionModel(network=network, num_classes=3)


@pytest.mark.parametrize("cls", [GAN, WGANGP])
def test_a_frozen_gan_network_is_named_before_training(cls):
    # Keras 2's `discriminator.trainable = False`: never updated, in
    # silence (TensorFlow, JAX), or PyTorch's backward() error
    images = np.random.RandomState(0).rand(8, 8, 8, 1).astype("float32")
    for name in ("generator", "discriminator"):
        model = cls(latent_dim=4, generator_filters=(4,),
                    discriminator_filters=(4,), seed=0)
        model.build((None, 8, 8, 1))
        getattr(model, name).trainable = False
        with pytest.raises(ValueError, match=f"The {name} has no trainable"):
            model.fit(images, epochs=1, verbose=0)
        with pytest.raises(ValueError, match=f"The {name} has no trainable"):
            model.train_on_batch(images)
    # compiled while frozen: trains once unfrozen (the pair was built on
    # the frozen network's variables and refused them)
    model.compile()
    with pytest.raises(ValueError, match="The discriminator has no"):
        model.fit(images, epochs=1, verbose=0)
    model.discriminator.trainable = True
    before = [_n(w).copy() for w in model.discriminator.trainable_weights]
    model.fit(images, epochs=1, verbose=0)
    assert any(not np.array_equal(a, _n(b)) for a, b in zip(
        before, model.discriminator.trainable_weights))


def test_a_frozen_diffusion_network_is_named_before_training():
    # it logged a loss and changed nothing (TensorFlow, JAX), or failed
    # inside backward() (PyTorch)
    images = np.random.RandomState(0).rand(8, 8, 8, 1).astype("float32")
    noisy, t = keras.Input((8, 8, 1)), keras.Input(())
    network = keras.Model([noisy, t], keras.layers.Reshape((8, 8, 1))(
        keras.layers.Dense(64)(keras.layers.Flatten()(noisy))))
    model = DiffusionModel(network=network, seed=0)
    network.trainable = False
    with pytest.raises(ValueError, match="The network has no trainable"):
        model.fit(images, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="The network has no trainable"):
        model.train_on_batch(images)
    network.layers[-2].trainable = False  # a part frozen: trains the rest
    network.trainable = True
    model.fit(images, epochs=1, verbose=0)


def test_a_diffusion_network_whose_config_rebuilds_another_is_named():
    # the averaged copy is made from the network's config: one that forgets
    # an argument made a copy of other weights, refused by `set_weights`;
    # copied variable by variable, it was accepted (and sampled another
    # network)
    @keras.saving.register_keras_serializable("test_own_networks")
    class Forgetful(keras.Model):
        def __init__(self, extra=False, **kwargs):
            super().__init__(**kwargs)
            self.extra = extra
            self.flat = keras.layers.Flatten()
            self.first = keras.layers.Dense(64)
            self.second = keras.layers.Dense(64) if extra else None
            self.shape_back = keras.layers.Reshape((8, 8, 1))

        def call(self, inputs):
            x = self.flat(inputs[0])
            y = self.first(x)
            if self.second is not None:
                y = y + self.second(x)
            return self.shape_back(y)

        def get_config(self):
            return {"name": self.name}  # forgets `extra`

    network = Forgetful(extra=True)
    network([np.zeros((2, 8, 8, 1), "float32"), np.zeros((2,), "float32")])
    with pytest.raises(ValueError, match="which has 2 weights where the "
                       "network has 4"):
        DiffusionModel(network=network, image_shape=(8, 8, 1), seed=0)


@pytest.mark.parametrize("listed", [False, True])
@pytest.mark.parametrize("cls", [GAN, WGANGP, DiffusionModel])
def test_a_subclass_adds_a_metric_of_its_own(cls, listed):
    # The GANs and the diffusion model listed their own trackers alone as
    # `metrics`: a metric a subclass added was missing from fit's and
    # evaluate's logs on every backend, unless it listed it itself
    # (`super().metrics + [metric]`: `listed`, counted once). A `Sum` of 1
    # per image (the logs are weighted by the batch's size) also shows its
    # state carried from step to step (JAX's stateless step) and reset each
    # epoch.
    class Counted(cls):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.images = keras.metrics.Sum(name="images")

        @property
        def metrics(self):
            return super().metrics + ([self.images] if listed else [])

        def record_step(self, logs, batch_size=None):
            return super().record_step({**logs, "images": 1.0}, batch_size)

    images = np.random.RandomState(0).rand(24, 8, 8, 1).astype("float32")
    settings = (dict(widths=(4,)) if cls is DiffusionModel else dict(
        latent_dim=2, generator_filters=(4,), discriminator_filters=(4,)))
    model = Counted(seed=0, **settings)
    history = model.fit(images, epochs=2, batch_size=8, verbose=0).history
    assert history["images"] == [24.0, 24.0]
    logs = model.evaluate(images, batch_size=8, verbose=0, return_dict=True)
    assert logs["images"] == 24.0
    assert [m.name for m in model.metrics][-1] == "images"


@pytest.mark.parametrize("cls", [GAN, WGANGP])
def test_a_spectrally_normalized_discriminator_trains(mnist, cls):
    # Keras' SpectralNormalization writes its kernel at every training
    # call: on PyTorch the second call of a step (fake after real; the
    # gradient penalty's) failed the first step ("modified by an inplace
    # operation"). TensorFlow and JAX trained it.
    layers = keras.layers
    critic = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.SpectralNormalization(layers.Conv2D(4, 3, strides=4)),
        layers.LeakyReLU(0.2), layers.Flatten(),
        layers.SpectralNormalization(layers.Dense(1))])
    gan = cls(discriminator=critic, generator_filters=(4,), latent_dim=4,
              seed=0, **({"d_steps": 2} if cls is WGANGP else {}))
    kernels = [w for w in critic.trainable_weights if "kernel" in w.path]
    before = [_n(w).copy() for w in kernels]
    history = gan.fit(mnist[0][:64], epochs=1, batch_size=32, verbose=0)
    assert np.isfinite(history.history["d_loss"]).all()
    assert len(kernels) == 2 and all(
        not np.array_equal(a, _n(b)) for a, b in zip(before, kernels))
    # one call scores each image as a call of its own would
    real, fake = mnist[0][:3].astype("float32") / 127.5 - 1, \
        gan.generate_tensor(np.zeros((2, 4), "float32"))
    scored = gan.score_real_and_fake(real, fake, training=False)
    np.testing.assert_allclose(
        np.concatenate([_n(scored[0]), _n(scored[1])]),
        np.concatenate([_n(gan.discriminate(real)), _n(gan.discriminate(fake))]),
        rtol=1e-5, atol=1e-6)
