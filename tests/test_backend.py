"""The backend layer on its own: a custom step written once, backend-free,
with `StepOps` (minimize, read, assign, run) and `ema_update`, and input
gradients."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_genzoo import backend
from keras_genzoo.models import GenerativeModel


class EMARegression(GenerativeModel):
    """Linear regression trained by a custom schedule, with an EMA copy of
    its weights updated after each step (what a diffusion model needs)."""

    def __init__(self, decay=0.5, **kwargs):
        super().__init__(**kwargs)
        self.decay = decay
        self.dense = keras.layers.Dense(1, kernel_initializer="zeros")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.noise_tracker = keras.metrics.Mean(name="noise")

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.averages = [
            self.add_weight(shape=v.shape, initializer="zeros",
                            trainable=False, name=f"ema_{i}")
            for i, v in enumerate(self.dense.trainable_variables)
        ]

    def call(self, x):
        return self.dense(x)

    @property
    def metrics(self):
        return [self.loss_tracker, self.noise_tracker]

    def train_schedule(self, data, step):
        x, y = data[0], data[1]

        def objective():
            loss = ops.mean(ops.square(self.dense(x) - y))
            return loss, {"loss": loss}

        logs = step.minimize(self.optimizer, objective,
                             self.dense.trainable_variables)
        backend.ema_update(step, self.averages,
                           self.dense.trainable_variables, self.decay)
        # `run` keeps the state a function changes (the seed here)
        logs["noise"] = step.run(lambda: ops.mean(keras.random.normal(
            (4,), seed=self.seed_generator)))
        return logs

    def train_step(self, *args):
        return backend.custom_train_step(self, self.train_schedule, *args)

    def test_schedule(self, data, step):
        return {"loss": step.run(
            lambda: ops.mean(ops.square(self.dense(data[0]) - data[1])))}

    def test_step(self, *args):
        return backend.custom_test_step(self, self.test_schedule, *args)


def test_custom_schedule_minimizes_keeps_an_ema_and_state():
    x = np.random.RandomState(0).randn(64, 3).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32") + 3.0
    model = EMARegression(decay=0.5, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    seeds = []
    losses = []
    for _ in range(3):
        history = model.fit(x, y, batch_size=64, epochs=10, verbose=0)
        losses += history.history["loss"]
        seeds.append(np.asarray(ops.convert_to_numpy(
            model.seed_generator.state)).copy())
    assert losses[-1] < 0.05 * losses[0]
    assert int(ops.convert_to_numpy(model.optimizer.iterations)) == 30
    # the seed advanced inside the compiled step on every backend
    assert not np.array_equal(seeds[0], seeds[1])
    # the EMA followed the weights: decay 0.5 converges within a few steps
    for average, variable in zip(model.averages,
                                 model.dense.trainable_variables):
        np.testing.assert_allclose(ops.convert_to_numpy(average),
                                   ops.convert_to_numpy(variable), atol=0.05)
        assert np.abs(ops.convert_to_numpy(average)).sum() > 0.5
    logs = model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(losses[-1], rel=0.5, abs=0.05)
    assert int(ops.convert_to_numpy(model.optimizer.iterations)) == 30


class _ReadInObjective(GenerativeModel):
    """A penalty on a kernel read through `step.read` inside the
    objective, and the optimizer's updates read in the schedule."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(1, kernel_initializer="ones")
        self.updates = keras.Variable(0, dtype="int32", trainable=False)

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, x):
        return self.dense(x)

    def train_step(self, *args):
        return backend.custom_train_step(self, self.schedule, *args)

    def schedule(self, data, step):
        x = data[0]

        def objective():
            kernel = step.read([self.dense.kernel])[0]
            loss = ops.mean(ops.square(self.dense(x))) + ops.sum(
                ops.square(kernel))
            return loss, {"loss": loss}

        logs = step.minimize(self.optimizer, objective,
                             self.dense.trainable_variables)
        updates, _ = step.optimizer_steps(self.optimizer)
        step.assign([self.updates], [ops.cast(updates, "int32")])
        return logs


