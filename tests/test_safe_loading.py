"""Safe loading: what the zoo saves holds no code, and a `.keras` file that
smuggles a lambda into a zoo model is refused with `safe_mode` on."""

import json
import zipfile

import keras
import numpy as np
import pytest

from keras_genzoo import GAN, VAE, BigramLM, DiffusionModel, GaussianMixture

KERAS_FILES = {"config.json", "metadata.json", "model.weights.h5"}


def _code_in(config):
    """Names of serialized Python code (lambdas, functions, Lambda layers)
    anywhere in a config."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") in ("__lambda__", "Lambda",
                                          "function"):
                found.append(node["class_name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def _models(mnist):
    images = mnist[0][:32]
    vae = VAE(latent_dim=2, filters=(4,), seed=0)
    vae.fit(images, epochs=1, batch_size=32, verbose=0)
    vae.fit_latent_prior(images, n_components=2)
    gan = GAN(latent_dim=4, generator_filters=(4,),
              discriminator_filters=(4,), num_classes=10, seed=0)
    gan.fit(images, mnist[1][:32], epochs=1, batch_size=32, verbose=0)
    diffusion = DiffusionModel(widths=(4,), seed=0)
    diffusion.build((None, 28, 28, 1))
    text = "to be or not to be, that is the question. " * 4
    bigram = BigramLM.from_text(text, sequence_length=8, seed=0)
    gmm = GaussianMixture(2, seed=0).fit(np.random.default_rng(0).normal(
        size=(50, 3)))
    return {"vae": vae, "gan": gan, "diffusion": diffusion,
            "bigram": bigram, "gmm": gmm}


def test_saved_files_hold_no_code_and_load_safely(mnist, tmp_path):
    for name, model in _models(mnist).items():
        path = str(tmp_path / f"{name}.keras")
        model.save(path)
        with zipfile.ZipFile(path) as archive:
            assert set(archive.namelist()) == KERAS_FILES, name
            config = json.loads(archive.read("config.json"))
        assert _code_in(config) == [], name
        loaded = keras.models.load_model(path, safe_mode=True)
        assert type(loaded) is type(model)


def test_a_smuggled_lambda_is_refused(tmp_path):
    vae = VAE(latent_dim=2, filters=(4,), seed=0)
    vae.build((None, 28, 28, 1))
    path = str(tmp_path / "vae.keras")
    vae.save(path)
    # an encoder whose config carries Python bytecode
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Lambda(lambda t: t * 1.0)(inputs)
    x = keras.layers.Flatten()(x)
    evil = keras.Model(inputs, [keras.layers.Dense(2)(x),
                                keras.layers.Dense(2)(x)])
    crafted = str(tmp_path / "crafted.keras")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(
            crafted, "w") as target:
        for member in source.namelist():
            data = source.read(member)
            if member == "config.json":
                config = json.loads(data)
                config["config"]["encoder"] = (
                    keras.saving.serialize_keras_object(evil))
                assert _code_in(config)
                data = json.dumps(config)
            target.writestr(member, data)
    with pytest.raises(ValueError, match="(?i)lambda|safe_mode"):
        keras.models.load_model(crafted, safe_mode=True)
    with pytest.raises(ValueError, match="(?i)lambda|safe_mode"):
        keras.models.load_model(crafted)  # safe_mode is Keras' default
