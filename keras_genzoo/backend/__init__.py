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
  `minimize(optimizer, objective, variables)`, `read(variables)` (their
  values as constants, which no gradient flows through),
  `assign(variables, values)`, `run(fn)` and `optimizer_steps(optimizer)`
  (the updates it applied, with gradient accumulation too).
- `custom_test_step(model, schedule, *args)`: the same as the model's
  `test_step` (`evaluate`, `validation_data`): a schedule without updates.
- `input_gradients(fn, x)`: gradients with respect to inputs, differentiable
  again (gradient penalties).
- `compile_inference(model, fn, state_variables)`: a compiled inference
  loop (XLA on TensorFlow, `jax.jit` over explicit state on JAX, eager under
  `torch.no_grad()` on PyTorch).
- `compile_loop_step(model, fn)`: one step of such a loop (a sampling
  loop's next-token logits) compiled on its own where the backend compiles
  the steps rather than the loop: `torch.compile` on PyTorch for a model
  compiled with `jit_compile=True`; `fn` as it is elsewhere (the loop is
  compiled whole) and on PyTorch by default.
- `run_sampler(model, sampler, next_fn, prompt, cache, index)`: keras-hub's
  `sampler(next_fn, prompt, ...)` inside a compiled inference function:
  keras-hub's own loop on TensorFlow and JAX (compiled whole); on PyTorch a
  loop that itself reads nothing of the device per token (keras-hub's
  samplers draw from their seed's state held on the host), whose sampler
  part (probabilities, draw, the token written) `torch.compile` compiles
  for a model compiled with `jit_compile=True`.
- `ema_update(step, averages, variables, decay)`: an exponential moving
  average written with `StepOps` alone (in `common`).
- `to_numpy(x)`: a tensor or a Keras variable as a numpy array, what
  `keras.ops.convert_to_numpy` gives, without the `DeprecationWarning`
  numpy 2 raises there for variables (for every tensor on PyTorch).
- `check_attention_dtype(dtype)`: a `ValueError` where attention in that
  compute dtype cannot run on this backend and device (float16 on JAX's
  CPU, which XLA cannot compile); nothing elsewhere. `MiniGPT` calls it.
- `check_batch_split(num_examples, batch_size, what, fix=None,
  datasets=True, devices=None, predicting=False)`: a `ValueError` where
  the `keras.distribution` set (JAX) or a `tf.distribute` strategy
  (TensorFlow) would split a batch of arrays in a way its step cannot run
  (nothing on PyTorch). The zoo's `fit`, `evaluate`, `predict`,
  `*_on_batch` and `make_datasets` call it (`datasets`: whether the
  message may suggest a tf.data dataset batched with
  `drop_remainder=True`; `devices`: `batch_devices(model)`;
  `predicting`: for `predict`, which TensorFlow runs on any split).
- `batch_devices(model=None)`: the devices that share every batch: under
  the `keras.distribution` set on JAX (its batch axis), the replicas of
  `model`'s `tf.distribute` strategy (or of the one in scope) on
  TensorFlow; 1 without one, or on PyTorch.
- `check_distribution(model=None)`: a `ValueError` where a
  `keras.distribution` is set on a backend whose `fit` ignores it
  (TensorFlow, PyTorch), or on JAX after `model`'s variables were made.
- `variable_scope(model)`: where variables created before `fit` runs
  (lazy builds, optimizer moments) must be created: the model's
  `tf.distribute` strategy scope on TensorFlow.
- `keep_state_on_error(model)`: a context for a call of Keras' `fit`,
  `evaluate` or `predict` that leaves the model's variables usable when the
  call raises (on JAX, Keras takes their values out for the loop and does
  not always put them back; nothing to do elsewhere).
- `collecting_losses(model)`: a context for running networks inside a
  `compute_loss`: inside it `model.losses` holds their `add_loss` terms
  (on JAX, Keras' trainer runs `compute_loss` in a scope that drops them
  and reads those of `call`; nothing to do elsewhere).
- `prepare_variables(model)`: lays out a built model's variables for this
  backend's kernels before any step (on PyTorch, a workaround for a CPU
  convolution bug with one-channel outputs; nothing elsewhere).
- `prepare_optimizer(optimizer)`: makes the optimizer apply correct
  updates for every gradient this backend gives it (on TensorFlow a table
  lookup's gradient, a `tf.IndexedSlices` with repeated ids, made dense
  first: Keras 3.15's Adam squared its rows before summing them; nothing
  elsewhere). The zoo's `compile` and `StepOps.minimize` do it.
- `wrap_step_function(model, fn)`: Keras' train, test or predict function
  as the zoo's models run it. On PyTorch with `jit_compile=True` the
  compiled step runs where Keras' seeded draws (as PyTorch custom ops
  drawing the same numbers) and its binary cross-entropy are traceable and
  dynamo traces `backward()`, so that a step is one graph (with
  `prepare_variables` giving batch normalisation traceable axes), traced
  once per model without dynamo's guards on its layers (the variables it
  trains, keeps and updates are checked before each step instead). On
  TensorFlow under a `tf.distribute` strategy of several replicas, the
  batch of `train_on_batch` and `test_on_batch` is split between the
  replicas as `fit` splits its batches (Keras 3.15 gave each the whole
  batch). `fn` as it is elsewhere.
