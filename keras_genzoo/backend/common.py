"""What the backend modules share: the interface of a custom step's
operations, and operations written with that interface alone."""


class StepOps:
    """The operations a backend-free training schedule may use.

    Each backend module subclasses it; a schedule receives an instance as
    `step` (see `keras_genzoo.backend.custom_train_step`). Whatever reads the
    model's variables goes through `minimize` or `run` (on JAX the
    variables hold no values inside a compiled step: these two map them
    to the step's state).
    """

    def minimize(self, optimizer, objective, variables):
        """One gradient update.

        Args:
            optimizer: the optimizer that applies the gradients.
            objective: a function of no arguments returning `(loss, logs)`:
                a scalar loss and a dict of values to log.
            variables: the variables to update (e.g. a network's
                `trainable_variables`).

        Returns:
            The `logs` the objective returned.
        """
        raise NotImplementedError

    def read(self, variables):
        """The current values of `variables` (a list of tensors)."""
        raise NotImplementedError

    def assign(self, variables, values):
        """Sets `variables` to `values` (lists of the same length)."""
        raise NotImplementedError

    def run(self, fn):
        """Runs `fn()` without gradients, keeping any state it changes
        (seed generators, batch-norm statistics); returns its result."""
        raise NotImplementedError


def ema_update(step, averages, variables, decay):
    """`averages <- decay * averages + (1 - decay) * variables`.

    Written with `StepOps` alone, so it runs inside any backend's custom
    step (e.g. after each update of a diffusion model).

    Args:
        step: the schedule's `StepOps`.
        averages: the variables holding the moving averages.
        variables: the variables to average, in the same order.
        decay: the weight of the old average, e.g. 0.999.
    """
    averages, variables = list(averages), list(variables)
    if len(averages) != len(variables):
        raise ValueError(
            f"Got {len(averages)} averages for {len(variables)} variables."
        )
    new = [
        decay * average + (1.0 - decay) * value
        for average, value in zip(step.read(averages), step.read(variables))
    ]
    step.assign(averages, new)
