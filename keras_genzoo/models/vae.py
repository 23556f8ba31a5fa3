"""Variational auto-encoder (Kingma & Welling, 2014), backend-free."""

import math

import numpy as np

import keras
from keras import ops

from keras_genzoo import _inputs
from keras_genzoo import backend as zoo_backend
from keras_genzoo.layers.sampling import Sampling
from keras_genzoo.models.base import (
    LatentImageModel,
    pixel_bce,
    with_added_losses,
)
from keras_genzoo.networks.conv import conv_decoder, conv_encoder


def reconstruction_bce(images, reconstruction):
    """Binary cross-entropy summed over pixels, averaged over the batch."""
    per_pixel = pixel_bce(images, reconstruction)
    return ops.mean(ops.sum(per_pixel, axis=(1, 2, 3)))


class _Compiled:
    """The compiled likelihood function (kept out of Keras' attribute
    tracking: it is not state to save)."""

    likelihood = None


@keras.saving.register_keras_serializable(package="keras_genzoo")
class VAE(LatentImageModel):
    """A convolutional variational auto-encoder.

    The encoder maps an image to the mean and log-variance of a Gaussian over
    `latent_dim` latent variables; a `Sampling` layer draws
    `z = mean + sigma * eps`; the decoder maps `z` back to pixel values in
    [0, 1]. The loss (per image, averaged over the batch) is

        loss = reconstruction_loss + beta * kl_loss

    with the binary cross-entropy summed over pixels as reconstruction loss
    and the KL divergence to the standard normal prior. `fit` logs `loss`,
    `reconstruction_loss` and `kl_loss`.

    The image shape comes from the first batch given to `fit`: bare batches,
    `(images, labels)` tuples or `{"image": ...}` dicts, uint8 in 0..255 or
    floats in [0, 1], any height, width and channel count. `fit` on an
    uncompiled model uses Adam with learning rate 1e-3; `compile(optimizer=...)`
    first to choose your own.

    Bring your own networks with `encoder=` and `decoder=` (both, any Keras
    models or layers). Contract: the encoder maps images in [0, 1] of shape
    `(batch, height, width, channels)` to two tensors `(z_mean, z_log_var)`
    of shape `(batch, latent_dim)`; the decoder maps `z` of shape `(batch,
    latent_dim)` to images in [0, 1] of the encoder's input shape (end it
    with a sigmoid). `image_shape` and `latent_dim` are read from them
    (pass `image_shape` if the encoder has no `keras.Input`); a network
    that breaks the contract gets a `ValueError` when the VAE is created.
    They are saved in the `.keras` file (functional and Sequential models
    as they are; register subclassed ones with
    `keras.saving.register_keras_serializable`).

    Args:
        latent_dim: number of latent variables (default 16, or read from
            the encoder given).
        beta: weight of the KL term (`beta > 1` gives a beta-VAE).
        filters: filters of the built-in encoder's strided convolutions
            (the decoder mirrors them); each entry halves the spatial size.
        encoder: optional encoder of your own (see the contract above).
        decoder: optional decoder of your own.
        image_shape: `(height, width, channels)`, or `None` to infer it from
            the first training batch (or from the encoder given).
        seed: optional integer seed of the sampling noise and of `generate`.
        num_classes: number of classes of a conditional VAE (Sohn et al.,
            2015): the encoder and the decoder also take the image's int
            label (a learned embedding in the built-in networks), labels
            come as the GANs' do (`fit(images, labels)`, `(images,
            labels)` batches, tfds dicts) and `generate(n, labels=...)`
            draws the digit asked for. Your own networks then take
            `[images, labels]` and `[z, labels]`. `None`: unconditional.
        **kwargs: standard `keras.Model` arguments (`name`, `dtype`).

    Examples:
        >>> import numpy as np
        >>> from keras_genzoo import VAE
        >>> images = np.random.randint(0, 256, size=(64, 16, 16, 1), dtype="uint8")
        >>> vae = VAE(latent_dim=2, filters=(8, 16), seed=0)
        >>> history = vae.fit(images, epochs=1, batch_size=32, verbose=0)
        >>> vae.generate(4, seed=1).shape
        (4, 16, 16, 1)

        Your own networks (keras-io's VAE, say):

        >>> import keras
        >>> inputs = keras.Input((16, 16, 1))
        >>> h = keras.layers.Flatten()(inputs)
        >>> encoder = keras.Model(inputs, [keras.layers.Dense(2)(h),
        ...                                keras.layers.Dense(2)(h)])
        >>> decoder = keras.Sequential([
        ...     keras.Input((2,)), keras.layers.Dense(256, "sigmoid"),
        ...     keras.layers.Reshape((16, 16, 1))])
        >>> vae = VAE(encoder=encoder, decoder=decoder)
        >>> (vae.latent_dim, vae.image_shape)
        (2, (16, 16, 1))
    """

    default_latent_dim = 16
    encoder_outputs = 2
    encoder_contract = (
        "a VAE encoder maps images in [0, 1] of shape (batch, height, width, "
        "channels) to two tensors (z_mean, z_log_var), each of shape "
        "(batch, latent_dim)")

    def __init__(
        self,
        latent_dim=None,
        beta=1.0,
        filters=(32, 64),
        encoder=None,
        decoder=None,
        image_shape=None,
        seed=None,
        num_classes=None,
        **kwargs,
    ):
        super().__init__(latent_dim, filters, encoder=encoder,
                         decoder=decoder, image_shape=image_shape,
                         seed=seed, num_classes=num_classes, **kwargs)
        if float(beta) < 0:
            raise ValueError(f"`beta` must be >= 0; got {beta}.")
        self.beta = float(beta)
        # the model's policy, not the global one (`VAE(dtype="float32")`
        # made under a mixed global policy drew its codes in float16)
        self.sampling = Sampling(seed=seed, name="sampling",
                                 dtype=self.dtype_policy)
        self.reconstruction_loss_tracker = keras.metrics.Mean(
            name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")
        self._compiled = _Compiled()

    def build_networks(self, image_shape):
        if self.encoder is None:
            self.encoder = conv_encoder(
                image_shape, (self.latent_dim, self.latent_dim), self.filters,
                num_classes=self.num_classes)
            self.decoder = conv_decoder(image_shape, self.latent_dim,
                                        self.filters,
                                        num_classes=self.num_classes)
        if not self.sampling.built:
            # here, not at its first call: a conditional VAE's symbolic
            # first call (in `fit`) skips it, so on PyTorch that call was in
            # the compiled step, where building a layer breaks the graph
            shape = (None, self.latent_dim)
            self.sampling.build([shape, shape])

    def call(self, inputs, training=False):
        """Encodes, samples and decodes a batch.

        Args:
            inputs: a batch of images (or `(images, labels)`, or a dict with
                an `"image"` key), uint8 or float in [0, 1]. A conditional
                VAE needs the labels: `(images, labels)` or a dict with a
                `"label"` key.
            training: whether the call is part of a training step.

        Returns:
            A dict with `"reconstruction"` (images in [0, 1]), `"z_mean"` and
            `"z_log_var"`. A conditional VAE called on images without
            labels returns `{"images": images}` only: Keras' training step
            calls it so (`fit(images, labels)` hands the labels to
            `compute_loss` as `y`), and `compute_loss` then runs the
            networks with the labels.
        """
        images = self.images_from_inputs(inputs)
        labels = None
        if self.num_classes:
            labels = _inputs.split_batch(inputs)[1]
            if labels is None:
                return {"images": images}
        return self._forward(images, labels, training)

    def _forward(self, images, labels, training):
        """Encodes, samples and decodes float images (with int labels for
        a conditional VAE)."""
        if labels is not None:
            # a tensor each: a list that mixes numpy and tensors (as
            # `train_on_batch` on torch passes) is refused by Keras
            images = ops.convert_to_tensor(images)
            labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
        z_mean, z_log_var = self.encoder(self.with_labels(images, labels),
                                         training=training)
        z = self.sampling([z_mean, z_log_var])
        reconstruction = self.decoder(self.with_labels(z, labels),
                                      training=training)
        return {
            "reconstruction": reconstruction,
            "z_mean": z_mean,
            "z_log_var": z_log_var,
        }

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        images = self.images_from_inputs(x)
        if "reconstruction" not in y_pred:  # a conditional VAE, see `call`
            labels = y if y is not None else _inputs.split_batch(x)[1]
            # the networks' `add_loss` terms (JAX dropped them here)
            with zoo_backend.collecting_losses(self):
                y_pred = self._forward(images, labels, training)
                added_losses = list(self.losses)
        else:
            added_losses = self.losses
        reconstruction_loss = reconstruction_bce(
            images, y_pred["reconstruction"]
        )
        z_mean = ops.cast(y_pred["z_mean"], "float32")
        z_log_var = ops.cast(y_pred["z_log_var"], "float32")
        kl_loss = ops.mean(
            -0.5 * ops.sum(
                1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var),
                axis=1,
            )
        )
        loss = reconstruction_loss + self.beta * kl_loss
        loss = with_added_losses(loss, added_losses)
        # weighted by batch size, like Keras' own "loss" log
        batch_size = ops.shape(images)[0]
        self.reconstruction_loss_tracker.update_state(
            reconstruction_loss, sample_weight=batch_size)
        self.kl_loss_tracker.update_state(kl_loss, sample_weight=batch_size)
        # a replica's share under tf.distribute (the identity elsewhere)
        return zoo_backend.scale_loss_for_replicas(loss)

    # ------------------------------------------------------------ helpers
    def check_data(self, x, y=None, what="the training data"):
        x = super().check_data(x, y, what)
        self.require_labels(x, y, what, "VAE")
        return x

    def encode_batch(self, images, labels=None):
        z_mean, _ = self.encoder(self.with_labels(images, labels),
                                 training=False)
        return z_mean

    def default_labels(self, num_samples, labels):
        """The labels `generate` draws: the given ones (checked), or the
        classes in turn (0, 1, ..., num_classes - 1, 0, ...) for a
        conditional model."""
        if self.num_classes and labels is None:
            return np.arange(num_samples) % self.num_classes
        return self.check_labels(labels, num_samples, "generate")

    def generate(self, num_samples, seed=None, batch_size=256,
                 prior="normal", labels=None):
        """Draws new images by decoding latent codes from a prior.

        Args:
            num_samples: how many images to generate.
            seed: optional integer; the same seed gives the same images, on
                every backend. Without one, the model's own seed generator
                advances.
            batch_size: how many images to decode at once.
            prior: `"normal"`: the VAE's own N(0, I); `"gmm"`: the Gaussian
                mixture fitted by `fit_latent_prior` (sharper samples: it
                avoids the holes N(0, I) leaves between the codes).
            labels: a conditional model's labels: one int for all, or one
                per image; by default the classes in turn.

        Returns:
            numpy float32 array `(num_samples, H, W, C)` in [0, 1].
        """
        self.ensure_built("generate")
        num_samples = self.check_num_samples(num_samples)
        labels = self.default_labels(num_samples, labels)
        self.check_prior(prior)
        # before the draw: a refused call takes no seed
        batch_size = _inputs.check_count(batch_size, "batch_size")
        if prior == "gmm":
            return self.decode(self.sample_latent_prior(num_samples, seed),
                               labels, batch_size=batch_size)
        z = self.generation_noise((num_samples, self.latent_dim), seed)
        return self.decode(z, labels, batch_size=batch_size)

    @staticmethod
    def check_prior(prior):
        """One `ValueError` for a `prior` of `generate` other than
        "normal" or "gmm"."""
        if prior not in ("normal", "gmm"):
            raise ValueError(
                f"`prior` must be 'normal' (N(0, I)) or 'gmm' (the mixture "
                f"of `fit_latent_prior`); got {prior!r}.")

    def anomaly_scores(self, images, num_samples=16, seed=0,
                       batch_size=256, labels=None):
        """The negative ELBO of each image, in nats: higher is more
        anomalous.

        It adds to the reconstruction error how far the image's code lies
        from the prior (the KL term), so an image unlike the training data
        scores high on either count. Pick a threshold on held-out normal
        images (e.g. their 99th percentile).

        Args:
            images: images in any form `fit` takes, uint8 or floats in
                [0, 1].
            num_samples: codes per image for the expectation (see `elbo`).
            seed: seed of the codes: the default 0 gives the same scores
                on every call; `None` advances the model's seed generator.
                Every image takes the same `num_samples` draws, so an
                image's score does not depend on the other images given
                with it or on its place among them.
            batch_size: images per pass.
            labels: a conditional VAE's labels of an array `images`
                (datasets carry their own).

        Returns:
            numpy float32 `(num_images,)`.
        """
        self.ensure_built("anomaly_scores")
        self._check_labels_given(labels, "anomaly_scores")
        pairs = list(_inputs.iterate_image_batches(
            images, batch_size, self.image_shape, "images", labels,
            with_labels=True))
        if not pairs:
            raise ValueError("`images` holds no images.")
        all_labels = None
        if self.num_classes:
            if any(batch_labels is None for _, batch_labels in pairs):
                self.check_labels(None, 0, "anomaly_scores")  # the message
            all_labels = np.concatenate([l for _, l in pairs])
        # every image takes the same `num_samples` noise draws, so that its
        # score is a function of the image alone (one stream for the whole
        # call gave an image another score at another place in the call)
        _, log_px, kl = self._likelihood(
            np.concatenate([b for b, _ in pairs]), num_samples, seed,
            batch_size * num_samples, all_labels, same_noise=True)
        return (kl - log_px.mean(axis=1)).astype("float32")

    # ---------------------------------------------------------- likelihood
    def _likelihood_terms(self, images, eps, labels=None):
        """Per-image terms of the ELBO and of the importance weights.

        Args:
            images: float images `(B, H, W, C)` in [0, 1].
            eps: standard normal noise `(B, K, latent_dim)`.

        Returns:
            `(log_weights, log_px, kl)`: `log p(x|z_k) + log p(z_k) -
            log q(z_k|x)` of shape `(B, K)`, `log p(x|z_k)` `(B, K)` and the
            analytic `KL(q(z|x) || N(0, I))` `(B,)`, all float32, in nats.
        """
        eps = ops.convert_to_tensor(eps, "float32")  # on the model's device
        z_mean, z_log_var = self.encoder(self.with_labels(images, labels),
                                         training=False)
        z_mean = ops.cast(z_mean, "float32")
        z_log_var = ops.cast(z_log_var, "float32")
        z = (ops.expand_dims(z_mean, 1)
             + ops.expand_dims(ops.exp(0.5 * z_log_var), 1) * eps)
        batch, samples = ops.shape(eps)[0], ops.shape(eps)[1]
        repeated = (None if labels is None
                    else ops.repeat(labels, samples, axis=0))
        decoded = self.decoder(self.with_labels(
            ops.reshape(z, (-1, self.latent_dim)), repeated), training=False)
        targets = ops.repeat(images, samples, axis=0)  # (B*K, H, W, C)
        # the Bernoulli log-likelihood the model trains with (its loss)
        log_px = -ops.sum(pixel_bce(targets, decoded), axis=(1, 2, 3))
        log_px = ops.reshape(log_px, (batch, samples))
        log_2pi = math.log(2.0 * math.pi)
        log_pz = -0.5 * ops.sum(ops.square(z) + log_2pi, axis=-1)
        log_qz = -0.5 * ops.sum(
            ops.square(eps) + log_2pi + ops.expand_dims(z_log_var, 1),
            axis=-1)
        kl = -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean)
                            - ops.exp(z_log_var), axis=-1)
        return log_px + log_pz - log_qz, log_px, kl

    def _likelihood(self, images, num_samples, seed, batch_size,
                    labels=None, same_noise=False):
        """`(log_weights, log_px, kl)` as float64 numpy for all images
        (`same_noise`: every image takes the same `num_samples` draws)."""
        self.ensure_built("nll")
        num_samples = _inputs.check_count(num_samples, "num_samples")
        array = self._to_array(images)
        if len(array) == 0:
            raise ValueError("No images given: pass at least one image.")
        labels = self.check_labels(labels, len(array), "nll / elbo")
        compiled = self._compiled
        if compiled.likelihood is None:
            from keras_genzoo import backend

            compiled.likelihood = backend.compile_inference(
                self, self._likelihood_terms)
        # Noise from numpy: the same seed draws the same codes on every
        # backend. Without a seed, one is drawn from the model's generator.
        seed = _inputs.check_seed(seed)
        rng = np.random.default_rng(
            self.draw_seed() if seed is None else seed)
        # about `batch_size` decoder passes per call; the noise is drawn
        # chunk by chunk (one stream: the chunking does not change it)
        chunk = max(1, _inputs.check_count(batch_size, "batch_size")
                    // num_samples)
        shared = (rng.standard_normal((1, num_samples, self.latent_dim))
                  .astype("float32") if same_noise else None)
        parts = []
        for i in range(0, len(array), chunk):
            images = array[i:i + chunk]
            eps = (np.repeat(shared, len(images), axis=0) if same_noise
                   else rng.standard_normal(
                       (len(images), num_samples, self.latent_dim)
                   ).astype("float32"))
            extra = () if labels is None else (labels[i:i + chunk],)
            # the last chunk padded to one of a few sizes: each new number
            # of images compiled the function again (0.5 s, kept)
            rows = _inputs.padded_rows(len(images), chunk)
            padded = [_inputs.pad_rows(a, rows) for a in (images, eps) + extra]
            parts.append([np.asarray(zoo_backend.to_numpy(t),
                                     "float64")[:len(images)]
                          for t in compiled.likelihood(*padded)])
        return [np.concatenate(p) for p in zip(*parts)]

    @staticmethod
    def _reduce(values, reduction):
        if reduction == "mean":
            return float(np.mean(values))
        if reduction == "none":
            return values.astype("float32")
        raise ValueError(
            f"`reduction` must be 'mean' or 'none'; got {reduction!r}.")

    def nll(self, images, num_samples=100, seed=None, batch_size=2048,
            reduction="mean", labels=None):
        """Importance-weighted negative log-likelihood, in nats per image.

        The IWAE bound (Burda et al., 2016) with `K = num_samples` codes
        drawn from the encoder's Gaussian per image:

            -log p(x) <= -log (1/K sum_k p(x|z_k) p(z_k) / q(z_k|x))

        It tightens as `K` grows (`K = 100` or more is the usual report;
        `K = 1` is a one-sample estimate of the negative ELBO). `p(x|z)` is
        the Bernoulli likelihood of the pixel intensities the VAE trains
        with: on binarized images it is the NLL that MNIST papers report
        (e.g. Pythae's 89.78 nats); on grayscale images the Bernoulli
        "likelihood" of continuous targets is not a normalized density, so
        compare models on the same images only.

        Args:
            images: images `(N, H, W, C)` (or one image), uint8 or floats in
                [0, 1], of the model's image shape.
            num_samples: `K`, codes per image.
            seed: seed of the codes (numpy noise: the same seed draws the
                same codes on every backend); without one, the model's
                seed generator advances.
            batch_size: decoder passes per call (images per call times `K`).
            reduction: `"mean"` (a float, nats per image) or `"none"` (a
                float32 array `(N,)`, one value per image).
            labels: the images' int labels (a conditional VAE only).

        Returns:
            The mean NLL (a float), or one value per image.

        Examples:
            >>> import numpy as np
            >>> from keras_genzoo import VAE
            >>> images = np.random.rand(32, 8, 8, 1).astype("float32")
            >>> vae = VAE(latent_dim=2, filters=(4,), image_shape=(8, 8, 1))
            >>> nll = vae.nll(images, num_samples=50, seed=0)
            >>> nll == vae.nll(images, num_samples=50, seed=0)  # seeded
            True
            >>> nll <= -vae.elbo(images, num_samples=50, seed=0) + 1.0
            True
        """
        log_weights, _, _ = self._likelihood(images, num_samples, seed,
                                             batch_size, labels)
        peak = log_weights.max(axis=1, keepdims=True)
        log_mean = peak[:, 0] + np.log(
            np.mean(np.exp(log_weights - peak), axis=1))
        return self._reduce(-log_mean, reduction)

    def elbo(self, images, num_samples=1, seed=None, batch_size=2048,
             reduction="mean", labels=None):
        """The evidence lower bound, in nats per image (higher is better).

        `E_q[log p(x|z)] - KL(q(z|x) || N(0, I))`: the expectation estimated
        with `num_samples` codes per image, the KL term exact. With
        `beta=1` its negative is the VAE's training loss (`loss` in the
        history), measured here without dropout or other training-only
        behaviour. `-elbo(x) >= nll(x)`: the gap is what the bound loses.

        Args:
            images: images `(N, H, W, C)` (or one image), uint8 or floats in
                [0, 1].
            num_samples: codes per image for the expectation.
            seed: seed of the codes (see `nll`).
            batch_size: decoder passes per call.
            reduction: `"mean"` (a float) or `"none"` (one value per image).
            labels: the images' int labels (a conditional VAE only).

        Returns:
            The mean ELBO (a float), or one value per image.

        Examples:
            >>> import numpy as np
            >>> from keras_genzoo import VAE
            >>> images = np.random.rand(16, 8, 8, 1).astype("float32")
            >>> vae = VAE(latent_dim=2, filters=(4,), image_shape=(8, 8, 1))
            >>> vae.elbo(images, seed=0) < 0
            True
        """
        _, log_px, kl = self._likelihood(images, num_samples, seed,
                                         batch_size, labels)
        return self._reduce(log_px.mean(axis=1) - kl, reduction)

    def interpolate(self, x_a, x_b, steps=8, labels=None):
        """Decodes a straight line in latent space between two images.

        Args:
            x_a: the first image `(H, W, C)` (or a batch of one).
            x_b: the last image.
            steps: number of images on the path, both ends included.
            labels: a conditional VAE's label: one int, or one for each
                end (`(label_a, label_b)`; the path then keeps `label_a`
                for its first half and `label_b` for the rest).

        Returns:
            numpy float32 array `(steps, H, W, C)`: the decoded latent means
            of `x_a` and `x_b` at both ends and the points between them.
        """
        _inputs.check_count(steps, "steps", minimum=2)
        label_a = label_b = None
        if self.num_classes:
            if labels is None:
                raise ValueError(
                    "This VAE is conditional: pass `labels=` (one int, or "
                    "one per end) to `interpolate`.")
            # checked as every method's labels: before, 1.7 ran as 1 and
            # a third label was dropped in silence
            what = "`labels` of `interpolate` (one for each end)"
            ends = _inputs.to_numpy(labels, what)
            if ends.shape == (1,):
                ends = ends[0]
            ends = _inputs.check_class_labels(ends, self.num_classes, 2,
                                              what, one_for_all=True)
            label_a, label_b = ends[:1], ends[1:]
        elif labels is not None:
            self.check_labels(labels, 1, "interpolate")
        z_a = self.encode(x_a, label_a)
        z_b = self.encode(x_b, label_b)
        if len(z_a) != 1 or len(z_b) != 1:
            raise ValueError(
                "`interpolate` takes one image at each end; got "
                f"{len(z_a)} and {len(z_b)} images."
            )
        t = np.linspace(0.0, 1.0, int(steps), dtype="float32")[:, None]
        path_labels = None
        if self.num_classes:
            path_labels = np.where(t[:, 0] < 0.5, label_a[0], label_b[0])
        return self.decode((1.0 - t) * z_a + t * z_b, path_labels)

    def get_config(self):
        config = super().get_config()
        config.update({"beta": self.beta, "num_classes": self.num_classes})
        return config
