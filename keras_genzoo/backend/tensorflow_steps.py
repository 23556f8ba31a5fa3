"""Adversarial training step and input gradients for TensorFlow."""

import tensorflow as tf

from keras_genzoo.backend.common import alternating_updates


def input_gradients(fn, x):
    """Gradient of `sum(fn(x))` with respect to `x`, differentiable again.

    Args:
        fn: a function of one tensor (e.g. a critic applied to images).
        x: the input tensor.

    Returns:
        A tensor shaped like `x`, usable inside an outer `GradientTape`.
    """
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return tape.gradient(y, x)


def _update(optimizer, loss_fn, variables):
    with tf.GradientTape() as tape:
        loss, logs = loss_fn()
        scaled = optimizer.scale_loss(loss)
    grads = tape.gradient(scaled, variables)
    optimizer.apply(grads, variables)
    return logs


def adversarial_train_step(model, data):
    """One step: `model.d_steps` discriminator updates, one generator update.

    Args:
        model: a zoo adversarial model (see `keras_genzoo.models.gan.GAN`).
        data: one batch as the dataset yields it.

    Returns:
        The logs: the results of `model.metrics`.
    """
    return model.record_step(alternating_updates(model, data, _update))


def compile_inference(model, fn, state_variables=()):
    """Compiles `fn(*tensors)` (e.g. a sampling loop) once, with XLA.

    Args:
        model: the model whose variables `fn` reads.
        fn: a function of tensors using `keras.ops`.
        state_variables: other variables `fn` reads and writes (sampler
            seeds); TensorFlow updates them in place.

    Returns:
        A callable with the signature of `fn`.
    """
    del model, state_variables  # tf.function captures variables itself
    return tf.function(fn, jit_compile=True, reduce_retracing=True)
