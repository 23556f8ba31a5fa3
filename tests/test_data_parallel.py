"""Data parallel on one machine: two devices train like one.

JAX (`keras.distribution.DataParallel` over 2 virtual CPU devices) and
TensorFlow (`tf.distribute.MirroredStrategy` over 2 logical CPU devices):
tests/data_parallel_worker.py trains the VAE, GAN, WGAN-GP (custom steps)
and MiniGPT on one device and on two, with the same global batch, in a
process of its own (the device count is fixed when the framework starts).
The logs after every batch must agree to float tolerance, and so must every
variable at the end (weights, batch-norm statistics; seed-generator states
exactly). The run must have used two devices. On JAX, a MiniGPT sharded
with the layout map of docs/scaling.md (`ModelParallel`) must shard every
kernel and train like one device too.

PyTorch: Keras 3.15 has no data parallelism there. A `keras.distribution`
is accepted and ignored by `fit` (and on TensorFlow, whose
`keras.distribution` is a prototype): the zoo's models refuse it with a
`ValueError`, tested here on those two backends.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_genzoo import VAE
from keras_genzoo import backend as zoo_backend

BACKEND = keras.backend.backend()
WORKER = os.path.join(os.path.dirname(__file__), "data_parallel_worker.py")
FAMILIES = ["vae", "gan", "wgan_gp", "minigpt"]
# measured (see docs/scaling.md): relative differences of the logged losses
# up to ~3e-5, absolute differences of the weights up to ~2e-5
LOSS_RTOL, LOSS_ATOL = 1e-3, 1e-5
WEIGHT_RTOL, WEIGHT_ATOL = 1e-3, 1e-4
# The WGAN-GP's critic (gradient penalty, two critic steps per generator
# step) amplifies the replicas' float rounding more, by a factor that
# depends on the seed: on TensorFlow, 6.5e-4 for the worker's seeds, 1.7e-6
# and 2e-5 for two others (measured, 2 epochs; its logged losses 9.9e-4
# apart, relative). Duplicated or shifted noise, the bugs this test is for,
# moved a VAE's weights 1e-3.
FAMILY_WEIGHT_ATOL = {"wgan_gp": 2e-3}
FAMILY_LOSS_ATOL = {"wgan_gp": 1e-3}

needs_two_devices = pytest.mark.skipif(
    BACKEND == "torch",
    reason="Keras' torch backend has no data parallelism: see "
           "test_keras_distribution_is_refused_where_fit_ignores_it")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One worker process for the whole module: `(outdir, results)`."""
    outdir = str(tmp_path_factory.mktemp("data_parallel"))
    env = dict(os.environ, PYTHONHASHSEED="0", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, WORKER, outdir], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    with open(os.path.join(outdir, "results.json")) as f:
        return outdir, json.load(f)


def differences(outdir, results, family):
    """Largest relative loss and absolute variable differences (for the
    assertion messages and docs/scaling.md)."""
    run = results["families"][family]
    loss = max(abs(b[k] - a[k]) / max(abs(a[k]), 1e-8)
               for a, b in zip(run["one"], run["two"]) for k in a)
    one = np.load(os.path.join(outdir, f"{family}_one.npz"))
    two = np.load(os.path.join(outdir, f"{family}_two.npz"))
    weight = max(float(np.max(np.abs(one[k] - two[k]))) if one[k].size
                 else 0.0 for k in one.files)
    return loss, weight


def check_same_training(outdir, results, family, reference=None):
    run = results["families"][family]
    one, two = run["one"], run["two"]
    assert len(one) == len(two) > 0
    for step, (a, b) in enumerate(zip(one, two)):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_allclose(
                b[key], a[key], rtol=LOSS_RTOL,
                atol=FAMILY_LOSS_ATOL.get(family, LOSS_ATOL),
                err_msg=f"{family} step {step} {key}")
    one = np.load(os.path.join(outdir, f"{family}_one.npz"))
    two = np.load(os.path.join(outdir, f"{family}_two.npz"))
    assert sorted(one.files) == sorted(two.files)
    seeds = [k for k in one.files if "seed_generator_state" in k]
    assert seeds, one.files
    for key in one.files:
        if key in seeds:
            np.testing.assert_array_equal(two[key], one[key], err_msg=key)
        else:
            np.testing.assert_allclose(
                two[key], one[key], rtol=WEIGHT_RTOL,
                atol=FAMILY_WEIGHT_ATOL.get(family, WEIGHT_ATOL), err_msg=key)
    loss, variable = differences(outdir, results, family)
    print(f"{BACKEND} {family}: max relative loss difference {loss:.1e}, "
          f"max absolute variable difference {variable:.1e}, fit seconds "
          f"(one, two devices) {run['seconds']}")


