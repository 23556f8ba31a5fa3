"""The conditional VAE (`VAE(num_classes=...)`), on each backend, on real
digits: labels in every input form, generation by label, the likelihood
and latent-prior methods with labels, saving, and each bad input."""

import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_genzoo import VAE


def _cvae(**kwargs):
    return VAE(latent_dim=4, filters=(8,), num_classes=10, seed=0, **kwargs)


@pytest.fixture(scope="module")
def trained(mnist):
    images, labels = mnist
    model = _cvae()
    history = model.fit(images, labels, epochs=3, batch_size=64, verbose=0)
    return model, history.history["loss"]


def test_fit_with_labels_lowers_the_loss(trained):
    _, loss = trained
    assert np.all(np.isfinite(loss)) and loss[-1] < loss[0]


@pytest.mark.parametrize("form", ["tuples", "dicts", "pydataset"])
def test_fit_takes_labels_in_every_form(form, mnist):
    images, labels = mnist[0][:128], mnist[1][:128]
    if form == "tuples":
        data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(64)
    elif form == "dicts":
        data = tf.data.Dataset.from_tensor_slices(
            {"image": images, "label": labels}).batch(64)
    else:
        class Batches(keras.utils.PyDataset):
            def __len__(self):
                return 2

            def __getitem__(self, i):
                return images[64 * i:64 * (i + 1)], labels[64 * i:64 * (i + 1)]

        data = Batches()
    history = _cvae().fit(data, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])


def test_unlabelled_data_names_the_fix(mnist):
    with pytest.raises(ValueError, match="conditional.*labels"):
        _cvae().fit(mnist[0][:64], epochs=1, verbose=0)


def test_generate_by_label(trained):
    model, _ = trained
    samples = model.generate(12, seed=1)  # the classes in turn
    assert samples.shape == (12, 28, 28, 1) and samples.dtype == np.float32
    assert samples.min() >= 0.0 and samples.max() <= 1.0
    np.testing.assert_array_equal(
        samples, model.generate(12, seed=1, labels=np.arange(12) % 10))
    sevens = model.generate(4, seed=2, labels=7)
    np.testing.assert_array_equal(sevens, model.generate(4, seed=2,
                                                         labels=[7] * 4))
    # the same codes drawn as another label give other images
    assert np.abs(model.generate(4, seed=2, labels=1) - sevens).max() > 1e-3


@pytest.mark.parametrize("kwargs, message", [
    ({"labels": 10}, r"0\.\.9"),
    ({"labels": [1, 2]}, "4 ints"),
    ({"labels": [0.5] * 4}, "4 ints"),
])
def test_bad_labels(trained, kwargs, message):
    model, _ = trained
    with pytest.raises(ValueError, match=message):
        model.generate(4, seed=0, **kwargs)


def test_unconditional_vae_refuses_labels():
    vae = VAE(latent_dim=2, filters=(4,), image_shape=(8, 8, 1))
    with pytest.raises(ValueError, match="num_classes"):
        vae.generate(2, labels=1)
    with pytest.raises(ValueError, match="num_classes"):
        VAE(num_classes=1)


def test_encode_decode_need_labels(trained, mnist):
    model, _ = trained
    images, labels = mnist[0][:8], mnist[1][:8]
    with pytest.raises(ValueError, match="pass `labels=`"):
        model.encode(images)
    codes = model.encode(images, labels)
    assert codes.shape == (8, 4)
    recon = model.reconstruct(images, labels)
    np.testing.assert_allclose(model.decode(codes, labels), recon, atol=1e-6)
    # images with their labels, as `fit` takes them (asked for `labels=`
    # before)
    np.testing.assert_array_equal(model.reconstruct((images, labels)), recon)
    np.testing.assert_array_equal(
        model.encode({"image": images, "label": labels}), codes)
    with pytest.raises(ValueError, match="to `reconstruct`, or the images "
                                         "with their labels"):
        model.reconstruct(images)
    path = model.interpolate(images[0], images[1], steps=5,
                             labels=(labels[0], labels[1]))
    assert path.shape == (5, 28, 28, 1)
    # one label, as an int or a list of one, stands for both ends; other
    # labels are refused as everywhere (before, 1.7 ran as 1, and of three
    # labels the middle one was dropped)
    np.testing.assert_array_equal(
        model.interpolate(images[0], images[1], steps=3, labels=[3]),
        model.interpolate(images[0], images[1], steps=3, labels=3))
    for bad, words in ((1.7, "2 ints.*or one int"), ([2.9], "or one int"),
                       ([0, 1, 2], "2 ints.*got 3 labels"),
                       ((0, 10), "0..9; got values from 0 to 10")):
        with pytest.raises(ValueError, match=words):
            model.interpolate(images[0], images[1], steps=3, labels=bad)