@pytest.mark.parametrize("every", [None, 2])
def test_read_is_a_constant_and_optimizer_steps_count_updates(every):
    # `read` inside an objective: TensorFlow differentiated it, JAX and
    # PyTorch did not; `iterations` under gradient accumulation failed to
    # be read on every backend
    x = np.ones((4, 1), "float32")
    model = _ReadInObjective(seed=0)
    model.compile(optimizer=keras.optimizers.SGD(
        0.1, gradient_accumulation_steps=every))
    model.fit(x, x, epochs=1, batch_size=4, steps_per_epoch=1, verbose=0)
    if every is None:
        # d/dk mean((k x + b)^2) = 2 (k + b) x = 2: k = 1 - 0.1 * 2
        kernel = ops.convert_to_numpy(model.dense.kernel)
        np.testing.assert_allclose(kernel, [[0.8]], rtol=1e-6)
    model.fit(np.ones((12, 1), "float32"), np.ones((12, 1), "float32"),
              epochs=1, batch_size=4, verbose=0)
    # read after the step's update: 4 updates (2 of 4 micro-steps)
    assert int(ops.convert_to_numpy(model.updates)) == (4 if every is None
                                                        else 2)


def test_ema_update_arithmetic():
    class Direct(backend.StepOps):
        def read(self, variables):
            return [v.value for v in variables]

        def assign(self, variables, values):
            for v, value in zip(variables, values):
                v.assign(value)

    average = keras.Variable(np.zeros(2, "float32"))
    value = keras.Variable(np.array([1.0, 2.0], "float32"))
    backend.ema_update(Direct(), [average], [value], decay=0.75)
    np.testing.assert_allclose(ops.convert_to_numpy(average), [0.25, 0.5])
    with pytest.raises(ValueError, match="2 averages for 1 variables"):
        backend.ema_update(Direct(), [average, average], [value], 0.5)


def test_input_gradients_of_a_quadratic():
    x = ops.convert_to_tensor(np.array([[1.0, -2.0], [3.0, 0.5]], "float32"))
    grads = backend.input_gradients(lambda t: ops.sum(t * t, axis=1), x)
    np.testing.assert_allclose(ops.convert_to_numpy(grads),
                               2 * ops.convert_to_numpy(x), rtol=1e-6)


def test_backend_module_is_the_configured_one():
    assert backend.BACKEND == keras.backend.backend()
    for name in ("custom_train_step", "custom_test_step", "input_gradients",
                 "compile_inference", "ema_update", "StepOps"):
        assert hasattr(backend, name)


def test_prepare_variables_keeps_values_and_trains_a_batch_of_one():
    """`prepare_variables` changes no shape or value (only, on PyTorch, the
    memory layout of one-channel conv kernels), and a one-channel conv
    then trains on a batch of one on every backend."""
    keras.utils.set_random_seed(0)
    network = keras.Sequential([
        keras.Input((6, 6, 3)),
        keras.layers.Conv2D(4, 3, padding="same"),
        keras.layers.Conv2D(1, 3, padding="same"),
    ])
    network.compile(optimizer="sgd", loss="mse")
    before = [np.array(v) for v in network.get_weights()]
    backend.prepare_variables(network)
    after = network.get_weights()
    assert [w.shape for w in after] == [w.shape for w in before]
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)
    x = np.random.default_rng(0).random((1, 6, 6, 3)).astype("float32")
    loss = network.train_on_batch(x, np.zeros((1, 6, 6, 1), "float32"))
    assert np.isfinite(loss)
    assert not np.array_equal(network.get_weights()[2], before[2])


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("kind", ["greedy", "top_k", "top_p", "random",
                                  "beam"])
