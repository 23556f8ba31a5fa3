"""A GAN's `model.optimizer` behaves like an optimizer for Keras callbacks:
learning-rate callbacks act on both real optimizers, `iterations` counts
steps."""

import keras
import numpy as np
import pytest

from keras_genzoo import (
    GAN,
    WGANGP,
    OptimizerPair,
    WarmupCosineDecay,
    warmup_cosine_adamw,
)


def _lr(optimizer):
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def tiny_gan(cls=GAN, **kwargs):
    return cls(latent_dim=4, generator_filters=(8,),
               discriminator_filters=(8,), seed=0, **kwargs)


def test_learning_rate_scheduler_scales_both_optimizers(mnist):
    gan = tiny_gan()
    gan.compile(d_optimizer=keras.optimizers.Adam(4e-4),
                g_optimizer=keras.optimizers.Adam(1e-4))
    halve = keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr / 2)
    history = gan.fit(mnist[0][:64], epochs=2, batch_size=32, verbose=0,
                      callbacks=[halve]).history
    # epoch 0 starts at lr/2, epoch 1 at lr/4: the same factor on each
    assert _lr(gan.d_optimizer) == pytest.approx(1e-4)
    assert _lr(gan.g_optimizer) == pytest.approx(2.5e-5)
    assert history["learning_rate"] == pytest.approx([2e-4, 1e-4])


def test_reduce_lr_on_plateau_acts_on_a_wgan(mnist):
    wgan = tiny_gan(WGANGP, d_steps=1)
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="g_loss", mode="min",
                                                factor=0.1,
                                                patience=0, min_delta=1e9)
    wgan.fit(mnist[0][:32], epochs=2, batch_size=32, verbose=0,
             callbacks=[plateau])
    # default Adam(1e-4) for both, reduced once after epoch 2
    assert _lr(wgan.d_optimizer) == pytest.approx(1e-5)
    assert _lr(wgan.g_optimizer) == pytest.approx(1e-5)


@pytest.mark.parametrize("d_steps", [1, 3])
def test_iterations_count_training_steps(mnist, d_steps):
    # what `keras.callbacks.TensorBoard` takes as its step
    gan = tiny_gan(d_steps=d_steps)
    gan.fit(mnist[0][:96], epochs=2, batch_size=32, verbose=0)
    assert int(keras.ops.convert_to_numpy(gan.optimizer.iterations)) == 6
    assert int(keras.ops.convert_to_numpy(
        gan.d_optimizer.iterations)) == 6 * d_steps


def test_pair_needs_two_optimizers_and_an_owner():
    shared = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="two optimizer objects"):
        OptimizerPair(shared, shared)
    pair = OptimizerPair("adam", "sgd")
    with pytest.raises(ValueError, match="belongs to no model"):
        pair.build([])
    pair.learning_rate = 0.5
    assert _lr(pair.d_optimizer) == pytest.approx(0.5)
    assert _lr(pair.g_optimizer) == pytest.approx(0.5 * 0.01 / 0.001)
    clone = OptimizerPair.from_config(pair.get_config())
    assert type(clone.g_optimizer).__name__ == "SGD"
    # a discriminator rate of 0: no ratio to keep, the generator's stays
    # (a scheduler that halves the rates set it to 0 before)
    pair = OptimizerPair(keras.optimizers.Adam(0.0),
                         keras.optimizers.Adam(5e-4))
    pair.learning_rate = 0.0
    assert _lr(pair.g_optimizer) == pytest.approx(5e-4)
    pair.learning_rate = 1e-3
    assert _lr(pair.d_optimizer) == pytest.approx(1e-3)
    assert _lr(pair.g_optimizer) == pytest.approx(5e-4)
    # a warmup from 0 keeps the ratio (the generator's rate stayed 0)
    pair = OptimizerPair(keras.optimizers.Adam(2e-4),
                         keras.optimizers.Adam(1e-4))
    for rate in (0.0, 1e-4, 4e-4):
        pair.learning_rate = rate
        assert _lr(pair.g_optimizer) == pytest.approx(rate / 2)
    # both 0 from the start: the same rate
    pair = OptimizerPair(keras.optimizers.Adam(0.0),
                         keras.optimizers.Adam(0.0))
    pair.learning_rate = 1e-3
    assert _lr(pair.g_optimizer) == pytest.approx(1e-3)
    # one optimizer on a schedule: refused before anything changes (the
    # discriminator's rate had changed when the generator's raised)
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.5)
    pair = OptimizerPair(keras.optimizers.Adam(1e-3),
                         keras.optimizers.Adam(schedule))
    with pytest.raises(TypeError, match="`g_optimizer` takes its learning"):
        pair.learning_rate = 5e-4
    assert _lr(pair.d_optimizer) == pytest.approx(1e-3)


