import os

import keras
import numpy as np
import pytest
from PIL import Image

from keras_genzoo import VAE, AutoEncoder
from keras_genzoo.callbacks import (
    ImageGridSaver,
    ProgressGif,
    QualityMonitor,
    ReconstructionGridSaver,
    ReverseProcessSaver,
    image_grid,
    save_gif,
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
        image_grid(np.zeros((2, 3)))
    # 2 (or 5...) channels: one gray panel per channel, side by side (a
    # model of 2-channel images trained, then its first grid failed)
    two = np.zeros((2, 3, 3, 2), "float32")
    two[..., 1] = 1.0
    grid = image_grid(two, padding=1, pad_value=0.5)
    assert grid.shape == (3 + 2, 2 * (6 + 1) + 1)
    assert (grid[1:4, 1:4] == 0).all() and (grid[1:4, 4:7] == 255).all()
    assert image_grid(np.zeros((1, 4, 4, 5)), padding=0).shape == (4, 20)


def test_grids_of_a_model_of_two_channel_images(tmp_path):
    """A VAE of 2-channel images trains to the end with its grid callbacks
    (the first grid failed at the end of epoch 1: "1|3|4"), and plots its
    samples."""
    from keras_genzoo import plots

    images = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 2),
                                               "uint8")
    vae = VAE(latent_dim=2, filters=(4,), seed=0)
    gif = os.path.join(tmp_path, "progress.gif")
    grids = ImageGridSaver(str(tmp_path), num_images=4, seed=0)
    history = vae.fit(images, epochs=2, batch_size=8, verbose=0, callbacks=[
        grids, ReconstructionGridSaver(images[:4], str(tmp_path)),
        ProgressGif(grids, gif)])
    assert len(history.history["loss"]) == 2
    assert os.path.exists(gif)
    assert plots.plot_samples(vae, num=4, seed=0) is not None


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


def test_reconstruction_grid_saver_takes_a_batch_as_datasets_yield_it(
        mnist, tmp_path):
    import tensorflow as tf

    images, labels = mnist[0][:4], mnist[1][:4]
    # an (images, labels) pair failed in numpy ("inhomogeneous shape"), a
    # dict was "a batch of shape ()", one RGB image 8 grayscale ones
    pair = next(iter(tf.data.Dataset.from_tensor_slices(
        (images, labels)).batch(4)))
    for batch in (pair, {"image": images, "label": labels},
                  (images, labels)):
        saver = ReconstructionGridSaver(batch, tmp_path / "c", scale=1,
                                        padding=0)
        np.testing.assert_array_equal(saver.images, images)
        # a conditional model takes the labels the batch brought ...
        vae = VAE(latent_dim=2, filters=(4,), num_classes=10, seed=0)
        vae.fit(mnist[0][:32], mnist[1][:32], epochs=1, batch_size=32,
                callbacks=[saver], verbose=0)
        with Image.open(saver.paths[-1]) as image:
            grid = np.asarray(image)
        np.testing.assert_array_equal(grid[28:], image_grid(
            vae.reconstruct(images, labels), columns=4, padding=0))
    # ... an unconditional one leaves them
    saver = ReconstructionGridSaver(pair, tmp_path / "u")
    AutoEncoder(latent_dim=2, filters=(4,)).fit(
        mnist[0][:32], epochs=1, callbacks=[saver], verbose=0)
    assert len(saver.paths) == 1
    assert ReconstructionGridSaver(
        np.zeros((8, 8, 3)), tmp_path).images.shape == (1, 8, 8, 3)
    with pytest.raises(ValueError, match="next\\(iter\\(dataset\\)\\)"):
        ReconstructionGridSaver(
            tf.data.Dataset.from_tensor_slices(images).batch(2), tmp_path)


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


def test_saver_refuses_a_language_model_before_training(tmp_path):
    # before: the first epoch trained, then generate took the image count
    # as a prompt ("`prompt` must be a string; got int 16")
    from keras_genzoo import BigramLM

    model = BigramLM(vocabulary=list("ab"))
    counter = _StepCounter()
    ids = np.zeros((4, 3), "int32")
    with pytest.raises(ValueError, match="makes text.*TextSampler"):
        model.fit(ids, ids, epochs=1, verbose=0,
                  callbacks=[counter, ImageGridSaver(tmp_path)])
    assert counter.steps == 0


