"""Optimizers of the zoo: the pair a GAN trains with, and nanoGPT's recipe.

`warmup_cosine_adamw` is nanoGPT's AdamW recipe, on `WarmupCosineDecay`:
Keras' warmup-then-cosine schedule without its branch on the step, which
costs PyTorch a host sync per step and breaks `torch.compile`.

`OptimizerPair` lets a model with two optimizers (a GAN's discriminator and
generator) stand where Keras expects one `model.optimizer`: the trainers
carry its variables through every step, callbacks that set the learning
rate act on both optimizers, and its `iterations` count training steps.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_genzoo import _inputs
from keras_genzoo import backend as zoo_backend


@keras.saving.register_keras_serializable(package="keras_genzoo")
class OptimizerPair(keras.optimizers.Optimizer):
    """Holds a GAN's two optimizers where Keras expects one.

    - `variables` are the discriminator optimizer's followed by the
      generator optimizer's: Keras' trainers (the JAX one above all) carry
      `model.optimizer.variables` through each compiled step, so both
      optimizers' state survives every step on every backend.
    - `learning_rate` reads the discriminator optimizer's rate; setting it
      (as `keras.callbacks.LearningRateScheduler` and `ReduceLROnPlateau`
      do) multiplies *both* optimizers' rates by the same factor, so their
      ratio (e.g. the TTUR setting of a WGAN-GP) is kept.
    - `iterations` is the generator optimizer's: one per training step,
      whatever the number of discriminator updates per step (what
      `keras.callbacks.TensorBoard` uses as its step).
    - An optimizer made with `use_ema=True` keeps a moving average of its
      network's weights, as in a one-optimizer model: `fit` ends by
      writing the averages into the weights (`finalize_variable_values`),
      and `keras.callbacks.SwapEMAWeights` swaps them in for evaluation
      (the pair shows it the weights and averages of both, as one
      optimizer; not an `optimizers` list, which would make the
      learning-rate callbacks set each rate on its own).

    It applies nothing itself: the model's training step calls the two
    optimizers. `build` builds each optimizer for its own network's
    variables, as given by `variable_groups`: the zoo's GANs set it when
    they compile; a model of one's own with two optimizers (a custom step,
    docs/architecture.md) sets it before compiling with the pair, to a
    function returning the two lists of variables (read when the pair is
    built, so the networks may be built later).

    Args:
        d_optimizer: the discriminator's optimizer (instance or name); the
            first of the two in a model of one's own.
        g_optimizer: the generator's optimizer; the second.
        **kwargs: passed to `keras.optimizers.Optimizer` (`name`).

    Attributes:
        variable_groups: `None`, or a function of no arguments returning
            `(d_optimizer's variables, g_optimizer's variables)`.

    Examples:
        >>> import keras
        >>> pair = OptimizerPair(keras.optimizers.Adam(2e-4),
        ...                      keras.optimizers.Adam(1e-4))
        >>> pair.learning_rate = 1e-4          # halves both rates
        >>> round(float(pair.g_optimizer.learning_rate), 8)
        5e-05

        In a model of one's own, the two optimizers' variables:

        >>> critic, actor = keras.layers.Dense(1), keras.layers.Dense(1)
        >>> pair.variable_groups = lambda: (critic.trainable_variables,
        ...                                 actor.trainable_variables)
    """

    def __init__(self, d_optimizer, g_optimizer, **kwargs):
        kwargs.pop("learning_rate", None)
        kwargs.setdefault("name", "optimizer_pair")
        super().__init__(learning_rate=0.0, **kwargs)
        self.d_optimizer = keras.optimizers.get(d_optimizer)
        self.g_optimizer = keras.optimizers.get(g_optimizer)
        if self.d_optimizer is self.g_optimizer:
            raise ValueError(
                "`d_optimizer` and `g_optimizer` must be two optimizer "
                "objects: one optimizer cannot serve both networks."
            )
        # A function returning (discriminator variables, generator
        # variables); the model that owns the pair sets it.
        self.variable_groups = None
        # the generator's rate over the discriminator's, kept by the
        # `learning_rate` setter across a rate of 0
        self._g_over_d = None
        self._note_ratio()

    def _schedules(self):
        """`(name, schedule)` of each optimizer whose rate comes from a
        schedule (inside a `LossScaleOptimizer` too, as `mixed_float16`
        wraps them)."""
        found = []
        for name in ("d_optimizer", "g_optimizer"):
            optimizer = getattr(self, name)
            optimizer = getattr(optimizer, "inner_optimizer", optimizer)
            schedule = getattr(optimizer, "_learning_rate", None)
            if isinstance(schedule,
                          keras.optimizers.schedules.LearningRateSchedule):
                found.append((name, schedule))
        return found

    def _rates(self):
        return tuple(float(zoo_backend.to_numpy(o.learning_rate))
                     for o in (self.d_optimizer, self.g_optimizer))

    def _note_ratio(self):
        """Remembers the generator-to-discriminator rate ratio where the
        discriminator's rate is not 0 (plain rates only)."""
        if self._schedules():
            return
        d_rate, g_rate = self._rates()
        if d_rate != 0.0:
            self._g_over_d = g_rate / d_rate

    @property
    def variables(self):
        return list(self.d_optimizer.variables) + list(
            self.g_optimizer.variables
        )

    @property
    def iterations(self):
        return self.g_optimizer.iterations

    @property
    def learning_rate(self):
        return self.d_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if not hasattr(self, "d_optimizer"):  # the base class' __init__
            return
        # checked before anything changes: a schedule's rate cannot be
        # set, and the generator's raised after the discriminator's had
        # been changed (under mixed_float16 too, where each optimizer is
        # inside a LossScaleOptimizer)
        for name, schedule in self._schedules():
            raise TypeError(
                f"The pair's `{name}` takes its learning rate from a "
                f"schedule ({type(schedule).__name__}), which cannot be "
                "set: a learning-rate callback needs both optimizers "
                "with plain rates (or use schedules and no callback).")
        current, g_rate = self._rates()
        value = float(zoo_backend.to_numpy(value))
        # the ratio, kept across a rate of 0 (a warmup from 0: the
        # generator's rate stayed 0 for good)
        self._note_ratio()
        if value == current:
            return
        ratio = self._g_over_d
        self.d_optimizer.learning_rate = value
        if ratio is not None:
            self.g_optimizer.learning_rate = value * ratio
        elif g_rate == 0.0:
            # both 0 from the start: no ratio known, the same rate
            self.g_optimizer.learning_rate = value
        # else (only the discriminator's 0 from the start): no ratio to
        # keep, the generator's rate stays (a scheduler that scales the
        # rates set it to 0 too)

    def finalize_variable_values(self, var_list):
        """What Keras' `fit` calls when it ends: each optimizer with
        `use_ema=True` writes its averages into its own network's weights
        (the split comes from `variable_groups`, not `var_list`)."""
        del var_list
        if self.variable_groups is None:
            return
        for optimizer, variables in zip((self.d_optimizer, self.g_optimizer),
                                        self.variable_groups()):
            optimizer.finalize_variable_values(variables)

    def build(self, var_list=None):
        """Builds each optimizer for its network's variables.

        Keras calls this with all the model's trainable variables; the
        split comes from `variable_groups`.
        """
        if self.variable_groups is None:
            raise ValueError(
                "This OptimizerPair belongs to no model yet: compile a GAN "
                "with it (`gan.compile(d_optimizer=..., g_optimizer=...)`), "
                "or, in a model of your own, set its `variable_groups` to a "
                "function returning the two optimizers' variables "
                "(`pair.variable_groups = lambda: (critic.trainable_"
                "variables, generator.trainable_variables)`) before "
                "compiling with it."
            )
        d_variables, g_variables = self.variable_groups()
        for name, optimizer, variables in (
                ("d_optimizer", self.d_optimizer, d_variables),
                ("g_optimizer", self.g_optimizer, g_variables)):
            if not optimizer.built:
                optimizer.build(variables)
                continue
            # built for another model's networks: "Unknown variable" on
            # TensorFlow and PyTorch; on JAX both models trained on one
            # shared state, in silence
            known = getattr(optimizer, "_trainable_variables_indices", None)
            if known is not None and any(
                    optimizer._var_key(v) not in known for v in variables):
                raise ValueError(
                    f"The `{name}` given was already built for another "
                    "network (another model's, or this model's other one, "
                    "as when compiling again with the two swapped): give "
                    "each network its own optimizer (e.g. `keras."
                    f"optimizers.{type(optimizer).__name__}.from_config("
                    f"{name}.get_config())`).")
        # What `keras.callbacks.SwapEMAWeights` swaps, read as from one
        # optimizer with `use_ema=True`: the weights of each optimizer that
        # averages them, and their averages, in the same order.
        averaging = [optimizer for optimizer in (
            getattr(o, "inner_optimizer", o)
            for o in (self.d_optimizer, self.g_optimizer))
            if getattr(optimizer, "use_ema", False)]
        if averaging:
            self._trainable_variables = [
                v for o in averaging for v in o._trainable_variables]
            self._model_variables_moving_average = [
                v for o in averaging
                for v in o._model_variables_moving_average]
        self.built = True

    def save_own_variables(self, store):
        # each optimizer saves its own state; the pair, the rate ratio that
        # a rate of 0 hides (a run saved while a warmup held both rates at
        # 0 resumed with the discriminator's rate for the generator)
        self._note_ratio()
        if self._g_over_d is not None:
            store["g_over_d"] = np.array(self._g_over_d, "float64")

    def load_own_variables(self, store):
        self._note_ratio()  # the compiled rates, before the file's
        if "g_over_d" in store.keys():
            self._g_over_d = float(np.asarray(store["g_over_d"]))

    def get_config(self):
        return {
            "name": self.name,
            "d_optimizer": keras.optimizers.serialize(self.d_optimizer),
            "g_optimizer": keras.optimizers.serialize(self.g_optimizer),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("d_optimizer", "g_optimizer"):
            config[key] = keras.optimizers.deserialize(
                config[key], custom_objects=custom_objects
            )
        return cls(**config)


def loss_scaled(optimizer):
    """Wraps `optimizer` in a `LossScaleOptimizer` if it is not one.

    `keras.Model.compile` does this by itself under a `mixed_float16`
    policy, but only for the one `optimizer=` it is given; a model with
    two optimizers wraps each with this.
    """
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)


