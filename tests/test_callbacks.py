import os

import numpy as np
import pytest
from PIL import Image

from keras_genzoo import VAE, AutoEncoder
from keras_genzoo.callbacks import (
    ImageGridSaver,
    ReconstructionGridSaver,
    image_grid,
    save_image_grid,
)


def test_image_grid_layout():
    images = np.zeros((5, 4, 6, 1), "float32")
    images[1] = 1.0
    grid = image_grid(images, columns=3, padding=1, pad_value=0.5)
    assert grid.shape == (2 * 5 + 1, 3 * 7 + 1) and grid.dtype == np.uint8
    assert grid[1, 1] == 0 and grid[1, 8] == 255 and grid[0, 0] == 128
    color = image_grid(np.ones((4, 3, 3, 3)), padding=0, scale=3)
    assert color.shape == (18, 18, 3)
    with pytest.raises(ValueError, match="num_images, height, width"):
        image_grid(np.zeros((2, 3, 3, 2)))


def test_image_grid_saver_writes_pngs_of_the_expected_size(mnist, tmp_path):
    saver = ImageGridSaver(tmp_path / "grids", num_images=9, every_n_epochs=2,
                           scale=2, padding=2)
    vae = VAE(latent_dim=4, filters=(8, 16), seed=0)
    vae.fit(mnist[0][:256], epochs=4, batch_size=64, callbacks=[saver],
            verbose=0)
    names = sorted(os.listdir(tmp_path / "grids"))
    assert names == ["samples_epoch_002.png", "samples_epoch_004.png"]
    side = (3 * (28 + 2) + 2) * 2
    grids = []
    for path in saver.paths:
        with Image.open(path) as image:
            assert image.size == (side, side) and image.mode == "L"
            grids.append(np.asarray(image))
    # the same latent noise, decoded by a model that kept learning
    assert not np.array_equal(grids[0], grids[1])
    # the saved grid is the model's samples at that seed
    expected = image_grid(vae.generate(9, seed=0), padding=2, scale=2)
    np.testing.assert_array_equal(grids[1], expected)


def test_reconstruction_grid_saver(mnist, tmp_path):
    images = mnist[0][:6]
    saver = ReconstructionGridSaver(images, tmp_path, scale=1, padding=2)
    ae = AutoEncoder(latent_dim=4, filters=(8,), seed=0)
    ae.fit(mnist[0][:128], epochs=1, batch_size=64, callbacks=[saver],
           verbose=0)
    assert [os.path.basename(p) for p in saver.paths] == [
        "reconstructions_epoch_001.png"]
    with Image.open(saver.paths[0]) as image:
        assert image.size == (6 * 30 + 2, 2 * 30 + 2)
        grid = np.asarray(image)
    # first row: the originals, unchanged
    np.testing.assert_array_equal(grid[2:30, 2:30], images[0, ..., 0])


def test_reconstruction_grid_saver_of_a_conditional_model(mnist, tmp_path):
    images, labels = mnist[0][:4], mnist[1][:4]
    saver = ReconstructionGridSaver(images, tmp_path, scale=1, padding=0,
                                    labels=labels)
    vae = VAE(latent_dim=2, filters=(4,), num_classes=10, seed=0)
    vae.fit(mnist[0][:64], mnist[1][:64], epochs=1, batch_size=32,
            callbacks=[saver], verbose=0)
    with Image.open(saver.paths[0]) as image:
        grid = np.asarray(image)
    # second row: the reconstructions with the labels
    expected = image_grid(vae.reconstruct(images, labels), columns=4,
                          padding=0)
    np.testing.assert_array_equal(grid[28:], expected)
    # without labels, or with labels for a model that takes none: said
    # when training starts, before any step
    for model, saver, words in [
            (VAE(latent_dim=2, filters=(4,), num_classes=10),
             ReconstructionGridSaver(images, tmp_path), "pass `labels=`"),
            (AutoEncoder(latent_dim=2, filters=(4,)),
             ReconstructionGridSaver(images, tmp_path, labels=labels),
             "not conditional")]:
        with pytest.raises(ValueError, match=words):
            model.fit(mnist[0][:64], mnist[1][:64] if model.num_classes
                      else None, epochs=1, callbacks=[saver], verbose=0)
        assert int(np.asarray(model.optimizer.iterations)) == 0


def test_color_grids(tmp_path):
    images = np.random.rand(32, 12, 12, 3).astype("float32")
    saver = ImageGridSaver(tmp_path, num_images=4, scale=1, padding=0)
    VAE(latent_dim=2, filters=(4,)).fit(images, epochs=1, callbacks=[saver],
                                        verbose=0)
    with Image.open(saver.paths[0]) as image:
        assert image.size == (24, 24) and image.mode == "RGB"


def test_saver_needs_generate(mnist, tmp_path):
    saver = ImageGridSaver(tmp_path)
    model = AutoEncoder(latent_dim=2, filters=(4,))
    with pytest.raises(ValueError, match="fit_latent_prior"):
        model.fit(mnist[0][:32], epochs=1, callbacks=[saver], verbose=0)
    # with a prior, an auto-encoder draws sample grids too
    model.fit_latent_prior(mnist[0][:32], n_components=2)
    model.fit(mnist[0][:32], epochs=1, callbacks=[saver], verbose=0)
    assert len(saver.paths) == 1


def test_save_image_grid_creates_folders(tmp_path):
    path = save_image_grid(np.zeros((2, 5, 5)), tmp_path / "a" / "b.png")
    assert os.path.exists(path)
    with pytest.raises(ValueError, match="every_n_epochs"):
        ImageGridSaver(tmp_path, every_n_epochs=0)


def test_progress_gif_holds_every_grid_in_order(tmp_path):
    from keras_genzoo import GAN
    from keras_genzoo.callbacks import ProgressGif

    images = np.random.rand(32, 8, 8, 1).astype("float32")
    saver = ImageGridSaver(tmp_path, num_images=4, scale=1)
    gif = ProgressGif(saver, frame_seconds=0.1)
    GAN(latent_dim=4, generator_filters=(8,), discriminator_filters=(8,)).fit(
        images, epochs=3, batch_size=16, callbacks=[saver, gif], verbose=0)
    assert gif.num_frames == 3 and os.path.exists(gif.path)
    with Image.open(gif.path) as animation:
        assert animation.n_frames == 3
        frames = []
        for i in range(3):
            animation.seek(i)
            frames.append(np.asarray(animation.convert("L")))
    for frame, png in zip(frames, saver.paths):
        with Image.open(png) as image:
            np.testing.assert_allclose(frame, np.asarray(image), atol=2)
    with pytest.raises(ValueError, match="ImageGridSaver"):
        ProgressGif("not a saver")
