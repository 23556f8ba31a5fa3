"""Quality metrics: the shipped classifier, distances, mode coverage,
likelihoods and the QualityMonitor callback, on real MNIST test digits."""

import math

import keras
import numpy as np
import pytest

from keras_genzoo import VAE, BigramLM, MiniGPT, datasets, metrics
from keras_genzoo.callbacks import QualityMonitor


@pytest.fixture(scope="module")
def digits():
    images, labels = datasets.load_embedded_mnist()
    return images, labels


def blur(images, passes=2):
    """A 3x3 box blur applied `passes` times (numpy, uint8 in and out)."""
    x = images.astype("float32")[..., 0]
    for _ in range(passes):
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
        x = sum(padded[:, i:i + 28, j:j + 28]
                for i in range(3) for j in range(3)) / 9.0
    return x.round().astype("uint8")[..., None]


def test_shipped_classifier_is_accurate_on_the_test_split(digits):
    images, labels = digits
    classifier = metrics.mnist_classifier()
    probabilities = classifier.predict(images[:2000], batch_size=500,
                                       verbose=0)
    assert probabilities.shape == (2000, 10)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-4)
    assert np.mean(probabilities.argmax(-1) == labels[:2000]) >= 0.99
    # uint8 and floats in [0, 1] are the same images
    floats = classifier.predict(images[:64].astype("float32") / 255.0,
                                verbose=0)
    np.testing.assert_allclose(floats, probabilities[:64], atol=1e-5)
    assert classifier.features(images[:8]).shape == (8, 128)
    # small enough to ship
    assert 0 < __import__("os").path.getsize(metrics.classifier_path()) < 2**20


def test_distances_order_real_blurred_noise(digits):
    images, _ = digits
    real, other = images[:1000], images[1000:2000]
    blurred = blur(other)
    noise = np.random.default_rng(0).integers(0, 256, other.shape, "uint8")
    fd = [metrics.frechet_distance(real, x) for x in (other, blurred, noise)]
    kid = [metrics.kernel_distance(real, x, subsets=20, subset_size=500)
           for x in (other, blurred, noise)]
    assert fd[0] * 5 < fd[1] < fd[2], fd
    assert kid[0] * 5 < kid[1] < kid[2], kid
    assert abs(kid[0]) * 20 < kid[1]
    # identical sets: zero, up to round-off
    assert metrics.frechet_distance(real, real) < 1e-3


def test_datasets_give_the_same_distance_as_arrays(digits):
    import tensorflow as tf

    images, labels = digits
    real, other = images[:600], images[600:1200]
    expected = metrics.frechet_distance(real, other)
    ds = tf.data.Dataset.from_tensor_slices(
        {"image": other, "label": labels[600:1200]}).batch(128)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return (other[i * 120:(i + 1) * 120].astype("float32") / 255.0,
                    labels[i * 120:(i + 1) * 120])

    assert metrics.frechet_distance(real, ds) == pytest.approx(
        expected, rel=1e-4)
    assert metrics.frechet_distance(real, Batches()) == pytest.approx(
        expected, rel=1e-4)
    # (N, 28, 28) without a channel axis, as keras.datasets gives them:
    # arrays, batched datasets and datasets of single images
    assert metrics.frechet_distance(real[..., 0], other) == pytest.approx(
        expected, rel=1e-4)
    gray = tf.data.Dataset.from_tensor_slices(other[..., 0])
    for ds in (gray.batch(100), gray, gray.batch(100, drop_remainder=True)):
        assert metrics.frechet_distance(real, ds) == pytest.approx(
            expected, rel=1e-4)
    with pytest.raises(ValueError, match="max_images"):
        metrics.frechet_distance(real, ds.repeat())
    assert metrics.frechet_distance(
        real, ds.repeat(), max_images=600) == pytest.approx(expected,
                                                            rel=1e-4)
    with pytest.raises(ValueError, match="empty"):
        metrics.mode_coverage(ds.take(0))


