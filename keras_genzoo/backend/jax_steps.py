"""Custom training steps, input gradients and compiled inference on JAX.

Keras' JAX trainer calls `train_step(state, data)` inside `jax.jit` with
`state = (trainable, non_trainable, optimizer, metrics)` variable values and
expects the same structure back. Everything that changes during a step must
travel in `state`:

- every optimizer: a model with two (a GAN) makes `model.optimizer` an
  `OptimizerPair` whose `variables` are both optimizers' (otherwise the
  second optimizer's state would silently reset every step);
- seed generators and batch-norm statistics: non-trainable variables, read
  and written through a `keras.StatelessScope` (one that collects the
  `add_loss` terms, which `Layer.losses` reads from it);
- metrics: updated in a `StatelessScope` too.
"""

import contextlib

import jax
import jax.numpy as jnp
import keras

from keras_genzoo.backend.common import (  # noqa: F401 - exported
    even_split_fix,
    StepOps,
    as_fit_batch,
    batch_size_of,
    compile_loop_step,
    draw_for_replica,
    run_sampler,
    wrap_step_function,
    scale_loss_for_replicas,
    variable_scope,
)


def _state_variables(model):
    """Every variable Keras' JAX trainer takes out of `model` for a loop:
    the model's, its optimizer's and its metrics'."""
    variables = list(model.trainable_variables)
    variables += model.non_trainable_variables
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        variables += optimizer.variables
    variables += model.metrics_variables
    return variables


def prepare_variables(model):
    """Gives each variable of `model` and its optimizer a buffer of its own
    before a step; values are unchanged.

    Keras' trainer donates every variable's buffer to the compiled step,
    which fails ("Attempt to donate the same buffer twice") when two
    variables share one. An optimizer with `use_ema=True` makes them share:
    the `fit` that ends writes the averages into the weights with
    `assign`, which on JAX keeps the same array, so the next `fit` (or
    `train_on_batch`) failed at its first step (keras 3.15.1, a plain
    `keras.Sequential` too).
    """
    seen = set()
    for variable in _state_variables(model):
        value = variable._value
        if value is None:
            continue
        if id(value) in seen:
            variable.assign(jnp.copy(value))
        else:
            seen.add(id(value))


def batch_devices(model=None):
    """The devices that share every batch under the `keras.distribution`
    set (its batch axis), 1 without one (`model` is not needed here)."""
    distribution = keras.distribution.distribution()
    name = getattr(distribution, "batch_dim_name", None)
    if distribution is None or name is None:
        return 1
    mesh = distribution.device_mesh
    return int(mesh.shape[list(mesh.axis_names).index(name)])


def check_batch_split(num_examples, batch_size, what, fix=None,
                      datasets=True, devices=None, predicting=False):
    """Raises a `ValueError` where the `keras.distribution` would split a
    batch of arrays unevenly over its devices.

    Keras shards every batch along the distribution's batch axis, and JAX
    needs each batch to be a multiple of that axis' device count: a last
    partial batch that is not fails inside Keras' step with JAX's
    `IndivisibleError` (Keras 3.15.1). The message names `what` and a
    fix (`fix`, or a batch size or the examples to drop).
    """
    devices = batch_devices() if devices is None else devices
    if devices == 1 or not num_examples:
        return
    batch_size = int(batch_size)
    sizes = {min(batch_size, num_examples), num_examples % batch_size}
    bad = sorted(size for size in sizes if size % devices)
    if not bad:
        return
    fix = fix or even_split_fix(num_examples, batch_size, devices)
    raise ValueError(
        f"{what[0].upper() + what[1:]} has {num_examples} examples in "
        f"batches of {batch_size}: a batch of {bad[0]} cannot be shared "
        f"evenly by the distribution's {devices} devices (JAX needs every "
        f"batch to be a multiple of {devices}). {fix[0].upper() + fix[1:]}"
        + (", or feed a tf.data dataset batched with drop_remainder=True."
           if datasets else "."))


