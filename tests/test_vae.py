import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_genzoo import VAE, Sampling


def tiny_vae(**kwargs):
    kwargs.setdefault("latent_dim", 4)
    kwargs.setdefault("filters", (8, 16))
    kwargs.setdefault("seed", 0)
    return VAE(**kwargs)


def test_fit_on_real_mnist_lowers_the_loss_and_logs_both_terms(mnist):
    images, _ = mnist
    vae = tiny_vae()
    history = vae.fit(images, epochs=5, batch_size=32, verbose=0).history
    for key in ("loss", "reconstruction_loss", "kl_loss"):
        assert key in history and np.all(np.isfinite(history[key]))
    assert history["loss"][-1] < 0.8 * history["loss"][0]
    # loss = reconstruction + beta * KL (each a per-image mean)
    np.testing.assert_allclose(
        history["loss"][-1],
        history["reconstruction_loss"][-1] + history["kl_loss"][-1],
        rtol=1e-4,
    )
    assert vae.image_shape == (28, 28, 1)
    assert int(keras.ops.convert_to_numpy(vae.optimizer.iterations)) == 5 * 16


class _Batches(keras.utils.PyDataset):
    def __init__(self, images, batch_size):
        super().__init__()
        self.images, self.batch_size = images, batch_size

    def __len__(self):
        return len(self.images) // self.batch_size

    def __getitem__(self, i):
        return self.images[i * self.batch_size:(i + 1) * self.batch_size]


def _formats(images, labels):
    floats = images.astype("float32") / 255.0
    return {
        "numpy_uint8": (images, {}),
        "numpy_float": (floats, {}),
        "numpy_without_channel_axis": (images[..., 0], {}),
        "numpy_with_labels": (images, {"y": labels}),
        "numpy_dict": ({"image": images, "label": labels}, {}),
        "tf_data_images": (tf.data.Dataset.from_tensor_slices(images).batch(32), {}),
        "tf_data_tuples": (
            tf.data.Dataset.from_tensor_slices((floats, labels)).batch(32), {}),
        "tf_data_tfds_dicts": (
            tf.data.Dataset.from_tensor_slices(
                {"image": images, "label": labels}).batch(32), {}),
        "py_dataset": (_Batches(images, 32), {}),
    }


@pytest.mark.parametrize("fmt", list(_formats(np.zeros((1, 1, 1, 1)), None)))
def test_fit_accepts_what_users_have(mnist, fmt):
    images, labels = mnist[0][:64], mnist[1][:64]
    data, kwargs = _formats(images, labels)[fmt]
    vae = tiny_vae()
    history = vae.fit(data, epochs=1, batch_size=32, verbose=0, **kwargs)
    assert np.isfinite(history.history["loss"][0])
    assert vae.image_shape == (28, 28, 1)


@pytest.mark.parametrize("shape", [(8, 8, 1), (32, 32, 3), (30, 22, 1)])
def test_any_image_shape(shape):
    images = np.random.rand(48, *shape).astype("float32")
    vae = tiny_vae()
    vae.fit(images, epochs=1, batch_size=16, verbose=0)
    assert vae.image_shape == shape
    assert vae.generate(3, seed=0).shape == (3,) + shape
    assert vae.reconstruct(images[:2]).shape == (2,) + shape


def test_calling_on_images_and_labels_builds_from_the_images(mnist):
    vae = tiny_vae()
    out = vae((mnist[0][:4], mnist[1][:4]))
    assert vae.image_shape == (28, 28, 1)
    assert tuple(out["reconstruction"].shape) == (4, 28, 28, 1)
    assert tuple(out["z_mean"].shape) == (4, 4)


@pytest.mark.parametrize("num_classes", [None, 3])
def test_build_builds_every_layer_the_step_calls(num_classes):
    """`build` builds the sampling layer too: a conditional VAE's first
    call in `fit` is symbolic without it, so on PyTorch it was built inside
    the compiled step (a graph break at each layer built there)."""
    model = VAE(latent_dim=2, filters=(4,), image_shape=(8, 8, 1),
                num_classes=num_classes)
    model.build()
    assert model.sampling.built


