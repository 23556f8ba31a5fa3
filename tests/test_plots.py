"""keras_genzoo.plots: figures on every backend, with Agg (no display)."""

import os

import keras
import numpy as np
import pytest
from matplotlib.figure import Figure

from keras_genzoo import (
    GAN,
    VAE,
    AutoEncoder,
    BigramLM,
    DiffusionModel,
    MiniGPT,
    plots,
)
from keras_genzoo.callbacks import image_grid, save_image_grid

PNG = b"\x89PNG\r\n\x1a\n"


def _saves(figure, tmp_path, name="figure.png"):
    assert isinstance(figure, Figure)
    assert figure._repr_png_().startswith(PNG)  # what Jupyter shows
    path = tmp_path / name
    figure.savefig(path)
    with open(path, "rb") as f:
        assert f.read(8) == PNG
    assert os.path.getsize(path) > 1000


def _image(ax):
    return np.asarray(ax.images[0].get_array())


# ---------------------------------------------------------------- history
def test_plot_history_of_fit(tmp_path):
    rng = np.random.default_rng(0)
    vae = VAE(latent_dim=2, filters=(4,), image_shape=(8, 8, 1), seed=0)
    history = vae.fit(rng.random((32, 8, 8, 1), "float32"), epochs=2,
                      batch_size=16, verbose=0,
                      validation_data=(rng.random((16, 8, 8, 1),
                                                  "float32"),))
    figure = plots.plot_history(history)
    titles = [ax.get_title() for ax in figure.axes]
    assert sorted(titles) == ["kl_loss", "loss", "reconstruction_loss"]
    loss = figure.axes[titles.index("loss")]
    train, validation = loss.lines
    assert list(train.get_ydata()) == history.history["loss"]
    assert list(validation.get_ydata()) == history.history["val_loss"]
    assert train.get_linestyle() == "-" and validation.get_linestyle() == "--"
    assert (train.get_label(), validation.get_label()) == (
        "train", "validation")
    assert list(train.get_xdata()) == [1, 2]
    assert plots.plot_history(history.history).axes[0].get_title() == \
        figure.axes[0].get_title()  # the dict works the same
    _saves(figure, tmp_path)


def test_plot_history_draws_values_at_the_epochs_that_logged_them():
    # validation every 2nd epoch: before, its values were drawn at epochs
    # 1 and 2 (Keras' lists skip the other epochs; so does
    # QualityMonitor(every_n_epochs=))
    rng = np.random.default_rng(0)
    images = rng.random((16, 8, 8, 1), "float32")
    vae = VAE(latent_dim=2, filters=(4,), image_shape=(8, 8, 1), seed=0)
    history = vae.fit(images, epochs=4, batch_size=16, verbose=0,
                      validation_data=(images,), validation_freq=2)
    assert history.logged_epochs["val_loss"] == [2, 4]
    figure = plots.plot_history(history)
    train, validation = figure.axes[0].lines
    assert list(train.get_xdata()) == [1, 2, 3, 4]
    assert list(validation.get_xdata()) == [2, 4]
    # a dict does not say which epochs: drawn at 1, 2, with a warning
    with pytest.warns(UserWarning, match="`val_loss` \\(2 values\\)"):
        figure = plots.plot_history(history.history)
    assert list(figure.axes[0].lines[1].get_xdata()) == [1, 2]
    # a fit that goes on from epoch 4 draws epochs 5 and 6
    history = vae.fit(images, epochs=6, initial_epoch=4, batch_size=16,
                      verbose=0)
    line, = plots.plot_history(history).axes[0].lines
    assert list(line.get_xdata()) == [5, 6]


