"""Training steps compiled on PyTorch (`jit_compile=True`): Keras' seeded
draws through the zoo's custom ops, `backward()` traced, one graph per
step, and the same training as eager."""

import keras
import numpy as np
import pytest

from keras_genzoo import GAN, VAE, WGANGP
from keras_genzoo import backend

TORCH = keras.backend.backend() == "torch"
torch_only = pytest.mark.skipif(not TORCH,
                                reason="torch.compile is PyTorch's")


def _n(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _eager_and_compiled(make, input_shape):
    """Two models from `make`, with the same weights: one compiled as
    usual (eager on PyTorch), one with `jit_compile=True`."""
    eager, compiled = make(), make()
    for model in (eager, compiled):
        model.build(input_shape)
    compiled.set_weights(eager.get_weights())
    eager.compile()
    compiled.compile(jit_compile=True)
    return eager, compiled


def _compiled_step(model):
    """The zoo's compiled PyTorch step behind `model.train_function`."""
    return model.train_function._genzoo_step


def _assert_same_variables(eager, compiled):
    """Every variable: weights, batch-norm statistics, optimizer moments and
    the seed generators' states."""
    assert len(compiled.variables) == len(eager.variables)
    for theirs, ours in zip(eager.variables, compiled.variables):
        np.testing.assert_allclose(_n(ours), _n(theirs), rtol=1e-4,
                                   atol=1e-5, err_msg=theirs.path)


def test_step_functions_are_wrapped_only_when_compiled_on_pytorch():
    gan = GAN(latent_dim=4, generator_filters=(8, 4),
              discriminator_filters=(4, 8), seed=0)
    images = np.zeros((4, 28, 28, 1), "uint8")
    gan.train_on_batch(images)  # eager on every backend by default
    assert not getattr(gan.train_function, "_genzoo_traceable", False)

    def step(data):
        return data

    assert backend.wrap_step_function(gan, step) is step
    assert backend.wrap_step_function(gan, None) is None
    if TORCH:
        import torch

        compiled = torch.compile(step)
        wrapped = backend.wrap_step_function(gan, compiled)
        assert wrapped is not compiled and wrapped._genzoo_traceable
        assert backend.wrap_step_function(gan, wrapped) is wrapped


def _draws(seed):
    x = keras.ops.ones((3, 5))
    return [
        keras.random.normal((3, 4), mean=0.5, stddev=2.0, seed=seed),
        keras.random.uniform((6,), -1.0, 2.0, seed=seed),
        keras.random.uniform((), seed=seed),
        keras.random.randint((7,), 0, 10, seed=seed),
        keras.random.truncated_normal((2, 3), seed=seed),
        keras.random.dropout(x, 0.5, seed=seed),
        keras.random.dropout(x, 0.5, noise_shape=(3, 1), seed=seed),
    ]


@torch_only
@pytest.mark.parametrize("seed", ["generator", 7])
def test_traceable_draws_are_keras_draws(seed):
    """The same numbers as Keras' own draws, eagerly and compiled as one
    graph, and the seed generator advances the same way."""
    import torch

    from keras.src.backend.torch import random as keras_random
    from keras_genzoo.backend import torch_steps

    def make_seed():
        return keras.random.SeedGenerator(3) if seed == "generator" else 7

    theirs_seed = make_seed()
    theirs = [_n(d) for d in _draws(theirs_seed)]
    own = keras_random.normal
    ours_seed = make_seed()
    with torch_steps.traceable_steps():
        assert keras_random.normal is not own
        ours = [_n(d) for d in _draws(ours_seed)]
    assert keras_random.normal is own  # restored
    compiled_seed = make_seed()
    with torch_steps.traceable_steps():
        compiled = torch.compile(_draws, fullgraph=True)(compiled_seed)
    compiled = [_n(d) for d in compiled]
    for theirs_one, ours_one, compiled_one in zip(theirs, ours, compiled):
        np.testing.assert_array_equal(ours_one, theirs_one)
        np.testing.assert_array_equal(compiled_one, theirs_one)
    if seed == "generator":
        np.testing.assert_array_equal(_n(ours_seed.state),
                                      _n(theirs_seed.state))
        np.testing.assert_array_equal(_n(compiled_seed.state),
                                      _n(theirs_seed.state))
        with torch_steps.traceable_steps():  # the next draw is another
            first = _n(keras.random.normal((4,), seed=ours_seed))
            second = _n(keras.random.normal((4,), seed=ours_seed))
        assert not np.array_equal(first, second)


@torch_only
def test_traceable_binary_crossentropy_is_keras_one():
    import torch

    from keras_genzoo.backend import torch_steps

    def loss(target, logits):
        return (keras.ops.binary_crossentropy(target, logits,
                                              from_logits=True),
                keras.ops.binary_crossentropy(
                    target, keras.ops.sigmoid(logits)))

    target = keras.ops.convert_to_tensor([[1.0], [0.0], [1.0]])
    logits = keras.ops.convert_to_tensor([[2.0], [-1.0], [-3.0]])
    theirs = loss(target, logits)
    with torch_steps.traceable_steps():
        compiled = torch.compile(loss, fullgraph=True)(target, logits)
    for theirs_one, compiled_one in zip(theirs, compiled):
        np.testing.assert_allclose(_n(compiled_one), _n(theirs_one),
                                   rtol=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        with torch_steps.traceable_steps():
            keras.ops.binary_crossentropy(target, logits[:, 0])


def _dynamo_traces_requires_grad():
    """Whether this PyTorch's dynamo traces `Tensor.requires_grad_()` (the
    WGAN-GP's input gradients) into a graph: 2.13 does, 2.11 does not."""
    import torch

    from keras_genzoo.backend import torch_steps

    def input_gradient(x):
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad((leaf * leaf).sum(), leaf)
        return grad

    try:
        with torch_steps.traceable_steps():
            torch.compile(input_gradient, backend="eager", fullgraph=True)(
                torch.ones(2))
    except torch._dynamo.exc.Unsupported:
        return False
    return True


ADVERSARIAL = {
    "dcgan": lambda: GAN(latent_dim=4, generator_filters=(8, 4),
                         discriminator_filters=(4, 8), seed=0),
    "wgan_gp": lambda: WGANGP(latent_dim=4, generator_filters=(4,),
                              discriminator_filters=(4,), d_steps=2,
                              seed=0),
}


@torch_only
@pytest.mark.parametrize("family", sorted(ADVERSARIAL))
def test_a_compiled_adversarial_update_is_one_graph_and_trains_as_eager(
        mnist, family):
    """`jit_compile=True`: a DCGAN's update (seeded noise, batch
    normalisation, seeded dropout, two `backward()` calls, two optimizers),
    and a WGAN-GP's (its gradient penalty's gradient of the critic inside
    the step), is one graph without a break, and two updates (from NumPy
    batches) leave the same weights, seed states and logs as eager ones.
    Where dynamo cannot trace `requires_grad_()` (PyTorch 2.11), the
    WGAN-GP's step breaks there and is compiled as Keras compiles it: it
    still trains as eager."""
    import torch

    eager, compiled = _eager_and_compiled(ADVERSARIAL[family],
                                          (None, 28, 28, 1))
    counters = torch._dynamo.utils.counters
    counters.clear()
    images = mnist[0][:8]
    for batch in (images[:4], images[4:]):
        eager_logs = eager.train_on_batch(batch, return_dict=True)
        compiled_logs = compiled.train_on_batch(batch, return_dict=True)
    if family == "dcgan" or _dynamo_traces_requires_grad():
        assert not counters["graph_break"], list(counters["graph_break"])
        # one graph, compiled once more at the second update (Keras'
        # first-call flags); with Keras' draws the DCGAN's was dozens, up
        # to dynamo's recompile limit, and three per update with a break at
        # each `backward()`
        assert 1 <= counters["stats"]["unique_graphs"] <= 2
    else:
        reasons = {reason.splitlines()[0]
                   for reason in counters["graph_break"]}
        assert "Unsupported Tensor.requires_grad_() call" in reasons, reasons
        assert not _compiled_step(compiled)._filtered
    for key in eager_logs:
        np.testing.assert_allclose(compiled_logs[key], eager_logs[key],
                                   rtol=1e-4, atol=1e-5)
    if family == "wgan_gp":
        assert compiled_logs["gradient_penalty"] > 0
    _assert_same_variables(eager, compiled)
    assert any("seed" in v.path for v in compiled.variables)


@torch_only
def test_keras_own_compiled_step_is_one_graph_and_trains_as_eager():
    """Keras' own step (the VAE's: a seeded sample of the latent code,
    binary cross-entropy, `zero_grad()`, `backward()`, the optimizer),
    compiled with `jit_compile=True`: one graph without a break, the same
    variables as eager updates, and a Keras model compiled afterwards in
    the same process still compiles (PyTorch 2.13 wrote the VAE's `.grad`
    source onto dynamo's interned `None`, and the VAE's own compile and
    every later one failed)."""
    import torch
    from torch._dynamo.variables import constant

    def vae():
        return VAE(latent_dim=4, filters=(4, 8), image_shape=(8, 8, 1),
                   seed=0)

    eager, compiled = _eager_and_compiled(vae, (None, 8, 8, 1))
    images = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 1), "uint8")
    counters = torch._dynamo.utils.counters
    counters.clear()
    for batch in (images[:4], images[4:]):
        eager.train_on_batch(batch)
        compiled.train_on_batch(batch)
    assert not counters["graph_break"], list(counters["graph_break"])
    assert 1 <= counters["stats"]["unique_graphs"] <= 2
    _assert_same_variables(eager, compiled)
    assert constant.CONSTANT_VARIABLE_NONE.source is None
    assert not torch._dynamo.config.trace_autograd_ops
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    plain.compile("sgd", "mse", jit_compile=True)
    history = plain.fit(np.ones((4, 3)), np.zeros((4, 1)), epochs=2,
                        batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@torch_only
def test_a_compiled_step_keeps_regularization_and_add_loss_terms():
    """A VAE of your own networks, one with a kernel regularizer and an
    `add_loss` term: compiled, its loss and its updates are eager's. Under
    PyTorch 2.11's dynamo Keras' `model.losses` was always `[]` in a
    compiled step (it took an empty `TrackedList` as true), so the terms
    were lost and the VAE's `ops.sum(self.losses)` failed."""

    class Penalized(keras.layers.Layer):
        def call(self, x):
            self.add_loss(0.1 * keras.ops.sum(keras.ops.square(x)))
            return x

    def vae():
        inputs = keras.Input((8, 8, 1))
        h = keras.layers.Flatten()(inputs)
        h = keras.layers.Dense(
            8, kernel_regularizer=keras.regularizers.L2(5.0))(h)
        h = Penalized()(h)
        encoder = keras.Model(inputs, [keras.layers.Dense(2)(h),
                                       keras.layers.Dense(2)(h)])
        decoder = keras.Sequential([
            keras.Input((2,)), keras.layers.Dense(64, "sigmoid"),
            keras.layers.Reshape((8, 8, 1))])
        return VAE(encoder=encoder, decoder=decoder, seed=0)

    eager, compiled = _eager_and_compiled(vae, (None, 8, 8, 1))
    images = np.random.default_rng(1).integers(0, 256, (8, 8, 8, 1), "uint8")
    for batch in (images[:4], images[4:]):
        theirs = eager.train_on_batch(batch, return_dict=True)
        ours = compiled.train_on_batch(batch, return_dict=True)
        # the terms are most of the loss here
        assert theirs["loss"] > 1.5 * theirs["reconstruction_loss"], theirs
        np.testing.assert_allclose(ours["loss"], theirs["loss"], rtol=1e-4)
    _assert_same_variables(eager, compiled)


@torch_only
def test_another_keras_keeps_its_own_draws_with_a_warning(monkeypatch):
    """Where Keras' PyTorch internals are not the ones the replacements were
    written for, compiled steps keep Keras' draws (and their graph breaks)
    and say so once."""
    from keras.src.backend.torch import random as keras_random
    from keras_genzoo.backend import torch_steps

    def missing():
        raise AttributeError("no _get_concrete_noise_shape")

    monkeypatch.setattr(torch_steps, "_traceable_keras", missing)
    context = torch_steps._TraceableSteps()
    own = keras_random.normal
    with pytest.warns(UserWarning, match="could not make Keras' seeded"):
        with context:
            assert keras_random.normal is own
    with context:  # no second warning, nothing replaced
        assert keras_random.normal is own


@torch_only
def test_the_replacements_check_leaves_the_names_of_your_layers_alone():
    """The check of the replacements before their first use (it builds a
    small Keras model) takes none of the automatic layer names: a model
    made afterwards is named as it would be without it."""
    from keras_genzoo.backend import torch_steps

    uids = [keras.backend.get_uid(prefix)
            for prefix in ("dense", "sequential", "input_layer")]
    with torch_steps._TraceableSteps():  # makes and checks them anew
        pass
    assert [keras.backend.get_uid(prefix) for prefix in (
        "dense", "sequential", "input_layer")] == [uid + 1 for uid in uids]


@torch_only
def test_the_losses_check_tells_a_list_without_the_terms():
    """`Layer.losses` is replaced only by a property that lists what Keras'
    lists: one that misses the regularization or the `add_loss` term is
    refused."""
    from keras.src.layers.layer import Layer

    from keras_genzoo.backend import torch_steps

    own = Layer.losses
    torch_steps._check_same_losses(own, own)
    for wrong in (lambda self: [],
                  lambda self: self._get_regularization_losses(),
                  lambda self: own.fget(self)[:1]):
        with pytest.raises(RuntimeError, match="losses differ"):
            torch_steps._check_same_losses(own, property(wrong))


@torch_only
def test_replacements_that_draw_other_numbers_are_not_used(monkeypatch):
    """The replacements are checked against Keras' own functions before
    they are used: a Keras that seeds its generator another way keeps its
    own draws."""
    from keras.src.backend.torch import random as keras_random
    from keras_genzoo.backend import torch_steps

    def other_generator(seed):
        generator = torch_generator(device=seed.device)
        generator.manual_seed(int(seed[0] + seed[1]) + 1)
        return generator

    import torch

    torch_generator = torch.Generator
    monkeypatch.setattr(torch_steps, "_generator", other_generator)
    own = keras_random.normal
    with pytest.warns(UserWarning, match="normal differs from Keras' own"):
        with torch_steps._TraceableSteps():
            assert keras_random.normal is own


@torch_only
def test_dynamo_traces_backward_only_inside_and_clears_a_stale_source(
        monkeypatch):
    """Inside the context dynamo traces `backward()` and reads `.grad`
    without touching its interned constants; outside, PyTorch's own
    settings are back. A source that another compile wrote onto the
    interned `None` is cleared on entry. Where the settings cannot be
    made, steps still run, with a warning."""
    import torch
    from torch._dynamo import config
    from torch._dynamo.source import LocalSource
    from torch._dynamo.variables import constant
    from torch._dynamo.variables import tensor

    from keras_genzoo.backend import torch_steps

    # PyTorch 2.11 reads `.grad` without a `method_attr_grad` (None here)
    own_read = getattr(tensor.TensorVariable, "method_attr_grad", None)
    own_requires_grad = tensor.TensorVariable.method_attr_requires_grad
    monkeypatch.setattr(constant.CONSTANT_VARIABLE_NONE, "source",
                        LocalSource("stale"))
    context = torch_steps._TraceableSteps()
    with context:
        assert config.trace_autograd_ops
        assert (tensor.TensorVariable.method_attr_requires_grad
                is not own_requires_grad)
        if own_read is not None:
            assert tensor.TensorVariable.method_attr_grad is not own_read
        assert constant.CONSTANT_VARIABLE_NONE.source is None
        with context:  # re-entrant
            assert config.trace_autograd_ops
        assert config.trace_autograd_ops
    assert not config.trace_autograd_ops
    assert getattr(tensor.TensorVariable, "method_attr_grad", None) is own_read
    assert (tensor.TensorVariable.method_attr_requires_grad
            is own_requires_grad)

    def unavailable():
        raise AttributeError("no TensorVariable")

    monkeypatch.setattr(torch_steps, "_dynamo_traced_backward", unavailable)
    context = torch_steps._TraceableSteps()
    with pytest.warns(UserWarning, match="trace `backward\\(\\)`"):
        with context:
            assert not config.trace_autograd_ops
            step = torch.compile(lambda x: (x * 2).sum(), backend="eager")
            assert float(step(torch.ones(3))) == 6.0


@torch_only
def test_a_traced_backward_leaves_dynamo_interned_constants_alone():
    """What Keras' own step does, `.grad` set to `None` and then
    `backward()`, traced in the context: the gradient is right and no
    source is left on dynamo's interned `None`, `True` or `False` (PyTorch
    2.13 wrote `L['weight'].grad` onto its `None`)."""
    import torch
    from torch._dynamo.variables import constant

    from keras_genzoo.backend import torch_steps

    weight = torch.nn.Parameter(torch.tensor([1.0, 2.0]))

    def step(x):
        weight.grad = None
        (weight * x).sum().backward()
        return weight.grad * 1.0

    counters = torch._dynamo.utils.counters
    counters.clear()
    with torch_steps.traceable_steps():
        grad = torch.compile(step, backend="eager", fullgraph=True)(
            torch.tensor([3.0, 4.0]))
    np.testing.assert_allclose(_n(grad), [3.0, 4.0])
    assert counters["stats"]["unique_graphs"] == 1
    interned = [getattr(constant, name, None) for name in (
        "CONSTANT_VARIABLE_NONE", "CONSTANT_VARIABLE_TRUE",
        "CONSTANT_VARIABLE_FALSE")]  # PyTorch 2.11 interns `None` only
    assert interned[0] is not None
    for variable in interned:
        assert variable is None or variable.source is None, variable.source
