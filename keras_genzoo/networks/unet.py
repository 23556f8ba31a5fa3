"""A small U-Net for diffusion models (Ho et al., 2020; Nichol & Dhariwal, 2021).

`noisy images, noise level t (, class label) -> a tensor shaped like the
images` (what a `DiffusionModel` predicts: v or the noise). Residual blocks
with GroupNorm and swish take the sinusoidal embedding of `t` (plus a
learned embedding of the label) as a per-channel shift; each level but the
last halves the size; skips join the mirrored levels; self-attention at the
lowest resolution is optional. Any height and width work: the input is
padded to a multiple of `2 ** (levels - 1)` and the output cropped back.
"""

import itertools

import keras
import numpy as np
from keras import layers

from keras_genzoo.layers.embeddings import SinusoidalEmbedding
from keras_genzoo.layers.normalization import GroupNormalization
from keras_genzoo._inputs import layer_seed
from keras_genzoo import _inputs
from keras_genzoo.networks.conv import check_filters, check_network_arguments


def _groups(channels, groups=8):
    """The largest group count <= `groups` that divides `channels`."""
    for g in range(min(groups, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


def _residual_block(x, embedding, channels, dropout, name, seed=None):
    """GroupNorm-swish-conv twice, the embedding added in between (after
    the second GroupNorm: before it, a group of one channel, as in levels
    of 8 channels or fewer, would subtract the per-channel shift out again
    and leave the network blind to the noise level and the label)."""
    skip = x
    if x.shape[-1] != channels:
        skip = layers.Conv2D(channels, 1, name=f"{name}_skip")(x)
    h = GroupNormalization(groups=_groups(x.shape[-1]),
                           name=f"{name}_norm1")(x)
    h = layers.Activation("swish", name=f"{name}_act1")(h)
    h = layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv1")(h)
    h = GroupNormalization(groups=_groups(channels), name=f"{name}_norm2")(h)
    shift = layers.Dense(channels, name=f"{name}_embedding")(embedding)
    shift = layers.Reshape((1, 1, channels), name=f"{name}_shift")(shift)
    h = layers.Add(name=f"{name}_add_embedding")([h, shift])
    h = layers.Activation("swish", name=f"{name}_act2")(h)
    if dropout:
        h = layers.Dropout(dropout, seed=seed, name=f"{name}_dropout")(h)
    h = layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv2")(h)
    return layers.Add(name=f"{name}_out")([skip, h])


def _attention_block(x, heads, name):
    """Pre-norm self-attention over the pixels of a feature map."""
    height, width, channels = x.shape[1:]
    h = GroupNormalization(groups=_groups(channels), name=f"{name}_norm")(x)
    h = layers.Reshape((height * width, channels), name=f"{name}_tokens")(h)
    h = layers.MultiHeadAttention(heads, max(channels // heads, 1),
                                  name=f"{name}_attention")(h, h)
    h = layers.Reshape((height, width, channels), name=f"{name}_pixels")(h)
    return layers.Add(name=f"{name}_out")([x, h])


def unet(image_shape, widths=(32, 64), blocks_per_level=1, attention=False,
         num_classes=None, dropout=0.0, attention_heads=4, name="unet",
         seed=None):
    """Builds a U-Net that maps noisy images and their noise level to a
    tensor shaped like the images.

    Args:
        image_shape: `(height, width, channels)` of the images.
        widths: channels of each level, from full resolution down; each
            level after the first halves the height and width.
        blocks_per_level: residual blocks per level on the way down (one
            more on the way up, which also takes the skips).
        attention: whether to add self-attention at the lowest resolution.
        num_classes: number of classes of a conditional network, whose third
            input is an int label in `0..num_classes`, where `num_classes`
            itself means "no label" (classifier-free guidance); `None` for
            an unconditional network.
        dropout: dropout rate inside the residual blocks.
        attention_heads: heads of the attention block.
        name: name of the returned model.
        seed: integer seed of the dropout masks (each block's is made from
            `seed` and its index); `None` draws one from NumPy's global generator
            (`keras.utils.set_random_seed` fixes it). Seeded dropout
            continues exactly after a checkpoint on every backend: Keras'
            unseeded `Dropout` on PyTorch draws from torch's global
            generator, which no checkpoint holds.

    Returns:
        A functional `keras.Model` with inputs `[images (batch, H, W, C),
        t (batch,)]` (plus `labels (batch,)` when conditional) and an output
        of shape `(batch, H, W, C)` (float32 under any policy).

    Examples:
        >>> net = unet((28, 28, 1), widths=(8, 16))
        >>> [tuple(i.shape) for i in net.inputs], tuple(net.output.shape)
        ([(None, 28, 28, 1), (None,)], (None, 28, 28, 1))
    """
    widths = check_filters(widths)
    blocks_per_level = int(blocks_per_level)
    if blocks_per_level < 1:
        raise ValueError(
            f"`blocks_per_level` must be at least 1; got {blocks_per_level}.")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1); got {dropout}.")
    (height, width, channels), num_classes, _ = check_network_arguments(
        image_shape, num_classes)
    if attention:
        # (0 was a ZeroDivisionError)
        attention_heads = _inputs.check_count(attention_heads,
                                              "attention_heads")
    if dropout and seed is None:
        seed = int(np.random.randint(0, 2**30))
    # one per residual block
    seeds = (layer_seed(seed or 0, i) for i in itertools.count())
    levels = len(widths)
    multiple = 2 ** (levels - 1)
    pad_h, pad_w = (-height) % multiple, (-width) % multiple

    images = keras.Input((height, width, channels), name="noisy_images")
    t = keras.Input((), name="noise_level")
    inputs = [images, t]
    embedding_dim = 4 * widths[0]
    # (an even size: an odd first width failed at the first `fit`,
    # "`dim` must be a positive even number")
    embedding = SinusoidalEmbedding(widths[0] + widths[0] % 2,
                                    name="time_sinusoids")(t)
    embedding = layers.Dense(embedding_dim, activation="swish",
                             name="time_dense1")(embedding)
    embedding = layers.Dense(embedding_dim, name="time_dense2")(embedding)
    if num_classes:
        label = keras.Input((), dtype="int32", name="label")
        inputs.append(label)
        # index num_classes is the "no label" of classifier-free guidance
        embedded = layers.Embedding(int(num_classes) + 1, embedding_dim,
                                    name="label_embedding")(label)
        embedding = layers.Add(name="time_and_label")([embedding, embedded])
    embedding = layers.Activation("swish", name="embedding_act")(embedding)

    x = images
    if pad_h or pad_w:
        x = layers.ZeroPadding2D(((0, pad_h), (0, pad_w)), name="pad")(x)
    x = layers.Conv2D(widths[0], 3, padding="same", name="stem")(x)
    skips = [x]
    for level, w in enumerate(widths):
        for block in range(blocks_per_level):
            x = _residual_block(x, embedding, w, dropout,
                                f"down{level}_{block}", next(seeds))
            skips.append(x)
        if level < levels - 1:
            x = layers.Conv2D(w, 3, strides=2, padding="same",
                              name=f"down{level}_downsample")(x)
            skips.append(x)
    x = _residual_block(x, embedding, widths[-1], dropout, "middle_0",
                        next(seeds))
    if attention:
        x = _attention_block(x, attention_heads, "middle_attention")
        x = _residual_block(x, embedding, widths[-1], dropout, "middle_1",
                            next(seeds))
    for level in reversed(range(levels)):
        w = widths[level]
        for block in range(blocks_per_level + 1):
            x = layers.Concatenate(name=f"up{level}_{block}_concat")(
                [x, skips.pop()])
            x = _residual_block(x, embedding, w, dropout,
                                f"up{level}_{block}", next(seeds))
        if level > 0:
            x = layers.UpSampling2D(2, name=f"up{level}_upsample")(x)
            x = layers.Conv2D(widths[level - 1], 3, padding="same",
                              name=f"up{level}_upsample_conv")(x)
    x = GroupNormalization(groups=_groups(widths[0]), name="out_norm")(x)
    x = layers.Activation("swish", name="out_act")(x)
    # zero-initialised: the untrained network predicts 0 everywhere
    x = layers.Conv2D(channels, 3, padding="same", kernel_initializer="zeros",
                      dtype="float32", name="prediction")(x)
    if pad_h or pad_w:
        # float32 too (under the global mixed policy it cast v to float16)
        x = layers.Cropping2D(((0, pad_h), (0, pad_w)), dtype="float32",
                              name="crop")(x)
    return keras.Model(inputs, x, name=name)