def test_plot_history_puts_the_adversarial_losses_together():
    logs = {"d_loss": [0.7, 0.6, 0.5], "g_loss": [0.8, 0.9, 1.0],
            "d_accuracy": [0.5, 0.6, 0.7], "val_d_loss": [0.7, 0.6, 0.6],
            "frechet_distance": [90.0, 60.0, 40.0]}
    figure = plots.plot_history(logs, columns=2)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["adversarial losses", "d_accuracy", "frechet_distance"]
    adversarial = figure.axes[0]
    assert len(adversarial.lines) == 3  # d, validation d, g
    labels = sorted(line.get_label() for line in adversarial.lines)
    assert labels == ["d_loss", "g_loss", "validation d_loss"]
    d, val_d = [line for line in adversarial.lines
                if "d_loss" in line.get_label()]
    assert d.get_color() == val_d.get_color()
    assert adversarial.get_legend() is not None
    # two columns, two rows: the fourth cell of the grid is removed
    assert len(figure.axes) == 3


def test_plot_history_of_one_epoch_has_one_integer_tick():
    # before: ticks 0.945 ... 1.065, written over one another
    figure = plots.plot_history({"loss": [0.5]})
    figure.canvas.draw()
    ticks = [t for t in figure.axes[0].get_xticks()
             if figure.axes[0].get_xlim()[0] <= t
             <= figure.axes[0].get_xlim()[1]]
    assert ticks == [1.0], ticks


@pytest.mark.parametrize("bad", [[1.0, 2.0], {}, {"loss": []}, "history"])
def test_plot_history_bad_input(bad):
    with pytest.raises(ValueError, match="history"):
        plots.plot_history(bad)


# ---------------------------------------------------------------- samples
def test_plot_samples_of_a_model_is_its_seeded_grid(tmp_path):
    vae = VAE(latent_dim=2, filters=(4,), image_shape=(8, 8, 1), seed=0)
    figure = plots.plot_samples(vae, num=6, seed=3, columns=3, title="VAE")
    assert len(figure.axes) == 1 and figure.axes[0].get_title() == "VAE"
    expected = image_grid(vae.generate(6, seed=3), columns=3)
    np.testing.assert_array_equal(_image(figure.axes[0]), expected)
    _saves(figure, tmp_path)


def test_plot_samples_conditional_labels_and_images():
    gan = GAN(num_classes=10, latent_dim=4, generator_filters=(8,),
              discriminator_filters=(8,), image_shape=(8, 8, 1), seed=0)
    figure = plots.plot_samples(gan, num=4, seed=1, labels=[0, 1, 2, 3])
    expected = image_grid(gan.generate(4, seed=1, labels=[0, 1, 2, 3]))
    np.testing.assert_array_equal(_image(figure.axes[0]), expected)
    images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 1),
                                               dtype=np.uint8)
    shown = _image(plots.plot_samples(images, columns=5).axes[0])
    np.testing.assert_array_equal(shown, image_grid(images / 255.0,
                                                    columns=5))


def test_plot_samples_bad_input():
    gpt = MiniGPT(vocabulary=list("abc"), num_layers=1, num_heads=1,
                  hidden_dim=8, sequence_length=4)
    with pytest.raises(ValueError, match="generates text"):
        plots.plot_samples(gpt)
    with pytest.raises(ValueError, match="generates text"):
        plots.plot_samples(BigramLM(vocabulary=list("abc")))
    with pytest.raises(ValueError, match="do not apply"):
        plots.plot_samples(np.zeros((2, 8, 8, 1)), labels=[0, 1])
    with pytest.raises(ValueError, match="generate"):
        plots.plot_samples("samples.png")
    # values a grid would clip in silence, and no images (before: a
    # ZeroDivisionError)
    rng = np.random.default_rng(0)
    for images, words in [
            (rng.uniform(-1, 1, (4, 8, 8, 1)), r"\(images \+ 1\) / 2"),
            (rng.uniform(0, 255, (4, 8, 8, 1)), "divide by 255"),
            (np.full((4, 8, 8, 1), np.nan), "NaN"),
            (np.full((4, 8, 8, 1), 300), "0..255"),
            (np.zeros((0, 8, 8, 1)), "empty")]:
        with pytest.raises(ValueError, match=words):
            plots.plot_samples(images)
    with pytest.raises(ValueError, match="empty"):
        image_grid(np.zeros((0, 8, 8, 1)))