def test_run_sampler_writes_keras_hub_samplers_text(kind, jit_compile):
    """`run_sampler` inside `compile_inference` fills a prompt as keras-hub's
    own sampler loop does, token for token with the same seeds (twice:
    the seed moves on as keras-hub's), from a tensor start position, with
    a cache carried between steps; with `jit_compile=True` on PyTorch the
    sampler's step is compiled. A sampler with a loop of its own (beam
    search) runs as it is."""
    keras_hub = pytest.importorskip("keras_hub")
    from keras_genzoo.sampling import make_sampler

    vocabulary, length = 7, 10
    settings = {"greedy": dict(top_k=1), "top_k": dict(top_k=3),
                "top_p": dict(top_p=0.7, temperature=0.8),
                "random": dict(temperature=1.5), "beam": None}[kind]
    table = keras.ops.convert_to_tensor(
        np.random.default_rng(1).normal(size=(vocabulary, vocabulary)),
        "float32")
    model = keras.Sequential([keras.Input((length,)), keras.layers.Dense(1)])
    model.compile(jit_compile=jit_compile)

    def next_fn(prompt, cache, index):
        # logits from the previous token (read without a slice at a tensor
        # position) plus a running count in the cache
        previous = ops.take(prompt, ops.reshape(index - 1, (1,)), axis=1)
        logits = ops.take(table, previous[:, 0], axis=0) + cache[:, None]
        return logits, None, cache + 0.25

    def sampler_for(seed):
        if settings is None:
            return keras_hub.samplers.BeamSampler(num_beams=2)
        return make_sampler(seed=seed, vocabulary_size=vocabulary,
                            **settings)

    prompt = np.zeros((2, length), "int32")
    prompt[:, :3] = [[1, 2, 3], [4, 5, 6]]
    cache = ops.zeros((2,))
    start = ops.convert_to_tensor(3, "int32")

    def compiled(loop):
        sampler = sampler_for(5)
        run = backend.compile_inference(
            model, lambda p, c, i: loop(sampler, p, c, i), sampler.variables)
        # twice: the sampler's seed moves on between calls (and its state
        # after them, as keras-hub's, last)
        return [ops.convert_to_numpy(run(ops.convert_to_tensor(prompt),
                                         cache, start)) for _ in range(2)] + [
            [ops.convert_to_numpy(v) for v in sampler.variables]]

    # keras-hub's own loop, compiled the same way (TensorFlow's draws
    # under XLA are not its eager ones): on PyTorch a Python `while`
    expected = compiled(lambda sampler, p, c, i: sampler(
        next_fn, p, cache=c, index=i, model=model))
    counters = None
    if keras.backend.backend() == "torch":
        import torch

        counters = torch._dynamo.utils.counters
        counters.clear()
    got = compiled(lambda sampler, p, c, i: backend.run_sampler(
        model, sampler, next_fn, p, cache=c, index=i))
    np.testing.assert_array_equal(got.pop(), expected.pop())
    for ours, theirs in zip(got, expected):
        np.testing.assert_array_equal(ours, theirs)
        assert (ours[:, :3] == prompt[:, :3]).all()
    if kind not in ("greedy", "beam"):
        assert not (got[0] == got[1]).all()
    if counters is not None:
        compiles = jit_compile and kind != "beam"
        assert counters["stats"]["unique_graphs"] == int(compiles)
        assert not counters["graph_break"], dict(counters["graph_break"])