def test_generate_shape_range_and_seed(mnist):
    vae = tiny_vae()
    vae.fit(mnist[0][:128], epochs=1, batch_size=64, verbose=0)
    a = vae.generate(6, seed=3)
    assert a.shape == (6, 28, 28, 1) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, vae.generate(6, seed=3))
    assert not np.allclose(a, vae.generate(6, seed=4))
    # without a seed the model's own generator advances
    assert not np.allclose(vae.generate(6), vae.generate(6))


def test_encode_decode_reconstruct_interpolate(mnist):
    images = mnist[0][:64]
    vae = tiny_vae(latent_dim=3)
    vae.fit(images, epochs=1, batch_size=32, verbose=0)
    z = vae.encode(images[:5])
    assert z.shape == (5, 3)
    np.testing.assert_allclose(vae.encode(images[0]), z[:1], atol=1e-5)
    assert vae.decode(z).shape == (5, 28, 28, 1)
    recon = vae.reconstruct(images[:5])
    assert recon.shape == (5, 28, 28, 1)
    assert 0.0 <= recon.min() and recon.max() <= 1.0
    path = vae.interpolate(images[0], images[1], steps=7)
    assert path.shape == (7, 28, 28, 1)
    np.testing.assert_allclose(path[0], vae.reconstruct(images[0])[0], atol=1e-5)
    np.testing.assert_allclose(path[-1], vae.reconstruct(images[1])[0], atol=1e-5)
    with pytest.raises(ValueError, match="one image at each end"):
        vae.interpolate(images[:2], images[2])
    with pytest.raises(ValueError, match=r"\(num_codes, 3\)"):
        vae.decode(np.zeros((2, 5)))


def test_save_and_load_round_trip(mnist, tmp_path):
    images = mnist[0][:128]
    vae = tiny_vae(beta=0.5)
    vae.fit(images, epochs=1, batch_size=64, verbose=0)
    path = os.path.join(tmp_path, "vae.keras")
    vae.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded, VAE)
    assert (loaded.latent_dim, loaded.beta, loaded.filters) == (4, 0.5, (8, 16))
    assert loaded.image_shape == (28, 28, 1)
    z = np.random.RandomState(0).randn(8, 4).astype("float32")
    np.testing.assert_array_equal(loaded.decode(z), vae.decode(z))
    np.testing.assert_array_equal(loaded.generate(4, seed=1), vae.generate(4, seed=1))
    np.testing.assert_array_equal(loaded.encode(images[:4]), vae.encode(images[:4]))
    # optimizer state came along and training continues from it
    steps = int(keras.ops.convert_to_numpy(loaded.optimizer.iterations))
    assert steps == 2
    loaded.fit(images, epochs=1, batch_size=64, verbose=0)
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == 4


def test_file_without_build_config_loads_its_weights(tmp_path, monkeypatch):
    # keras_genzoo 0.1.0 built models given `image_shape=` in __init__, so
    # their files hold no build config: loading must still build them and
    # read their weights (Keras would skip them silently).
    vae = VAE(latent_dim=2, filters=(4,), image_shape=(8, 8, 1), seed=0)
    vae.ensure_built("test")
    path = os.path.join(tmp_path, "old.keras")
    with monkeypatch.context() as patch:
        patch.setattr(VAE, "get_build_config", lambda self: None)
        vae.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    z = np.ones((3, 2), "float32")
    np.testing.assert_array_equal(loaded.decode(z), vae.decode(z))


