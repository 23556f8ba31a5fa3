"""Batch normalisation with the global batch's statistics when training
data parallel, on every backend."""

import keras


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
        **kwargs: `keras.layers.BatchNormalization` arguments (`momentum`,
            `epsilon`, `name`...); `synchronized` is ignored.

    Examples:
        >>> import numpy as np
        >>> layer = BatchNormalization(name="bn")
        >>> tuple(layer(np.ones((4, 3), "float32")).shape)
        (4, 3)
        >>> "synchronized" in layer.get_config()
        False
    """

    def __init__(self, **kwargs):
        kwargs.pop("synchronized", None)
        super().__init__(
            synchronized=keras.backend.backend() == "tensorflow", **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("synchronized", None)
        return config
