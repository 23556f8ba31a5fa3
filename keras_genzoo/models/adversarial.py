"""What every GAN of the zoo shares: two networks, two optimizers, one
alternating schedule.

`AdversarialModel` holds the generator and the discriminator (built-in DCGAN
networks, or the user's own), the optimizer pair, the training schedule
(`d_steps` discriminator updates, then one generator update) and the
evaluation of both objectives, sampling and conditioning on labels. A GAN
variant is a sibling subclass that says *what* each update optimises
(`discriminator_objective`, `generator_objective`) with `keras.ops` only;
`keras_genzoo.backend` says *how* gradients are taken and applied on each
backend.
"""

import numpy as np

import keras
from keras import ops

from keras_genzoo import _inputs
from keras_genzoo import backend as zoo_backend
from keras_genzoo.models.base import (
    ImageModel,
    _check_image_shape,
    _check_float_output,
    check_one_output,
    check_network,
    final_activation,
    is_keras_activation,
    loadable_compile_config,
    network_input_shapes,
    portable_config,
    probe_labels,
    run_probe,
    split_losses,
)
from keras_genzoo.networks.conv import check_filters
from keras_genzoo.networks.dcgan import dcgan_discriminator, dcgan_generator
from keras_genzoo.optimizers import OptimizerPair, loss_scaled

GENERATOR_CONTRACT = (
    "a generator maps noise of shape (batch, latent_dim) (and, for a "
    "conditional GAN, int labels of shape (batch,) as a second input) to "
    "images in [-1, 1] of shape (batch, height, width, channels)")
# what a GAN's `.keras` file keeps of `compile`, besides its two optimizers
_KERAS_COMPILE_ARGUMENTS = ("steps_per_execution", "jit_compile",
                            "run_eagerly")
# final activations whose outputs lie in [0, 1]
_UNIT_INTERVAL = ("sigmoid", "hard_sigmoid")
# Keras activations whose values stay in [-1, 1]
_SIGNED_UNIT_INTERVAL = ("tanh", "hard_tanh", "softsign")


DISCRIMINATOR_CONTRACT = (
    "a discriminator (for WGAN-GP: the critic) maps images in [-1, 1] of "
    "shape (batch, height, width, channels) (and, for a conditional GAN, "
    "int labels of shape (batch,) as a second input) to one logit or score "
    "per image, of shape (batch, 1) or (batch,)")


def _as_float32(x):
    """Float outputs as float32; others as they are (the contract checks
    name an int output, which carries no gradient)."""
    dtype = keras.backend.standardize_dtype(ops.dtype(x))
    return ops.cast(x, "float32") if keras.backend.is_float_dtype(
        dtype) else x


def _renormalizes_in_place(network):
    """Whether `network` holds Keras' `SpectralNormalization` (which writes
    its kernel in place at every training call) and no batch
    normalization: then its scores of real and fake images come from one
    call (`score_real_and_fake`)."""
    layers = list(network._flatten_layers(include_self=False))
    return any(isinstance(layer, keras.layers.SpectralNormalization)
               for layer in layers) and not any(
        isinstance(layer, keras.layers.BatchNormalization)
        for layer in layers)