def test_file_with_a_compiled_loss_loads_without_it(tmp_path,
                                                    monkeypatch):
    # before `compile` refused a loss, a VAE took `loss=` (and ignored
    # it), so files may hold one: they load, with a warning, the loss
    # dropped
    vae = VAE(latent_dim=2, filters=(4,), image_shape=(8, 8, 1), seed=0)
    with monkeypatch.context() as patch:
        patch.setattr(VAE, "takes_compile_loss", True)
        vae.compile(optimizer="adam", loss="mse")
    vae.fit(np.zeros((4, 8, 8, 1), "float32"), epochs=1, verbose=0)
    path = os.path.join(tmp_path, "old.keras")
    vae.save(path)
    with pytest.warns(UserWarning, match="holds \\['loss'\\].*dropped"):
        loaded = keras.models.load_model(path, safe_mode=True)
    z = np.ones((3, 2), "float32")
    np.testing.assert_array_equal(loaded.decode(z), vae.decode(z))
    loaded.fit(np.zeros((4, 8, 8, 1), "float32"), epochs=1, verbose=0)


def test_config_round_trip_without_training():
    vae = VAE(latent_dim=5, beta=2.0, filters=(4, 8), image_shape=(16, 16, 3))
    clone = VAE.from_config(vae.get_config())
    assert clone.get_config() == vae.get_config()
    assert clone.generate(2, seed=0).shape == (2, 16, 16, 3)


def test_compile_with_own_optimizer_is_kept(mnist):
    vae = tiny_vae()
    vae.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-3))
    vae.fit(mnist[0][:64], epochs=1, batch_size=32, verbose=0)
    assert isinstance(vae.optimizer, keras.optimizers.SGD)


def test_default_optimizer_is_adam(mnist):
    vae = tiny_vae()
    vae.fit(mnist[0][:64], epochs=1, batch_size=32, verbose=0)
    assert isinstance(vae.optimizer, keras.optimizers.Adam)


def test_beta_weights_the_kl_term(mnist):
    images = mnist[0][:64]
    logs = {}
    for beta in (0.0, 1.0):
        keras.utils.set_random_seed(0)
        vae = tiny_vae(beta=beta)
        logs[beta] = vae.evaluate(images, batch_size=64, verbose=0,
                                  return_dict=True)
    for beta, log in logs.items():
        np.testing.assert_allclose(
            log["loss"], log["reconstruction_loss"] + beta * log["kl_loss"],
            rtol=1e-4)


def test_unbuilt_model_says_how_to_build():
    with pytest.raises(ValueError, match="call `fit` first"):
        VAE().generate(2)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"latent_dim": 0}, "latent_dim"), ({"beta": -1}, "beta"),
     ({"filters": ()}, "filters"), ({"image_shape": (28, 28)}, "image_shape")],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VAE(**kwargs)


def test_sampling_layer_is_reparameterised_and_serializable():
    mean = np.full((2000, 2), 3.0, "float32")
    log_var = np.full((2000, 2), np.log(4.0), "float32")
    layer = Sampling(seed=1)
    z = keras.ops.convert_to_numpy(layer([mean, log_var]))
    assert abs(z.mean() - 3.0) < 0.15 and abs(z.std() - 2.0) < 0.15
    clone = Sampling.from_config(layer.get_config())
    assert clone.seed == 1


