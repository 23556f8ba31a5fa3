"""The bases every model of the zoo stands on.

- `GenerativeModel`: what does not depend on the data: the model's own seed
  state (saved in `.keras` files), its config, the default compile, one
  check of the data before `fit`, `evaluate`, `train_on_batch` and
  `test_on_batch`, the metrics of a custom step, and `generate`.
- `ImageModel`: images of any shape (read from the first batch, or given),
  batches as arrays, datasets, `(images, labels)` or tfds dicts, uint8 or
  floats in [0, 1]; one clear `ValueError` for bad images.
- `LatentImageModel`: `encode` / `decode` / `reconstruct` of the
  auto-encoders.

Building follows Keras: `build(input_shape)` creates the networks for the
image shape, whoever calls it (Keras' own lazy build on `fit`,
`train_on_batch` or a first call, `.keras` loading through
`build_from_config`, or the data check before training).
"""

import contextlib
import functools
import inspect
import json
import math
import os
import types
import warnings

import numpy as np

import keras
from keras import ops

from keras_genzoo import _inputs
from keras_genzoo import backend as zoo_backend
from keras_genzoo.layers.seed_state import (
    ModelSeedStateSaving, evaluation_streams)
from keras_genzoo.optimizers import OptimizerPair, loss_scaled


# the `compile` arguments of a loss and metrics, which the zoo's models
# compute themselves (see `GenerativeModel.takes_compile_loss`)
_COMPILE_LOSS_ARGUMENTS = ("loss", "loss_weights", "metrics",
                           "weighted_metrics")


def _check_image_shape(image_shape):
    shape = tuple(image_shape)
    if len(shape) != 3 or any(
        d is None or int(d) <= 0 for d in shape
    ):
        raise ValueError(
            "`image_shape` must be (height, width, channels) with positive "
            f"sizes, e.g. (28, 28, 1); got {shape}."
        )
    return tuple(int(d) for d in shape)


def _is_stream(x):
    """A tf.data dataset, loader or generator: Keras ignores `shuffle` for
    those (and warns); it reorders the batches of arrays and PyDatasets."""
    return x is not None and not isinstance(
        x, (np.ndarray, list, tuple, dict, keras.utils.PyDataset)) and not (
        hasattr(x, "shape") and hasattr(x, "dtype"))


def _batch_size(args, kwargs):
    """The `batch_size` of a `fit`, `evaluate` or `predict` call (the first
    argument after the data in all three), `None` if not given."""
    return kwargs.get("batch_size", args[0] if args else None)


@contextlib.contextmanager
def _global_dtype_policy(policy):
    """Makes `policy` Keras' global dtype policy for the block: the
    built-in networks, whose layers take the global one, follow the
    model's `dtype` (before, `VAE(dtype="mixed_bfloat16")` trained float32
    networks, and a float32 file loaded in a `mixed_float16` process got
    float16 networks without loss scaling)."""
    previous = keras.config.dtype_policy()
    if getattr(policy, "quantization_mode", None):
        # (a quantized policy, "int8_from_mixed_bfloat16": its source)
        policy = keras.dtype_policies.DTypePolicy(
            policy.name.split("_from_", 1)[-1])
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _array_count(x):
    """The examples in arrays `x` as Keras reads them (`None` for a stream
    or a `PyDataset`)."""
    if x is None or _is_stream(x) or isinstance(x, keras.utils.PyDataset):
        return None
    leaves = keras.tree.flatten(x)
    if not leaves or getattr(leaves[0], "shape", None) is None \
            or not len(leaves[0].shape):
        return None
    return int(leaves[0].shape[0])


def _check_one_batch(model, x, what, predicting=False):
    """`backend.check_batch_split` for the one batch `x` of `*_on_batch`
    (before, JAX's `IndivisibleError` came from inside Keras' step)."""
    count = _array_count(x)
    if count:
        zoo_backend.check_batch_split(
            count, count, what, datasets=False,
            fix="pass a batch whose size is a multiple of the devices",
            devices=zoo_backend.batch_devices(model), predicting=predicting)


def _check_batch_split(model, x, batch_size, what, validation_split=0.0,
                       predicting=False, validation_batch_size=None):
    """`backend.check_batch_split` for arrays (`x` as Keras reads it, the
    `batch_size` given to Keras: 32 if `None`; a `validation_split` holds
    the last examples out, as Keras does), with `model`'s devices (its
    `tf.distribute` replicas on TensorFlow: TensorFlow's shape errors
    from inside the step before)."""
    count = _array_count(x)
    if count is None:
        return
    devices = zoo_backend.batch_devices(model)
    if devices == 1:
        return
    batch_size = 32 if batch_size is None else batch_size
    if validation_split:
        split_at = int(math.floor(count * (1.0 - validation_split)))
        # (Keras evaluates it in batches of `validation_batch_size`: checked
        # with `batch_size`, an odd one failed at the end of the first
        # epoch)
        zoo_backend.check_batch_split(
            count - split_at, validation_batch_size or batch_size,
            f"the last {validation_split:g} of {what} (validation_split)",
            fix="pass a validation_batch_size that is a multiple of the "
                "device count" if validation_batch_size
                and validation_batch_size % devices else
                "pass a validation_split that holds out a multiple of the "
                "device count, or validation_data", devices=devices)
        count = split_at
    zoo_backend.check_batch_split(count, batch_size, what, devices=devices,
                                  predicting=predicting)


def _data_shape(x):
    """The shape of the model inputs in `x` (an array, or a tf.data
    dataset's first element), or `None` where it cannot be seen without
    reading data."""
    if hasattr(x, "element_spec"):
        spec = _inputs.extract_images(x.element_spec)
        return tuple(spec.shape) if hasattr(spec, "shape") else None
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return (None,) + tuple(x.shape)[1:]
    return None


def check_network(network, name):
    """Checks that `network` is a Keras layer or model; returns it."""
    if not isinstance(network, keras.layers.Layer):
        raise ValueError(
            f"`{name}` must be a Keras model or layer; got "
            f"{type(network).__name__}."
        )
    return network


# layers that move values without changing them
_SHAPE_ONLY = (keras.layers.Reshape, keras.layers.Flatten,
               keras.layers.Permute, keras.layers.Identity,
               keras.layers.Cropping2D, keras.layers.UpSampling2D)


def is_keras_activation(name):
    """Whether `name` names one of Keras' activations."""
    try:
        keras.activations.get(name)
    except (ValueError, TypeError):
        return False
    return True


def final_activation(network):
    """`(name, layer)` of the activation a functional or Sequential
    network applies last (`"sigmoid"` for `Dense(1, "sigmoid")` or a
    final `Activation("sigmoid")`; nested models and final layers that only
    move values, such as `Reshape`, are looked through), else
    `(None, None)`: a subclassed network, or a last layer without an
    `activation`."""
    try:
        outputs = network.outputs
    except (AttributeError, ValueError):
        return None, None
    if not outputs or len(outputs) != 1:
        return None, None
    history = getattr(outputs[0], "_keras_history", None)
    layer = getattr(history, "operation", None)
    while isinstance(layer, _SHAPE_ONLY):  # look through a final Reshape
        try:
            node = layer._inbound_nodes[history.node_index]
            (tensor,) = node.input_tensors
        except (AttributeError, IndexError, ValueError):
            return None, None
        history = getattr(tensor, "_keras_history", None)
        layer = getattr(history, "operation", None)
    if layer is None:
        return None, None
    if isinstance(layer, keras.Model):
        return final_activation(layer)
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None)
    return (name, layer) if name else (None, None)


def network_input_shapes(network):
    """The input shapes of a functional/Sequential network, else `None`."""
    try:
        inputs = network.inputs
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    return [tuple(t.shape) for t in inputs]


def with_added_losses(loss, losses):
    """`loss` plus the terms in `losses` (a layer's `.losses`: its
    `add_loss` terms and its weights' regularization penalties), in
    float32; `loss` itself when there are none.

    The terms are added one by one, not with `ops.sum(losses)`: on JAX that
    builds one array from the list, which fails (`Cannot determine dtype`)
    when some terms depend on the variables being differentiated and others
    do not (an `add_loss` term of the inputs alone).
    """
    for term in losses:
        loss = loss + ops.cast(term, "float32")
    return loss


def split_losses(network):
    """`network.losses` in two lists: the `add_loss` terms of its latest
    call (activity regularizers and the like), and its weights'
    regularization penalties, which do not depend on calls.

    Keras' `Layer.losses` lists the penalties last, one per trainable
    weight with a regularizer.
    """
    losses = list(network.losses)
    penalties = sum(1 for variable in network.trainable_weights
                    if getattr(variable, "regularizer", None) is not None)
    split = len(losses) - penalties
    return losses[:split], losses[split:]


def pixel_bce(images, probabilities):
    """Binary cross-entropy per pixel, `images` in [0, 1] against decoded
    `probabilities`, clipped to [eps, 1 - eps].

    Keras' own formula on TensorFlow and JAX, written in `keras.ops` so that
    PyTorch computes it the same way: `ops.binary_crossentropy` there calls
    `torch.nn.functional.binary_cross_entropy`, which raises on a NaN
    probability instead of letting a diverged loss show as NaN.
    """
    eps = keras.config.epsilon()
    images = ops.cast(images, "float32")
    probabilities = ops.clip(ops.cast(probabilities, "float32"), eps,
                             1.0 - eps)
    return -(images * ops.log(probabilities)
             + (1.0 - images) * ops.log(1.0 - probabilities))


def portable_config(config):
    """`config` (a serialized compile config or optimizer) with Keras'
    backend-specific classes replaced by their public ones.

    On PyTorch, Keras' optimizers are subclasses in
    `keras.src.backend.torch.optimizers` (e.g. `torch_adam.Adam`) and
    serialize under that module: a file saved there would make TensorFlow
    or JAX build torch's optimizer, which fails at the first step (Keras
    3.15). The public class of the same name (`keras.optimizers.Adam`) is
    what every backend should rebuild; it makes the backend's own.
    """
    if isinstance(config, list):
        return [portable_config(value) for value in config]
    if not isinstance(config, dict):
        return config
    config = {key: portable_config(value) for key, value in config.items()}
    module = config.get("module")
    if (isinstance(module, str) and module.startswith("keras.src.backend.")
            and hasattr(keras.optimizers, str(config.get("class_name")))):
        config["module"] = "keras.optimizers"
        config["registered_name"] = None
    return config


def loadable_compile_config(config):
    """A saved compile config as this backend can compile with it: Keras'
    PyTorch backend runs one step per execution only (its `fit` raises
    otherwise), so a file saved with `steps_per_execution=N` elsewhere
    loads on PyTorch with 1, and a warning."""
    steps = config.get("steps_per_execution")
    if keras.backend.backend() == "torch" and steps not in (None, 1):
        warnings.warn(
            f"The model was compiled with steps_per_execution={steps}, "
            "which Keras' PyTorch backend does not run: it is loaded with "
            "1.", stacklevel=3)
        config = dict(config, steps_per_execution=1)
    return config


