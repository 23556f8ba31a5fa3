"""GANs trained with alternating updates on every backend: DCGAN, WGAN-GP.

The model file says *what* each update optimises (`discriminator_objective`,
`generator_objective`) with `keras.ops` only; `keras_genzoo.backend` says
*how* gradients are taken and applied on TensorFlow, JAX or PyTorch.
"""

import numpy as np

import keras
from keras import ops

from keras_genzoo import _inputs
from keras_genzoo import backend as zoo_backend
from keras_genzoo.models.base import ImageModel
from keras_genzoo.networks.conv import check_filters
from keras_genzoo.networks.dcgan import dcgan_discriminator, dcgan_generator

LABEL_KEY = _inputs.LABEL_KEY


@keras.saving.register_keras_serializable(package="keras_genzoo")
class OptimizerPair(keras.optimizers.Optimizer):
    """Holds a GAN's two optimizers where Keras expects one.

    Keras' trainers (the JAX one above all) carry `model.optimizer.variables`
    through each compiled step. This object's `variables` are the
    discriminator optimizer's followed by the generator optimizer's, so both
    optimizers' state survives every step on every backend. It applies
    nothing itself: the adversarial step calls the two optimizers.

    Args:
        d_optimizer: the discriminator's optimizer.
        g_optimizer: the generator's optimizer.
        **kwargs: passed to `keras.optimizers.Optimizer` (`name`).

    Examples:
        >>> pair = OptimizerPair(keras.optimizers.Adam(), keras.optimizers.SGD())
        >>> type(pair.g_optimizer).__name__
        'SGD'
    """

    def __init__(self, d_optimizer, g_optimizer, **kwargs):
        kwargs.pop("learning_rate", None)
        kwargs.setdefault("name", "optimizer_pair")
        super().__init__(learning_rate=0.0, **kwargs)
        self.d_optimizer = keras.optimizers.get(d_optimizer)
        self.g_optimizer = keras.optimizers.get(g_optimizer)

    @property
    def variables(self):
        return list(self.d_optimizer.variables) + list(
            self.g_optimizer.variables
        )

    def build_for(self, d_variables, g_variables):
        """Builds both optimizers for their networks' variables."""
        if not self.d_optimizer.built:
            self.d_optimizer.build(d_variables)
        if not self.g_optimizer.built:
            self.g_optimizer.build(g_variables)
        self.built = True

    def build(self, var_list):
        # Keras calls this with all the model's trainable variables; the GAN
        # builds each optimizer for its own network with `build_for` first.
        self.built = True

    def save_own_variables(self, store):
        pass  # each optimizer saves its own state

    def load_own_variables(self, store):
        pass

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