def test_fit_accepts_a_torch_dataloader(mnist):
    torch = pytest.importorskip("torch")
    images, labels = mnist[0][:64], mnist[1][:64]
    dataset = torch.utils.data.TensorDataset(
        torch.from_numpy(images), torch.from_numpy(labels.astype("int64")))
    loader = torch.utils.data.DataLoader(dataset, batch_size=32)
    vae = tiny_vae()
    history = vae.fit(loader, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert vae.image_shape == (28, 28, 1)


def test_a_conditional_vae_takes_a_torch_dataloader_of_tfds_dicts(mnist):
    """(On TensorFlow and JAX, Keras' DataLoader adapter made each dict the
    tuple of its keys: "must contain ... <class 'str'>".) Generators of
    such dicts go to `predict` too (Keras: "must return a tuple")."""
    torch = pytest.importorskip("torch")
    images, labels = mnist[0][:64], mnist[1][:64].astype("int64")

    class Dicts(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return {"image": torch.from_numpy(images[i]),
                    "label": torch.tensor(labels[i])}

    loader = torch.utils.data.DataLoader(Dicts(), batch_size=32)
    vae = VAE(latent_dim=2, filters=(4,), num_classes=10, seed=0)
    history = vae.fit(loader, validation_data=loader, epochs=1, verbose=0)
    assert np.isfinite(history.history["val_loss"]).all()
    dicts = ({"image": images[i:i + 32], "label": labels[i:i + 32]}
             for i in (0, 32))
    assert vae.predict(dicts, verbose=0)["reconstruction"].shape == (
        64, 28, 28, 1)
    # and the loader itself (its dicts whole, as the model's inputs)
    np.testing.assert_allclose(
        vae.predict(loader, verbose=0)["z_mean"],
        vae.predict([images, labels], verbose=0)["z_mean"], atol=1e-5)


@pytest.mark.parametrize("sized", [True, False])
def test_fit_accepts_a_torch_dataloader_of_bare_images(mnist, sized):
    """Batches without labels, for training and validation: on TensorFlow
    and JAX Keras' own DataLoader adapter would split each batch into its
    single images."""
    torch = pytest.importorskip("torch")
    images = torch.from_numpy(mnist[0][:64])

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return images[i]

    class Stream(torch.utils.data.IterableDataset):  # no length
        def __iter__(self):
            return iter(images.split(32))

    loader = (torch.utils.data.DataLoader(Images(), batch_size=32) if sized
              else torch.utils.data.DataLoader(Stream(), batch_size=None))
    vae = tiny_vae()
    history = vae.fit(loader, validation_data=loader, epochs=2,
                      verbose=0).history
    assert np.isfinite(history["loss"]).all()
    assert np.isfinite(history["val_loss"]).all()
    steps = int(keras.ops.convert_to_numpy(vae.optimizer.iterations))
    # (on TensorFlow Keras makes 6 steps of a loader without a length, a
    # plain keras.Sequential as well)
    assert steps == 4 if sized else steps >= 4
    # the same batches as the arrays give (the KL term does not sample)
    np.testing.assert_allclose(
        vae.evaluate(loader, verbose=0, return_dict=True)["kl_loss"],
        vae.evaluate(mnist[0][:64], batch_size=32, verbose=0,
                     return_dict=True)["kl_loss"], rtol=1e-5)
    # and `predict` (on TensorFlow Keras' adapter failed: "'TensorSpec'
    # object is not iterable"; on JAX it split each batch into images)
    np.testing.assert_allclose(
        vae.predict(loader, verbose=0)["z_mean"],
        vae.predict(mnist[0][:64], verbose=0)["z_mean"], atol=1e-5)


@pytest.mark.parametrize("cls", ["AutoEncoder", "VAE"])
def test_codes_are_float32_under_mixed_bfloat16(mnist, cls):
    """`encode` gives float32 codes whatever the policy, and `decode` takes
    bfloat16 codes (numpy's ml_dtypes, torch tensors) too."""
    import keras_genzoo

    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = getattr(keras_genzoo, cls)(latent_dim=2, filters=(4,),
                                           seed=0)
        model.build((None, 28, 28, 1))
    finally:
        keras.config.set_dtype_policy("float32")
    images = mnist[0][:4]
    codes = model.encode(images)
    assert codes.dtype == np.float32 and codes.shape == (4, 2)
    reconstructions = model.reconstruct(images)
    assert reconstructions.dtype == np.float32
    np.testing.assert_array_equal(model.decode(codes), reconstructions)
    half = keras.ops.convert_to_numpy(keras.ops.cast(codes, "bfloat16"))
    assert model.decode(half).dtype == np.float32
    try:
        import torch
    except ImportError:
        return
    tensor = torch.from_numpy(codes).to(torch.bfloat16)
    np.testing.assert_array_equal(model.decode(tensor), model.decode(half))


@pytest.mark.parametrize("model_policy, global_policy", [
    ("float32", "mixed_bfloat16"), ("mixed_bfloat16", "float32")])
def test_every_layer_follows_the_models_dtype(model_policy, global_policy):
    # the Sampling layer took the global policy: a float32 VAE made under
    # a mixed global policy drew its codes in bfloat16
    keras.config.set_dtype_policy(global_policy)
    try:
        vae = VAE(latent_dim=2, filters=(4,), seed=0, num_classes=2,
                  dtype=model_policy)
        vae.build((None, 8, 8, 1))
    finally:
        keras.config.set_dtype_policy("float32")
    # (the decoder's last layer, `pixels`, is float32 by design)
    policies = {layer.dtype_policy.name
                for layer in vae._flatten_layers(include_self=False)
                if layer.name != "pixels"}
    assert policies == {model_policy}, policies
    assert vae.sampling.dtype_policy.name == model_policy


@pytest.mark.skipif(keras.backend.backend() == "torch",
                    reason="Keras 3.15's torch export fails for any "
                           "subclassed model (torch.export dynamic_shapes)")
def test_a_loaded_model_exports(tmp_path):
    # the loaded model was built without recording its input shape, so
    # Keras' export said "never called" even after a call
    images = np.random.default_rng(0).random((16, 8, 8, 1), "float32")
    vae = VAE(latent_dim=2, filters=(4,), seed=0)
    vae.fit(images, epochs=1, verbose=0)
    vae.save(tmp_path / "vae.keras")
    loaded = keras.models.load_model(tmp_path / "vae.keras")
    expected = [keras.ops.convert_to_numpy(t)
                for t in keras.tree.flatten(loaded(images[:2]))]
    loaded.export(str(tmp_path / "export"), verbose=False)
    restored = tf.saved_model.load(str(tmp_path / "export"))
    served = restored.serve(tf.constant(images[:2]))
    assert [t.shape for t in tf.nest.flatten(served)] == [
        e.shape for e in expected]


def test_target_images_are_refused_by_an_unconditional_vae():
    """A VAE reconstructs its input: target images as `y` are refused
    (before, ignored in silence); labels still pass."""
    rng = np.random.default_rng(0)
    images = rng.random((16, 8, 8, 1)).astype("float32")
    vae = VAE(latent_dim=2, filters=(4,), image_shape=(8, 8, 1), seed=0)
    targets = 1.0 - images
    with pytest.raises(ValueError, match="VAE reconstructs its input"):
        vae.fit(images, targets, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="VAE reconstructs its input"):
        vae.test_on_batch(images, targets)
    vae.fit(images, np.arange(16) % 3, epochs=1, verbose=0)
    vae.fit(images, images, epochs=1, verbose=0)  # the inputs: accepted
    conditional = VAE(latent_dim=2, filters=(4,), num_classes=3,
                      image_shape=(8, 8, 1), seed=0)
    with pytest.raises(ValueError, match="one per sample"):
        conditional.fit(images, images, epochs=1, verbose=0)
    conditional.fit(images, np.arange(16) % 3, epochs=1, verbose=0)


@pytest.mark.parametrize("name", ["VAE", "GAN"])
def test_a_model_saved_before_any_use_loads(name, tmp_path):
    """`image_shape=` given and saved at once: before, Keras could not load
    the file ("expected 2 variables, but received 0")."""
    import keras_genzoo

    cls = getattr(keras_genzoo, name)
    kwargs = (dict(latent_dim=2, filters=(4,)) if name == "VAE" else
              dict(latent_dim=4, generator_filters=(4,),
                   discriminator_filters=(4,)))
    model = cls(image_shape=(8, 8, 1), seed=0, **kwargs)
    path = str(tmp_path / "new.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.generate(2, seed=1),
                               model.generate(2, seed=1), atol=1e-6)
    # and its weights load into a new model of the same arguments (Keras
    # said "not yet built")
    weights = str(tmp_path / "new.weights.h5")
    model.save_weights(weights)
    fresh = cls(image_shape=(8, 8, 1), seed=5, **kwargs)
    fresh.load_weights(weights)
    np.testing.assert_allclose(fresh.generate(2, seed=1),
                               model.generate(2, seed=1), atol=1e-6)


def test_weights_of_a_model_that_never_trained_load_without_warnings(
        tmp_path):
    # a compiled model's optimizer is built before loading (to take the
    # file's state), except where the file holds an optimizer not built
    # either: Keras then warned of the mismatch
    import warnings

    model = VAE(latent_dim=2, filters=(4,), image_shape=(8, 8, 1))
    model.build()
    model.compile()
    for name in ("never.weights.h5", "never.keras"):
        (model.save_weights if name.endswith(".h5") else model.save)(
            tmp_path / name)
        fresh = VAE(latent_dim=2, filters=(4,), image_shape=(8, 8, 1))
        fresh.compile()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fresh.load_weights(tmp_path / name)
        assert not fresh.optimizer.built


@pytest.mark.parametrize("dtype", ["float32", "mixed_float16"])
def test_load_weights_into_a_model_not_compiled_keeps_the_optimizer(
        tmp_path, dtype):
    # a fresh model that loads a training checkpoint and then trains on:
    # `fit` compiled it after the load, the file's optimizer state was
    # dropped without a word, and the step count restarted at 0 (under
    # mixed_float16 still, until the count took the LossScaleOptimizer's
    # variables: its loss scale was lost too)
    images = np.random.default_rng(0).random((32, 8, 8, 1)).astype(
        "float32")

    def made():
        model = VAE(latent_dim=2, filters=(4,), seed=0, dtype=dtype)
        model.build((None, 8, 8, 1))
        return model

    trained = made()
    trained.fit(images, epochs=1, batch_size=16, verbose=0)
    path = str(tmp_path / "checkpoint.weights.h5")
    trained.save_weights(path)
    resumed = made()
    resumed.load_weights(path)
    assert int(keras.ops.convert_to_numpy(resumed.optimizer.iterations)) == 2
    assert isinstance(resumed.optimizer, keras.optimizers.LossScaleOptimizer
                      ) == (dtype == "mixed_float16")
    assert len(resumed.optimizer.variables) == len(
        trained.optimizer.variables)
    for saved, loaded in zip(trained.optimizer.variables,
                             resumed.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(saved),
                                      keras.ops.convert_to_numpy(loaded))


def test_weights_of_another_configuration_name_the_cause(tmp_path):
    # Keras said a layer "received 0 variables" (the file has them, of
    # other shapes), and nothing of a configuration
    images = np.random.default_rng(0).random((16, 8, 8, 1)).astype(
        "float32")
    model = VAE(latent_dim=2, filters=(4,), seed=0)
    model.fit(images, epochs=1, verbose=0)
    path = str(tmp_path / "model.weights.h5")
    model.save_weights(path)
    other = VAE(latent_dim=3, filters=(4,), seed=0)
    other.build((None, 8, 8, 1))
    with pytest.raises(ValueError, match="another configuration"):
        other.load_weights(path)


def test_a_beta_annealed_by_a_callback_is_one_beta_per_step(mnist):
    # TensorFlow and JAX keep the values a traced step read: a `beta` set
    # by a callback inside `fit` reaches their train step at the next call
    # only, and its validation must agree with it (it was made again each
    # epoch with the new `beta`: `val_loss` and `loss` of two settings);
    # PyTorch's eager step reads it at once, both of them
    images = mnist[0][:32]

    class Anneal(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.model.beta = float(epoch)

    vae = VAE(latent_dim=2, filters=(4,), beta=0.0, seed=0)
    logs = vae.fit(images, epochs=3, batch_size=16, verbose=0,
                   validation_data=(images[:16],),
                   callbacks=[Anneal()]).history
    eager = keras.backend.backend() == "torch"
    for epoch in range(3):
        beta = float(epoch) if eager else 0.0
        assert logs["val_loss"][epoch] == pytest.approx(
            logs["val_reconstruction_loss"][epoch]
            + beta * logs["val_kl_loss"][epoch], rel=1e-5)
    after = vae.evaluate(images[:16], verbose=0, return_dict=True)
    assert after["loss"] == pytest.approx(
        after["reconstruction_loss"] + 2.0 * after["kl_loss"], rel=1e-5)
    assert after["kl_loss"] > 1e-3


def test_int8_under_float16_names_the_way_that_works(tmp_path):
    """Keras refuses int8 quantization of float16 layers telling one to use
    "'mixed_bfloat16' or 'mixed_float16'" (the policy refused); the zoo's
    message gives the way that works, and that way quantizes the same
    weights (reconstructions close to the float16 model's)."""
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 1), "uint8")
    half = VAE(latent_dim=2, filters=(4,), image_shape=(8, 8, 1), seed=0,
               dtype="mixed_float16")
    half.build((None, 8, 8, 1))
    with pytest.raises(ValueError, match="mixed_bfloat16.*load_weights"):
        half.quantize("int8")
    path = os.path.join(tmp_path, "w.weights.h5")
    half.save_weights(path)
    other = VAE(latent_dim=2, filters=(4,), image_shape=(8, 8, 1), seed=0,
                dtype="mixed_bfloat16")
    other.build((None, 8, 8, 1))
    other.load_weights(path)
    other.quantize("int8")
    np.testing.assert_allclose(other.reconstruct(images),
                               half.reconstruct(images), atol=0.05)


def test_batches_of_images_and_none_on_every_backend(mnist):
    """`(images, None)` batches from a PyDataset or a generator train,
    validate, evaluate and predict on every backend (on TensorFlow Keras'
    adapters typed the None and then refused their own batches: "did not
    match the expected structure")."""
    images = mnist[0][:32]

    class WithNone(keras.utils.PyDataset):
        epochs_begun = 0

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return images[16 * i:16 * i + 16], None

        def on_epoch_begin(self):
            WithNone.epochs_begun += 1

    def generator():
        return ((images[i:i + 16], None) for i in (0, 16))

    vae = tiny_vae()
    history = vae.fit(WithNone(), validation_data=WithNone(), epochs=1,
                      verbose=0).history
    assert np.isfinite(history["loss"]).all()
    assert np.isfinite(history["val_loss"]).all()
    vae.fit(WithNone(), epochs=2, verbose=0)
    assert WithNone.epochs_begun >= 3  # its own hooks, passed through
    vae.fit(generator(), epochs=1, verbose=0)
    assert np.isfinite(vae.evaluate(WithNone(), verbose=0)).all()
    np.testing.assert_allclose(
        vae.predict(WithNone(), verbose=0)["z_mean"],
        vae.predict(images, verbose=0)["z_mean"], atol=1e-5)
    assert vae.predict(generator(), verbose=0)["z_mean"].shape == (32, 4)


def test_likelihoods_of_any_number_of_images(mnist):
    """`nll` pads its last chunk to one of a few sizes (each new number of
    images compiled the function again): the scores of the first images
    do not depend on how many were given."""
    vae = tiny_vae(image_shape=(28, 28, 1))
    images = mnist[0][:7]
    every = vae.nll(images, num_samples=4, seed=0, reduction="none")
    for count in (1, 3, 5):
        np.testing.assert_allclose(
            vae.nll(images[:count], num_samples=4, seed=0, reduction="none"),
            every[:count], rtol=1e-5)