def test_save_image_grid_creates_folders(tmp_path):
    path = save_image_grid(np.zeros((2, 5, 5)), tmp_path / "a" / "b.png")
    assert os.path.exists(path)
    with pytest.raises(ValueError, match="every_n_epochs"):
        ImageGridSaver(tmp_path, every_n_epochs=0)
    # counts are checked, not cut by int (steps=2.7 ran as 2)
    for make, name in [
            (lambda: ImageGridSaver(tmp_path, every_n_epochs=1.5),
             "every_n_epochs"),
            (lambda: ImageGridSaver(tmp_path, num_images=3.9), "num_images"),
            (lambda: ImageGridSaver(tmp_path, scale=0), "scale"),
            (lambda: ReverseProcessSaver(tmp_path, steps=2.7), "steps"),
            (lambda: ReverseProcessSaver(tmp_path, frames=1), "frames"),
            (lambda: QualityMonitor(np.zeros((4, 8, 8, 1)), num_samples=2.5),
             "num_samples")]:
        with pytest.raises(ValueError, match=f"`{name}` must be an integer"):
            make()


def test_save_gif_counts_the_frames_it_holds(tmp_path):
    # Pillow merges identical consecutive frames: 4 PNGs, 2 frames (it
    # said 4 before)
    from keras_genzoo.callbacks import save_gif

    pngs = [save_image_grid(np.full((1, 4, 4), value), tmp_path / f"{i}.png")
            for i, value in enumerate([0.0, 0.0, 0.0, 1.0])]
    assert save_gif(pngs, tmp_path / "a.gif") == 2
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 2


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


class _StepCounter(keras.callbacks.Callback):
    """Counts the training steps that ran (none, if a callback refused its
    arguments when training started)."""

    def __init__(self):
        super().__init__()
        self.steps = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.steps += 1


def test_seed_none_draws_fresh_samples_and_bad_seeds_fail_early(tmp_path):
    # `seed=None`, which `generate` and TextSampler take, used to fail with
    # a bare TypeError from `int(None)`
    real = np.zeros((4, 28, 28, 1), "uint8")
    for callback in (ImageGridSaver(tmp_path, seed=None),
                     ReverseProcessSaver(tmp_path, seed=None),
                     QualityMonitor(real, seed=None)):
        assert callback.seed is None
    saver = ImageGridSaver(tmp_path, num_images=4, seed=None, scale=1)
    VAE(latent_dim=2, filters=(4,), seed=0).fit(
        np.random.rand(16, 8, 8, 1).astype("float32"), epochs=1,
        callbacks=[saver], verbose=0)
    assert len(saver.paths) == 1
    # and a seed no backend takes is said at construction, not at `generate`
    for make in (lambda seed: ImageGridSaver(tmp_path, seed=seed),
                 lambda seed: ReverseProcessSaver(tmp_path, seed=seed),
                 lambda seed: QualityMonitor(real, seed=seed)):
        for seed in (-1, 2**40, 1.5):
            with pytest.raises(ValueError, match="`seed` must be an integer"):
                make(seed)


def test_reconstruction_images_are_checked_before_training(tmp_path):
    # images the model cannot take failed in `reconstruct`, after a whole
    # epoch had trained
    train = np.random.rand(16, 8, 8, 1).astype("float32")
    model = AutoEncoder(latent_dim=2, filters=(4,), seed=0)
    for images, words in [
            (np.zeros((2, 16, 16, 1), "uint8"), "resize the images to"),
            (np.zeros((2, 8, 8, 3), "float32"), "channel"),
            (np.full((2, 8, 8, 1), 200.0, "float32"), "divide by 255")]:
        counter = _StepCounter()
        saver = ReconstructionGridSaver(images, tmp_path)
        with pytest.raises(ValueError, match=words):
            model.fit(train, epochs=1, batch_size=8, verbose=0,
                      callbacks=[counter, saver])
        assert counter.steps == 0 and not saver.paths


