"""DCGAN generator and discriminator builders (Radford et al., 2016).

Generator: `Dense -> Reshape -> (Conv2DTranspose + BatchNorm + ReLU) x n ->
Conv2D + tanh`, producing images in [-1, 1]. Discriminator: `(strided Conv2D +
LeakyReLU + Dropout) x n -> Flatten -> Dense(1)`, producing one logit per
image. Both take an optional class label (an integer) for conditional GANs:
the generator embeds it next to the noise, the discriminator as an extra
image channel. Any height and width work: the generator crops to size.
"""

import numpy as np

import keras
from keras import layers

from keras_genzoo._inputs import layer_seed
from keras_genzoo.layers.convolution import Conv2DTranspose
from keras_genzoo.layers.normalization import BatchNormalization
from keras_genzoo.networks.conv import (
    check_filters,
    check_network_arguments,
    downsampled_size,
)


def dcgan_generator(image_shape, latent_dim, filters=(128, 64),
                    num_classes=None, kernel_size=4, name="generator"):
    """Builds a DCGAN generator.

    Args:
        image_shape: `(height, width, channels)` of the images to produce.
        latent_dim: size of the input noise vector.
        filters: filters of each `Conv2DTranspose` (each doubles the spatial
            size), from the smallest feature map to the largest.
        num_classes: number of classes for a conditional generator, whose
            second input is an integer label; `None` for an unconditional one.
        kernel_size: kernel size of the transposed convolutions.
        name: name of the returned model.

    Returns:
        A functional `keras.Model` mapping noise `(batch, latent_dim)` (and
        labels `(batch,)` when conditional) to images in [-1, 1] (float32).

    Examples:
        >>> g = dcgan_generator((28, 28, 1), latent_dim=16, filters=(32, 16))
        >>> tuple(g.output.shape)
        (None, 28, 28, 1)
    """
    filters = check_filters(filters)
    (height, width, channels), num_classes, latent_dim = \
        check_network_arguments(image_shape, num_classes, latent_dim)
    base_h, base_w = downsampled_size((height, width), len(filters))
    noise = keras.Input(shape=(latent_dim,), name="noise")
    inputs = [noise]
    x = noise
    if num_classes:
        label = keras.Input(shape=(), dtype="int32", name="label")
        inputs.append(label)
        embedded = layers.Embedding(int(num_classes), int(latent_dim),
                                    name="label_embedding")(label)
        x = layers.Concatenate(name="noise_and_label")([noise, embedded])
    x = layers.Dense(base_h * base_w * filters[0] * 2, use_bias=False,
                     name="project")(x)
    # the global batch's statistics under tf.distribute too (the same
    # training as on one device); a plain BatchNormalization elsewhere
    x = BatchNormalization(name="project_bn")(x)
    x = layers.ReLU(name="project_relu")(x)
    x = layers.Reshape((base_h, base_w, filters[0] * 2), name="reshape")(x)
    for i, f in enumerate(filters):
        x = Conv2DTranspose(f, kernel_size, strides=2, padding="same",
                            use_bias=False, name=f"deconv_{i}")(x)
        x = BatchNormalization(name=f"bn_{i}")(x)
        x = layers.ReLU(name=f"relu_{i}")(x)
    x = layers.Conv2D(channels, 3, padding="same", activation="tanh",
                      dtype="float32", name="pixels")(x)
    extra_h = base_h * 2 ** len(filters) - height
    extra_w = base_w * 2 ** len(filters) - width
    if extra_h or extra_w:
        # (float32, as the docstring says: under a mixed policy the crop
        # took the compute dtype)
        x = layers.Cropping2D(((0, extra_h), (0, extra_w)), dtype="float32",
                              name="crop")(x)
    return keras.Model(inputs if num_classes else noise, x, name=name)


def dcgan_discriminator(image_shape, filters=(64, 128), num_classes=None,
                        dropout=0.3, negative_slope=0.2, kernel_size=4,
                        name="discriminator", seed=None):
    """Builds a DCGAN discriminator (or, with a linear output, a critic).

    Args:
        image_shape: `(height, width, channels)` of the input images, whose
            pixels are in [-1, 1].
        filters: filters of each strided `Conv2D` (each halves the size).
        num_classes: number of classes for a conditional discriminator,
            whose second input is an integer label; `None` otherwise.
        dropout: dropout rate after each convolution (0 for none).
        negative_slope: slope of the LeakyReLU for negative inputs.
        kernel_size: kernel size of the convolutions.
        name: name of the returned model.
        seed: integer seed of the dropout masks; `None` draws one from
            NumPy's global generator (`keras.utils.set_random_seed` fixes
            it). Seeded dropout continues exactly after a checkpoint on
            every backend: Keras' unseeded `Dropout` on PyTorch draws from
            torch's global generator, which no checkpoint holds.

    Returns:
        A functional `keras.Model` mapping images (and labels when
        conditional) to one float32 logit per image, shape `(batch, 1)`.

    Examples:
        >>> d = dcgan_discriminator((28, 28, 1), filters=(8, 16))
        >>> tuple(d.output.shape)
        (None, 1)
    """
    filters = check_filters(filters)
    (height, width, channels), num_classes, _ = check_network_arguments(
        image_shape, num_classes)
    if seed is None:
        seed = int(np.random.randint(0, 2**30))
    images = keras.Input(shape=(height, width, channels), name="images")
    inputs = [images]
    x = images
    if num_classes:
        label = keras.Input(shape=(), dtype="int32", name="label")
        inputs.append(label)
        plane = layers.Embedding(int(num_classes), height * width,
                                 name="label_embedding")(label)
        plane = layers.Reshape((height, width, 1), name="label_plane")(plane)
        x = layers.Concatenate(name="image_and_label")([images, plane])
    for i, f in enumerate(filters):
        x = layers.Conv2D(f, kernel_size, strides=2, padding="same",
                          name=f"conv_{i}")(x)
        x = layers.LeakyReLU(negative_slope, name=f"leaky_relu_{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, seed=layer_seed(seed, i),
                               name=f"dropout_{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    logits = layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.Model(inputs if num_classes else images, logits, name=name)
