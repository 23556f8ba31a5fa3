"""Diffusion models (Ho et al., 2020; Song et al., 2021), backend-free.

Training is DDPM's: noise a batch of images to a random level `t` and
teach a network to undo it with a mean-squared error. Sampling is DDIM's:
start from pure noise and take any number of deterministic (`eta=0`) or
stochastic (`eta=1`, DDPM-like) steps back to an image.

Choices, with their reasons:

- **v-prediction** (Salimans & Ho, 2022): the network predicts
  `v = alpha * noise - sigma * image`. Both the image and the noise follow
  from `v` without a division (`image = alpha * x_t - sigma * v`, `noise =
  sigma * x_t + alpha * v`), so the schedule can end at pure noise (`alpha
  = 0`, "zero terminal SNR", Lin et al., 2024) and sampling starts exactly
  where training ended; a noise-predicting network cannot recover the image
  there (it divides by `alpha`). The v loss also weights the image error
  by `SNR + 1`, which keeps few-step DDIM sampling sharp.
- **Cosine schedule** (Nichol & Dhariwal, 2021) in continuous time: `alpha
  = cos(phi)`, `sigma = sin(phi)`, `phi = (t + s) / (1 + s) * pi / 2` for
  `t` in [0, 1] and `s = 0.008`. Continuous time lets one trained model
  sample with any number of steps.
- **EMA weights** (`ema_network`) updated after every step in a custom
  training step (`keras_genzoo.backend.ema_update`): `generate` and the
  callbacks use them. Keras' own `use_ema=True` optimizers fall short
  here: they overwrite the trained weights with the average at the end of
  every `fit` (a second `fit` restarts from the average) and keep the
  average in the optimizer's state, which a new optimizer starts over.
"""

import math


import numpy as np

import keras
from keras import ops

from keras_genzoo import _inputs
from keras_genzoo import backend as zoo_backend
from keras_genzoo.models.base import (
    ImageModel,
    check_one_output,
    check_network,
    final_activation,
    is_keras_activation,
    with_added_losses,
)
from keras_genzoo.networks.conv import check_filters
from keras_genzoo.networks.unet import unet

# Offset of the cosine schedule (Nichol & Dhariwal, 2021): the least noise,
# at t = 0, is sigma = sin(0.008 / 1.008 * pi / 2) = 0.0125.
SCHEDULE_OFFSET = 0.008

NETWORK_CONTRACT = (
    "a diffusion network maps [noisy images (batch, height, width, "
    "channels), noise levels t (batch,) in [0, 1]] (plus int labels "
    "(batch,) in 0..num_classes as a third input for a conditional model, "
    "where num_classes means 'no label') to a tensor of the images' shape")


def noise_schedule(t):
    """`(alpha, sigma)` of the cosine schedule at noise levels `t` in [0, 1].

    `x_t = alpha * image + sigma * noise`, with `alpha ** 2 + sigma ** 2 =
    1`; `alpha` is 0 at `t = 1` (pure noise).

    Args:
        t: a tensor or array of noise levels.

    Returns:
        Two tensors shaped like `t`.

    Examples:
        >>> import numpy as np
        >>> alpha, sigma = noise_schedule(np.array([0.0, 1.0], "float32"))
        >>> [round(float(a), 4) for a in alpha]
        [0.9999, 0.0]
    """
    t = ops.cast(t, "float32")
    phi = (t + SCHEDULE_OFFSET) / (1.0 + SCHEDULE_OFFSET) * (math.pi / 2)
    # cos(pi / 2) is 6e-17 in float32, not 0: pure noise means alpha = 0
    alpha = ops.where(t >= 1.0, 0.0, ops.cos(phi))
    return alpha, ops.sin(phi)


class _SampleNoise:
    """`standard_normal((n,) + image_shape)` as numpy's, but each sample
    from its own generator, seeded by the sampling seed and the sample's
    index: what sample i draws does not depend on the batch it is in."""

    def __init__(self, seed, start, stop, image_shape):
        self.generators = [np.random.default_rng([seed, 1, i])
                           for i in range(start, stop)]
        self.image_shape = tuple(image_shape)

    def standard_normal(self, shape):
        if tuple(shape) != (len(self.generators),) + self.image_shape:
            raise ValueError(f"one sample's noise per generator; got {shape}")
        return np.stack([g.standard_normal(self.image_shape, "float32")
                         for g in self.generators])


class _Compiled:
    """The compiled sampling steps, one per setting (kept out of Keras'
    attribute tracking: they are not state to save)."""

    def __init__(self):
        self.steps = {}
        self.rows = {}  # the batch sizes each step met (`RowCounts`)

    def clear(self):
        self.steps.clear()
        self.rows.clear()


def _kept_steps(steps, frames):
    """The sampling steps whose states `reverse_process` keeps: `frames`
    of the `steps + 1`, evenly spaced, rounded to whole steps."""
    return np.unique(np.round(np.linspace(0, steps, frames)).astype(int))


def reverse_process_times(steps, frames):
    """The noise levels `t` (1: noise, 0: image) of the states
    `DiffusionModel.reverse_process(steps=steps, frames=frames)` keeps:
    whole steps, so not always evenly spaced (0.33 in the middle of 3
    frames of 3 steps).

    Examples:
        >>> [round(float(t), 2) for t in reverse_process_times(3, 3)]
        [1.0, 0.33, 0.0]
    """
    return 1.0 - _kept_steps(int(steps), int(frames)) / float(steps)