def test_sampling_arguments_are_checked_before_training(tmp_path):
    # a wrong label, `steps=0`, a bad `eta` or an unknown argument failed
    # in `generate` after the first epoch (in `reverse_process` after the
    # last): now when training starts
    from keras_genzoo import GAN, DiffusionModel

    rng = np.random.default_rng(0)
    train = rng.random((16, 8, 8, 1), dtype="float32")
    gan = GAN(latent_dim=4, generator_filters=(8, 4),
              discriminator_filters=(4, 8), num_classes=3, seed=0)
    vae = VAE(latent_dim=2, filters=(4,), seed=0)
    diffusion = DiffusionModel(widths=(8,), seed=0)
    feature = keras.layers.GlobalAveragePooling2D()
    cases = [
        (gan, ImageGridSaver(tmp_path, num_images=3, labels=[0, 1, 7]),
         "0..2"),
        # `labels=True` (read as class 1 before)
        (gan, ImageGridSaver(tmp_path, num_images=3, labels=True),
         "not a switch"),
        (vae, ImageGridSaver(tmp_path, num_images=4, stepz=3),
         "does not take"),
        (vae, ImageGridSaver(tmp_path, num_images=4, prior="gmm"),
         "fit_latent_prior"),
        (vae, QualityMonitor(train, num_samples=4, verbose=False,
                             feature_model=feature, labels=1),
         "not conditional"),
        (diffusion, ImageGridSaver(tmp_path, num_images=2, steps=0),
         "`steps` must be at least 1"),
        (diffusion, ReverseProcessSaver(tmp_path, num_images=2, steps=2,
                                        frames=2, eta=2.0),
         "`eta` must be in"),
    ]
    for model, callback, words in cases:
        counter = _StepCounter()
        labels = rng.integers(0, 3, 16) if model is gan else None
        with pytest.raises(ValueError, match=words):
            model.fit(train, labels, epochs=1, batch_size=8, verbose=0,
                      callbacks=[counter, callback])
        assert counter.steps == 0, type(callback).__name__


def test_quality_monitor_columns_reach_a_csv_logger(tmp_path):
    # CSVLogger takes its columns from the first epoch's logs: with
    # every_n_epochs > 1 the monitor logged nothing then, and `fd` never
    # reached the file (which the docs promise). Now the first epoch of
    # each fit is scored; the epochs in between get NA, not NaN (a NaN
    # would count as no improvement for EarlyStopping).
    import csv

    train = np.random.rand(16, 8, 8, 1).astype("float32")
    monitor = QualityMonitor(
        train, every_n_epochs=3, num_samples=4, verbose=False,
        feature_model=keras.layers.GlobalAveragePooling2D())
    path = tmp_path / "log.csv"
    history = VAE(latent_dim=2, filters=(4,), seed=0).fit(
        train, epochs=4, batch_size=8, verbose=0,
        callbacks=[monitor, keras.callbacks.CSVLogger(str(path))])
    assert [epoch for epoch, _ in monitor.scores] == [1, 3, 4]
    assert len(history.history["fd"]) == 3
    assert np.isfinite(history.history["fd"]).all()
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["fd"] != "NA" for row in rows] == [True, False, True, True]
    assert float(rows[0]["fd"]) == pytest.approx(monitor.scores[0][1]["fd"])


def test_progress_gif_may_come_before_its_reverse_process_saver(tmp_path):
    # listed first, its `on_train_end` ran before the saver had written
    # any frame, and it wrote no GIF without a word
    from keras_genzoo import DiffusionModel

    saver = ReverseProcessSaver(tmp_path, num_images=2, steps=2, frames=3,
                                scale=1)
    gif = ProgressGif(saver, path=tmp_path / "reverse.gif")
    model = DiffusionModel(widths=(8,), seed=0)
    model.fit(np.random.rand(8, 8, 8, 1).astype("float32"), epochs=1,
              verbose=0, callbacks=[gif, saver])
    assert len(saver.paths) == 3 and gif.num_frames == 3
    with Image.open(gif.path) as animation:
        assert animation.n_frames == 3
    # a GIF with nothing to show says why instead of writing nothing
    lonely = ProgressGif(ImageGridSaver(tmp_path / "none"))
    with pytest.warns(RuntimeWarning, match="same `callbacks`"):
        VAE(latent_dim=2, filters=(4,)).fit(
            np.random.rand(8, 8, 8, 1).astype("float32"), epochs=1,
            verbose=0, callbacks=[lonely])
    assert lonely.num_frames == 0


def _names(saver):
    return [os.path.basename(path) for path in saver.paths]


def _epochs(*epochs, prefix="samples"):
    return [f"{prefix}_epoch_{epoch:03d}.png" for epoch in epochs]


def _frames(paths):
    """The frames a GIF of `paths` holds (Pillow merges identical
    consecutive ones)."""
    grids = []
    for path in paths:
        with Image.open(path) as image:
            grids.append(np.asarray(image))
    return 1 + sum(not np.array_equal(a, b) for a, b in zip(grids, grids[1:]))


