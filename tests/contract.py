"""The test contract every model of the zoo goes through, on every backend.

Like keras-hub's `run_model_saving_test`, one helper checks what users rely
on for any model: given a factory and a little data,

1. `fit` lowers the loss (adversarial models: both networks change), and a
   second `fit` continues where the first stopped;
2. `get_config` round trip;
3. `.keras` round trip (safe_mode on): identical outputs, identical seeded
   `generate`, and training continues from the saved optimizer state;
   `.weights.h5` into a new compiled model: the same outputs and
   optimizer state;
4. seeded `generate`: the same seed gives the same samples, another seed
   others;
5. `compile` then `train_on_batch` and `test_on_batch` on a fresh model,
   `evaluate` without changing any weight or the training noise's seed
   states, the same figures at every call;
6. every bad input raises one `ValueError` with the expected words, before
   any training step.

A new model family adds one `ModelContract` to `tests/test_contract.py`.
"""

import dataclasses
import os
import warnings
from typing import Any, Callable, Optional

import keras
import numpy as np


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def iterations(model):
    return int(to_numpy(model.optimizer.iterations))


def weights(model):
    return [to_numpy(w).copy() for w in model.weights]


def seed_states(model):
    """The states of the seed generators of `model` and its layers."""
    return [to_numpy(v).copy() for v in model.variables
            if "seed_generator_state" in v.path]


@dataclasses.dataclass
class ModelContract:
    """What the contract needs to know about one model.

    Attributes:
        make_model: returns a fresh, seeded, uncompiled model.
        fit_data: the `x` of `fit` (an array or a dataset); with `fit_y`.
        steps_per_epoch: optimizer steps one epoch of `fit_data` makes.
        batch: `(x, y)` of one batch for `train_on_batch` / `test_on_batch`.
        outputs: `outputs(model)` -> numpy: deterministic outputs (decoded
            codes, logits, scores) that a reloaded model must reproduce.
        generate: `generate(model, seed)` -> samples (numpy or text), or
            `None` for a model that cannot sample (a plain AutoEncoder,
            until it gets a latent prior).
        loss_key: the log that `fit` must lower; `None` for adversarial
            models, whose two losses play a game: then every network given
            by `networks(model)` must change instead.
        bad_inputs: `[(x, words)]`: `fit(x)` must raise a `ValueError`
            matching `words` before any step.
        epochs: epochs of the first `fit`.
        fit_kwargs: more `fit` arguments (`batch_size`).
        networks: `networks(model)` -> the sub-networks that must train.
    """

    make_model: Callable[[], Any]
    fit_data: Any
    steps_per_epoch: int
    batch: tuple
    outputs: Callable[[Any], np.ndarray]
    generate: Optional[Callable[[Any, int], Any]]
    fit_y: Any = None
    loss_key: Optional[str] = "loss"
    bad_inputs: list = dataclasses.field(default_factory=list)
    epochs: int = 4
    fit_kwargs: dict = dataclasses.field(default_factory=dict)
    networks: Callable[[Any], list] = lambda model: [model]


def check_fit(contract):
    """1. `fit` lowers the loss; a second `fit` continues."""
    model = contract.make_model()
    before = None
    if contract.loss_key is None:
        model.build((None,) + tuple(contract.batch[0].shape[1:]))
        before = [weights(n) for n in contract.networks(model)]
    history = model.fit(contract.fit_data, contract.fit_y,
                        epochs=contract.epochs, verbose=0,
                        **contract.fit_kwargs).history
    for name, values in history.items():
        assert np.all(np.isfinite(values)), (name, values)
    if contract.loss_key is not None:
        losses = history[contract.loss_key]
        assert losses[-1] < losses[0], losses
    else:
        for network, old in zip(contract.networks(model), before):
            changed = [not np.array_equal(a, b)
                       for a, b in zip(old, weights(network))]
            assert any(changed), f"{network.name} did not train"
    steps = contract.epochs * contract.steps_per_epoch
    assert iterations(model) == steps
    model.fit(contract.fit_data, contract.fit_y, epochs=1, verbose=0,
              **contract.fit_kwargs)
    assert iterations(model) == steps + contract.steps_per_epoch
    return model


