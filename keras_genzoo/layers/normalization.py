"""Normalisation layers: batch normalisation with the global batch's
statistics when training data parallel, on every backend; group
normalisation in one op where the backend has one."""

import keras
from keras import ops

from keras_genzoo import backend as zoo_backend


@keras.saving.register_keras_serializable(package="keras_genzoo")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that normalises with the statistics
    of the global batch under data parallelism.

    Under `tf.distribute`, Keras' layer normalises each replica's share of
    the batch with that share's own mean and variance unless
    `synchronized=True`, an argument only TensorFlow accepts (a network or a
    `.keras` file holding it does not load on JAX or PyTorch). This layer
    synchronises on TensorFlow and saves no `synchronized` flag, so the same
    network trains on every backend and its file loads on each. On JAX,
    `keras.distribution.DataParallel` compiles one program over the global
    batch: the statistics are the global batch's already. On one device it
    is Keras' layer.

    It keeps Keras' class name so that a `.keras` file written with Keras'
    `BatchNormalization` in its place (every zoo GAN saved before this layer
    existed) loads its statistics into it: Keras files name a layer's
    weights after its class.

    Args:
        axis: the axis of the features (Keras' default, -1: the channels
            of channels-last images).
        **kwargs: the other `keras.layers.BatchNormalization` arguments
            (`momentum`, `epsilon`, `name`...); `synchronized` is ignored.

    Examples:
        >>> import numpy as np
        >>> layer = BatchNormalization(name="bn")
        >>> tuple(layer(np.ones((4, 3), "float32")).shape)
        (4, 3)
        >>> "synchronized" in layer.get_config()
        False
    """

    def __init__(self, axis=-1, **kwargs):
        kwargs.pop("synchronized", None)
        super().__init__(
            axis=axis, synchronized=keras.backend.backend() == "tensorflow",
            **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("synchronized", None)
        return config


@keras.saving.register_keras_serializable(package="keras_genzoo")
class GroupNormalization(keras.layers.GroupNormalization):
    """`keras.layers.GroupNormalization`, in one op where the backend has
    one.

    On PyTorch, Keras' layer runs about a dozen ops per call (reshapes,
    moments, rsqrt, broadcasts), each with Keras' Python around it, where
    `torch.nn.functional.group_norm` is one: this layer calls the backend
    module's `keras_genzoo.backend.group_normalization` when it has one and
    the groups are over the last axis (the channels of channels-last
    images), and is Keras' layer otherwise (TensorFlow and JAX, other
    axes). The outputs and gradients are Keras' up to float rounding (a
    test checks both on every backend); mixed precision computes in
    float32, as Keras' layer does. Measured on a 2-core CPU, PyTorch:
    forward and backward of 128 14x14x64 maps 46.8 ms -> 9.9 ms (one
    thread); a `DiffusionModel()` training step at batch 128 (15 such
    layers in its U-Net) 2,677 ms -> 2,028 ms (see the Performance page).

    It keeps Keras' class name, like `BatchNormalization` here, so weights
    saved from Keras' layer load into it.

    Args:
        groups: number of groups the channels are split into (Keras'
            default, 32); divides the number of channels.
        **kwargs: the other `keras.layers.GroupNormalization` arguments
            (`axis`, `epsilon`, `center`, `scale`, initializers, ...).

    Examples:
        >>> import keras
        >>> import numpy as np
        >>> layer = GroupNormalization(groups=2)
        >>> y = layer(np.arange(16, dtype="float32").reshape(1, 2, 2, 4))
        >>> tuple(y.shape)
        (1, 2, 2, 4)
        >>> pixel = keras.ops.convert_to_numpy(y)[0, 0, 0]
        >>> [round(float(v), 4) for v in pixel]
        [-1.4444, -1.2222, -1.4444, -1.2222]
    """

    def __init__(self, groups=32, **kwargs):
        # Keras' own arguments, as they are (griffe documents this
        # signature)
        super().__init__(groups=groups, **kwargs)

    def _fused(self, inputs):
        return (zoo_backend.group_normalization is not None
                and self.axis in (-1, len(inputs.shape) - 1))

    def call(self, inputs):
        if not self._fused(inputs):
            return super().call(inputs)
        gamma = None if self.gamma is None else ops.convert_to_tensor(
            self.gamma)
        beta = None if self.beta is None else ops.convert_to_tensor(
            self.beta)
        outputs = zoo_backend.group_normalization(
            inputs, self.groups, gamma, beta, self.epsilon)
        return ops.cast(outputs, self.compute_dtype)