def _loss_scaled(optimizer):
    """Wraps `optimizer` in a LossScaleOptimizer if it is not one."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)


@keras.saving.register_keras_serializable(package="keras_genzoo")
class GAN(ImageModel):
    """A DCGAN, optionally class-conditional, trained on any backend.

    The generator maps noise (and a class label, with `num_classes`) to
    images through `Dense -> Reshape -> Conv2DTranspose + BatchNorm`; the
    discriminator scores images with strided `Conv2D + LeakyReLU + Dropout`.
    Each training step makes `d_steps` discriminator updates, then one
    generator update (non-saturating loss), each with its own optimizer.
    `fit` logs `d_loss`, `g_loss` and `d_accuracy` (how often the
    discriminator tells real from fake).

    Input handling is that of every zoo model (bare batches, `(images,
    labels)`, `{"image", "label"}` dicts; uint8 or floats in [0, 1]; any image
    shape, read from the first batch); the networks work in [-1, 1] inside
    and `generate` returns images in [0, 1]. `fit` without `compile` uses
    Adam(2e-4, beta_1=0.5) for both networks; `compile(d_optimizer=...,
    g_optimizer=...)` to choose your own. Under a `mixed_float16` policy both
    optimizers are wrapped in a `LossScaleOptimizer`.

    Args:
        latent_dim: size of the noise vector.
        num_classes: number of classes for a conditional GAN (labels come
            from `(images, labels)` batches or the `"label"` key); `None` for
            an unconditional one.
        generator_filters: filters of the generator's transposed
            convolutions, smallest feature map first; each doubles the size.
        discriminator_filters: filters of the discriminator's strided
            convolutions; each halves the size.
        dropout: dropout rate in the discriminator.
        d_steps: discriminator updates per generator update.
        label_smoothing: one-sided label smoothing: real images are labelled
            `1 - label_smoothing` for the discriminator.
        image_shape: `(height, width, channels)`, or `None` to infer it from
            the first training batch.
        seed: optional integer seed of the training noise and of `generate`.
        **kwargs: standard `keras.Model` arguments (`name`, `dtype`).

    Examples:
        >>> import numpy as np
        >>> from keras_genzoo import GAN
        >>> images = np.random.randint(0, 256, (64, 16, 16, 1), dtype="uint8")
        >>> gan = GAN(latent_dim=8, generator_filters=(16, 8),
        ...           discriminator_filters=(8, 16), seed=0)
        >>> history = gan.fit(images, epochs=1, batch_size=32, verbose=0)
        >>> gan.generate(4, seed=1).shape
        (4, 16, 16, 1)
    """

    default_d_steps = 1

    def __init__(
        self,
        latent_dim=64,
        num_classes=None,
        generator_filters=(64, 32),
        discriminator_filters=(32, 64),
        dropout=0.3,
        d_steps=None,
        label_smoothing=0.0,
        image_shape=None,
        seed=None,
        **kwargs,
    ):
        if int(latent_dim) <= 0:
            raise ValueError(
                f"`latent_dim` must be a positive integer; got {latent_dim}."
            )
        if num_classes is not None and int(num_classes) < 2:
            raise ValueError(
                f"`num_classes` must be at least 2 (or None); got "
                f"{num_classes}."
            )
        d_steps = self.default_d_steps if d_steps is None else int(d_steps)
        if d_steps < 1:
            raise ValueError(f"`d_steps` must be at least 1; got {d_steps}.")
        if not 0.0 <= float(label_smoothing) < 0.5:
            raise ValueError(
                "`label_smoothing` must be in [0, 0.5); got "
                f"{label_smoothing}."
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1); got {dropout}.")
        self.latent_dim = int(latent_dim)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.generator_filters = check_filters(generator_filters)
        self.discriminator_filters = check_filters(discriminator_filters)
        self.dropout = float(dropout)
        self.d_steps = d_steps
        self.label_smoothing = float(label_smoothing)
        super().__init__(image_shape=image_shape, seed=seed, **kwargs)
        self.d_optimizer = None
        self.g_optimizer = None
        self._trackers = self.make_trackers()

    # ------------------------------------------------------------ networks
    def build_networks(self, image_shape):
        self.generator = dcgan_generator(
            image_shape, self.latent_dim, self.generator_filters,
            num_classes=self.num_classes,
        )
        self.discriminator = dcgan_discriminator(
            image_shape, self.discriminator_filters,
            num_classes=self.num_classes, dropout=self.dropout,
        )

    def make_trackers(self):
        """The metrics `fit` logs, as `keras.metrics.Mean` trackers."""
        return {
            name: keras.metrics.Mean(name=name)
            for name in ("d_loss", "g_loss", "d_accuracy")
        }

    @property
    def metrics(self):
        return list(self._trackers.values())

    def record_step(self, logs):
        """Updates the trackers with a step's values; returns their results.

        Args:
            logs: dict of scalar tensors keyed by tracker name.

        Returns:
            Dict of the trackers' running means.
        """
        for name, tracker in self._trackers.items():
            tracker.update_state(logs[name])
        return {name: t.result() for name, t in self._trackers.items()}

    # ------------------------------------------------------------ compile
    def compile(self, d_optimizer=None, g_optimizer=None, optimizer=None,
                **kwargs):
        """Configures both optimizers.

        Args:
            d_optimizer: the discriminator's optimizer (name or instance);
                default Adam(2e-4, beta_1=0.5).
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
        for key in ("loss", "metrics"):
            if kwargs.get(key):
                raise ValueError(
                    f"A GAN defines its own losses and metrics; drop `{key}=`."
                )
            kwargs.pop(key, None)
        d_optimizer = keras.optimizers.get(
            d_optimizer or self.default_optimizer()
        )
        g_optimizer = keras.optimizers.get(
            g_optimizer or self.default_optimizer()
        )
        if d_optimizer is g_optimizer:
            raise ValueError(
                "`d_optimizer` and `g_optimizer` must be two optimizer "
                "objects: one optimizer cannot serve both networks."
            )
        if self.dtype_policy.name == "mixed_float16":
            d_optimizer = _loss_scaled(d_optimizer)
            g_optimizer = _loss_scaled(g_optimizer)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        kwargs["auto_scale_loss"] = False  # done above, for both optimizers
        super().compile(optimizer=OptimizerPair(d_optimizer, g_optimizer),
                        **kwargs)
        if self.built:
            self._build_optimizers()

    def _build_optimizers(self):
        self.optimizer.build_for(self.discriminator.trainable_variables,
                                 self.generator.trainable_variables)

    def get_compile_config(self):
        if not self.compiled:
            return None
        return {
            "d_optimizer": keras.optimizers.serialize(self.d_optimizer),
            "g_optimizer": keras.optimizers.serialize(self.g_optimizer),
        }

    def compile_from_config(self, config):
        self.compile(
            d_optimizer=keras.optimizers.deserialize(config["d_optimizer"]),
            g_optimizer=keras.optimizers.deserialize(config["g_optimizer"]),
        )

    def default_optimizer(self):
        """Adam(2e-4, beta_1=0.5): the DCGAN paper's setting."""
        return keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5)

    def _ensure_compiled(self):
        if not self.compiled:
            self.compile()
        self._build_optimizers()

    # --------------------------------------------------------------- data
    def _prepare(self, x, what, y=None):
        x = super()._prepare(x, what)
        if self.num_classes and not _inputs.has_labels(x, y):
            raise ValueError(
                f"This GAN is conditional (num_classes={self.num_classes}) "
                f"but {what} has no labels: pass `fit(images, labels)`, a "
                "dataset of (images, labels) tuples, or dicts with a "
                "'label' key."
            )
        return x

    def fit(self, x=None, y=None, *args, **kwargs):
        """Trains the GAN; see `keras.Model.fit` for every argument.

        The data is checked first (one clear `ValueError` for bad input),
        the networks are built for the image shape of the first batch, and
        an uncompiled GAN is compiled with Adam(2e-4, beta_1=0.5) for both
        networks. `validation_data` is not used by GANs.
        """
        if kwargs.get("validation_data") is not None:
            raise ValueError(
                "GANs have no validation loss: drop `validation_data` and "
                "watch samples with `keras_genzoo.callbacks.ImageGridSaver`."
            )
        kwargs.pop("validation_data", None)
        return super().fit(x, y, *args, **kwargs)

    def unpack_batch(self, data):
        """Splits a batch into images in [-1, 1] and integer labels.

        Args:
            data: a batch as the dataset yields it: images, `(images,)`,
                `(images, labels)` or a dict with `"image"` (and `"label"`).

        Returns:
            `(images, labels)`; `labels` is `None` for unconditional GANs.
        """
        labels = None
        if isinstance(data, dict):
            images, labels = data[_inputs.IMAGE_KEY], data.get(LABEL_KEY)
        elif isinstance(data, (tuple, list)):
            images = data[0]
            labels = data[1] if len(data) > 1 else None
            if isinstance(images, dict):
                labels = images.get(LABEL_KEY, labels)
                images = images[_inputs.IMAGE_KEY]
        else:
            images = data
        images = self.images_from_inputs(images) * 2.0 - 1.0
        if not self.num_classes:
            return images, None
        labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
        return images, labels

    # --------------------------------------------------------- objectives
    def sample_noise(self, batch_size, seed=None):
        """Draws generator input noise `(batch_size, latent_dim)` ~ N(0, I)."""
        return keras.random.normal(
            (batch_size, self.latent_dim),
            seed=self.seed_generator if seed is None else seed,
        )

    def generate_tensor(self, noise, labels=None, training=False):
        """Runs the generator; returns images in [-1, 1] (a tensor)."""
        inputs = [noise, labels] if self.num_classes else noise
        return self.generator(inputs, training=training)

    def discriminate(self, images, labels=None, training=False):
        """Runs the discriminator; returns logits `(batch, 1)` (a tensor)."""
        inputs = [images, labels] if self.num_classes else images
        return self.discriminator(inputs, training=training)

    def discriminator_objective(self, real, labels=None):
        """The discriminator's loss on a batch, and the values to log.

        Args:
            real: real images in [-1, 1].
            labels: their labels (conditional GANs) or `None`.

        Returns:
            `(d_loss, logs)`.
        """
        batch_size = ops.shape(real)[0]
        fake = ops.stop_gradient(self.generate_tensor(
            self.sample_noise(batch_size), labels, training=True))
        real_logits = self.discriminate(real, labels, training=True)
        fake_logits = self.discriminate(fake, labels, training=True)
        real_target = ops.full_like(real_logits, 1.0 - self.label_smoothing)
        d_loss = ops.mean(ops.binary_crossentropy(
            real_target, real_logits, from_logits=True)) + ops.mean(
            ops.binary_crossentropy(ops.zeros_like(fake_logits), fake_logits,
                                    from_logits=True))
        accuracy = 0.5 * (
            ops.mean(ops.cast(real_logits > 0, "float32"))
            + ops.mean(ops.cast(fake_logits < 0, "float32"))
        )
        return d_loss, {"d_loss": d_loss, "d_accuracy": accuracy}

    def generator_objective(self, batch_size, labels=None):
        """The generator's (non-saturating) loss, and the values to log.

        Args:
            batch_size: how many images to generate.
            labels: the labels to generate for (conditional GANs) or `None`.

        Returns:
            `(g_loss, logs)`.
        """
        fake = self.generate_tensor(self.sample_noise(batch_size), labels,
                                    training=True)
        logits = self.discriminate(fake, labels, training=True)
        g_loss = ops.mean(ops.binary_crossentropy(
            ops.ones_like(logits), logits, from_logits=True))
        return g_loss, {"g_loss": g_loss}

    def train_step(self, *args):
        # (data) on TensorFlow and PyTorch, (state, data) on JAX.
        return zoo_backend.adversarial_train_step(self, *args)

    def test_step(self, *args):
        raise NotImplementedError(
            "GANs have no validation loss: drop `validation_data` and "
            "watch samples with `keras_genzoo.callbacks.ImageGridSaver`."
        )

    def call(self, inputs, training=False):
        """Scores images with the discriminator.

        Args:
            inputs: images (uint8 or [0, 1] floats), or `[images, labels]`
                for a conditional GAN.
            training: whether dropout is active.

        Returns:
            Logits `(batch, 1)`: high for images the discriminator takes for
            real.
        """
        labels = None
        if self.num_classes and isinstance(inputs, (tuple, list)):
            inputs, labels = inputs[0], ops.cast(inputs[1], "int32")
        images = self.images_from_inputs(inputs) * 2.0 - 1.0
        return self.discriminate(images, labels, training=training)

    # -------------------------------------------------------------- usage
    def generate(self, num_samples, seed=None, labels=None, batch_size=256):
        """Draws new images.

        Args:
            num_samples: how many images to generate.
            seed: optional integer; the same seed (and labels) gives the same
                images. Without one, the model's seed generator advances.
            labels: conditional GANs only: one class for all images (an
                int) or one per image; default: classes 0, 1, 2, ... in turn.
            batch_size: how many images to generate at once.

        Returns:
            numpy float32 array `(num_samples, H, W, C)` in [0, 1].
        """
        self._require_built("generate")
        num_samples = int(num_samples)
        if num_samples <= 0:
            raise ValueError(
                f"`num_samples` must be positive; got {num_samples}."
            )
        label_array = self._generation_labels(num_samples, labels)
        noise = self.sample_noise(num_samples,
                                  None if seed is None else int(seed))
        noise = ops.convert_to_numpy(noise)
        outputs = []
        for start in range(0, num_samples, batch_size):
            stop = start + batch_size
            batch_labels = (
                None if label_array is None else label_array[start:stop]
            )
            images = self.generate_tensor(noise[start:stop], batch_labels)
            outputs.append(ops.convert_to_numpy(images))
        images = np.concatenate(outputs).astype("float32")
        return np.clip((images + 1.0) / 2.0, 0.0, 1.0)

    def _generation_labels(self, num_samples, labels):
        if not self.num_classes:
            if labels is not None:
                raise ValueError(
                    "`labels` is only for conditional GANs (num_classes=...)."
                )
            return None
        if labels is None:
            labels = np.arange(num_samples) % self.num_classes
        labels = np.asarray(ops.convert_to_numpy(labels)).astype("int32")
        if labels.ndim == 0:
            labels = np.full((num_samples,), int(labels), "int32")
        labels = labels.reshape(-1)
        if len(labels) != num_samples:
            raise ValueError(
                f"Got {len(labels)} labels for {num_samples} samples: pass "
                "one label, or one per sample."
            )
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(
                f"Labels must be in 0..{self.num_classes - 1}; got "
                f"{labels.min()}..{labels.max()}."
            )
        return labels

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "latent_dim": self.latent_dim,
                "num_classes": self.num_classes,
                "generator_filters": list(self.generator_filters),
                "discriminator_filters": list(self.discriminator_filters),
                "dropout": self.dropout,
                "d_steps": self.d_steps,
                "label_smoothing": self.label_smoothing,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_genzoo")
