"""The reparameterisation-trick sampling layer of a VAE."""

import keras
from keras import ops

from keras_genzoo import _inputs
from keras_genzoo import backend as zoo_backend
from keras_genzoo.layers.seed_state import SeedStateSaving


@keras.saving.register_keras_serializable(package="keras_genzoo")
class Sampling(SeedStateSaving, keras.layers.Layer):
    """Draws `z = mean + exp(log_var / 2) * eps` with `eps ~ N(0, I)`.

    The noise comes from a `keras.random.SeedGenerator`, so the layer is
    reproducible with a seed and runs inside compiled training steps on
    TensorFlow, JAX and PyTorch alike (the generator's state is a layer
    variable that every backend carries through the step).

    Args:
        seed: optional integer seed of the noise.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`).

    Examples:
        >>> import numpy as np
        >>> sampling = Sampling(seed=0)
        >>> z = sampling([np.zeros((4, 2), "float32"), np.zeros((4, 2), "float32")])
        >>> tuple(z.shape)
        (4, 2)
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(
            _inputs.generator_seed(seed))

    def call(self, inputs):
        z_mean, z_log_var = inputs
        # under tf.distribute: this replica's share of the global batch's
        eps = zoo_backend.draw_for_replica(
            lambda shape: keras.random.normal(
                shape, dtype=z_mean.dtype, seed=self.seed_generator),
            ops.shape(z_mean))
        return z_mean + ops.exp(0.5 * z_log_var) * eps

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update({"seed": self.seed})
        return config
