"""What the backend modules share: the interface of a custom step's
operations, and operations written with that interface alone."""

import contextlib


class StepOps:
    """The operations a backend-free training schedule may use.

    Each backend module subclasses it; a schedule receives an instance as
    `step` (see `keras_genzoo.backend.custom_train_step`). Whatever reads the
    model's variables goes through `minimize` or `run` (on JAX the
    variables hold no values inside a compiled step: these two map them
    to the step's state).

    Example:
        A regression trained by a schedule of its own, with a moving
        average of its weights updated after each step (what a diffusion
        model keeps), the same code on every backend:

        >>> import keras, numpy as np
        >>> from keras import ops
        >>> from keras_genzoo import backend
        >>> from keras_genzoo.models import GenerativeModel
        >>> class AveragedRegression(GenerativeModel):
        ...     def __init__(self, **kwargs):
        ...         super().__init__(**kwargs)
        ...         self.dense = keras.layers.Dense(1)
        ...         self.tracker = keras.metrics.Mean(name="loss")
        ...     def build(self, shape):
        ...         self.dense.build(shape)
        ...         self.averages = [
        ...             self.add_weight(shape=v.shape, initializer="zeros",
        ...                             trainable=False)
        ...             for v in self.dense.trainable_variables]
        ...     @property
        ...     def metrics(self):
        ...         return [self.tracker]
        ...     def train_schedule(self, data, step):
        ...         x, y = data
        ...         def objective():
        ...             loss = ops.mean(ops.square(self.dense(x) - y))
        ...             return loss, {"loss": loss}
        ...         logs = step.minimize(self.optimizer, objective,
        ...                              self.dense.trainable_variables)
        ...         backend.ema_update(step, self.averages,
        ...                            self.dense.trainable_variables, 0.9)
        ...         return logs
        ...     def train_step(self, *args):  # (data), or (state, data) on JAX
        ...         return backend.custom_train_step(
        ...             self, self.train_schedule, *args)
        >>> keras.utils.set_random_seed(0)
        >>> x = np.random.RandomState(0).randn(64, 3).astype("float32")
        >>> y = x.sum(axis=1, keepdims=True)
        >>> model = AveragedRegression(seed=0)
        >>> model.compile(optimizer=keras.optimizers.SGD(0.1))
        >>> history = model.fit(x, y, batch_size=16, epochs=5, verbose=0)
        >>> losses = history.history["loss"]
        >>> bool(losses[-1] < 0.01 * losses[0])
        True

        The average started at zero and follows the kernel (near 1) a few
        steps behind:

        >>> average = ops.convert_to_numpy(model.averages[0])
        >>> bool(np.all(average > 0.5))
        True
    """

    def minimize(self, optimizer, objective, variables):
        """One gradient update.

        Args:
            optimizer: the optimizer that applies the gradients.
            objective: a function of no arguments returning `(loss, logs)`:
                a scalar loss and a dict of values to log.
            variables: the variables to update (e.g. a network's
                `trainable_variables`).

        Returns:
            The `logs` the objective returned.
        """
        raise NotImplementedError

    def read(self, variables):
        """The current values of `variables`, as constants.

        No gradient flows through them on any backend (TensorFlow's
        differentiated them inside `minimize`, JAX's and PyTorch's did
        not): an objective uses the variables through the layers, or
        directly, not through `read`.

        Args:
            variables: a list of Keras variables (not computed values such
                as `optimizer.iterations` under gradient accumulation: see
                `optimizer_steps`).

        Returns:
            A list of tensors.
        """
        raise NotImplementedError

    def optimizer_steps(self, optimizer):
        """How many updates `optimizer` has applied: its `iterations`,
        read so that it works inside a step with
        `gradient_accumulation_steps` too (Keras computes `iterations`
        then, which `read` cannot take: every backend failed), and through
        a `LossScaleOptimizer`.

        Args:
            optimizer: a Keras optimizer.

        Returns:
            `(updates, micro_steps)`: int tensors; `micro_steps` counts
            every step (every batch), `updates` the applied updates
            (`micro_steps // gradient_accumulation_steps`).
        """
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        every = getattr(inner, "gradient_accumulation_steps", None) or 1
        micro = self.read([inner._iterations])[0]
        return micro // every, micro

    def assign(self, variables, values):
        """Sets `variables` to `values` (lists of the same length)."""
        raise NotImplementedError

    def run(self, fn):
        """Runs `fn()` without gradients, keeping any state it changes
        (seed generators, batch-norm statistics); returns its result."""
        raise NotImplementedError