class AdversarialModel(ImageModel):
    """Base of the adversarial models (`GAN`, `WGANGP`): see the module.

    Subclasses set `metric_names` and `default_d_steps`, and implement
    `discriminator_objective`, `generator_objective` and
    `default_optimizer`.

    Args:
        latent_dim: size of the noise vector (default 64, or read from the
            generator given).
        num_classes: number of classes for a conditional model, or `None`.
        generator_filters: filters of the built-in generator's transposed
            convolutions, smallest feature map first.
        discriminator_filters: filters of the built-in discriminator's
            strided convolutions.
        d_steps: discriminator updates per generator update.
        generator: optional generator of your own.
        discriminator: optional discriminator (critic) of your own.
        image_shape: `(height, width, channels)`, or `None` to infer it.
        seed: optional integer seed of the training noise and `generate`.
        **kwargs: standard `keras.Model` arguments (`name`, `dtype`).

    Examples:
        >>> from keras_genzoo import GAN, WGANGP
        >>> from keras_genzoo.models import AdversarialModel
        >>> issubclass(GAN, AdversarialModel), issubclass(WGANGP, GAN)
        (True, False)
    """

    default_latent_dim = 64
    default_d_steps = 1
    metric_names = ()
    network_arguments = ("generator", "discriminator")

    def __init__(
        self,
        latent_dim=None,
        num_classes=None,
        generator_filters=(64, 32),
        discriminator_filters=(32, 64),
        d_steps=None,
        generator=None,
        discriminator=None,
        image_shape=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(image_shape=image_shape, seed=seed, **kwargs)
        # counts are checked, not cut by `int` (2.5 ran as 2)
        self.latent_dim = (None if latent_dim is None else
                           _inputs.check_count(latent_dim, "latent_dim"))
        self.num_classes = (None if num_classes is None else
                            _inputs.check_count(num_classes, "num_classes",
                                                2))
        d_steps = (self.default_d_steps if d_steps is None
                   else _inputs.check_count(d_steps, "d_steps"))
        self.generator_filters = check_filters(generator_filters)
        self.discriminator_filters = check_filters(discriminator_filters)
        self.d_steps = d_steps
        self.d_optimizer = None
        self.g_optimizer = None
        self._trackers = {
            name: keras.metrics.Mean(name=name) for name in self.metric_names
        }
        self.generator = generator
        self.discriminator = discriminator
        self._given_networks = tuple(
            name for name, network in (("generator", generator),
                                       ("discriminator", discriminator))
            if network is not None)
        self.adopt_networks()

    # ------------------------------------------------------------ networks
    def adopt_networks(self):
        """Reads `latent_dim` and `image_shape` from the networks the user
        gave and checks their contracts on a probe batch of two; builds the
        model when both networks are given."""
        given = self.given_networks()
        expected = 2 if self.num_classes else 1  # inputs of each network
        if "generator" in given:
            check_network(self.generator, "generator")
            shapes = network_input_shapes(self.generator)
            if shapes is not None:
                if len(shapes) != expected or len(shapes[0]) != 2:
                    raise ValueError(
                        f"Contract: {GENERATOR_CONTRACT}; this generator "
                        f"takes inputs of shape(s) {shapes}.")
                self.agree("latent_dim", int(shapes[0][1]), "generator")
            if self.latent_dim is None:
                raise ValueError(
                    "The generator does not say what noise it takes (it has "
                    "no `keras.Input`): pass `latent_dim=`.")
            activation, layer = final_activation(self.generator)
            if activation in _UNIT_INTERVAL:
                raise ValueError(
                    f"Contract: {GENERATOR_CONTRACT}; this generator ends in "
                    f"a {activation} (`{layer.name}`), which gives [0, 1]: "
                    f"end it with a tanh (the zoo scales real images to "
                    f"[-1, 1]).")
            if (activation is not None
                    and activation not in _SIGNED_UNIT_INTERVAL
                    and is_keras_activation(activation)):
                # a probe of 2 noise vectors let a linear generator through
                # (or not, by chance), whose images then left [-1, 1] and
                # were clipped in silence
                raise ValueError(
                    f"Contract: {GENERATOR_CONTRACT}; this generator ends in "
                    f"a {activation} (`{layer.name}`), whose values can "
                    f"leave [-1, 1]: end it with a tanh.")
            noise = keras.random.normal((2, self.latent_dim), seed=0)
            images = run_probe(
                lambda labels: self.generate_tensor(noise, labels),
                self._probe_labels(), self.num_classes, "generator")
            _check_float_output([images], "generator", "images in [-1, 1]")
            shape = tuple(ops.shape(images))
            if len(shape) != 4 or shape[0] != 2:
                raise ValueError(
                    f"Contract: {GENERATOR_CONTRACT}; this generator returns "
                    f"shape {shape} for 2 noise vectors.")
            values = zoo_backend.to_numpy(images)
            if values.min() < -1.0 or values.max() > 1.0:
                raise ValueError(
                    f"Contract: {GENERATOR_CONTRACT} (end it with a tanh); "
                    f"this one returned values from {values.min():.3g} to "
                    f"{values.max():.3g}.")
            self.agree("image_shape", _check_image_shape(shape[1:]),
                       "generator's output")
        if self.latent_dim is None:
            self.latent_dim = self.default_latent_dim
        if "discriminator" in given:
            check_network(self.discriminator, "discriminator")
            self.adopt_image_shape(self.discriminator, "discriminator",
                                   DISCRIMINATOR_CONTRACT, expected)
            activation, layer = final_activation(self.discriminator)
            if activation in _UNIT_INTERVAL + ("softmax",):
                raise ValueError(
                    f"Contract: {DISCRIMINATOR_CONTRACT}; this one ends in a "
                    f"{activation} (`{layer.name}`). The loss takes the raw "
                    f"logit (it applies the sigmoid itself; a WGAN-GP "
                    f"critic's score is unbounded): drop that activation.")
            probe = keras.random.uniform((2,) + self.image_shape, -1.0, 1.0,
                                         seed=0)
            scores = run_probe(
                lambda labels: self.discriminate(probe, labels),
                self._probe_labels(), self.num_classes, "discriminator")
            _check_float_output([scores], "discriminator", "scores")
            shape = tuple(ops.shape(scores))
            if shape not in ((2,), (2, 1)):
                raise ValueError(
                    f"Contract: {DISCRIMINATOR_CONTRACT}; this discriminator "
                    f"returns shape {shape} for 2 images.")
        if len(given) == 2:
            # Nothing is left to create: built, without `build`, which
            # would lock the model's state before a subclass's __init__
            # adds its own.
            self.built = True

    def _probe_labels(self):
        return probe_labels(self.num_classes)

    def build_networks(self, image_shape):
        if self.generator is None:
            self.generator = dcgan_generator(
                image_shape, self.latent_dim, self.generator_filters,
                num_classes=self.num_classes,
            )
        if self.discriminator is None:
            self.discriminator = self.default_discriminator(image_shape)

    def default_discriminator(self, image_shape):
        """The built-in discriminator for `image_shape`."""
        return dcgan_discriminator(
            image_shape, self.discriminator_filters,
            num_classes=self.num_classes, dropout=0.0,
        )

    @property
    def metrics(self):
        return self.with_added_metrics(self._trackers.values())

    # ------------------------------------------------------------ compile
    def compile(self, d_optimizer=None, g_optimizer=None, optimizer=None,
                **kwargs):
        """Configures both optimizers.

        Args:
            d_optimizer: the discriminator's optimizer (name or instance);
                default `default_optimizer()`.
            g_optimizer: the generator's optimizer; same default.
            optimizer: an `OptimizerPair` (what `.keras` loading passes), as
                an alternative to the two above.
            **kwargs: other `keras.Model.compile` arguments
                (`steps_per_execution`, `jit_compile`, `run_eagerly`).
        """
        if isinstance(optimizer, OptimizerPair):
            d_optimizer = d_optimizer or optimizer.d_optimizer
            g_optimizer = g_optimizer or optimizer.g_optimizer
        elif optimizer is not None:
            raise ValueError(
                "A GAN has two optimizers: pass `d_optimizer=` and "
                "`g_optimizer=` instead of `optimizer=`."
            )
        self._refuse_compile_loss(kwargs)
        d_optimizer = keras.optimizers.get(
            d_optimizer or self.default_optimizer())
        g_optimizer = keras.optimizers.get(
            g_optimizer or self.default_optimizer())
        if self.dtype_policy.name == "mixed_float16":
            d_optimizer = loss_scaled(d_optimizer)
            g_optimizer = loss_scaled(g_optimizer)
        pair = OptimizerPair(d_optimizer, g_optimizer)
        pair.variable_groups = lambda: (
            self.discriminator.trainable_variables,
            self.generator.trainable_variables,
        )
        if self.built and not self._frozen_networks():
            # built (and checked) before anything of the model changes: a
            # compile refused here (an optimizer built for another network)
            # left the refused optimizers in place, and every `fit` after
            # it failed with the same message. (With a network frozen, at
            # the first `fit` after `check_trainable`: built on its
            # variables now, it refused them once unfrozen.)
            pair.build()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        kwargs["auto_scale_loss"] = False  # done above, for both optimizers
        super().compile(optimizer=pair, **kwargs)

    loss_methods = "`discriminator_objective` and `generator_objective`"

    # (the pair's own entry, "optimizer", holds only its step count)
    optimizer_groups = ("d_optimizer", "g_optimizer")

    def default_optimizer_size(self):
        """The variables of both default optimizers, each built for its
        network (a GAN's file holds both; compared with one optimizer's
        count, an uncompiled GAN's `load_weights` dropped them)."""
        total = 0
        for network in (self.discriminator, self.generator):
            default = self.default_compiled_optimizer()
            default.build(network.trainable_variables)
            total += len(default.variables)
        return total

    def get_compile_config(self):
        if not self.compiled:
            return None
        # Keras' own compile arguments as the base class keeps them (the
        # user's `jit_compile`, not a backend's default), both optimizers
        config = {key: value
                  for key, value in super().get_compile_config().items()
                  if key in _KERAS_COMPILE_ARGUMENTS}
        config.update(
            d_optimizer=keras.optimizers.serialize(self.d_optimizer),
            g_optimizer=keras.optimizers.serialize(self.g_optimizer))
        return portable_config(config)

    def compile_from_config(self, config):
        config = loadable_compile_config(portable_config(config))
        self.compile(
            d_optimizer=keras.optimizers.deserialize(config["d_optimizer"]),
            g_optimizer=keras.optimizers.deserialize(config["g_optimizer"]),
            **{key: config[key] for key in _KERAS_COMPILE_ARGUMENTS
               if key in config},  # files of keras_genzoo 0.1.0 have none
        )

    def _ensure_compiled(self):
        if not self.compiled:
            self.compile()
        if self.built and not self.optimizer.built:
            self.optimizer.build()

    # --------------------------------------------------------------- data
    def check_data(self, x, y=None, what="the training data"):
        x = super().check_data(x, y, what)
        self.require_labels(x, y, what, "GAN")
        return x

    # --------------------------------------------------------- networks
    def sample_noise(self, batch_size, seed=None):
        """Draws generator input noise `(batch_size, latent_dim)` ~ N(0, I).

        Under `tf.distribute`, each replica's share of noise drawn for the
        global batch (`keras_genzoo.backend.draw_for_replica`).
        """
        seed = self.sample_seed(seed)
        return zoo_backend.draw_for_replica(
            lambda shape: keras.random.normal(shape, seed=seed),
            (batch_size, self.latent_dim))

    def check_trainable(self):
        """A frozen generator or discriminator (`trainable = False`, Keras
        2's idiom for a combined model) is a `ValueError`: this model
        updates both, each with its own optimizer (one was never updated,
        in silence, or PyTorch failed in `backward`)."""
        frozen = self._frozen_networks()
        if frozen:
            raise ValueError(
                f"The {frozen[0]} has no trainable weights (`trainable = "
                f"False`?): {type(self).__name__} updates the generator "
                "and the discriminator each with its own optimizer, "
                "with no combined model to freeze one in. Set "
                f"`{frozen[0]}.trainable = True`.")

    def generate_tensor(self, noise, labels=None, training=False):
        """Runs the generator; returns float32 images in [-1, 1] (a
        tensor)."""
        inputs = [noise, labels] if self.num_classes else noise
        # float32 whatever the network's policy: an own network made under
        # a mixed policy gave float16 images, which TensorFlow would not
        # mix with the float32 ones of the gradient penalty
        images = check_one_output(self.generator(inputs, training=training),
                                  "generator", GENERATOR_CONTRACT)
        return _as_float32(images)

    def discriminate(self, images, labels=None, training=False):
        """Runs the discriminator; returns one float32 score per image (a
        tensor)."""
        inputs = [images, labels] if self.num_classes else images
        scores = check_one_output(
            self.discriminator(inputs, training=training), "discriminator",
            DISCRIMINATOR_CONTRACT)
        return _as_float32(scores)

    def score_real_and_fake(self, real, fake, labels=None, training=True):
        """Scores a batch of real and one of fake images with the
        discriminator; returns `(real_scores, fake_scores, terms)`.

        `terms` lists what the discriminator's own `losses` add to its
        update: the `add_loss` terms (activity regularizers and the like)
        of both calls, and its weights' regularization penalties, once.
        A discriminator with Keras' `SpectralNormalization` (and no batch
        normalization) scores both batches in one call, on every backend:
        its `add_loss` terms are then that call's (Keras' activity
        regularizers: their mean over both batches, half the sum of two
        calls' means).
        """
        if _renormalizes_in_place(self.discriminator):
            # Keras' SpectralNormalization writes its kernel at every
            # training call: on PyTorch a second call changed in place what
            # the first one's gradient needed ("modified by an inplace
            # operation", at the first step). One call on both batches;
            # without batch normalization, whose statistics would mix
            # them, it scores each image as two calls would.
            count = ops.shape(real)[0]
            both = self.discriminate(
                ops.concatenate([real, ops.cast(fake, real.dtype)]),
                None if labels is None
                else ops.concatenate([labels, labels]), training=training)
            terms, penalties = split_losses(self.discriminator)
            return both[:count], both[count:], terms + penalties
        real_scores = self.discriminate(real, labels, training=training)
        # read before the next call, which clears them (as each call does)
        real_terms, _ = split_losses(self.discriminator)
        fake_scores = self.discriminate(fake, labels, training=training)
        fake_terms, penalties = split_losses(self.discriminator)
        return real_scores, fake_scores, real_terms + fake_terms + penalties

    def generate_for_update(self, batch_size, labels=None, training=True):
        """Generates `batch_size` images that gradients flow back through
        (what a generator update trains on); returns `(images, terms)`,
        `terms` the generator's own `losses` (its call's `add_loss` terms
        and its weights' regularization penalties)."""
        fake = self.generate_tensor(self.sample_noise(batch_size), labels,
                                    training=training)
        return fake, list(self.generator.losses)

    def fake_batch(self, batch_size, labels=None, training=True):
        """Generated images in [-1, 1] that no gradient flows back through
        (what a discriminator update trains on)."""
        return ops.stop_gradient(self.generate_tensor(
            self.sample_noise(batch_size), labels, training=training))

    def discriminator_objective(self, real, labels=None, training=True):
        """The discriminator's loss on a batch of real images, and the
        values to log: `(d_loss, logs)`. The loss includes the
        discriminator's own `losses` (`score_real_and_fake` gives them)."""
        raise NotImplementedError

    def generator_objective(self, batch_size, labels=None, training=True):
        """The generator's loss on `batch_size` generated images, and the
        values to log: `(g_loss, logs)`. The loss includes the generator's
        own `losses` (`generate_for_update` gives them)."""
        raise NotImplementedError

    # ------------------------------------------------------------ schedule
    def train_schedule(self, data, step):
        """`d_steps` discriminator updates, then one generator update.

        Args:
            data: one batch as the dataset yields it.
            step: the backend's `keras_genzoo.backend.StepOps`.

        Returns:
            The merged logs of the updates (the last discriminator
            update's).
        """
        real, labels = self.unpack_batch(data)
        logs = {}
        for _ in range(self.d_steps):
            logs.update(step.minimize(
                self.d_optimizer,
                lambda: self.discriminator_objective(real, labels),
                self.discriminator.trainable_variables,
            ))
        batch_size = ops.shape(real)[0]
        logs.update(step.minimize(
            self.g_optimizer,
            lambda: self.generator_objective(batch_size, labels),
            self.generator.trainable_variables,
        ))
        return logs

    def test_schedule(self, data, step):
        """Both objectives on a batch, without updates (`evaluate`,
        `validation_data`, `test_on_batch`)."""
        real, labels = self.unpack_batch(data)

        def objectives():
            _, logs = self.discriminator_objective(real, labels,
                                                   training=False)
            _, g_logs = self.generator_objective(ops.shape(real)[0], labels,
                                                 training=False)
            return {**logs, **g_logs}

        return step.run(objectives)

    def train_step(self, *args):
        # (data) on TensorFlow and PyTorch, (state, data) on JAX.
        return zoo_backend.custom_train_step(self, self.train_schedule, *args)

    def test_step(self, *args):
        return zoo_backend.custom_test_step(self, self.test_schedule, *args)

    def call(self, inputs, training=False):
        """Scores images with the discriminator.

        Args:
            inputs: images (uint8 or [0, 1] floats), or `[images, labels]`
                for a conditional model.
            training: whether dropout is active.

        Returns:
            One score per image: high for images the discriminator takes
            for real.
        """
        images, labels = _inputs.split_batch(inputs)
        if self.num_classes:
            labels = ops.cast(labels, "int32")
        images = _inputs.scale_pixels(images, signed=True)
        return self.discriminate(images, labels, training=training)

    # -------------------------------------------------------------- usage
    def generate(self, num_samples, seed=None, labels=None, batch_size=256):
        """Draws new images.

        Args:
            num_samples: how many images to generate.
            seed: optional integer; the same seed (and labels) gives the same
                images, on every backend. Without one, the model's seed
                generator advances.
            labels: conditional models only: one class for all images (an
                int) or one per image; default: classes 0, 1, 2, ... in turn.
            batch_size: how many images to generate at once.

        Returns:
            numpy float32 array `(num_samples, H, W, C)` in [0, 1].
        """
        self.ensure_built("generate")
        num_samples = self.check_num_samples(num_samples)
        batch_size = _inputs.check_count(batch_size, "batch_size")
        label_array = self._generation_labels(num_samples, labels)
        noise = self.generation_noise((num_samples, self.latent_dim), seed)
        outputs = []
        for start in range(0, num_samples, batch_size):
            stop = start + batch_size
            batch_labels = (
                None if label_array is None else label_array[start:stop]
            )
            images = self.generate_tensor(noise[start:stop], batch_labels)
            outputs.append(zoo_backend.to_numpy(images))
        return _inputs.unsigned_pixels(np.concatenate(outputs))

    def _generation_labels(self, num_samples, labels):
        if not self.num_classes:
            if labels is not None:
                raise ValueError(
                    "`labels` is only for conditional GANs (num_classes=...)."
                )
            return None
        if labels is None:
            labels = np.arange(num_samples) % self.num_classes
        return _inputs.check_class_labels(
            labels, self.num_classes, num_samples, "`labels` of `generate`",
            one_for_all=True)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "latent_dim": self.latent_dim,
                "num_classes": self.num_classes,
                "generator_filters": list(self.generator_filters),
                "discriminator_filters": list(self.discriminator_filters),
                "d_steps": self.d_steps,
            }
        )
        return config
