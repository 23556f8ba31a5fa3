"""Choosing the next token: a numpy sampler and keras-hub's samplers.

`sample_from_logits` draws one token from a vector of logits in numpy (what
`CharLanguageModel` uses by default); `make_sampler` picks the keras-hub
sampler that the compiled MiniGPT loop runs for a choice of temperature,
top-k and top-p. keras_hub is imported only when `make_sampler` is called.
"""

import numpy as np


def sample_from_logits(logits, rng, temperature=1.0, top_k=None, top_p=None):
    """Draws one token id from a vector of logits.

    Args:
        logits: numpy array `(vocabulary_size,)`.
        rng: a `numpy.random.Generator`.
        temperature: divides the logits; below 1 sharpens, above flattens.
        top_k: keep only the `top_k` most likely tokens (`1` is greedy).
        top_p: keep the smallest set of most likely tokens whose
            probabilities add up to at least `top_p` (nucleus sampling).

    Returns:
        The chosen id (an int).

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> sample_from_logits(np.array([0.0, 3.0, 1.0]), rng, top_k=1)
        1
    """
    logits = np.asarray(logits, dtype="float64") / float(temperature)
    if top_k is not None and top_k < len(logits):
        cutoff = np.sort(logits)[-int(top_k)]
        logits = np.where(logits < cutoff, -np.inf, logits)
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-probabilities)
        cumulative = np.cumsum(probabilities[order])
        keep = order[: int(np.searchsorted(cumulative, top_p)) + 1]
        filtered = np.zeros_like(probabilities)
        filtered[keep] = probabilities[keep]
        probabilities = filtered / filtered.sum()
    if top_k == 1:
        return int(np.argmax(probabilities))
    return int(rng.choice(len(probabilities), p=probabilities))


def _keras_hub():
    import keras_hub

    return keras_hub


# Temperatures below this sample greedily: logits 1e-4 apart are then
# e^100 times apart in probability.
GREEDY_BELOW = 1e-6


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
        `TopPSampler`, `TopKSampler` or `RandomSampler` otherwise.

    Examples:
        >>> type(make_sampler(top_k=1)).__name__
        'GreedySampler'
        >>> type(make_sampler(top_k=40, temperature=0.8)).__name__
        'TopKSampler'
        >>> type(make_sampler(top_k=40, temperature=1e-30)).__name__
        'GreedySampler'
    """
    samplers = _keras_hub().samplers
    if top_k is not None and vocabulary_size is not None:
        top_k = min(int(top_k), int(vocabulary_size))
    if top_k == 1 or float(temperature) < GREEDY_BELOW:
        return samplers.GreedySampler()
    if top_p is not None and float(top_p) < 1.0:
        return samplers.TopPSampler(p=float(top_p), k=top_k, seed=seed,
                                    temperature=temperature)
    if top_k is not None:
        return samplers.TopKSampler(k=int(top_k), seed=seed,
                                    temperature=temperature)
    return samplers.RandomSampler(seed=seed, temperature=temperature)
