"""Adversarial training step and input gradients for TensorFlow."""

import tensorflow as tf


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
    real, labels = model.unpack_batch(data)
    d_vars = model.discriminator.trainable_variables
    g_vars = model.generator.trainable_variables
    logs = {}
    for _ in range(model.d_steps):
        logs.update(_update(
            model.d_optimizer,
            lambda: model.discriminator_objective(real, labels), d_vars))
    logs.update(_update(
        model.g_optimizer,
        lambda: model.generator_objective(tf.shape(real)[0], labels), g_vars))
    return model.record_step(logs)
