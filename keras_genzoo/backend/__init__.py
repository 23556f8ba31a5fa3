"""The only place that imports TensorFlow, JAX or PyTorch for training.

Models whose training needs more than Keras' own `train_step` (GANs: two
losses, two optimizers, input gradients for penalties) describe *what* to
compute with backend-free objectives; the modules here say *how* gradients
are taken and applied on each backend. The module is chosen once, at import,
from `keras.backend.backend()`:

- `tensorflow_steps`: `tf.GradientTape`.
- `jax_steps`: `jax.value_and_grad` over stateless calls, with every piece
  of state (both optimizers, seed generators, batch-norm statistics, metrics)
  carried through the step explicitly.
- `torch_steps`: `backward()` after `zero_grad()`, `torch.autograd.grad` with
  `create_graph=True` for input gradients.

Each exposes `adversarial_train_step(model, ...)`, `input_gradients(fn, x)`
and `compile_inference(model, fn)` (the compiled sampling loop of the
language models: XLA on TensorFlow, `jax.jit` over explicit state on JAX,
eager under `torch.no_grad()` on PyTorch).
"""

import keras

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

adversarial_train_step = _steps.adversarial_train_step
input_gradients = _steps.input_gradients
compile_inference = _steps.compile_inference

__all__ = [
    "BACKEND",
    "adversarial_train_step",
    "compile_inference",
    "input_gradients",
]
