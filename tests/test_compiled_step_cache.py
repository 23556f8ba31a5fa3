"""Compiled PyTorch steps, one per model: each traced once without
dynamo's guards on its layers, kept apart from same-size models, traced
again when a layer is frozen, falling back as Keras compiles on a hard
error, and freed with its model. (Split from test_compiled_steps.py so
that `make test`'s two workers share the compiling.)"""

import os
import sys

import keras
import numpy as np
import pytest

from keras_genzoo import GAN, VAE
from keras_genzoo import backend

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_compiled_steps import (  # noqa: E402
    ADVERSARIAL,
    _assert_same_variables,
    _compiled_step,
    _eager_and_compiled,
    _n,
    torch_only,
)


def _code_of(step):
    """The code object `step` compiles (a copy of Keras' own)."""
    compiled = step._compiled._torchdynamo_orig_callable
    return getattr(compiled, "__func__", compiled).__code__


class _Branchy(keras.layers.Layer):
    """Its input, after a Python `if` on a tensor: a graph break in any
    compiled step."""

    def call(self, x):
        if keras.ops.any(keras.ops.isnan(x)):
            return keras.ops.zeros_like(x)
        return x


def _gan_with_a_graph_break(label_smoothing):
    generator = keras.Sequential([
        keras.Input((4,)), keras.layers.Dense(28 * 28, activation="tanh"),
        keras.layers.Reshape((28, 28, 1))])
    discriminator = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Flatten(), _Branchy(),
        keras.layers.Dense(1)])
    return GAN(generator=generator, discriminator=discriminator,
               label_smoothing=label_smoothing, seed=0)


def _small_vae():
    return VAE(latent_dim=4, filters=(4, 8), image_shape=(8, 8, 1), seed=0)


def _small_gan(label_smoothing):
    return GAN(latent_dim=4, generator_filters=(8, 4),
               discriminator_filters=(4, 8), label_smoothing=label_smoothing,
               seed=0)


@torch_only
@pytest.mark.parametrize("graph_break", [False, True])
def test_same_size_models_keep_their_own_compiled_steps(mnist, graph_break):
    """Two GANs of the same size that differ only in a Python number
    (`label_smoothing`), compiled in one process: each trains as its eager
    twin. A step is traced once per model, without dynamo's guards on the
    layers, from a code copy of its own. A step with a graph break (here a
    user network's Python `if` on a tensor; also `mixed_float16`'s loss
    scale `cond`) is compiled again with all of dynamo's guards: with the
    filter there, dynamo would compile Keras' shared inner functions
    without guards on the model, and the second GAN could run the first
    one's graph. Each model's compiled versions are dropped with it."""
    import gc
    import weakref

    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    from keras_genzoo.backend import torch_steps

    make = _gan_with_a_graph_break if graph_break else _small_gan
    pairs = [_eager_and_compiled(lambda smoothing=smoothing: make(smoothing),
                                 (None, 28, 28, 1))
             for smoothing in (0.0, 0.3)]
    images = mnist[0][:8]
    for batch in (images[:4], images[4:]):
        for eager, compiled in pairs:
            eager_logs = eager.train_on_batch(batch, return_dict=True)
            compiled_logs = compiled.train_on_batch(batch, return_dict=True)
            for key in eager_logs:
                np.testing.assert_allclose(compiled_logs[key],
                                           eager_logs[key], rtol=1e-4,
                                           atol=1e-5)
    for eager, compiled in pairs:
        _assert_same_variables(eager, compiled)
    steps = [_compiled_step(compiled) for _, compiled in pairs]
    # PyTorch 2.11 compiles every step as Keras does (see
    # `_guard_filter_frees_models`); they must still be freed
    filtered = not graph_break and torch_steps._guard_filter_frees_models()
    assert [step._filtered for step in steps] == [filtered] * 2
    codes = [_code_of(step) for step in steps]
    assert codes[0] is not codes[1]
    if filtered:  # one graph each, in its own code's cache
        assert [len(_debug_get_cache_entry_list(c)) for c in codes] == [1, 1]
    alive = weakref.ref(pairs[0][1])
    del pairs, steps, eager, compiled
    gc.collect()
    assert alive() is None
    assert not _debug_get_cache_entry_list(codes[0])