def as_fit_batch(data):
    """`data` as `fit` hands it to a step: Keras' `*_on_batch` pack `(x,
    y, sample_weight)` with `None`s, which the schedule of the documented
    custom-step recipe then got instead of `x` (its `fit` got `x`), and
    on PyTorch as numpy arrays."""
    import keras
    import numpy as np

    if isinstance(data, tuple):
        data = list(data)
        while data and data[-1] is None:
            data.pop()
        data = data[0] if len(data) == 1 else tuple(data)
    # PyTorch's `*_on_batch` pass numpy arrays on (`fit` gives tensors)
    return keras.tree.map_structure(
        lambda value: keras.ops.convert_to_tensor(value)
        if isinstance(value, np.ndarray) else value, data)


def batch_size_of(data):
    """The number of examples in a batch as `fit` hands it to a step (the
    leading size of its first array): what `model.record_step` weighs the
    batch's logs with."""
    import keras

    return keras.ops.shape(keras.tree.flatten(data)[0])[0]


def to_numpy(x):
    """`x` (a tensor, a Keras variable, an array or a number) as a new numpy
    array: what `keras.ops.convert_to_numpy` gives, without the
    `DeprecationWarning` numpy 2 raises there in Keras 3.15 for a Keras
    variable (on PyTorch for every tensor): "__array__ implementation
    doesn't accept a copy keyword" (an error where warnings are errors:
    every zoo `fit` failed in its divergence check, where plain Keras'
    passed). The zoo converts with it.

    Args:
        x: what to convert.

    Returns:
        A new numpy array (sparse and ragged tensors made dense, a list of
        tensors stacked), as `keras.ops.convert_to_numpy` returns it.

    Example:
        >>> import keras
        >>> from keras_genzoo import backend
        >>> backend.to_numpy(keras.Variable([1.0, 2.0])).tolist()
        [1.0, 2.0]
    """
    import keras
    import numpy as np

    if isinstance(x, (list, tuple)):
        from keras_genzoo import backend

        return np.array([backend.to_numpy(item) for item in x])
    if isinstance(x, keras.Variable):
        x = x.value
    return np.array(keras.ops.convert_to_numpy(x))


def ema_update(step, averages, variables, decay):
    """`averages <- decay * averages + (1 - decay) * variables`.

    Written with `StepOps` alone, so it runs inside any backend's custom
    step (e.g. after each update of a diffusion model).

    Args:
        step: the schedule's `StepOps`.
        averages: the variables holding the moving averages.
        variables: the variables to average, in the same order.
        decay: the weight of the old average, e.g. 0.999.

    Example:
        Inside a custom step `step` is the schedule's own (see `StepOps`'
        example); outside one, a `StepOps` that reads and assigns the
        variables directly shows the arithmetic:

        >>> import keras
        >>> from keras_genzoo import backend
        >>> class Direct(backend.StepOps):
        ...     def read(self, variables):
        ...         return [v.value for v in variables]
        ...     def assign(self, variables, values):
        ...         for variable, value in zip(variables, values):
        ...             variable.assign(value)
        >>> average = keras.Variable([0.0, 4.0])
        >>> weight = keras.Variable([1.0, 0.0])
        >>> backend.ema_update(Direct(), [average], [weight], decay=0.75)
        >>> keras.ops.convert_to_numpy(average).tolist()
        [0.25, 3.0]
    """
    averages, variables = list(averages), list(variables)
    if len(averages) != len(variables):
        raise ValueError(
            f"Got {len(averages)} averages for {len(variables)} variables."
        )
    from keras import ops

    # in float32, cast back: weights of a float16 or bfloat16 policy met a
    # float32 decay, which TensorFlow refused to multiply
    decay = ops.cast(decay, "float32")
    new = [
        ops.cast(decay * ops.cast(average, "float32")
                 + (1.0 - decay) * ops.cast(value, "float32"), average.dtype)
        for average, value in zip(step.read(averages), step.read(variables))
    ]
    step.assign(averages, new)