def test_plot_samples_of_one_image_is_one_image():
    # one (H, W, C) image, as the metrics read it (before: H strips of
    # W x C pixels); (N, H, W) is still N grayscale images
    image = np.random.default_rng(0).random((8, 8, 3))
    shown = _image(plots.plot_samples(image).axes[0])
    np.testing.assert_array_equal(shown, image_grid(image[None]))
    assert shown.shape == (12, 12, 3)
    gray = np.random.default_rng(0).random((3, 8, 8))
    np.testing.assert_array_equal(_image(plots.plot_samples(gray).axes[0]),
                                  image_grid(gray[..., None]))


def test_plot_reverse_process():
    model = DiffusionModel(widths=(8,), image_shape=(8, 8, 1), seed=0)
    figure = plots.plot_reverse_process(model, num=2, steps=4, frames=3,
                                        seed=0)
    ax = figure.axes[0]
    states = model.reverse_process(2, steps=4, frames=3, seed=0)
    np.testing.assert_array_equal(
        _image(ax), image_grid(states.reshape((6, 8, 8, 1)), columns=3))
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "1.00", "0.50", "0.00"]
    # the states reverse_process returned draw the same figure
    np.testing.assert_array_equal(
        _image(plots.plot_reverse_process(states).axes[0]), _image(ax))
    # the states' own times: 3 frames of 3 steps keep steps 0, 2 and 3
    # (the middle one at t = 0.33, labelled 0.50 before)
    ax = plots.plot_reverse_process(model, num=1, steps=3, frames=3,
                                    seed=0).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "1.00", "0.33", "0.00"]
    with pytest.raises(ValueError, match="DiffusionModel"):
        plots.plot_reverse_process(VAE(latent_dim=2))
    with pytest.raises(ValueError, match=r"of shape \(2, 8, 8, 1\)"):
        plots.plot_reverse_process(np.zeros((2, 8, 8, 1)))


# ----------------------------------------------------------------- latent
def _trained_autoencoder(latent_dim, cls=AutoEncoder, **kwargs):
    rng = np.random.default_rng(0)
    model = cls(latent_dim=latent_dim, filters=(4,), image_shape=(8, 8, 1),
                seed=0, **kwargs)
    images = rng.random((40, 8, 8, 1)).astype("float32")
    return model, images, rng.integers(0, 3, 40)


def test_plot_latent_space_2d_and_pca(tmp_path):
    model, images, labels = _trained_autoencoder(2)
    figure = plots.plot_latent_space(model, images, labels)
    scatter_ax, colour_bar = figure.axes
    assert scatter_ax.get_xlabel() == "z[0]"
    offsets = scatter_ax.collections[0].get_offsets()
    np.testing.assert_allclose(offsets, model.encode(images), rtol=1e-6)
    np.testing.assert_array_equal(
        scatter_ax.collections[0].get_array(), labels)
    assert colour_bar.get_ylabel() == "label"
    _saves(figure, tmp_path)

    vae, images, _ = _trained_autoencoder(5, cls=VAE)
    figure = plots.plot_latent_space(vae, images)  # no labels: no bar
    assert len(figure.axes) == 1
    assert figure.axes[0].get_xlabel().startswith("principal component 1")
    projected, _ = plots.pca_2d(vae.encode(images))
    np.testing.assert_allclose(figure.axes[0].collections[0].get_offsets(),
                               projected, rtol=1e-6, atol=1e-9)


def test_plot_latent_space_of_a_labelled_dataset():
    from keras_genzoo import datasets

    train, _ = datasets.load_images("embedded_mnist", batch_size=16,
                                    limit=48, validation_split=0,
                                    shuffle=False)
    images = np.concatenate([np.asarray(x) for x, _ in train])
    labels = np.concatenate([np.asarray(y) for _, y in train])
    model = AutoEncoder(latent_dim=2, filters=(4,), image_shape=(28, 28, 1),
                        seed=0)
    figure = plots.plot_latent_space(model, train)  # labels from the data
    points = figure.axes[0].collections[0]
    # (colour i is the i-th class found)
    np.testing.assert_array_equal(
        np.unique(labels)[points.get_array().astype(int)], labels)
    np.testing.assert_allclose(points.get_offsets(), model.encode(images),
                               rtol=1e-5, atol=1e-6)
    assert "48 images" in figure.axes[0].get_title()


