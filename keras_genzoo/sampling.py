"""Choosing the next token: a numpy sampler and keras-hub's samplers.

`sample_from_logits` draws one token from a vector of logits in numpy (what
`CharLanguageModel` uses by default); `make_sampler` picks the keras-hub
sampler that the compiled MiniGPT loop runs for a choice of temperature,
top-k and top-p. keras_hub is imported only when `make_sampler` is called.
"""

import numpy as np

from keras_genzoo import _inputs


def sample_from_logits(logits, rng, temperature=1.0, top_k=None, top_p=None):
    """Draws one token id from a vector of logits.

    Args:
        logits: numpy array `(vocabulary_size,)`.
        rng: a `numpy.random.Generator`.
        temperature: divides the logits; below 1 sharpens, above flattens.
        top_k: keep only the `top_k` most likely tokens (`1` is greedy).
        top_p: keep the smallest set of most likely tokens whose
            probabilities add up to at least `top_p` (nucleus sampling;
            with `top_k`, the probabilities among the `top_k`, as
            Hugging Face's top-k then top-p).

    Returns:
        The chosen id (an int).

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> sample_from_logits(np.array([0.0, 3.0, 1.0]), rng, top_k=1)
        1
    """
    temperature, top_k, top_p = check_settings(temperature, top_k, top_p)
    return _sample_from_logits(logits, rng, temperature, top_k, top_p)


def check_settings(temperature=1.0, top_k=None, top_p=None):
    """The checked sampling settings `(temperature, top_k, top_p)`: a float
    > 0, an int >= 1 or `None`, a float in (0, 1] or `None`; one
    `ValueError` otherwise (before, `sample_from_logits(top_k=0)` failed in
    numpy, "probabilities contain NaN", `top_k=-1` dropped the likeliest
    token, `top_p=1.5` or NaN and a temperature of 0 or less were taken
    without a word).

    Examples:
        >>> check_settings(0.8, 40, None)
        (0.8, 40, None)
    """
    temperature = _inputs.check_number(temperature, "temperature")
    if not 0.0 < temperature < float("inf"):
        raise ValueError(
            f"`temperature` must be a finite number > 0; got "
            f"{temperature} (use top_k=1 for greedy decoding)."
        )
    if top_k is not None:
        top_k = _inputs.check_count(top_k, "top_k")
    if top_p is not None:
        top_p = _inputs.check_number(top_p, "top_p")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"`top_p` must be in (0, 1]; got {top_p}.")
    return temperature, top_k, top_p


def _sample_from_logits(logits, rng, temperature, top_k, top_p):
    """`sample_from_logits` with checked settings (the language models'
    loop, which checks them once)."""
    logits = np.asarray(logits, dtype="float64")
    if top_k == 1 or float(temperature) < GREEDY_BELOW:
        # greedy, as `make_sampler` (a temperature of 1e-310 made the
        # logits infinite and the probabilities NaN)
        return int(np.argmax(logits))
    logits = logits / float(temperature)
    if top_k is not None and top_k < len(logits):
        # exactly `top_k`, ties broken by index as `ops.top_k` does on
        # TensorFlow and JAX (the logits tied at the cutoff were all kept:
        # 4 of [2, 1, 1, 1] for top_k=2, and bfloat16 logits tie often).
        # PyTorch's `topk` keeps its own choice among ties, so MiniGPT's
        # samplers may keep other ids there (docs/reliability.md).
        keep = np.argsort(-logits, kind="stable")[:int(top_k)]
        kept = np.full_like(logits, -np.inf)
        kept[keep] = logits[keep]
        logits = kept
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-probabilities, kind="stable")
        cumulative = np.cumsum(probabilities[order])
        keep = order[: int(np.searchsorted(cumulative, top_p)) + 1]
        filtered = np.zeros_like(probabilities)
        filtered[keep] = probabilities[keep]
        probabilities = filtered / filtered.sum()
    return int(rng.choice(len(probabilities), p=probabilities))


def _keras_hub():
    import keras_hub

    return keras_hub


# Temperatures below this sample greedily: logits 1e-4 apart are then
# e^100 times apart in probability.
GREEDY_BELOW = 1e-6