def prepare_variables(model):
    """Lays out a built `model`'s variables for this backend's kernels
    before any step; the zoo's `fit`, `evaluate` and `train_on_batch` call
    it.

    On PyTorch it works around a CPU convolution bug (PyTorch 2.13): a conv
    kernel with one output channel (a grayscale image decoder's last layer)
    failed to train on a batch of one image. It changes the memory layout
    of those kernels only, never a shape or value. On JAX it gives each
    variable of the model and its optimizer a buffer of its own (see
    `jax_steps.prepare_variables`). On TensorFlow it does nothing.

    Args:
        model: a built Keras model (or layer).

    Example:
        A custom loop calls it once the model is built; shapes and values
        stay as they are:

        >>> import keras, numpy as np
        >>> from keras_genzoo import backend
        >>> decoder = keras.Sequential([keras.Input((8, 8, 4)),
        ...                             keras.layers.Conv2D(1, 3)])
        >>> before = decoder.get_weights()
        >>> backend.prepare_variables(decoder)
        >>> all(np.array_equal(a, b)
        ...     for a, b in zip(before, decoder.get_weights()))
        True
    """
    del model


def prepare_optimizer(optimizer):
    """Makes `optimizer` apply correct updates for every gradient this
    backend's steps give it; the zoo's `compile` calls it.

    On TensorFlow the gradient of a table lookup (an `Embedding`, a
    `keras.ops.take`) is a `tf.IndexedSlices` holding one row per looked-up
    id, with ids repeated, and Keras 3.15's optimizers square (Adam, AdamW,
    RMSprop, ...) each row before the repeats are summed: a label embedding
    or a bigram table trained with another update than on JAX and PyTorch
    (Adam's first step moved the row of an id looked up n times sqrt(n)
    times too far). There the optimizer's `apply` first makes such
    gradients dense (the repeats summed, what JAX and PyTorch give);
    nothing to do elsewhere.

    Args:
        optimizer: a Keras optimizer (or `None`).

    Returns:
        The same optimizer.
    """
    return optimizer


def compile_loop_step(model, fn):
    """One step of an inference loop (e.g. a sampling loop's next-token
    logits), compiled on its own where the backend compiles a loop's steps
    rather than the loop.

    On TensorFlow and JAX it returns `fn` as it is: `compile_inference`
    compiles the whole loop, this step with it. PyTorch overrides it.

    Args:
        model: the model whose variables `fn` reads; its `jit_compile`
            setting decides on PyTorch.
        fn: a function of tensors using `keras.ops`, called once per step.

    Returns:
        A callable with the signature of `fn`.
    """
    del model
    return fn