def check_attention_dtype(dtype):
    """Raises a `ValueError` for float16 attention on JAX's CPU.

    Keras' `ops.dot_product_attention` on JAX (which `MiniGPT`'s blocks
    and Keras' `MultiHeadAttention` call) asks XLA for float16 products
    accumulated in float32, which XLA's CPU backend cannot compile ("The
    precision 'F16_F16_F32' is not supported by dot_general on CPU",
    Keras 3.15.1, jax 0.10.2); bfloat16 and GPUs have no such limit.
    """
    if (keras.backend.standardize_dtype(dtype) == "float16"
            and jax.default_backend() == "cpu"):
        raise ValueError(
            "float16 attention (dtype='mixed_float16' or 'float16') does "
            "not run on JAX's CPU: XLA's CPU backend cannot compile Keras' "
            "dot_product_attention in float16. Use dtype='mixed_bfloat16' "
            "on the CPU (or the float16 policy on a GPU, or another "
            "backend).")


@contextlib.contextmanager
def collecting_losses(model):
    """Inside, `model.losses` are those of the networks run inside (their
    `add_loss` terms) and the weights' penalties.

    Keras' JAX trainer runs `compute_loss` in a `keras.StatelessScope` that
    does not collect `add_loss` terms (`Trainer.stateless_compute_loss`),
    and `model.losses` there are those `call` gave
    (`Layer._losses_override`, when it gave any): the networks a
    conditional VAE runs in `compute_loss` lost their activity
    regularizers in silence, in the loss and its gradients. Here the scope
    collects them and `model.losses` reads them from it (Keras 3.15 has no
    public way to the scope in force)."""
    from keras.src.backend.common.stateless_scope import get_stateless_scope

    scope = get_stateless_scope()
    override = model._losses_override
    collect = scope is not None and not scope.collect_losses
    if collect:
        scope.collect_losses = True
    model._losses_override = []
    try:
        yield
    finally:
        model._losses_override = override
        if collect:
            scope.collect_losses = False


@contextlib.contextmanager
def keep_state_on_error(model):
    """Keeps `model`'s variables usable when Keras' `fit`, `evaluate` or
    `predict` raises inside.

    Keras 3.15's JAX trainer takes every variable's value out of the model
    for a loop (`_purge_model_variables`, to save memory) and puts the
    values back only when the loop ends: `predict` and `evaluate` never put
    them back when a step raises, nor does `fit` when its first step
    raises. One `predict` on images of the wrong shape, or an interrupt
    while the first step compiles, then left a trained model whose every
    later use failed with "'NoneType' object is not callable". (Keras'
    own fix, keras-team/keras#21019, covers later steps of `fit` only.)
    Here, when the call raises: the newest state Keras holds goes back
    first (`jax_state_sync`, from the steps that ran), then each variable
    still empty gets the value it had before the call (a step that failed
    while tracing has not consumed it).

    When `fit`'s first step raises, Keras' `finally` also calls the
    optimizer's `finalize_variable_values` on the emptied variables; with
    `use_ema=True` that raised a `TypeError` ("'NoneType' object is not
    callable") which hid the error that stopped `fit`. For the call, the
    optimizer's `finalize_variable_values` skips variables left empty.
    """
    if getattr(model, "_jax_state_synced", True):
        # nothing newer than the variables: not a stale state to restore
        model._jax_state = None
    saved = [(variable, variable._value)
             for variable in _state_variables(model)]
    optimizer = getattr(model, "optimizer", None)
    finalize = None
    if (optimizer is not None
            and "finalize_variable_values" not in vars(optimizer)):
        # (already there: a call inside another, `fit`'s validation)
        finalize = optimizer.finalize_variable_values
    if finalize is not None:
        def finalize_filled(var_list):
            if any(variable._value is None for variable in var_list):
                return  # the first step raised: nothing to finalize
            finalize(var_list)
        optimizer.finalize_variable_values = finalize_filled
    try:
        yield
    except BaseException:
        try:
            model.jax_state_sync()
        except Exception:  # a state consumed by a step that failed
            pass
        for variable, value in saved:
            if (variable._value is None and value is not None
                    and not value.is_deleted()):
                variable._value = value
        model._jax_state = None
        model._jax_state_synced = True
        raise
    finally:
        if finalize is not None:
            del optimizer.finalize_variable_values


