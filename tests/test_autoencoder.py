import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_genzoo import AutoEncoder


def tiny_ae(**kwargs):
    kwargs.setdefault("latent_dim", 8)
    kwargs.setdefault("filters", (8, 16))
    kwargs.setdefault("seed", 0)
    return AutoEncoder(**kwargs)


@pytest.mark.parametrize("noise_stddev", [0.0, 0.3])
def test_fit_on_real_mnist_lowers_the_loss(mnist, noise_stddev):
    images, labels = mnist
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(32)
    ae = tiny_ae(noise_stddev=noise_stddev)
    loss = ae.fit(ds, epochs=4, verbose=0).history["loss"]
    assert np.all(np.isfinite(loss))
    assert loss[-1] < 0.8 * loss[0]


def test_noise_only_in_training(mnist):
    images = mnist[0][:16]
    ae = tiny_ae(noise_stddev=0.5, image_shape=(28, 28, 1))
    clean_1 = keras.ops.convert_to_numpy(ae(images, training=False))
    clean_2 = keras.ops.convert_to_numpy(ae(images, training=False))
    noisy = keras.ops.convert_to_numpy(ae(images, training=True))
    np.testing.assert_array_equal(clean_1, clean_2)
    assert not np.allclose(clean_1, noisy)
    noised = keras.ops.convert_to_numpy(
        ae.add_noise(keras.ops.convert_to_tensor(images / 255.0, "float32")))
    assert noised.min() >= 0.0 and noised.max() <= 1.0
    assert 0.1 < np.abs(noised - images / 255.0).mean() < 0.5
    # uint8 images are scaled first (the noise went on the 0..255 scale,
    # then clipped: nearly every pixel 1.0), numpy images work on every
    # backend (PyTorch refused them), one image too; numpy comes back
    for given in (images, images / 255.0, images[0]):
        noised = ae.add_noise(given)
        assert isinstance(noised, np.ndarray) and noised.dtype == "float32"
        clean = np.asarray(given, "float32").reshape(noised.shape)
        clean = clean / 255.0 if np.asarray(given).dtype == "uint8" else clean
        assert noised.min() >= 0.0 and noised.max() <= 1.0
        assert 0.1 < np.abs(noised - clean).mean() < 0.5
    # a uint8 tensor: a tensor back, scaled first (in a compiled step or a
    # tf.data map too)
    tensor = ae.add_noise(keras.ops.convert_to_tensor(images))
    assert keras.ops.is_tensor(tensor)
    noised = keras.ops.convert_to_numpy(tensor)
    assert 0.1 < np.abs(noised - images / 255.0).mean() < 0.5


def test_add_noise_in_a_tf_data_map(mnist):
    """The docstring's `tf.data` map works on every backend: on JAX and
    PyTorch the map's TensorFlow tensors failed with "Cannot convert a
    symbolic tf.Tensor to a numpy array"."""
    images = mnist[0][:16]
    ae = tiny_ae(noise_stddev=0.3, image_shape=(28, 28, 1))
    for given in (images, images.astype("float32") / 255.0):
        dataset = tf.data.Dataset.from_tensor_slices(given).batch(8).map(
            ae.add_noise)
        batches = [np.asarray(batch) for batch in dataset]
        noised = np.concatenate(batches)
        assert noised.shape == (16, 28, 28, 1) and noised.dtype == "float32"
        assert noised.min() >= 0.0 and noised.max() <= 1.0
        assert 0.1 < np.abs(noised - images / 255.0).mean() < 0.5
        # new noise per batch, not one draw traced into the map
        assert not np.allclose(batches[0] - images[:8] / 255.0,
                               batches[1] - images[8:] / 255.0)
    # an eager TensorFlow tensor (a loop over the dataset) on JAX and
    # PyTorch: numpy, with the model's own noise, as before
    eager = ae.add_noise(tf.constant(images))
    if keras.backend.backend() != "tensorflow":
        assert isinstance(eager, np.ndarray)
    # (noisy, clean) pairs, e.g. for a denoiser of your own
    pairs = tf.data.Dataset.from_tensor_slices(images).batch(8).map(
        lambda x: (ae.add_noise(x), x))
    noisy, clean = next(iter(pairs))
    assert noisy.shape == clean.shape == (8, 28, 28, 1)
    plain = tiny_ae(image_shape=(28, 28, 1))
    scaled = next(iter(tf.data.Dataset.from_tensor_slices(images).batch(4)
                       .map(plain.add_noise)))
    np.testing.assert_allclose(np.asarray(scaled), images[:4] / 255.0,
                               atol=1e-7)


def test_plain_autoencoder_adds_no_noise(mnist):
    images = mnist[0][:8]
    ae = tiny_ae(image_shape=(28, 28, 1))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ae(images, training=True)),
        keras.ops.convert_to_numpy(ae(images, training=False)), atol=1e-6)


