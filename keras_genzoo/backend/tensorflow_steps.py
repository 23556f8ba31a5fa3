"""Custom training steps, input gradients and compiled inference on TensorFlow."""

import tensorflow as tf

from keras_genzoo.backend.common import StepOps


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
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        optimizer.apply(grads, variables)
        return logs

    def read(self, variables):
        return [v.value for v in variables]

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
    return model.record_step(schedule(data, TensorFlowStep()))


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
    return tf.function(fn, jit_compile=True, reduce_retracing=True)