def check_one_output(output, network, contract):
    """`output` if it is one tensor; a `ValueError` naming the contract if
    the network returns several (a list, tuple or dict: they failed with
    an AttributeError from deep inside the model)."""
    if isinstance(output, (list, tuple, dict)):
        raise ValueError(
            f"Contract: {contract}; this {network} returns a "
            f"{type(output).__name__} of {len(output)} outputs. Return one "
            "tensor (wrap the network in a Model that keeps the output "
            "the contract names).")
    return output


def probe_labels(num_classes):
    """The labels of a contract probe of two: the first and the last class
    (`None` for an unconditional model)."""
    if not num_classes:
        return None
    return ops.convert_to_tensor([0, int(num_classes) - 1], "int32")


def run_probe(call, labels, num_classes, name):
    """`call(labels)` (a user's network on a probe batch of two), where a
    label table smaller than `num_classes` is one contract `ValueError`:
    it failed at the first step on TensorFlow and PyTorch, and trained on
    NaN on JAX, when the probe tried class 0 alone."""
    too_few = (
        f"Contract: a conditional model's {name} takes labels in "
        f"0..num_classes-1; this {name} failed on label {num_classes - 1} "
        f"(of `num_classes={num_classes}`)" if num_classes else "")
    fix = (f"give its label `Embedding` (or one-hot) num_classes="
           f"{num_classes} rows.")
    try:
        outputs = call(labels)
    except Exception as error:
        if not num_classes:
            raise
        try:  # the first class alone: the labels are what failed?
            call(ops.zeros_like(labels))
        except Exception:
            raise error from None
        raise ValueError(f"{too_few}: {fix}") from error
    if num_classes and _last_class_alone_is_nan(call, labels, outputs):
        # (JAX reads a row past the table's end as NaN)
        raise ValueError(f"{too_few} (its outputs are NaN for it): {fix}")
    return outputs


def _last_class_alone_is_nan(call, labels, outputs):
    """Whether the probe's second example (the last class) has non-finite
    outputs that the first class gives finite: checked again with the
    first class in both places. Outputs without a batch axis of 2 are
    left to the shape contracts that follow."""
    def rows(values):
        return [zoo_backend.to_numpy(ops.cast(v, "float32"))
                for v in keras.tree.flatten(values)]

    found = rows(outputs)
    if not found or any(v.ndim < 1 or v.shape[0] != 2 for v in found):
        return False
    if all(np.isfinite(v).all() for v in found) or not all(
            np.isfinite(v[0]).all() for v in found):
        return False
    return all(np.isfinite(v).all()
               for v in rows(call(ops.zeros_like(labels))))


def _check_float_output(outputs, network, what):
    """A `ValueError` for a user's network whose outputs (on a probe
    batch) are not floats: no gradient flows through them (JAX trained
    with zero gradients in silence; TensorFlow and PyTorch failed with
    "No gradients provided" / "does not require grad")."""
    for output in outputs:
        dtype = keras.backend.standardize_dtype(ops.dtype(output))
        if not keras.backend.is_float_dtype(dtype):
            raise ValueError(
                f"Contract: a {network} returns float {what}; this "
                f"{network} returns {dtype} (a cast or rounding at its end?"
                "), through which no gradient flows. Drop the cast and "
                "return floats.")


def _with_divergence_check(callbacks, model):
    """`callbacks` plus a `StopOnDivergence`, unless it holds one (or Keras'
    `TerminateOnNaN`, for a `model` that logs the `loss` it reads) or is a
    `CallbackList` the user assembled."""
    from keras_genzoo.callbacks import StopOnDivergence

    if isinstance(callbacks, keras.callbacks.CallbackList):
        return callbacks
    callbacks = list(callbacks or [])
    if any(isinstance(c, StopOnDivergence) for c in callbacks):
        return callbacks
    if any(isinstance(c, keras.callbacks.TerminateOnNaN) for c in callbacks):
        if any(m.name == "loss" for m in model.metrics):
            return callbacks
        # Keras' TerminateOnNaN reads `logs["loss"]` alone, which a GAN
        # does not log (`d_loss`, `g_loss`): it never fired, and with it
        # no check ran, so a GAN trained on NaN weights to the last epoch.
        # What it would do, on the losses the model logs: stop, keeping
        # the weights.
        callbacks.insert(0, StopOnDivergence(restore=False))
        return callbacks
    # first, so that at the end of a diverged epoch the weights are put
    # back before any other callback (a checkpoint) sees them
    callbacks.insert(0, StopOnDivergence())
    return callbacks


@functools.lru_cache(maxsize=None)
def _keras_signature(method):
    """The signature of `keras.Model.<method>`, read once (`train_on_batch`
    runs once a step)."""
    return inspect.signature(getattr(keras.Model, method))


_WEIGHTS_IGNORED = "weighs every example alike and would ignore"
_WEIGHTS_FIX = ("To weigh images or classes, repeat or leave out examples "
                "in the data instead (e.g. with "
                "`tf.data.Dataset.rejection_resample`).")


# How a model's `load_own_variables` starts the `ValueError` that says what
# differs between a weights file and the model; `load_weights` raises it as
# it is, instead of its general "another model" message.
OWN_MISMATCH_PREFIX = "These weights were saved by"


