"""Sinusoidal embeddings of a scalar per sample (a diffusion noise level)."""

import math

import keras
from keras import ops

from keras_genzoo import _inputs


@keras.saving.register_keras_serializable(package="keras_genzoo")
class SinusoidalEmbedding(keras.layers.Layer):
    """Embeds one scalar per sample as sines and cosines of many frequencies.

    The Transformer's position encoding (Vaswani et al., 2017) applied to a
    continuous value, as in DDPM (Ho et al., 2020): `t` is multiplied by
    `scale` and mapped to `[sin(t * f_0), ..., cos(t * f_0), ...]` with
    frequencies `f_i` spaced geometrically from 1 down to `1 / max_period`.
    No weights; the network learns what to do with it (a `Dense` after it).

    Args:
        dim: size of the embedding (a positive even integer).
        scale: what `t` is multiplied by first (1000 for `t` in [0, 1], the
            range of DDPM's discrete steps).
        max_period: the longest period.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`).

    Call arguments:
        t: one value per sample, `(batch,)` or `(batch, 1)`. The sines and
            cosines are computed in float32 (float64 for a float64 layer)
            and returned in the layer's compute dtype.

    Examples:
        >>> import numpy as np
        >>> embed = SinusoidalEmbedding(8)
        >>> tuple(embed(np.array([0.0, 0.5, 1.0], "float32")).shape)
        (3, 8)
    """

    def __init__(self, dim, scale=1000.0, max_period=10000.0, **kwargs):
        super().__init__(**kwargs)
        try:
            size = _inputs.check_count(dim, "dim")
        except ValueError:
            size = None
        if size is None or size % 2:
            raise ValueError(f"`dim` must be a positive even number; got {dim}.")
        self.dim = size
        self.scale = float(scale)
        self.max_period = float(max_period)

    @staticmethod
    def _check_shape(shape):
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] in (1, None))):
            raise ValueError(
                "`SinusoidalEmbedding` embeds one value per sample: its input "
                f"must be `(batch,)` or `(batch, 1)`; got shape {tuple(shape)}.")

    def call(self, t):
        self._check_shape(t.shape)
        dtype = "float64" if self.compute_dtype == "float64" else "float32"
        half = self.dim // 2
        exponents = ops.arange(half, dtype=dtype) / float(half)
        frequencies = ops.exp(-math.log(self.max_period) * exponents)
        t = ops.reshape(ops.cast(t, dtype), (-1, 1)) * self.scale
        angles = t * ops.expand_dims(frequencies, 0)
        embedding = ops.concatenate([ops.sin(angles), ops.cos(angles)], -1)
        return ops.cast(embedding, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        self._check_shape(input_shape)
        return (input_shape[0], self.dim)

    def get_config(self):
        config = super().get_config()
        config.update({"dim": self.dim, "scale": self.scale,
                       "max_period": self.max_period})
        return config