def run_sampler(model, sampler, next_fn, prompt, cache=None, index=0):
    """keras-hub's `sampler(next_fn, prompt, cache=cache, index=index,
    model=model)` (without `mask` and `stop_token_ids`), run the backend's
    best way inside a function that `compile_inference` compiled: it fills
    `prompt` from position `index` to its end, one token per step.

    On TensorFlow and JAX it is keras-hub's own loop (`ops.while_loop`),
    compiled whole with the inference function. PyTorch overrides it.

    Args:
        model: the model whose variables `next_fn` reads; its
            `jit_compile` setting decides on PyTorch.
        sampler: a `keras_hub.samplers.Sampler`.
        next_fn: `next(prompt, cache, index) -> (logits, hidden_states,
            cache)`, keras-hub's protocol: the logits of the token at
            `index`.
        prompt: int ids `(batch, length)`, filled from `index` on.
        cache: what `next_fn` carries from step to step (or `None`).
        index: the first position to fill (an int or an int tensor).

    Returns:
        The filled `prompt`.

    Example:
        A `next_fn` whose likeliest token is always 2, filled from
        position 1 by keras-hub's greedy sampler:

        >>> import keras, keras_hub
        >>> from keras import ops
        >>> from keras_genzoo import backend
        >>> def next_fn(prompt, cache, index):
        ...     logits = 10.0 * ops.one_hot(ops.full((2,), 2, "int32"), 4)
        ...     return logits, None, cache
        >>> model = keras.Sequential([keras.Input((1,)),
        ...                           keras.layers.Dense(1)])
        >>> prompt = ops.zeros((2, 5), "int32")
        >>> filled = backend.run_sampler(
        ...     model, keras_hub.samplers.GreedySampler(), next_fn, prompt,
        ...     index=1)
        >>> ops.convert_to_numpy(filled).tolist()
        [[0, 2, 2, 2, 2], [0, 2, 2, 2, 2]]
    """
    return sampler(next_fn, prompt, cache=cache, index=index, model=model)


def wrap_step_function(model, fn):
    """Keras' train, test or predict function of `model` as the zoo runs
    it (the zoo's models call this after Keras makes one).

    On PyTorch, a function `torch.compile` compiled (`jit_compile=True`)
    runs where Keras' seeded draws and binary cross-entropy are traceable
    and dynamo traces `backward()`, so that the whole step is one graph.
    On TensorFlow and JAX it returns `fn`: their compiled steps are one
    graph already.

    Args:
        model: the model the function belongs to.
        fn: the function Keras made (`model.train_function`, ...), or
            `None`.

    Returns:
        A callable with the signature of `fn`, or `fn`.
    """
    del model
    return fn


# Data parallelism. JAX's `keras.distribution.DataParallel` compiles one
# program over the global batch: a loss is the global batch's mean and noise
# is drawn for the whole batch, as on one device, so these two are the
# identity there (and on PyTorch, which has no data parallelism in `fit`).
# Under `tf.distribute` each replica runs the step on its share of the batch:
# the TensorFlow module overrides them.


def even_split_fix(num_examples, batch_size, devices):
    """What to do where batches of `batch_size` from `num_examples` arrays
    do not split evenly over `devices` (`check_batch_split` on JAX and
    TensorFlow): a batch size that is a multiple, else the fewest examples
    to drop (all of a short last batch was named before: "drop the last 15
    examples (keep 0)" for 15 in batches of 32)."""
    if batch_size % devices:
        return f"pass a batch_size that is a multiple of {devices}"
    drop = (num_examples % batch_size
            or min(batch_size, num_examples)) % devices
    if drop < num_examples:
        return f"drop the last {drop} examples (keep {num_examples - drop})"
    return f"give at least {devices} examples"


def variable_scope(model):
    """The scope where `model`'s lazily created variables (networks built
    at the first `fit`, optimizer moments) must be created: its
    `tf.distribute` strategy's on TensorFlow; none needed elsewhere (JAX
    reads `keras.distribution` when a variable is created).

    Args:
        model: the model whose variables are being created.

    Returns:
        A context manager.

    Example:
        >>> import keras
        >>> from keras_genzoo import backend
        >>> model = keras.Sequential([keras.Input((2,)),
        ...                           keras.layers.Dense(1)])
        >>> optimizer = keras.optimizers.Adam()
        >>> with backend.variable_scope(model):
        ...     optimizer.build(model.trainable_variables)
        >>> len(optimizer.variables)   # iterations, learning rate, moments
        6
    """
    del model
    return contextlib.nullcontext()