def check_config(model):
    """2. `get_config` round trip."""
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config


def check_same_outputs_and_samples(contract, loaded, model):
    """The same outputs and seeded samples from both models."""
    np.testing.assert_array_equal(contract.outputs(loaded),
                                  contract.outputs(model))
    if contract.generate is not None:
        a, b = contract.generate(loaded, 3), contract.generate(model, 3)
        if isinstance(a, str):
            assert a == b
        else:
            np.testing.assert_array_equal(a, b)


def check_saving(contract, model, tmp_path):
    """3. `.keras` round trip with identical outputs and samples; training
    continues from the saved state."""
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    check_same_outputs_and_samples(contract, loaded, model)
    np.testing.assert_array_equal(to_numpy(loaded.seed_generator.state),
                                  to_numpy(model.seed_generator.state))
    steps = iterations(model)
    assert iterations(loaded) == steps
    # `.weights.h5` into a new model compiled as a user would: the weights
    # and the optimizer's state (a non-adversarial model's optimizer, not
    # built yet, was skipped with Keras' warning: training restarted at
    # step 0)
    weights_path = os.path.join(tmp_path, "model.weights.h5")
    model.save_weights(weights_path)
    fresh = type(model).from_config(model.get_config())
    fresh.compile()
    fresh.load_weights(weights_path)
    check_same_outputs_and_samples(contract, fresh, model)
    assert iterations(fresh) == steps
    # and into one not compiled yet, which `fit` would compile after the
    # load (a GAN's two optimizers restarted at step 0, in silence)
    uncompiled = type(model).from_config(model.get_config())
    uncompiled.load_weights(weights_path)
    assert uncompiled.compiled and iterations(uncompiled) == steps
    loaded.fit(contract.fit_data, contract.fit_y, epochs=1, verbose=0,
               **contract.fit_kwargs)
    assert iterations(loaded) == steps + contract.steps_per_epoch


def check_generate(contract, model):
    """4. Seeded `generate`."""
    if contract.generate is None:
        return
    a = contract.generate(model, 7)
    b = contract.generate(model, 7)
    c = contract.generate(model, 8)
    if isinstance(a, str):
        assert a == b and a != c
    else:
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, c)


def check_batch_methods(contract):
    """5. `compile` -> `train_on_batch`, `test_on_batch`, `evaluate`."""
    x, y = contract.batch
    model = contract.make_model()
    model.compile()  # the model's default optimizer(s)
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs and all(np.isfinite(v) for v in logs.values()), logs
    assert iterations(model) == 1
    logs = model.train_on_batch(x, y, return_dict=True)
    assert iterations(model) == 2
    before = weights(model)
    streams = seed_states(model)
    logs = model.test_on_batch(x, y, return_dict=True)
    assert logs and all(np.isfinite(v) for v in logs.values()), logs
    # the evaluation's noise is its own, the same at every call
    assert model.test_on_batch(x, y, return_dict=True) == logs
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs and all(np.isfinite(v) for v in logs.values()), logs
    assert model.evaluate(x, y, verbose=0, return_dict=True) == logs
    for a, b in zip(before, weights(model)):
        np.testing.assert_array_equal(a, b)
    # and the training noise is where it was (validating during `fit` moved
    # it on: a seeded run trained to other weights with validation data)
    for a, b in zip(streams, seed_states(model)):
        np.testing.assert_array_equal(a, b)
    assert iterations(model) == 2
    # an uncompiled model compiles itself with its defaults
    fresh = contract.make_model()
    fresh.train_on_batch(x, y)
    assert iterations(fresh) == 1


