import hashlib
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from keras_genzoo import VAE, datasets


def test_embedded_mnist_is_the_real_test_split():
    images, labels = datasets.load_embedded_mnist()
    assert images.shape == (10000, 28, 28, 1) and images.dtype == np.uint8
    assert images.min() == 0 and images.max() == 255
    counts = np.bincount(labels, minlength=10)
    assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028,
                               974, 1009]


def test_load_embedded_mnist_split_and_batches():
    train, val = datasets.load_images("embedded_mnist", batch_size=500)
    assert sum(len(b[0]) for b in train) == 9000
    assert sum(len(b[0]) for b in val) == 1000
    images, labels = next(iter(train))
    assert tuple(images.shape) == (500, 28, 28, 1)
    assert images.dtype.name == "uint8" and tuple(labels.shape) == (500,)
    bare, none = datasets.load_images("embedded_mnist", with_labels=False,
                                      validation_split=0, limit=64,
                                      batch_size=32)
    assert none is None and tuple(next(iter(bare)).shape) == (32, 28, 28, 1)
    assert sum(len(b) for b in bare) == 64
    train, val = datasets.load_images("embedded_mnist", limit=500,
                                      batch_size=100)
    assert sum(len(b[0]) for b in train) == 500
    assert sum(len(b[0]) for b in val) == 50
    # a tenth of 5 rounds to 0: one validation image all the same (before,
    # none, and `genzoo train ae --limit 5` failed on it)
    train, val = datasets.load_images("embedded_mnist", limit=5)
    assert sum(len(b[0]) for b in train) == 5
    assert sum(len(b[0]) for b in val) == 1
    # a limit near the 10,000 images: a tenth of it validates (all 1,000
    # did for limits from 9,000 to 9,999), the rest trains
    train, val = datasets.load_images("embedded_mnist", limit=9500,
                                      batch_size=2000, with_labels=False)
    assert sum(len(b) for b in val) == 950
    assert sum(len(b) for b in train) == 9050


@pytest.mark.parametrize(
    "name, shape", [("mnist", (28, 28, 1)), ("fashion_mnist", (28, 28, 1)),
                    ("cifar10", (32, 32, 3))])
def test_tfds_path_with_mock_data(name, shape):
    with tfds.testing.mock_data(num_examples=40):
        train, val = datasets.load_images(name, batch_size=8,
                                          validation_split=0.2)
        images, labels = next(iter(train))
        assert tuple(images.shape) == (8,) + shape
        assert images.dtype.name == "uint8" and tuple(labels.shape) == (8,)
        assert val is not None
        bare, _ = datasets.load_images(name, batch_size=8, with_labels=False,
                                       limit=16)
        assert tuple(next(iter(bare)).shape) == (8,) + shape
        assert sum(len(b) for b in bare) == 16


def test_a_model_trains_on_a_tfds_dataset_as_it_comes():
    with tfds.testing.mock_data(num_examples=64):
        train, val = datasets.load_images("mnist", batch_size=32)
        vae = VAE(latent_dim=2, filters=(4,))
        history = vae.fit(train, validation_data=val, epochs=1, verbose=0)
    assert np.isfinite(history.history["val_loss"][0])


def test_tfds_without_data_fails_fast_with_a_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        datasets.load_images("mnist", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="whole percentage"):
        datasets.load_images("mnist", validation_split=0.125)


def _write_images(folder, count, size, mode):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(0)
    channels = {"L": (), "RGB": (3,)}[mode]
    for i in range(count):
        pixels = rng.randint(0, 256, size + channels).astype("uint8")
        Image.fromarray(pixels, mode).save(os.path.join(folder, f"{i}.png"))