def input_gradients(fn, x):
    """Gradient of `sum(fn(x))` with respect to `x`, differentiable again.

    Args:
        fn: a function of one array (e.g. a critic applied to images); any
            variables it reads must be mapped by an enclosing
            `keras.StatelessScope`, as they are in the training step.
        x: the input array.

    Returns:
        An array shaped like `x`.
    """
    return jax.grad(lambda inputs: jnp.sum(fn(inputs)))(x)


class _State:
    """Mutable view of the step's state, addressed by variable identity."""

    def __init__(self, model, state):
        self.model = model
        # training: (trainable, non_trainable, optimizer, metrics) values;
        # evaluation: (trainable, non_trainable, metrics)
        self.with_optimizer = len(state) == 4
        self.values = {}
        for group, values in zip(self._groups(), state):
            for variable, value in zip(group, values):
                self.values[id(variable)] = value

    def _groups(self):
        model = self.model
        groups = [model.trainable_variables, model.non_trainable_variables]
        if self.with_optimizer:
            groups.append(model.optimizer.variables)
        groups.append(model.metrics_variables)
        return [list(group) for group in groups]

    def get(self, variables):
        return [self.values[id(v)] for v in variables]

    def set(self, variables, values):
        for variable, value in zip(variables, values):
            self.values[id(variable)] = value

    def check_carried(self, optimizer):
        """One `ValueError` where `optimizer`'s variables are not in the
        step's state (an optimizer other than `model.optimizer`: Keras'
        trainer would not carry its state from step to step)."""
        if all(id(v) in self.values for v in optimizer.variables):
            return
        raise ValueError(
            f"The optimizer {optimizer.name!r} given to `minimize` is not "
            "the model's: on JAX, Keras' trainer carries only "
            "`model.optimizer.variables` through a compiled step, so "
            "another optimizer's state cannot be kept. Compile the model "
            "with a `keras_genzoo.optimizers.OptimizerPair` of the two "
            "optimizers (its `variable_groups` naming each one's "
            "variables) and minimise with `model.optimizer.d_optimizer` "
            "and `model.optimizer.g_optimizer`.")

    def run(self, fn, replace=(), values=()):
        """Runs `fn()` statelessly; `replace` variables read `values`.

        Returns `fn`'s result and the values of every variable after it ran
        (updated seed generators, batch-norm statistics, metrics).
        """
        overrides = {id(v): x for v, x in zip(replace, values)}
        mapping = []
        everything = self._all_variables()
        for variable in everything:
            key = id(variable)
            mapping.append((variable, overrides.get(key, self.values[key])))
        # collect_losses: `add_loss` terms (activity regularizers) are
        # dropped in a stateless scope without it, as Keras' own JAX step
        # knows (`Layer.losses` then reads them from the scope)
        with keras.StatelessScope(state_mapping=mapping,
                                  collect_losses=True) as scope:
            result = fn()
        updated = {}
        for variable in everything:
            key = id(variable)
            if key in overrides:
                continue
            value = scope.get_current_value(variable)
            if value is not None:
                updated[key] = value
        return result, updated

    def _all_variables(self):
        return [v for group in self._groups() for v in group]

    def as_state(self):
        return tuple(self.get(group) for group in self._groups())