class GenerativeModel(ModelSeedStateSaving, keras.Model):
    """Base of every model of the zoo, whatever its data.

    It gives a model

    - a seed generator (`self.seed_generator`) whose state is saved in the
      `.keras` file, and `sample_seed(seed)` to draw reproducibly;
    - a default compile: `compile()` without an optimizer, and `fit`,
      `evaluate`, `train_on_batch` and `test_on_batch` on an uncompiled
      model, use `default_optimizer()` and `default_jit_compile()`;
    - one data check before any of these four runs a step
      (`check_data(x, y, what)`, a hook for subclasses);
    - a clear `ValueError` for sample weights (`sample_weight=`,
      `class_weight=`, or `(x, y, sample_weight)` batches), which Keras
      would hand to `compute_loss` and the zoo's losses do not use; a
      subclass whose `compute_loss` weighs its examples sets
      `takes_sample_weights = True`;
    - a clear `ValueError` for `compile(loss=, loss_weights=, metrics=,
      weighted_metrics=)`, which the zoo's `compute_loss` would ignore
      (or Keras would fail on, deep inside its step); a subclass whose
      `compute_loss` calls Keras' compiled loss sets
      `takes_compile_loss = True`;
    - `record_step(logs)`, which turns a custom step's logs into the
      results of the model's metrics (see `keras_genzoo.backend`);
    - `generate(num_samples, seed=None)`, to implement.

    Args:
        seed: optional integer seed of the model's own randomness.
        **kwargs: standard `keras.Model` arguments (`name`, `dtype`).

    Examples:
        A model of vectors, trained by Keras' own step:

        >>> import keras, numpy as np
        >>> from keras import ops
        >>> from keras_genzoo.models import GenerativeModel
        >>> class Gaussian(GenerativeModel):
        ...     def build(self, input_shape):
        ...         self.mean = self.add_weight(shape=input_shape[1:],
        ...                                     initializer="zeros")
        ...     def call(self, x):
        ...         return ops.broadcast_to(self.mean, ops.shape(x))
        ...     def compute_loss(self, x=None, y=None, y_pred=None,
        ...                      sample_weight=None, training=True):
        ...         return ops.mean(ops.square(y_pred - x))
        ...     def generate(self, num_samples, seed=None):
        ...         noise = keras.random.normal(
        ...             (num_samples,) + tuple(self.mean.shape),
        ...             seed=self.sample_seed(seed))
        ...         return ops.convert_to_numpy(self.mean + noise)
        >>> model = Gaussian(seed=0)
        >>> _ = model.fit(np.ones((64, 3), "float32") * 2, epochs=50,
        ...               verbose=0)
        >>> model.generate(2, seed=1).shape
        (2, 3)
    """

    def __init__(self, seed=None, **kwargs):
        _inputs.warn_if_backend_changed()
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(
            _inputs.generator_seed(seed))

    # ------------------------------------------------------------ compile
    def default_optimizer(self):
        """The optimizer of an uncompiled model: Adam(1e-3)."""
        return keras.optimizers.Adam(learning_rate=1e-3)

    def default_jit_compile(self):
        """The `jit_compile` of the default compile (Keras' "auto")."""
        return "auto"

    def compile(self, optimizer=None, **kwargs):
        """Configures training; see `keras.Model.compile`.

        Args:
            optimizer: the optimizer; default `default_optimizer()` (where
                `keras.Model.compile` would take RMSprop).
            **kwargs: the other `keras.Model.compile` arguments; the default
                `jit_compile` is `default_jit_compile()`.
        """
        self._refuse_compile_loss(kwargs)
        if optimizer is None:
            optimizer = self.default_optimizer()
        self._jit_compile_given = "jit_compile" in kwargs
        kwargs.setdefault("jit_compile", self.default_jit_compile())
        super().compile(optimizer=optimizer, **kwargs)
        # (TensorFlow: lookups' gradients dense before Keras' update)
        zoo_backend.prepare_optimizer(self.optimizer)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None and not getattr(self, "_jit_compile_given",
                                              True):
            # The default is chosen per backend (XLA for a GPT on
            # TensorFlow): a file saved there must not ask torch.compile of
            # the backend that loads it, so only a user's own choice is kept.
            config = dict(config)
            config.pop("jit_compile", None)
        return portable_config(config)

    def compile_from_config(self, config):
        # What `keras.Model.compile_from_config` does; it skips models that
        # override `compile` (with a warning) instead of calling it. Files
        # saved under PyTorch before `portable_config` existed load too.
        config = loadable_compile_config(
            keras.saving.deserialize_keras_object(portable_config(config)))
        if not self.takes_compile_loss:
            # files saved before `compile` refused them (a VAE took a loss
            # and ignored it) load, with what they held dropped
            given = [key for key in _COMPILE_LOSS_ARGUMENTS
                     if config.get(key)]
            if given:
                warnings.warn(
                    f"This {type(self).__name__} file's compile config "
                    f"holds {given}, which the model does not use (it "
                    f"computes its own loss and metrics): dropped.",
                    stacklevel=2)
                for key in given:
                    config.pop(key)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def load_weights(self, filepath, *args, **kwargs):
        """`keras.Model.load_weights`; a compiled model also takes the
        file's optimizer state (Keras skipped it, with a warning, for an
        optimizer not built yet, and training went on from step 0; a
        GAN's `compile` built its pair already). A built model that is
        not compiled yet is compiled with `default_optimizer()` first
        where the file holds the state of such an optimizer (what `fit`
        would compile with: its state was dropped, and a resumed schedule
        restarted at step 0)."""
        if self.built and not self.compiled and not isinstance(
                getattr(self, "optimizer", None), OptimizerPair):
            saved = _saved_optimizer_size(filepath, self.optimizer_groups)
            if saved is not None and saved == self.default_optimizer_size():
                self.compile()
        if (self.built and self.compiled and self.optimizer is not None
                and not self.optimizer.built):
            # (a file from a model that never trained holds an optimizer
            # not built either: Keras would warn of the mismatch; a GAN's
            # pair keeps its optimizers' states apart, as they are)
            saved = None if isinstance(self.optimizer, OptimizerPair) else (
                _saved_optimizer_size(filepath))
            if saved is None or saved > len(self.optimizer.variables):
                self.optimizer.build(self.trainable_variables)
        try:
            return super().load_weights(filepath, *args, **kwargs)
        except ValueError as error:
            if "could not be loaded" not in str(error):
                raise
            # a model's own message of what differs (Keras quotes it after
            # its first line)
            parts = str(error).split("\n\n")
            if len(parts) > 1 and parts[1].startswith(OWN_MISMATCH_PREFIX):
                raise ValueError(
                    f"{os.fspath(filepath)}: {parts[1]}") from error
            # Keras' message names a layer that "received 0 variables"
            # (the file has them, of other shapes), not the cause
            raise ValueError(
                f"{os.fspath(filepath)} holds the weights of another model "
                f"than this {type(self).__name__}: another configuration "
                "(latent_dim, filters, image shape, vocabulary, sizes) or "
                "another class. Make the model with the arguments of the "
                "one that saved it, or, to start anew, remove the file (for "
                "`BackupAndRestore`, its backup folder). Keras said: "
                f"{str(error).splitlines()[0]}") from error

    # The entries of a weights file that hold the model's optimizer state.
    optimizer_groups = ("optimizer",)

    def default_optimizer_size(self):
        """How many variables the optimizer of `compile()` (without
        arguments) holds once built for this built model: what
        `load_weights` compares a file's optimizer state with."""
        default = self.default_compiled_optimizer()
        default.build(self.trainable_variables)
        return len(default.variables)

    def default_compiled_optimizer(self):
        """A new `default_optimizer()` as `compile()` holds it: in a
        `LossScaleOptimizer` under a `mixed_float16` policy (as Keras'
        `compile` wraps it; counted bare, a `mixed_float16` file's state
        never matched, and `load_weights` into a model not compiled yet
        dropped it)."""
        default = self.default_optimizer()
        if self.dtype_policy.name == "mixed_float16":
            default = loss_scaled(default)
        return default

    def _ensure_compiled(self):
        if not self.compiled:
            self.compile()
        # The optimizer's variables are made here, before Keras' `fit`:
        # made inside it, on JAX, after `keep_state_on_error` took the
        # model's state, a first step that raised left them empty, and
        # every later `fit` or `evaluate` failed ("'NoneType' object is not
        # callable"). The GANs build theirs in their own `_ensure_compiled`.
        if self.built and self.optimizer is not None \
                and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    # Keras makes these at the first fit / evaluate / predict (and on
    # PyTorch compiles them with `jit_compile=True`); the backend module may
    # wrap them (on PyTorch: so that a compiled step is one graph).
    def _wrap_function(self, attribute):
        function = zoo_backend.wrap_step_function(self,
                                                  getattr(self, attribute))
        setattr(self, attribute, function)
        return function

    def _setting_names(self):
        """The model's settings: the arguments of its classes' `__init__`
        held as attributes of a number, string or bool (`gp_weight`,
        `d_steps`, `label_smoothing`, `beta`...), found once. (Read from
        the signatures, not `get_config`, which serializes every network
        and fails for some own layers.)"""
        names = getattr(self, "_setting_keys", None)
        if names is None:
            found = set()
            for cls in type(self).__mro__:
                if "__init__" not in vars(cls) or not issubclass(
                        cls, GenerativeModel):
                    continue
                found.update(inspect.signature(cls.__init__).parameters)
            names = self._setting_keys = tuple(sorted(
                name for name in found - {"self"}
                if not isinstance(getattr(type(self), name, None), property)
                and isinstance(getattr(self, name, None),
                               (bool, int, float, str))))
        return names

    def _settings_changed(self, attribute):
        """Whether a setting of the model (`_setting_names`) changed since
        `attribute`'s function was made, and records them as they are now.

        TensorFlow and JAX trace a step once and keep the values it read:
        `model.gp_weight = 0` before the next `fit` changed the loss on
        PyTorch alone. A changed setting now makes the step again, at the
        start of the next `fit`, `evaluate` or `predict`. Inside a `fit`,
        its validation's step has the settings of its train step, which
        keeps the values it was made with (`val_loss` came from other
        settings than `loss` after a KL-annealing callback changed `beta`,
        and the test step was made again every epoch).
        """
        now = tuple(getattr(self, key, None) for key in self._setting_names())
        if getattr(self, "_settings_of_functions", None) is None:
            self._settings_of_functions = {}
        # (read back: Keras' attribute tracking keeps a copy of a dict)
        made = self._settings_of_functions
        if attribute == "test_function" and getattr(self, "_fitting", False):
            now = made.get("train_function", now)
        changed = attribute in made and made[attribute] != now
        made[attribute] = now
        return changed

    def make_train_function(self, force=False):
        force = self._settings_changed("train_function") or force
        super().make_train_function(force)
        return self._wrap_function("train_function")

    def make_test_function(self, force=False):
        force = self._settings_changed("test_function") or force
        super().make_test_function(force)
        return self._wrap_function("test_function")

    def make_predict_function(self, force=False):
        force = self._settings_changed("predict_function") or force
        super().make_predict_function(force)
        return self._wrap_function("predict_function")

    # -------------------------------------------------------- entry points
    def export_signature(self):
        """The `input_signature` `export` serves by default: `None` here
        (Keras' own, inferred from a first call); the zoo's models give
        what their `call` takes."""
        return None

    def ensure_built(self, method):
        """Builds the model before `method` (e.g. `"export"`) where it
        knows its input shape; a subclass that does overrides it."""
        del method  # the base model knows no input shape

    def summary(self, *args, **kwargs):
        """`keras.Model.summary`, of the model built where it knows its
        input shape (`image_shape=` given, a text model): before the first
        `fit` it listed no networks and 0 parameters."""
        if not self.built:
            try:
                self.ensure_built("summary")
            except ValueError:
                pass  # no shape known: what there is, as Keras shows it
        return super().summary(*args, **kwargs)

    def export(self, filepath, format="tf_saved_model", verbose=None,
               input_signature=None, **kwargs):
        """`keras.Model.export`; the signature defaults to
        `export_signature()`. Keras inferred it from a first call, which a
        model trained on JAX, a GAN or a model just loaded never had ("The
        model provided has never called"), and served a conditional model
        its images alone."""
        self.ensure_built("export")
        if input_signature is None:
            input_signature = self.export_signature()
        return super().export(filepath, format=format, verbose=verbose,
                              input_signature=input_signature, **kwargs)

    def check_data(self, x, y=None, what="the training data"):
        """Checks `x` before any step runs; returns `x` ready for Keras.

        Subclasses raise one `ValueError` naming the fix for data they
        cannot train on, and may build themselves from what they read.
        """
        return x

    def prepare_targets(self, x, y):
        """`y` (the targets given next to an array `x`, already checked by
        `check_data`) as Keras gets them; a hook for subclasses."""
        return y

    # Whether `compute_loss` uses the losses and metrics of `compile`: the
    # zoo's models compute and log their own. Given anyway, a loss was
    # ignored in silence (VAE, AutoEncoder) and metrics failed inside Keras'
    # step with another message per backend (on JAX and PyTorch a
    # DiffusionModel's `fit` failed even with a loss).
    takes_compile_loss = False

    # The methods that compute the loss, which a subclass overrides for
    # another one (the custom steps of the GANs and the diffusion model
    # never call `compute_loss`).
    loss_methods = "`compute_loss`"

    def _refuse_compile_loss(self, kwargs):
        """One `ValueError` for the `compile` arguments of a loss or
        metrics, unless `takes_compile_loss`; drops empty ones (what a
        `.keras` file's compile config holds)."""
        for key in _COMPILE_LOSS_ARGUMENTS:
            if self.takes_compile_loss or key not in kwargs:
                continue
            if kwargs[key]:
                raise ValueError(
                    f"A {type(self).__name__} computes and logs its own "
                    f"loss and metrics (see `model.metrics_names` after "
                    f"`fit`); drop `{key}=` from `compile`. For another "
                    f"loss, subclass it and override "
                    f"{self.loss_methods}.")
            kwargs.pop(key)

    # Whether `compute_loss` (or a custom step) uses `sample_weight`: the
    # zoo's losses weigh every image (or character) alike, so they refuse
    # weights rather than ignore them.
    takes_sample_weights = False

    def _refuse_sample_weights(self, method, args, kwargs):
        """One `ValueError` for sample or class weights given to `method`
        (`fit`, `evaluate`, `train_on_batch`, `test_on_batch`), where
        Keras would pass them on to a loss that ignores them."""
        if self.takes_sample_weights:
            return
        try:  # the arguments as Keras' own method takes them
            given = _keras_signature(method).bind(
                self, None, None, *args, **kwargs).arguments
        except TypeError:
            return  # Keras' own method says what is wrong
        names = [f"`{name}`" for name in ("sample_weight", "class_weight")
                 if given.get(name) is not None]
        validation = given.get("validation_data")
        if isinstance(validation, (tuple, list)) and len(validation) > 2 \
                and validation[2] is not None:
            names.append("sample weights in `validation_data`")
        if names:
            raise ValueError(
                f"{type(self).__name__}.{method} got {' and '.join(names)}, "
                f"but its loss {_WEIGHTS_IGNORED} them: drop them. "
                f"{_WEIGHTS_FIX}")

    def _refuse_weighted_batches(self, data, what):
        """One `ValueError` for a stream of `(x, y, sample_weight)`
        batches (checked on the first batch that `check_data` read)."""
        if not self.takes_sample_weights and (
                _inputs.yields_sample_weights(data)):
            raise ValueError(
                f"{what[:1].upper()}{what[1:]} yields (x, y, sample_weight) "
                f"batches, but "
                f"{type(self).__name__}'s loss {_WEIGHTS_IGNORED} the "
                f"weights: yield (x, y) or bare x batches. {_WEIGHTS_FIX}")

    def _before_steps(self, x, y, what, training=False):
        """The data check, then a build from the data's shape if the check
        did not build the model: on TensorFlow, Keras would otherwise build
        it while tracing the first step, which a custom step (which may not
        call the model) cannot rely on. Returns `(x, y)` for Keras.

        Variables created here (the networks, the optimizers' moments) are
        created in the model's `tf.distribute` strategy scope, where `fit`
        would create them. Before training (`training`), `check_trainable`
        runs before the optimizer is built: built on the variables of a
        network frozen by mistake, it refused them once unfrozen."""
        zoo_backend.check_distribution(self)
        with zoo_backend.variable_scope(self):
            given = x
            x = self.check_data(x, y, what)
            self._refuse_weighted_batches(given, what)
            y = self.prepare_targets(x, y)
            if not self.built:
                shape = _data_shape(x)
                if shape is not None:
                    self.build(shape)
            if training:
                self.check_trainable()
            self._ensure_compiled()
        zoo_backend.prepare_variables(self)
        return x, y

    def check_trainable(self):
        """A hook, before `fit` and `train_on_batch`: one `ValueError` for
        networks the model cannot train as they are (see the GANs')."""
        return None  # (a body of only a docstring: AutoGraph cannot convert)

    def _frozen_networks(self):
        """The names (of `network_arguments`) of the networks that have
        weights, none of them trainable."""
        return [name for name in getattr(self, "network_arguments", ())
                if getattr(self, name, None) is not None
                and getattr(self, name).weights
                and not getattr(self, name).trainable_weights]

    def check_validation_data(self, validation_data):
        """Checks `fit`'s `validation_data` like the training data."""
        what = "the validation data"
        if validation_data is None:
            return None
        if isinstance(validation_data, (tuple, list)):
            y = validation_data[1] if len(validation_data) > 1 else None
            first = self.check_data(validation_data[0], y, what)
            rest = tuple(validation_data[1:])
            if y is not None:
                rest = (self.prepare_targets(first, y),) + rest[1:]
            return (first,) + rest
        checked = self.check_data(validation_data, None, what)
        self._refuse_weighted_batches(validation_data, what)
        return checked

    def fit(self, x=None, y=None, *args, **kwargs):
        """Trains the model; see `keras.Model.fit` for every argument.

        Beyond `keras.Model.fit`: the data is checked first (one clear
        `ValueError` for bad input), and an uncompiled model is compiled
        with `default_optimizer()`. Keras does not reshuffle tf.data
        datasets, loaders or generators (`shuffle` is ignored for them):
        shuffle those yourself, as `keras_genzoo.datasets` does.

        The `History` returned also has `logged_epochs`: for each logged
        key, the epochs (from 1) its values belong to (Keras' lists skip
        the epochs without validation or quality scores).

        A NaN or Inf loss stops training (on JAX and PyTorch a few steps
        later), restores the last good epoch and warns with the likely
        causes
        (`keras_genzoo.callbacks.StopOnDivergence`, added unless `callbacks`
        holds one or a `keras.callbacks.TerminateOnNaN`; for a model that
        logs no `loss`, which `TerminateOnNaN` reads, a GAN, one that
        stops without restoring is added beside it).
        """
        self._refuse_sample_weights("fit", args, kwargs)
        x, y = self._before_steps(x, y, "the training data", training=True)
        batch_size = _batch_size(args, kwargs)
        _check_batch_split(self, x, batch_size, "the training data",
                           kwargs.get("validation_split") or 0.0,
                           validation_batch_size=kwargs.get(
                               "validation_batch_size"))
        if kwargs.get("validation_data") is not None:
            kwargs["validation_data"] = self.check_validation_data(
                kwargs["validation_data"])
            validation = kwargs["validation_data"]
            _check_batch_split(
                self, validation[0] if isinstance(validation, tuple)
                else validation,
                kwargs.get("validation_batch_size") or batch_size,
                "the validation data")
        if _is_stream(x):
            kwargs.setdefault("shuffle", False)
        recorder = None
        # (batch_size, epochs, verbose, callbacks, ...): given by position
        # too (no check was added then)
        args = list(args)
        positional = len(args) > 3
        callbacks = _with_divergence_check(
            args[3] if positional else kwargs.get("callbacks"), self)
        if isinstance(callbacks, list):
            from keras_genzoo.callbacks import _LoggedEpochs

            recorder = _LoggedEpochs()
            callbacks.append(recorder)
        if positional:
            args[3] = callbacks
        else:
            kwargs["callbacks"] = callbacks
        try:
            with zoo_backend.keep_state_on_error(self):
                # (its validation keeps the settings of the train step:
                # `_settings_changed`)
                self._fitting = True
                try:
                    history = super().fit(x, y, *args, **kwargs)
                finally:
                    self._fitting = False
            if recorder is not None and history is not None:
                # the epochs of each key, for `plots.plot_history`
                history.logged_epochs = recorder.epochs
            return history
        except BaseException:
            # StopOnDivergence puts the weights back at the end of the
            # epoch, which Keras does not reach when something raises
            from keras_genzoo.callbacks import StopOnDivergence

            if isinstance(callbacks, (list, tuple)):
                for callback in callbacks:
                    if isinstance(callback, StopOnDivergence):
                        callback.after_exception()
            raise

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Evaluates the model; see `keras.Model.evaluate`.

        The data is checked like in `fit`; an uncompiled model is compiled
        with `default_optimizer()` first. Noise the evaluation draws (a
        VAE's codes, a diffusion model's noise) comes from the seed
        generators' own evaluation streams, the same at every call, and
        leaves their training streams where they were: two calls on the
        same data give the same figures, and validating during `fit` does
        not change what a seeded run trains to.
        """
        self._refuse_sample_weights("evaluate", args, kwargs)
        x, y = self._before_steps(x, y, "the evaluation data")
        _check_batch_split(self, x, _batch_size(args, kwargs),
                           "the evaluation data")
        with evaluation_streams(self), \
                zoo_backend.keep_state_on_error(self):
            return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """Runs `call` on batches of `x`; see `keras.Model.predict`.

        `x` is checked first (`check_predict_data`). A `predict` that
        raises (inputs of the wrong shape, an interrupt) leaves the model
        as it was, on JAX too, where Keras 3.15 lost its weights.
        """
        x = self.check_predict_data(x)
        _check_batch_split(self, x, _batch_size(args, kwargs),
                           "the data to predict", predicting=True)
        with zoo_backend.keep_state_on_error(self), \
                warnings.catch_warnings():
            if kwargs.get("steps", args[2] if len(args) > 2 else None) is None:
                # Keras warns at the end of a generator without a length
                # ("Your input ran out of data; interrupting training ...
                # use the `.repeat()` function"), where predicting up to
                # its end is what was asked
                warnings.filterwarnings(
                    "ignore", message="Your input ran out of data")
            return super().predict(x, *args, **kwargs)

    def check_predict_data(self, x):
        """Checks what `predict` and `predict_on_batch` are given; returns
        it ready for Keras. A hook: subclasses check their inputs there."""
        return x

    def predict_on_batch(self, x):
        """`call` on one batch; see `keras.Model.predict_on_batch`.

        `x` is checked as `predict` checks it (`check_predict_data`):
        before, floats in 0..255 and labels out of range went into the
        networks unchecked (a graph error on TensorFlow, an IndexError on
        PyTorch, NaN on JAX).
        """
        x = self.check_predict_data(x)
        _check_one_batch(self, x, "the batch to predict", predicting=True)
        outputs = super().predict_on_batch(x)
        count = _array_count(x)
        if count and zoo_backend.batch_devices(self) > 1:
            # Keras 3.15.1's `predict_on_batch` under `tf.distribute` gives
            # every replica the whole batch and returns all their rows (2
            # replicas: twice the rows); one replica's are the batch's
            # (the identity on JAX)
            outputs = keras.tree.map_structure(
                lambda rows: rows[:count], outputs)
        return outputs

    def train_on_batch(self, x, y=None, *args, **kwargs):
        """One training step on one batch; see `keras.Model.train_on_batch`.

        The batch is checked like in `fit`; an uncompiled model is compiled
        with `default_optimizer()` first.
        """
        self._refuse_sample_weights("train_on_batch", args, kwargs)
        x, y = self._before_steps(x, y, "the training batch",
                                  training=True)
        _check_one_batch(self, x, "the training batch")
        return super().train_on_batch(x, y, *args, **kwargs)

    def test_on_batch(self, x, y=None, *args, **kwargs):
        """The loss and metrics on one batch; see
        `keras.Model.test_on_batch`. Its noise comes from the evaluation
        streams, as in `evaluate`."""
        self._refuse_sample_weights("test_on_batch", args, kwargs)
        x, y = self._before_steps(x, y, "the evaluation batch")
        _check_one_batch(self, x, "the evaluation batch")
        with evaluation_streams(self):
            return super().test_on_batch(x, y, *args, **kwargs)

    # -------------------------------------------------- custom-step metrics
    def with_added_metrics(self, own):
        """What a model that names its own metrics returns as `metrics`:
        `own` (its trackers, in the order `fit` shows them), then every
        metric a subclass added as an attribute, as Keras' own `metrics`
        lists them (returning `own` alone, the GANs and the diffusion model
        dropped a subclass's metric from `fit`'s logs on every backend).

        Args:
            own: the model's own metrics.

        Returns:
            A list of metrics.
        """
        own = list(own)
        return own + [metric for metric in self._metrics
                      if not any(metric is mine for mine in own)]

    def record_step(self, logs, batch_size=None):
        """Updates the model's metrics from a custom step's logs.

        Every metric in `self.metrics` whose name is a key of `logs` takes
        that value, weighted by the batch's size (as Keras weighs its own
        "loss"); the results of all of them are returned, as `fit` shows
        them.

        Args:
            logs: dict of scalar tensors (batch means).
            batch_size: the number of examples in the batch (the backend's
                `custom_train_step` passes it); `None` weighs every batch
                the same.

        Returns:
            Dict of the metrics' results.
        """
        # (unweighted, a short last batch counted as much as a full one:
        # a GAN's `d_accuracy` over 9 images came out 0.8125)
        metrics = []
        for metric in self.metrics:
            # once each (a subclass's `super().metrics + [metric]` lists a
            # metric `with_added_metrics` lists already: it counted twice)
            if not any(metric is seen for seen in metrics):
                metrics.append(metric)
        for metric in metrics:
            if metric.name in logs:
                metric.update_state(logs[metric.name],
                                    sample_weight=batch_size)
        return {metric.name: metric.result() for metric in metrics}

    # ------------------------------------------------------------ sampling
    def sample_seed(self, seed=None):
        """What to pass as `seed=` to `keras.random`: the integer `seed`, or
        the model's own seed generator (which then advances) if `None`."""
        seed = _inputs.check_seed(seed)
        return self.seed_generator if seed is None else seed

    def generation_noise(self, shape, seed=None):
        """Standard normal noise of `shape` for `generate` (numpy float32).

        With an integer `seed` it is drawn by numpy, so the same seed gives
        the same noise, and hence the same samples, on every backend (and a
        model saved under one backend generates, loaded under another, what
        it generated before). Without one it comes from the model's seed
        generator (which advances), with the backend's own random numbers.
        """
        if seed is None:
            return np.asarray(zoo_backend.to_numpy(keras.random.normal(
                shape, seed=self.seed_generator)), dtype="float32")
        return np.random.default_rng(
            _inputs.check_seed(seed)).standard_normal(shape).astype("float32")

    def draw_seed(self):
        """An integer drawn from the model's seed generator (which
        advances): a seed for samplers outside `keras.random`."""
        return int(zoo_backend.to_numpy(keras.random.randint(
            (), 0, 2**31 - 1, seed=self.seed_generator)))

    @staticmethod
    def check_num_samples(num_samples):
        """`num_samples` as a positive int, or one clear `ValueError`."""
        return _inputs.check_count(num_samples, "num_samples")

    def generate(self, num_samples, seed=None):
        """Draws `num_samples` new samples (numpy); the same `seed` gives the
        same samples."""
        raise NotImplementedError

    # Networks the user may pass to the constructor: saved in the config
    # under these argument names (when given) and restored by `from_config`.
    network_arguments = ()

    def given_networks(self):
        """The names in `network_arguments` whose network the user gave."""
        return tuple(getattr(self, "_given_networks", ()))

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        given = self.given_networks()
        for name in self.network_arguments:
            config[name] = (keras.saving.serialize_keras_object(
                getattr(self, name)) if name in given else None)
        # After `quantize`: which layers (by their place in the model) hold
        # quantized weights, so that loading quantizes them again before
        # Keras reads their variables (the networks are rebuilt from the
        # constructor's arguments, unquantized; Keras' own subclassed
        # models cannot load such a file at all)
        quantized = [[i, layer.quantization_mode] for i, layer in
                     enumerate(self._flatten_layers(include_self=False))
                     if getattr(layer, "quantization_mode", None)]
        if quantized:
            config["quantized_layers"] = quantized
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        quantized = config.pop("quantized_layers", None)
        for key in cls.network_arguments:
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(
                    config[key], custom_objects=custom_objects)
        model = super().from_config(config, custom_objects=custom_objects)
        model._quantize_on_build = quantized
        if model.built:
            model.quantize_as_saved()
        return model

    def _check_quantize_args(self, mode, compute_dtype):
        # What Keras' `quantize` checks first (a wrapper of every layer's
        # `quantize`, the model's too). Its own refusal of int8 under
        # float16 computation (by the layers it quantizes: those with a
        # `quantize` of their own) tells one to use "'mixed_bfloat16' or
        # 'mixed_float16'", the policy refused.
        if mode == "int8" and self.built and any(
                layer.compute_dtype == "float16"
                and type(layer).quantize is not keras.layers.Layer.quantize
                for layer in self._flatten_layers(include_self=False)):
            raise ValueError(
                "`quantize('int8')` does not work with float16 computation "
                f"(this model's dtype policy is {self.dtype_policy.name!r}, "
                "or it holds layers computing in float16). Make the model "
                "again with `dtype='mixed_bfloat16'` (or 'float32'), load "
                "these weights into it (`model.save_weights('w.weights.h5')`"
                ", then `other.load_weights('w.weights.h5')`) and quantize "
                "that one.")
        super()._check_quantize_args(mode, compute_dtype)

    def _post_quantize(self, mode, **kwargs):
        # Keras' hook after `quantize` changed layers (Keras 3.15)
        super()._post_quantize(mode, **kwargs)
        optimizer = getattr(self, "optimizer", None)
        if self.compiled and optimizer is not None and optimizer.built:
            # Keras keeps the optimizer built for the float kernels, which
            # are gone: JAX's `fit` then refused it ("optimizer_variables
            # must be a list of tensors corresponding 1:1"), and a saved
            # file's optimizer state loaded nowhere (the loaded model's
            # optimizer is built for the quantized variables). Making it
            # again here lost what its config does not hold (AdamW's
            # weight-decay exclusions, a `tf.distribute` scope), so the
            # user is told instead.
            warnings.warn(
                f"{type(self).__name__}.quantize: the optimizer stays built "
                f"for the float weights that quantizing replaced. To train "
                f"the quantized model on, compile it again first "
                f"(`model.compile(...)`; the optimizer starts anew): "
                f"otherwise JAX cannot train it and a saved file's "
                f"optimizer state does not load.", stacklevel=3)

    def quantize_as_saved(self):
        """Quantizes the layers a loaded file's config names as quantized
        (once the model is built; `from_config` calls it)."""
        quantized = getattr(self, "_quantize_on_build", None)
        if not quantized:
            return
        self._quantize_on_build = None
        layers = list(self._flatten_layers(include_self=False))
        for index, mode in quantized:
            layers[index].quantize(mode)