def test_folder_with_class_subfolders(tmp_path):
    _write_images(tmp_path / "cats", 6, (20, 24), "RGB")
    _write_images(tmp_path / "dogs", 4, (20, 24), "RGB")
    train, val = datasets.load_images(str(tmp_path), batch_size=4,
                                      validation_split=0.2)
    images, labels = next(iter(train))
    assert tuple(images.shape[1:]) == (20, 24, 3)
    assert images.dtype.name == "uint8"
    assert set(np.asarray(labels)) <= {0, 1}
    assert sum(len(b[0]) for b in train) == 8
    assert sum(len(b[0]) for b in val) == 2
    # the classes' names, as Keras' own folder datasets have them: a
    # conditional model's num_classes (the examples took 10 for any folder)
    assert train.class_names == val.class_names == ["cats", "dogs"]
    bare, _ = datasets.load_images(str(tmp_path), with_labels=False,
                                   validation_split=0.2)
    assert not hasattr(bare, "class_names")


def test_every_source_names_its_classes():
    # (a limit of 3 named the classes of the 3 labels kept, "0".."7")
    for limit in (3, 20):
        train, val = datasets.load_images("embedded_mnist", limit=limit)
        assert train.class_names == val.class_names == [
            str(d) for d in range(10)]
    with tfds.testing.mock_data(num_examples=20):
        train, _ = datasets.load_images("mnist", batch_size=8)
        assert train.class_names == [str(d) for d in range(10)]
    train, val = datasets.arrays_to_datasets(
        np.zeros((20, 4, 4, 1), "uint8"), np.arange(20) % 3,
        validation_split=0.2)
    assert train.class_names == val.class_names == ["0", "1", "2"]
    train, _ = datasets.arrays_to_datasets(np.zeros((20, 4, 4, 1), "uint8"))
    assert not hasattr(train, "class_names")


def test_flat_grayscale_folder_resized(tmp_path):
    _write_images(tmp_path, 5, (30, 30), "L")
    train, val = datasets.load_images(str(tmp_path), batch_size=5,
                                      validation_split=0, image_size=(16, 16))
    images = next(iter(train))
    assert val is None and tuple(images.shape) == (5, 16, 16, 1)
    vae = VAE(latent_dim=2, filters=(4,))
    vae.fit(train, epochs=1, verbose=0)
    assert vae.image_shape == (16, 16, 1)


def test_a_limited_folder_trains_on_the_same_images_every_epoch(tmp_path):
    for i in range(40):  # image i is all i: its id
        Image.fromarray(np.full((4, 4), i, "uint8")).save(
            tmp_path / f"{i}.png")
    train, val = datasets.load_images(str(tmp_path), batch_size=4, limit=5)

    def ids(ds):
        return sorted(int(x) for b in ds for x in np.asarray(b)[:, 0, 0, 0])

    first = ids(train)
    assert len(first) == 5 and len(ids(val)) == 1
    assert not set(first) & set(ids(val))
    # Keras reshuffles a folder's files every pass: not the images taken
    assert ids(train) == first and ids(train) == first


