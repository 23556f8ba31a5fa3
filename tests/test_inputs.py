"""Bad input gets one clear ValueError naming the fix, before any training."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_genzoo import VAE, AutoEncoder


def _untrained(model):
    """The model took no training step (and was not silently built wrong)."""
    return (not model.compiled) or int(
        keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0


class _Empty(keras.utils.PyDataset):
    def __len__(self):
        return 0

    def __getitem__(self, i):
        raise IndexError(i)


def _bad_inputs(images):
    floats = images.astype("float32") / 255.0
    nan = floats.copy()
    nan[2, -1, -1, 0] = np.nan
    inf = floats.copy()
    inf[0, 0, 0, 0] = np.inf
    return {
        "unbatched_dataset": (
            tf.data.Dataset.from_tensor_slices(images), "Batch it"),
        # batched, without a channel axis: called unbatched before
        "batched_grayscale_dataset": (
            tf.data.Dataset.from_tensor_slices(images[..., 0]).batch(8),
            r"grayscale images without a channel axis\? Add one"),
        "unbatched_tfds_dicts": (
            tf.data.Dataset.from_tensor_slices({"image": images}),
            "dataset.batch"),
        "rank_2": (images.reshape(len(images), -1), "rank 2"),
        "rank_5": (images[:, None], "rank 5"),
        "floats_0_255": (images.astype("float32"), "divide by 255"),
        # (a resize's overshoot was "They look like 0..255 values")
        "floats_past_1": (floats * 0.9 + 0.101, r"np\.clip\(images, 0, 1\)"),
        "floats_below_0": (floats * 0.9 - 0.004, r"np\.clip\(images, 0, 1\)"),
        "floats_minus_1_1": (floats * 2 - 1, r"\(images \+ 1\) / 2"),
        "nan": (nan, "NaN or Inf"),
        "inf": (inf, "NaN or Inf"),
        "nan_in_dataset": (
            tf.data.Dataset.from_tensor_slices(nan).batch(8), "NaN or Inf"),
        "ints_over_255": (images.astype("int32") * 2, "0..255"),
        "empty_array": (images[:0], "empty"),
        "empty_dataset": (
            tf.data.Dataset.from_tensor_slices(images[:0]).batch(8), "empty"),
        "empty_py_dataset": (_Empty(), "empty"),
        "dict_without_image_key": ({"pixels": images}, "'image' key"),
        "strings": (np.full((2, 2, 2, 1), "a"), "dtype"),
        "list_of_arrays": ([images, images], "pass the images as `x`"),
        # PyTorch's layout trained a model of 1 x 28 images, 28 channels
        "channels_first": (np.moveaxis(images, -1, 1), "channels first"),
        "channels_first_rgb": (
            np.repeat(np.moveaxis(images, -1, 1), 3, axis=1),
            r"permute\(0, 2, 3, 1\)"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs(np.zeros((4, 2, 2, 1), "uint8"))))
def test_bad_training_data_fails_before_training(mnist, case):
    data, message = _bad_inputs(mnist[0][:32])[case]
    vae = VAE(latent_dim=2, filters=(4,))
    with pytest.raises(ValueError, match=message):
        vae.fit(data, epochs=1, verbose=0)
    assert _untrained(vae)


def test_channel_mismatch_with_built_model(mnist):
    ae = AutoEncoder(latent_dim=4, filters=(4,))
    ae.fit(mnist[0][:32], epochs=1, verbose=0)
    steps = int(keras.ops.convert_to_numpy(ae.optimizer.iterations))
    rgb = np.random.randint(0, 256, (8, 28, 28, 3), dtype="uint8")
    with pytest.raises(ValueError, match="3 .*channel|1 channel"):
        ae.fit(rgb, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="resize the images to"):
        ae.fit(np.zeros((8, 32, 32, 1), "uint8"), epochs=1, verbose=0)
    assert int(keras.ops.convert_to_numpy(ae.optimizer.iterations)) == steps
    with pytest.raises(ValueError, match="channel"):
        ae.reconstruct(rgb)


def test_model_given_image_shape_checks_the_data():
    vae = VAE(latent_dim=2, filters=(4,), image_shape=(16, 16, 3))
    with pytest.raises(ValueError, match=r"built for images of shape \(16, 16, 3\)"):
        vae.fit(np.zeros((4, 16, 16, 1), "float32"), epochs=1, verbose=0)
    assert _untrained(vae)


def test_bad_validation_data_is_caught_too(mnist):
    images = mnist[0][:32]
    vae = VAE(latent_dim=2, filters=(4,))
    with pytest.raises(ValueError, match="validation data.*divide by 255"):
        vae.fit(images, validation_data=(images.astype("float32"),),
                epochs=1, verbose=0)
    assert _untrained(vae)


def test_generator_input_is_checked_and_still_trains(mnist):
    images = mnist[0][:64]

    def batches():
        for _ in range(2):
            for i in range(0, 64, 32):
                yield images[i:i + 32]

    vae = VAE(latent_dim=2, filters=(4,))
    history = vae.fit(batches(), epochs=1, steps_per_epoch=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert int(keras.ops.convert_to_numpy(vae.optimizer.iterations)) == 4
    # `predict` takes what `fit` and `evaluate` take (Keras refused bare
    # batches and lists: "must return a tuple"), and checks it as they do
    assert vae.predict(batches(), steps=2, verbose=0)[
        "reconstruction"].shape == (64, 28, 28, 1)
    assert vae.predict(([b] for b in batches()), steps=2, verbose=0)[
        "reconstruction"].shape == (64, 28, 28, 1)
    with pytest.raises(ValueError, match="float images must lie in"):
        vae.predict((b.astype("float32") * 255 for b in batches()), steps=2,
                    verbose=0)

    # tfds' dict layout from a generator, as the README lists it (Keras
    # refused it after the zoo had checked the first batch)
    def dicts(labelled):
        for _ in range(2):
            for i in range(0, 64, 32):
                yield ({"image": images[i:i + 32],
                        "label": mnist[1][i:i + 32]} if labelled
                       else {"image": images[i:i + 32]})

    for model, labelled in ((AutoEncoder(latent_dim=2, filters=(4,)), False),
                            (VAE(latent_dim=2, filters=(4,), num_classes=10),
                             True)):
        model.fit(dicts(labelled), epochs=1, steps_per_epoch=4, verbose=0)
        assert np.isfinite(model.evaluate(dicts(labelled), steps=2,
                                          verbose=0)).all()


class _Weighted(keras.utils.PyDataset):
    """(images, labels, sample weights) batches, as Keras reads them."""

    def __init__(self, images):
        super().__init__()
        self.images = images

    def __len__(self):
        return 2

    def __getitem__(self, i):
        batch = self.images[i * 16:(i + 1) * 16]
        return batch, np.zeros(len(batch), "int32"), np.ones(len(batch))


def test_sample_weights_are_refused_not_ignored(mnist):
    """Keras hands sample weights to `compute_loss`, and the zoo's losses
    weigh every example alike: one `ValueError`, before any step, rather
    than weights that change nothing (all-zero weights trained as usual)."""
    images = mnist[0][:32]
    weights = np.zeros(32, "float32")
    weighted = tf.data.Dataset.from_tensor_slices(
        (images, np.zeros(32, "int32"), weights)).batch(16)

    def batches():
        yield images[:16], None, weights[:16]

    vae = VAE(latent_dim=2, filters=(4,))
    calls = [
        (lambda: vae.fit(images, sample_weight=weights, epochs=1,
                         verbose=0), "VAE.fit got `sample_weight`"),
        (lambda: vae.fit(images, None, 16, 1, 0, None, 0.0, None, True,
                         None, weights), "`sample_weight`"),  # positional
        (lambda: vae.fit(images, class_weight={0: 1.0}, epochs=1,
                         verbose=0), "`class_weight`"),
        (lambda: vae.fit(images, validation_data=(images, None, weights),
                         epochs=1, verbose=0),
         "sample weights in `validation_data`"),
        (lambda: vae.evaluate(images, sample_weight=weights, verbose=0),
         "VAE.evaluate got"),
        (lambda: vae.train_on_batch(images, None, weights),
         "VAE.train_on_batch got"),
        (lambda: vae.test_on_batch(images, sample_weight=weights),
         "VAE.test_on_batch got"),
        (lambda: vae.fit(weighted, epochs=1, verbose=0),
         "^The training data yields \\(x, y, sample_weight\\)"),
        (lambda: vae.fit(_Weighted(images), epochs=1, verbose=0),
         "^The training data yields \\(x, y, sample_weight\\)"),
        (lambda: vae.fit(batches(), epochs=1, verbose=0),
         "^The training data yields \\(x, y, sample_weight\\)"),
        (lambda: vae.fit(images, validation_data=weighted, epochs=1,
                         verbose=0),
         "^The validation data yields \\(x, y, sample_weight\\)"),
    ]
    for call, words in calls:
        with pytest.raises(ValueError, match=words):
            call()
        assert _untrained(vae)
    # batches without weights (or with `None` in their place) still train
    plain = tf.data.Dataset.from_tensor_slices(
        (images, np.zeros(32, "int32"))).batch(16)
    history = vae.fit(plain, validation_data=(images, None, None),
                      epochs=1, verbose=0).history
    assert np.isfinite(history["val_loss"][0])


def test_a_subclass_whose_loss_weighs_examples_takes_weights():
    from keras import ops

    from keras_genzoo.models import GenerativeModel

    class WeightedMean(GenerativeModel):
        takes_sample_weights = True

        def build(self, input_shape):
            self.mean = self.add_weight(shape=input_shape[1:],
                                        initializer="zeros")

        def call(self, x):
            return ops.broadcast_to(self.mean, ops.shape(x))

        def compute_loss(self, x=None, y=None, y_pred=None,
                         sample_weight=None, training=True):
            errors = ops.mean(ops.square(y_pred - x), axis=-1)
            return ops.sum(errors * sample_weight) / ops.sum(sample_weight)

    x = np.concatenate([np.zeros((8, 2)), np.ones((8, 2))]).astype("float32")
    weights = np.array([0.0] * 8 + [1.0] * 8, "float32")
    model = WeightedMean(seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    # (Keras drops the weights of data without targets: `y` is given)
    model.fit(x, x, sample_weight=weights, batch_size=16, epochs=40,
              verbose=0)
    # only the weighted half counts: the mean goes to 1, not to 0.5
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.mean),
                               [1.0, 1.0], atol=1e-3)


def test_predict_checks_arrays_as_fit_does():
    """`predict` on arrays: one `ValueError` naming the fix for floats in
    0..255 (Keras computed on them as they were), another image shape,
    missing or bad labels of a conditional model; good arrays, lists of
    images and datasets predict as before, on an unbuilt GAN too."""
    from keras_genzoo import GAN

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 8, 8, 1), dtype=np.uint8)
    labels = np.arange(8) % 3
    vae = VAE(latent_dim=2, filters=(4,), seed=0)
    vae.fit(images, epochs=1, verbose=0)
    conditional = VAE(latent_dim=2, filters=(4,), num_classes=3, seed=0)
    conditional.fit(images, labels, epochs=1, verbose=0)
    for model in (vae, GAN(latent_dim=2, generator_filters=(4,),
                           discriminator_filters=(4,), seed=0)):
        with pytest.raises(ValueError, match="divide by 255"):
            model.predict(images.astype("float32"), verbose=0)
    with pytest.raises(ValueError, match="resize the images to \\(8, 8\\)"):
        vae.predict(np.zeros((4, 9, 9, 1), "uint8"), verbose=0)
    with pytest.raises(ValueError, match="pass `\\[images, labels\\]`"):
        conditional.predict(images, verbose=0)
    with pytest.raises(ValueError, match="class indices in 0..2"):
        conditional.predict([images, labels + 5], verbose=0)
    # the same checks for a dict, tfds' layout (it reached the networks
    # unchecked: NaN on JAX for labels out of range, a conditional VAE's
    # input given back for a missing label, 0..255 floats run through)
    with pytest.raises(ValueError, match="class indices in 0..2"):
        conditional.predict({"image": images, "label": labels + 5},
                            verbose=0)
    with pytest.raises(ValueError, match="add a 'label' key"):
        conditional.predict({"image": images}, verbose=0)
    for model, given in ((vae, {"image": images.astype("float32")}),
                         (conditional, {"image": images.astype("float32"),
                                        "label": labels})):
        with pytest.raises(ValueError, match="divide by 255"):
            model.predict(given, verbose=0)
    np.testing.assert_allclose(
        conditional.predict({"image": images, "label": labels},
                            verbose=0)["z_mean"],
        conditional.predict([images, labels], verbose=0)["z_mean"],
        rtol=1e-5, atol=1e-6)
    shape = (8, 8, 8, 1)
    assert vae.predict(images, verbose=0)["reconstruction"].shape == shape
    assert vae.predict(images / 255.0, verbose=0)[
        "reconstruction"].shape == shape
    assert vae.predict(list(images[:2]), verbose=0)[
        "reconstruction"].shape == (2, 8, 8, 1)
    batches = tf.data.Dataset.from_tensor_slices(images).batch(4)
    assert vae.predict(batches, verbose=0)["reconstruction"].shape == shape
    assert conditional.predict([images, labels], verbose=0)[
        "reconstruction"].shape == shape
    # one image of the model's shape: read as 8 grey images of 8x1
    # pixels, it was told to resize them (or, in colour, to make them grey)
    for model, image in ((vae, images[0]),
                         (AutoEncoder(latent_dim=2, filters=(4,),
                                      image_shape=(8, 8, 3)),
                          np.zeros((8, 8, 3), "uint8"))):
        for run in (lambda: model.predict(image, verbose=0),
                    lambda: model.predict_on_batch(image),
                    lambda: model.fit(image, epochs=1, verbose=0)):
            with pytest.raises(ValueError,
                               match=r"is one image.*`images\[None\]`"):
                run()


@pytest.mark.parametrize("cls", [AutoEncoder, VAE])
def test_encode_and_reconstruct_take_a_list_of_images(cls):
    """A Python list of images is encoded image by image: before, it was
    taken as an (images, labels) batch and only its first image was
    encoded, in silence. (images, labels) tuples still encode the images;
    a ragged or empty list gets one clear `ValueError`."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 8, 8, 1), dtype=np.uint8)
    model = cls(latent_dim=4, filters=(4,), image_shape=(8, 8, 1), seed=0)
    codes = model.encode(images)
    np.testing.assert_allclose(model.encode(list(images)), codes, atol=1e-5)
    np.testing.assert_allclose(model.encode(tuple(images)), codes,
                               atol=1e-5)
    np.testing.assert_allclose(model.encode([i.tolist() for i in images]),
                               codes, atol=1e-5)
    assert model.reconstruct(list(images)).shape == (5, 8, 8, 1)
    # sequences numpy reads are arrays (a dataset or iterator is not)
    import collections

    np.testing.assert_allclose(model.encode(collections.deque(images)),
                               codes, atol=1e-5)
    with pytest.raises(ValueError, match="got 'iterator'"):
        model.encode(iter(images))
    # a list of batches: all of them (only the first before)
    np.testing.assert_allclose(model.encode([images[:2], images[2:]]),
                               codes, atol=1e-5)
    with pytest.raises(ValueError, match="batches of one shape"):
        model.encode([images, np.zeros((2, 9, 9, 1), "uint8")])
    # grayscale images without a channel axis, and a list of one image
    assert model.encode(list(images[..., 0])).shape == (5, 4)
    assert model.encode([images[0]]).shape == (1, 4)
    # (images, labels) batches, and dicts, as before
    np.testing.assert_allclose(model.encode((images, np.arange(5))), codes,
                               atol=1e-5)
    np.testing.assert_allclose(model.encode([{"image": images}]), codes,
                               atol=1e-5)
    for label in (3, np.array([3])):  # one image and its label
        np.testing.assert_allclose(model.encode((images[0], label)),
                                   codes[:1], atol=1e-5)
    with pytest.raises(ValueError, match="does not form one array"):
        model.encode([images[0], np.zeros((9, 9, 1), "uint8")])
    with pytest.raises(ValueError, match="empty"):
        model.encode([])
    # anomaly_scores takes them too (it refused them)
    np.testing.assert_allclose(model.anomaly_scores(list(images)),
                               model.anomaly_scores(images), rtol=1e-6)
    if cls is VAE:
        with pytest.raises(ValueError, match="one image at each end"):
            model.interpolate(list(images[:2]), images[2])
        assert model.interpolate([images[0]], images[1], steps=3).shape == (
            3, 8, 8, 1)


