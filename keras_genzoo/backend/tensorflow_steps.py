"""Custom training steps, input gradients and compiled inference on TensorFlow."""

import contextlib
import logging
import types

import tensorflow as tf

from keras_genzoo.backend.common import to_numpy as common_to_numpy
from keras_genzoo.backend.common import (  # noqa: F401 - exported
    even_split_fix,
    StepOps,
    as_fit_batch,
    batch_size_of,
    collecting_losses,
    keep_state_on_error,
    compile_loop_step,
    prepare_variables,
    run_sampler,
)


def to_numpy(x):
    """`keras_genzoo.backend.common.to_numpy`: a tensor or a variable
    through `.numpy()` (numpy 2 warned converting a variable or a bfloat16
    tensor itself); anything else (sparse, ragged) as Keras converts it."""
    import keras
    import numpy as np

    if isinstance(x, keras.Variable):
        x = x.value
    if isinstance(x, (tf.Tensor, tf.Variable)):
        return np.array(x.numpy())
    return common_to_numpy(x)


def dense_gradients(grads):
    """`grads` with each `tf.IndexedSlices` (a lookup's gradient, one row
    per looked-up id) made dense, repeated ids summed."""
    return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
            for g in grads]


def prepare_optimizer(optimizer):
    """Makes `optimizer.apply` take lookups' gradients dense (see
    `common.prepare_optimizer`).

    Keras 3.15's TensorFlow optimizers take a `tf.IndexedSlices` as it is,
    and Adam's `ops.square(gradient)` squares its rows one by one, before
    the rows of a repeated id are summed (measured: one Adam step moved the
    row of an id looked up 4 times 0.02 instead of 0.01). The model's own
    optimizer instance gets the wrapped `apply` (Keras' `train_step` calls
    `apply_gradients`, which calls it); a `LossScaleOptimizer` is wrapped
    outside, before it unscales and passes the gradients on.
    """
    if optimizer is None or getattr(optimizer, "_zoo_dense_gradients", False):
        return optimizer
    apply = optimizer.apply

    def apply_dense(grads, trainable_variables=None):
        return apply(dense_gradients(grads), trainable_variables)

    optimizer.apply = apply_dense
    optimizer._zoo_dense_gradients = True
    return optimizer


def _replicas():
    """The replica context of a `tf.distribute` step and its number of
    replicas in sync (1 outside one)."""
    context = tf.distribute.get_replica_context()
    if context is None:  # cross-replica context: not inside a step
        return None, 1
    return context, context.num_replicas_in_sync


def batch_devices(model=None):
    """The replicas that share every batch: those of `model`'s
    `tf.distribute` strategy (the one it was created under), or of the
    strategy in scope without a model; 1 without one."""
    strategy = (model.distribute_strategy if model is not None
                else tf.distribute.get_strategy())
    return int(strategy.num_replicas_in_sync)


def check_batch_split(num_examples, batch_size, what, fix=None,
                      datasets=True, devices=None, predicting=False):
    """Raises a `ValueError` where a `tf.distribute` strategy would split a
    batch of arrays in a way the step cannot run, or not as one device.

    Every batch must be a multiple of the replicas. Keras' first step
    reduces the replicas' shares of the first batch
    (`_maybe_symbolic_build`), which fails unless they are equal ("Inputs
    to operation AddN ... must have the same size and shape"); a replica
    that gets no example fails in its gradients; and a last batch split
    unevenly (3 as 2 + 1) trained to other weights than one device: the
    noise each replica draws for its share (`draw_for_replica`) and the
    loss scaling (`scale_loss_for_replicas`) take equal shares (Keras
    3.15.1, TensorFlow 2.21). `predict` (`predicting`) takes any split
    where every replica gets an example (TensorFlow's convolutions fail on
    an empty share: "ConcatOp : Dimension 3 in both shapes must be
    equal"), and `predict_on_batch` (`predicting` with `datasets=False`)
    any batch. The message names `what` and a fix (`fix`, or a batch size or
    the examples to drop).
    """
    devices = batch_devices() if devices is None else devices
    if devices == 1 or not num_examples or predicting and not datasets:
        # (`predict_on_batch`'s one batch, `datasets=False`: every replica
        # gets it whole, and the zoo's keeps one replica's rows)
        return
    batch_size = int(batch_size)
    sizes = [min(batch_size, num_examples), num_examples % batch_size]
    if predicting:
        bad = [size for size in sizes if 0 < size < devices]
        need = "every batch needs one example per replica"
    else:
        bad = [size for size in sizes if size % devices]
        need = f"every batch must be a multiple of {devices}"
    if not bad:
        return
    last = sizes[1]
    if fix is None and predicting:
        fix = (f"predict at least {devices} examples"
               if num_examples < devices
               else f"pass a batch_size of at least {devices}"
               if batch_size < devices
               else f"drop the last {last} examples (keep "
                    f"{num_examples - last}), or pass a batch_size that "
                    f"leaves none or at least {devices} for the last batch")
    fix = fix or even_split_fix(num_examples, batch_size, devices)
    raise ValueError(
        f"{what[0].upper() + what[1:]} has {num_examples} examples in "
        f"batches of {batch_size}: a batch of {bad[0]} cannot be shared by "
        f"the tf.distribute strategy's {devices} replicas ({need}). "
        f"{fix[0].upper() + fix[1:]}"
        + (", or feed a tf.data dataset batched with drop_remainder=True."
           if datasets else "."))