def test_the_rate_ratio_survives_saving_while_both_rates_are_0(
        mnist, tmp_path):
    # a warmup holding both rates at 0 when the file was written: the
    # resumed or loaded pair gave the generator the discriminator's rate
    # (2e-4 for 1e-4), no ratio being known from rates of 0
    gan = tiny_gan()
    gan.compile(d_optimizer=keras.optimizers.Adam(2e-4),
                g_optimizer=keras.optimizers.Adam(1e-4))
    warmup = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.0)
    gan.fit(mnist[0][:32], epochs=1, batch_size=32, verbose=0,
            callbacks=[warmup])
    assert _lr(gan.g_optimizer) == 0.0
    gan.save(tmp_path / "gan.keras")
    gan.save_weights(tmp_path / "gan.weights.h5")
    loaded = keras.saving.load_model(tmp_path / "gan.keras")
    # a new run, as BackupAndRestore resumes one: compiled with other
    # rates, then the file's (0 and 0, and the ratio)
    resumed = tiny_gan()
    resumed.compile(d_optimizer=keras.optimizers.Adam(1e-3),
                    g_optimizer=keras.optimizers.Adam(1e-3))
    resumed.build((None, 28, 28, 1))
    resumed.load_weights(tmp_path / "gan.weights.h5")
    for model in (loaded, resumed):
        assert _lr(model.g_optimizer) == 0.0
        model.optimizer.learning_rate = 2e-4
        assert _lr(model.g_optimizer) == pytest.approx(1e-4)


def test_a_schedule_is_refused_under_mixed_float16():
    # inside the LossScaleOptimizers that mixed_float16 wraps them in, the
    # schedule was not seen: the discriminator's rate changed, then
    # Keras' own TypeError
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.5)
    gan = tiny_gan(dtype="mixed_float16")
    gan.compile(d_optimizer=keras.optimizers.Adam(1e-3),
                g_optimizer=keras.optimizers.Adam(schedule))
    assert isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer)
    with pytest.raises(TypeError, match="`g_optimizer` takes its learning"):
        gan.optimizer.learning_rate = 5e-4
    assert _lr(gan.d_optimizer) == pytest.approx(1e-3)


def test_optimizers_built_for_another_model_are_refused(mnist):
    # on JAX the two GANs trained on one shared optimizer state, in silence
    d_optimizer, g_optimizer = keras.optimizers.Adam(), keras.optimizers.Adam()
    first = tiny_gan()
    first.compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer)
    first.fit(mnist[0][:32], epochs=1, batch_size=32, verbose=0)
    second = tiny_gan()
    second.compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer)
    with pytest.raises(ValueError, match="already built for another "
                                         "network \\(another model.s"):
        second.fit(mnist[0][:32], epochs=1, batch_size=32, verbose=0)
    # a built model's compile refused (the two swapped) leaves it as it was
    # (it kept the refused optimizers: every `fit` after it failed)
    with pytest.raises(ValueError, match="the two swapped"):
        first.compile(d_optimizer=g_optimizer, g_optimizer=d_optimizer)
    assert first.d_optimizer is d_optimizer
    assert first.g_optimizer is g_optimizer
    first.fit(mnist[0][:32], epochs=1, batch_size=32, verbose=0)
    assert int(keras.ops.convert_to_numpy(d_optimizer.iterations)) == 2


