"""One batch parser and one pixel scaler, and the first batch of a dataset
read once however often `fit` is called."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_genzoo import _inputs
from keras_genzoo import VAE


@pytest.mark.parametrize("batch, has_labels", [
    ("images", False),
    (("images",), False),
    (("images", "labels"), True),
    ({"image": "images"}, False),
    ({"image": "images", "label": "labels"}, True),
    (({"image": "images", "label": "labels"},), True),
    (({"image": "images"}, "labels"), True),
])
def test_split_batch_knows_every_structure(batch, has_labels):
    images, labels = _inputs.split_batch(batch)
    assert images == "images"
    assert (labels == "labels") if has_labels else labels is None


def test_image_shape_of_shapes_and_structures():
    assert _inputs.image_shape_of((None, 28, 28, 1)) == (28, 28, 1)
    assert _inputs.image_shape_of(
        {"image": (None, 8, 8, 3), "label": (None,)}) == (8, 8, 3)
    assert _inputs.image_shape_of(((None, 8, 8, 3), (None,))) == (8, 8, 3)


def test_scale_pixels_numpy_and_tensors():
    uint8 = np.array([[0, 255]], "uint8")
    np.testing.assert_allclose(_inputs.scale_pixels(uint8), [[0.0, 1.0]])
    np.testing.assert_allclose(_inputs.scale_pixels(uint8, signed=True),
                               [[-1.0, 1.0]])
    tensor = keras.ops.convert_to_tensor(uint8)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(_inputs.scale_pixels(tensor, True)),
        [[-1.0, 1.0]])
    floats = keras.ops.convert_to_tensor(np.array([[0.25]], "float32"))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(_inputs.scale_pixels(floats)), [[0.25]])
    np.testing.assert_allclose(_inputs.unsigned_pixels([[-1.0, 0.0, 3.0]]),
                               [[0.0, 0.5, 1.0]])


class CountingBatches(keras.utils.PyDataset):
    def __init__(self, images):
        super().__init__()
        self.images = images
        self.reads = 0

    def __len__(self):
        return 2

    def __getitem__(self, i):
        self.reads += 1
        return self.images[i * 16:(i + 1) * 16]


def test_first_batch_is_read_once_per_dataset(mnist):
    data = CountingBatches(mnist[0][:32])
    for _ in range(3):
        _inputs.prepare_images_for_fit(data)
        assert _inputs.has_labels(data) is False
    assert data.reads == 1
    # a model built for another shape still gets its clear error
    with pytest.raises(ValueError, match="resize the images"):
        _inputs.prepare_images_for_fit(data, expected_shape=(8, 8, 1))
    assert data.reads == 1


def test_fit_twice_on_a_shuffled_dataset_reads_its_first_batch_once(mnist):
    reads = []

    def count(images):
        reads.append(1)
        return images

    ds = tf.data.Dataset.from_tensor_slices(mnist[0][:64]).batch(32).map(
        lambda x: tf.numpy_function(count, [x], tf.uint8, stateful=True))
    ds = ds.map(lambda x: tf.ensure_shape(x, (None, 28, 28, 1)))
    vae = VAE(latent_dim=2, filters=(4,))
    vae.fit(ds, epochs=1, verbose=0)
    first = len(reads)
    vae.fit(ds, epochs=1, verbose=0)
    assert len(reads) - first == 2  # the two training batches, no peek
