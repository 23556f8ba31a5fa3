"""Saving the state of a layer's `SeedGenerator` in `.keras` files.

Keras saves a layer's own variables but not the state of the seed
generators it holds, so a reloaded model would restart its noise sequence
from the beginning. Layers and models of the zoo that own a
`self.seed_generator` save its state next to their variables, so training
resumes exactly where it stopped. Only the public `save_own_variables` /
`load_own_variables` hooks are used: the seed state is one more entry in
the store, taken out again before Keras' own loading sees the store.
"""

import contextlib

import numpy as np

from keras_genzoo import backend as zoo_backend

SEED_STATE_KEY = "seed_generator_state"
LAYER_SEED_STATES_KEY = "layer_seed_generator_states"


class SeedStateSaving:
    """Mixin for a Keras layer or model with a `self.seed_generator`."""

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[SEED_STATE_KEY] = zoo_backend.to_numpy(
            self.seed_generator.state)

    def load_own_variables(self, store):
        keys = list(store.keys())
        if SEED_STATE_KEY not in keys:  # a file written without it
            super().load_own_variables(store)
            return
        super().load_own_variables(
            {key: store[key] for key in keys if key != SEED_STATE_KEY})
        self.seed_generator.state.assign(
            _state_for(self.seed_generator, store[SEED_STATE_KEY]))


def _layer_seed_generators(model):
    """The seed generators of `model`'s sub-layers that do not save their
    own state (Keras' `Dropout`, keras-hub blocks...), in a fixed order."""
    generators = []
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, SeedStateSaving):
            continue
        generators.extend(getattr(layer, "_seed_generators", []))
    return generators


class ModelSeedStateSaving(SeedStateSaving):
    """Mixin for a model: saves its own seed generator's state and those of
    every sub-layer's seed generator (Keras saves none), so that dropout
    masks and other noise continue after a reload or a
    `BackupAndRestore` exactly as they would have.

    The states are stored in the model's own entry, one row per generator in
    the order the layers are built, so that a model rebuilt in another
    process (where automatic layer names may differ) finds them.
    """

    def save_own_variables(self, store):
        super().save_own_variables(store)
        generators = _layer_seed_generators(self)
        if generators:
            store[LAYER_SEED_STATES_KEY] = np.stack([
                zoo_backend.to_numpy(g.state).astype("int64")
                for g in generators])

    def load_own_variables(self, store):
        keys = list(store.keys())
        if LAYER_SEED_STATES_KEY not in keys:  # written without them
            super().load_own_variables(store)
            return
        states = np.asarray(store[LAYER_SEED_STATES_KEY])
        super().load_own_variables(
            {key: store[key] for key in keys if key != LAYER_SEED_STATES_KEY})
        generators = _layer_seed_generators(self)
        if len(generators) != len(states):
            return  # another architecture: its noise starts afresh
        for generator, state in zip(generators, states):
            generator.state.assign(_state_for(generator, state))


# Where an evaluation's draws start counting (`evaluation_streams`): a
# training stream, which starts at 0, would need 2**30 draws to reach it.
EVALUATION_COUNTER = 2**30


def _all_seed_generators(model):
    """Every seed generator of `model` and its layers, each once."""
    generators = {}
    for layer in model._flatten_layers(include_self=True):
        for generator in getattr(layer, "_seed_generators", []):
            generators.setdefault(id(generator), generator)
    return list(generators.values())


@contextlib.contextmanager
def evaluation_streams(model):
    """A context in which `model`'s seed generators draw an evaluation's
    own numbers, and after which they are back where they were.

    Inside, each generator of the model and of its layers starts from its
    seed with the counter at `EVALUATION_COUNTER`, every time: two
    `evaluate` calls on the same data give the same figures, and the
    noise of the validation that `fit` runs after each epoch (a VAE's
    codes, a diffusion model's levels and noise, a GAN's latent vectors)
    no longer moves the training noise on. Before, a seeded run that
    validated trained to other weights than one that did not, and
    `val_loss` moved with the noise drawn as well as with the weights.

    Args:
        model: a `keras.Model`.

    Returns:
        A context manager.
    """
    generators = _all_seed_generators(model)
    saved = [zoo_backend.to_numpy(g.state) for g in generators]
    try:
        for generator, state in zip(generators, saved):
            generator.state.assign(_state_for(
                generator, [state[0], EVALUATION_COUNTER]))
        yield
    finally:
        for generator, state in zip(generators, saved):
            generator.state.assign(state)


def _state_for(generator, state):
    """A saved seed-generator state in the dtype of `generator`'s (int32
    on PyTorch, uint32 on JAX, int64 on TensorFlow): values an int32 cannot
    hold (a seed of 2**31 or more saved on JAX or TensorFlow) folded into
    it, as `_inputs.generator_seed` keeps new seeds below 2**31 (the load
    failed on PyTorch: "value cannot be converted to type int32")."""
    # (the variable's dtype, not its value: converting a TensorFlow
    # variable with numpy 2 warns of `__array__`'s copy keyword, an error
    # where warnings are errors)
    dtype = np.dtype(generator.state.dtype)
    state = np.asarray(state).astype("int64")
    if dtype == np.int32:
        state = state % 2**31
    return state.astype(dtype)