@torch_only
def test_a_frozen_layer_traces_the_compiled_step_again(mnist):
    """Dynamo no longer guards the layers' attributes: a layer frozen
    between two steps (without `compile()`) changes which variables the
    model trains, and the step is traced again, as eagerly."""
    import torch

    from keras_genzoo.backend import torch_steps

    if not torch_steps._guard_filter_frees_models():
        pytest.skip("this PyTorch compiles steps with all of dynamo's guards")

    eager, compiled = _eager_and_compiled(ADVERSARIAL["dcgan"],
                                          (None, 28, 28, 1))
    images = mnist[0][:12]
    eager.train_on_batch(images[:4])
    compiled.train_on_batch(images[:4])
    for model in (eager, compiled):
        model.generator.layers[1].trainable = False
    frozen = [_n(v) for v in compiled.generator.layers[1].weights]
    counters = torch._dynamo.utils.counters
    counters.clear()
    for batch in (images[4:8], images[8:]):
        eager.train_on_batch(batch)
        compiled.train_on_batch(batch)
    assert counters["stats"]["unique_graphs"] == 1
    for before, variable in zip(frozen, compiled.generator.layers[1].weights):
        np.testing.assert_array_equal(_n(variable), before)
    _assert_same_variables(eager, compiled)


@torch_only
def test_an_error_in_a_step_keeps_it_and_a_hard_limit_falls_back(mnist):
    """An exception while dynamo traces the step reaches the caller as
    itself (dynamo reports it as `Unsupported`), and the step stays as the
    zoo compiles it. Dynamo's recompile limit, a hard error under
    `fullgraph=True`, compiles the step as Keras does, which trains on."""
    import torch

    from keras_genzoo.backend import torch_steps

    if not torch_steps._guard_filter_frees_models():
        pytest.skip("this PyTorch compiles steps with all of dynamo's guards")

    eager, compiled = _eager_and_compiled(_small_vae, (None, 8, 8, 1))
    for model in (eager, compiled):  # the same draws before the error
        model.make_train_function()
        with pytest.raises(ValueError):  # the encoder's input shape
            model.train_function(
                [keras.ops.zeros((4, 14, 14, 1), dtype="uint8")])
    assert _compiled_step(compiled)._filtered
    images = mnist[0][:8, 10:18, 10:18]
    # the same images as floats in [0, 1]: a new dtype, a recompile
    with torch._dynamo.config.patch(recompile_limit=1):
        for batch in (images[:4], images[4:].astype("float32") / 255.0):
            eager_logs = eager.train_on_batch(batch, return_dict=True)
            compiled_logs = compiled.train_on_batch(batch, return_dict=True)
    assert not _compiled_step(compiled)._filtered
    for key in eager_logs:
        np.testing.assert_allclose(compiled_logs[key], eager_logs[key],
                                   rtol=1e-4, atol=1e-5)
    _assert_same_variables(eager, compiled)


@torch_only
def test_a_replaced_compiled_step_drops_its_compiled_versions():
    """`compile()` again makes Keras' step anew: the zoo's compiled
    version of the one it replaces is dropped then, not with the model."""
    import torch
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])

    def one_step_on_data(data):
        return model(data[0])

    codes = []
    for _ in range(2):
        step = backend.wrap_step_function(model,
                                          torch.compile(one_step_on_data))
        np.testing.assert_allclose(
            _n(step([keras.ops.ones((4, 3))])),
            _n(model(keras.ops.ones((4, 3)))), rtol=1e-6)
        codes.append(_code_of(step._genzoo_step))
    assert [len(_debug_get_cache_entry_list(c)) for c in codes] == [0, 1]