class ImageModel(GenerativeModel):
    """Base class of the image models: data handling, building, defaults.

    Subclasses implement `build_networks(image_shape)` (create every network
    not given by the user), `call` and `compute_loss` (or a custom step),
    using `keras.ops` only, so they run on every backend.

    Args:
        image_shape: `(height, width, channels)` of the training images, or
            `None` to take it from the first batch given to `fit`.
        seed: optional integer seed of the model's own randomness (noise in
            training steps and in `generate`).
        **kwargs: standard `keras.Model` arguments (`name`, `dtype`).

    Examples:
        A new image model needs only its networks, `call` and
        `compute_loss`; the base class gives it the zoo's input handling:

        >>> import keras, numpy as np
        >>> from keras import ops
        >>> from keras_genzoo.models import ImageModel
        >>> class MeanImage(ImageModel):
        ...     def build_networks(self, image_shape):
        ...         self.net = keras.Sequential(
        ...             [keras.Input(image_shape), keras.layers.Dense(1)])
        ...     def call(self, inputs, training=False):
        ...         return self.net(self.images_from_inputs(inputs))
        ...     def compute_loss(self, x=None, y=None, y_pred=None,
        ...                      sample_weight=None, training=True):
        ...         return ops.mean(ops.square(
        ...             y_pred - self.images_from_inputs(x)))
        >>> model = MeanImage()
        >>> _ = model.fit(np.zeros((8, 4, 4), "uint8"), epochs=1, verbose=0)
        >>> model.image_shape
        (4, 4, 1)
    """

    def __init__(self, image_shape=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.image_shape = (
            None if image_shape is None else _check_image_shape(image_shape))

    # ----------------------------------------------------------- building
    def build_networks(self, image_shape):
        """Creates the sub-networks for images of shape `image_shape`."""
        raise NotImplementedError

    def build(self, input_shape=None):
        """Creates the networks for the images in `input_shape`.

        Args:
            input_shape: the shape of a batch of images, or of a batch
                structure (`(images, labels)` shapes, a dict with an
                `"image"` key); `None` uses `image_shape`.
        """
        if input_shape is None:
            if self.image_shape is None:
                raise ValueError(
                    "The image shape is unknown: pass "
                    "`image_shape=(height, width, channels)`.")
            shape = self.image_shape
        else:
            shape = _check_image_shape(_inputs.image_shape_of(input_shape))
        if self.image_shape is None:
            self.image_shape = shape
        # (in the model's tf.distribute scope: built outside it, by a
        # `predict` or `build()` before `fit`, its variables were not
        # mirrored and `fit` failed, "colocate_vars_with must only be
        # passed a variable created in this tf.distribute.Strategy.scope()")
        with _global_dtype_policy(self.dtype_policy), \
                zoo_backend.variable_scope(self):
            self.build_networks(self.image_shape)
        self.quantize_as_saved()  # a loaded file's quantized layers
        self.built = True

    def _build_if_shape_known(self):
        """Builds a model not yet built whose `image_shape` is known, with
        the batch shape (which Keras records for `export`; a bare `build()`
        records none: "The model provided has never called")."""
        if not self.built and self.image_shape is not None:
            self.build((None,) + tuple(self.image_shape))

    def get_build_config(self):
        # saved before any use (`image_shape=` given): built now, so that
        # the file holds the weights that loading builds (before, it could
        # not be loaded: "expected 2 variables, but received 0")
        self._build_if_shape_known()
        if not self.built or self.image_shape is None:
            return None
        return {"input_shape": [None, *self.image_shape]}

    def load_weights(self, filepath, *args, **kwargs):
        """`keras.Model.load_weights`; a new model created with
        `image_shape=` is built first (Keras refused it as "not yet
        built")."""
        self._build_if_shape_known()
        return super().load_weights(filepath, *args, **kwargs)

    def set_weights(self, weights):
        """`keras.Model.set_weights`; a new model created with
        `image_shape=` is built first, as for `load_weights` (Keras
        expected 0 weights)."""
        self._build_if_shape_known()
        return super().set_weights(weights)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        model = super().from_config(config, custom_objects=custom_objects)
        # Files of models created with `image_shape=` by keras_genzoo 0.1.0
        # hold no build config: build here, or Keras would skip their
        # weights.
        model._build_if_shape_known()
        return model

    def agree(self, name, value, source):
        """Sets attribute `name` to `value` read from a user's network, or
        raises a `ValueError` if the user gave another value."""
        current = getattr(self, name)
        if current is not None and current != value:
            raise ValueError(
                f"`{name}={current}` disagrees with the {source} "
                f"({value}): drop `{name}=` or change the network.")
        setattr(self, name, value)

    def adopt_image_shape(self, network, name, contract, num_inputs=1):
        """Reads `image_shape` from the `keras.Input` of a user's network
        that takes images (checking it against `contract`), or requires
        the `image_shape=` argument for a network without one."""
        shapes = network_input_shapes(network)
        if shapes is not None:
            conditional = getattr(self, "num_classes", None)
            if len(shapes) != num_inputs and conditional:
                # the contract alone did not say that labels come last
                takes = ("[images, labels] (two inputs" if num_inputs == 2
                         else f"{num_inputs} inputs, the last the labels ("
                         "see the contract")
                raise ValueError(
                    f"Contract: {contract}; with `num_classes={conditional}`"
                    f" the {name} takes {takes}: the labels as "
                    "`keras.Input((), dtype='int32')`), but this "
                    f"{name} takes {len(shapes)} input(s) of shape(s) "
                    f"{shapes}. Add the labels input, or drop "
                    "`num_classes`.")
            if len(shapes) != num_inputs or len(shapes[0]) != 4:
                raise ValueError(
                    f"Contract: {contract}; this {name} takes inputs of "
                    f"shape(s) {shapes}.")
            self.agree("image_shape", _check_image_shape(shapes[0][1:]),
                       f"{name}'s input")
        if self.image_shape is None:
            raise ValueError(
                f"The {name} does not say what images it takes (it has no "
                "`keras.Input`): pass `image_shape=(height, width, "
                "channels)`.")

    def export_signature(self):
        """The `input_signature` `export` serves by default: what `call`
        takes, float images of the model's shape (with int32 labels for a
        conditional model)."""
        images = keras.InputSpec(shape=(None,) + tuple(self.image_shape),
                                 dtype="float32")
        if getattr(self, "num_classes", None):
            return [[images, keras.InputSpec(shape=(None,), dtype="int32")]]
        return [images]

    @property
    def _default_save_signature(self):
        # What TensorFlow's SavedModel writing (`export`,
        # `tf.saved_model.save`) asks a Keras layer for (the TensorFlow
        # backend's `Layer._default_save_signature`, a property): Keras'
        # `call` traced on the build shape, images alone. Kept where
        # `call` takes images alone; none where it takes more (a
        # conditional model, a diffusion model), on which it failed
        # inside `export` (which serves `export_signature()`)
        if self.image_shape is None or isinstance(
                self.export_signature()[0], list):
            return None
        return getattr(super(), "_default_save_signature", None)

    def ensure_built(self, method):
        """Builds the model from `image_shape` if it is not built yet."""
        if self.built:
            return
        if self.image_shape is None:
            raise ValueError(
                f"`{method}` needs a built model: call `fit` first, or pass "
                "`image_shape=(height, width, channels)` when creating it."
            )
        self.build((None,) + self.image_shape)

    # ------------------------------------------------------ data handling
    # A conditional subclass (a GAN, a diffusion model) sets the number of
    # classes its labels take; `None`: the model ignores labels.
    num_classes = None

    def require_labels(self, x, y, what, kind):
        """One `ValueError` when a conditional model's data has no labels.

        Args:
            x: the data given to `fit` (or a batch).
            y: the labels given next to it, or `None`.
            what: the data's name for the message ("the training data").
            kind: the model's name for the message ("GAN").
        """
        if self.num_classes and not _inputs.has_labels(x, y):
            raise ValueError(
                f"This {kind} is conditional (num_classes={self.num_classes})"
                f" but {what} has no labels: pass `fit(images, labels)`, a "
                "dataset of (images, labels) tuples, or dicts with a "
                "'label' key.")

    def unpack_batch(self, data):
        """Splits a batch into images in [-1, 1] and integer labels.

        Args:
            data: a batch as the dataset yields it (see
                `keras_genzoo._inputs.split_batch`).

        Returns:
            `(images, labels)`; `labels` is `None` unless the model is
            conditional (`num_classes`).
        """
        images, labels = _inputs.split_batch(data)
        images = _inputs.scale_pixels(ops.convert_to_tensor(images),
                                      signed=True)
        if not self.num_classes:
            return images, None
        return images, ops.reshape(ops.cast(labels, "int32"), (-1,))

    def images_from_inputs(self, inputs):
        """Takes the images out of a batch and scales them to [0, 1].

        Args:
            inputs: image tensor, `(images, labels)` tuple or a dict with an
                `"image"` key; uint8 (0..255) or float (0..1).

        Returns:
            A float32 tensor of images in [0, 1].
        """
        return _inputs.scale_pixels(_inputs.extract_images(inputs))

    def prepare_targets(self, x, y):
        """A conditional model's labels `y` as int32 `(n,)` (every backend
        holds them; `check_data` checked their values)."""
        if y is None or not self.num_classes or (
                isinstance(x, dict) and x.get(_inputs.LABEL_KEY) is not None):
            return y
        return _inputs.to_numpy(y).reshape(-1).astype("int32")

    # Whether the model learns to reconstruct its input (an auto-encoder):
    # `check_data` then refuses target images given as `y`.
    reconstructs_input = False

    def check_data(self, x, y=None, what="the training data"):
        """Checks the images (see `keras_genzoo._inputs`) and builds the
        model for their shape."""
        x, shape = _inputs.prepare_images_for_fit(
            x, self.image_shape, what, y=y, num_classes=self.num_classes,
            reconstructs=(type(self).__name__ if self.reconstructs_input
                          else None))
        if not self.built:
            self.build((None,) + shape)
        return _without_none_batches(x)

    def predict(self, x, *args, **kwargs):
        """`call` on batches of images; see `keras.Model.predict`.

        `x`: images (uint8, or floats in [0, 1]), or `[images, labels]` for
        a conditional model. Arrays are checked as in `fit` first (one
        `ValueError` naming the fix: floats in 0..255, another image shape,
        missing or unwanted labels), where Keras would compute on them as
        they are or fail deep inside; a generator's first batch is checked
        as `fit` checks it (its batches are made tuples, as Keras' generator
        adapter wants them); datasets go to Keras as they come (a
        conditional model's `(images, labels)` pairs as its inputs).
        """
        return super().predict(x, *args, **kwargs)  # checked there

    def check_predict_data(self, x):
        """Checks what `predict` (and `predict_on_batch`) is given (see
        `predict`); returns it ready for Keras. A hook for models whose
        `call` takes other inputs."""
        what = "the data given to `predict`"
        if isinstance(x, dict):
            # the tfds layout, `{"image": ..., "label": ...}`: checked as
            # `[images, labels]` are (it reached the networks unchecked:
            # NaN for labels out of range on JAX, a conditional VAE's input
            # given back for a missing label, 0..255 floats run through)
            images, labels = _inputs.split_batch(x)
            if self.num_classes and labels is None:
                raise ValueError(
                    f"This model is conditional (num_classes="
                    f"{self.num_classes}): add a 'label' key to the dict "
                    "given to `predict`, one int label per image.")
            if _inputs._is_array_like(images):
                x, _ = _inputs.prepare_images_for_fit(
                    x, self.image_shape, what, num_classes=self.num_classes)
            return x
        images, labels = x, None
        if self.num_classes and isinstance(x, (list, tuple)) and len(x) == 2:
            images, labels = x
        if isinstance(images, (list, tuple)) and not self.num_classes:
            try:
                images = np.asarray(images)  # a list of images
            except ValueError:
                pass  # not one array: Keras takes it as it is
        if _inputs._is_array_like(images):
            if self.num_classes and labels is None:
                raise ValueError(
                    f"This model is conditional (num_classes="
                    f"{self.num_classes}): pass `[images, labels]` to "
                    "`predict`, one int label per image.")
            images, _ = _inputs.prepare_images_for_fit(
                images, self.image_shape, what, y=labels,
                num_classes=self.num_classes)
            x = images if labels is None else [images, labels]
        elif _inputs._is_torch_dataloader(x):
            # Keras' DataLoader adapter (TensorFlow, JAX) calls `tuple()` on
            # each batch, which split bare image batches into images (on
            # TensorFlow: "'TensorSpec' object is not iterable"); a
            # conditional model's `(images, labels)` batches go whole as
            # its inputs, as a loader of the same length (a generator of
            # them had none: "ran out of data" on PyTorch, refused on JAX)
            x = _inputs._tuple_loader(
                x, _inputs.pair_as_inputs if self.num_classes else None)
        elif not self.num_classes and isinstance(x, keras.utils.PyDataset):
            x, _ = _inputs.prepare_images_for_fit(x, self.image_shape, what)
            x = _without_none_batches(x)
        elif not self.num_classes and isinstance(x, types.GeneratorType):
            # checked as `fit` checks it, and each batch a tuple (Keras
            # refused bare image batches and lists: "must return a tuple",
            # where `fit` and `evaluate` took them)
            x, _ = _inputs.prepare_images_for_fit(x, self.image_shape, what)
        elif self.num_classes and _inputs._is_stream_of_batches(x):
            # `(images, labels)` batches, as `load_images` gives: Keras
            # took the labels for targets and dropped them (a conditional
            # VAE returned its input images as `{"images": ...}`)
            if isinstance(x, keras.utils.PyDataset):
                x = _MappedPyDataset(x, _inputs.pair_as_inputs)
            else:
                x = _inputs.pairs_as_inputs(x, "The data given to `predict`")
        return x

    def check_num_samples(self, num_samples):
        """`num_samples` as a positive int, or one clear `ValueError` (also
        when that many images would not fit in memory)."""
        num_samples = GenerativeModel.check_num_samples(num_samples)
        if self.image_shape is not None:
            _inputs.check_output_size(num_samples, self.image_shape)
        return num_samples

    # ------------------------------------------------------------ helpers
    def _to_array(self, images, what="images"):
        return _inputs.images_to_array(images, self.image_shape, what)

    @staticmethod
    def _apply_in_batches(fn, array, batch_size):
        batch_size = _inputs.check_count(batch_size, "batch_size")
        return np.concatenate([
            zoo_backend.to_numpy(fn(array[i:i + batch_size]))
            for i in range(0, len(array), batch_size)
        ])

    def get_config(self):
        config = super().get_config()
        config["image_shape"] = (
            None if self.image_shape is None else list(self.image_shape))
        return config


def read_weights_file(filepath, read):
    """`read(h5py.File)` of a `.weights.h5` file, or of a `.keras` file's
    weights; `None` where the file cannot be read so."""
    import zipfile

    import h5py

    def opened(file):
        with h5py.File(file, "r") as weights:
            return read(weights)

    path = os.fspath(filepath)
    try:
        if path.endswith(".keras"):
            with zipfile.ZipFile(path) as archive, archive.open(
                    "model.weights.h5") as file:
                return opened(file)
        if path.endswith(".weights.h5"):
            return opened(path)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        pass
    return None


def _saved_optimizer_size(filepath, groups=("optimizer",)):
    """How many variables the optimizers saved in a `.weights.h5` or
    `.keras` file under `groups` hold together, or `None` where that cannot
    be read (or one of them is missing)."""
    def count(weights):
        found = [weights.get(f"{name}/vars") for name in groups]
        if any(group is None for group in found):
            return None
        return sum(len(group) for group in found)

    return read_weights_file(filepath, count)


def _without_none_batches(x):
    """`x`, or a `PyDataset` of `(images, None)` batches as one of
    `(images,)` (see `_inputs.without_nones`: on TensorFlow Keras refused
    its own batches)."""
    if isinstance(x, keras.utils.PyDataset) and _inputs.yields_none(x):
        return _MappedPyDataset(x, _inputs.without_nones)
    return x


class _MappedPyDataset(keras.utils.PyDataset):
    """A `PyDataset` whose batches come as `convert(batch)` (a module-level
    function: `_inputs.pair_as_inputs`, `_inputs.without_nones`); at
    module level, so that its workers can pickle it."""

    def __init__(self, dataset, convert):
        super().__init__(workers=dataset.workers,
                         use_multiprocessing=dataset.use_multiprocessing,
                         max_queue_size=dataset.max_queue_size)
        self.dataset = dataset
        self.convert = convert

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        return self.convert(self.dataset[index])

    @property
    def num_batches(self):
        return self.dataset.num_batches

    def on_epoch_begin(self):
        self.dataset.on_epoch_begin()

    def on_epoch_end(self):
        self.dataset.on_epoch_end()


class _LatentPrior:
    """Holds a fitted latent prior outside Keras' attribute tracking: it is
    fitted after the model is built (when Keras allows no new state), and
    `LatentImageModel` saves it itself (config and arrays)."""

    def __init__(self):
        self.mixture = None


LATENT_PRIOR_KEY = "latent_prior_"
# the prior's config beside its arrays, so that a weights file restores it
# into a model that has none (JSON bytes as a uint8 array)
LATENT_PRIOR_CONFIG_KEY = "latent_prior_config"


class LatentImageModel(ImageModel):
    """Base of the encoder/decoder models: `encode`, `decode`, `reconstruct`.

    Subclasses build `self.encoder` (images in [0, 1] to codes; a VAE's
    encoder returns `(mean, log_var)` and overrides `encode_batch`) and
    `self.decoder` (codes to images in [0, 1]) in `build_networks`, unless
    the user passed them: then `latent_dim` and `image_shape` are read from
    the networks (`adopt_networks`).

    Args:
        latent_dim: size of the code (`None`: from the given networks, or
            `default_latent_dim`).
        filters: filters of the encoder's strided convolutions (the decoder
            mirrors them); each entry halves the spatial size.
        encoder: optional network of your own (see the subclass).
        decoder: optional network of your own, mapping `(batch,
            latent_dim)` codes to images in [0, 1].
        image_shape: `(height, width, channels)`, or `None` to infer it from
            the first training batch (or from the networks given).
        seed: optional integer seed of the model's own randomness.
        **kwargs: standard `keras.Model` arguments (`name`, `dtype`).

    Examples:
        `AutoEncoder` and `VAE` are its subclasses; every one of them has
        the same `encode` / `decode` / `reconstruct`:

        >>> from keras_genzoo import AutoEncoder
        >>> model = AutoEncoder(latent_dim=3, filters=(4,),
        ...                     image_shape=(8, 8, 1))
        >>> model.encode(np.zeros((2, 8, 8, 1), "uint8")).shape
        (2, 3)
        >>> model.reconstruct(np.zeros((8, 8))).shape
        (1, 8, 8, 1)
    """

    default_latent_dim = 16
    network_arguments = ("encoder", "decoder")
    reconstructs_input = True
    # How many outputs the encoder has: 1 (a code) or 2 (a VAE's mean and
    # log-variance), and what its contract says, for error messages.
    encoder_outputs = 1
    encoder_contract = (
        "an encoder maps images in [0, 1] of shape (batch, height, width, "
        "channels) to codes of shape (batch, latent_dim)")

    def __init__(self, latent_dim=None, filters=(32, 64), encoder=None,
                 decoder=None, image_shape=None, seed=None, num_classes=None,
                 **kwargs):
        super().__init__(image_shape=image_shape, seed=seed, **kwargs)
        # counts are checked, not cut by `int` (2.5 ran as 2)
        self.num_classes = (None if num_classes is None else
                            _inputs.check_count(num_classes, "num_classes",
                                                2))
        if latent_dim is not None:
            latent_dim = _inputs.check_count(latent_dim, "latent_dim")
        from keras_genzoo.networks.conv import check_filters

        self.filters = check_filters(filters)
        self.latent_dim = None if latent_dim is None else int(latent_dim)
        if (encoder is None) != (decoder is None):
            raise ValueError(
                "Pass both `encoder=` and `decoder=` (your own networks), "
                "or neither (the built-in convolutional ones).")
        self.encoder = encoder
        self.decoder = decoder
        self._prior = _LatentPrior()
        self._given_networks = (
            ("encoder", "decoder") if encoder is not None else ())
        if encoder is not None:
            self.adopt_networks()
        elif self.latent_dim is None:
            self.latent_dim = self.default_latent_dim

    # ----------------------------------------------------- user networks
    def adopt_networks(self):
        """Reads `image_shape` and `latent_dim` from the user's encoder and
        decoder, checks their contract on a probe batch of two images, and
        builds the model (there is nothing left to create)."""
        check_network(self.encoder, "encoder")
        check_network(self.decoder, "decoder")
        # a conditional model's networks take [images, labels], [z, labels]
        self.adopt_image_shape(self.encoder, "encoder", self.encoder_contract,
                               num_inputs=2 if self.num_classes else 1)
        probe = keras.random.uniform((2,) + self.image_shape, seed=0)
        labels = probe_labels(self.num_classes)
        codes = self._probe_network("encoder", probe, labels)
        if isinstance(codes, dict) and self.encoder_outputs > 1:
            # (check_one_output's "return one tensor" contradicted this)
            raise ValueError(
                f"Contract: {self.encoder_contract}; this encoder returns a "
                f"dict (keys {sorted(codes)}): return a list of its "
                f"{self.encoder_outputs} tensors, in that order, instead.")
        if isinstance(codes, dict):
            check_one_output(codes, "encoder", self.encoder_contract)
        codes = codes if isinstance(codes, (tuple, list)) else [codes]
        if any(isinstance(c, (tuple, list, dict)) for c in codes):
            raise ValueError(
                f"Contract: {self.encoder_contract}; this encoder returns "
                "nested outputs.")
        code_shapes = [tuple(ops.shape(c)) for c in codes]
        if len(codes) != self.encoder_outputs or any(
                len(s) != 2 or s != code_shapes[0] for s in code_shapes):
            raise ValueError(
                f"Contract: {self.encoder_contract}; this encoder returns "
                f"shape(s) {code_shapes} for a batch of 2 images.")
        _check_float_output(codes, "encoder", "codes")
        self.agree("latent_dim", int(code_shapes[0][1]), "encoder's codes")
        decoder_contract = (
            "a decoder maps codes of shape (batch, latent_dim) to images of "
            "the encoder's input shape, (batch,) + "
            f"{self.image_shape}, in [0, 1] (end it with a sigmoid)")
        shapes = network_input_shapes(self.decoder)
        takes = 2 if self.num_classes else 1
        if shapes and (len(shapes) != takes or len(shapes[0]) != 2):
            # (a conditional model's decoder of codes alone was accepted:
            # Keras dropped the labels with a warning, and `generate`'s
            # labels changed nothing; the other way round, Keras' "expects
            # 2 input(s)")
            wanted = ("[codes, labels] (two inputs: the codes "
                      "`keras.Input((latent_dim,))`, then the labels "
                      "`keras.Input((), dtype='int32')`)"
                      if takes == 2 else "the codes alone (one input)")
            fix = ("Add the labels input, or drop `num_classes`"
                   if takes == 2 else "Drop its labels input, or pass "
                   "`num_classes=` for a conditional model")
            raise ValueError(
                f"Contract: {decoder_contract}; "
                + (f"with `num_classes={self.num_classes}` " if takes == 2
                   else "unconditional, ")
                + f"the decoder takes {wanted}, but this decoder takes "
                f"{len(shapes)} input(s) of shape(s) {shapes}. {fix}.")
        if shapes and shapes[0][-1] not in (None, self.latent_dim):
            # before, Keras' own input-spec error from inside the decoder
            raise ValueError(
                f"Contract: {decoder_contract}; the encoder's codes have "
                f"latent_dim={self.latent_dim}, but this decoder takes "
                f"inputs of shape(s) {shapes}. Give both the same width.")
        activation, layer = final_activation(self.decoder)
        if activation is not None and activation not in (
                "sigmoid", "hard_sigmoid"):
            # a probe batch in [0, 1] let a linear decoder through, whose
            # images later left [0, 1] (and the clipped loss gave those
            # pixels no gradient)
            raise ValueError(
                f"Contract: {decoder_contract}; this decoder ends in a "
                f"{activation} (`{layer.name}`), whose values can leave "
                f"[0, 1].")
        decoded = check_one_output(
            self._probe_network("decoder", codes[0], labels),
            "decoder", decoder_contract)
        if tuple(ops.shape(decoded)) != (2,) + self.image_shape:
            raise ValueError(
                "Contract: a decoder maps codes of shape (batch, latent_dim) "
                "to images of the encoder's input shape, (batch,) + "
                f"{self.image_shape}; this decoder returns "
                f"{tuple(ops.shape(decoded))}.")
        _check_float_output([decoded], "decoder", "images in [0, 1]")
        values = zoo_backend.to_numpy(decoded)
        if values.min() < 0.0 or values.max() > 1.0:
            raise ValueError(
                "Contract: a decoder returns images in [0, 1] (end it with a "
                "sigmoid); this one returned values from "
                f"{values.min():.3g} to {values.max():.3g}.")
        # Nothing is left to create: built, without `build`, which would lock
        # the model's state before a subclass's __init__ adds its own.
        self.built = True

    def _probe_network(self, name, x, labels):
        """The user's network `name` on the probe batch (`probe_labels`),
        a label table smaller than `num_classes` named (`run_probe`)."""
        network = getattr(self, name)
        return run_probe(
            lambda labels: network(self.with_labels(x, labels),
                                   training=False),
            labels, self.num_classes, name)

    def with_labels(self, x, labels):
        """A network's input: `x` alone, or `[x, labels]` for a conditional
        model (`num_classes`)."""
        return [x, labels] if self.num_classes else x

    def check_labels(self, labels, count, method):
        """`labels` as int32 numpy `(count,)` for a conditional model (one
        int is repeated; `None` is a `ValueError`), `None` otherwise
        (labels given to an unconditional model are a `ValueError`)."""
        if not self.num_classes:
            if labels is not None:
                raise ValueError(
                    f"`{method}` got labels, but this model is not "
                    "conditional: create it with `num_classes=` to use "
                    "labels.")
            return None
        if labels is None:
            raise ValueError(
                f"This model is conditional (num_classes={self.num_classes})"
                f": pass `labels=` (ints in 0..{self.num_classes - 1}) to "
                f"`{method}`" + (", or the images with their labels "
                                 "(`(images, labels)`)."
                                 if method in ("encode", "reconstruct")
                                 else "."))
        return _inputs.check_class_labels(
            labels, self.num_classes, count, f"`labels` of `{method}`",
            one_for_all=True)

    def encode_batch(self, images, labels=None):
        """Codes of one batch of float images (a tensor); used by `encode`."""
        return self.encoder(self.with_labels(images, labels), training=False)

    def decode_batch(self, z, labels=None):
        """Images of one batch of codes (a tensor); used by `decode`."""
        return self.decoder(self.with_labels(z, labels), training=False)

    def _apply_labelled(self, fn, array, labels, batch_size):
        """`fn(batch)` or `fn(batch, labels)` over `array` in batches."""
        batch_size = _inputs.check_count(batch_size, "batch_size")
        if labels is None:
            return self._apply_in_batches(fn, array, batch_size)
        return np.concatenate([
            zoo_backend.to_numpy(fn(array[i:i + batch_size],
                                    labels[i:i + batch_size]))
            for i in range(0, len(array), batch_size)
        ])

    def encode(self, images, labels=None, batch_size=256):
        """Maps images to their latent codes.

        Args:
            images: one image `(H, W, C)` or a batch, uint8 or float in [0, 1].
            labels: the images' int labels (a conditional model only;
                by default those of images given as `(images, labels)` or
                with a `"label"` key).
            batch_size: how many images to encode at once.

        Returns:
            numpy float32 array `(num_images, latent_dim)` (for a VAE: the
            means of the latent Gaussians), whatever the dtype policy.
        """
        return self._encode(images, labels, batch_size, "encode")[0]

    def _encode(self, images, labels, batch_size, method):
        """`(codes, labels)`: `encode`, and the labels it used (given, else
        those that `(images, labels)` or a dict's `"label"` carry: a
        conditional model asked for `labels=` before)."""
        self.ensure_built(method)
        if self.num_classes and labels is None:
            labels = _inputs.carried_labels(images)
        array = self._to_array(images)
        labels = self.check_labels(labels, len(array), method)
        return self._apply_labelled(self.encode_batch, array, labels,
                                    batch_size).astype("float32"), labels

    def decode(self, z, labels=None, batch_size=256):
        """Maps latent codes to images.

        Args:
            z: array `(num_codes, latent_dim)`.
            labels: the int labels to draw (a conditional model only).
            batch_size: how many codes to decode at once.

        Returns:
            numpy float32 array of images in [0, 1], shaped like the
            training images.
        """
        self.ensure_built("decode")
        z = _inputs.to_numpy(z, "The codes")
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"Codes must have shape (num_codes, {self.latent_dim}); got "
                f"{z.shape}."
            )
        if len(z) == 0:  # as `encode` says: before, numpy's concatenate failed
            raise ValueError("`z` is empty: it holds no codes.")
        if z.dtype.kind not in "iuf" or not np.isfinite(z).all():
            raise ValueError(
                f"Codes must be finite numbers (float32 of shape (num_codes, "
                f"{self.latent_dim})); got {z.dtype} values"
                + (" with NaN or Inf." if z.dtype.kind == "f" else "."))
        z = z.astype("float32")
        labels = self.check_labels(labels, len(z), "decode")
        return self._apply_labelled(self.decode_batch, z, labels,
                                    batch_size).astype("float32")

    def reconstruct(self, images, labels=None, batch_size=256):
        """Encodes images and decodes the codes again (no noise is added).

        Args:
            images: one image or a batch, uint8 or float in [0, 1]; for a
                denoising auto-encoder, pass noisy images to denoise them.
            labels: the images' int labels (a conditional model only;
                by default those of images given as `(images, labels)` or
                with a `"label"` key).
            batch_size: how many images to process at once.

        Returns:
            numpy float32 array of reconstructions in [0, 1].
        """
        codes, labels = self._encode(images, labels, batch_size,
                                     "reconstruct")
        return self.decode(codes, labels, batch_size)

    # ------------------------------------------------------ latent prior
    def encode_data(self, data, batch_size=256, labels=None):
        """Codes of every image of `data`, as numpy `(n, latent_dim)`.

        Args:
            data: images in any form `fit` takes (arrays, `tf.data`,
                `PyDataset`, torch `DataLoader`, `(images, labels)` batches,
                tfds dicts), uint8 or floats in [0, 1].
            batch_size: images encoded at once (datasets keep their own
                batches).
            labels: a conditional model's labels of an array `data`
                (datasets carry their own).
        """
        self._check_labels_given(labels, "encode_data")
        return self._encode_labelled(data, batch_size, labels,
                                     "encode_data")[0]

    def _check_labels_given(self, labels, method):
        """A `ValueError` for `labels=` given to `method` of an
        unconditional model (labels that datasets carry are ignored).
        Before, `fit_latent_prior` and `anomaly_scores` took any labels,
        even invalid ones, and ignored them in silence."""
        if labels is not None and not self.num_classes:
            self.check_labels(labels, 0, method)  # its message

    def _encode_labelled(self, data, batch_size, labels, method):
        """`encode_data`, also returning the labels the data carried.

        Returns `(codes, labels)`: the codes as in `encode_data`, and the
        int labels `(n,)` given or found in every batch, else `None`
        (`plots.plot_latent_space` colours the codes with them).
        """
        self.ensure_built(method)
        codes, found = [], []
        for images, batch_labels in _inputs.iterate_image_batches(
                data, batch_size, self.image_shape, "the data", labels,
                with_labels=True):
            found.append(batch_labels)
            batch_labels = self.check_labels(
                batch_labels if self.num_classes else None, len(images),
                method)
            codes.append(zoo_backend.to_numpy(
                self.encode_batch(images, batch_labels)))
        if not codes:
            raise ValueError("The data holds no images.")
        found = (None if any(f is None for f in found)
                 else np.concatenate([np.reshape(f, -1) for f in found]))
        return np.concatenate(codes).astype("float32"), found

    def fit_latent_prior(self, data, n_components=10,
                         covariance_type="full", batch_size=256, labels=None,
                         **kwargs):
        """Fits a Gaussian mixture to the latent codes of `data`.

        "Ex-post density estimation" (Ghosh et al., 2020): after training,
        encode the training images and fit a `GaussianMixture` to their
        codes; sampling it and decoding gives new images (an auto-encoder
        has no prior of its own; for a VAE it replaces N(0, I), whose
        holes between the codes decode to blurry images). The mixture is
        kept in the model and saved in its `.keras` file; fitting again
        replaces it.

        Args:
            data: images in any form `fit` takes (the training data).
            n_components: Gaussians of the mixture.
            covariance_type: `"full"`, `"tied"`, `"diag"` or `"spherical"`.
            batch_size: images encoded at once.
            labels: a conditional model's labels of an array `data`.
            **kwargs: other `GaussianMixture` arguments (`max_iter`,
                `n_init`, `reg_covar`, `tol`, `seed`: the model's seed by
                default).

        Returns:
            The fitted `GaussianMixture` (also `model.latent_prior`).
        """
        from keras_genzoo.models.gmm import GaussianMixture

        kwargs.setdefault("seed", self.seed)
        mixture = GaussianMixture(n_components=n_components,
                                  covariance_type=covariance_type, **kwargs)
        self._check_labels_given(labels, "fit_latent_prior")
        codes, _ = self._encode_labelled(data, batch_size, labels,
                                         "fit_latent_prior")
        self._prior.mixture = mixture.fit(codes)
        return mixture

    @property
    def latent_prior(self):
        """The `GaussianMixture` fitted by `fit_latent_prior`, or `None`."""
        mixture = self._prior.mixture
        # a model made from a config (`clone_model`, `from_config`) has
        # the mixture's settings but not its fitted values: no prior (its
        # `generate` said "call `fit(x)`", which would train the model)
        if mixture is None or not mixture._is_fitted():
            return None
        return mixture

    def sample_latent_prior(self, num_samples, seed=None):
        """Codes drawn from the fitted latent prior, numpy `(num_samples,
        latent_dim)`, shuffled (the mixture yields them by component)."""
        if self.latent_prior is None:
            raise ValueError(
                "No latent prior is fitted yet: call "
                "`model.fit_latent_prior(training_images)` after `fit` "
                "first.")
        num_samples = self.check_num_samples(num_samples)
        seed = _inputs.check_seed(seed)
        seed = self.draw_seed() if seed is None else seed
        codes, _ = self.latent_prior.sample(num_samples, seed=seed)
        order = np.random.default_rng([seed, 1]).permutation(num_samples)
        return codes[order]

    def anomaly_scores(self, images, batch_size=256, labels=None):
        """How badly each image is reconstructed: higher is more anomalous.

        The reconstruction error the model trains on, per image: binary
        cross-entropy summed over pixels (no training noise). Images unlike
        the training data (noise, another dataset) reconstruct worse and
        score higher; pick a threshold on held-out normal images (e.g.
        their 99th percentile). `VAE` scores the negative ELBO instead.

        Args:
            images: images in any form `fit` takes, uint8 or floats in
                [0, 1], of the model's image shape.
            batch_size: images scored at once.
            labels: a conditional model's labels of an array `images`.

        Returns:
            numpy float32 `(num_images,)`.
        """
        self.ensure_built("anomaly_scores")
        self._check_labels_given(labels, "anomaly_scores")
        scores = []
        for batch, batch_labels in _inputs.iterate_image_batches(
                images, batch_size, self.image_shape, "images", labels,
                with_labels=True):
            batch_labels = self.check_labels(
                batch_labels if self.num_classes else None, len(batch),
                "anomaly_scores")
            reconstruction = self.decode_batch(
                self.encode_batch(batch, batch_labels), batch_labels)
            per_pixel = pixel_bce(batch, reconstruction)
            scores.append(zoo_backend.to_numpy(
                ops.sum(per_pixel, axis=(1, 2, 3))))
        if not scores:
            raise ValueError("`images` holds no images.")
        return np.concatenate(scores).astype("float32")

    def save_own_variables(self, store):
        super().save_own_variables(store)
        if self.latent_prior is not None:
            config = json.dumps(
                keras.saving.serialize_keras_object(self.latent_prior))
            store[LATENT_PRIOR_CONFIG_KEY] = np.frombuffer(
                config.encode("utf-8"), "uint8")
            for i, variable in enumerate(self.latent_prior.variables):
                store[f"{LATENT_PRIOR_KEY}{i}"] = zoo_backend.to_numpy(
                    variable)

    def load_own_variables(self, store):
        """Loads the networks' variables and the fitted latent prior (a
        `.weights.h5` file restores it into a model that has none, or
        another one: it holds the prior's config too)."""
        keys = list(store.keys())
        prior_keys = [k for k in keys if k.startswith(LATENT_PRIOR_KEY)]
        if not prior_keys:
            super().load_own_variables(store)
            if self.latent_prior is not None:
                # weights saved before a prior was fitted (a training
                # checkpoint): the prior was fitted to the codes of other
                # weights. Kept, it failed the load ("expected 5
                # variables") after the networks had loaded, and stayed.
                warnings.warn(
                    "The loaded weights hold no latent prior: the fitted "
                    "one (of the codes of the weights before) is dropped; "
                    "call `fit_latent_prior` again.", stacklevel=2)
                self._prior.mixture = None
            return
        super().load_own_variables(
            {key: store[key] for key in keys if key not in prior_keys})
        if LATENT_PRIOR_CONFIG_KEY in prior_keys:
            config = bytes(np.asarray(store[LATENT_PRIOR_CONFIG_KEY]))
            self._prior.mixture = keras.saving.deserialize_keras_object(
                json.loads(config.decode("utf-8")))
        if self._prior.mixture is None:
            # a weights file of keras_genzoo 0.1.0 holds no config
            warnings.warn(
                "The weights file holds a fitted latent prior but not its "
                "settings (written by an older keras_genzoo): it is not "
                "loaded. Load the model's `.keras` file instead, or call "
                "`fit_latent_prior` again.", stacklevel=2)
            return
        for i, variable in enumerate(self._prior.mixture.variables):
            variable.assign(np.asarray(store[f"{LATENT_PRIOR_KEY}{i}"]))

    def get_config(self):
        config = super().get_config()
        config.update({
            "latent_dim": self.latent_dim,
            "filters": list(self.filters),
        })
        if self.latent_prior is not None:
            config["latent_prior"] = keras.saving.serialize_keras_object(
                self.latent_prior)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        prior = config.pop("latent_prior", None)
        model = super().from_config(config, custom_objects=custom_objects)
        if prior is not None:
            # built from its config (n_features); `load_own_variables`
            # fills in the fitted values
            model._prior.mixture = keras.saving.deserialize_keras_object(
                prior, custom_objects=custom_objects)
        return model
