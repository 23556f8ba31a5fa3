"""GANs on every backend, with a test for each trap of alternating updates."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_genzoo import GAN, WGANGP


def _n(x):
    return keras.ops.convert_to_numpy(x)


def _iterations(optimizer):
    return int(_n(optimizer.iterations))


def tiny_gan(cls=GAN, **kwargs):
    kwargs.setdefault("latent_dim", 8)
    kwargs.setdefault("generator_filters", (16, 8))
    kwargs.setdefault("discriminator_filters", (8, 16))
    kwargs.setdefault("seed", 0)
    return cls(**kwargs)


def test_losses_finite_and_discriminator_accuracy_moves(mnist):
    images = mnist[0][:256]
    gan = tiny_gan()
    history = gan.fit(images, epochs=3, batch_size=32, verbose=0).history
    assert sorted(history) == ["d_accuracy", "d_loss", "g_loss"]
    for values in history.values():
        assert np.all(np.isfinite(values))
    # the discriminator's accuracy is a live signal, not a constant
    accuracy = history["d_accuracy"]
    assert max(accuracy) - min(accuracy) > 0.005
    assert all(0.0 <= a <= 1.0 for a in accuracy)


@pytest.mark.parametrize("d_steps", [1, 3])
def test_both_optimizers_advance_every_step(mnist, d_steps):
    # JAX trap: the trainer only carries `model.optimizer.variables`; a
    # second optimizer's state would silently reset (iterations stuck at 0).
    gan = tiny_gan(d_steps=d_steps)
    gan.fit(mnist[0][:128], epochs=2, batch_size=32, verbose=0)
    assert _iterations(gan.g_optimizer) == 8
    assert _iterations(gan.d_optimizer) == 8 * d_steps
    # Adam's moments are state too: they must be non-zero after training
    moments = [v for v in gan.d_optimizer.variables if "momentum" in v.path]
    assert moments and any(np.abs(_n(v)).sum() > 0 for v in moments)


def test_noise_seed_advances_every_step(mnist):
    # JAX trap: SeedGenerator state must be written back after each step,
    # or every step trains on the same noise.
    gan = tiny_gan()
    gan.fit(mnist[0][:32], epochs=1, batch_size=32, verbose=0)
    states = [_n(gan.seed_generator.state).copy()]
    for _ in range(2):
        gan.fit(mnist[0][:32], epochs=1, batch_size=32, verbose=0)
        states.append(_n(gan.seed_generator.state).copy())
    assert not np.array_equal(states[0], states[1])
    assert not np.array_equal(states[1], states[2])


def test_step_after_reload_equals_step_in_place(mnist, tmp_path):
    # torch trap: without zero_grad() the generator's backward pass leaves
    # gradients in the discriminator that the next step adds in. A model
    # reloaded between two steps starts with clean gradients, so its next
    # step must match the in-place model's exactly (and training continues
    # from the saved optimizer and seed state).
    images = mnist[0][:32]
    gan = tiny_gan(dropout=0.0)
    # SGD keeps updates linear in the gradients: float noise stays tiny,
    # a leftover gradient would not.
    gan.compile(d_optimizer=keras.optimizers.SGD(0.1),
                g_optimizer=keras.optimizers.SGD(0.1))
    gan.fit(images, epochs=1, batch_size=32, verbose=0)
    path = os.path.join(tmp_path, "gan.keras")
    gan.save(path)
    loaded = keras.models.load_model(path)
    gan.fit(images, epochs=1, batch_size=32, verbose=0, shuffle=False)
    loaded.fit(images, epochs=1, batch_size=32, verbose=0, shuffle=False)
    for a, b in zip(gan.discriminator.weights, loaded.discriminator.weights):
        np.testing.assert_allclose(_n(a), _n(b), rtol=1e-5, atol=1e-6)
    for a, b in zip(gan.generator.weights, loaded.generator.weights):
        np.testing.assert_allclose(_n(a), _n(b), rtol=1e-5, atol=1e-6)
    assert _iterations(loaded.d_optimizer) == 2
    assert _iterations(loaded.g_optimizer) == 2


def test_generate_shape_range_and_determinism(mnist):
    gan = tiny_gan()
    gan.fit(mnist[0][:64], epochs=1, batch_size=32, verbose=0)
    a = gan.generate(6, seed=5)
    assert a.shape == (6, 28, 28, 1) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(a, gan.generate(6, seed=5))
    assert not np.allclose(a, gan.generate(6, seed=6))
    assert not np.allclose(gan.generate(6), gan.generate(6))


def test_color_and_odd_shapes():
    images = np.random.rand(32, 20, 12, 3).astype("float32")
    gan = tiny_gan()
    gan.fit(images, epochs=1, batch_size=16, verbose=0)
    assert gan.image_shape == (20, 12, 3)
    assert gan.generate(3, seed=0).shape == (3, 20, 12, 3)


def test_save_load_round_trip_keeps_both_optimizers(mnist, tmp_path):
    gan = tiny_gan(label_smoothing=0.1, d_steps=2)
    gan.compile(d_optimizer=keras.optimizers.Adam(3e-4),
                g_optimizer=keras.optimizers.RMSprop(1e-4))
    gan.fit(mnist[0][:64], epochs=1, batch_size=32, verbose=0)
    path = os.path.join(tmp_path, "gan.keras")
    gan.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded, GAN)
    assert (loaded.d_steps, loaded.label_smoothing) == (2, 0.1)
    assert isinstance(loaded.g_optimizer, keras.optimizers.RMSprop)
    assert float(_n(loaded.d_optimizer.learning_rate)) == pytest.approx(3e-4)
    assert _iterations(loaded.d_optimizer) == 4
    assert _iterations(loaded.g_optimizer) == 2
    for a, b in zip(gan.g_optimizer.variables, loaded.g_optimizer.variables):
        np.testing.assert_array_equal(_n(a), _n(b))
    np.testing.assert_array_equal(loaded.generate(4, seed=3),
                                  gan.generate(4, seed=3))
    loaded.fit(mnist[0][:64], epochs=1, batch_size=32, verbose=0)
    assert _iterations(loaded.g_optimizer) == 4


def _label_formats(images, labels):
    return {
        "arrays": ((images, labels), {}),
        "tuples": ((tf.data.Dataset.from_tensor_slices(
            (images, labels)).batch(32),), {}),
        "tfds_dicts": ((tf.data.Dataset.from_tensor_slices(
            {"image": images, "label": labels}).batch(32),), {}),
    }


@pytest.mark.parametrize("fmt", ["arrays", "tuples", "tfds_dicts"])
def test_conditional_gan_takes_labels_as_they_come(mnist, fmt):
    args, kwargs = _label_formats(mnist[0][:64], mnist[1][:64])[fmt]
    gan = tiny_gan(num_classes=10)
    history = gan.fit(*args, epochs=1, batch_size=32, verbose=0, **kwargs)
    assert np.isfinite(history.history["g_loss"][0])


def test_conditional_generation_honours_labels(mnist):
    gan = tiny_gan(num_classes=10)
    gan.fit(mnist[0][:64], mnist[1][:64], epochs=1, batch_size=32, verbose=0)
    sevens = gan.generate(4, seed=1, labels=7)
    assert sevens.shape == (4, 28, 28, 1)
    np.testing.assert_array_equal(
        sevens, gan.generate(4, seed=1, labels=[7, 7, 7, 7]))
    # the label changes the image for the same noise
    threes = gan.generate(4, seed=1, labels=3)
    assert not np.allclose(sevens, threes)
    # per-label batches: each image depends only on its own label and noise
    mixed = gan.generate(4, seed=1, labels=[7, 3, 7, 3])
    np.testing.assert_allclose(mixed[0], sevens[0], atol=1e-6)
    np.testing.assert_allclose(mixed[1], threes[1], atol=1e-6)
    default = gan.generate(20, seed=1)
    assert default.shape == (20, 28, 28, 1)
    with pytest.raises(ValueError, match="0..9"):
        gan.generate(2, labels=[0, 10])
    with pytest.raises(ValueError, match="one per sample"):
        gan.generate(3, labels=[1, 2])


def test_conditional_gan_without_labels_says_so(mnist):
    gan = tiny_gan(num_classes=10)
    with pytest.raises(ValueError, match="conditional .* has no labels"):
        gan.fit(mnist[0][:32], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="only for conditional"):
        tiny_gan(image_shape=(8, 8, 1)).generate(2, labels=1)


def test_wgan_gp_penalty_is_nonzero_and_trains_the_critic(mnist):
    images = mnist[0][:128]
    wgan = tiny_gan(WGANGP, d_steps=2)
    history = wgan.fit(images, epochs=2, batch_size=32, verbose=0).history
    assert sorted(history) == ["d_loss", "g_loss", "gradient_penalty",
                               "wasserstein"]
    for values in history.values():
        assert np.all(np.isfinite(values))
    assert min(history["gradient_penalty"]) > 1e-4
    assert _iterations(wgan.d_optimizer) == 8 * 2
    assert _iterations(wgan.g_optimizer) == 8


def test_wgan_gp_penalty_is_differentiable(mnist):
    # Training the critic on the penalty alone must move it towards
    # unit-norm input gradients: only possible if the penalty's gradient
    # reaches the critic's weights (second-order gradients on every backend).
    wgan = tiny_gan(WGANGP, d_steps=1, gp_weight=1.0, image_shape=(28, 28, 1))
    real = keras.ops.convert_to_tensor(mnist[0][:32] / 127.5 - 1, "float32")
    fake = keras.ops.convert_to_tensor(
        wgan.generate(32, seed=0) * 2 - 1, "float32")
    before = float(_n(wgan.gradient_penalty(real, fake)))

    wgan.discriminator_objective = lambda real_, labels=None: (
        wgan.gradient_penalty(real, fake),
        {"d_loss": 0.0, "gradient_penalty": 0.0, "wasserstein": 0.0})
    wgan.compile(d_optimizer=keras.optimizers.Adam(1e-2),
                 g_optimizer=keras.optimizers.SGD(0.0))
    wgan.fit(mnist[0][:32], epochs=20, batch_size=32, verbose=0)
    after = float(_n(wgan.gradient_penalty(real, fake)))
    assert before > 1e-3
    assert after < 0.5 * before


def test_wgan_gp_save_load(mnist, tmp_path):
    wgan = tiny_gan(WGANGP, d_steps=2, gp_weight=5.0, num_classes=10)
    wgan.fit(mnist[0][:32], mnist[1][:32], epochs=1, batch_size=32,
             verbose=0)
    path = os.path.join(tmp_path, "wgan.keras")
    wgan.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, WGANGP) and loaded.gp_weight == 5.0
    np.testing.assert_array_equal(loaded.generate(3, seed=0, labels=2),
                                  wgan.generate(3, seed=0, labels=2))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("cls", [GAN, WGANGP])
def test_mixed_precision_step_is_finite(mnist, policy, cls):
    keras.config.set_dtype_policy(policy)
    try:
        gan = tiny_gan(cls, d_steps=1)
        history = gan.fit(mnist[0][:64], epochs=1, batch_size=32,
                          verbose=0).history
    finally:
        keras.config.set_dtype_policy("float32")
    for values in history.values():
        assert np.all(np.isfinite(values))
    scaled = isinstance(gan.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == isinstance(gan.g_optimizer,
                                keras.optimizers.LossScaleOptimizer)
    assert scaled == (policy == "mixed_float16")
    assert _iterations(gan.d_optimizer) == 2
    assert _iterations(gan.g_optimizer) == 2
    assert gan.generate(2, seed=0).dtype == np.float32


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_wgan_gp_of_own_networks_made_under_a_mixed_policy(policy):
    # their float16 images and scores met the gradient penalty's float32
    # ones: TensorFlow raised a TypeError at the first step
    layers = keras.layers
    images = np.random.RandomState(0).rand(16, 8, 8, 1).astype("float32")
    keras.config.set_dtype_policy(policy)
    try:
        for networks in (
                dict(generator=keras.Sequential([
                    keras.Input((4,)), layers.Dense(64, "tanh"),
                    layers.Reshape((8, 8, 1))]), discriminator_filters=(4,)),
                dict(discriminator=keras.Sequential([
                    keras.Input((8, 8, 1)), layers.Flatten(),
                    layers.Dense(1)]), latent_dim=4,
                    generator_filters=(4,))):
            history = WGANGP(d_steps=1, seed=0, **networks).fit(
                images, epochs=1, batch_size=8, verbose=0).history
            assert all(np.isfinite(v).all() for v in history.values())
    finally:
        keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("cls", [GAN, WGANGP])
def test_mixed_float16_weights_load_into_a_gan_not_compiled(
        mnist, tmp_path, cls):
    # both loss-scaled optimizers' state: counted as bare Adams, a
    # mixed_float16 file never matched and `fit` restarted both at step 0
    def made():
        gan = tiny_gan(cls, d_steps=1, dtype="mixed_float16")
        gan.build((None, 28, 28, 1))
        return gan

    trained = made()
    trained.fit(mnist[0][:64], epochs=1, batch_size=32, verbose=0)
    path = str(tmp_path / "gan.weights.h5")
    trained.save_weights(path)
    resumed = made()
    resumed.load_weights(path)
    for name in ("d_optimizer", "g_optimizer"):
        saved, loaded = getattr(trained, name), getattr(resumed, name)
        assert isinstance(loaded, keras.optimizers.LossScaleOptimizer)
        assert _iterations(loaded) == _iterations(saved) == 2
        for a, b in zip(saved.variables, loaded.variables):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                          keras.ops.convert_to_numpy(b))


def test_networks_follow_the_models_dtype(mnist, tmp_path):
    """The built-in networks take the model's `dtype` (before: the global
    policy, so `GAN(dtype="mixed_float16")` trained float32 networks with
    loss scaling, and a float32 file loaded under a global mixed_float16
    got float16 networks without it)."""
    gan = GAN(latent_dim=8, generator_filters=(8,),
              discriminator_filters=(8,), seed=0, dtype="mixed_float16")
    gan.fit(mnist[0][:32], epochs=1, batch_size=32, verbose=0)
    for network in (gan.generator, gan.discriminator):
        # (the last layers are float32 by design)
        policies = {layer.dtype_policy.name for layer in network.layers[:-1]
                    if layer.weights}
        assert policies == {"mixed_float16"}, policies
    assert isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer)
    plain = tiny_gan()
    plain.fit(mnist[0][:32], epochs=1, batch_size=32, verbose=0)
    path = str(tmp_path / "gan.keras")
    plain.save(path)
    keras.config.set_dtype_policy("mixed_float16")
    try:
        loaded = keras.saving.load_model(path)
    finally:
        keras.config.set_dtype_policy("float32")
    policies = {layer.dtype_policy.name for layer in loaded.generator.layers
                if layer.weights}
    assert policies == {"float32"}, policies
    assert not isinstance(loaded.g_optimizer,
                          keras.optimizers.LossScaleOptimizer)
    np.testing.assert_allclose(loaded.generate(2, seed=0),
                               plain.generate(2, seed=0), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"latent_dim": 0}, "latent_dim"), ({"d_steps": 0}, "d_steps"),
     ({"num_classes": 1}, "num_classes"),
     ({"label_smoothing": 0.7}, "label_smoothing"),
     ({"dropout": 1.0}, "dropout")],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GAN(**kwargs)


def test_bad_compile_and_fit_arguments(mnist):
    gan = tiny_gan()
    with pytest.raises(ValueError, match="d_optimizer=` and `g_optimizer="):
        gan.compile(optimizer="adam")
    # (the method a subclass overrides: a GAN never calls `compute_loss`,
    # which the message named, so its override was ignored in silence)
    with pytest.raises(ValueError, match="own loss and metrics.*drop `loss=`"
                       ".*override `discriminator_objective` and "
                       "`generator_objective`"):
        gan.compile(loss="mse")
    shared = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="two optimizer objects"):
        gan.compile(d_optimizer=shared, g_optimizer=shared)
    with pytest.raises(ValueError, match="validation data.*divide by 255"):
        gan.fit(mnist[0][:32],
                validation_data=mnist[0][:32].astype("float32"), verbose=0)
    with pytest.raises(ValueError, match="divide by 255"):
        gan.fit(mnist[0][:32].astype("float32"), verbose=0)
    with pytest.raises(ValueError, match="no dropout"):
        WGANGP(dropout=0.3)


@pytest.mark.parametrize("cls", [GAN, WGANGP])
def test_a_gan_file_keeps_keras_compile_arguments(mnist, tmp_path, cls):
    """A GAN's `.keras` file keeps `jit_compile` and `steps_per_execution`
    as a one-optimizer model's does (it kept only the optimizers); a file
    saved with several steps per execution loads on PyTorch, which runs
    one, with 1 and a warning."""
    from keras_genzoo import VAE

    torch = keras.backend.backend() == "torch"
    steps = 1 if torch else 2
    gan = tiny_gan(cls, d_steps=1)
    gan.compile(d_optimizer="adam", g_optimizer="adam", jit_compile=False,
                steps_per_execution=steps)
    gan.fit(mnist[0][:32], epochs=1, batch_size=16, verbose=0)
    path = os.path.join(str(tmp_path), "gan.keras")
    gan.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.jit_compile is False
    assert loaded.steps_per_execution == steps
    # as if saved on TensorFlow or JAX
    for model in (tiny_gan(cls), VAE(latent_dim=2, filters=(4,))):
        model.compile()
        config = dict(model.get_compile_config(), steps_per_execution=3)
        model = type(model).from_config(model.get_config())
        if torch:
            with pytest.warns(UserWarning, match="steps_per_execution=3"):
                model.compile_from_config(config)
        else:
            model.compile_from_config(config)
        assert model.steps_per_execution == (1 if torch else 3)


def test_a_setting_changed_between_calls_is_used_on_every_backend(mnist):
    # TensorFlow and JAX traced the step once and kept the values it read:
    # `gp_weight = 0` before the next `evaluate` or `fit` changed the loss
    # on PyTorch alone
    images = mnist[0][:32]
    wgan = WGANGP(latent_dim=4, generator_filters=(4,),
                  discriminator_filters=(4,), d_steps=1, seed=0)
    wgan.fit(images, epochs=1, batch_size=16, verbose=0)
    before = wgan.evaluate(images, batch_size=16, verbose=0,
                           return_dict=True)
    assert before["d_loss"] == pytest.approx(
        -before["wasserstein"] + 10.0 * before["gradient_penalty"],
        rel=1e-4, abs=1e-5)
    wgan.gp_weight = 0.0
    for logs in (
            wgan.evaluate(images, batch_size=16, verbose=0,
                          return_dict=True),
            {k: v[0] for k, v in wgan.fit(images, epochs=1, batch_size=16,
                                          verbose=0).history.items()}):
        assert logs["gradient_penalty"] > 0
        assert logs["d_loss"] == pytest.approx(-logs["wasserstein"],
                                               rel=1e-4, abs=1e-5)
    gan = GAN(latent_dim=4, generator_filters=(4,),
              discriminator_filters=(4,), seed=0)
    gan.fit(images, epochs=1, batch_size=16, verbose=0)
    plain = gan.test_on_batch(images[:16], return_dict=True)["d_loss"]
    gan.label_smoothing = 0.3
    smoothed = gan.evaluate(images[:16], verbose=0, return_dict=True)
    assert smoothed["d_loss"] != pytest.approx(plain, rel=1e-3)