@pytest.mark.parametrize("cls, kwargs, name", [
    (GAN, {"d_steps": 1.5}, "d_steps"),
    (GAN, {"latent_dim": 2.5}, "latent_dim"),
    (GAN, {"num_classes": 2.7}, "num_classes"),
    (WGANGP, {"gp_weight": float("nan")}, "gp_weight"),
])
def test_bad_numbers_are_refused(cls, kwargs, name):
    # cut down by int before (NaN gave NaN losses)
    with pytest.raises(ValueError, match=f"`{name}` must be"):
        cls(**kwargs)


def test_warmup_cosine_adamw_schedule():
    optimizer = warmup_cosine_adamw(100, learning_rate=1e-3,
                                    warmup_steps=10)
    schedule = optimizer._learning_rate
    rates = [float(keras.ops.convert_to_numpy(schedule(s)))
             for s in (0, 5, 10, 100)]
    assert rates[0] == 0.0 and rates[1] == pytest.approx(5e-4)
    assert rates[2] == pytest.approx(1e-3)
    assert rates[3] == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="steps"):
        warmup_cosine_adamw(0)
    # one ValueError each, before anything is made (0.5 steps were cut to 0
    # and named so, None was a TypeError, a rate of 0 a ZeroDivisionError,
    # and a negative rate trained up the loss in silence)
    for kwargs, name in (
            ({"steps": 0.5}, "`steps` must be an integer >= 1; got 0.5"),
            ({"steps": None}, "`steps`"),
            ({"warmup_steps": None}, "`warmup_steps`"),
            ({"warmup_steps": -1}, "`warmup_steps`"),
            ({"learning_rate": 0.0}, "`learning_rate` must be a number > 0"),
            ({"learning_rate": -1e-3}, "`learning_rate`"),
            ({"learning_rate": float("nan")}, "`learning_rate`"),
            ({"min_learning_rate": 2e-3}, "`min_learning_rate` must be in"),
            ({"min_learning_rate": -1.0}, "`min_learning_rate`")):
        with pytest.raises(ValueError, match=name):
            warmup_cosine_adamw(**{"steps": 100, **kwargs})
    assert np.isfinite(rates).all()
    assert type(schedule) is WarmupCosineDecay


def _schedule_kwargs(warmup_steps, warmup_target=1e-3):
    return dict(initial_learning_rate=2e-4, decay_steps=90, alpha=0.1,
                warmup_steps=warmup_steps, warmup_target=warmup_target)


@pytest.mark.parametrize("warmup_steps,warmup_target", [
    (0, None), (0, 1e-3), (1, 1e-3), (10, 1e-3)])
def test_warmup_cosine_decay_equals_keras_cosine_decay(warmup_steps,
                                                       warmup_target):
    kwargs = _schedule_kwargs(warmup_steps, warmup_target)
    ours = WarmupCosineDecay(**kwargs)
    theirs = keras.optimizers.schedules.CosineDecay(**kwargs)
    for step in (0, 1, 2, 5, 9, 10, 11, 50, 99, 100, 101, 1000, 2.5, 9.5):
        # as the optimizer calls it (its integer `iterations`), and a float
        step = keras.ops.convert_to_tensor(
            step, "int64" if isinstance(step, int) else "float32")
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(ours(step)),
            keras.ops.convert_to_numpy(theirs(step)), rtol=1e-6, atol=1e-12,
            err_msg=str(step))
    clone = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(ours))
    assert type(clone) is WarmupCosineDecay
    assert clone.get_config() == ours.get_config() == theirs.get_config()