@pytest.mark.parametrize("jit_compile", [False, True])
def test_run_sampler_stopped_by_an_error_moves_the_seed_as_keras_hub(
        jit_compile):
    """A sampling loop stopped by an error in `next_fn` leaves the
    sampler's seed where keras-hub's loop leaves it (on PyTorch the seed
    is held on the host during the loop and written back at its end), and
    the sampler then draws as keras-hub's."""
    if keras.backend.backend() != "torch":
        pytest.skip("elsewhere keras-hub's loop is traced once (JAX) or is "
                    "keras-hub's own: no seed held on the host")
    pytest.importorskip("keras_hub")
    from keras_genzoo.sampling import make_sampler

    table = ops.convert_to_tensor(
        np.random.default_rng(2).normal(size=(5, 5)), "float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(jit_compile=jit_compile)

    def run(loop):
        sampler = make_sampler(top_k=3, seed=4, vocabulary_size=5)
        calls = []

        def next_fn(prompt, cache, index):
            calls.append(1)
            if len(calls) == 4:  # the fourth step of the first loop
                raise RuntimeError("stop")
            previous = ops.take(prompt, ops.reshape(index - 1, (1,)), axis=1)
            return ops.take(table, previous[:, 0], axis=0), None, cache

        prompt = ops.ones((2, 8), "int32")
        with pytest.raises(RuntimeError, match="stop"):
            loop(sampler, next_fn, prompt)
        after = sampler(next_fn, prompt, index=1, model=model)
        return ([ops.convert_to_numpy(v) for v in sampler.variables],
                ops.convert_to_numpy(after))

    ours = run(lambda sampler, next_fn, prompt: backend.run_sampler(
        model, sampler, next_fn, prompt, index=1))
    theirs = run(lambda sampler, next_fn, prompt: sampler(
        next_fn, prompt, index=1, model=model))
    np.testing.assert_array_equal(ours[0][0], theirs[0][0])
    np.testing.assert_array_equal(ours[1], theirs[1])


def test_run_sampler_inside_a_step_of_another_draws_as_keras_hub():
    """PyTorch: a `run_sampler` called inside a step of another one with
    the same sampler (its seed already held on the host) draws from the
    same host copy: the texts and the seed afterwards are keras-hub's
    own loops' nested the same way."""
    if keras.backend.backend() != "torch":
        pytest.skip("only PyTorch holds a sampler's seed on the host")
    pytest.importorskip("keras_hub")
    from keras_genzoo.sampling import make_sampler

    table = ops.convert_to_tensor(
        np.random.default_rng(3).normal(size=(5, 5)), "float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])

    def run(loop):
        sampler = make_sampler(top_k=3, seed=6, vocabulary_size=5)
        inner = []

        def next_fn(prompt, cache, index):
            if len(inner) == 0 and int(index) == 3:
                inner.append(loop(sampler, plain_next, ops.ones((2, 6),
                                                                "int32")))
            return plain_next(prompt, cache, index)

        def plain_next(prompt, cache, index):
            previous = ops.take(prompt, ops.reshape(index - 1, (1,)), axis=1)
            return ops.take(table, previous[:, 0], axis=0), None, cache

        outer = loop(sampler, next_fn, ops.ones((2, 8), "int32"))
        return [ops.convert_to_numpy(x) for x in (outer, inner[0],
                                                  *sampler.variables)]

    ours = run(lambda sampler, next_fn, prompt: backend.run_sampler(
        model, sampler, next_fn, prompt, index=1))
    theirs = run(lambda sampler, next_fn, prompt: sampler(
        next_fn, prompt, index=1, model=model))
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


def test_run_sampler_frees_a_sampler_and_its_compiled_step():
    """PyTorch, `jit_compile=True`: the sampler's compiled step lives as
    long as the sampler (a model compiled again makes new samplers)."""
    if keras.backend.backend() != "torch":
        pytest.skip("only PyTorch compiles a sampler's step on its own")
    pytest.importorskip("keras_hub")
    import gc
    import weakref

    from keras_genzoo.sampling import make_sampler

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(jit_compile=True)
    table = ops.convert_to_tensor(np.eye(5, dtype="float32"))

    def next_fn(prompt, cache, index):
        previous = ops.take(prompt, ops.reshape(index - 1, (1,)), axis=1)
        return ops.take(table, previous[:, 0], axis=0), None, cache

    sampler = make_sampler(top_k=2, seed=0)
    prompt = ops.ones((1, 6), "int32")
    out = backend.run_sampler(model, sampler, next_fn, prompt, index=1)
    assert ops.convert_to_numpy(out).shape == (1, 6)
    assert sampler._genzoo_compiled_step is not None
    freed = weakref.ref(sampler)
    del sampler
    gc.collect()
    assert freed() is None


@keras.saving.register_keras_serializable(package="test_backend")
class FailsWhenTraining(keras.layers.Layer):
    """Raises while a training step is traced (or run), and while any is
    where `failing` is set: a network that passes the zoo's probe, which
    runs in inference mode, and fails in the first step of `fit`."""

    failing = False

    def call(self, x, training=False):
        if training or FailsWhenTraining.failing:
            raise RuntimeError("this layer fails in training")
        return x


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def test_a_call_that_raises_leaves_the_model_usable():
    """On JAX, Keras 3.15 takes the variables' values out of the model for
    `fit`/`evaluate`/`predict` and put them back only at the end: a bad
    batch or an interrupt left a model whose every later use failed with
    "'NoneType' object is not callable". `keep_state_on_error` keeps them,
    on every backend."""
    from keras_genzoo import VAE, AutoEncoder

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 8, 8, 1), dtype=np.uint8)
    vae = VAE(latent_dim=2, filters=(4,), seed=0)
    vae.fit(images, epochs=1, batch_size=8, verbose=0)
    weights = _weights(vae)
    codes = np.asarray(vae.encode(images[:4]))

    def same():
        for before, after in zip(weights, _weights(vae)):
            np.testing.assert_array_equal(before, after)
        np.testing.assert_allclose(np.asarray(vae.encode(images[:4])), codes,
                                   rtol=1e-6)
        vae.predict(images[:4], verbose=0)

    def interrupt(batch, logs):
        if batch == 1:
            raise KeyboardInterrupt
    stop = keras.callbacks.LambdaCallback(on_predict_batch_end=interrupt)
    with pytest.raises(KeyboardInterrupt):  # after a step ran
        vae.predict(images, batch_size=4, callbacks=[stop], verbose=0)
    same()

    class Batches(keras.utils.PyDataset):  # a second batch of other shape
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return images[:4] if i == 0 else np.zeros((4, 9, 9, 1), "uint8")
    with pytest.raises(Exception):  # TensorFlow: InvalidArgumentError
        vae.evaluate(Batches(), verbose=0)
    same()
    vae.evaluate(images, verbose=0)

    encoder = keras.Sequential([keras.Input((8, 8, 1)),
                                keras.layers.Flatten(),
                                keras.layers.Dense(2)])
    decoder = keras.Sequential([keras.Input((2,)),
                                keras.layers.Dense(64, "sigmoid"),
                                FailsWhenTraining(),
                                keras.layers.Reshape((8, 8, 1))])
    model = AutoEncoder(encoder=encoder, decoder=decoder, seed=0)
    weights = _weights(model)
    with pytest.raises(RuntimeError, match="fails in training"):
        model.fit(images, epochs=1, batch_size=8, verbose=0)
    for before, after in zip(weights, _weights(model)):
        np.testing.assert_array_equal(before, after)
    # the first fit of a new model compiled it: its optimizer's variables
    # are kept too (on JAX they were left empty, and this evaluate failed)
    assert all(v.value is not None for v in model.optimizer.variables)
    model.evaluate(images, batch_size=8, verbose=0)
    # with use_ema=True, JAX's `fit` then finalized the emptied variables
    # in its `finally`, and that TypeError hid the error above
    model.compile(optimizer=keras.optimizers.Adam(use_ema=True))
    with pytest.raises(RuntimeError, match="fails in training"):
        model.fit(images, epochs=1, batch_size=8, verbose=0)
    for before, after in zip(weights, _weights(model)):
        np.testing.assert_array_equal(before, after)
    assert "finalize_variable_values" not in vars(model.optimizer)
    assert model.reconstruct(images[:2]).shape == (2, 8, 8, 1)
    FailsWhenTraining.failing = True
    try:  # fails while the first predict step traces
        with pytest.raises(RuntimeError, match="fails in training"):
            model.predict(images, verbose=0)
    finally:
        FailsWhenTraining.failing = False
    for before, after in zip(weights, _weights(model)):
        np.testing.assert_array_equal(before, after)
    assert model.predict(images[:2], verbose=0).shape == (2, 8, 8, 1)


