"""Adversarial training step and input gradients for PyTorch."""

import torch


def input_gradients(fn, x):
    """Gradient of `sum(fn(x))` with respect to `x`, differentiable again.

    Args:
        fn: a function of one tensor (e.g. a critic applied to images).
        x: the input tensor (detached from any graph here).

    Returns:
        A tensor shaped like `x`, part of the autograd graph
        (`create_graph=True`), so a penalty on it trains the critic.
    """
    x = x.detach().requires_grad_(True)
    y = fn(x)
    (grads,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    return grads


def _update(model, optimizer, loss_fn, variables):
    # Without zero_grad the generator's backward pass leaves gradients in the
    # discriminator (and vice versa) that the next update would add in.
    model.zero_grad()
    loss, logs = loss_fn()
    optimizer.scale_loss(loss).backward()
    grads = [v.value.grad for v in variables]
    with torch.no_grad():
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
            model, model.d_optimizer,
            lambda: model.discriminator_objective(real, labels), d_vars))
    logs.update(_update(
        model, model.g_optimizer,
        lambda: model.generator_objective(real.shape[0], labels), g_vars))
    model.zero_grad()
    with torch.no_grad():
        return model.record_step(logs)
