"""`.keras` files move between backends: saved here, loaded by the others.

Under the backend of this run, tests/crossbackend_worker.py trains a tiny
model of every family for one epoch and saves it; then the same script, run
in a subprocess under each of the other two backends, loads every file
(`keras.models.load_model`, safe mode) and must compute the same decoder and
generator outputs, seeded samples, greedy (and, where sampling is numpy's,
seeded) text, logits and mixture scores, hold the same optimizer state
(steps and moments, both of a GAN's), and train on from there. `make test`
runs this file under each backend, so every ordered pair of backends is
covered.
"""

import json
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crossbackend_worker as worker  # noqa: E402
from test_safe_loading import KERAS_FILES, _code_in  # noqa: E402

HERE = keras.backend.backend()
OTHERS = [b for b in ("tensorflow", "jax", "torch") if b != HERE]
# Float outputs: other kernels (convolutions, matmuls, reductions) round
# differently on each backend; measured differences are below 1e-5.
ATOL, RTOL = 1e-4, 1e-4


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Saves every family here, then loads them under the other backends."""
    directory = str(tmp_path_factory.mktemp("checkpoints"))
    worker.save(directory, worker.FAMILIES)
    env = dict(os.environ, PYTHONHASHSEED="0", TF_CPP_MIN_LOG_LEVEL="3")
    results = {}
    for other in OTHERS:
        out = os.path.join(directory, other)
        run = subprocess.run(
            [sys.executable, worker.__file__, "load", directory, out],
            env=dict(env, KERAS_BACKEND=other), capture_output=True,
            text=True, timeout=900)
        results[other] = (out, run)
    return directory, results


def _load(path):
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


@pytest.mark.slow
@pytest.mark.parametrize("other", OTHERS)
@pytest.mark.parametrize("family", worker.FAMILIES)
def test_checkpoint_loads_and_trains_on_other_backend(checkpoints, family,
                                                      other):
    directory, results = checkpoints
    out, run = results[other]
    assert run.returncode == 0, run.stderr[-4000:]
    saved = _load(os.path.join(directory, f"{family}.npz"))
    loaded = _load(os.path.join(out, f"{family}.npz"))
    assert sorted(loaded) == sorted(saved)

    # the same outputs
    for key, expected in saved.items():
        if key.startswith("opt/"):
            continue
        if expected.dtype.kind == "U":  # text: exactly the same characters
            assert str(loaded[key]) == str(expected), key
        else:
            np.testing.assert_allclose(loaded[key], expected, rtol=RTOL,
                                       atol=ATOL, err_msg=key)

    # the same optimizer state: steps and moments
    state = [key for key in saved if key.startswith("opt/")]
    if family != "gmm":
        assert state, "no optimizer state was saved"
    if family in ("gan", "conditional_gan", "wgan_gp"):
        assert {key.split("/")[1] for key in state} == {
            "d_optimizer", "g_optimizer"}
    for key in state:
        np.testing.assert_allclose(loaded[key], saved[key], rtol=1e-6,
                                   atol=1e-7, err_msg=key)

    # and it trains on from there
    with open(os.path.join(out, f"{family}.json")) as f:
        record = json.load(f)
    if family != "gmm":  # EM from the same start finds the same mixture
        assert record["weights_changed"]
    assert record["losses"] and np.isfinite(record["losses"]).all()
    for name, steps in record["steps"].items():
        saved_steps = int(saved[next(
            key for key in state
            if key.startswith(f"opt/{name}/")
            and key.rsplit("/", 1)[-1] in ("iteration", "iterations")
        )])
        assert steps > saved_steps > 0, name


@pytest.mark.slow
@pytest.mark.parametrize("family", worker.FAMILIES)
def test_saved_file_holds_no_code(checkpoints, family):
    """Every family's file: config, metadata and weights; no lambdas,
    functions or pickles (the loads above use `safe_mode=True`)."""
    directory, _ = checkpoints
    with zipfile.ZipFile(os.path.join(directory, f"{family}.keras")) as f:
        assert set(f.namelist()) == KERAS_FILES
        assert _code_in(json.loads(f.read("config.json"))) == []


def test_only_a_users_own_jit_compile_is_saved():
    """The per-backend default (XLA for MiniGPT on TensorFlow) stays out of
    the file, so that loading under PyTorch does not start torch.compile."""
    from keras_genzoo import VAE

    model = VAE(latent_dim=2, filters=(4,), seed=0)
    model.build((None, 28, 28, 1))
    model.compile()
    assert "jit_compile" not in model.get_compile_config()
    model.compile(jit_compile=False)
    assert model.get_compile_config()["jit_compile"] is False


def test_saved_optimizers_name_public_keras_classes():
    """On PyTorch Keras' optimizers serialize under their torch module
    (`keras.src.backend.torch.optimizers.torch_adam`); the zoo saves the
    public class, and reads files that name the torch one, so that the
    loading backend builds its own optimizer."""
    from keras_genzoo import GAN, VAE

    vae = VAE(latent_dim=2, filters=(4,), seed=0)
    vae.build((None, 28, 28, 1))
    vae.compile()
    assert vae.get_compile_config()["optimizer"]["module"] == (
        "keras.optimizers")
    gan = GAN(latent_dim=2, generator_filters=(4,),
              discriminator_filters=(4,), seed=0)
    gan.build((None, 28, 28, 1))
    gan.compile()
    config = gan.get_compile_config()
    assert {config[k]["module"] for k in ("d_optimizer", "g_optimizer")} == {
        "keras.optimizers"}

    torch_style = vae.get_compile_config()
    torch_style["optimizer"].update(
        module="keras.src.backend.torch.optimizers.torch_adam",
        registered_name="Adam")
    other = VAE(latent_dim=2, filters=(4,), seed=0)
    other.build((None, 28, 28, 1))
    other.compile_from_config(torch_style)
    assert type(other.optimizer) is type(vae.optimizer)