@keras.saving.register_keras_serializable(package="keras_genzoo")
class WarmupCosineDecay(keras.optimizers.schedules.CosineDecay):
    """Keras' `CosineDecay` with its linear warmup, computed without a branch.

    The same arguments and rates as `keras.optimizers.schedules.CosineDecay`
    (up to float rounding). Keras' schedule picks its warmup or its decay
    with `ops.cond` on the step; on PyTorch that is a Python `if` on a
    tensor, which (a) waits for the device at every step (a host sync on a
    GPU) and (b) breaks a `torch.compile`d training step
    (`jit_compile=True`) into pieces. Measured on a 2-core CPU, MiniGPT on
    nanoGPT's CPU recipe with `jit_compile=True` on PyTorch: 35 graph breaks
    and recompilations up to dynamo's limit (then eager) with Keras'
    schedule, only Keras' own break at `backward()` with this one; steady
    step 80-87 -> 71 ms. This schedule computes both and selects with
    `ops.where`.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: steps of the cosine decay (after the warmup).
        alpha: the final rate as a fraction of the decay's starting rate.
        name: the schedule's name.
        warmup_target: the rate the warmup ends at (`None`: no warmup, the
            decay starts from `initial_learning_rate`).
        warmup_steps: steps of linear warmup (an integer).

    Files saved with this schedule need `keras_genzoo` imported to load
    (it is registered as `keras_genzoo>WarmupCosineDecay`).

    Examples:
        >>> schedule = WarmupCosineDecay(0.0, decay_steps=90, alpha=0.1,
        ...                              warmup_target=1e-3, warmup_steps=10)
        >>> [round(float(schedule(s)), 6) for s in (0, 5, 10, 100)]
        [0.0, 0.0005, 0.001, 0.0001]
    """

    def __call__(self, step):
        if self.warmup_target is None:
            return super().__call__(step)  # no warmup, no branch
        with keras.name_scope(self.name):
            initial = ops.convert_to_tensor(self.initial_learning_rate)
            dtype = initial.dtype
            decay_steps = ops.cast(self.decay_steps, dtype)
            warmup_steps = ops.cast(self.warmup_steps, dtype)
            target = ops.cast(self.warmup_target, dtype)
            step = ops.minimum(ops.cast(step, dtype),
                               decay_steps + warmup_steps)
            # (no division by zero in the branch `where` leaves out)
            warmup = (target - initial) * (
                step / ops.cast(max(self.warmup_steps, 1), dtype)) + initial
            fraction = (step - warmup_steps) / decay_steps
            cosine = 0.5 * (1.0 + ops.cos(math.pi * fraction))
            decay = target * ((1 - self.alpha) * cosine + self.alpha)
            return ops.where(step < warmup_steps, warmup, decay)