def test_plot_latent_space_labels_go_with_arrays():
    import tensorflow as tf

    images = np.random.default_rng(0).random((12, 8, 8, 1)).astype("float32")
    labels = np.arange(12) % 3
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(4)
    model = AutoEncoder(latent_dim=2, filters=(4,), image_shape=(8, 8, 1),
                        seed=0)
    conditional = VAE(latent_dim=2, filters=(4,), num_classes=3,
                      image_shape=(8, 8, 1), seed=0)
    # with a dataset they were dropped: codes coloured by 3 labels for 12
    # images, or matplotlib's error; a conditional model asked for them
    for m, given in ((model, labels[:3]), (model, labels),
                     (conditional, labels)):
        with pytest.raises(ValueError, match="`labels=` goes with an array"):
            plots.plot_latent_space(m, dataset, given)
    for m in (model, conditional):
        points = plots.plot_latent_space(m, images, labels).axes[0]
        assert len(points.collections[0].get_offsets()) == 12


def test_pca_2d_matches_the_principal_axes():
    rng = np.random.default_rng(0)
    # most variance along (1, 1, 0) / sqrt(2), then along z
    points = (rng.normal(size=(500, 1)) * 3.0 * np.array([[1, 1, 0]])
              / np.sqrt(2) + rng.normal(size=(500, 1)) * np.array([[0, 0, 1]])
              + rng.normal(size=(500, 3)) * 0.01)
    projected, explained = plots.pca_2d(points)
    assert projected.shape == (500, 2)
    assert explained[0] > 0.85 and explained[1] > 0.08
    centred = points - points.mean(0)
    np.testing.assert_allclose(
        np.abs(projected[:, 0]),
        np.abs(centred @ np.array([1, 1, 0]) / np.sqrt(2)), atol=0.05)
    again, _ = plots.pca_2d(points)
    np.testing.assert_array_equal(projected, again)
    # one code has one component (an IndexError before)
    projected, explained = plots.pca_2d(points[:1])
    np.testing.assert_array_equal(projected, np.zeros((1, 2)))
    np.testing.assert_array_equal(explained, np.zeros(2))
    vae = VAE(latent_dim=3, filters=(4,), image_shape=(8, 8, 1), seed=0)
    image = np.random.default_rng(0).random((8, 8, 1), "float32")
    figure = plots.plot_latent_space(vae, image)
    assert len(figure.axes[0].collections[0].get_offsets()) == 1


def test_plot_latent_manifold_tiles_are_the_decoded_codes(tmp_path):
    model, _, _ = _trained_autoencoder(2)
    figure = plots.plot_latent_manifold(model, n=3, span=1.5)
    grid = _image(figure.axes[0])
    assert grid.shape == (24, 24)
    # top left is x = -span, y = +span; bottom right x = +span, y = -span
    top_left = model.decode(np.array([[-1.5, 1.5]], "float32"))[0, ..., 0]
    bottom_right = model.decode(np.array([[1.5, -1.5]], "float32"))[0, ..., 0]
    np.testing.assert_allclose(grid[:8, :8] / 255.0, top_left, atol=1 / 255)
    np.testing.assert_allclose(grid[16:, 16:] / 255.0, bottom_right,
                               atol=1 / 255)
    assert figure.axes[0].get_xlabel() == "z[0]"
    _saves(figure, tmp_path)
    vae, _, _ = _trained_autoencoder(4, cls=VAE)
    figure = plots.plot_latent_manifold(vae, n=2, dims=(3, 1))
    assert figure.axes[0].get_xlabel() == "z[3]"
    assert "the others 0" in figure.axes[0].get_title()


def test_plot_latent_manifold_conditional_needs_a_label():
    model, _, _ = _trained_autoencoder(2, cls=VAE, num_classes=3)
    figure = plots.plot_latent_manifold(model, n=2, label=1)
    assert _image(figure.axes[0]).shape == (16, 16)
    with pytest.raises(ValueError, match="pass `label=` \\(an int in 0..2"):
        plots.plot_latent_manifold(model, n=2)
    plain, _, _ = _trained_autoencoder(2)
    with pytest.raises(ValueError, match="`label` is for conditional"):
        plots.plot_latent_manifold(plain, n=2, label=1)


