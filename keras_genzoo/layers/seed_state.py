"""Saving the state of a layer's `SeedGenerator` in `.keras` files.

Keras saves a layer's own variables but not the state of the seed
generators it holds, so a reloaded model would restart its noise sequence
from the beginning. Layers and models of the zoo that own a
`self.seed_generator` save its state next to their variables, so training
resumes exactly where it stopped. Only the public `save_own_variables` /
`load_own_variables` hooks are used: the seed state is one more entry in
the store, taken out again before Keras' own loading sees the store.
"""

SEED_STATE_KEY = "seed_generator_state"


class SeedStateSaving:
    """Mixin for a Keras layer or model with a `self.seed_generator`."""

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[SEED_STATE_KEY] = self.seed_generator.state

    def load_own_variables(self, store):
        keys = list(store.keys())
        if SEED_STATE_KEY not in keys:  # a file written without it
            super().load_own_variables(store)
            return
        super().load_own_variables(
            {key: store[key] for key in keys if key != SEED_STATE_KEY})
        self.seed_generator.state.assign(store[SEED_STATE_KEY])