def test_encode_decode_reconstruct(mnist):
    images = mnist[0][:64]
    ae = tiny_ae()
    ae.fit(images / 255.0, epochs=1, batch_size=32, verbose=0)
    codes = ae.encode(images[:5])
    assert codes.shape == (5, 8)
    recon = ae.reconstruct(images[:5])
    assert recon.shape == (5, 28, 28, 1) and recon.dtype == np.float32
    assert recon.min() >= 0.0 and recon.max() <= 1.0
    np.testing.assert_allclose(ae.decode(codes), recon, atol=1e-6)


def test_save_and_load_round_trip(mnist, tmp_path):
    images = mnist[0][:128]
    ae = tiny_ae(noise_stddev=0.2)
    ae.fit(images, epochs=1, batch_size=64, verbose=0)
    path = os.path.join(tmp_path, "ae.keras")
    ae.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded, AutoEncoder)
    assert loaded.noise_stddev == 0.2 and loaded.latent_dim == 8
    codes = np.random.RandomState(0).randn(4, 8).astype("float32")
    np.testing.assert_array_equal(loaded.decode(codes), ae.decode(codes))
    np.testing.assert_array_equal(loaded.reconstruct(images[:4]),
                                  ae.reconstruct(images[:4]))
    loaded.fit(images, epochs=1, batch_size=64, verbose=0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="noise_stddev"):
        AutoEncoder(noise_stddev=-0.1)
    # NaN trained into a NaN loss blamed on the learning rate; inf trained
    # on pure 0/1 noise in silence
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite"):
            AutoEncoder(noise_stddev=bad)
    with pytest.raises(ValueError, match="not conditional.*VAE"):
        AutoEncoder(num_classes=2)  # it would ignore the labels
    with pytest.raises(ValueError, match="latent_dim"):
        AutoEncoder(latent_dim=0)
    with pytest.raises(ValueError, match="call `fit` first"):
        AutoEncoder().reconstruct(np.zeros((1, 8, 8, 1)))


def test_target_images_are_refused_not_ignored():
    """`fit(noisy, clean)` (Keras' usual denoising auto-encoder) is refused
    with a pointer to `noise_stddev=`: before, the clean targets were
    ignored in silence and the model learned to reproduce `noisy`. Labels
    (one per image) are still accepted, and ignored."""
    rng = np.random.default_rng(0)
    clean = rng.random((16, 8, 8, 1)).astype("float32")
    noisy = np.clip(clean + rng.normal(0, 0.3, clean.shape), 0, 1).astype(
        "float32")
    ae = AutoEncoder(latent_dim=4, filters=(4,), image_shape=(8, 8, 1),
                     seed=0)
    pairs = tf.data.Dataset.from_tensor_slices((noisy, clean)).batch(8)
    calls = [
        lambda: ae.fit(noisy, clean, epochs=1, verbose=0),
        lambda: ae.fit(pairs, epochs=1, verbose=0),
        lambda: ae.fit(noisy, epochs=1, verbose=0,
                       validation_data=(noisy, clean)),
        lambda: ae.evaluate(noisy, clean, verbose=0),
        lambda: ae.train_on_batch(noisy, clean),
        lambda: ae.test_on_batch(noisy, clean),
        lambda: ae.fit(noisy, clean[..., 0], epochs=1, verbose=0),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="reconstructs its input.*"
                           "noise_stddev="):
            call()
    assert ae.optimizer is None or int(keras.ops.convert_to_numpy(
        ae.optimizer.iterations)) == 0
    history = ae.fit(noisy, np.arange(16) % 3, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    ae.fit(noisy, (np.arange(16) % 3)[:, None], epochs=1, verbose=0)
    # one-hot labels too (a labelled dataset given to an unconditional
    # model)
    ae.fit(noisy, np.eye(3)[np.arange(16) % 3], epochs=1, verbose=0)
    ae.fit(noisy, np.eye(3)[np.arange(16) % 3][:, None], epochs=1,
           verbose=0)
    # and the inputs as targets, as a Keras auto-encoder is trained: the
    # same thing as no targets
    ae.fit(clean, clean, epochs=1, verbose=0,
           validation_data=(clean, clean[..., 0]))
    ae.evaluate(clean, clean, verbose=0)


def test_decode_of_no_codes_is_one_clear_error():
    """Zero codes: one `ValueError` as `encode` gives for zero images;
    before, numpy's "need at least one array to concatenate"."""
    ae = AutoEncoder(latent_dim=4, filters=(4,), image_shape=(8, 8, 1),
                     seed=0)
    with pytest.raises(ValueError, match="images is empty"):
        ae.encode(np.zeros((0, 8, 8, 1), "uint8"))
    with pytest.raises(ValueError, match="`z` is empty: it holds no codes"):
        ae.decode(np.zeros((0, 4), "float32"))