def test_every_function_autograph_can_convert():
    # TensorFlow's AutoGraph converts what a traced step calls; a function
    # whose body is only a docstring failed to convert, and every MiniGPT
    # `fit` and `generate` on TF printed "AutoGraph could not transform
    # <function _any_attention_dtype>... Please report this to the
    # TensorFlow team" (the check is a no-op off JAX)
    import ast
    import pathlib

    import tensorflow as tf

    package = pathlib.Path(backend.__file__).parent.parent
    bare = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and len(node.body) == 1
                    and isinstance(node.body[0], ast.Expr)
                    and isinstance(node.body[0].value, ast.Constant)):
                bare.append(f"{path.name}:{node.lineno} {node.name}")
    assert not bare, f"functions with only a docstring: {bare}"
    for check in (backend.check_attention_dtype, backend.check_batch_split):
        tf.autograph.to_graph(check)


def test_custom_steps_get_the_batch_fit_gets_from_the_on_batch_calls():
    # the documented recipe (docs/architecture.md): Keras' `*_on_batch`
    # pack `(x, None, None)`, which the schedule got instead of `x`
    from keras_genzoo.models import GenerativeModel

    seen = []

    class Recipe(GenerativeModel):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.network = keras.Sequential([keras.Input((3,)),
                                             keras.layers.Dense(3)])
            self.loss_tracker = keras.metrics.Mean(name="loss")

        @property
        def metrics(self):
            return [self.loss_tracker]

        def call(self, x, training=False):
            return self.network(x, training=training)

        def objective(self, data):
            seen.append(type(data).__name__)
            loss = ops.mean((self.network(data, training=True) - data) ** 2)
            return loss, {"loss": loss}

        def train_schedule(self, data, step):
            return step.minimize(self.optimizer, lambda: self.objective(data),
                                 self.network.trainable_variables)

        def train_step(self, *args):
            return backend.custom_train_step(self, self.train_schedule,
                                             *args)

        def test_schedule(self, data, step):
            return step.run(lambda: self.objective(data)[1])

        def test_step(self, *args):
            return backend.custom_test_step(self, self.test_schedule, *args)

    x = np.random.RandomState(0).randn(16, 3).astype("float32")
    model = Recipe(seed=0)
    model.fit(x, epochs=1, batch_size=16, verbose=0)
    first = model.train_on_batch(x, return_dict=True)["loss"]
    second = model.train_on_batch(x, return_dict=True)["loss"]
    assert second < first
    assert model.test_on_batch(x, return_dict=True)["loss"] < first
    assert "tuple" not in seen, seen