def test_latent_plots_bad_input():
    gan = GAN(latent_dim=4, generator_filters=(8,),
              discriminator_filters=(8,), image_shape=(8, 8, 1))
    for plot in (plots.plot_latent_space, plots.plot_latent_manifold):
        with pytest.raises(ValueError, match="encoder and a decoder"):
            plot(gan, np.zeros((2, 8, 8, 1))) if plot is \
                plots.plot_latent_space else plot(gan)
    model, images, labels = _trained_autoencoder(2)
    with pytest.raises(ValueError, match="one label per image"):
        plots.plot_latent_space(model, images, labels[:5])
    with pytest.raises(ValueError, match="span"):
        plots.plot_latent_manifold(model, span=0)
    with pytest.raises(ValueError, match="dims"):
        plots.plot_latent_manifold(model, dims=(0, 2))
    with pytest.raises(ValueError, match="dims"):
        plots.plot_latent_manifold(model, dims=(1, 1))
    with pytest.raises(ValueError, match="`n`"):
        plots.plot_latent_manifold(model, n=0)


# -------------------------------------------------------------- attention
def _gpt(block_type="fused"):
    return MiniGPT(vocabulary=list("abcdefgh \n"), num_layers=2, num_heads=2,
                   hidden_dim=8, sequence_length=12, seed=0,
                   block_type=block_type)


