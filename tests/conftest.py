import keras
import numpy as np
import pytest

from keras_genzoo import datasets


def pytest_report_header(config):
    return f"keras {keras.__version__}, KERAS_BACKEND={keras.backend.backend()}"


@pytest.fixture(scope="session")
def mnist():
    """A few hundred real MNIST digits (uint8, 28x28x1) and their labels."""
    images, labels = datasets.load_embedded_mnist()
    return images[:512], labels[:512]


@pytest.fixture(autouse=True)
def seeded():
    keras.utils.set_random_seed(0)


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))