- `group_normalization(x, groups, gamma, beta, epsilon)`: group
  normalisation over the last axis in one op, where the backend has one
  (PyTorch's `group_norm`); `None` on TensorFlow and JAX, which have no
  such op (their `fit` runs Keras' ops as one graph, without Python between
  them; XLA fuses them). `keras_genzoo.layers.GroupNormalization` uses it.
- `causal_self_attention_block(x, weights, num_heads, epsilon, dropout,
  cache, cache_update_index)`: a pre-norm GPT block (with a key/value
  cache: its output and the updated cache) in the backend's own ops, where
  running Keras' ops one by one costs Python per op at every step
  (PyTorch: nanoGPT's block in torch ops); `None` on TensorFlow and JAX,
  whose compiled steps have no Python per op.
  `keras_genzoo.layers.CausalSelfAttentionBlock` uses it.
- `token_and_position_embedding(ids, token_table, position_table,
  start_index)`, `tied_embedding_logits(x, gamma, beta, epsilon,
  token_table)` and `next_token_cross_entropy(logits, targets)`: a GPT's
  input embedding, its head (final layer normalisation and the tied
  reverse embedding) and its loss in the backend's own ops, for the same
  reason (PyTorch); `None` on TensorFlow and JAX. `MiniGPT` uses the
  first two, the language models' `compute_loss` the third. `GPT_OPS`
  names these three and `causal_self_attention_block` (e.g. to switch
  them off by name and measure Keras' ops instead, as
  `benchmarks/gpt_step_speed.py` does).
- `scale_loss_for_replicas(loss)` and `draw_for_replica(draw, shape)`:
  what data parallelism needs of a model (see docs/scaling.md). Under
  `tf.distribute` each replica runs the step on its share of the batch, so
  a `compute_loss` returning a batch mean divides it by the number of
  replicas (the optimizer sums their gradients), and noise drawn in a step
  is this replica's slice of noise drawn for the global batch (otherwise
  every replica draws the same). On JAX (`keras.distribution`) the step is
  one program over the global batch and both are the identity; on PyTorch
  too.
"""

import keras

from keras_genzoo.backend import common as _common
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


def check_distribution(model=None):
    """Raises a `ValueError` if a `keras.distribution` is set on a backend
    where Keras' `fit` would silently ignore it, or (JAX) if `model`'s
    variables were made before it was set: they live on one device, and
    Keras' first step failed inside JAX ("Received incompatible devices for
    jitted computation").

    In Keras 3.15 only the JAX backend distributes with
    `keras.distribution` (`DataParallel`, `ModelParallel`). On TensorFlow
    and PyTorch, `set_distribution(DataParallel(...))` is accepted and `fit`
    then trains on one device, as if nothing were set (measured): the zoo's
    models refuse that rather than let a user believe they train on many
    devices.

    Args:
        model: the model about to train, or `None` to check the backend
            only.

    Raises:
        ValueError: the message says what to do instead.

    Example:
        >>> import keras
        >>> from keras_genzoo import backend
        >>> keras.distribution.set_distribution(
        ...     keras.distribution.DataParallel(devices=["cpu:0"]))
        >>> try:
        ...     backend.check_distribution()
        ...     outcome = "trains"
        ... except ValueError:
        ...     outcome = "refused"
        >>> keras.distribution.set_distribution(None)
        >>> outcome == ("trains" if keras.backend.backend() == "jax"
        ...             else "refused")
        True
    """
    distribution = keras.distribution.distribution()
    if distribution is None:
        return
    if BACKEND == "jax":
        # The weights' devices against the mesh's, as sets (their count
        # let a model on device 0 pass a one-device mesh of device 1); the
        # weights of networks given to a model not built yet too. (Weights
        # only: Keras lays out seed generators' states on one device under
        # a distribution too.)
        variables = model.trainable_variables if model is not None else []
        mesh = set(distribution.device_mesh.backend_mesh.devices.flat)
        if any(getattr(getattr(v, "value", None), "sharding", None)
               is not None and set(v.value.sharding.device_set) != mesh
               for v in variables):
            raise ValueError(
                f"The {type(model).__name__}'s variables were made before "
                f"the keras.distribution ({distribution.__class__.__name__}) "
                "was set: they live on one device, which the distribution's "
                "step cannot combine with its own. Set the distribution "
                "first, then create (or load) the model.")
        return
    instead = {
        "tensorflow": "create and compile the model in a "
                      "`tf.distribute.MirroredStrategy().scope()` (or "
                      "MultiWorkerMirroredStrategy for many machines)",
        "torch": "train data parallel on the jax backend "
                 "(keras.distribution) or the tensorflow backend "
                 "(tf.distribute.MirroredStrategy); Keras' torch backend "
                 "has neither",
    }[BACKEND]
    raise ValueError(
        f"A keras.distribution is set ({distribution.__class__.__name__}), "
        f"but Keras {keras.__version__} distributes with it on the jax "
        f"backend only: on {BACKEND} `fit` would train on one device. "
        f"Unset it (`keras.distribution.set_distribution(None)`) and "
        f"{instead}. See the Scaling page of the docs.")


def _any_attention_dtype(dtype):
    """Attention runs in every compute dtype on this backend."""
    # (a body beyond the docstring: TensorFlow's AutoGraph, converting the
    # calls in a traced step, warned that it could not parse a bare one)
    return None


def _any_batch_split(num_examples, batch_size, what, fix=None,
                     datasets=True, devices=None, predicting=False):
    """This backend's `fit` takes batches of any size."""
    return None


def _one_device(model=None):
    """No `keras.distribution` shares batches on this backend."""
    return 1


check_attention_dtype = getattr(_steps, "check_attention_dtype",
                                _any_attention_dtype)
check_batch_split = getattr(_steps, "check_batch_split", _any_batch_split)
batch_devices = getattr(_steps, "batch_devices", _one_device)
input_gradients = _steps.input_gradients
compile_inference = _steps.compile_inference
compile_loop_step = _steps.compile_loop_step
run_sampler = _steps.run_sampler
scale_loss_for_replicas = _steps.scale_loss_for_replicas
draw_for_replica = _steps.draw_for_replica
variable_scope = _steps.variable_scope
prepare_variables = _steps.prepare_variables
prepare_optimizer = getattr(_steps, "prepare_optimizer",
                            _common.prepare_optimizer)
keep_state_on_error = _steps.keep_state_on_error
to_numpy = getattr(_steps, "to_numpy", _common.to_numpy)
collecting_losses = _steps.collecting_losses
wrap_step_function = _steps.wrap_step_function
group_normalization = getattr(_steps, "group_normalization", None)
causal_self_attention_block = getattr(_steps, "causal_self_attention_block",
                                      None)
token_and_position_embedding = getattr(_steps, "token_and_position_embedding",
                                       None)
tied_embedding_logits = getattr(_steps, "tied_embedding_logits", None)
next_token_cross_entropy = getattr(_steps, "next_token_cross_entropy", None)
# The names of the four above: what `MiniGPT` runs in the backend's own ops
# where they are not None (the benchmarks and tests switch them off by name).
GPT_OPS = ("causal_self_attention_block", "token_and_position_embedding",
           "tied_embedding_logits", "next_token_cross_entropy")

__all__ = [
    "BACKEND",
    "GPT_OPS",
    "adversarial_train_step",
    "StepOps",
    "causal_self_attention_block",
    "check_attention_dtype",
    "batch_devices",
    "check_batch_split",
    "check_distribution",
    "collecting_losses",
    "compile_inference",
    "compile_loop_step",
    "custom_test_step",
    "custom_train_step",
    "draw_for_replica",
    "ema_update",
    "group_normalization",
    "input_gradients",
    "keep_state_on_error",
    "next_token_cross_entropy",
    "prepare_optimizer",
    "prepare_variables",
    "run_sampler",
    "scale_loss_for_replicas",
    "tied_embedding_logits",
    "to_numpy",
    "token_and_position_embedding",
    "variable_scope",
    "wrap_step_function",
]

# Whether `keras_genzoo.layers.Conv2DTranspose` computes a strided "same"
# transposed convolution as one stride-1 convolution per output phase.
# Measured on the 2-core CPU (DCGAN step, batch 128, images/s): JAX 74 -> 365,
# TensorFlow 297 -> 297, PyTorch 420 -> 310; see docs/performance.md.
TRANSPOSED_CONV_BY_PHASES = BACKEND == "jax"