@pytest.mark.slow
@needs_two_devices
@pytest.mark.parametrize("family", FAMILIES)
def test_two_devices_train_like_one(runs, family):
    outdir, results = runs
    check_same_training(outdir, results, family)


@pytest.mark.slow
@needs_two_devices
@pytest.mark.parametrize("family", FAMILIES)
def test_the_batch_was_split_over_two_devices(runs, family):
    evidence = runs[1]["families"][family]["evidence"]
    if BACKEND == "jax":
        # inside the compiled step: the global batch, split in two halves
        # over the two devices; every variable replicated on both
        assert len(evidence["devices"]) == 2
        assert evidence["batch_devices"] == 2
        batch = evidence["global_batch_in_step"]
        assert evidence["batch_shard_shape"][0] == batch // 2
        assert evidence["variable_devices"] == [2]
    else:
        # inside the step: 2 replicas, each with half of the global batch;
        # every variable mirrored, the two copies identical after training
        assert evidence["num_replicas_in_sync"] == 2
        assert evidence["replicas_in_step"] == 2
        assert evidence["per_replica_batch"] * 2 == evidence["global_batch"]
        assert evidence["global_batch"] == 32.0
        assert all("Mirrored" in kind
                   for kind in evidence["variable_kinds"]), evidence
        assert evidence["max_difference_between_copies"] == 0.0


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "jax", reason="ModelParallel runs on JAX")
def test_docs_layout_map_shards_every_minigpt_kernel(runs):
    outdir, results = runs
    evidence = results["families"]["minigpt_tp"]["evidence"]
    # both block types: CausalSelfAttentionBlock (trained) and keras-hub's
    # TransformerDecoder (built)
    for key, kernel in (("layouts", "qkv_kernel"),
                        ("hub_layouts", "self_attention/query/kernel")):
        layouts = evidence[key]
        assert any(path.endswith(kernel) for path in layouts), key
        for path, layout in layouts.items():
            if len(layout["shape"]) >= 2:  # kernels, embeddings, q/k/v biases
                assert layout["axes"] is not None, f"no layout for {path}"
                assert "model" in layout["axes"], path
                assert layout["devices"] == 2, path
                assert layout["shard_shape"] != layout["shape"], (
                    f"{path} is not split: {layout}")
    check_same_training(outdir, results, "minigpt_tp")


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution on JAX")
def test_uneven_batches_of_arrays_are_one_clear_error(runs):
    # before: JAX's IndivisibleError from inside Keras' first or last step
    said = runs[1]["uneven"]
    assert said.pop("fit, even") == "trained"
    assert "made before the keras.distribution" in said.pop(
        "fit, made before the distribution")
    assert "made before the keras.distribution" in said.pop(
        "fit, made on another device")
    # make_datasets drops the last partial batches under a distribution
    assert said.pop("make_datasets") == "trained"
    assert said.pop("image datasets") == "trained"
    assert "training text" in said["make_datasets, odd batch size"]
    for call, fix in (("fit, last batch of 1", "Drop the last 1 examples"),
                      ("fit, odd batch size", "multiple of 2"),
                      ("fit, validation_split", "validation_split"),
                      ("fit, validation_batch_size",
                       "validation_batch_size that is a multiple"),
                      ("fit, validation_data", "validation data"),
                      ("evaluate", "evaluation data"),
                      ("evaluate, fewer than a batch",
                       "Drop the last 1 examples (keep 6)"),
                      ("predict", "data to predict"),
                      ("make_datasets, odd batch size", "multiple of 2"),
                      ("make_datasets, odd batch size, one window",
                       "multiple of 2"),
                      ("image datasets, odd batch size", "multiple of 2"),
                      ("train_on_batch", "training batch"),
                      ("test_on_batch", "evaluation batch"),
                      ("predict_on_batch", "batch to predict")):
        assert "2 devices" in said[call] and fix in said[call], said[call]
        # a tf.data dataset is suggested only where one can be given
        one_batch = call.endswith("_on_batch") or call.startswith(
            ("make_datasets", "image datasets"))
        assert ("drop_remainder=True" in said[call]) != one_batch, said[call]


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "tensorflow",
                    reason="tf.distribute on TensorFlow")