def test_a_model_on_the_recipe_saves_and_loads(tmp_path):
    from keras_genzoo import BigramLM

    text = "to be or not to be, that is the question. " * 8
    model = BigramLM.from_text(text, sequence_length=8, seed=0)
    model.compile(optimizer=warmup_cosine_adamw(50, warmup_steps=5))
    train_ds, _ = model.make_datasets(text, batch_size=8)
    model.fit(train_ds, epochs=1, verbose=0)
    path = str(tmp_path / "bigram.keras")
    model.save(path)
    loaded = keras.models.load_model(path)  # safe mode
    schedule = loaded.optimizer._learning_rate
    assert type(schedule) is WarmupCosineDecay
    assert schedule.get_config() == model.optimizer._learning_rate.get_config()
    assert _lr(loaded.optimizer) == pytest.approx(_lr(model.optimizer))
    # the weight decay spares biases and norms after loading too (Keras'
    # AdamW config does not hold its exclusions: all were decayed)
    variables = {name: keras.Variable(np.ones((2, 2)), name=name)
                 for name in ("gamma", "beta", "bias", "kernel")}
    for optimizer in (model.optimizer, loaded.optimizer):
        assert isinstance(optimizer, keras.optimizers.AdamW)
        for name, variable in variables.items():
            assert optimizer._use_weight_decay(variable) == (
                name == "kernel"), name


def test_warmup_cosine_decay_compiles_without_a_graph_break():
    """On PyTorch, Keras' `CosineDecay` branches on the step (a Python `if`
    on a tensor), which splits a `jit_compile=True` training step."""
    if keras.backend.backend() != "torch":
        pytest.skip("torch.compile is PyTorch's")
    import torch

    step = torch.tensor(5)
    kwargs = _schedule_kwargs(10)
    theirs = torch._dynamo.explain(
        keras.optimizers.schedules.CosineDecay(**kwargs))(step)
    assert theirs.graph_break_count > 0  # what the schedule is for
    ours = torch._dynamo.explain(WarmupCosineDecay(**kwargs))(step)
    assert ours.graph_break_count == 0, ours.break_reasons


def _max_gap(optimizer, variables):
    return max(float(np.abs(keras.ops.convert_to_numpy(average)
                            - keras.ops.convert_to_numpy(variable)).max())
               for average, variable in zip(
                   optimizer._model_variables_moving_average, variables))


@pytest.mark.parametrize("cls", [GAN, WGANGP])
def test_use_ema_optimizers_of_a_gan_work_as_in_keras(mnist, cls):
    """Each of a GAN's optimizers made with `use_ema=True` ends `fit` by
    writing its averages into its own network's weights, and
    `SwapEMAWeights` swaps them in (it refused the pair: "use_ema=False");
    a second `fit` trains (on JAX, Keras' write left a weight and its
    average sharing one buffer, which the next step failed to donate)."""
    gan = tiny_gan(cls, d_steps=1)
    gan.compile(d_optimizer=keras.optimizers.Adam(2e-3, use_ema=True),
                g_optimizer=keras.optimizers.Adam(2e-3, use_ema=True))
    images = mnist[0][:64]
    for callbacks in ([], [keras.callbacks.SwapEMAWeights(
            swap_on_epoch=True)]):
        gan.fit(images, epochs=2, batch_size=16, verbose=0,
                validation_data=images[:16], callbacks=callbacks)
        assert _max_gap(gan.g_optimizer,
                        gan.generator.trainable_variables) == 0.0
        assert _max_gap(gan.d_optimizer,
                        gan.discriminator.trainable_variables) == 0.0
    assert int(keras.ops.convert_to_numpy(gan.optimizer.iterations)) == 16


def test_a_one_optimizer_model_with_use_ema_fits_twice(mnist):
    """Keras 3.15.1 on JAX: the second `fit` of a model whose optimizer has
    `use_ema=True` failed at its first step ("donate the same buffer
    twice"), a plain `keras.Sequential` too; the zoo's models fit again."""
    from keras_genzoo import VAE

    vae = VAE(latent_dim=2, filters=(4,), seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2, use_ema=True))
    for _ in range(2):
        vae.fit(mnist[0][:64], epochs=1, batch_size=32, verbose=0)
    vae.train_on_batch(mnist[0][:32])
    assert int(keras.ops.convert_to_numpy(vae.optimizer.iterations)) == 5