def _nucleus_sampler():
    """keras-hub's `TopPSampler` with `sample_from_logits`' rule (the
    class, made at the first call: keras_hub is imported lazily).

    keras-hub's keeps the tokens whose preceding probabilities add up to
    at most `p`, from probabilities it does not renormalise over the top
    `k`: with `k`, p=0.5 of [0.40, 0.35, 0.25] and k=2 kept two tokens where
    `sample_from_logits` (and BigramLM) kept one, the same arguments
    drawing from other distributions in the two language models. Here:
    the smallest set of the likeliest tokens whose probabilities, among
    the top `k`, reach `p`."""
    global _NucleusSampler
    if _NucleusSampler is not None:
        return _NucleusSampler
    import keras
    from keras import ops

    samplers = _keras_hub().samplers

    class NucleusSampler(samplers.TopPSampler):
        def get_next_token(self, probabilities):
            cutoff = ops.shape(probabilities)[1]
            if self.k is not None:
                cutoff = self.k
            sorted_preds, sorted_indices = ops.top_k(
                probabilities, k=cutoff, sorted=True)
            # among the top k
            sorted_preds = sorted_preds / ops.sum(
                sorted_preds, axis=-1, keepdims=True)
            cumulative = ops.cumsum(sorted_preds, axis=-1)
            # a token is kept while the ones before it are short of p
            # (the first always: nothing is before it)
            keep = cumulative - sorted_preds < self.p
            kept = ops.where(keep, sorted_preds, ops.zeros_like(sorted_preds))
            token = keras.random.categorical(
                ops.log(kept), 1, seed=self.seed_generator, dtype="int32")
            output = ops.take_along_axis(sorted_indices, token, axis=-1)
            return ops.squeeze(output, axis=-1)

    _NucleusSampler = NucleusSampler
    return NucleusSampler


_NucleusSampler = None


def sampler_setting(temperature, top_k, top_p, vocabulary_size=None):
    """`(top_k, top_p)` as `make_sampler` reads checked settings (a top_k
    past the vocabulary is the vocabulary, a top_p of 1 none), or `None`
    where it samples greedily (`top_k=1`, a temperature below
    `GREEDY_BELOW`): MiniGPT keys its compiled loops on it."""
    if top_k is not None and vocabulary_size is not None:
        top_k = min(int(top_k), int(vocabulary_size))
    if top_k == 1 or float(temperature) < GREEDY_BELOW:
        return None
    return (None if top_k is None else int(top_k),
            None if top_p is None or float(top_p) >= 1.0 else float(top_p))


def make_sampler(temperature=1.0, top_k=None, top_p=None, seed=None,
                 vocabulary_size=None):
    """The keras-hub sampler for a choice of sampling settings.

    Args:
        temperature: divides the logits before the softmax.
        top_k: sample among the `top_k` likeliest tokens (`1`: greedy).
        top_p: nucleus sampling threshold (combined with `top_k` if both).
        seed: seed of the sampler's `SeedGenerator`.
        vocabulary_size: clips `top_k` to the number of tokens.

    Returns:
        A `keras_hub.samplers.Sampler`: `GreedySampler` for `top_k=1` or a
        temperature below `GREEDY_BELOW` (where sampling is greedy, and
        keras-hub's `softmax(logits / temperature)` overflows in a
        compiled loop: garbage text on TensorFlow and JAX at 1e-20),
        a `TopPSampler` (keeping what `sample_from_logits` keeps: the
        smallest set whose probabilities among the top `k` reach `p`),
        `TopKSampler` or `RandomSampler` otherwise.

    Examples:
        >>> type(make_sampler(top_k=1)).__name__
        'GreedySampler'
        >>> type(make_sampler(top_k=40, temperature=0.8)).__name__
        'TopKSampler'
        >>> type(make_sampler(top_k=40, temperature=1e-30)).__name__
        'GreedySampler'
    """
    temperature, top_k, top_p = check_settings(temperature, top_k, top_p)
    samplers = _keras_hub().samplers
    seed = _inputs.generator_seed(seed)
    setting = sampler_setting(temperature, top_k, top_p, vocabulary_size)
    if setting is None:
        return samplers.GreedySampler()
    top_k, top_p = setting
    if top_p is not None:
        return _nucleus_sampler()(p=top_p, k=top_k, seed=seed,
                                  temperature=temperature)
    if top_k is not None:
        return samplers.TopKSampler(k=int(top_k), seed=seed,
                                    temperature=temperature)
    return samplers.RandomSampler(seed=seed, temperature=temperature)