def test_batches_the_replicas_cannot_run_are_one_clear_error(runs):
    # before: "Inputs to operation AddN ... must have the same size and
    # shape" from Keras' first step, or a shape error from a replica that
    # got no example
    said = runs[1]["uneven"]
    assert said.pop("predict") == said.pop("predict_on_batch") == "trained"
    assert said.pop("predict, not built") == said.pop(
        "predict_on_batch, not built") == "trained", said
    for call, fix in (("fit, odd batch size", "multiple of 2"),
                      ("fit, last batch of 1", "Drop the last 1 examples"),
                      # split 2 + 1 it trained to other weights than one
                      # device (each replica drew noise for an equal share)
                      ("fit, last batch of 3", "Drop the last 1 examples"),
                      ("predict, last batch of 1",
                       "Drop the last 1 examples"),
                      ("predict, one example", "at least 2 examples"),
                      ("train_on_batch", "multiple of the devices"),
                      ("make_datasets, odd batch size", "multiple of 2")):
        assert "2 replicas" in said[call] or "2 devices" in said[call], (
            said[call])
        assert fix in said[call], said[call]


def test_keras_distribution_is_refused_where_fit_ignores_it(mnist):
    """On TensorFlow and PyTorch a `keras.distribution` would be ignored:
    a zoo model says so; on JAX it is used."""
    devices = ["cpu:0", "cpu:1"] if BACKEND == "torch" else (
        keras.distribution.list_devices())
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices))
    try:
        if BACKEND == "jax":  # used: see the tests above
            assert zoo_backend.check_distribution() is None
            return
        vae = VAE(latent_dim=2, filters=(4,), seed=0)
        with pytest.raises(ValueError, match="jax backend only"):
            vae.fit(mnist[0][:8], epochs=1, batch_size=8, verbose=0)
        with pytest.raises(ValueError, match="Scaling page"):
            vae.evaluate(mnist[0][:8], verbose=0)
    finally:
        keras.distribution.set_distribution(None)
    vae.fit(mnist[0][:8], epochs=1, batch_size=8, verbose=0)


@pytest.mark.skipif(BACKEND == "jax",
                    reason="JAX distributes with keras.distribution")
def test_keras_fit_ignores_keras_distribution_here():
    """Why the zoo refuses it (a canary: if this fails, Keras distributes
    on this backend now, and `keras_genzoo.backend.check_distribution`
    should let it through)."""
    if BACKEND == "torch":
        # Keras' own error on torch is not a helpful one
        with pytest.raises(AttributeError):
            keras.distribution.list_devices()
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=["cpu:0", "cpu:1"]))
    try:
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile("sgd", "mse")
        model.fit(np.ones((8, 3)), np.ones((8, 2)), verbose=0)
        kernel = model.layers[0].kernel.value
    finally:
        keras.distribution.set_distribution(None)
    # a plain single-device tensor: neither sharded nor mirrored
    assert type(kernel).__name__ in ("ResourceVariable", "Parameter",
                                     "KerasVariable", "Tensor"), type(kernel)


@pytest.mark.slow
@needs_two_devices
def test_on_batch_calls_run_like_one_device(runs):
    # TensorFlow (Keras 3.15.1) gave each replica the whole batch of
    # `train_on_batch` and `test_on_batch` (two noisy copies: weights 3e-4
    # from one device's), and `predict_on_batch` returned twice the rows
    said = runs[1]["on_batch"]
    for call in ("train_on_batch", "test_on_batch"):
        one, two = said[call]
        assert two == pytest.approx(one, rel=1e-5, abs=1e-6), (call, said)
    assert said["weights"] < 1e-6, said
    assert said["predict_on_batch"] == [4, 4], said
    if BACKEND == "tensorflow":
        # built outside the scope: "colocate_vars_with must only be passed
        # a variable created in this tf.distribute.Strategy.scope()"
        assert said["built outside the scope"] == "trained", said