def check_bad_inputs(contract):
    """6. One clear `ValueError` per bad input (and for sample weights),
    before any step."""
    import pytest

    for x, words in contract.bad_inputs:
        model = contract.make_model()
        with pytest.raises(ValueError, match=words):
            model.fit(x, epochs=1, verbose=0)
        assert (not model.compiled) or iterations(model) == 0
    # sample weights, which the losses would ignore, are refused too
    x, y = contract.batch
    model = contract.make_model()
    weights = np.ones(4, "float32")
    for call in (
        lambda: model.fit(contract.fit_data, contract.fit_y, epochs=1,
                          sample_weight=weights, verbose=0),
        lambda: model.train_on_batch(x, y, sample_weight=weights),
        lambda: model.evaluate(x, y, sample_weight=weights, verbose=0),
    ):
        with pytest.raises(ValueError, match="`sample_weight`"):
            call()
        assert (not model.compiled) or iterations(model) == 0
    # so are a compiled loss and metrics: the models compute their own
    # (before, a VAE ignored `loss=` in silence, and `metrics=` failed
    # inside Keras' step, another message per backend)
    for key, value in (("loss", "mse"), ("loss_weights", [1.0]),
                       ("metrics", ["mae"]), ("weighted_metrics", ["mae"])):
        with pytest.raises(ValueError, match=f"own loss.*drop `{key}=`"):
            contract.make_model().compile(**{key: value})


def _keras_hub_too_old():
    """Whether Keras' `Model.quantize` passes `config=` to layers whose
    `quantize` does not take it: keras-hub's `ReversibleEmbedding` before
    it took one (0.21), under Keras 3.15."""
    import inspect

    def takes_config(function):
        return "config" in inspect.signature(function).parameters

    import keras_hub

    return takes_config(keras.layers.Layer.quantize) and not takes_config(
        keras_hub.layers.ReversibleEmbedding.quantize)


def check_quantized_saving(contract, model, tmp_path):
    """7. After `quantize("int8")`, a `.keras` round trip with identical
    outputs and samples (the file loaded, with fresh float weights where
    the quantized ones were, before the config recorded them). With a
    keras-hub too old for Keras' `quantize` (0.21 under Keras 3.15), one
    clear `ValueError` instead."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.quantize("int8")
        except ValueError as error:
            # only where keras-hub really is that old: the check once
            # refused every keras-hub (0.32 too), and this returned
            # without a test
            if ("needs a newer keras-hub" in str(error)
                    and _keras_hub_too_old()):
                return
            raise
    # a trained model's optimizer stays built for the float kernels: the
    # user is told to compile again to train on (JAX refused it in `fit`,
    # and a saved file's optimizer state loaded nowhere)
    assert [w for w in caught if "compile it again" in str(w.message)]
    path = os.path.join(tmp_path, "quantized.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert loaded.get_config() == model.get_config()
    check_same_outputs_and_samples(contract, loaded, model)
    # compiled again, the quantized model trains on every backend, and its
    # optimizer state comes back from a file without Keras' "Skipping
    # variable loading" (training restarted at step 0)
    if not model.trainable_variables:
        return  # (a BigramLM's table is all it has)
    model.compile()
    model.fit(contract.fit_data, contract.fit_y, epochs=1, verbose=0,
              **contract.fit_kwargs)
    assert iterations(model) == contract.steps_per_epoch
    model.save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.models.load_model(path, safe_mode=True)
    assert not [w for w in caught if "Skipping variable loading" in str(
        w.message)]
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
    for saved, restored in zip(model.optimizer.variables,
                               loaded.optimizer.variables):
        np.testing.assert_array_equal(to_numpy(saved), to_numpy(restored))


def run_model_contract(contract, tmp_path):
    """Runs every check of the contract on one model."""
    model = check_fit(contract)
    check_config(model)
    check_saving(contract, model, tmp_path)
    check_generate(contract, model)
    check_batch_methods(contract)
    check_bad_inputs(contract)
    check_quantized_saving(contract, model, tmp_path)