def test_every_sampling_setting_keeps_the_seed_on_the_host():
    # keras-hub's random, top-k and top-p samplers draw once a step from
    # their seed generator, which PyTorch's loop holds on the host (no
    # device wait per token); the zoo's top-p sampler was not recognised
    if keras.backend.backend() != "torch":
        pytest.skip("only PyTorch's sampling loop holds the seed on the host")
    pytest.importorskip("keras_hub")
    from keras_genzoo.backend.torch_steps import _keras_hubs_seed
    from keras_genzoo.sampling import make_sampler

    for settings in (dict(top_k=3), dict(top_p=0.7), dict(top_p=0.7, top_k=3),
                     dict(temperature=1.5)):
        sampler = make_sampler(seed=1, vocabulary_size=7, **settings)
        assert _keras_hubs_seed(sampler) is sampler.seed_generator, settings


class _LookupSchedule(GenerativeModel):
    """A table looked up with repeated ids, trained by a custom schedule
    (the GANs' and the diffusion model's `StepOps.minimize`)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.table = keras.layers.Embedding(4, 3, embeddings_initializer="ones")

    def build(self, input_shape):
        self.table.build(input_shape)

    def call(self, ids):
        return self.table(ids)

    def train_step(self, *args):
        return backend.custom_train_step(self, self.schedule, *args)

    def schedule(self, data, step):
        ids = data[0]

        def objective():
            loss = ops.mean(ops.square(self.table(ids)))
            return loss, {"loss": loss}

        return step.minimize(self.minimizer, objective,
                             self.table.trainable_variables)


@pytest.mark.parametrize("kind", ["keras_step", "custom_step"])
def test_a_lookup_with_repeated_ids_gets_adams_update(kind):
    # A table's gradient on TensorFlow is one row per looked-up id; Keras
    # 3.15's Adam squared the rows before summing the repeats: the row of
    # id 0, looked up 4 times, moved 0.02 instead of Adam's first step of
    # lr = 0.01 (a label embedding trained otherwise than on JAX/PyTorch)
    ids = np.array([[0, 0, 0, 1, 2, 0]], "int32")
    if kind == "custom_step":
        # an optimizer `compile` never saw, as a GAN's two are (inside its
        # OptimizerPair): `StepOps.minimize` itself makes the gradients
        # dense
        from keras_genzoo.optimizers import OptimizerPair

        model = _LookupSchedule(seed=0)
        model.build((None, 6))
        pair = OptimizerPair(keras.optimizers.Adam(0.01),
                             keras.optimizers.SGD(0.0))
        pair.variable_groups = lambda: (model.table.trainable_variables, [])
        model.compile(optimizer=pair)
        pair.build(model.trainable_variables)
        model.minimizer = pair.d_optimizer
    else:
        from keras_genzoo import BigramLM

        model = BigramLM(vocabulary=list("abcd"))
        model.compile(optimizer=keras.optimizers.Adam(0.01))
        model.build((None, 6))
    table = model.table.embeddings
    table.assign(np.full(tuple(table.shape), 0.5, "float32"))
    if kind == "custom_step":
        model.train_on_batch(ids)
    else:
        model.train_on_batch(ids, np.array([[1, 1, 1, 2, 3, 1]], "int32"))
    moved = np.abs(ops.convert_to_numpy(table) - 0.5)
    # Adam's first step: lr * g / |g| on every entry with a gradient
    assert moved.max() == pytest.approx(0.01, rel=1e-3)
    assert moved[3].max() == 0.0  # id 3 is not looked up


def test_custom_step_logs_weigh_batches_by_their_size():
    # each batch's mean counted once: a short last batch weighed as much as
    # a full one (a GAN's d_accuracy over 9 images came out 0.8125)
    x = np.arange(9, dtype="float32").reshape(9, 1)
    y = np.zeros((9, 1), "float32")
    model = EMARegression(seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    model.build((None, 1))
    model.dense.kernel.assign([[1.0]])
    whole = model.evaluate(x, y, batch_size=9, verbose=0, return_dict=True)
    split = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    assert whole["loss"] == pytest.approx(float(np.mean(x ** 2)), rel=1e-5)
    assert split["loss"] == pytest.approx(whole["loss"], rel=1e-5)
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False,
                        verbose=0)
    assert history.history["loss"][0] == pytest.approx(whole["loss"],
                                                       rel=1e-5)


def test_minimizing_part_of_a_models_variables():
    """The custom-step recipe (docs/architecture.md) with one more
    trainable layer that the step does not minimize: TensorFlow and PyTorch
    train the part; JAX failed inside Keras ("optimizer_variables must be
    a list ... corresponding 1:1"). Now one ValueError naming the fix, and
    the fix trains."""
    class PartModel(GenerativeModel):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.network = keras.layers.Dense(1)
            self.other = keras.layers.Dense(1)  # trainable, not minimized
            self.loss_tracker = keras.metrics.Mean(name="loss")

        def build(self, shape):
            self.network.build(shape)
            self.other.build(shape)

        @property
        def metrics(self):
            return [self.loss_tracker]

        def train_step(self, *args):
            def schedule(data, step):
                def objective():
                    loss = ops.mean(ops.square(self.network(data) - 1.0))
                    return loss, {"loss": loss}
                return step.minimize(self.optimizer, objective,
                                     self.network.trainable_variables)
            return backend.custom_train_step(self, schedule, *args)

    x = np.ones((8, 3), "float32")
    model = PartModel(seed=0)
    model.compile(keras.optimizers.Adam(1e-2))
    if keras.backend.backend() == "jax":
        with pytest.raises(ValueError, match="optimizer.build"):
            model.fit(x, epochs=1, verbose=0)
        model = PartModel(seed=0)
        model.build(x.shape)
        model.compile(keras.optimizers.Adam(1e-2))
        model.optimizer.build(model.network.trainable_variables)
    if not model.built:
        model.build(x.shape)
    other = model.other.get_weights()
    losses = model.fit(x, epochs=3, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    for before, after in zip(other, model.other.get_weights()):
        np.testing.assert_array_equal(before, after)


class TwoHeads(GenerativeModel):
    """Two regressions, each minimised by an optimizer of its own (the
    recipe of docs/architecture.md for two optimizers): `compile` makes an
    `OptimizerPair` naming each one's variables, unless `outside` gives the
    second head an optimizer of its own."""

    def __init__(self, outside=False, **kwargs):
        super().__init__(**kwargs)
        self.outside = outside
        self.first = keras.layers.Dense(1)
        self.second = keras.layers.Dense(1)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def build(self, shape):
        self.first.build(shape)
        self.second.build(shape)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def compile(self, **kwargs):
        from keras_genzoo.optimizers import OptimizerPair

        pair = OptimizerPair(keras.optimizers.Adam(0.05),
                             keras.optimizers.SGD(0.05))
        pair.variable_groups = lambda: (self.first.trainable_variables,
                                        self.second.trainable_variables)
        if self.outside:
            pair = keras.optimizers.Adam(0.05)
            self.second_optimizer = keras.optimizers.SGD(0.05)
            self.second_optimizer.build(self.second.trainable_variables)
        super().compile(optimizer=pair, **kwargs)

    def train_step(self, *args):
        def schedule(data, step):
            def objective(head, target):
                def loss():
                    value = ops.mean(ops.square(head(data) - target))
                    return value, {"loss": value}
                return loss
            if self.outside:
                first = second = None
            else:
                first = self.optimizer.d_optimizer
                second = self.optimizer.g_optimizer
            step.minimize(first or self.optimizer, objective(self.first, 1.0),
                          self.first.trainable_variables)
            return step.minimize(second or self.second_optimizer,
                                 objective(self.second, -1.0),
                                 self.second.trainable_variables)
        return backend.custom_train_step(self, schedule, *args)


def test_two_optimizers_in_a_model_of_ones_own():
    """An `OptimizerPair` with `variable_groups` trains two heads with their
    own optimizers on every backend, both optimizers' state carried from
    step to step; on JAX an optimizer outside `model.optimizer` is one
    ValueError naming the pair (was a bare KeyError)."""
    x = np.ones((8, 3), "float32")
    model = TwoHeads(seed=0)
    model.build(x.shape)
    model.compile()
    losses = model.fit(x, epochs=4, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    assert int(model.optimizer.d_optimizer.iterations) == 4
    assert int(model.optimizer.g_optimizer.iterations) == 4
    outside = TwoHeads(outside=True, seed=0)
    outside.build(x.shape)
    outside.compile()
    outside.optimizer.build(outside.first.trainable_variables)
    if keras.backend.backend() == "jax":
        with pytest.raises(ValueError, match="OptimizerPair"):
            outside.fit(x, epochs=1, verbose=0)


@pytest.mark.filterwarnings("error::DeprecationWarning")
def test_to_numpy_converts_as_keras_does_without_warning():
    # keras.ops.convert_to_numpy warned (numpy 2) for a variable, on
    # PyTorch for every tensor; to_numpy gives the same arrays, new ones
    variable = keras.Variable(np.arange(4, dtype="float32"))
    converted = backend.to_numpy(variable)
    converted[0] = 9.0  # a copy: the variable keeps its value
    assert backend.to_numpy(variable).tolist() == [0.0, 1.0, 2.0, 3.0]
    half = ops.cast(ops.arange(3), "bfloat16")
    assert backend.to_numpy(half).dtype.name == "bfloat16"
    assert backend.to_numpy(ops.arange(3)).dtype.name == "int32"
    assert backend.to_numpy([variable, variable]).shape == (2, 4)
    assert backend.to_numpy(np.ones(2)).tolist() == [1.0, 1.0]
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        dense = np.eye(3, dtype="float32")
        for composite in (tf.sparse.from_dense(dense),
                          tf.RaggedTensor.from_tensor(dense)):
            np.testing.assert_array_equal(backend.to_numpy(composite),
                                          dense)
