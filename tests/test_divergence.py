"""A NaN loss stops `fit` at that batch with one message, and the last good
epoch's weights and optimizer state come back (every backend)."""

import threading
import warnings

import keras
import numpy as np
import pytest

from keras_genzoo import GAN, VAE, WGANGP, BigramLM, datasets
from keras_genzoo.callbacks import StopOnDivergence


def _state(model):
    variables = list(model.variables) + list(model.optimizer.variables)
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


class PoisonAt(keras.callbacks.Callback):
    """Fills every trainable weight with NaN before one batch (as an
    overflow in an update would) and remembers the state at each epoch's
    end. Every weight, not one entry: with a NaN in one entry of the first
    kernel, TensorFlow 2.21's compiled VAE step kept the loss finite on an
    AVX-512 AMD EPYC (measured 2026-12-02; eager ops there do carry the
    NaN), so the test depended on the CPU."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.ends = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            for weight in self.model.trainable_weights:
                weight.assign(np.full(weight.shape, np.nan, weight.dtype))

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(_state(self.model))


def _families(mnist):
    images = mnist[0][:96]
    gan = dict(latent_dim=8, generator_filters=(8,),
               discriminator_filters=(8,), seed=0)
    text = datasets.load_text("tiny_shakespeare")[:2000]
    bigram = BigramLM.from_text(text, sequence_length=16, seed=0)
    train, _ = bigram.make_datasets(text, batch_size=32)
    return {
        "vae": (lambda: VAE(latent_dim=4, filters=(8,), seed=0), images),
        "gan": (lambda: GAN(**gan), images),
        "wgan_gp": (lambda: WGANGP(d_steps=2, **gan), images),
        "bigram": (lambda: bigram, train),
    }


@pytest.mark.parametrize("family", ["vae", "gan", "wgan_gp", "bigram"])
def test_nan_stops_and_restores_the_last_good_epoch(family, mnist):
    make_model, data = _families(mnist)[family]
    model = make_model()
    poison = PoisonAt(epoch=1, batch=1)
    with pytest.warns(RuntimeWarning) as caught:
        history = model.fit(data, epochs=4, batch_size=None
                            if family == "bigram" else 32, verbose=0,
                            callbacks=[poison])
    messages = [str(w.message) for w in caught
                if "diverged" in str(w.message)]
    assert len(messages) == 1, messages
    for words in ("epoch 2, batch 2", "end of epoch 1 were restored",
                  "learning rate", "expected range", "LossScaleOptimizer"):
        assert words in messages[0], (words, messages[0])
    assert "labels" not in messages[0]  # not conditional
    assert len(history.epoch) == 2  # stopped in the second epoch
    restored = _state(model)
    for now, good in zip(restored, poison.ends[0]):
        np.testing.assert_array_equal(now, good)
    # and it trains on from there
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        more = model.fit(data, epochs=1, verbose=0,
                         batch_size=None if family == "bigram" else 32)
    assert all(np.isfinite(v[-1]) for v in more.history.values())


def test_a_conditional_model_also_names_its_labels(mnist):
    """Labels out of range after a dataset's first batch (unchecked) give
    NaN on JAX without an error: for a conditional model the warning
    names them among the likely causes."""
    images, labels = mnist[0][:64], mnist[1][:64]
    model = VAE(latent_dim=4, filters=(8,), num_classes=10, seed=0)
    with pytest.warns(RuntimeWarning, match="diverged") as caught:
        model.fit(images, labels, epochs=1, batch_size=32, verbose=0,
                  callbacks=[PoisonAt(epoch=0, batch=1)])
    message = [str(w.message) for w in caught
               if "diverged" in str(w.message)][0]
    assert "labels outside 0..9 in a batch after the first" in message


def _built_vae():
    """A VAE with its weights and optimizer built, and their state."""
    model = VAE(latent_dim=4, filters=(8,), seed=0)
    model.compile()
    model.build((None, 28, 28, 1))
    model.optimizer.build(model.trainable_variables)
    return model, _state(model)


def test_divergence_in_the_first_epoch_restores_the_start(mnist):
    model, start = _built_vae()
    stop = StopOnDivergence()
    with pytest.warns(RuntimeWarning, match="start of training"):
        model.fit(mnist[0][:64], epochs=2, batch_size=32, verbose=0,
                  callbacks=[stop, PoisonAt(0, 1)])
    assert stop.diverged["epoch"] == 0 and stop.diverged["batch"] == 1
    assert stop.diverged["log"].endswith("loss")
    assert stop.diverged["restored_epoch"] == 0
    for now, good in zip(_state(model), start):
        np.testing.assert_array_equal(now, good)


def test_divergence_at_once_after_a_resume_names_the_epoch_restored(mnist):
    # it said "the start of training" (restored_epoch 0) where the state
    # put back was that of the end of epoch 2, where the fit began
    model, start = _built_vae()
    stop = StopOnDivergence()
    with pytest.warns(RuntimeWarning, match="the end of epoch 2 were"):
        model.fit(mnist[0][:64], epochs=4, initial_epoch=2, batch_size=32,
                  verbose=0, callbacks=[stop, PoisonAt(2, 1)])
    assert stop.diverged["restored_epoch"] == 2
    for now, good in zip(_state(model), start):
        np.testing.assert_array_equal(now, good)


def test_callbacks_given_by_position_get_the_check_too(mnist):
    # fit(x, y, batch_size, epochs, verbose, callbacks): no check was
    # added (the NaN weights stayed, in silence)
    model, start = _built_vae()
    with pytest.warns(RuntimeWarning, match="start of training"):
        history = model.fit(mnist[0][:64], None, 32, 2, 0, [PoisonAt(0, 1)])
    for now, good in zip(_state(model), start):
        np.testing.assert_array_equal(now, good)
    assert "loss" in history.logged_epochs


def test_terminate_on_nan_or_restore_false_is_respected(mnist):
    model = VAE(latent_dim=4, filters=(8,), seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(mnist[0][:64], epochs=2, batch_size=32, verbose=0,
                  callbacks=[keras.callbacks.TerminateOnNaN(),
                             PoisonAt(0, 1)])
    assert not [w for w in caught if "diverged" in str(w.message)]
    stop = StopOnDivergence(restore=False)
    model = VAE(latent_dim=4, filters=(8,), seed=0)
    with pytest.warns(RuntimeWarning, match="diverged weights were left"):
        model.fit(mnist[0][:64], epochs=2, batch_size=32, verbose=0,
                  callbacks=[stop, PoisonAt(0, 0)])
    assert stop.diverged["restored_epoch"] is None
    assert not np.isfinite(
        keras.ops.convert_to_numpy(model.trainable_weights[0])).all()


@pytest.mark.parametrize("cls", [GAN, WGANGP])
def test_terminate_on_nan_still_stops_a_gan(mnist, cls):
    # Keras' TerminateOnNaN reads `loss`, which a GAN does not log: it never
    # fired, and it turned the zoo's check off, so a GAN trained on NaN
    # weights to the last epoch (every backend)
    model = cls(latent_dim=4, generator_filters=(4,),
                discriminator_filters=(4,), seed=0)
    with pytest.warns(RuntimeWarning, match="diverged weights were left"):
        history = model.fit(mnist[0][:64], epochs=3, batch_size=32,
                            verbose=0,
                            callbacks=[keras.callbacks.TerminateOnNaN(),
                                       PoisonAt(0, 1)])
    assert len(history.epoch) == 1
    assert int(keras.ops.convert_to_numpy(model.d_optimizer.iterations)) \
        < 3 * 2 * (2 if cls is WGANGP else 1)


class BatchEndThreads(keras.callbacks.Callback):
    """Records the thread of each `on_train_batch_end` and, at each epoch's
    end, the first trainable weight (as a checkpoint would save it)."""

    async_safe = True  # so that it leaves Keras' dispatch as it is

    def __init__(self):
        super().__init__()
        self.threads = set()
        self.saved = []

    def on_train_batch_end(self, batch, logs=None):
        self.threads.add(threading.get_ident())

    def on_epoch_end(self, epoch, logs=None):
        self.saved.append(np.array(keras.ops.convert_to_numpy(
            self.model.trainable_weights[0])))


def test_the_check_keeps_keras_asynchronous_batch_end_dispatch(mnist):
    # JAX and PyTorch dispatch the next step before the batch-end hooks
    # read this one's loss (in a worker thread) unless a callback forbids
    # it; TensorFlow always runs them in `fit`'s thread
    model = VAE(latent_dim=4, filters=(8,), seed=0)
    threads = BatchEndThreads()
    model.fit(mnist[0][:96], epochs=1, batch_size=32, verbose=0,
              callbacks=[threads])
    workers = threads.threads - {threading.get_ident()}
    assert bool(workers) == (keras.backend.backend() != "tensorflow"), (
        threads.threads)


def test_callbacks_at_the_diverged_epoch_see_the_restored_weights(mnist):
    # the check comes first in `fit`'s callbacks, so that a checkpoint
    # saved at the end of the diverged epoch holds the restored weights
    model = VAE(latent_dim=4, filters=(8,), seed=0)
    threads = BatchEndThreads()
    with pytest.warns(RuntimeWarning, match="end of epoch 1 were restored"):
        model.fit(mnist[0][:96], epochs=3, batch_size=32, verbose=0,
                  callbacks=[threads, PoisonAt(1, 0)])
    assert len(threads.saved) == 2
    np.testing.assert_array_equal(threads.saved[1], threads.saved[0])
    assert np.isfinite(threads.saved[1]).all()


def test_the_first_diverged_batch_is_reported_whatever_the_hook_order():
    # Keras' worker pool may run two batches' hooks at once, in any order
    stop = StopOnDivergence(restore=False)
    stop.set_model(keras.Model())
    stop.on_train_begin()
    stop.on_epoch_begin(0)
    stop.on_train_batch_end(5, {"loss": float("inf")})
    stop.on_train_batch_end(3, {"loss": float("nan")})
    stop.on_train_batch_end(2, {"loss": 1.0})
    stop.on_train_batch_end(4, {"loss": float("nan")})
    assert stop.diverged is None  # the warning waits for `fit`'s thread
    with pytest.warns(RuntimeWarning, match="epoch 1, batch 4;"):
        stop.on_epoch_end(0, {"loss": float("nan")})
    assert stop.diverged["batch"] == 3 and stop.diverged["log"] == "loss"


def test_a_resumed_run_restores_the_backup_it_started_from(
        mnist, tmp_path):
    # the state restored is taken after `BackupAndRestore` has loaded its
    # backup, although `fit` puts the check before it: that of the end of
    # epoch 1 (the warning said "the start of training")
    backup = str(tmp_path / "backup")
    model = VAE(latent_dim=4, filters=(8,), seed=0)
    model.fit(mnist[0][:64], epochs=1, batch_size=32, verbose=0,
              callbacks=[keras.callbacks.BackupAndRestore(
                  backup, delete_checkpoint=False)])
    saved = [np.array(keras.ops.convert_to_numpy(w))
             for w in model.trainable_weights]
    resumed = VAE(latent_dim=4, filters=(8,), seed=1)
    with pytest.warns(RuntimeWarning, match="the end of epoch 1 were"):
        history = resumed.fit(
            mnist[0][:64], epochs=3, batch_size=32, verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore(backup),
                       PoisonAt(1, 1)])
    assert history.epoch == [1]  # resumed at the second epoch, stopped
    for now, good in zip(resumed.trainable_weights, saved, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(now), good)


class InterruptValidation(keras.callbacks.Callback):
    """Raises `KeyboardInterrupt` when validation starts, as Ctrl-C would.
    Its batch-end hook (not `async_safe`) makes Keras run the batch hooks
    on `fit`'s thread, so the NaN is seen before validation starts."""

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_test_begin(self, logs=None):
        raise KeyboardInterrupt


def test_an_error_after_the_nan_still_restores(mnist):
    # Keras calls no `on_epoch_end` when `fit` raises: the zoo's `fit`
    # puts the weights back before the error goes on
    model, start = _built_vae()
    with pytest.warns(RuntimeWarning, match="start of training"), \
            pytest.raises(KeyboardInterrupt):
        model.fit(mnist[0][:64], epochs=2, batch_size=32, verbose=0,
                  validation_data=mnist[0][64:96],
                  callbacks=[PoisonAt(0, 1), InterruptValidation()])
    for now, good in zip(_state(model), start):
        np.testing.assert_array_equal(now, good)
