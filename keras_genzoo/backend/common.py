"""The order of updates in an adversarial step, shared by every backend."""

from keras import ops


def alternating_updates(model, data, update):
    """`model.d_steps` discriminator updates, then one generator update.

    Args:
        model: a zoo adversarial model (see `keras_genzoo.models.gan.GAN`).
        data: one batch as the dataset yields it.
        update: the backend's `update(optimizer, objective, variables)`: it
            evaluates `objective()` (which returns `(loss, logs)`), takes the
            gradients of the loss with respect to `variables`, applies them
            with `optimizer` and returns the logs.

    Returns:
        The merged logs of the updates (the last discriminator update's).
    """
    real, labels = model.unpack_batch(data)
    logs = {}
    for _ in range(model.d_steps):
        logs.update(update(
            model.d_optimizer,
            lambda: model.discriminator_objective(real, labels),
            model.discriminator.trainable_variables,
        ))
    batch_size = ops.shape(real)[0]
    logs.update(update(
        model.g_optimizer,
        lambda: model.generator_objective(batch_size, labels),
        model.generator.trainable_variables,
    ))
    return logs