def _as_built(optimizer, variables):
    """`variables` in the order `optimizer` was built with, or one
    `ValueError` where they are not the variables it was built with.

    `optimizer.stateless_apply` takes all of those, in their order: an
    optimizer built on every trainable variable of a model (as `fit` builds
    it) that minimised a subset of them (a network beside an EMA copy, a
    critic, a second head) failed inside Keras ("optimizer_variables must
    be a list ... corresponding 1:1"), where TensorFlow and PyTorch train
    the subset.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    built = getattr(inner, "_trainable_variables", None)
    if not inner.built or built is None:
        return variables
    given = {id(v): v for v in variables}
    if set(given) == {id(v) for v in built}:
        return [given[id(v)] for v in built]
    raise ValueError(
        f"`minimize` was given {len(variables)} variables, but the "
        f"optimizer was built with {len(built)} other ones (`fit` builds a "
        "model's optimizer with all its trainable variables), and on JAX an "
        "optimizer updates exactly the variables it was built with. Build "
        "the model's optimizer on the variables it minimises before `fit` "
        "(`model.optimizer.build(network.trainable_variables)`); for two "
        "sets of variables, each with an optimizer, compile with a "
        "`keras_genzoo.optimizers.OptimizerPair` whose `variable_groups` "
        "names them; layers that are not trained (an EMA copy) can be made "
        "`trainable=False`.")


class JaxStep(StepOps):
    """`StepOps` on JAX: every operation reads and writes a `_State`."""

    def __init__(self, state):
        self.state = state

    def minimize(self, optimizer, objective, variables):
        state = self.state
        variables = _as_built(optimizer, list(variables))

        def loss_fn(values):
            def scaled():
                loss, logs = objective()
                return optimizer.scale_loss(loss), logs

            (scaled_loss, logs), updated = state.run(scaled, variables,
                                                     values)
            return scaled_loss, (logs, updated)

        state.check_carried(optimizer)
        (_, (logs, updated)), grads = jax.value_and_grad(
            loss_fn, has_aux=True)(state.get(variables))
        state.values.update(updated)
        new_values, new_optimizer_values = optimizer.stateless_apply(
            state.get(optimizer.variables), grads, state.get(variables)
        )
        state.set(variables, new_values)
        state.set(optimizer.variables, new_optimizer_values)
        return logs

    def read(self, variables):
        return self.state.get(variables)

    def assign(self, variables, values):
        self.state.set(variables, values)

    def run(self, fn):
        result, updated = self.state.run(fn)
        self.state.values.update(updated)
        return jax.tree_util.tree_map(jax.lax.stop_gradient, result)


def custom_train_step(model, schedule, state, data):
    """A model's `train_step` from a backend-free schedule.

    Args:
        model: the model; `model.record_step(logs)` turns the schedule's
            logs into the metric results `fit` shows.
        schedule: `schedule(data, step)` returning a dict of logs; `step`
            is a `StepOps`.
        state: `(trainable, non_trainable, optimizer, metrics)` values, or
            `(trainable, non_trainable, metrics)` in a test step.
        data: one batch as the dataset yields it.

    Returns:
        `(logs, state)` with `state` in the structure it came in.
    """
    view = _State(model, state)
    data = as_fit_batch(data)
    logs = schedule(data, JaxStep(view))
    logs = jax.tree_util.tree_map(jax.lax.stop_gradient, logs)
    results, updated = view.run(
        lambda: model.record_step(logs, batch_size=batch_size_of(data)))
    view.values.update(updated)
    return results, view.as_state()


# `evaluate` and `validation_data` run a schedule that makes no updates, the
# same way (on JAX the state then has no optimizer part).
custom_test_step = custom_train_step


def compile_inference(model, fn, state_variables=()):
    """Compiles `fn(*arrays)` (e.g. a sampling loop) once with `jax.jit`.

    Inside the jitted function every variable is read from an explicit
    state through a `keras.StatelessScope`; the new values of
    `state_variables` (sampler seeds) are written back after each call, so
    a seeded sampler gives the same text every time it is re-seeded.

    Args:
        model: the model whose variables `fn` reads.
        fn: a function of arrays using `keras.ops`.
        state_variables: other variables `fn` reads and writes.

    Returns:
        A callable with the signature of `fn`.
    """
    state_variables = list(state_variables)

    @jax.jit
    def compiled(values, extra_values, *args):
        mapping = list(zip(model.variables, values))
        mapping += list(zip(state_variables, extra_values))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            outputs = fn(*args)
        new_extra = []
        for variable, value in zip(state_variables, extra_values):
            new = scope.get_current_value(variable)
            new_extra.append(value if new is None else new)
        return outputs, new_extra

    def run(*args):
        outputs, new_extra = compiled(
            [v.value for v in model.variables],
            [v.value for v in state_variables], *args)
        for variable, value in zip(state_variables, new_extra):
            variable.assign(value)
        return outputs

    return run
