"""The only place that imports TensorFlow, JAX or PyTorch for training.

A model whose training needs more than Keras' own `train_step` (a GAN: two
losses, two optimizers; a diffusion model: an EMA update after each step)
writes its *schedule* once, backend-free:

```python
def train_schedule(self, data, step):
    loss_logs = step.minimize(self.optimizer, objective, variables)
    step.assign(averages, new_values)
    return loss_logs

def train_step(self, *args):       # (data), or (state, data) on JAX
    return keras_genzoo.backend.custom_train_step(
        self, self.train_schedule, *args)
```

and the modules here say *how* each operation runs on each backend, chosen
once at import from `keras.backend.backend()`:

- `tensorflow_steps`: `tf.GradientTape`.
- `jax_steps`: `jax.value_and_grad` over stateless calls, with every piece
  of state (optimizers, seed generators, batch-norm statistics, metrics)
  carried through the step explicitly.
- `torch_steps`: `backward()` after `zero_grad()`, `torch.autograd.grad`
  with `create_graph=True` for input gradients.

Exports:

- `custom_train_step(model, schedule, *args)`: runs `schedule(data, step)`
  as the model's `train_step` and returns what Keras expects of one: the
  model's metric results after `model.record_step(logs)` (on JAX, with the
  new state). `step` is a `StepOps` with
  `minimize(optimizer, objective, variables)`, `read(variables)`,
  `assign(variables, values)` and `run(fn)`.
- `custom_test_step(model, schedule, *args)`: the same as the model's
  `test_step` (`evaluate`, `validation_data`): a schedule without updates.
- `input_gradients(fn, x)`: gradients with respect to inputs, differentiable
  again (gradient penalties).
- `compile_inference(model, fn, state_variables)`: a compiled inference
  loop (XLA on TensorFlow, `jax.jit` over explicit state on JAX, eager under
  `torch.no_grad()` on PyTorch).
- `ema_update(step, averages, variables, decay)`: an exponential moving
  average written with `StepOps` alone (in `common`).
"""

import keras

from keras_genzoo.backend.common import StepOps, ema_update

BACKEND = keras.backend.backend()

if BACKEND == "tensorflow":
    from keras_genzoo.backend import tensorflow_steps as _steps
elif BACKEND == "jax":
    from keras_genzoo.backend import jax_steps as _steps
elif BACKEND == "torch":
    from keras_genzoo.backend import torch_steps as _steps
else:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"keras_genzoo runs on the tensorflow, jax and torch backends; "
        f"KERAS_BACKEND is {BACKEND!r}."
    )

custom_train_step = _steps.custom_train_step
custom_test_step = _steps.custom_test_step


def adversarial_train_step(model, *args):
    """Deprecated (keras_genzoo 0.1.0): the GANs' step is now
    `custom_train_step(model, model.train_schedule, *args)`."""
    import warnings

    warnings.warn(
        "keras_genzoo.backend.adversarial_train_step is deprecated: use "
        "custom_train_step(model, model.train_schedule, *args).",
        DeprecationWarning, stacklevel=2)
    return custom_train_step(model, model.train_schedule, *args)

input_gradients = _steps.input_gradients
compile_inference = _steps.compile_inference

__all__ = [
    "BACKEND",
    "adversarial_train_step",
    "StepOps",
    "compile_inference",
    "custom_test_step",
    "custom_train_step",
    "ema_update",
    "input_gradients",
]