def warmup_cosine_adamw(steps, learning_rate=1e-3, min_learning_rate=None,
                        warmup_steps=100, beta_2=0.99, weight_decay=0.1,
                        global_clipnorm=1.0):
    """AdamW on nanoGPT's schedule: linear warmup, then cosine decay.

    The learning rate rises linearly from 0 to `learning_rate` over
    `warmup_steps`, then follows a cosine down to `min_learning_rate` at
    `steps`. Weight decay applies to matrices only (not to biases and
    normalisation scales), and the global gradient norm is clipped, as in
    nanoGPT.

    Args:
        steps: total training steps (e.g. nanoGPT's 2000).
        learning_rate: the peak learning rate.
        min_learning_rate: the final rate; default `learning_rate / 10`.
        warmup_steps: steps of linear warmup.
        beta_2: Adam's second-moment decay (0.99 for small models).
        weight_decay: decoupled weight decay of the matrices.
        global_clipnorm: clip the norm of all gradients together.

    Returns:
        A `keras.optimizers.AdamW` on a `WarmupCosineDecay` schedule.

    Examples:
        >>> optimizer = warmup_cosine_adamw(2000)
        >>> [round(float(optimizer.learning_rate), 6)]
        [0.0]
    """
    # (checked before any conversion: `int()` cut 0.5 steps to 0 and named
    # that, None was a bare TypeError, a rate of 0 a ZeroDivisionError, and
    # a negative one trained up the loss in silence)
    steps = _inputs.check_count(steps, "steps")
    warmup_steps = _inputs.check_count(warmup_steps, "warmup_steps",
                                       minimum=0)
    learning_rate = _inputs.check_number(learning_rate, "learning_rate")
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(
            f"`learning_rate` must be a number > 0; got {learning_rate!r}.")
    warmup_steps = min(warmup_steps, steps)
    if min_learning_rate is None:
        min_learning_rate = learning_rate / 10
    min_learning_rate = _inputs.check_number(min_learning_rate,
                                             "min_learning_rate")
    if not 0.0 <= min_learning_rate <= learning_rate:
        raise ValueError(
            "`min_learning_rate` must be in [0, learning_rate] = [0, "
            f"{learning_rate}]; got {min_learning_rate!r}.")
    schedule = WarmupCosineDecay(
        initial_learning_rate=0.0 if warmup_steps else learning_rate,
        decay_steps=max(steps - warmup_steps, 1),
        alpha=min_learning_rate / learning_rate,
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
    return _AdamWExcluding(
        learning_rate=schedule, beta_2=beta_2, weight_decay=weight_decay,
        global_clipnorm=global_clipnorm,
        excluded_names=["bias", "gamma", "beta"],
    )


@keras.saving.register_keras_serializable(package="keras_genzoo")
class _AdamWExcluding(keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` whose `exclude_from_weight_decay` names are
    in its config: Keras' own does not save them, so a loaded
    `warmup_cosine_adamw` (a `.keras` file, a resumed run) decayed the
    biases and the layer norms' scales and offsets too."""

    def __init__(self, *args, excluded_names=(), **kwargs):
        # Keras' name ("adamw"): one made from this class's name starts
        # with "_", which TensorFlow refuses as a name scope
        kwargs.setdefault("name", "adamw")
        super().__init__(*args, **kwargs)
        self.excluded_names = list(excluded_names)
        if self.excluded_names:
            self.exclude_from_weight_decay(var_names=self.excluded_names)

    def get_config(self):
        return dict(super().get_config(), excluded_names=self.excluded_names)