def test_likelihoods_and_anomaly_scores_with_labels(trained, mnist):
    model, _ = trained
    images, labels = mnist[0][:32], mnist[1][:32]
    elbo = model.elbo(images, num_samples=4, seed=0, labels=labels,
                      reduction="none")
    assert elbo.shape == (32,) and np.isfinite(elbo).all()
    nll = model.nll(images, num_samples=8, seed=0, labels=labels)
    assert nll <= -float(np.mean(elbo)) + 5.0
    scores = model.anomaly_scores(images, labels=labels, num_samples=4,
                                  seed=0)
    assert scores.shape == (32,) and np.isfinite(scores).all()
    # the negative ELBO, with the same draws for every image
    np.testing.assert_allclose(scores[:1], -elbo[:1], rtol=1e-5)
    np.testing.assert_allclose(
        scores[3], model.anomaly_scores(images[3:4], labels=labels[3:4],
                                        num_samples=4, seed=0)[0], rtol=1e-5)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(10)
    np.testing.assert_allclose(
        model.anomaly_scores(dataset, num_samples=4, seed=0), scores,
        rtol=1e-5)
    with pytest.raises(ValueError, match="pass `labels=`"):
        model.anomaly_scores(images)


def test_latent_prior_and_round_trip(trained, mnist, tmp_path):
    model, _ = trained
    images, labels = mnist
    # images without labels: the message names the method called (it
    # named `encode_data`)
    with pytest.raises(ValueError, match="to `fit_latent_prior`"):
        model.fit_latent_prior(images[:10], n_components=1)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(100)
    model.fit_latent_prior(dataset, n_components=3)
    samples = model.generate(6, seed=3, prior="gmm", labels=5)
    path = os.path.join(str(tmp_path), "cvae.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.num_classes == 10
    np.testing.assert_allclose(loaded.generate(6, seed=3, prior="gmm",
                                               labels=5), samples, atol=1e-6)
    np.testing.assert_allclose(loaded.generate(4, seed=1),
                               model.generate(4, seed=1), atol=1e-6)


def test_predict_on_batches_of_images_and_labels(trained, mnist):
    # a dataset, PyDataset or generator of (images, labels), as load_images
    # gives: Keras took the labels for targets and dropped them, and the
    # VAE returned its input images as {"images": ...}
    model, _ = trained
    images, labels = mnist[0][:16], mnist[1][:16]
    expected = model.predict([images, labels], batch_size=8, verbose=0)
    assert sorted(expected) == ["reconstruction", "z_log_var", "z_mean"]

    class Pairs(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return images[8 * i:8 * i + 8], labels[8 * i:8 * i + 8]

    streams = {
        "tf.data": tf.data.Dataset.from_tensor_slices(
            (images, labels)).batch(8),
        "PyDataset": Pairs(),
        "generator": ((images[i:i + 8], labels[i:i + 8])
                      for i in (0, 8)),
    }
    # Keras' own form, ((images, labels), targets), as it was
    streams["nested"] = tf.data.Dataset.from_tensor_slices(
        ((images, labels), images)).batch(8)
    # a torch DataLoader of [images, labels] (went as a generator: "ran out
    # of data" on PyTorch, Keras' "Data is expected to be in format" on
    # JAX)
    import torch
    streams["DataLoader"] = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.tensor(images),
                                       torch.tensor(labels)), batch_size=8)
    for name, stream in streams.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # "ran out of data"
            got = model.predict(stream, verbose=0)
        assert sorted(got) == sorted(expected), name
        np.testing.assert_allclose(got["z_mean"], expected["z_mean"],
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    with pytest.raises(ValueError, match="bare images.*\\(images, labels\\)"):
        model.predict(tf.data.Dataset.from_tensor_slices(images).batch(8))
