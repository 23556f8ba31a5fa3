"""Saving the state of a layer's `SeedGenerator` in `.keras` files.

Keras saves a layer's own variables but not the state of the seed
generators it holds, so a reloaded model would restart its noise sequence
from the beginning. Layers and models of the zoo that own a
`self.seed_generator` save its state next to their variables, so training
resumes exactly where it stopped.
"""

SEED_STATE_KEY = "seed_generator_state"


class SeedStateSaving:
    """Mixin for a Keras layer or model with a `self.seed_generator`."""

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[SEED_STATE_KEY] = self.seed_generator.state

    def load_own_variables(self, store):
        own = self._trainable_variables + self._non_trainable_variables
        keys = list(store.keys())
        if SEED_STATE_KEY not in keys:  # a file written without it
            super().load_own_variables(store)
            return
        if len(keys) - 1 != len(own):
            raise ValueError(
                f"Layer '{self.name}' expected {len(own)} variables, but the "
                f"file holds {len(keys) - 1}."
            )
        for i, variable in enumerate(own):
            variable.assign(store[f"{i}"])
        self.seed_generator.state.assign(store[SEED_STATE_KEY])