class _Crash(keras.callbacks.Callback):
    """Stops `fit` with an error at the end of epoch `epoch` (from 1)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise RuntimeError("crashed by the test")


def test_a_second_fit_numbers_its_grids_on(tmp_path):
    # a second `fit` of the same model (training on) wrote its epoch 1
    # over the first fit's `samples_epoch_001.png` without a word, and the
    # GIF showed the second fit only
    images = np.random.RandomState(0).rand(16, 8, 8, 1).astype("float32")
    saver = ImageGridSaver(tmp_path, num_images=4, scale=1)
    gif = ProgressGif(saver)
    model = VAE(latent_dim=2, filters=(4,), seed=0)
    model.fit(images, epochs=2, callbacks=[saver, gif], verbose=0)
    first = (tmp_path / "samples_epoch_001.png").read_bytes()
    model.fit(images, epochs=2, callbacks=[saver, gif], verbose=0)
    assert _names(saver) == _epochs(1, 2, 3, 4)
    assert sorted(os.listdir(tmp_path)) == ["progress.gif"] + _epochs(
        1, 2, 3, 4)
    assert (tmp_path / "samples_epoch_001.png").read_bytes() == first
    # the last grid is of the model as it is now
    with Image.open(saver.paths[-1]) as image:
        np.testing.assert_array_equal(
            np.asarray(image), image_grid(model.generate(4, seed=0)))
    assert gif.num_frames == _frames(saver.paths) > 2
    # `initial_epoch=` (Keras' way to train on) numbers on the same way,
    # and the schedule counts every epoch since the first fit's first
    model.fit(images, epochs=5, initial_epoch=4, callbacks=[saver, gif],
              verbose=0)
    assert _names(saver) == _epochs(1, 2, 3, 4, 5)
    every2 = ImageGridSaver(tmp_path / "every2", num_images=4,
                            every_n_epochs=2)
    for _ in range(3):
        model.fit(images, epochs=1, callbacks=[every2], verbose=0)
    assert _names(every2) == _epochs(2)
    # another model is another run: its epochs are counted from 1
    other = VAE(latent_dim=2, filters=(4,), seed=1)
    for _ in range(2):
        other.fit(images, epochs=1, callbacks=[every2], verbose=0)
    assert _names(every2) == _epochs(2)
    with Image.open(every2.paths[0]) as image:
        np.testing.assert_array_equal(
            np.asarray(image),
            image_grid(other.generate(4, seed=0), padding=2, scale=2))


def test_a_fit_run_again_after_a_crash_trains_those_epochs_again(tmp_path):
    # after a `fit` that crashed, a new `fit` (by hand, or resumed by
    # BackupAndRestore) trains its epochs again: it rewrites their grids,
    # and is not numbered on
    images = np.random.RandomState(0).rand(16, 8, 8, 1).astype("float32")
    saver = ImageGridSaver(tmp_path, num_images=4)
    model = VAE(latent_dim=2, filters=(4,), seed=0)
    with pytest.raises(RuntimeError, match="crashed"):
        model.fit(images, epochs=3, callbacks=[saver, _Crash(2)], verbose=0)
    assert _names(saver) == _epochs(1, 2)
    model.fit(images, epochs=3, callbacks=[saver], verbose=0)
    assert _names(saver) == _epochs(1, 2, 3)
    # the same saver and model resumed by BackupAndRestore
    saver = ImageGridSaver(tmp_path / "backup_run", num_images=4)
    model = VAE(latent_dim=2, filters=(4,), seed=0)
    backup = str(tmp_path / "backup")

    def fit(*extra):
        model.fit(images, epochs=3, verbose=0, callbacks=[
            keras.callbacks.BackupAndRestore(backup), saver, *extra])

    with pytest.raises(RuntimeError, match="crashed"):
        fit(_Crash(2))
    fit()
    assert _names(saver) == _epochs(1, 2, 3)


def test_a_resumed_fit_has_the_earlier_grids_in_its_gif(tmp_path):
    # after a crash, a run resumed by BackupAndRestore (a new model and
    # new callbacks) made a GIF of the epochs after the resume only,
    # although the earlier grids were in the folder
    images = np.random.RandomState(0).rand(16, 8, 8, 1).astype("float32")
    backup = str(tmp_path / "backup")
    grids = tmp_path / "grids"

    def run(*extra, **kwargs):
        saver = ImageGridSaver(grids, num_images=4, **kwargs)
        gif = ProgressGif(saver)
        VAE(latent_dim=2, filters=(4,), seed=0).fit(
            images, epochs=3, verbose=0, callbacks=[
                keras.callbacks.BackupAndRestore(backup), gif, saver,
                *extra])
        return saver, gif

    with pytest.raises(RuntimeError, match="crashed"):
        run(_Crash(2))
    saver, gif = run()
    assert _names(saver) == _epochs(1, 2, 3)
    assert gif.num_frames == _frames(saver.paths) > 1
    with Image.open(gif.path) as animation:
        assert animation.n_frames == gif.num_frames
    # `initial_epoch=` with new callbacks: the scheduled earlier grids,
    # in order (not the epochs off the schedule, nor other prefixes)
    save_image_grid(np.zeros((1, 8, 8, 1)), grids / "other_epoch_001.png")
    saver = ImageGridSaver(grids, num_images=4, every_n_epochs=2)
    VAE(latent_dim=2, filters=(4,), seed=0).fit(
        images, epochs=4, initial_epoch=3, verbose=0, callbacks=[saver])
    assert _names(saver) == _epochs(2, 4)
    # a `fit` with no epoch left to train still has them for its GIF
    saver = ImageGridSaver(grids, num_images=4)
    gif = ProgressGif(saver)
    VAE(latent_dim=2, filters=(4,), seed=0).fit(
        images, epochs=3, initial_epoch=3, verbose=0, callbacks=[gif, saver])
    assert _names(saver) == _epochs(1, 2, 3) and gif.num_frames >= 1


def test_a_saver_given_another_model_drops_the_first_models_grids(tmp_path):
    # the second model's `paths` (hence its GIF) held the first model's
    # later grids: 4 frames after its 2 epochs, the last 2 not its own
    images = np.random.RandomState(0).rand(16, 8, 8, 1).astype("float32")
    saver = ImageGridSaver(tmp_path, num_images=4, scale=1)
    gif = ProgressGif(saver)
    VAE(latent_dim=2, filters=(4,), seed=0).fit(
        images, epochs=4, callbacks=[saver, gif], verbose=0)
    other = VAE(latent_dim=2, filters=(4,), seed=1)
    other.fit(images, epochs=2, callbacks=[saver, gif], verbose=0)
    assert _names(saver) == _epochs(1, 2)
    assert gif.num_frames == _frames(saver.paths)
    with Image.open(saver.paths[-1]) as image:
        np.testing.assert_array_equal(
            np.asarray(image), image_grid(other.generate(4, seed=0)))


def test_text_sampler_numbers_a_second_fit_on():
    from keras_genzoo import BigramLM
    from keras_genzoo.callbacks import TextSampler

    text = "abcabcabc" * 20
    model = BigramLM.from_text(text, sequence_length=8)
    data = model.make_datasets(text, batch_size=8)[0]
    sampler = TextSampler("a", max_new_tokens=3, verbose=False)
    for _ in range(2):
        model.fit(data, epochs=2, steps_per_epoch=2, callbacks=[sampler],
                  verbose=0)
    assert [epoch for epoch, _ in sampler.samples] == [1, 2, 3, 4]
    # another model counts from 1 again
    BigramLM.from_text(text, sequence_length=8).fit(
        data, epochs=1, steps_per_epoch=2, callbacks=[sampler], verbose=0)
    assert sampler.samples[-1][0] == 1


def test_image_grid_scales_uint8_and_refuses_other_ranges():
    # uint8 images became pure black and white; [-1, 1] lost its negative
    # half, without a word
    pixels = np.arange(0, 256, 16, dtype="uint8").reshape(1, 4, 4, 1)
    grid = image_grid(pixels, padding=0)
    np.testing.assert_array_equal(grid, pixels[0, ..., 0])
    np.testing.assert_array_equal(
        image_grid(pixels.astype("float32") / 255.0, padding=0), grid)
    with pytest.raises(ValueError, match=r"\(images \+ 1\) / 2"):
        image_grid(pixels.astype("float32") / 127.5 - 1.0)
    with pytest.raises(ValueError, match="divide by 255"):
        image_grid(pixels.astype("float32"))
    with pytest.raises(ValueError, match="NaN"):
        image_grid(np.full((1, 4, 4, 1), np.nan, "float32"))


def test_columns_and_gif_durations_are_checked_when_made(tmp_path):
    # columns=-2 failed in numpy after training (after all of it for a
    # ReverseProcessSaver); 0 and 2.7 were changed in silence; a negative
    # frame time ended the training with Pillow's OverflowError
    for columns in (-2, 0, 2.7):
        for make in (lambda: ImageGridSaver(tmp_path, columns=columns),
                     lambda: ReverseProcessSaver(tmp_path, columns=columns),
                     lambda: image_grid(np.zeros((4, 2, 2, 1)),
                                        columns=columns)):
            with pytest.raises(ValueError, match="`columns`"):
                make()
    saver = ImageGridSaver(tmp_path)
    for name in ("frame_seconds", "last_frame_seconds"):
        for seconds in (-1, 0.001, float("nan"), "a"):
            with pytest.raises(ValueError, match=f"`{name}`"):
                ProgressGif(saver, **{name: seconds})
    png = save_image_grid(np.zeros((1, 2, 2, 1)), tmp_path / "a.png")
    with pytest.raises(ValueError, match="`frame_seconds`"):
        save_gif([png], tmp_path / "a.gif", frame_seconds=-1)
    # a path that is not a .gif: refused before training (Pillow chose the
    # format by the name at the end of `fit`, which then raised and lost
    # its history, or wrote an animated PNG)
    for name in ("progress", "progress.jpg", "progress.png"):
        with pytest.raises(ValueError, match="must name a .gif.*progress.gif"):
            ProgressGif(saver, path=tmp_path / name)
        with pytest.raises(ValueError, match="must name a .gif"):
            save_gif([png], tmp_path / name)
    assert ProgressGif(saver, path=tmp_path / "a.GIF").path.endswith("GIF")


def test_two_savers_in_one_folder_have_a_gif_each(tmp_path):
    # both GIFs were progress.gif: the second replaced the first
    images = np.random.RandomState(0).rand(16, 8, 8, 1).astype("float32")
    samples = ImageGridSaver(tmp_path, num_images=4)
    reconstructions = ReconstructionGridSaver(images[:2], tmp_path)
    gifs = [ProgressGif(samples), ProgressGif(reconstructions)]
    VAE(latent_dim=2, filters=(4,), seed=0).fit(
        images, epochs=2, callbacks=[samples, reconstructions, *gifs],
        verbose=0)
    assert [os.path.basename(gif.path) for gif in gifs] == [
        "progress.gif", "reconstructions_progress.gif"]
    for gif, saver in zip(gifs, (samples, reconstructions)):
        with Image.open(gif.path) as animation, Image.open(
                saver.paths[-1]) as last:
            assert animation.size == last.size


def test_save_gif_pads_frames_of_other_sizes(tmp_path):
    # the GIF took the first frame's size: a larger one was cropped
    small = save_image_grid(np.zeros((1, 4, 4, 1)), tmp_path / "small.png")
    large = save_image_grid(np.zeros((4, 4, 4, 1)), tmp_path / "large.png")
    with pytest.warns(RuntimeWarning, match="padded with white"):
        assert save_gif([small, large, small], tmp_path / "a.gif") == 3
    with Image.open(tmp_path / "a.gif") as gif, Image.open(large) as big:
        assert gif.size == big.size
        gif.seek(1)
        np.testing.assert_array_equal(np.asarray(gif.convert("L")),
                                      np.asarray(big.convert("L")))


def test_grid_savers_go_on_with_a_diverged_or_unclipped_model(tmp_path):
    # image_grid's new checks ended `fit` from the savers: NaN samples of
    # a model that kept its diverged weights, 1.0000001 from an own model
    from keras_genzoo.callbacks import StopOnDivergence

    images = np.random.RandomState(0).rand(16, 8, 8, 1).astype("float32")
    model = VAE(latent_dim=2, filters=(4,), seed=0)
    saver = ImageGridSaver(tmp_path, num_images=4)
    gif = ProgressGif(saver)

    class Poison(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                for variable in self.model.decoder.trainable_variables:
                    variable.assign(np.full(variable.shape, np.nan,
                                            "float32"))

    with pytest.warns(RuntimeWarning, match="epoch 2: the model's images "
                                            "hold .* NaN"):
        model.fit(images, epochs=2, verbose=0, callbacks=[
            StopOnDivergence(restore=False), Poison(), saver, gif])
    assert len(saver.paths) == 2 and gif.num_frames >= 1
    # rounding just past [0, 1] is clipped, not refused (it said "divide
    # by 255")
    grid = image_grid(np.full((1, 2, 2, 1), 1.0000001, "float32"), padding=0)
    assert (grid == 255).all()
    with pytest.raises(ValueError, match="`prefix` must be a string"):
        ImageGridSaver(tmp_path, prefix=None)