def wrap_step_function(model, fn):
    """Keras' train, test or predict function of `model` as the zoo runs
    it (see `common.wrap_step_function`).

    Under a `tf.distribute` strategy of several replicas, the batch that
    Keras' `train_on_batch` and `test_on_batch` hand the function is split
    between the replicas, as `fit` splits its batches. Keras 3.15.1 gave
    every replica the whole batch: `train_on_batch(x)` on 2 replicas trained
    on two noisy copies of `x` (weights 3e-4 from one device's, measured),
    and `test_on_batch` averaged two evaluations.
    """
    if fn is None or getattr(fn, "_zoo_splits_batches", False) \
            or batch_devices(model) == 1:
        return fn

    def split(data):
        # `fit`, `evaluate` and `predict` pass an iterator of batches the
        # strategy split already (`predict_on_batch`, a list of one batch:
        # the zoo's keeps one replica's rows); the `*_on_batch` calls a
        # generator of one `(x, y, sample_weight)`
        if not isinstance(data, types.GeneratorType):
            return fn(data)
        batch = tuple(next(data))
        while batch and batch[-1] is None:
            batch = batch[:-1]
        size = int(tf.nest.flatten(batch)[0].shape[0])
        dataset = tf.data.Dataset.from_tensor_slices(batch).batch(size)
        return fn(iter(model.distribute_strategy
                       .experimental_distribute_dataset(dataset)))

    split._zoo_splits_batches = True
    return split


def variable_scope(model):
    """The scope where `model`'s variables must be created: the
    `tf.distribute` strategy it was created under (the default one
    otherwise), as Keras' `fit` does for the variables it creates. Inside
    a replica's step (Keras' `predict` builds a model there) none: the
    strategy creates them itself, and its scope cannot be entered there
    ("Method requires being in cross-replica context")."""
    if tf.distribute.has_strategy() and \
            tf.distribute.get_replica_context() is not None:
        return contextlib.nullcontext()  # a replica's step
    return model.distribute_strategy.scope()


def scale_loss_for_replicas(loss):
    """`loss / replicas in sync`: what Keras' own losses return under
    `tf.distribute` (`keras.losses.Loss.__call__`), since the optimizer
    sums the replicas' gradients. A `compute_loss` that returns a mean over
    its batch must do the same to get the global batch's gradient (and the
    "loss" that `fit` logs: Keras multiplies it back)."""
    _, replicas = _replicas()
    if replicas == 1:
        return loss
    return loss * tf.cast(1.0 / replicas, loss.dtype)


def draw_for_replica(draw, shape):
    """This replica's share of noise drawn for the global batch (see
    `keras_genzoo.backend.common.draw_for_replica`).

    Every replica's seed generator holds the same state (a mirrored
    variable) and advances the same way: drawing only its own rows, all
    replicas would get the same noise.
    """
    shape = tuple(shape)
    context, replicas = _replicas()
    if replicas == 1:
        return draw(shape)
    batch_size = shape[0]
    noise = draw((batch_size * replicas,) + shape[1:])
    start = tf.cast(context.replica_id_in_sync_group, "int32") * tf.cast(
        batch_size, "int32")
    return noise[start:start + batch_size]


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


class TensorFlowStep(StepOps):
    """`StepOps` on TensorFlow: gradient tapes, in-place assignment."""

    def minimize(self, optimizer, objective, variables):
        variables = list(variables)
        with tf.GradientTape() as tape:
            loss, logs = objective()
            # under tf.distribute the optimizer sums the replicas' gradients
            scaled = optimizer.scale_loss(scale_loss_for_replicas(loss))
        grads = dense_gradients(tape.gradient(scaled, variables))
        optimizer.apply(grads, variables)
        return logs

    def read(self, variables):
        # constants, as on JAX and PyTorch (the tape differentiated them)
        return [tf.stop_gradient(v.value) for v in variables]

    def assign(self, variables, values):
        for variable, value in zip(variables, values):
            variable.assign(value)

    def run(self, fn):
        return fn()


def custom_train_step(model, schedule, data):
    """A model's `train_step` from a backend-free schedule.

    Args:
        model: the model; `model.record_step(logs)` turns the schedule's
            logs into the metric results `fit` shows.
        schedule: `schedule(data, step)` returning a dict of logs; `step`
            is a `StepOps`.
        data: one batch as the dataset yields it.

    Returns:
        The logs: the results of `model.metrics`.
    """
    data = as_fit_batch(data)
    return model.record_step(schedule(data, TensorFlowStep()),
                             batch_size=batch_size_of(data))


# `evaluate` and `validation_data` run a schedule that makes no updates, the
# same way (on JAX the state then has no optimizer part).
custom_test_step = custom_train_step


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
    # (by qualified name as the warning's repr writes it: the set holds one
    # entry per definition, not one per closure made; a lambda's own repr,
    # or every lambda's warnings would be dropped)
    qualname = getattr(fn, "__qualname__", "<lambda>")
    _compiled_once.names.add(repr(fn) if qualname.endswith("<lambda>")
                             else f"<function {qualname} at")
    return tf.function(fn, jit_compile=True, reduce_retracing=True)


class _CompiledOnce(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning for the
    functions `compile_inference` compiled. TensorFlow counts traces per
    code object: closures of one definition (a MiniGPT's sampling loop,
    one per sampler setting, each traced once) read to it as one function
    traced again and again, and a sweep over five temperatures printed
    four warnings that tracing is expensive."""

    def __init__(self):
        super().__init__()
        self.names = set()  # the functions' qualified names

    def filter(self, record):
        message = record.getMessage()
        return not ("triggered tf.function retracing" in message
                    and any(name in message for name in self.names))


_compiled_once = _CompiledOnce()
tf.get_logger().addFilter(_compiled_once)