class WGANGP(GAN):
    """Wasserstein GAN with gradient penalty (Gulrajani et al., 2017).

    The discriminator is a critic: a linear score, no sigmoid, no dropout.
    Each step makes `d_steps` (default 5) critic updates on

        critic_loss = mean(D(fake)) - mean(D(real)) + gp_weight * penalty

    where the penalty is `(||grad_x D(x_hat)|| - 1)^2` on random
    interpolates `x_hat` of real and fake images (input gradients, taken on
    each backend by `keras_genzoo.backend.input_gradients`), then one
    generator update on `-mean(D(fake))`. `fit` logs `d_loss`, `g_loss`,
    `gradient_penalty` and `wasserstein` (the critic's estimate of the
    Wasserstein distance, `mean(D(real)) - mean(D(fake))`). Default
    optimizers: Adam(1e-4, beta_1=0, beta_2=0.9), as in the paper.

    Args:
        latent_dim: size of the noise vector.
        num_classes: number of classes for a conditional WGAN-GP, or `None`.
        generator_filters: filters of the generator's transposed
            convolutions, smallest feature map first.
        discriminator_filters: filters of the critic's strided convolutions.
        d_steps: critic updates per generator update.
        gp_weight: weight of the gradient penalty.
        image_shape: `(height, width, channels)`, or `None` to infer it from
            the first training batch.
        seed: optional integer seed of the training noise and of `generate`.
        **kwargs: standard `keras.Model` arguments (`name`, `dtype`).

    Examples:
        >>> import numpy as np
        >>> from keras_genzoo import WGANGP
        >>> images = np.random.rand(32, 16, 16, 1).astype("float32")
        >>> wgan = WGANGP(latent_dim=8, generator_filters=(16, 8),
        ...               discriminator_filters=(8, 16), d_steps=2, seed=0)
        >>> logs = wgan.fit(images, epochs=1, batch_size=16, verbose=0).history
        >>> sorted(logs)
        ['d_loss', 'g_loss', 'gradient_penalty', 'wasserstein']
    """

    default_d_steps = 5

    def __init__(
        self,
        latent_dim=64,
        num_classes=None,
        generator_filters=(64, 32),
        discriminator_filters=(32, 64),
        d_steps=None,
        gp_weight=10.0,
        image_shape=None,
        seed=None,
        **kwargs,
    ):
        if kwargs.pop("dropout", 0.0):
            raise ValueError(
                "A WGAN-GP critic uses no dropout (the gradient penalty "
                "assumes a deterministic critic): drop `dropout=`."
            )
        if kwargs.pop("label_smoothing", 0.0):
            raise ValueError(
                "A WGAN-GP critic has no labels to smooth: drop "
                "`label_smoothing=`."
            )
        if float(gp_weight) < 0:
            raise ValueError(f"`gp_weight` must be >= 0; got {gp_weight}.")
        self.gp_weight = float(gp_weight)
        super().__init__(
            latent_dim=latent_dim,
            num_classes=num_classes,
            generator_filters=generator_filters,
            discriminator_filters=discriminator_filters,
            dropout=0.0,
            d_steps=d_steps,
            label_smoothing=0.0,
            image_shape=image_shape,
            seed=seed,
            **kwargs,
        )

    def make_trackers(self):
        return {
            name: keras.metrics.Mean(name=name)
            for name in ("d_loss", "g_loss", "gradient_penalty",
                         "wasserstein")
        }

    def default_optimizer(self):
        """Adam(1e-4, beta_1=0, beta_2=0.9): the WGAN-GP paper's setting."""
        return keras.optimizers.Adam(learning_rate=1e-4, beta_1=0.0,
                                     beta_2=0.9)

    def gradient_penalty(self, real, fake, labels=None):
        """`mean((||grad D(x_hat)|| - 1)^2)` on random interpolates.

        Args:
            real: real images in [-1, 1].
            fake: generated images in [-1, 1], same shape.
            labels: their labels (conditional) or `None`.

        Returns:
            The scalar penalty, differentiable with respect to the critic.
        """
        batch_size = ops.shape(real)[0]
        eps = keras.random.uniform((batch_size, 1, 1, 1),
                                   seed=self.seed_generator)
        interpolates = eps * real + (1.0 - eps) * fake
        grads = zoo_backend.input_gradients(
            lambda x: self.discriminate(x, labels, training=True),
            interpolates,
        )
        grads = ops.cast(grads, "float32")
        norms = ops.sqrt(ops.sum(ops.square(grads), axis=(1, 2, 3)) + 1e-12)
        return ops.mean(ops.square(norms - 1.0))

    def discriminator_objective(self, real, labels=None):
        batch_size = ops.shape(real)[0]
        fake = ops.stop_gradient(self.generate_tensor(
            self.sample_noise(batch_size), labels, training=True))
        real_scores = self.discriminate(real, labels, training=True)
        fake_scores = self.discriminate(fake, labels, training=True)
        wasserstein = ops.mean(real_scores) - ops.mean(fake_scores)
        penalty = self.gradient_penalty(real, fake, labels)
        d_loss = -wasserstein + self.gp_weight * penalty
        return d_loss, {"d_loss": d_loss, "gradient_penalty": penalty,
                        "wasserstein": wasserstein}

    def generator_objective(self, batch_size, labels=None):
        fake = self.generate_tensor(self.sample_noise(batch_size), labels,
                                    training=True)
        g_loss = -ops.mean(self.discriminate(fake, labels, training=True))
        return g_loss, {"g_loss": g_loss}

    def get_config(self):
        config = super().get_config()
        for key in ("dropout", "label_smoothing"):
            config.pop(key)
        config["gp_weight"] = self.gp_weight
        return config