@keras.saving.register_keras_serializable(package="keras_genzoo")
class DiffusionModel(ImageModel):
    """A denoising diffusion model: DDPM training, DDIM sampling, EMA.

    Training noises each image to a random level `t ~ U(0, 1)` of a cosine
    schedule, `x_t = alpha_t * image + sigma_t * noise` (images scaled to
    [-1, 1]), and teaches a U-Net to predict `v = alpha_t * noise - sigma_t
    * image` with a mean-squared error (see the module for why v). After
    every optimizer step an exponential moving average of the weights
    (`ema_network`) is updated; `generate`, `inpaint` and the callbacks
    that call `generate` (`ImageGridSaver`, `ProgressGif`,
    `QualityMonitor`) use the average. `fit` logs `loss`.

    `generate(num_samples, steps=50)` runs DDIM (Song et al., 2021) from
    pure noise with any step count: `eta=0` is deterministic, `eta=1` adds
    DDPM's noise at every step. With `num_classes`, labels condition the
    network and are dropped (replaced by "no label") with probability
    `label_dropout` during training, so one network is both conditional and
    unconditional: classifier-free guidance (Ho & Salimans, 2021) mixes the
    two at sampling, `guidance` > 1 following the labels more closely.
    `generate(..., images=x, strength=s)` noises real images to level `s`
    and denoises them (image-to-image); `inpaint(images, mask)` fills the
    masked pixels in.

    Inputs are those of every zoo image model: arrays, tf.data datasets,
    `PyDataset`s, `(images, labels)` tuples or tfds dicts, uint8 or floats in
    [0, 1], any image shape (read from the first batch). `fit` without
    `compile` uses Adam(2e-3) with a global gradient-norm clip of 1.

    Bring your own network with `network=` (any Keras model or layer).
    Contract: it maps `[noisy images (batch, H, W, C), noise levels t
    (batch,)]` (plus int labels `(batch,)` in `0..num_classes` as a third
    input when conditional; `num_classes` itself means "no label") to a
    tensor of the images' shape (the v prediction). `image_shape` is read
    from its `keras.Input` (pass it otherwise); a network that breaks the
    contract gets a `ValueError` when the model is created. It is saved in
    the `.keras` file (register subclassed networks with
    `keras.saving.register_keras_serializable`).

    Args:
        num_classes: number of classes of a conditional model (labels from
            `(images, labels)` batches or the `"label"` key), or `None`.
        widths: channels of the built-in U-Net's levels, full resolution
            first; each level after the first halves the size.
        blocks_per_level: residual blocks per U-Net level.
        attention: self-attention at the U-Net's lowest resolution.
        dropout: dropout rate inside the U-Net's residual blocks.
        ema_decay: decay of the weights' moving average. The decay used at
            its `n`-th update is `min(ema_decay, (1 + n) / (10 + n))`, so
            short runs are averaged over a short window (`n` is the
            average's own count, `ema_updates`, saved with the weights:
            compiling with a new optimizer goes on where it was).
        label_dropout: conditional models: how often a label is replaced by
            "no label" during training (what guidance needs: with 0,
            sampling refuses a `guidance` other than 1).
        network: optional network of your own (see the contract above).
        image_shape: `(height, width, channels)`, or `None` to infer it from
            the first training batch (or from the network given).
        seed: optional integer seed of the training noise and of `generate`.
        **kwargs: standard `keras.Model` arguments (`name`, `dtype`).

    Examples:
        >>> import numpy as np
        >>> from keras_genzoo import DiffusionModel
        >>> images = np.random.randint(0, 256, (64, 8, 8, 1), dtype="uint8")
        >>> model = DiffusionModel(widths=(8, 16), seed=0)
        >>> history = model.fit(images, epochs=1, batch_size=32, verbose=0)
        >>> model.generate(4, steps=5, seed=1).shape
        (4, 8, 8, 1)

        Conditional, with classifier-free guidance:

        >>> labels = np.arange(64) % 10
        >>> model = DiffusionModel(num_classes=10, widths=(8,), seed=0)
        >>> _ = model.fit(images, labels, epochs=1, batch_size=32, verbose=0)
        >>> model.generate(3, steps=4, labels=[7, 7, 1], guidance=2.0,
        ...                seed=0).shape
        (3, 8, 8, 1)
    """

    network_arguments = ("network",)
    loss_methods = "`diffusion_loss`"

    def __init__(
        self,
        num_classes=None,
        widths=(32, 64),
        blocks_per_level=1,
        attention=False,
        dropout=0.0,
        ema_decay=0.999,
        label_dropout=0.1,
        network=None,
        image_shape=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(image_shape=image_shape, seed=seed, **kwargs)
        if num_classes is not None:  # 2.7 was cut to 2
            num_classes = _inputs.check_count(num_classes, "num_classes", 2)
        if not 0.0 <= float(ema_decay) < 1.0:
            raise ValueError(
                f"`ema_decay` must be in [0, 1); got {ema_decay}.")
        if not 0.0 <= float(label_dropout) < 1.0:
            raise ValueError(
                f"`label_dropout` must be in [0, 1); got {label_dropout}.")
        if int(blocks_per_level) < 1:
            raise ValueError(
                f"`blocks_per_level` must be at least 1; got "
                f"{blocks_per_level}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1); got {dropout}.")
        self.num_classes = None if num_classes is None else int(num_classes)
        try:
            self.widths = check_filters(widths)
        except (TypeError, ValueError):
            raise ValueError(
                f"`widths` must be a non-empty list of positive integers, "
                f"e.g. (32, 64); got {widths!r}.") from None
        self.blocks_per_level = int(blocks_per_level)
        self.attention = bool(attention)
        self.dropout = float(dropout)
        self.ema_decay = float(ema_decay)
        self.label_dropout = float(label_dropout)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        # How many times the average moved: the warmup of its decay counts
        # these, not the optimizer's steps (a model compiled anew, with a
        # new optimizer, had its average nearly replaced by the next
        # steps). Saved with the weights; -1 where a file from before it
        # was loaded (the optimizer's count stands in, as it did).
        self.ema_updates = self.add_weight(
            shape=(), dtype="int32", initializer="zeros", trainable=False,
            name="ema_updates", aggregation="only_first_replica")
        self._compiled = _Compiled()
        self.network = network
        self.ema_network = None
        self._given_networks = ("network",) if network is not None else ()
        if network is not None:
            self.adopt_network()

    # ------------------------------------------------------------ networks
    def adopt_network(self):
        """Reads `image_shape` from the user's network, checks its contract
        on a probe batch of two and creates the EMA copy."""
        check_network(self.network, "network")
        inputs = 3 if self.num_classes else 2
        self.adopt_image_shape(self.network, "network", NETWORK_CONTRACT,
                               num_inputs=inputs)
        try:
            output = self.network(self._probe_inputs(), training=False)
        except Exception as error:
            raise self._contract_error(error) from error
        output = check_one_output(output, "network", NETWORK_CONTRACT)
        activation, layer = final_activation(self.network)
        if activation not in (None, "linear", "leaky_relu") and (
                is_keras_activation(activation)):
            # (a sigmoid or relu cannot give negative v: it trained to a
            # worse loss, in silence)
            raise ValueError(
                f"Contract: {NETWORK_CONTRACT}; this network ends in a "
                f"{activation} (`{layer.name}`), which bounds its output: "
                f"the v it predicts is unbounded, end it without an "
                f"activation.")
        if tuple(ops.shape(output)) != (2,) + self.image_shape:
            raise ValueError(
                f"Contract: {NETWORK_CONTRACT}; this network returns shape "
                f"{tuple(ops.shape(output))} for 2 images of shape "
                f"{self.image_shape}.")
        if not np.isfinite(zoo_backend.to_numpy(output)).all():
            # (JAX gathers an Embedding's missing row as NaN: the model
            # trained on NaN)
            raise self._contract_error(None)
        self.ema_network = self._copy_network(self.network)
        # Nothing is left to create: built, without `build`, which would
        # lock the model's state.
        self.built = True

    def _contract_error(self, error):
        """The `ValueError` for a network that fails (or returns NaN or
        Inf) on the probe batch of two noisy images at level 0.5."""
        why = (f"it failed with {type(error).__name__}: "
               f"{str(error).splitlines()[0][:200]}" if error is not None
               else "it returned NaN or Inf")
        labels = (f" A conditional network takes labels 0..{self.num_classes}"
                  f", {self.num_classes} meaning \"no label\" (the guidance's "
                  f"unconditional pass): an Embedding({self.num_classes + 1}, "
                  "...), not Embedding(num_classes)." if self.num_classes
                  else "")
        return ValueError(
            f"Contract: {NETWORK_CONTRACT}; on a probe batch of 2 noisy "
            f"images {why}.{labels}")

    def build_networks(self, image_shape):
        if self.network is None:
            self.network = unet(
                image_shape, self.widths, self.blocks_per_level,
                attention=self.attention, num_classes=self.num_classes,
                dropout=self.dropout,
                # (the training noise's generator is made from `seed`)
                seed=None if self.seed is None else _inputs.layer_seed(
                    self.seed, 1))
        if self.ema_network is None:
            self.ema_network = self._copy_network(self.network)

    def _copy_network(self, network):
        """A copy of `network` with the same weights, not trained: the EMA
        (named `ema_` and the network's name: `summary()` showed two rows
        of the same name)."""
        config = keras.saving.serialize_keras_object(network)
        if isinstance(config.get("config"), dict) and "name" in config[
                "config"]:
            config["config"] = dict(config["config"],
                                    name=f"ema_{config['config']['name']}")
        try:
            # the user's own network, in memory: a `Lambda` in it is
            # trusted (safe mode refused it, with advice for loading files)
            copy = keras.saving.deserialize_keras_object(config,
                                                         safe_mode=False)
        except TypeError as error:
            raise ValueError(
                "The model keeps an averaged copy of `network`, made from "
                "its config, which failed: register a subclassed network "
                "with `@keras.saving.register_keras_serializable()` and give "
                f"it a `get_config` ({error}).") from None
        if not copy.built or len(copy.weights) != len(network.weights):
            # (a subclassed layer without `build`, rebuilt from its config,
            # counts as built before its sublayers have weights: the copy
            # held none, and `set_weights` failed)
            copy(self._probe_inputs(), training=False)
        # (assigned variable by variable: `get_weights` converts each to
        # numpy, with numpy 2's DeprecationWarning for variables)
        if [tuple(w.shape) for w in copy.weights] != [
                tuple(w.shape) for w in network.weights]:
            raise ValueError(
                "The model keeps an averaged copy of `network`, made from "
                f"its config, which has {len(copy.weights)} weights where "
                f"the network has {len(network.weights)} (or other "
                "shapes): give a subclassed network a `get_config` that "
                "returns every argument of its `__init__`.")
        for target, source in zip(copy.weights, network.weights):
            # a copy of the value: on JAX the two variables held one buffer,
            # which a compiled `predict` donated twice ("Attempt to donate
            # the same buffer twice")
            target.assign(ops.copy(source.value))
        copy.trainable = False
        return copy

    def _probe_inputs(self):
        """Network inputs for two noisy images at level 0.5, "no label":
        what checks a user's network and builds its copy."""
        probe = keras.random.normal((2,) + self.image_shape, seed=0)
        return self._network_inputs(probe, ops.ones((2,)) * 0.5,
                                    self._no_labels(2))

    def _no_labels(self, batch_size):
        if not self.num_classes:
            return None
        return ops.full((batch_size,), self.num_classes, "int32")

    def _network_inputs(self, noisy, t, labels):
        noisy = ops.convert_to_tensor(noisy, "float32")
        t = ops.convert_to_tensor(t, "float32")
        if self.num_classes:
            return [noisy, t, ops.convert_to_tensor(labels, "int32")]
        return [noisy, t]

    def load_own_variables(self, store):
        keys = list(store.keys())
        if "0" not in keys:
            # a file saved before `ema_updates`: the optimizer's count
            # stands in for it (-1)
            store = {key: store[key] for key in keys}
            store["0"] = np.array(-1, "int32")
        super().load_own_variables(store)

    def _ema_pairs(self):
        """`(average, weight)` pairs of the float weights the EMA follows."""
        pairs = []
        for average, weight in zip(self.ema_network.weights,
                                   self.network.weights):
            if "float" in str(weight.dtype):
                pairs.append((average, weight))
        return pairs

    @property
    def metrics(self):
        return self.with_added_metrics([self.loss_tracker])

    def check_trainable(self):
        """A frozen network (`network.trainable = False`) is a
        `ValueError` before training: `fit` logged a loss and changed
        nothing on TensorFlow and JAX, and failed inside `backward` on
        PyTorch."""
        if self._frozen_networks():
            raise ValueError(
                f"The network has no trainable weights (`trainable = "
                f"False`?): {type(self).__name__}.fit trains it, and "
                "nothing else (its EMA copy follows it). Set "
                "`network.trainable = True`; to fine-tune part of it, "
                "freeze some of its layers instead.")

    def default_optimizer(self):
        """Adam(2e-3) with the global gradient norm clipped at 1.

        2e-3 rather than the usual 1e-3: after 15 CPU minutes on MNIST
        (widths (16, 32), batch 128) it took the classifier's mean
        confidence from 0.887 to 0.933 and the Fréchet distance from 95 to
        46 (benchmarks/diffusion_mnist.py); the EMA smooths the noisier
        steps.
        """
        return keras.optimizers.Adam(learning_rate=2e-3, global_clipnorm=1.0)

    # --------------------------------------------------------------- data
    def check_data(self, x, y=None, what="the training data"):
        x = super().check_data(x, y, what)
        self.require_labels(x, y, what, "diffusion model")
        return x

    # ----------------------------------------------------------- training
    def call(self, inputs, training=False):
        """Runs the trained (not averaged) network.

        Args:
            inputs: `[noisy images in [-1, 1], noise levels t (batch,)]`,
                plus labels `(batch,)` for a conditional model.
            training: whether dropout is active.

        Returns:
            The network's v prediction, shaped like the images.
        """
        self._check_network_inputs(inputs)
        return self.network(inputs, training=training)

    def export_signature(self):
        """What `export` serves by default: `call`'s inputs, noisy float
        images, noise levels `(batch,)` and, for a conditional model, int32
        labels."""
        inputs = [keras.InputSpec(shape=(None,) + tuple(self.image_shape),
                                  dtype="float32"),
                  keras.InputSpec(shape=(None,), dtype="float32")]
        if self.num_classes:
            inputs.append(keras.InputSpec(shape=(None,), dtype="int32"))
        return [inputs]

    def _check_network_inputs(self, inputs):
        expected = 3 if self.num_classes else 2
        if isinstance(inputs, dict) or (isinstance(inputs, (list, tuple))
                                        and len(inputs) == expected):
            return
        got = (f"{len(inputs)} inputs" if isinstance(inputs, (list, tuple))
               else f"one input of shape {tuple(ops.shape(inputs))}")
        raise ValueError(
            "A DiffusionModel's call (and `predict`) runs its denoising "
            "network, which takes `[noisy images in [-1, 1], noise levels t "
            "in [0, 1] of shape (batch,)"
            + (", int labels (batch,)" if self.num_classes else "")
            + f"]`; got {got}. To draw images use `generate(n)`; to fill in "
            "the masked part of images, `inpaint(images, mask)`.")

    def check_predict_data(self, x):
        """`predict` gives the network's v prediction for batches of
        `[noisy images, noise levels t]` (plus labels), as `call` does."""
        if not isinstance(x, (list, tuple, dict)) and (
                not _inputs._is_array_like(x)):
            # a dataset, PyDataset or generator: `call` checks what each
            # batch holds (`ops.shape` of the stream failed here with an
            # AttributeError); built first, eagerly, as below
            if not self.built:
                self.ensure_built("predict")
            return x
        self._check_network_inputs(x)
        if self.num_classes and isinstance(x, (list, tuple)):
            # out of range: an output with no error (-1 everywhere, any on
            # JAX) or an error inside the embedding, before
            labels = _inputs.to_numpy(x[2], "The labels of `predict`")
            _inputs.check_class_labels(
                labels, self.num_classes + 1, len(labels),
                f"The labels of `predict` (with {self.num_classes} meaning "
                "no label)")
        if not self.built and isinstance(x, (list, tuple)):
            # built here, eagerly: its averaged copy takes the network's
            # weights with `set_weights`, which TensorFlow cannot run inside
            # the traced predict step where Keras would build it
            self.build(tuple(ops.shape(x[0])))
        return x

    def diffusion_loss(self, images, labels=None, training=True):
        """DDPM's loss on a batch: `mean((network(x_t, t) - v) ** 2)`.

        Args:
            images: images in [-1, 1].
            labels: int labels (conditional models) or `None`.
            training: whether labels are dropped and dropout is active.

        Returns:
            `(loss, logs)`.
        """
        shape = ops.shape(images)
        # under tf.distribute: this replica's share of the global batch's
        draw = zoo_backend.draw_for_replica
        t = draw(lambda s: keras.random.uniform(s, seed=self.seed_generator),
                 shape[:1])
        noise = draw(lambda s: keras.random.normal(
            s, seed=self.seed_generator), shape)
        alpha, sigma = noise_schedule(t)
        alpha = ops.reshape(alpha, (-1, 1, 1, 1))
        sigma = ops.reshape(sigma, (-1, 1, 1, 1))
        noisy = alpha * images + sigma * noise
        target = alpha * noise - sigma * images
        if self.num_classes and training and self.label_dropout > 0:
            drop = draw(lambda s: keras.random.uniform(
                s, seed=self.seed_generator), shape[:1]) < self.label_dropout
            labels = ops.where(drop, self.num_classes, labels)
        prediction = self.network(
            self._network_inputs(noisy, t, labels), training=training)
        loss = ops.mean(ops.square(ops.cast(prediction, "float32") - target))
        # the network's terms (add_loss, regularizers), not the model's:
        # those hold the EMA copy's, left by its last call (sampling, or
        # its making), which doubled them or, on TensorFlow, failed the
        # next traced step with a tensor of the sampling graph
        loss = with_added_losses(loss, self.network.losses)
        return loss, {"loss": loss}

    def train_schedule(self, data, step):
        """One optimizer step on the diffusion loss, then the EMA update.

        Args:
            data: one batch as the dataset yields it.
            step: the backend's `keras_genzoo.backend.StepOps`.

        Returns:
            The logs (`loss`).
        """
        images, labels = self.unpack_batch(data)
        logs = step.minimize(
            self.optimizer, lambda: self.diffusion_loss(images, labels),
            self.network.trainable_variables)
        # the optimizer's updates, with `gradient_accumulation_steps` too
        optimizer = getattr(self.optimizer, "inner_optimizer",
                            self.optimizer)
        every = getattr(optimizer, "gradient_accumulation_steps", None) or 1
        updates, micro = step.optimizer_steps(self.optimizer)
        # this update's number (from 1): the average's own count, else
        # (a file saved before it) the optimizer's
        count = step.read([self.ema_updates])[0]
        number = ops.where(count < 0, ops.cast(updates, "int32"), count + 1)
        n = ops.cast(number, "float32")
        decay = ops.minimum(self.ema_decay, (1.0 + n) / (10.0 + n))
        if every > 1:
            # the average moves where the weights did (every `every`
            # micro-steps), not at every micro-step
            moved = micro % every == 0
            decay = ops.where(moved, decay, 1.0)
            number = ops.where(moved, number, count)
        averages, weights = zip(*self._ema_pairs())
        zoo_backend.ema_update(step, averages, weights, decay)
        step.assign([self.ema_updates], [number])
        return logs

    def test_schedule(self, data, step):
        """The loss on a batch, without updates (`evaluate`,
        `validation_data`, `test_on_batch`)."""
        images, labels = self.unpack_batch(data)
        return step.run(
            lambda: self.diffusion_loss(images, labels, training=False)[1])

    def train_step(self, *args):
        # (data) on TensorFlow and PyTorch, (state, data) on JAX.
        return zoo_backend.custom_train_step(self, self.train_schedule, *args)

    def test_step(self, *args):
        return zoo_backend.custom_test_step(self, self.test_schedule, *args)

    def quantize(self, *args, **kwargs):
        """`keras.Model.quantize`; also drops the compiled sampling steps,
        which computed with the weights as they were (a stale step kept
        sampling with the float weights)."""
        super().quantize(*args, **kwargs)
        self._compiled.clear()

    # ----------------------------------------------------------- sampling
    def _sampling_step(self, guided):
        """The compiled DDIM step for one setting (guided or not)."""
        if guided not in self._compiled.steps:
            def ddim_step(x, t, t_next, noise, eta, labels, guidance):
                return self._ddim_step(x, t, t_next, noise, eta, labels,
                                       guidance if guided else None)

            self._compiled.steps[guided] = zoo_backend.compile_inference(
                self, ddim_step)
        return self._compiled.steps[guided]

    def _predict_v(self, x, t, labels, guidance):
        """The EMA network's v at `x`, with classifier-free guidance."""
        batch_size = ops.shape(x)[0]
        ts = ops.full((batch_size,), t, "float32")
        if guidance is None:
            return ops.cast(self.ema_network(
                self._network_inputs(x, ts, labels), training=False),
                "float32")
        both = self.ema_network(self._network_inputs(
            ops.concatenate([x, x]), ops.concatenate([ts, ts]),
            ops.concatenate([labels, self._no_labels(batch_size)])),
            training=False)
        both = ops.cast(both, "float32")
        conditional, unconditional = both[:batch_size], both[batch_size:]
        return unconditional + guidance * (conditional - unconditional)

    def _ddim_step(self, x, t, t_next, noise, eta, labels, guidance):
        """One DDIM step from level `t` to `t_next` < `t`.

        Returns:
            `(x_next, image)`: the sample at `t_next` and the predicted clean
            image, both in the [-1, 1] scale.
        """
        x = ops.cast(x, "float32")
        v = self._predict_v(x, t, labels, guidance)
        alpha, sigma = noise_schedule(t)
        alpha_next, sigma_next = noise_schedule(t_next)
        image = ops.clip(alpha * x - sigma * v, -1.0, 1.0)
        predicted_noise = sigma * x + alpha * v
        # DDIM's sigma_t (Song et al., eq. 16); eta = 1 is DDPM's posterior
        ratio = ops.where(
            alpha_next > 0, alpha / ops.maximum(alpha_next, 1e-12), 0.0)
        ddim_sigma = eta * (sigma_next / ops.maximum(sigma, 1e-12)) * ops.sqrt(
            ops.maximum(1.0 - ratio ** 2, 0.0))
        direction = ops.sqrt(ops.maximum(sigma_next ** 2 - ddim_sigma ** 2,
                                         0.0))
        x_next = (alpha_next * image + direction * predicted_noise
                  + ddim_sigma * ops.cast(noise, "float32"))
        return x_next, image

    def _check_sampling(self, steps, labels, guidance, eta, num_samples):
        """The checks shared by the sampling methods; returns `(labels,
        guidance)`: the labels as an int32 array (`None` for an
        unconditional model; all "no label" for `guidance=0`) and the
        guidance scale, `None` where one network pass suffices."""
        try:
            _inputs.check_count(steps, "steps")
        except ValueError:
            raise ValueError(
                f"`steps` must be at least 1 (an integer; 50 is a good "
                f"default); got {steps!r}.") from None
        if not 0.0 <= _inputs.check_number(eta, "eta") <= 1.0:
            raise ValueError(
                f"`eta` must be in [0, 1] (0: deterministic DDIM, 1: "
                f"DDPM-like); got {eta}.")
        if not self.num_classes:
            if labels is not None:
                raise ValueError(
                    "`labels` is only for conditional diffusion models "
                    "(DiffusionModel(num_classes=...)); this one is not.")
            if guidance is not None:
                raise ValueError(
                    "`guidance` needs labels: it is only for conditional "
                    "diffusion models (DiffusionModel(num_classes=...)).")
            return None, None
        if guidance is not None:
            guidance = _inputs.check_number(guidance, "guidance")
            if not 0.0 <= guidance < float("inf"):
                raise ValueError(
                    f"`guidance` must be a finite number >= 0 (1: plain "
                    f"conditional, larger: closer to the labels); got "
                    f"{guidance}.")
            if guidance != 1.0 and self.label_dropout == 0.0:
                # the "no label" prediction it needs was never trained: an
                # untrained embedding mixed in, in silence
                raise ValueError(
                    f"`guidance={guidance}` mixes in the prediction without "
                    f"a label, which this model never learned "
                    f"(label_dropout=0): sample with `guidance=None` (plain "
                    f"conditional), or train with label dropout (e.g. the "
                    f"default `label_dropout=0.1`).")
        if labels is None:
            labels = np.arange(num_samples) % self.num_classes
        labels = _inputs.check_class_labels(
            labels, self.num_classes, num_samples, "`labels`",
            one_for_all=True)
        if guidance is not None and float(guidance) == 0.0:
            # the unconditional prediction alone: one network pass
            return np.full_like(labels, self.num_classes), None
        if guidance is not None and float(guidance) == 1.0:
            return labels, None  # the conditional prediction alone
        return labels, guidance

    def _labels_of_images(self, images, labels, guidance, method,
                          strength=None):
        """A conditional model's labels for redrawing given images: those
        given, else those the images carry (`(images, labels)`, a dict's
        `"label"`), else a `ValueError` (classes 0, 1, 2, ... in turn, the
        default for new samples, pulled a 7 towards "0" in silence, and
        dropped the labels the images came with). Nothing is redrawn at
        `strength=0`, and a dataset gets `_to_array`'s message."""
        if (not self.num_classes or labels is not None
                or _inputs._is_stream_of_batches(images)):
            return labels
        if strength is not None and isinstance(
                strength, (int, float, np.floating, np.integer)) and (
                float(strength) == 0.0):
            return labels
        carried = _inputs.carried_labels(images)
        if carried is not None:
            return carried
        if guidance is not None and _inputs.check_number(
                guidance, "guidance") == 0.0:
            return None  # unconditional: no label wanted
        unconditional = (", or `guidance=0` to redraw them without a label"
                         if self.label_dropout > 0 else "")
        raise ValueError(
            f"This model is conditional (num_classes={self.num_classes}): "
            f"pass `labels=` to `{method}` (the images' own classes, or "
            f"the class to redraw them as), or images with their labels "
            f"(`(images, labels)`){unconditional}.")

    def _sampling_seed(self, seed):
        # (called after every check: a refused call takes no seed)
        seed = _inputs.check_seed(seed)
        return self.draw_seed() if seed is None else seed

    def _start_noise(self, seed, num_samples):
        """The starting noise of every sample: sample i's depends on the
        seed alone, whatever `batch_size` or method draws it."""
        return np.random.default_rng(seed).standard_normal(
            (num_samples,) + self.image_shape).astype("float32")

    def _step_noise(self, seed, start, stop):
        """The noise drawn along the way (the fresh noise of `eta > 0`
        steps, inpainting's noised known pixels) of samples `start` to
        `stop`: sample i's depends on the seed and i alone. (Drawn for a
        whole batch from one generator, it depended on `batch_size` and on
        how many images were given: an `eta=0` inpainting changed with
        them by up to 0.018.)"""
        return _SampleNoise(seed, start, stop, self.image_shape)

    def _run_chunks(self, num_samples, batch_size, verbose, total_steps,
                    run_chunk):
        """Runs `run_chunk(start, stop, progress)` over batches of samples,
        with a progress bar when `verbose`."""
        batch_size = _inputs.check_count(batch_size, "batch_size")
        if verbose == "auto":
            verbose = num_samples * total_steps >= 10000
        progbar = None
        if verbose and total_steps:
            chunks = -(-num_samples // batch_size)
            progbar = keras.utils.Progbar(chunks * total_steps,
                                          unit_name="step")
        outputs = []
        for start in range(0, num_samples, batch_size):
            stop = min(start + batch_size, num_samples)
            outputs.append(run_chunk(start, stop, progbar))
        return outputs

    def _denoise(self, x, times, labels, guidance, eta, step_noise, progbar,
                 known=None, mask=None, frames=None, batch_size=None):
        """DDIM from `x` at `times[0]` down to `times[-1]` (numpy in and
        out, [-1, 1] scale). With `known`/`mask`, the pixels outside the
        mask follow `known` noised to each level (inpainting). The noise
        along the way comes from `step_noise` (`_step_noise`). `frames`
        collects `x` after each step when a list. With `batch_size` (and
        without `known` and `frames`), the samples may be denoised padded
        with zeros to a batch size the compiled step has met (each sample
        is denoised on its own; see `_inputs.RowCounts`)."""
        step = self._sampling_step(guidance is not None)
        n = len(x)
        if not self.num_classes:
            labels = np.zeros((n,), "int32")  # ignored
        elif labels is None:
            labels = np.full((n,), self.num_classes, "int32")
        rows = n
        if batch_size is not None and known is None and frames is None:
            counts = self._compiled.rows.setdefault(
                guidance is not None, _inputs.RowCounts())
            rows = counts.rows(n, batch_size)
            x, labels = _inputs.pad_rows(x, rows), _inputs.pad_rows(
                labels, rows)
        guidance = np.float32(1.0 if guidance is None else guidance)
        eta = np.float32(eta)
        # x stays a backend tensor between steps (no host round trip on a
        # GPU) unless inpainting or figures need it on the host
        labels = ops.convert_to_tensor(labels, "int32")
        shape = tuple(x.shape)
        zeros = ops.zeros(shape, "float32")
        x = ops.convert_to_tensor(x, "float32")
        image = x
        for t, t_next in zip(times[:-1], times[1:]):
            noise = (_inputs.pad_rows(step_noise.standard_normal(
                (n,) + shape[1:]), rows) if eta else zeros)
            x, image = step(x, np.float32(t), np.float32(t_next), noise, eta,
                            labels, guidance)
            if known is not None or frames is not None:
                x = zoo_backend.to_numpy(x)
            if known is not None:
                alpha, sigma = (float(v) for v in zoo_backend.to_numpy(
                    ops.stack(noise_schedule(np.float32(t_next)))))
                noised = (alpha * known + sigma * step_noise.standard_normal(
                    known.shape))
                x = mask * x + (1.0 - mask) * noised
            if frames is not None:
                frames.append(x)
            if progbar is not None:
                progbar.add(1)
        image = zoo_backend.to_numpy(image)[:n]
        if known is not None:
            image = mask * image + (1.0 - mask) * known
        return image

    def generate(self, num_samples=None, steps=50, seed=None, eta=0.0,
                 labels=None, guidance=None, images=None, strength=None,
                 batch_size=256, verbose="auto"):
        """Draws new images with DDIM, from noise or from given images.

        Args:
            num_samples: how many images to generate (with `images`: `None`
                or their number).
            steps: DDIM steps from pure noise to the image (any number;
                with `images`, `steps * strength` of them are taken).
            seed: optional integer; the same seed (and arguments) gives the
                same images, on every backend. Without one, the model's seed
                generator advances.
            eta: 0 for deterministic DDIM, 1 for DDPM-like ancestral
                sampling (fresh noise at every step), or in between.
            labels: conditional models: one class for all images (an int)
                or one per image; default: classes 0, 1, 2, ... in turn
                (with `images=`: the labels the images come with, as
                `(images, labels)` or a dict's `"label"`; otherwise pass
                them, or `guidance=0`).
            guidance: conditional models: the classifier-free guidance scale
                (1 or `None`: plain conditional; larger: closer to the
                labels, at two network passes per step; 0: unconditional
                samples, ignoring the labels).
            images: image-to-image: real images (uint8 or [0, 1]) to noise
                to level `strength` and denoise again.
            strength: image-to-image: how much noise, from 0 (the images
                come back unchanged) to 1 (pure noise: a new sample);
                default 0.8.
            batch_size: how many images to denoise at once.
            verbose: show a progress bar; `"auto"` shows one for long runs
                (`num_samples * steps >= 10000`).

        Returns:
            numpy float32 array `(num_samples, H, W, C)` in [0, 1].
        """
        self.ensure_built("generate")
        if images is not None:
            labels = self._labels_of_images(
                images, labels, guidance, "generate(images=...)",
                strength=0.8 if strength is None else strength)
            images = self._to_array(images, "`images`")
            if num_samples is not None and self.check_num_samples(
                    num_samples) != len(images):
                raise ValueError(
                    f"`num_samples={num_samples}` disagrees with the "
                    f"{len(images)} images given: drop `num_samples`.")
            num_samples = len(images)
            strength = 0.8 if strength is None else strength
            if not 0.0 <= _inputs.check_number(strength, "strength") <= 1.0:
                raise ValueError(
                    f"`strength` must be in [0, 1]; got {strength}.")
        elif strength is not None:
            raise ValueError(
                "`strength` is for image-to-image: pass the images to start "
                "from as `images=`.")
        elif num_samples is None:
            raise ValueError("Pass `num_samples` (or `images=`).")
        num_samples = self.check_num_samples(num_samples)
        labels, guidance = self._check_sampling(steps, labels, guidance,
                                                eta, num_samples)
        steps = int(steps)
        start_t = 1.0
        if images is not None:
            start_t = float(strength)
            steps = max(1, int(round(steps * start_t))) if start_t else 0
            if not steps:
                # checked whatever the strength
                _inputs.check_seed(seed)
                _inputs.check_count(batch_size, "batch_size")
                return images.astype("float32")
        times = np.linspace(start_t, 0.0, steps + 1).astype("float32")
        _inputs.check_count(batch_size, "batch_size")  # before the draw
        seed = self._sampling_seed(seed)

        start_noise = self._start_noise(seed, num_samples)
        if images is not None:  # image-to-image: noise them to `start_t`
            alpha, sigma = (float(zoo_backend.to_numpy(a))
                            for a in noise_schedule(np.float32(start_t)))
            start_noise = alpha * (images * 2.0 - 1.0) + sigma * start_noise

        def run_chunk(start, stop, progbar):
            x = start_noise[start:stop]
            return self._denoise(
                x, times, None if labels is None else labels[start:stop],
                guidance, eta, self._step_noise(seed, start, stop), progbar,
                batch_size=batch_size)

        chunks = self._run_chunks(num_samples, batch_size, verbose, steps,
                                  run_chunk)
        return _inputs.unsigned_pixels(np.concatenate(chunks))

    def inpaint(self, images, mask, steps=50, seed=None, eta=0.0,
                labels=None, guidance=None, batch_size=256, verbose="auto"):
        """Fills in the masked pixels of images so they fit the rest.

        At every DDIM step the unmasked pixels are replaced by the given
        image noised to that step's level, so the generated pixels grow
        consistent with them (the replacement method of RePaint, Lugmayr et
        al., 2022, without its resampling).

        Args:
            images: the images (uint8 or [0, 1]), one or a batch.
            mask: 1 (or True) where pixels are to be generated, 0 where they
                are kept; shaped like the images, `(N, H, W)`, `(H, W, C)`
                or `(H, W)` (one mask for all images).
            steps: DDIM steps.
            seed: optional integer; the same seed gives the same result.
            eta: 0 for deterministic DDIM, 1 for DDPM-like steps.
            labels: conditional models: the class(es) to fill in with;
                default: the labels the images come with (`(images,
                labels)` or a dict's `"label"`); otherwise pass them, or
                `guidance=0`.
            guidance: conditional models: the guidance scale (see
                `generate`).
            batch_size: how many images to process at once.
            verbose: progress bar (see `generate`).

        Returns:
            numpy float32 array of the images in [0, 1], masked pixels
            generated, the others as given.
        """
        self.ensure_built("inpaint")
        labels = self._labels_of_images(images, labels, guidance, "inpaint")
        images = self._to_array(images, "`images`")
        num_samples = len(images)
        mask = zoo_backend.to_numpy(mask).astype("float32")
        given = mask.shape
        try:
            # rank 3: one mask (H, W, C or 1), else one per image (N, H, W)
            one_mask = mask.ndim == 3 and mask.shape[:2] == (
                self.image_shape[:2]) and mask.shape[-1] in (
                1, self.image_shape[-1])
            if (mask.ndim == 3 and not one_mask) or mask.ndim == 2:
                mask = mask[..., None]
            mask = np.broadcast_to(mask, images.shape).astype("float32")
        except ValueError:
            # (the shape given: the one made of it was quoted, and an
            # (H, W, 1) mask for colour images was refused)
            raise ValueError(
                f"`mask` of shape {given} does not fit images of shape "
                f"{images.shape}: pass one mask (H, W), (H, W, 1) or "
                "(H, W, C), or one per image (N, H, W) or (N, H, W, C)."
            ) from None
        if not ((mask == 0) | (mask == 1)).all():
            raise ValueError(
                "`mask` must hold 0 (keep the pixel) and 1 (generate it) "
                "only.")
        labels, guidance = self._check_sampling(steps, labels, guidance,
                                                eta, num_samples)
        times = np.linspace(1.0, 0.0, int(steps) + 1).astype("float32")
        _inputs.check_count(batch_size, "batch_size")  # before the draw
        seed = self._sampling_seed(seed)

        start_noise = self._start_noise(seed, num_samples)

        def run_chunk(start, stop, progbar):
            x = start_noise[start:stop]
            known = images[start:stop] * 2.0 - 1.0
            return self._denoise(
                x, times, None if labels is None else labels[start:stop],
                guidance, eta, self._step_noise(seed, start, stop), progbar,
                known=known, mask=mask[start:stop])

        chunks = self._run_chunks(num_samples, batch_size, verbose,
                                  int(steps), run_chunk)
        filled = _inputs.unsigned_pixels(np.concatenate(chunks))
        # the kept pixels as given: their round trip through [-1, 1] can
        # change the last bit (63 of the 256 uint8 levels)
        return np.where(mask > 0, filled, images).astype("float32")

    def reverse_process(self, num_samples=8, steps=50, frames=10, seed=None,
                        eta=0.0, labels=None, guidance=None):
        """The way from noise to image of a few samples, for figures.

        Args:
            num_samples: how many samples.
            steps: DDIM steps.
            frames: how many states to keep, evenly spaced from the pure
                noise to the final image (both included).
            seed: optional integer; the same seed as `generate` gives the
                same final images.
            eta: see `generate`.
            labels: see `generate`.
            guidance: see `generate`.

        Returns:
            numpy float32 array `(num_samples, frames, H, W, C)` in [0, 1]:
            one row per sample, noise first (pixels clipped to [0, 1]).
        """
        self.ensure_built("reverse_process")
        num_samples = self.check_num_samples(num_samples)
        labels, guidance = self._check_sampling(steps, labels, guidance,
                                                eta, num_samples)
        if not 2 <= _inputs.check_count(frames, "frames") <= int(steps) + 1:
            raise ValueError(
                f"`frames` must be from 2 to steps + 1 = {int(steps) + 1} "
                f"(the states along the way); got {frames}.")
        steps = int(steps)
        times = np.linspace(1.0, 0.0, steps + 1).astype("float32")
        seed = self._sampling_seed(seed)
        x = self._start_noise(seed, num_samples)
        states = [x]
        image = self._denoise(x, times, labels, guidance, eta,
                              self._step_noise(seed, 0, num_samples), None,
                              frames=states)
        states[-1] = image
        keep = _kept_steps(steps, int(frames))
        kept = np.stack([states[i] for i in keep], axis=1)
        return _inputs.unsigned_pixels(kept)

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_classes": self.num_classes,
            "widths": list(self.widths),
            "blocks_per_level": self.blocks_per_level,
            "attention": self.attention,
            "dropout": self.dropout,
            "ema_decay": self.ema_decay,
            "label_dropout": self.label_dropout,
        })
        return config