def collecting_losses(model):
    """A context for running networks inside a `compute_loss`: inside it,
    `model.losses` are those of the networks run inside (their `add_loss`
    terms) and the weights' regularization penalties, as after a `call`.

    On JAX, Keras' trainer runs `compute_loss` in a `keras.StatelessScope`
    that drops `add_loss` terms, and `model.losses` there are those `call`
    gave; the JAX module's context collects the terms and reads them. On
    TensorFlow and PyTorch the layers keep them anyway, and this one does
    nothing.

    Args:
        model: the model whose `compute_loss` runs the networks.

    Returns:
        A context manager.

    Example:
        >>> import keras, numpy as np
        >>> from keras_genzoo import backend
        >>> dense = keras.layers.Dense(
        ...     1, activity_regularizer=keras.regularizers.L2(1.0))
        >>> model = keras.Sequential([keras.Input((2,)), dense])
        >>> with backend.collecting_losses(model):
        ...     _ = dense(np.ones((1, 2), "float32"))
        ...     len(model.losses)
        1
    """
    del model
    return contextlib.nullcontext()


def keep_state_on_error(model):
    """A context for a call of Keras' `fit`, `evaluate` or `predict` that
    leaves `model`'s variables usable when the call raises.

    On JAX, Keras 3.15 takes the variables' values out of the model for
    these loops and does not put them back when `evaluate`, `predict` or
    the first step of `fit` raises (a bad batch, a `KeyboardInterrupt`);
    `keras_genzoo.backend.keep_state_on_error` is then the JAX module's,
    which puts them back. Elsewhere the variables keep their values
    throughout, and this one does nothing. The zoo's models use it in
    `fit`, `evaluate` and `predict`.

    Args:
        model: the `keras.Model` whose method is called.

    Returns:
        A context manager.

    Example:
        >>> import keras, numpy as np
        >>> from keras_genzoo import backend
        >>> model = keras.Sequential([keras.Input((2,)),
        ...                           keras.layers.Dense(1)])
        >>> with backend.keep_state_on_error(model):
        ...     model.predict(np.zeros((1, 2)), verbose=0).shape
        (1, 1)
    """
    del model
    return contextlib.nullcontext()


def scale_loss_for_replicas(loss):
    """The loss one replica's gradients are taken of: `loss` divided by
    the number of replicas in sync (TensorFlow's optimizers sum the
    replicas' gradients), `loss` itself elsewhere.

    Args:
        loss: a scalar tensor, the mean over this replica's share of the
            batch.

    Returns:
        A scalar tensor.

    Example:
        Outside a `tf.distribute` strategy of several replicas (and on JAX
        and PyTorch) it is the loss itself:

        >>> import keras
        >>> from keras_genzoo import backend
        >>> loss = keras.ops.convert_to_tensor(2.0)
        >>> float(backend.scale_loss_for_replicas(loss))
        2.0
    """
    return loss


def draw_for_replica(draw, shape):
    """This replica's share of noise drawn for the global batch.

    Args:
        draw: `draw(shape)` returns random values of `shape` from the
            model's seed generator (e.g. `lambda s: keras.random.normal(s,
            seed=self.seed_generator)`).
        shape: the shape this replica needs, batch first (its share of the
            batch: e.g. `ops.shape(images)`).

    Returns:
        `draw(shape)` on one device. Under `tf.distribute`, every replica
        draws for the whole global batch with the same seed and keeps its
        own slice: replicas get different noise, and the same noise one
        device would draw for the same global batch.

    Example:
        >>> import keras
        >>> from keras_genzoo import backend
        >>> seed = keras.random.SeedGenerator(0)
        >>> noise = backend.draw_for_replica(
        ...     lambda shape: keras.random.normal(shape, seed=seed), (4, 2))
        >>> tuple(noise.shape)
        (4, 2)
    """
    return draw(tuple(shape))
