"""Latent priors (a GaussianMixture on the codes) and anomaly scores of the
AutoEncoder and the VAE, on each backend, on real digits."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_genzoo import VAE, AutoEncoder, GaussianMixture


def _trained(cls, mnist, **kwargs):
    images = mnist[0]
    model = cls(latent_dim=4, filters=(8,), seed=0, **kwargs)
    model.fit(images, epochs=3, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def autoencoder(mnist):
    return _trained(AutoEncoder, mnist)


@pytest.fixture(scope="module")
def vae(mnist):
    return _trained(VAE, mnist)


def test_autoencoder_generates_only_after_a_prior_is_fitted(mnist, tmp_path):
    images = mnist[0]
    model = _trained(AutoEncoder, mnist)
    with pytest.raises(ValueError, match="fit_latent_prior"):
        model.generate(4, seed=0)
    assert model.latent_prior is None
    prior = model.fit_latent_prior(images, n_components=3)
    assert isinstance(prior, GaussianMixture) and prior is model.latent_prior
    assert prior.means_.shape == (3, 4) and prior.covariances_.shape == (
        3, 4, 4)
    # the mixture is that of the training codes
    codes = model.encode(images)
    reference = GaussianMixture(3, seed=0).fit(codes)
    np.testing.assert_allclose(prior.score(codes), reference.score(codes),
                               rtol=1e-4)
    samples = model.generate(6, seed=1)
    assert samples.shape == (6, 28, 28, 1) and samples.dtype == np.float32
    assert samples.min() >= 0.0 and samples.max() <= 1.0
    np.testing.assert_array_equal(samples, model.generate(6, seed=1))
    assert not np.array_equal(samples, model.generate(6, seed=2))
    assert not np.array_equal(model.generate(2), model.generate(2))

    # saved in the .keras file, with its fitted values
    path = os.path.join(str(tmp_path), "ae.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.latent_prior is not None
    np.testing.assert_allclose(loaded.latent_prior.means_, prior.means_)
    np.testing.assert_allclose(loaded.generate(6, seed=1), samples,
                               atol=1e-6)
    # fitting again replaces it, with other settings
    model.fit_latent_prior(images, n_components=2, covariance_type="diag")
    assert model.latent_prior.covariances_.shape == (2, 4)
    model.save(path)
    assert keras.saving.load_model(path).latent_prior.covariance_type == (
        "diag")
    # a model made from the config (clone_model, from_config) has the
    # prior's settings, not its fitted values: no prior (before: an
    # unfitted one whose generate said "call `fit(x)`")
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    assert clone.latent_prior is None
    with pytest.raises(ValueError, match="fit_latent_prior"):
        clone.generate(2, seed=0)


def test_prior_reads_every_kind_of_data(autoencoder, mnist):
    images, labels = mnist
    expected = autoencoder.encode(images)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(100)
    dicts = tf.data.Dataset.from_tensor_slices(
        {"image": images, "label": labels}).batch(100)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return images[i * 200:(i + 1) * 200], labels[i * 200:(i + 1) * 200]

    # lists of images or batches and (images, labels) pairs were refused
    # ("is a list"), though `encode` and `reconstruct` take them
    for data in (images, images[..., 0], images / 255.0, dataset, dicts,
                 Batches(), list(images), [images[:300], images[300:]],
                 (images, labels)):
        np.testing.assert_allclose(autoencoder.encode_data(data), expected,
                                   atol=1e-5)
    np.testing.assert_allclose(
        autoencoder.anomaly_scores(list(images[:5])),
        autoencoder.anomaly_scores(images[:5]), rtol=1e-6)
    with pytest.raises(ValueError, match="unbatched"):
        autoencoder.fit_latent_prior(
            tf.data.Dataset.from_tensor_slices(images))
    with pytest.raises(ValueError, match="image shape|shape"):
        autoencoder.fit_latent_prior(np.zeros((10, 16, 16, 1), "uint8"))


def test_vae_prior_choice(vae, mnist, tmp_path):
    normal = vae.generate(5, seed=0)
    np.testing.assert_array_equal(normal, vae.generate(5, seed=0,
                                                       prior="normal"))
    with pytest.raises(ValueError, match="fit_latent_prior"):
        vae.generate(5, seed=0, prior="gmm")
    with pytest.raises(ValueError, match="'normal'.*'gmm'"):
        vae.generate(5, prior="uniform")
    vae.fit_latent_prior(mnist[0], n_components=4, covariance_type="diag")
    mixed = vae.generate(5, seed=0, prior="gmm")
    assert mixed.shape == normal.shape
    assert not np.allclose(mixed, normal)
    np.testing.assert_array_equal(mixed, vae.generate(5, seed=0,
                                                      prior="gmm"))
    path = os.path.join(str(tmp_path), "vae.keras")
    vae.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.generate(5, seed=0, prior="gmm"),
                               mixed, atol=1e-6)


@pytest.mark.parametrize("which", ["autoencoder", "vae"])
def test_anomaly_scores_flag_noise_among_digits(which, mnist, request):
    model = request.getfixturevalue(which)
    digits = mnist[0][:100]
    noise = np.random.default_rng(0).integers(
        0, 256, (20, 28, 28, 1)).astype("uint8")
    scores = model.anomaly_scores(np.concatenate([digits, noise]))
    assert scores.shape == (120,) and scores.dtype == np.float32
    assert np.isfinite(scores).all()
    # every noise image scores above every digit
    assert scores[100:].min() > scores[:100].max()
    np.testing.assert_allclose(model.anomaly_scores(digits), scores[:100],
                               rtol=1e-5)
    # labels a dataset carries are ignored; `labels=` given to this
    # unconditional model is refused, as by `encode` (before, it was
    # ignored in silence, even 99 for a digit)
    import tensorflow as tf

    labelled = tf.data.Dataset.from_tensor_slices(
        (digits[:10], mnist[1][:10])).batch(5)
    np.testing.assert_allclose(model.anomaly_scores(labelled), scores[:10],
                               rtol=1e-5)
    bogus = np.full(10, 99)
    for call in (lambda: model.anomaly_scores(digits[:10], labels=bogus),
                 lambda: model.encode_data(digits[:10], labels=bogus),
                 lambda: model.fit_latent_prior(digits[:10], n_components=1,
                                                labels=bogus)):
        with pytest.raises(ValueError, match="got labels, but this model "
                                             "is not conditional"):
            call()


def test_autoencoder_score_is_its_reconstruction_loss(autoencoder, mnist):
    digits = mnist[0][:64]
    scores = autoencoder.anomaly_scores(digits)
    loss = autoencoder.evaluate(digits, batch_size=64, verbose=0)
    np.testing.assert_allclose(scores.mean(), loss, rtol=1e-4)


def test_vae_score_is_the_negative_elbo(vae, mnist):
    digits = mnist[0][:32]
    for i in (0, 7):
        np.testing.assert_allclose(
            vae.anomaly_scores(digits[i:i + 1], num_samples=4, seed=3),
            -vae.elbo(digits[i:i + 1], num_samples=4, seed=3,
                      reduction="none"),
            rtol=1e-5)
    # an image's score does not depend on the images beside it or on its
    # place among them (before, one noise stream ran through the call: the
    # same image scored 505.15 alone, 505.83 as the 6th, 503.10 repeated)
    scores = vae.anomaly_scores(digits, num_samples=4, seed=3)
    alone = vae.anomaly_scores(digits[5:6], num_samples=4, seed=3)
    twice = vae.anomaly_scores(digits[[5, 5]], num_samples=4, seed=3)
    reordered = vae.anomaly_scores(digits[::-1], num_samples=4, seed=3,
                                   batch_size=3)
    np.testing.assert_allclose(scores[5], alone[0], rtol=1e-5)
    np.testing.assert_allclose(twice, [alone[0]] * 2, rtol=1e-5)
    np.testing.assert_allclose(reordered[::-1], scores, rtol=1e-5)
    assert not np.allclose(
        scores, vae.anomaly_scores(digits, num_samples=4, seed=4))


def test_a_weights_file_restores_the_prior(autoencoder, mnist, tmp_path):
    """`load_weights` of a `.weights.h5` restores the fitted prior into a
    new model of the same config (which has none: it failed with
    "'NoneType' object has no attribute 'variables'") and replaces another
    one; a file without the prior's settings loads the networks and
    warns."""
    import h5py

    images = mnist[0]
    autoencoder.fit_latent_prior(images, n_components=3,
                                 covariance_type="diag")
    samples = autoencoder.generate(4, seed=1)
    path = str(tmp_path / "ae.weights.h5")
    autoencoder.save_weights(path)

    def fresh(prior=False):
        model = AutoEncoder(latent_dim=4, filters=(8,), seed=0)
        model.build((None, 28, 28, 1))
        if prior:
            model.fit_latent_prior(images[:64], n_components=2)
        return model

    for model in (fresh(), fresh(prior=True)):
        model.load_weights(path)
        assert model.latent_prior.covariance_type == "diag"
        np.testing.assert_allclose(model.latent_prior.means_,
                                   autoencoder.latent_prior.means_)
        np.testing.assert_allclose(model.generate(4, seed=1), samples,
                                   atol=1e-6)
    with h5py.File(path, "r+") as f:  # as keras_genzoo 0.1.0 wrote it
        names = []
        f.visit(names.append)
        (config,) = [n for n in names if n.endswith("latent_prior_config")]
        del f[config]
    model = fresh()
    with pytest.warns(UserWarning, match="call `fit_latent_prior` again"):
        model.load_weights(path)
    assert model.latent_prior is None
    np.testing.assert_allclose(model.encode(images[:4]),
                               autoencoder.encode(images[:4]), atol=1e-6)


def test_weights_saved_before_the_prior_drop_it(mnist, tmp_path):
    """A checkpoint saved before `fit_latent_prior`, loaded after it: the
    load failed ("expected 5 variables, but received 0") after the
    networks had loaded, and the prior of the other weights stayed."""
    images = mnist[0][:256]
    model = AutoEncoder(latent_dim=2, filters=(4,), seed=0)
    model.fit(images, epochs=1, batch_size=64, verbose=0)
    path = str(tmp_path / "checkpoint.weights.h5")
    model.save_weights(path)
    weights = [np.array(w) for w in model.get_weights()]
    model.fit(images, epochs=1, batch_size=64, verbose=0)
    model.fit_latent_prior(images, n_components=2)
    with pytest.warns(UserWarning, match="no latent prior"):
        model.load_weights(path)
    assert model.latent_prior is None
    for saved, loaded in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(saved, loaded)
    with pytest.raises(ValueError, match="fit_latent_prior"):
        model.generate(2)
