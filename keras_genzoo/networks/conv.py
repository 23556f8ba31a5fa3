"""Convolutional encoder and decoder builders (no losses, no training logic).

The encoder halves the spatial size once per entry of `filters` with strided
`Conv2D`s; the decoder mirrors it with strided `Conv2DTranspose`s and crops
back to the exact input size, so any height and width work (28x28, 32x32,
8x8, 30x30, ...).
"""

import math

import keras
from keras import layers

from keras_genzoo import _inputs
from keras_genzoo.layers.convolution import Conv2DTranspose


def check_filters(filters, name="filters"):
    """Validates a `filters` argument (or another list of sizes, `name`)
    and returns it as a tuple of ints (`filters=32` was a `TypeError`,
    `2.5` was cut to 2)."""
    try:
        values = tuple(_inputs.check_count(f, name) for f in filters)
    except (TypeError, ValueError):
        values = ()
    if not values:
        raise ValueError(
            f"`{name}` must be a non-empty list of positive integers, e.g. "
            f"(32, 64); got {filters!r}."
        )
    return values


def check_network_arguments(image_shape, num_classes=None, latent_dim=None):
    """The builders' common arguments checked: `(height, width, channels)`,
    `num_classes` (`None` or >= 1) and `latent_dim` (`None` or >= 1) as
    ints, or one `ValueError` (a 2-D shape was "not enough values to
    unpack", `(None, None, 1)` a `TypeError`, `num_classes=0` meant
    unconditional without a word)."""
    try:
        shape = tuple(image_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3:
        raise ValueError(
            "`image_shape` must be (height, width, channels), e.g. "
            f"(28, 28, 1); got {image_shape!r}.")
    shape = tuple(_inputs.check_count(d, "image_shape's sizes")
                  for d in shape)
    if num_classes is not None:
        num_classes = _inputs.check_count(num_classes, "num_classes")
    if latent_dim is not None:
        latent_dim = _inputs.check_count(latent_dim, "latent_dim")
    return shape, num_classes, latent_dim


def downsampled_size(image_shape, num_levels):
    """Spatial size after `num_levels` stride-2 'same' convolutions."""
    height, width = image_shape[0], image_shape[1]
    for _ in range(num_levels):
        height, width = math.ceil(height / 2), math.ceil(width / 2)
    return height, width


def _join_label(x, inputs, num_classes, name):
    """For a conditional network (`num_classes` set): a `label` input whose
    16-wide embedding is joined to `x`. Returns `(x, model_inputs)`."""
    if not num_classes:
        return x, inputs
    label = keras.Input(shape=(), dtype="int32", name="label")
    embedded = layers.Embedding(int(num_classes), 16,
                                name="label_embedding")(label)
    return layers.Concatenate(name=name)([x, embedded]), [inputs, label]


def conv_encoder(image_shape, output_sizes, filters=(32, 64),
                 num_classes=None, name="encoder"):
    """Builds a convolutional encoder.

    Images go through one `Conv2D(f, 3, strides=2, activation="relu")` per
    entry of `filters`, are flattened, pass a `Dense` layer of width
    `4 * output_sizes[0]` (at least 16) and end in one linear `Dense` head per
    entry of `output_sizes`.

    Args:
        image_shape: `(height, width, channels)` of the input images.
        output_sizes: sizes of the linear output heads, e.g. `(16,)` for an
            auto-encoder code or `(16, 16)` for a VAE's mean and log-variance.
        filters: number of filters of each strided convolution.
        num_classes: number of classes of a conditional encoder, whose
            second input is an int label `(batch,)`; a learned embedding of
            it joins the flattened features. `None`: images only.
        name: name of the returned model.

    Returns:
        A functional `keras.Model` mapping images in [0, 1] (and labels) to
        one tensor per head (a single tensor when there is one head).

    Examples:
        >>> encoder = conv_encoder((28, 28, 1), output_sizes=(8, 8), filters=(8,))
        >>> [tuple(t.shape) for t in encoder.outputs]
        [(None, 8), (None, 8)]
    """
    filters = check_filters(filters)
    image_shape, num_classes, _ = check_network_arguments(image_shape,
                                                          num_classes)
    output_sizes = check_filters(output_sizes, "output_sizes")
    inputs = keras.Input(shape=image_shape, name="images")
    x = inputs
    for i, f in enumerate(filters):
        x = layers.Conv2D(
            f, 3, strides=2, padding="same", activation="relu",
            name=f"conv_{i}",
        )(x)
    x = layers.Flatten(name="flatten")(x)
    x, model_inputs = _join_label(x, inputs, num_classes,
                                  "features_and_label")
    x = layers.Dense(
        max(16, 4 * int(output_sizes[0])), activation="relu", name="hidden"
    )(x)
    outputs = [
        layers.Dense(int(size), name=f"head_{i}")(x)
        for i, size in enumerate(output_sizes)
    ]
    if len(outputs) == 1:
        outputs = outputs[0]
    return keras.Model(model_inputs, outputs, name=name)


def conv_decoder(image_shape, latent_dim, filters=(32, 64), num_classes=None,
                 name="decoder"):
    """Builds a convolutional decoder that mirrors `conv_encoder`.

    A `Dense` layer maps the code to a small feature map, one
    `Conv2DTranspose(f, 3, strides=2, activation="relu")` per entry of
    `reversed(filters)` doubles its size, a final `Conv2D` with a sigmoid
    gives pixel values in [0, 1], and a `Cropping2D` trims any excess so the
    output has exactly `image_shape`.

    Args:
        image_shape: `(height, width, channels)` of the images to produce.
        latent_dim: size of the input code.
        filters: the encoder's filters; the decoder uses them in reverse.
        num_classes: number of classes of a conditional decoder, whose
            second input is an int label `(batch,)`; a learned embedding of
            it joins the code. `None`: codes only.
        name: name of the returned model.

    Returns:
        A functional `keras.Model` mapping codes to images in [0, 1] (the
        output is float32 even under a mixed-precision policy).

    Examples:
        >>> decoder = conv_decoder((28, 28, 1), latent_dim=8, filters=(8,))
        >>> tuple(decoder.output.shape)
        (None, 28, 28, 1)
    """
    filters = check_filters(filters)
    (height, width, channels), num_classes, latent_dim = \
        check_network_arguments(image_shape, num_classes, latent_dim)
    base_h, base_w = downsampled_size((height, width), len(filters))
    inputs = keras.Input(shape=(latent_dim,), name="latent")
    x = inputs
    x, model_inputs = _join_label(x, inputs, num_classes, "code_and_label")
    x = layers.Dense(base_h * base_w * filters[-1], activation="relu",
                     name="project")(x)
    x = layers.Reshape((base_h, base_w, filters[-1]), name="reshape")(x)
    for i, f in enumerate(reversed(filters)):
        x = Conv2DTranspose(
            f, 3, strides=2, padding="same", activation="relu",
            name=f"deconv_{i}",
        )(x)
    x = layers.Conv2D(
        channels, 3, padding="same", activation="sigmoid", dtype="float32",
        name="pixels",
    )(x)
    extra_h = base_h * 2 ** len(filters) - height
    extra_w = base_w * 2 ** len(filters) - width
    if extra_h or extra_w:
        # (float32: under a mixed policy the crop took the compute dtype,
        # and the probabilities came out bfloat16 or float16)
        x = layers.Cropping2D(
            ((0, extra_h), (0, extra_w)), dtype="float32", name="crop"
        )(x)
    return keras.Model(model_inputs, x, name=name)