def test_mode_coverage_tells_all_digits_from_one(digits):
    images, labels = digits
    everything = metrics.mode_coverage(images[:2000])
    assert everything["classes_covered"] == 10
    assert everything["kl_to_uniform"] < 0.05
    assert everything["confidence"] > 0.95
    assert len(everything["histogram"]) == 10
    assert sum(everything["histogram"]) == pytest.approx(1.0)
    ones = metrics.mode_coverage(images[labels == 1])
    assert ones["classes_covered"] <= 2
    assert ones["kl_to_uniform"] > 1.5
    assert ones["histogram"][1] > 0.95
    # one image is a histogram too (2 were required)
    one = metrics.mode_coverage(images[:1])
    assert one["classes_covered"] == 1
    assert one["histogram"][int(labels[0])] == 1.0


def test_own_feature_model_and_classifier_for_other_shapes():
    rng = np.random.default_rng(0)
    red = rng.uniform(0.0, 0.3, (200, 12, 12, 3)).astype("float32")
    red[..., 0] += 0.6
    blue = red[..., ::-1].copy()
    features = keras.Sequential([
        keras.Input((12, 12, 3)), keras.layers.GlobalAveragePooling2D()])
    near = metrics.frechet_distance(red[:100], red[100:],
                                    feature_model=features)
    far = metrics.frechet_distance(red[:100], blue[100:],
                                   feature_model=features)
    assert near * 100 < far
    # a bare layer works as a feature model too
    assert metrics.frechet_distance(
        red[:100], blue[100:],
        feature_model=keras.layers.GlobalAveragePooling2D()) == (
            pytest.approx(far, rel=1e-5))
    classifier = keras.Sequential([
        keras.Input((12, 12, 3)), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Softmax()])
    coverage = metrics.mode_coverage(red, classifier=classifier)
    assert coverage["classes_covered"] == 1
    assert coverage["histogram"][0] == 1.0
    assert coverage["kl_to_uniform"] == pytest.approx(math.log(3))
    scores = metrics.quality_scores(red[:100], blue[100:],
                                    feature_model=features)
    assert set(scores) == {"fd", "kid"}