@pytest.mark.parametrize("block_type", ["fused", "keras_hub"])
def test_attention_weights_are_the_blocks_causal_softmax(block_type):
    gpt = _gpt(block_type)
    text = "bad cafe"
    weights = plots.attention_weights(gpt, text, layer=1)
    assert weights.shape == (2, 8, 8)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.triu(weights, 1) == 0)
    # The same numbers from the block's weights, in numpy
    numpy = keras.ops.convert_to_numpy
    x = gpt.blocks[0](gpt.embedding(gpt.encode_text(text)[None]))
    block = gpt.blocks[1]
    if block_type == "fused":
        x = numpy(x)[0]
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        h = ((x - mean) / np.sqrt(var + 1e-5)
             * numpy(block.attention_norm_gamma)
             + numpy(block.attention_norm_beta))
        qkv = (np.einsum("tc,ckhd->kthd", h, numpy(block.qkv_kernel))
               + numpy(block.qkv_bias)[:, None])
        q, k = qkv[0].transpose(1, 0, 2), qkv[1].transpose(1, 0, 2)
    else:
        h = numpy(block._self_attention_layer_norm(x))[0]
        attention = block._self_attention_layer
        wq, bq = (numpy(v) for v in attention._query_dense.weights)
        wk, bk = (numpy(v) for v in attention._key_dense.weights)
        q = np.einsum("tc,chd->htd", h, wq) + bq[:, None, :]
        k = np.einsum("tc,chd->htd", h, wk) + bk[:, None, :]
    logits = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
    logits = np.where(np.tril(np.ones((8, 8), bool)), logits, -np.inf)
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(weights, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(plots.attention_weights(gpt, text, layer=-1),
                               weights)


@pytest.mark.parametrize("block_type", ["fused", "keras_hub"])
def test_attention_weights_under_mixed_precision(block_type):
    # attention_weights runs the block outside its `__call__`, where a
    # mixed-precision block's kernels read as float32 (PyTorch refused to
    # multiply them by bfloat16 activations)
    text = "bad cafe"
    expected = plots.attention_weights(_gpt(block_type), text)
    gpt = MiniGPT(vocabulary=list("abcdefgh \n"), num_layers=2, num_heads=2,
                  hidden_dim=8, sequence_length=12, seed=0,
                  block_type=block_type, dtype="mixed_bfloat16")
    weights = plots.attention_weights(gpt, text)
    assert weights.dtype == np.float32 and weights.shape == (2, 8, 8)
    np.testing.assert_allclose(weights, expected, atol=0.02)
    plots.plot_attention(gpt, text, layer=0)
    # quantized: keras-hub's embedding layer, called directly, added float32
    # token rows to bfloat16 positions (TensorFlow: "cannot compute AddV2");
    # the model's own embedding, as `generate` uses
    gpt.quantize("int8")
    weights = plots.attention_weights(gpt, text)
    assert weights.shape == (2, 8, 8)
    np.testing.assert_allclose(weights, expected, atol=0.05)


def test_plot_attention(tmp_path):
    gpt = _gpt()
    figure = plots.plot_attention(gpt, "a bag\nhad", layer=0)
    heads = [ax for ax in figure.axes if ax.get_title().startswith("block")]
    assert [ax.get_title() for ax in heads] == ["block 0, head 0",
                                                "block 0, head 1"]
    assert len(figure.axes) == 3  # and the colour bar
    ticks = [t.get_text() for t in heads[0].get_xticklabels()]
    assert ticks == ["a", "␣", "b", "a", "g", "↵", "h", "a", "d"]
    _saves(figure, tmp_path)


def test_plot_attention_bad_input():
    gpt = _gpt()
    with pytest.raises(ValueError, match="vocabulary"):
        plots.plot_attention(gpt, "xyz")
    with pytest.raises(ValueError, match="at most"):
        plots.plot_attention(gpt, "abcdefgh abcd")
    with pytest.raises(ValueError, match="non-empty"):
        plots.plot_attention(gpt, "")
    with pytest.raises(ValueError, match="block index"):
        plots.plot_attention(gpt, "abc", layer=2)
    with pytest.raises(ValueError, match="MiniGPT"):
        plots.plot_attention(BigramLM(vocabulary=list("abc")), "abc")
    # as plot_history checks it (-1 was matplotlib's "figure size must be
    # positive", 2.5 became 2)
    for columns in (-1, 0, 2.5, "2"):
        with pytest.raises(ValueError, match="`columns` must be an integer"):
            plots.plot_attention(gpt, "abc", columns=columns)


# --------------------------------------------------------------- progress
def test_plot_progress_first_to_last(tmp_path):
    for epoch in range(1, 10):
        save_image_grid(np.full((4, 6, 6, 1), epoch / 10.0),
                        str(tmp_path / f"samples_epoch_{epoch:03d}.png"))
    save_image_grid(np.zeros((1, 6, 6, 1)), str(tmp_path / "other.png"))
    figure = plots.plot_progress(tmp_path, max_panels=4)
    assert [ax.get_title() for ax in figure.axes] == [
        "epoch 1", "epoch 4", "epoch 6", "epoch 9"]
    # the last panel is the last grid, pixel for pixel
    np.testing.assert_array_equal(
        _image(figure.axes[-1]), image_grid(np.full((4, 6, 6, 1), 0.9)))
    assert len(plots.plot_progress(tmp_path).axes) == 6
    _saves(figure, tmp_path, "progress.png")


def test_plot_progress_of_a_fit(tmp_path):
    from keras_genzoo.callbacks import ImageGridSaver

    vae = VAE(latent_dim=2, filters=(4,), image_shape=(8, 8, 1), seed=0)
    vae.fit(np.zeros((16, 8, 8, 1), "float32"), epochs=2, batch_size=8,
            verbose=0, callbacks=[ImageGridSaver(tmp_path, num_images=4)])
    figure = plots.plot_progress(tmp_path)
    assert [ax.get_title() for ax in figure.axes] == ["epoch 1", "epoch 2"]
    # a later run of 1 epoch into the same folder: the folder shows both
    # runs' grids, the saver its own run's (the folder's were all there
    # was, and its "last" grid was the earlier run's epoch 2)
    saver = ImageGridSaver(tmp_path, num_images=4, prefix="samples")
    VAE(latent_dim=2, filters=(4,), image_shape=(8, 8, 1), seed=1).fit(
        np.ones((16, 8, 8, 1), "float32"), epochs=1, batch_size=8,
        verbose=0, callbacks=[saver])
    assert len(plots.plot_progress(tmp_path).axes) == 2
    figure = plots.plot_progress(saver)
    assert [ax.get_title() for ax in figure.axes] == ["epoch 1"]
    with pytest.raises(ValueError, match="saved no grid"):
        plots.plot_progress(ImageGridSaver(tmp_path))


def test_plot_progress_bad_input(tmp_path):
    with pytest.raises(ValueError, match="ImageGridSaver"):
        plots.plot_progress(tmp_path)
    with pytest.raises(ValueError, match="at least 2"):
        plots.plot_progress(tmp_path, max_panels=1)


def test_latent_plots_count_one_image_and_check_span():
    """One (H, W, C) image with one label is one image, as `encode` counts
    it (before: "1 labels for 8 images"); a `span` that is no number gets
    the plot's own message (before: numpy's TypeError)."""
    model, images, _ = _trained_autoencoder(2)
    figure = plots.plot_latent_space(model, images[0], [2])
    offsets = figure.axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(offsets, model.encode(images[0]), rtol=1e-6)
    figure = plots.plot_latent_space(model, images[0, ..., 0], [2])
    assert len(figure.axes[0].collections[0].get_offsets()) == 1
    with pytest.raises(ValueError, match="2 labels for 1 images"):
        plots.plot_latent_space(model, images[0], [2, 1])
    for span in ("2", None, [1.0, 2.0], float("nan"), -1.0):
        with pytest.raises(ValueError, match="`span` must be a positive"):
            plots.plot_latent_manifold(model, n=3, span=span)
    assert plots.plot_latent_manifold(model, n=3, span=np.float32(2))


def test_plot_attention_of_heads_that_do_not_fill_the_last_row():
    # 6 heads (nanoGPT's) in the default 4 columns, or `columns` that does
    # not divide the heads, failed making the colour bar
    from keras_genzoo import MiniGPT

    gpt = MiniGPT(vocabulary=list("ab "), num_layers=1, num_heads=6,
                  hidden_dim=12, sequence_length=8, seed=0)
    for columns, panels in ((None, 8), (5, 10), (8, 8)):
        figure = plots.plot_attention(gpt, "ab ba", columns=columns)
        heads = [ax for ax in figure.axes
                 if ax.get_title().startswith("block")]
        assert len(heads) == 6 and len(figure.axes) == 7


def test_plot_latent_space_colours_each_class_apart():
    # labels 0, 1, 2 and 50 gave classes 0..2 one colour (tab10 over the
    # values); strings failed in numpy; one-hot rows were flattened
    model, images, _ = _trained_autoencoder(2)
    images = images[:8]
    for labels in ([0, 1, 2, 50] * 2, ["cat", "dog", "cow", "ant"] * 2,
                   [0.1, 0.2, 0.3, 0.4] * 2):
        figure = plots.plot_latent_space(model, images, labels)
        points = figure.axes[0].collections[0]
        colours = points.to_rgba(points.get_array())
        assert len({tuple(c) for c in colours[:4]}) == 4
        np.testing.assert_array_equal(colours[:4], colours[4:])
        ticks = [t.get_text() for t in figure.axes[1].get_yticklabels()]
        assert ticks == [str(c) for c in sorted(set(labels))]
    one_hot = np.eye(3)[[0, 1, 2, 0, 1, 2, 0, 1]]
    with pytest.raises(ValueError, match="one-hot"):
        plots.plot_latent_space(model, images, one_hot)
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((images, one_hot)).batch(4)
    with pytest.raises(ValueError, match="one-hot"):
        plots.plot_latent_space(model, dataset)


def test_plot_history_names_nan_values_and_takes_columns_none():
    # a diverged epoch was a silent gap; columns=None was a TypeError
    with pytest.warns(UserWarning, match=r"`loss` at epoch\(s\) \[2\]"):
        figure = plots.plot_history(
            {"loss": [1.0, float("nan"), 0.5], "fd": [3.0, 2.0, 1.0]},
            columns=None)
    assert len(figure.axes) == 2
    with pytest.raises(ValueError, match="`columns`"):
        plots.plot_history({"loss": [1.0]}, columns=0)