def test_predict_on_batch_checks_as_predict_does():
    """`predict_on_batch` checks its input as `predict` does: before, it
    took floats in 0..255 as they were and passed labels out of range to
    the networks (a graph error on TensorFlow, an IndexError on PyTorch,
    NaN on JAX)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0])
    ae = AutoEncoder(latent_dim=2, filters=(4,), image_shape=(8, 8, 1),
                     seed=0)
    conditional = VAE(latent_dim=2, filters=(4,), num_classes=3,
                      image_shape=(8, 8, 1), seed=0)
    with pytest.raises(ValueError, match="divide by 255"):
        ae.predict_on_batch(images.astype("float32"))
    with pytest.raises(ValueError, match="class indices in 0..2"):
        conditional.predict_on_batch([images, labels + 7])
    with pytest.raises(ValueError, match="pass `\\[images, labels\\]`"):
        conditional.predict_on_batch(images)
    np.testing.assert_allclose(
        ae.predict_on_batch(images), ae.predict(images, verbose=0),
        atol=1e-5)
    assert ae.predict_on_batch(list(images)).shape == (4, 8, 8, 1)
    assert conditional.predict_on_batch([images, labels])[
        "reconstruction"].shape == (4, 8, 8, 1)


def test_images_a_few_pixels_high_train_where_the_model_says_so():
    # (N, 4, 8, 8) reads as channels first, unless the model is made for
    # images of that shape
    images = np.random.RandomState(0).rand(8, 4, 8, 8).astype("float32")
    with pytest.raises(ValueError, match=r"image_shape=\(4, 8, 8\)"):
        AutoEncoder(latent_dim=2, filters=(4,)).fit(images, epochs=1,
                                                    verbose=0)
    AutoEncoder(latent_dim=2, filters=(4,), image_shape=(4, 8, 8)).fit(
        images, epochs=1, verbose=0)


def test_a_backend_set_after_import_is_named(monkeypatch):
    # KERAS_BACKEND set after Keras was imported (a later notebook cell)
    # was ignored in silence
    from keras_genzoo import _inputs

    other = "jax" if keras.backend.backend() != "jax" else "torch"
    monkeypatch.setenv("KERAS_BACKEND", other)
    monkeypatch.setattr(_inputs, "_BACKEND_WARNED", [])
    with pytest.warns(UserWarning, match="set after Keras was imported"
                      ) as caught:
        AutoEncoder(latent_dim=2)
    assert caught[0].filename == __file__  # the user's line
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AutoEncoder(latent_dim=2)  # once