def test_a_folder_without_shuffling_keeps_its_order(tmp_path):
    # Keras reshuffled every pass (shuffle=False was ignored); the split
    # is the one shuffle=True makes
    for i in range(20):
        Image.fromarray(np.full((4, 4), i * 10, np.uint8), "L").save(
            tmp_path / f"img{i:02d}.png")

    def ids(ds):
        return [int(x[0, 0, 0]) // 10 for x in ds.unbatch()]

    train, val = datasets.load_images(str(tmp_path), batch_size=8,
                                      shuffle=False, validation_split=0.2)
    first = ids(train)
    assert first == ids(train) == sorted(first) and len(first) == 16
    shuffled_train, shuffled_val = datasets.load_images(
        str(tmp_path), batch_size=8, validation_split=0.2)
    assert sorted(ids(val)) == sorted(ids(shuffled_val))
    assert sorted(ids(shuffled_train)) == first
    assert len(train) == 2  # the size is known
    # shuffled anew every pass, by Keras' shuffle of the files alone (a
    # second shuffle of decoded images in a buffer of 10,000 decoded them
    # all before each epoch's first batch)
    orders = [ids(shuffled_train) for _ in range(4)]
    assert len({tuple(order) for order in orders}) > 1
    shuffles, dataset = [], shuffled_train
    while dataset is not None:  # the pipeline, from its end
        if type(dataset).__name__ == "_ShuffleDataset":
            shuffles.append(int(dataset._buffer_size))
        dataset = getattr(dataset, "_input_dataset", None)
    assert shuffles == [1024]  # Keras' own, of the file names


def test_a_folder_reads_as_what_its_images_hold(tmp_path):
    """Grey palettes read as one channel, alpha (grey-with-alpha too) as
    four, colour palettes as three; GIFs and BMPs too, which TensorFlow
    decodes as RGB (or RGBA) only."""
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (4, 6, 6), dtype=np.uint8)
    colour = rng.integers(0, 256, (4, 6, 6, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (4, 6, 6), dtype=np.uint8)
    kinds = {
        "grey_palette": ([Image.fromarray(g).convert("P") for g in grey],
                         grey[..., None]),
        "colour_palette": ([Image.fromarray(c).quantize(256) for c in colour],
                           None),
        "grey_alpha": ([Image.fromarray(np.stack([g, a], -1), "LA")
                        for g, a in zip(grey, alpha)],
                       np.stack([grey, grey, grey, alpha], -1)),
    }
    for kind, (images, expected) in kinds.items():
        folder = tmp_path / kind
        folder.mkdir()
        for i, image in enumerate(images):
            image.save(folder / f"{i}.png")
        train, _ = datasets.load_images(str(folder), batch_size=4,
                                        validation_split=0)
        got = np.asarray(next(iter(train)))
        channels = {"grey_palette": 1, "colour_palette": 3, "grey_alpha": 4}
        assert got.shape == (4, 6, 6, channels[kind]), kind
        if expected is not None:  # in any order: Keras shuffles the files
            assert (sorted(got.reshape(4, -1).tolist())
                    == sorted(expected.reshape(4, -1).tolist())), kind

    def first_batch(name, images, suffix=".png", **save_kwargs):
        folder = tmp_path / name
        folder.mkdir()
        for i, image in enumerate(images):
            image.save(folder / f"{i}{suffix}", **save_kwargs)
        train, _ = datasets.load_images(str(folder), batch_size=4,
                                        validation_split=0)
        return np.asarray(next(iter(train)))

    assert first_batch("transparent_palette",
                       [Image.fromarray(c).quantize(256) for c in colour],
                       transparency=0).shape[-1] == 4
    # grey GIFs beside grey PNGs: TensorFlow decodes GIFs as RGB only; they
    # read as one channel, their own values (three channels before)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for i, g in enumerate(grey):
        Image.fromarray(g).save(mixed / f"{i}.png")
        Image.fromarray(g).convert("P").save(mixed / f"{i}.gif")
    train, _ = datasets.load_images(str(mixed), batch_size=8,
                                    validation_split=0, shuffle=False)
    got = np.asarray(next(iter(train)))
    assert got.shape == (8, 6, 6, 1)
    np.testing.assert_array_equal(got[::2, ..., 0], grey)  # 0.gif, 0.png...
    np.testing.assert_array_equal(got[1::2, ..., 0], grey)
    rgb, _ = datasets.load_images(str(mixed), batch_size=8, color_mode="rgb",
                                  validation_split=0, shuffle=False)
    np.testing.assert_array_equal(np.asarray(next(iter(rgb)))[..., 1], got[..., 0])
    # colour GIFs asked for as grayscale: their luma
    gif = tmp_path / "colour_gif"
    gif.mkdir()
    for i, c in enumerate(colour):
        Image.fromarray(c).quantize(256).save(gif / f"{i}.gif")
    train, _ = datasets.load_images(str(gif), batch_size=4,
                                    validation_split=0, shuffle=False)
    shown = np.asarray(next(iter(train)))
    assert shown.shape == (4, 6, 6, 3)
    grey_gif, _ = datasets.load_images(str(gif), batch_size=4,
                                       color_mode="grayscale",
                                       validation_split=0, shuffle=False)
    expected = np.round(shown.astype("float32")
                        @ np.float32([0.2989, 0.587, 0.114]))
    np.testing.assert_allclose(np.asarray(next(iter(grey_gif)))[..., 0],
                               expected, atol=1)
    with pytest.raises(ValueError, match="GIF.*without transparency"):
        datasets.load_images(str(mixed), color_mode="rgba")
    with pytest.raises(ValueError, match="`color_mode` must be"):
        datasets.load_images(str(mixed), color_mode="cmyk")
    # a tRNS transparent colour in an RGB PNG: rgba (its alpha was dropped)
    assert first_batch("trns", [Image.fromarray(c) for c in colour],
                       transparency=(0, 0, 0)).shape[-1] == 4
    # grey BMPs: TensorFlow decodes BMPs as RGB or RGBA only (its error at
    # the first batch, then three channels, before): one channel
    bmp = first_batch("bmp", [Image.fromarray(g) for g in grey], ".bmp")
    assert bmp.shape == (4, 6, 6, 1)
    assert (sorted(bmp.reshape(4, -1).tolist())
            == sorted(grey.reshape(4, -1).tolist()))


def test_a_file_that_cannot_be_decoded_is_named(tmp_path):
    # TensorFlow failed inside `fit` ("Unknown image file format"), at the
    # batch that held the file, without naming it
    _write_images(tmp_path, 12, (8, 8), "L")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.png cannot be read"):
        datasets.load_images(str(tmp_path))
    os.remove(tmp_path / "broken.png")
    # a TIFF under a .png name: PIL reads it, TensorFlow does not
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(
        tmp_path / "tiff.png", format="TIFF")
    with pytest.raises(ValueError, match="tiff.png holds a TIFF image"):
        datasets.load_images(str(tmp_path))
    os.remove(tmp_path / "tiff.png")
    # what TensorFlow decodes, whatever the name: a grey WebP (colour only
    # to TensorFlow: made grey), a camera's JPEG (MPO to PIL)
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(
        tmp_path / "webp.png", format="WEBP", lossless=True)
    train, _ = datasets.load_images(str(tmp_path), validation_split=0,
                                    batch_size=13, shuffle=False)
    batch = np.asarray(next(iter(train)))
    assert batch.shape == (13, 8, 8, 1) and (batch[-1] == 7).all()
    colour = tmp_path / "colour"
    colour.mkdir()
    pixels = np.zeros((8, 8, 3), np.uint8)
    pixels[..., 0] = 200
    Image.fromarray(pixels).save(colour / "a.png")
    Image.fromarray(pixels).save(colour / "b.jpg", format="MPO",
                                 save_all=True,
                                 append_images=[Image.fromarray(pixels)])
    Image.fromarray(pixels).save(colour / "c.png", format="WEBP",
                                 lossless=True)
    with Image.open(colour / "b.jpg") as image:
        assert image.format == "MPO"
    train, _ = datasets.load_images(str(colour), validation_split=0)
    assert np.asarray(next(iter(train))).shape == (3, 8, 8, 3)


def test_folders_of_jpegs_and_transparency_1_bit_bmps_and_channels_first(
        tmp_path):
    # a JPEG in an "rgba" folder failed inside `fit` ("JPEG does not
    # support 4 channels"); a 1-bit BMP failed there too ("Number of
    # channels ... was 0"); with Keras set to channels_first, (N, C, H, W)
    # came out
    import keras

    colour = np.random.default_rng(0).integers(0, 256, (3, 6, 6, 3),
                                               dtype=np.uint8)
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(colour[0]).save(folder / "0.png", transparency=(0, 0, 0))
    for i in (1, 2):
        Image.fromarray(colour[i]).save(folder / f"{i}.jpg")
    train, _ = datasets.load_images(str(folder), batch_size=3,
                                    validation_split=0)
    assert np.asarray(next(iter(train))).shape == (3, 6, 6, 3)
    with pytest.raises(ValueError, match="1.jpg.*without transparency"):
        datasets.load_images(str(folder), color_mode="rgba")
    bmp = tmp_path / "bmp"
    bmp.mkdir()
    Image.fromarray(colour[0, ..., 0] > 128).save(bmp / "a.bmp")
    with pytest.raises(ValueError, match="a.bmp is a BMP of 1 bit"):
        datasets.load_images(str(bmp))
    keras.backend.set_image_data_format("channels_first")
    try:
        train, _ = datasets.load_images(str(folder), batch_size=3,
                                        validation_split=0)
        assert np.asarray(next(iter(train))).shape == (3, 6, 6, 3)
    finally:
        keras.backend.set_image_data_format("channels_last")


def test_a_tiny_validation_split_holds_out_one_image():
    # a split under 1 / 20,000 of the embedded 10,000 held none out
    _, val = datasets.load_images("embedded_mnist", validation_split=1e-5,
                                  batch_size=8)
    assert sum(len(np.asarray(b[0] if isinstance(b, tuple) else b))
               for b in val) == 1


def test_bad_arguments_name_the_fix(tmp_path):
    _write_images(tmp_path, 5, (8, 8), "L")
    # 10% of 5 images is none: Keras would say the folder has no images
    with pytest.raises(ValueError,
                       match="5 image\\(s\\): too few.*at least 10"):
        datasets.load_images(str(tmp_path))
    train, val = datasets.load_images(str(tmp_path), validation_split=0.2)
    assert sum(len(b) for b in train) == 4 and sum(len(b) for b in val) == 1
    images = np.zeros((10, 8, 8, 1), "uint8")
    with pytest.raises(ValueError, match="arrays_to_datasets"):
        datasets.load_images(images)
    with pytest.raises(ValueError, match="batch_size"):
        datasets.load_images("embedded_mnist", batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        datasets.arrays_to_datasets(images, batch_size=0)
    with pytest.raises(ValueError, match="one label per image"):
        datasets.arrays_to_datasets(images, np.zeros(9, "int32"))
    # labels that are not class indices: strings failed inside numpy, and
    # 0 and 5,000,000 made 5,000,001 class names
    for bad, words in ((np.array(["cat", "dog"] * 5), "got <U3 values"),
                       (np.arange(10) * 0.5, "got float64 values"),
                       (np.arange(10) - 1, "values from -1"),
                       (np.array([0, 5_000_000] * 5), "2 distinct values")):
        with pytest.raises(ValueError, match=words + ".*np.unique"):
            datasets.arrays_to_datasets(images, bad)
    train, _ = datasets.arrays_to_datasets(
        images, np.arange(10.0) % 3, validation_split=0)
    assert train.class_names == ["0", "1", "2"]
    # image_size: an int is a square; (0, 4) failed at the first batch
    train, _ = datasets.load_images(str(tmp_path), image_size=4,
                                    validation_split=0)
    assert next(iter(train)).shape[1:3] == (4, 4)
    for size in ((0, 4), (4,), "big"):
        with pytest.raises(ValueError, match="`image_size` must be"):
            datasets.load_images(str(tmp_path), image_size=size)
    # arrays: the loaders' pair, uint8 (N, H, W, C), and a split that
    # rounds to none keeps one image (floats, 3-D arrays and no
    # validation set went through before)
    floats = np.linspace(0, 1, 4 * 8 * 8).reshape(4, 8, 8)
    train, val = datasets.arrays_to_datasets(floats, batch_size=4)
    batch = next(iter(train))
    assert batch.dtype.name == "uint8" and tuple(batch.shape) == (3, 8, 8, 1)
    assert sum(len(b) for b in val) == 1
    with pytest.raises(ValueError, match="divide by 255"):
        datasets.arrays_to_datasets(floats * 255)
    # images beside class sub-folders are not read: said
    (tmp_path / "extra").mkdir()
    _write_images(tmp_path / "extra", 2, (8, 8), "L")
    with pytest.warns(UserWarning, match="images beside them"):
        datasets.load_images(str(tmp_path), validation_split=0)
    # a numpy vocabulary is a vocabulary
    train, _ = datasets.text_datasets("abab" * 20, sequence_length=4,
                                      batch_size=2,
                                      vocabulary=np.array(["a", "b", "c"]))
    x, _ = next(iter(train))
    assert set(np.asarray(x).ravel()) <= {0, 1}


def test_unknown_names_and_empty_folders(tmp_path):
    with pytest.raises(ValueError, match="Unknown image dataset"):
        datasets.load_images("imagenet")
    with pytest.raises(FileNotFoundError, match="No images"):
        datasets.load_images(str(tmp_path))
    with pytest.raises(ValueError, match="validation_split"):
        datasets.load_images("embedded_mnist", validation_split=1.0)
    with pytest.raises(ValueError, match="Unknown text"):
        datasets.load_text("war_and_peace")


def test_tiny_shakespeare_is_embedded_verbatim():
    text = datasets.load_text("tiny_shakespeare")
    assert len(text) == 1115394
    assert hashlib.sha256(text.encode()).hexdigest() == (
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed")
    assert len(datasets.char_vocabulary(text)) == 65


def test_any_utf8_file(tmp_path):
    path = tmp_path / "roteiro.txt"
    path.write_text("Olá, coração! Não há ninguém aqui.\n" * 20, "utf-8")
    text = datasets.load_text(str(path))
    assert "ç" in text and "ã" in text
    vocab = datasets.char_vocabulary(text)
    train, val = datasets.text_datasets(text, sequence_length=10,
                                        batch_size=4, vocabulary=vocab)
    x, y = next(iter(train))
    assert tuple(x.shape) == (4, 10) and x.dtype.name == "int32"
    x, y = np.asarray(x), np.asarray(y)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    decoded = "".join(vocab[i] for i in x[0])
    assert decoded in text
    assert val is not None
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="Save it as UTF-8, or pass its real encoding"):
        datasets.load_text(str(tmp_path / "latin.txt"))


def test_utf8_byte_order_mark_is_dropped(tmp_path):
    # A BOM used to come back as a leading '\ufeff': an invisible extra
    # character in the vocabulary and in the training text.
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + "Olá\n".encode("utf-8"))
    for encoding in ("utf-8", "UTF8", "utf_8"):
        text = datasets.load_text(str(path), encoding=encoding)
        assert text == "Olá\n"
        assert "\ufeff" not in datasets.char_vocabulary(text)
    with pytest.raises(ValueError, match="codec name"):
        datasets.load_text(str(path), encoding="utf-9")


def test_text_datasets_split_and_errors():
    text = datasets.load_text("tiny_shakespeare")[:10_000]
    train, val = datasets.text_datasets(text, sequence_length=64,
                                        batch_size=10, shuffle=False)
    x, y = next(iter(val))
    vocab = datasets.char_vocabulary(text)
    assert "".join(vocab[i] for i in np.asarray(x)[0]) == text[9000:9064]
    # stride=1 trains on every window; validation windows never overlap
    # (before, they took the stride too: 64 times the validation steps)
    train, val = datasets.text_datasets(text, sequence_length=64,
                                        batch_size=10, stride=1,
                                        shuffle=False)
    assert int(train.cardinality()) == -(-(9000 - 64) // 10)
    assert int(val.cardinality()) == -(-((1000 - 1) // 64) // 10)
    starts = [np.asarray(x)[:, 0] for x, _ in val]
    np.testing.assert_array_equal(
        np.concatenate(starts)[:3],
        [vocab.index(text[9000 + k]) for k in (0, 64, 128)])
    with pytest.raises(ValueError, match="fewer than one window"):
        datasets.text_datasets("short text", sequence_length=64)
    # a validation part too short names the split too
    with pytest.raises(ValueError, match="validation text has 4 .*"
                       "`validation_split=0`"):
        datasets.text_datasets("abcd" * 10, sequence_length=8)
    with pytest.raises(ValueError, match="non-empty string"):
        datasets.text_datasets("")
    with pytest.raises(ValueError, match="missing from the vocabulary"):
        datasets.text_datasets("abcabcabc", sequence_length=2,
                               vocabulary=["a", "b"])


def test_folder_of_mnist_idx_files(tmp_path):
    import shutil

    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(datasets.embedded_path(name),
                    tmp_path / name.replace("t10k", "train"))
    train, val = datasets.load_images(str(tmp_path), batch_size=1000)
    assert sum(len(b[0]) for b in train) == 9000
    images, labels = next(iter(val))
    assert tuple(images.shape[1:]) == (28, 28, 1)
    with pytest.raises(FileNotFoundError, match="t10k-images"):
        datasets.load_mnist_idx(str(tmp_path), split="t10k")


def test_text_datasets_run_without_the_autotune_thread():
    """Deleting an iterator of an autotuned pipeline can wait up to a
    minute for tf.data's autotuning thread (benchmarks/tf_data_teardown.py):
    the text datasets switch autotuning off, and still yield batches."""
    from keras_genzoo.datasets import text_datasets

    train_ds, val_ds = text_datasets("abcdefgh" * 50, sequence_length=8,
                                     batch_size=4)
    for ds in (train_ds, val_ds):
        assert ds.options().autotune.enabled is False
        x, y = next(iter(ds))
        assert tuple(x.shape) == (4, 8)


def test_tensorflow_is_kept_off_the_gpus_unless_it_is_the_backend(
        monkeypatch):
    # On JAX and PyTorch, TensorFlow only feeds data: its GPUs are hidden
    # before its first pipeline, so that it cannot take the GPU memory the
    # backend trains with (e.g. JAX beside TensorFlow on a Colab GPU).
    import keras
    import tensorflow as tf

    calls = []
    monkeypatch.setattr(tf.config, "set_visible_devices",
                        lambda devices, kind: calls.append((devices, kind)))
    monkeypatch.setattr(datasets, "_tensorflow_placed", False)
    datasets.load_images("embedded_mnist", batch_size=8, limit=16)
    datasets.text_datasets("abcdefgh" * 10, sequence_length=4, batch_size=2)
    if keras.backend.backend() == "tensorflow":
        assert calls == []
    else:
        assert calls == [([], "GPU")]  # once, before the first pipeline

    def too_late(devices, kind):
        raise RuntimeError("Visible devices cannot be modified after being "
                           "initialized")

    monkeypatch.setattr(tf.config, "set_visible_devices", too_late)
    monkeypatch.setattr(datasets, "_tensorflow_placed", False)
    train, _ = datasets.load_images("embedded_mnist", batch_size=8, limit=16)
    assert tuple(next(iter(train))[0].shape) == (8, 28, 28, 1)


def test_arguments_a_source_cannot_use_and_odd_ones_are_refused(
        tmp_path, monkeypatch):
    """`image_size`/`color_mode` were ignored for the embedded, tfds and
    idx sources (28x28 grey images came out of `image_size=(32, 32),
    color_mode="rgb"`); a string seed was a TypeError, a NaN limit a
    conversion error, 2.5 images cut to 2; `seed=None` on a folder was
    Keras' error about a missing seed."""
    for kwargs in (dict(image_size=(32, 32)), dict(color_mode="rgb")):
        with pytest.raises(ValueError, match="only a folder of image files"):
            datasets.load_images("embedded_mnist", limit=8, **kwargs)
    for kwargs, words in ((dict(seed="a"), "`seed` must be an integer"),
                          (dict(limit=float("nan")), "`limit` must be"),
                          (dict(limit=2.5), "`limit` must be"),
                          (dict(limit="3"), "`limit` must be"),
                          (dict(limit=0), "`limit` must be")):
        with pytest.raises(ValueError, match=words):
            datasets.load_images("embedded_mnist", **kwargs)
    with pytest.raises(ValueError, match="Unknown text"):
        datasets.load_text(["a"])  # (was "unhashable type")
    _write_images(tmp_path, 20, (8, 8), "L")
    for shuffle in (True, False):
        train, val = datasets.load_images(str(tmp_path), seed=None,
                                          shuffle=shuffle, batch_size=4)
        assert sum(len(b) for b in train) == 18
        assert sum(len(b) for b in val) == 2
    # under a distribution over 2 devices, a validation part of one image
    # was "1 image(s) ...: use more images", as if it were the data
    from keras_genzoo import backend as zoo_backend

    monkeypatch.setattr(zoo_backend, "batch_devices", lambda *a: 2)
    with pytest.raises(ValueError, match="1 validation image.*"
                       "validation_split=0"):
        datasets.load_images("embedded_mnist", limit=7, batch_size=4)
    with pytest.raises(ValueError, match="1 validation image"):
        datasets.load_images(str(tmp_path), limit=7, batch_size=4)
    with pytest.raises(ValueError, match="1 validation image"):
        datasets.arrays_to_datasets(np.zeros((8, 8, 8, 1), "uint8"),
                                    batch_size=4)