def test_bad_images_give_one_clear_error(digits):
    images, _ = digits
    rgb = np.zeros((10, 32, 32, 3), "uint8")
    with pytest.raises(ValueError, match="feature_model="):
        metrics.frechet_distance(rgb, rgb)
    with pytest.raises(ValueError, match="classifier="):
        metrics.mode_coverage(rgb)
    nan = images[:10].astype("float32") / 255.0
    nan[3, 4, 5, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        metrics.kernel_distance(images[:10], nan)
    with pytest.raises(ValueError, match="at least 2"):
        metrics.frechet_distance(images[:10], images[:1])
    with pytest.raises(ValueError, match="at least 2"):
        metrics.frechet_distance(images[:10], images[0])  # one (28, 28, 1)
    with pytest.raises(ValueError, match="subset_size"):
        metrics.kernel_distance(images[:10], images[10:20], subset_size=1)
    # a negative count sliced images off the end in silence
    for value in (-1, 0, 2.5):
        with pytest.raises(ValueError, match="`max_images` must be"):
            metrics.frechet_distance(images[:10], images[10:20],
                                     max_images=value)
    with pytest.raises(ValueError, match="subsets"):
        metrics.kernel_distance(images[:10], images[10:20], subsets=0)
    with pytest.raises(ValueError, match=r"\(images \+ 1\) / 2"):
        metrics.mode_coverage(images[:10].astype("float32") / 127.5 - 1.0)
    with pytest.raises(ValueError, match="one shape"):
        metrics.frechet_distance(images[:10], np.zeros((10, 14, 14, 1)))
    small = keras.Sequential([keras.Input((14, 14, 1)),
                              keras.layers.Flatten()])
    with pytest.raises(ValueError, match="Resizing"):
        metrics.frechet_distance(images[:10], images[10:20],
                                 feature_model=small)


@pytest.fixture(scope="module")
def trained_vae(digits):
    images, _ = digits
    keras.utils.set_random_seed(0)
    vae = VAE(latent_dim=4, filters=(8, 16), seed=0)
    vae.fit(images[:2048], epochs=2, batch_size=64, verbose=0)
    return vae


def test_vae_importance_weighted_nll_tightens_with_samples(trained_vae,
                                                           digits):
    images, _ = digits
    test = images[5000:5064]
    one = trained_vae.nll(test, num_samples=1, seed=0)
    hundred = trained_vae.nll(test, num_samples=100, seed=0)
    assert hundred <= one
    # the bound is seeded, and near the negative ELBO from above
    assert hundred == trained_vae.nll(test, num_samples=100, seed=0)
    elbo = trained_vae.elbo(test, num_samples=20, seed=0)
    assert hundred <= -elbo
    assert -elbo - hundred < 0.25 * hundred
    per_image = trained_vae.nll(test, num_samples=10, seed=0,
                                reduction="none")
    assert per_image.shape == (64,)
    assert float(per_image.mean()) == pytest.approx(
        trained_vae.nll(test, num_samples=10, seed=0), rel=1e-5)


def test_vae_elbo_matches_the_training_loss(trained_vae, digits):
    images, _ = digits
    test = images[6000:6256]
    loss = trained_vae.evaluate(test, batch_size=256, verbose=0,
                                return_dict=True)["loss"]
    # evaluate draws one code per image; the ELBO here averages 50
    assert -trained_vae.elbo(test, num_samples=50, seed=0) == pytest.approx(
        loss, rel=0.02)


def test_vae_likelihood_bad_input(trained_vae):
    with pytest.raises(ValueError, match="num_samples"):
        trained_vae.nll(np.zeros((2, 28, 28, 1), "uint8"), num_samples=0)
    with pytest.raises(ValueError, match="shape"):
        trained_vae.nll(np.zeros((2, 14, 14, 1), "uint8"))
    with pytest.raises(ValueError, match="reduction"):
        trained_vae.elbo(np.zeros((2, 28, 28, 1), "uint8"), reduction="sum")
    with pytest.raises(ValueError, match="fit"):
        VAE(latent_dim=2).nll(np.zeros((2, 28, 28, 1), "uint8"))


def test_bigram_evaluate_text_is_the_exact_table_figure():
    text = datasets.load_text("tiny_shakespeare")[:20_000]
    model = BigramLM.from_text(text, sequence_length=16)
    model.fit(model.make_datasets(text, batch_size=32)[0], epochs=1,
              verbose=0)
    table = keras.ops.convert_to_numpy(model.table.embeddings).astype(
        "float64")
    log_probs = table - np.log(np.exp(table).sum(-1, keepdims=True))
    sample = text[:1000]
    ids = model.encode_text(sample)
    expected = -log_probs[ids[:-1], ids[1:]].mean() / math.log(2)
    for stride in (None, 1, 16):
        assert model.evaluate_text(sample, stride=stride) == pytest.approx(
            expected, rel=1e-5)
    with pytest.raises(ValueError, match="vocabulary"):
        model.evaluate_text("~~ unknown ~~")
    with pytest.raises(ValueError, match="at least 2"):
        model.evaluate_text("a")
    with pytest.raises(ValueError, match="stride"):
        model.evaluate_text(sample, stride=17)


def test_gpt_evaluate_text_scores_every_character_with_full_context():
    text = datasets.load_text("tiny_shakespeare")[:4000]
    model = MiniGPT.from_text(text, sequence_length=16, num_layers=1,
                              num_heads=2, hidden_dim=16, seed=0)
    train_ds, _ = model.make_datasets(text, batch_size=16)
    model.fit(train_ds, epochs=1, verbose=0)
    # one window: the same figure as `evaluate` on it
    window = text[:17]
    ids = model.encode_text(window)
    logs = model.evaluate(ids[None, :-1], ids[None, 1:], verbose=0,
                          return_dict=True)
    assert model.evaluate_text(window) == pytest.approx(
        logs["bits_per_char"], rel=1e-4)
    # longer texts: stride 1 gives each character the full 16 of context;
    # its figure is that of the last position of each 16-character window
    sample = text[100:160]
    full = model.evaluate_text(sample, stride=1)
    ids = model.encode_text(sample)
    windows = np.stack([ids[i:i + 16] for i in range(1, len(ids) - 16)])
    logits = keras.ops.convert_to_numpy(model.predict(windows, verbose=0))
    last = logits[:, -1].astype("float64")
    log_probs = last - np.log(np.exp(last).sum(-1, keepdims=True))
    tail = -log_probs[np.arange(len(windows)), ids[17:]]
    # characters 1..16 are scored in the first window (less context)
    first = model.evaluate_text(sample[:17])
    expected = (first * 16 + tail.sum() / math.log(2)) / (len(ids) - 1)
    assert full == pytest.approx(expected, rel=1e-4)


class CannedSamples(keras.Model):
    """Any model with a `generate`: this one returns canned images."""

    def __init__(self, ones, **kwargs):
        super().__init__(**kwargs)
        self.ones = ones
        self.dense = keras.layers.Dense(1)

    def call(self, x):
        return self.dense(keras.ops.reshape(x, (keras.ops.shape(x)[0], -1)))

    def generate(self, num_samples, seed=None):
        return self.ones[:num_samples]


def test_quality_monitor_logs_into_history_and_sees_collapse(digits):
    images, labels = digits
    monitor = QualityMonitor(images[-1000:], every_n_epochs=2,
                             num_samples=200, verbose=False)
    model = CannedSamples(images[labels == 1])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(images[:64].astype("float32") / 255.0,
                        np.zeros((64, 1)), epochs=3, verbose=0,
                        callbacks=[monitor]).history
    # epochs 1 (the first, for a CSVLogger's columns), 2 and 3 (the last)
    assert [epoch for epoch, _ in monitor.scores] == [1, 2, 3]
    assert len(history["fd"]) == 3 and len(history["loss"]) == 3
    assert history["classes_covered"] == [1, 1, 1]
    assert history["kl_to_uniform"][0] > 2.0
    # a model that draws real digits of every class scores much better
    real = CannedSamples(images[:1000])
    real.compile(optimizer="sgd", loss="mse")
    good = QualityMonitor(images[-1000:], num_samples=500, prefix="q_",
                          verbose=False)
    history = real.fit(images[:64].astype("float32") / 255.0,
                       np.zeros((64, 1)), epochs=1, verbose=0,
                       callbacks=[good]).history
    assert history["q_classes_covered"] == [10]
    assert history["q_fd"][0] * 5 < monitor.scores[0][1]["fd"]


def test_early_stopping_on_the_quality_monitor_as_documented(digits):
    """docs/callbacks.md: `EarlyStopping(monitor="fd", mode="min")` stops
    on the monitor's numbers (Keras cannot tell the direction of "fd")."""
    images, _ = digits
    model = CannedSamples(images[:100])  # the same samples every epoch
    model.compile(optimizer="sgd", loss="mse")
    monitor = QualityMonitor(images[-300:], num_samples=100, verbose=False)
    stop = keras.callbacks.EarlyStopping(monitor="fd", mode="min",
                                         patience=0)
    history = model.fit(images[:32].astype("float32") / 255.0,
                        np.zeros((32, 1)), epochs=5, verbose=0,
                        callbacks=[monitor, stop]).history
    # epoch 2 scores no better than epoch 1: it stops there
    assert len(history["fd"]) == 2 and history["fd"][0] == history["fd"][1]
    assert stop.stopped_epoch == 1


def test_quality_monitor_on_a_zoo_model_and_bad_use(digits):
    images, _ = digits
    from keras_genzoo import GAN, AutoEncoder

    gan = GAN(latent_dim=8, generator_filters=(8,),
              discriminator_filters=(8,), seed=0)
    monitor = QualityMonitor(images[-300:], num_samples=100, verbose=False)
    history = gan.fit(images[:128], epochs=1, batch_size=64, verbose=0,
                      callbacks=[monitor]).history
    assert {"fd", "kid", "classes_covered"} <= set(history)
    # an AutoEncoder generates from a latent prior fitted after training
    with pytest.raises(ValueError, match="fit_latent_prior"):
        AutoEncoder(latent_dim=2, filters=(4,)).fit(
            images[:32], epochs=1, verbose=0,
            callbacks=[QualityMonitor(images[:10], verbose=False)])
    with pytest.raises(ValueError, match="shape"):
        VAE(latent_dim=2, filters=(4,)).fit(
            np.zeros((32, 8, 8, 1), "uint8"), epochs=1, verbose=0,
            callbacks=[QualityMonitor(images[:10], verbose=False)])
    with pytest.raises(ValueError, match="at least 2"):
        QualityMonitor(images[:1])
    text = "abcabc" * 20
    lm = BigramLM.from_text(text, sequence_length=8)
    with pytest.raises(ValueError, match="evaluate_text"):
        lm.fit(lm.make_datasets(text, batch_size=4)[0], epochs=1, verbose=0,
               callbacks=[QualityMonitor(images[:10], verbose=False)])


def test_from_features_functions_check_their_arrays():
    # One feature row used to give numpy's "LinAlgError: Eigenvalues did
    # not converge" (Fréchet) or a NaN (KID divided by n * (n - 1)); no
    # probability rows gave NaN shares.
    rng = np.random.default_rng(0)
    one, five = rng.random((1, 3)), rng.random((5, 3))
    for function in (metrics.frechet_from_features,
                     metrics.kernel_distance_from_features,
                     metrics.scores_from_features):
        with pytest.raises(ValueError, match="holds 1 row.*at least 2"):
            function(one, five)
        with pytest.raises(ValueError, match="holds 1 row.*at least 2"):
            function(five, one)
        with pytest.raises(ValueError, match="2-D array"):
            function(five[0], five)
        with pytest.raises(ValueError, match="same feature model"):
            function(five, rng.random((5, 4)))
    with pytest.raises(ValueError, match="holds 0 row.*at least 1"):
        metrics.coverage_from_probabilities(np.zeros((0, 10)))
    with pytest.raises(ValueError, match="2-D array"):
        metrics.coverage_from_probabilities(np.full(10, 0.1))
    assert metrics.frechet_from_features(five, five) == pytest.approx(0.0)
    assert metrics.coverage_from_probabilities(
        np.eye(10)[:1])["classes_covered"] == 1
    # NaN or Inf (a diverged feature model): numpy's LinAlgError, a NaN
    # KID, NaN rows counted as class 0, before
    bad = five.copy()
    bad[2, 1] = np.nan
    for function in (metrics.frechet_from_features,
                     metrics.kernel_distance_from_features):
        with pytest.raises(ValueError, match="NaN or Inf values in 1 of"):
            function(five, bad)
    with pytest.raises(ValueError, match="NaN or Inf"):
        metrics.coverage_from_probabilities(np.full((3, 10), np.inf))
    # a class with no image is not covered, even at min_share=0 (all 10
    # were, before)
    assert metrics.coverage_from_probabilities(
        np.eye(10)[[3, 3]], min_share=0)["classes_covered"] == 1
    # counts: fractions were truncated, None a TypeError
    for name, value in (("subsets", 2.5), ("subsets", None),
                        ("subset_size", 1), ("subset_size", None)):
        with pytest.raises(ValueError, match=f"`{name}` must be an integer"):
            metrics.kernel_distance_from_features(five, five,
                                                  **{name: value})


def test_unbatched_datasets_of_non_square_images(digits):
    # an unbatched dataset of (32, 48, 3) images (tfds' form) was read as
    # 32 grayscale images of 48 x 3 each: another Fréchet distance, no
    # error; a non-square numpy image was 16 images
    import tensorflow as tf

    rng = np.random.default_rng(0)
    real = rng.random((40, 32, 48, 3)).astype("float32")
    other = rng.random((40, 32, 48, 3)).astype("float32") * 0.5
    features = keras.Sequential([keras.layers.GlobalAveragePooling2D()])
    expected = metrics.frechet_distance(real, other, feature_model=features)
    unbatched = tf.data.Dataset.from_tensor_slices(other)
    assert metrics.frechet_distance(
        real, unbatched, feature_model=features) == pytest.approx(
            expected, rel=1e-5)
    assert metrics.collect_images(unbatched).shape == (40, 32, 48, 3)
    with pytest.raises(ValueError, match=r"image\[None\]"):
        metrics.collect_images(other[0])
    assert metrics.collect_images(other[:1], min_images=1).shape == (
        1, 32, 48, 3)
    # square grayscale images without a channel axis stay a batch
    assert metrics.collect_images(np.zeros((10, 4, 4))).shape == (
        10, 4, 4, 1)


def test_metric_batch_sizes_are_checked_and_an_error_keeps_the_model(
        digits):
    images, _ = digits
    for batch_size in (None, 0, -1, 2.5):
        with pytest.raises(ValueError, match="`batch_size`"):
            metrics.frechet_distance(images[:50], images[50:100],
                                     batch_size=batch_size)
    # an error inside Keras' JAX `predict` left the shared classifier's
    # variables None: every later metric failed with "'NoneType' object
    # is not callable"
    classifier = metrics._shared_classifier()
    with pytest.raises(Exception):  # (TensorFlow's own, or a ValueError)
        metrics._predict(classifier.feature_network,
                         np.zeros((4, 5, 5, 1), "float32"), 2)
    assert metrics.frechet_distance(images[:50], images[50:100]) > 0


def test_quality_monitor_of_a_diverged_model_logs_nan(digits):
    # with the diverged weights kept, the monitor raised out of `fit`
    # (the history lost) with advice to clean the training images
    images, _ = digits
    model = VAE(latent_dim=2, filters=(4,), seed=0)
    monitor = QualityMonitor(images[-100:], num_samples=20, verbose=False)
    from keras_genzoo.callbacks import StopOnDivergence

    class Poison(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            for variable in self.model.decoder.trainable_variables:
                variable.assign(np.full(variable.shape, np.nan, "float32"))

    with pytest.warns(RuntimeWarning, match="diverged"):
        history = model.fit(
            images[:64], epochs=1, verbose=0,
            callbacks=[StopOnDivergence(restore=False), Poison(), monitor])
    assert math.isnan(history.history["fd"][0])
    assert set(monitor.scores[0][1]) == {
        "fd", "kid", "classes_covered", "kl_to_uniform", "confidence"}
    # a dataset that repeats forever names the monitor's own argument
    import tensorflow as tf

    forever = tf.data.Dataset.from_tensor_slices(images[:10]).repeat()
    with pytest.raises(ValueError, match="`max_real_images=`"):
        QualityMonitor(forever)


def test_lists_of_batches_and_image_label_pairs(digits):
    # the docstring promised any iterable of batches, but a list was
    # refused; an (images, labels) pair was refused with an np.stack hint;
    # mode_coverage(min_share=None) was a bare TypeError
    images, labels = digits
    expected = metrics.collect_images(images[:100])
    for given in ([images[:60], images[60:100]], (images[:100], labels[:100]),
                  [images[:100], labels[:100]]):
        np.testing.assert_array_equal(metrics.collect_images(given),
                                      expected)
    with pytest.raises(ValueError, match="np.stack"):
        metrics.collect_images([images[0], images[1]])
    with pytest.raises(ValueError, match="`min_share`"):
        metrics.mode_coverage(images[:10], min_share=None)


def test_quality_monitor_counts_epochs_over_fits_and_checks_arguments(
        digits):
    images, _ = digits
    model = VAE(latent_dim=2, filters=(4,), seed=0)
    monitor = QualityMonitor(images[-100:], num_samples=20, verbose=False,
                             every_n_epochs=2, prefix=None)
    for _ in range(2):
        history = model.fit(images[:64], epochs=2, verbose=0,
                            callbacks=[monitor]).history
    # the second fit's epochs were 1 and 2 again; prefix=None gave "Nonefd"
    assert [epoch for epoch, _ in monitor.scores] == [1, 2, 3, 4]
    assert "fd" in history
    with pytest.raises(ValueError, match="not both"):
        QualityMonitor(images[:10], every=2, every_n_epochs=3)
    with pytest.raises(ValueError, match="`every`"):
        QualityMonitor(images[:10], every=0)
