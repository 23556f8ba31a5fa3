"""Adversarial training step and input gradients for PyTorch."""

import torch

from keras_genzoo.backend.common import alternating_updates


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
    logs = alternating_updates(
        model, data,
        lambda optimizer, objective, variables: _update(
            model, optimizer, objective, variables),
    )
    model.zero_grad()
    with torch.no_grad():
        return model.record_step(logs)


def compile_inference(model, fn, state_variables=()):
    """Runs `fn(*tensors)` (e.g. a sampling loop) eagerly without autograd.

    Args:
        model: the model whose variables `fn` reads.
        fn: a function of tensors using `keras.ops`.
        state_variables: other variables `fn` reads and writes (sampler
            seeds); PyTorch updates them in place.

    Returns:
        A callable with the signature of `fn`.
    """
    del model, state_variables

    def run(*args):
        with torch.no_grad():
            return fn(*args)

    return run
