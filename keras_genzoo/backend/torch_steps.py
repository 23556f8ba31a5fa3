"""Custom training steps, input gradients and compiled inference on PyTorch."""

import contextlib
import math
import operator
import threading
import types
import warnings
import weakref

import keras
import numpy as np
import torch

from keras_genzoo.backend.common import to_numpy as common_to_numpy
from keras_genzoo.backend.common import (  # noqa: F401 - exported
    StepOps,
    as_fit_batch,
    batch_size_of,
    collecting_losses,
    keep_state_on_error,
    draw_for_replica,
    scale_loss_for_replicas,
    variable_scope,
)


def to_numpy(x):
    """`keras_genzoo.backend.common.to_numpy`: a tensor through
    `Tensor.numpy()` (numpy 2 warned converting any tensor itself;
    bfloat16 through float32, as Keras converts it); anything else as
    Keras converts it."""
    if isinstance(x, keras.Variable):
        x = x.value
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            import ml_dtypes

            return x.float().numpy().astype(ml_dtypes.bfloat16)
        return x.numpy().copy()
    return common_to_numpy(x)


def input_gradients(fn, x):
    """Gradient of `sum(fn(x))` with respect to `x`, differentiable again.

    Args:
        fn: a function of one tensor (e.g. a critic applied to images).
        x: the input tensor (detached from any graph here).

    Returns:
        A tensor shaped like `x`, part of the autograd graph
        (`create_graph=True`), so a penalty on it trains the critic.
    """
    # Keras evaluates under torch.no_grad(): the gradients are needed there
    # too, but not a graph of them (nothing is trained).
    training = torch.is_grad_enabled()
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        y = fn(x)
        (grads,) = torch.autograd.grad(y.sum(), x, create_graph=training)
    return grads


def prepare_variables(model):
    """Lays out `model`'s convolution kernels so PyTorch can train them.

    Works around a PyTorch bug (2.13, CPU): Keras' torch `conv` permutes a
    `(k, k, in, 1)` kernel to `(1, in, k, k)` with a stride of 1 on its
    first axis, and the backward pass of `slow_conv2d` (what CPU PyTorch
    runs for a batch of one) then fails with "grad_weight must be
    contiguous". That is any grayscale image decoder, trained on a batch of
    one image: also the last, partial batch of an epoch. The kernel keeps
    its shape and values; only the stride of its size-1 axis changes (to
    the one a freshly made channels-first kernel has), which PyTorch then
    keeps through every update and load (`copy_`).

    It also gives each `keras.layers.BatchNormalization` its reduction axes
    as a tuple, which `torch.compile` can trace (see below).
    """
    with torch.no_grad():
        for variable in model.trainable_variables:
            tensor = variable.value
            if tensor.ndim not in (4, 5) or tensor.shape[-1] != 1 or (
                    tensor.stride()[-1] == tensor.numel()):
                continue
            # the size-1 output axis made outermost in memory
            last_first = (tensor.ndim - 1,) + tuple(range(tensor.ndim - 1))
            fresh = torch.empty(tuple(tensor.permute(last_first).shape),
                                dtype=tensor.dtype, device=tensor.device)
            fresh.copy_(tensor.permute(last_first))
            tensor.data = fresh.permute(
                tuple(range(1, tensor.ndim)) + (0,))
    # Keras' `BatchNormalization` keeps its reduction axes in a list, which
    # its attribute tracking wraps in a `TrackedList`; dynamo cannot pass
    # one to `moments` and broke a compiled step at every such layer. The
    # same axes as a tuple (the layer only reads them).
    for layer in model._flatten_layers():
        axes = getattr(layer, "_reduction_axes", None)
        if (isinstance(layer, keras.layers.BatchNormalization)
                and axes is not None and not isinstance(axes, tuple)):
            object.__setattr__(layer, "_reduction_axes", tuple(axes))


def group_normalization(x, groups, gamma, beta, epsilon):
    """Group normalisation over the last axis of `x`, in one PyTorch op.

    Computes what `keras.layers.GroupNormalization(axis=-1)` computes, with
    `torch.nn.functional.group_norm` in place of Keras' dozen ops (reshape,
    moments, rsqrt, broadcasts): on a CPU, 3.6x faster forward and backward
    for a batch of 2 28x28x32 maps, 4.7x for 128 14x14x64 (measured, one
    thread); on a GPU, fewer kernel launches.

    Args:
        x: a channels-last tensor of rank 2 or more.
        groups: number of groups; divides the channels.
        gamma: per-channel scale (a tensor), or `None`.
        beta: per-channel offset (a tensor), or `None`.
        epsilon: added to the variance.

    Returns:
        The normalised `x`, in float32 at least (as Keras' layer computes
        it, before its cast to the compute dtype; float64 stays float64).
    """
    dtype = torch.promote_types(x.dtype, torch.float32)
    channels_first = torch.movedim(x, -1, 1).to(dtype)
    gamma = None if gamma is None else gamma.to(dtype)
    beta = None if beta is None else beta.to(dtype)
    if channels_first.numel() == groups:
        # one value per group (a batch of 1, one channel a group, 1x1):
        # normalised to 0, as Keras' layer gives; PyTorch's `group_norm`
        # refuses it ("Expected more than 1 value per channel")
        y = torch.zeros_like(channels_first)
        if beta is not None:
            y = y + beta.reshape((1, -1) + (1,) * (y.dim() - 2))
        return torch.movedim(y, 1, -1)
    y = torch.nn.functional.group_norm(channels_first, groups, gamma, beta,
                                       epsilon)
    return torch.movedim(y, 1, -1)


def _positions(start, length, device):
    """`start, start + 1, ..., start + length - 1` from a scalar tensor
    `start`, as int64 indices on `device`, without reading it on the
    host."""
    return (start.to(device=device, dtype=torch.long).reshape(())
            + torch.arange(length, device=device))


def _layer_norm(x, gamma, beta, epsilon):
    """Layer normalisation over the last axis in float32 at least (as
    `keras.ops.layer_normalization` computes it), back in the dtype of
    `x`."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    return torch.nn.functional.layer_norm(
        x.to(dtype), (x.shape[-1],), gamma.to(dtype), beta.to(dtype),
        epsilon).to(x.dtype)


def causal_self_attention_block(x, weights, num_heads, epsilon,
                                dropout=None, cache=None,
                                cache_update_index=0):
    """A pre-norm GPT block (`layers.CausalSelfAttentionBlock`) in torch ops.

    `x + attention(norm(x))`, then `x + mlp(norm(x))`: the computation of
    the layer's Keras ops, as nanoGPT's `Block` writes it in PyTorch (one
    `addmm` per projection, `scaled_dot_product_attention`): Keras' eager
    PyTorch backend runs every Keras op through Python checks of dtypes,
    devices and symbolic inputs, and a GPU at these model sizes waits for
    that Python. Measured on a 2-core CPU (`benchmarks/gpt_step_speed.py
    --block-types fused,fused_keras_ops`), MiniGPT on nanoGPT's CPU recipe:
    a training step 90.6 -> 81.6 ms, an inference forward pass 29.7 ->
    24.8 ms; at `--recipe overhead` (no arithmetic to speak of) 27.5 ->
    24.1 and 8.8 -> 6.5 ms; generating 60 characters (with the cache)
    19.2 -> 8.9 ms per character.

    Args:
        x: `(batch, length, width)` in the layer's compute dtype.
        weights: the layer's twelve weights by their attribute names
            (`attention_norm_gamma`, `qkv_kernel` `(width, 3, heads,
            head_dim)`, `attention_output_kernel` `(heads, head_dim,
            width)`, `mlp_kernel`, ...), read in its compute dtype
            (normalisation parameters in float32).
        num_heads: attention heads.
        epsilon: the layer normalisations' epsilon.
        dropout: `None`, or a function dropping out a tensor (training with
            dropout): applied to the attention probabilities, then to each
            branch's output, in the order of the layer's Keras ops, so the
            same seed draws the same masks.
        cache: optional keys and values of earlier positions,
            `(batch, 2, max_length, num_heads, head_dim)`, as the layer's
            `cache` argument.
        cache_update_index: position of `x[:, 0]` (with `cache`).

    Returns:
        The block's output, shaped and typed as `x`; with `cache`, the
        output and the cache updated at positions `cache_update_index ..
        + length - 1`.
    """
    F = torch.nn.functional
    w = weights
    batch, length, width = x.shape
    head_dim = width // num_heads
    rows = batch * length

    def norm(t, name):
        return _layer_norm(t, w[name + "_gamma"], w[name + "_beta"], epsilon)

    qkv = torch.addmm(w["qkv_bias"].reshape(-1),
                      norm(x, "attention_norm").reshape(rows, width),
                      w["qkv_kernel"].reshape(width, 3 * width))
    qkv = qkv.view(batch, length, 3, num_heads, head_dim)
    mask = None  # causal over `length` positions
    if cache is not None:  # keys and values written at their positions
        index = cache_update_index
        written = qkv[:, :, 1:].transpose(1, 2).to(cache.dtype)
        if torch.is_tensor(index):
            # positions as a tensor: a slice at a tensor start reads it on
            # the host (a wait for the device at each layer and token, and
            # a graph break under torch.compile)
            cache = cache.index_copy(
                2, _positions(index, length, x.device), written)
        else:
            cache = cache.clone()
            cache[:, :, index:index + length] = written
        # (batch, heads, max_length, head_dim)
        k, v = cache[:, 0].transpose(1, 2), cache[:, 1].transpose(1, 2)
        q = qkv[:, :, 0].transpose(1, 2)
        # query i (position index + i) sees keys 0 .. index + i
        positions = torch.arange(length, device=x.device) + index
        mask = (torch.arange(cache.shape[2], device=x.device)[None, :]
                <= positions[:, None])
    else:  # (3, batch, heads, length, head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    if dropout is None:
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None)
    else:  # the probabilities dropped out explicitly, as the layer does
        scores = torch.matmul(q, k.transpose(-1, -2)).float() / math.sqrt(
            head_dim)
        if mask is None:
            mask = torch.ones(length, length, dtype=torch.bool,
                              device=x.device).tril()
        probs = torch.softmax(scores.masked_fill(~mask, -1e9), dim=-1)
        attended = torch.matmul(dropout(probs).to(v.dtype), v)
    attended = torch.addmm(
        w["attention_output_bias"],
        attended.transpose(1, 2).reshape(rows, width),
        w["attention_output_kernel"].reshape(width, width)).view(
            batch, length, width)
    if dropout is not None:
        attended = dropout(attended)
    x = x + attended
    h = torch.addmm(w["mlp_bias"], norm(x, "mlp_norm").reshape(rows, width),
                    w["mlp_kernel"])
    h = torch.addmm(w["mlp_output_bias"], F.gelu(h), w["mlp_output_kernel"])
    h = h.view(batch, length, width)
    if dropout is not None:
        h = dropout(h)
    return x + h if cache is None else (x + h, cache)


def token_and_position_embedding(ids, token_table, position_table,
                                 start_index=0):
    """Token plus position embeddings, in two PyTorch ops.

    What MiniGPT's keras-hub `TokenAndPositionEmbedding` (no masking, no
    explicit positions) computes, as nanoGPT writes it: `embedding` of the
    ids plus the rows of the position table from `start_index` on. Keras'
    layer runs three layer calls and their ops on eager PyTorch; with the
    head and the loss below, MiniGPT's inference forward pass at
    `benchmarks/gpt_step_speed.py --recipe overhead` took 5.6 -> 3.7 ms
    (measured on a 2-core CPU, one thread).

    Args:
        ids: int ids `(batch, length)`.
        token_table: `(vocabulary_size, width)`.
        position_table: `(max_length, width)`, of the same dtype.
        start_index: position of `ids[:, 0]` (an int or a scalar tensor).

    Returns:
        `(batch, length, width)` in the dtype of `position_table`.
    """
    length = ids.shape[-1]
    if torch.is_tensor(start_index):
        # rows gathered at tensor positions: `narrow` at a tensor start
        # reads it on the host (a wait for the device at each token, and a
        # graph break under torch.compile); a position past the table is
        # an error here too
        positions = position_table.index_select(
            0, _positions(start_index, length, position_table.device))
    else:
        # `narrow`, as Keras' `slice`: a window past the table is an
        # error, not a shorter slice
        positions = torch.narrow(position_table, 0, start_index, length)
    tokens = torch.nn.functional.embedding(ids.long(), token_table)
    return tokens.to(positions.dtype) + positions


def tied_embedding_logits(x, gamma, beta, epsilon, token_table):
    """A final layer normalisation, then logits against the token table.

    MiniGPT's head as nanoGPT writes it: `LayerNormalization` (in float32
    at least, as Keras' `ops.layer_normalization`, then back to the dtype
    of `x`) and the tied reverse embedding (`x @ token_table.T`, in the
    wider of the two dtypes, as `keras.ops.matmul` promotes them).

    Args:
        x: `(batch, length, width)`.
        gamma: the normalisation's scale `(width,)`.
        beta: its offset `(width,)`.
        epsilon: added to the variance.
        token_table: `(vocabulary_size, width)`.

    Returns:
        Logits `(batch, length, vocabulary_size)`.
    """
    normed = _layer_norm(x, gamma, beta, epsilon)
    dtype = torch.promote_types(normed.dtype, token_table.dtype)
    # float16 products on a CPU in float32, as Keras' `matmul` computes them
    wide = (torch.float32 if dtype == torch.float16
            and x.device.type == "cpu" else dtype)
    return torch.matmul(normed.to(wide), token_table.to(wide).t()).to(dtype)


def next_token_cross_entropy(logits, targets):
    """Mean cross-entropy of the targets under the logits, in nats.

    `mean(logsumexp(logits) - logits[target])` over every position, in
    float32: the language models' loss as one PyTorch op
    (`cross_entropy`, a fused log-softmax and gather) instead of Keras'
    eight.

    Args:
        logits: `(..., vocabulary_size)`, any float dtype.
        targets: int ids shaped as `logits` without its last axis.

    Returns:
        A float32 scalar.
    """
    logits = logits.float()
    # no target is skipped (PyTorch's default skips -100): a negative id is
    # an error, not a position left out of the mean
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1).long(),
        ignore_index=-(2 ** 62))


class TorchStep(StepOps):
    """`StepOps` on PyTorch: `backward()` after `zero_grad()`."""

    def __init__(self, model):
        self.model = model

    def minimize(self, optimizer, objective, variables):
        variables = list(variables)
        # Without zero_grad a generator's backward pass leaves gradients in
        # the discriminator (and vice versa) that the next update would add.
        self.model.zero_grad()
        loss, logs = objective()
        optimizer.scale_loss(loss).backward()
        grads = [v.value.grad for v in variables]
        with torch.no_grad():
            optimizer.apply(grads, variables)
        return logs

    def read(self, variables):
        return [v.value.detach() for v in variables]

    def assign(self, variables, values):
        with torch.no_grad():
            for variable, value in zip(variables, values):
                variable.assign(value)

    def run(self, fn):
        with torch.no_grad():
            return fn()


def custom_train_step(model, schedule, data):
    """A model's `train_step` from a backend-free schedule.

    Args:
        model: the model; `model.record_step(logs)` turns the schedule's
            logs into the metric results `fit` shows.
        schedule: `schedule(data, step)` returning a dict of logs; `step`
            is a `StepOps`.
        data: one batch as the dataset yields it.

    Returns:
        The logs: the results of `model.metrics`.
    """
    data = as_fit_batch(data)
    logs = schedule(data, TorchStep(model))
    model.zero_grad()
    with torch.no_grad():
        logs = {k: v.detach() if hasattr(v, "detach") else v
                for k, v in logs.items()}
        return model.record_step(logs, batch_size=batch_size_of(data))


# `evaluate` and `validation_data` run a schedule that makes no updates, the
# same way (on JAX the state then has no optimizer part).
custom_test_step = custom_train_step


def compile_loop_step(model, fn):
    """One step of an inference loop, through `torch.compile` when `model`
    was compiled with `jit_compile=True`; `fn` as it is otherwise.

    `compile_inference` runs a sampling loop eagerly here (keras-hub's
    sampler is a Python `while` on PyTorch: dynamo would unroll it), so each
    step is Keras' and PyTorch's Python at every op: MiniGPT's next-token
    logits compiled on their own took 1.47 -> 0.49 ms per token with the
    key/value cache and 3.1-3.5 -> 1.3-1.9 ms per window past the context
    (nanoGPT's CPU recipe, batch 1, a 2-core CPU, measured 2026-12-02).
    Compiling both took 4.8-9 s there (the model's first `generate`;
    other sampler settings reuse them), so it pays after a few thousand
    characters on a CPU, and PyTorch's default (`jit_compile` "auto":
    eager) keeps it off. The step must be one graph (no tensor read on the
    host): a graph break would recompile it at every new position.

    Args:
        model: the model whose variables `fn` reads.
        fn: a function of tensors using `keras.ops`, called once per step.

    Returns:
        `torch.compile(fn)`, or `fn`.
    """
    if getattr(model, "jit_compile", False) is not True:
        return fn
    return torch.compile(_with_own_code(fn))


def _with_own_code(fn):
    """`fn` (a function or a bound method) with a code object of its own.

    Dynamo keeps its compiled versions per code object, at most
    `torch._dynamo.config.recompile_limit` (8) of them, and its guards on
    Keras' layer names (name scopes) fail for every new model: with the
    code shared by all models, the ninth model of a process would run its
    steps uncompiled. With a copy per compiled step, each model has its
    own versions, freed with the model.
    """
    method_of = getattr(fn, "__self__", None)
    function = getattr(fn, "__func__", fn)
    copy = types.FunctionType(
        function.__code__.replace(), function.__globals__,
        function.__name__, function.__defaults__, function.__closure__)
    copy.__kwdefaults__ = function.__kwdefaults__
    copy.__qualname__ = function.__qualname__
    return copy if method_of is None else types.MethodType(copy, method_of)


def compile_inference(model, fn, state_variables=()):
    """Runs `fn(*tensors)` (e.g. a sampling loop) eagerly without autograd.

    Args:
        model: the model whose variables `fn` reads.
        fn: a function of tensors using `keras.ops`.
        state_variables: other variables `fn` reads and writes (sampler
            seeds); PyTorch updates them in place.

    Returns:
        A callable with the signature of `fn`.
    """
    del model, state_variables

    def run(*args):
        with torch.no_grad():
            return fn(*args)

    return run


def _sampler_step(sampler):
    """keras-hub's sampling step after the logits (the `body` of
    `Sampler.__call__` without its mask): the sampler's probabilities and
    next token, written at `index` as a comparison with the positions
    rather than a slice at a tensor position."""

    def step(prompt, logits, index):
        probabilities = sampler.compute_probabilities(logits)
        token = sampler.get_next_token(probabilities).to(prompt.dtype)
        positions = torch.arange(prompt.shape[-1], device=prompt.device)
        prompt = torch.where(positions == index, token[:, None], prompt)
        return prompt, index + 1

    return step


def _runs_keras_hubs_body(sampler):
    """Whether `sampler` samples with `Sampler.__call__`'s loop and body
    (greedy, top-k, top-p, random), not a loop of its own (beam,
    contrastive, speculative sampling)."""
    from keras_hub.src.samplers.sampler import Sampler

    kind = type(sampler)
    return (kind.__call__ is Sampler.__call__
            and kind.run_loop is Sampler.run_loop
            and kind.get_next_token is not Sampler.get_next_token)


def _keras_hubs_seed(sampler):
    """The `SeedGenerator` of one of keras-hub's random, top-k and top-p
    samplers, whose step draws once from it (`keras.random.categorical`),
    or `None` for any other sampler."""
    from keras.src.random.seed_generator import SeedGenerator
    from keras_hub.src.samplers.random_sampler import RandomSampler
    from keras_hub.src.samplers.sampler import Sampler
    from keras_hub.src.samplers.top_k_sampler import TopKSampler
    from keras_hub.src.samplers.top_p_sampler import TopPSampler

    from keras_genzoo.sampling import _nucleus_sampler

    kind = type(sampler)
    # (the zoo's top-p sampler too: keras-hub's with another rule, one
    # draw as theirs)
    theirs = {RandomSampler.get_next_token, TopKSampler.get_next_token,
              TopPSampler.get_next_token,
              _nucleus_sampler().get_next_token}
    own_probabilities = (kind.compute_probabilities
                         is Sampler.compute_probabilities)
    if kind.get_next_token not in theirs or not own_probabilities:
        return None
    seed = getattr(sampler, "seed_generator", None)
    if (type(seed) is not SeedGenerator
            or not isinstance(seed.state.value, torch.Tensor)):
        return None
    return seed


@contextlib.contextmanager
def _seeds_on_host(seed):
    """Holds `seed`'s state (a `SeedGenerator`'s, or `None`) on the host
    while it lasts, where `traceable_steps()`' `categorical` draws from it
    and moves it on as Keras does (`keras_genzoo::host_seeded_categorical`):
    Keras' draws read their seed on the host (it seeds a `torch.Generator`
    with an int), which on a GPU is a wait for the device at every token.
    The state is read once here and written back once at the end."""
    if (seed is None or not _TRACEABLE.replaces("categorical")
            or getattr(seed, "_genzoo_host_state", None) is not None):
        # (already held: a `run_sampler` inside another's step, or in
        # another thread, draws from the same host copy)
        yield
        return
    state = seed.state
    host = seed.__dict__.get("_genzoo_host_buffer")
    if host is None or host.dtype != state.value.dtype:
        # one tensor per seed generator, kept: a compiled step reads it as
        # an input of its graph
        host = seed._genzoo_host_buffer = torch.empty(
            state.value.shape, dtype=state.value.dtype, device="cpu")
    host.copy_(state.value)
    seed._genzoo_host_state = host
    try:
        yield
    finally:
        seed._genzoo_host_state = None
        state.assign(host.to(state.value.device))


def run_sampler(model, sampler, next_fn, prompt, cache=None, index=0):
    """keras-hub's `sampler(next_fn, prompt, cache=cache, index=index,
    model=model)` (without `mask` and `stop_token_ids`): fills `prompt`
    from position `index` to its end, one token per step.

    keras-hub's loop is a Python `while` on PyTorch (Keras'
    `ops.while_loop`) that reads its condition and its iteration count on
    the host at every token: on a GPU, two waits for the device per token.
    Here the number of steps is read once, and each step is `next_fn`
    followed by the sampler's part of keras-hub's step (probabilities,
    next token, written at `index`), which for a model compiled with
    `jit_compile=True` is compiled with `torch.compile`, once per sampler
    and prompt shape, and runs eagerly otherwise. The whole loop then runs
    in `traceable_steps()`, where keras-hub's `categorical` draw is a
    custom op drawing Keras' numbers (the context is process-wide while it
    lasts: see there). Tests check on a CPU that the text is keras-hub's,
    token for token. keras-hub's random, top-k and top-p samplers draw
    from their seed's state held on the host for the loop (`_seeds_on_host`:
    Keras seeds a `torch.Generator` with an int, read on the host at every
    draw), so that the loop itself reads nothing of the device per token,
    greedy or seeded (counted on a CPU; on a GPU `benchmarks/host_syncs.py`
    counts CUDA's waits); the loop then runs in `traceable_steps()` for an
    eager model too. `next_fn` should read `prompt` and `index` without a slice
    at a tensor position (e.g. `keras.ops.take`), which PyTorch reads on
    the host. A sampler with a loop of its own (beam, contrastive,
    speculative) runs as it is.

    Args:
        model: the model whose variables `next_fn` reads; its
            `jit_compile` setting decides.
        sampler: a `keras_hub.samplers.Sampler`.
        next_fn: `next(prompt, cache, index) -> (logits, hidden_states,
            cache)`, keras-hub's protocol.
        prompt: int ids `(batch, length)`, filled from `index` on.
        cache: what `next_fn` carries from step to step (`()` for `None`,
            as keras-hub passes it).
        index: the first position to fill (an int or an int tensor).

    Returns:
        The filled `prompt`.
    """
    if not _runs_keras_hubs_body(sampler):
        return sampler(next_fn, prompt, cache=cache, index=index,
                       model=model)
    prompt = keras.ops.convert_to_tensor(prompt)
    index = torch.as_tensor(index, dtype=torch.int32).to(prompt.device)
    cache = () if cache is None else cache
    compiled = getattr(model, "jit_compile", False) is True
    if not compiled:
        step = _sampler_step(sampler)
    elif getattr(sampler, "_genzoo_compiled_step", None) is not None:
        step = sampler._genzoo_compiled_step
    else:
        # kept on the sampler (it closes over it): freed with it. Static
        # shapes: one graph for each prompt shape (two for MiniGPT), not
        # automatic dynamic ones after the second
        step = sampler._genzoo_compiled_step = torch.compile(
            _with_own_code(_sampler_step(sampler)), dynamic=False)
    seed = _keras_hubs_seed(sampler)
    context = (traceable_steps() if compiled or seed is not None
               else contextlib.nullcontext())
    with torch.no_grad(), context, _seeds_on_host(seed):
        for _ in range(prompt.shape[-1] - int(index)):
            logits, _, cache = next_fn(prompt, cache, index)
            prompt, index = step(prompt, logits, index)
    return prompt


# -- compiled steps without Keras' graph breaks ----------------------------
#
# Keras draws seeded random numbers on PyTorch through a `torch.Generator`
# made in a function that disables dynamo (`torch_seed_generator` in
# keras/src/backend/torch/random.py; PyTorch cannot trace a generator,
# pytorch#88576), and its binary cross-entropy asks
# `torch.backends.mps.is_available()`, which dynamo cannot put in a graph.
# In a compiled step each was a graph break, and after a break dynamo
# compiles the rest of the step piece by piece, at each Keras layer call
# again (they share their code), until its recompile limit: those pieces
# then run eagerly. A GAN's step (seeded noise, seeded dropout) compiled
# slower than it ran eagerly. The draws below are PyTorch custom ops (one
# opaque node in the graph each) that seed the same generator the same way
# and draw the same numbers; the cross-entropy reads the MPS check once.


def _generator(seed, device=None):
    """The `torch.Generator` Keras' `torch_seed_generator` makes of `seed`
    (a `(2,)` int32 seed tensor), on `device` (default: the seed's)."""
    generator = torch.Generator(device=seed.device if device is None
                                else device)
    generator.manual_seed(int(seed[0] + seed[1]) & 0xFFFFFFFF)
    return generator


def _next_host_seed(state):
    """Keras' `SeedGenerator.next()` on a seed state held on the host
    (`_seeds_on_host`): the seed to draw with, and the state moved on by
    `[0, 1]`, without waiting for the device."""
    value = state * 1
    state.add_(torch.tensor([0, 1], dtype=state.dtype))
    return value


def _define_ops():
    """Registers the seeded draws as PyTorch custom ops (once, at the first
    compiled step; `torch.library.custom_op` is PyTorch 2.4's)."""

    @torch.library.custom_op("keras_genzoo::seeded_normal", mutates_args=())
    def _seeded_normal(seed: torch.Tensor, shape: list[int], mean: float,
                       stddev: float, dtype: torch.dtype) -> torch.Tensor:
        return torch.normal(mean, stddev, size=shape,
                            generator=_generator(seed), dtype=dtype,
                            device=seed.device)

    @torch.library.custom_op("keras_genzoo::seeded_rand", mutates_args=())
    def _seeded_rand(seed: torch.Tensor, shape: list[int],
                     dtype: torch.dtype) -> torch.Tensor:
        return torch.rand(size=shape, generator=_generator(seed), dtype=dtype,
                          device=seed.device)

    @torch.library.custom_op("keras_genzoo::seeded_randint", mutates_args=())
    def _seeded_randint(seed: torch.Tensor, shape: list[int], low: int,
                        high: int, dtype: torch.dtype) -> torch.Tensor:
        return torch.randint(low=low, high=high, size=shape,
                             generator=_generator(seed), dtype=dtype,
                             device=seed.device)

    @torch.library.custom_op("keras_genzoo::seeded_bernoulli", mutates_args=())
    def _seeded_bernoulli(seed: torch.Tensor, shape: list[int],
                          p: float) -> torch.Tensor:
        return torch.bernoulli(torch.full(shape, p, device=seed.device),
                               generator=_generator(seed))

    @torch.library.custom_op("keras_genzoo::seeded_categorical",
                             mutates_args=())
    def _seeded_categorical(seed: torch.Tensor, logits: torch.Tensor,
                            num_samples: int) -> torch.Tensor:
        # the softmax too, as Keras' eager one (a compiled kernel's could
        # round differently and move a draw at a probability boundary)
        return torch.multinomial(torch.softmax(logits, dim=-1), num_samples,
                                 replacement=True, generator=_generator(seed))

    @torch.library.custom_op("keras_genzoo::host_seeded_categorical",
                             mutates_args=("state",))
    def _host_seeded_categorical(state: torch.Tensor, logits: torch.Tensor,
                                 num_samples: int) -> torch.Tensor:
        # `_seeded_categorical` of a seed state held on the host
        # (`_seeds_on_host`), moved on here: reading it does not wait for
        # the device. Keras' generator is on the device the draw runs on
        seed = _next_host_seed(state)
        return torch.multinomial(
            torch.softmax(logits, dim=-1), num_samples, replacement=True,
            generator=_generator(seed, logits.device))

    @_seeded_normal.register_fake
    def _(seed, shape, mean, stddev, dtype):
        return torch.empty(shape, dtype=dtype, device=seed.device)

    @_seeded_rand.register_fake
    def _(seed, shape, dtype):
        return torch.empty(shape, dtype=dtype, device=seed.device)

    @_seeded_randint.register_fake
    def _(seed, shape, low, high, dtype):
        return torch.empty(shape, dtype=dtype, device=seed.device)

    @_seeded_bernoulli.register_fake
    def _(seed, shape, p):
        return torch.empty(shape, device=seed.device)

    @_seeded_categorical.register_fake
    def _(seed, logits, num_samples):
        return logits.new_empty((*logits.shape[:-1], num_samples),
                                dtype=torch.int64)

    @_host_seeded_categorical.register_fake
    def _(state, logits, num_samples):
        return logits.new_empty((*logits.shape[:-1], num_samples),
                                dtype=torch.int64)


def _traceable_keras():
    """What `traceable_steps` puts in place of Keras' PyTorch functions:
    `[(module, name, replacement)]`. Keras' `normal`, `uniform`, `randint`,
    `dropout` and `categorical` (keras-hub's samplers) with seeded draws
    through the custom ops above (anything else, e.g. a tensor mean, the
    meta device or an unseeded dropout, goes to Keras' own function), and
    its `binary_crossentropy` with the MPS check read once."""
    from keras.src.backend import epsilon
    from keras.src.backend.config import floatx
    from keras.src.backend.torch import nn as keras_nn
    from keras.src.backend.torch import random as keras_random
    from keras.src.backend.torch.core import (
        convert_to_tensor,
        get_device,
        to_torch_dtype,
    )
    from keras.src.layers.layer import Layer
    from keras.src.random.seed_generator import SeedGenerator, draw_seed

    _define_ops()
    concrete_noise_shape = keras_random._get_concrete_noise_shape
    own = {name: getattr(keras_random, name)
           for name in ("normal", "uniform", "randint", "dropout",
                        "categorical")}
    numbers = (int, float)
    mps = torch.backends.mps.is_available()

    def seed_tensor(seed):
        # `draw_seed` on Keras' device, but `SeedGenerator.next()` adds
        # [0, 1] to the state as a NumPy array, which dynamo cannot trace
        if (not isinstance(seed, SeedGenerator)
                or type(seed).next is not SeedGenerator.next
                or not isinstance(seed.state.value, torch.Tensor)):
            return draw_seed(seed).to(get_device())
        host = getattr(seed, "_genzoo_host_state", None)
        if host is not None:
            # another draw from a sampler's seed held on the host by
            # `run_sampler` (`_seeds_on_host`): from the host copy too
            return _next_host_seed(host).to(get_device())
        value = seed.state.value * 1
        seed.state.assign(value + torch.tensor([0, 1], dtype=value.dtype,
                                               device=value.device))
        return value.to(get_device())

    def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
        if (get_device() == "meta" or not isinstance(mean, numbers)
                or not isinstance(stddev, numbers)):
            return own["normal"](shape, mean, stddev, dtype, seed)
        return torch.ops.keras_genzoo.seeded_normal(
            seed_tensor(seed), [int(d) for d in shape],
            float(mean), float(stddev), to_torch_dtype(dtype or floatx()))

    def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
        if get_device() == "meta":
            return own["uniform"](shape, minval, maxval, dtype, seed)
        rand = torch.ops.keras_genzoo.seeded_rand(
            seed_tensor(seed),
            [int(d) for d in shape] or [1], to_torch_dtype(dtype or floatx()))
        output = (maxval - minval) * rand + minval
        return output if len(shape) else output[0]

    def randint(shape, minval, maxval, dtype="int32", seed=None):
        if (get_device() == "meta" or not isinstance(minval, int)
                or not isinstance(maxval, int)):
            return own["randint"](shape, minval, maxval, dtype, seed)
        return torch.ops.keras_genzoo.seeded_randint(
            seed_tensor(seed), [int(d) for d in shape],
            minval, maxval, to_torch_dtype(dtype))

    def categorical(logits, num_samples, dtype="int32", seed=None):
        if (get_device() == "meta" or not isinstance(num_samples, int)
                or isinstance(num_samples, bool)):
            return own["categorical"](logits, num_samples, dtype, seed)
        host = (getattr(seed, "_genzoo_host_state", None)
                if isinstance(seed, SeedGenerator) else None)
        if host is not None:
            # a sampler's seed inside `run_sampler` (`_seeds_on_host`)
            return torch.ops.keras_genzoo.host_seeded_categorical(
                host, convert_to_tensor(logits), num_samples).type(
                    to_torch_dtype(dtype))
        return torch.ops.keras_genzoo.seeded_categorical(
            seed_tensor(seed), convert_to_tensor(logits), num_samples).type(
                to_torch_dtype(dtype))

    def dropout(inputs, rate, noise_shape=None, seed=None):
        unseeded = seed is None or (isinstance(seed, SeedGenerator)
                                    and seed._initial_seed is None)
        if (not isinstance(rate, numbers) or rate in (0.0, 1.0)
                or get_device() == "meta" or (unseeded
                                              and noise_shape is None)):
            return own["dropout"](inputs, rate, noise_shape, seed)
        keep = 1.0 - rate
        shape = concrete_noise_shape(inputs, noise_shape)
        mask = torch.ops.keras_genzoo.seeded_bernoulli(
            seed_tensor(seed), [int(d) for d in shape],
            keep).bool()
        mask = torch.broadcast_to(mask, inputs.shape)
        return torch.where(mask, inputs / keep,
                           torch.zeros_like(inputs, dtype=inputs.dtype))

    def binary_crossentropy(target, output, from_logits=False):
        # Keras 3.15's, but `torch.backends.mps.is_available()` read once
        target = convert_to_tensor(target)
        output = convert_to_tensor(output)
        if (mps and target.ndim > 1 and output.ndim == target.ndim
                and target.shape[-1] == 1 and output.shape[-1] == 1):
            target = torch.squeeze(target, -1).contiguous()
            output = torch.squeeze(output, -1).contiguous()
        if target.shape != output.shape:
            raise ValueError(
                "Arguments `target` and `output` must have the same shape. "
                f"Received: target.shape={target.shape}, "
                f"output.shape={output.shape}")
        if from_logits:
            return torch.nn.functional.binary_cross_entropy_with_logits(
                output, target, reduction="none")
        output = torch.clip(output, epsilon(), 1.0 - epsilon())
        return torch.nn.functional.binary_cross_entropy(
            output, target, reduction="none")

    def losses(self):
        # Keras 3.15's `Layer.losses`, but it tests `_losses_override` (a
        # Keras `TrackedList`, a `list` subclass) with `len()`: dynamo in
        # PyTorch 2.11 takes an empty one as true, so a compiled step's
        # `model.losses` was always `[]`, every regularization and
        # `add_loss` term lost (and `ops.sum(model.losses)` failed)
        if len(self._losses_override):
            return self._losses_override
        losses = self._get_own_losses()
        for layer in self._flatten_layers(include_self=False):
            losses.extend(layer._get_own_losses())
        losses.extend(self._get_regularization_losses())
        return losses

    replacements = [(keras_random, "normal", normal),
                    (keras_random, "uniform", uniform),
                    (keras_random, "randint", randint),
                    (keras_random, "dropout", dropout),
                    (keras_random, "categorical", categorical),
                    (keras_nn, "binary_crossentropy", binary_crossentropy)]
    _check_same_numbers(replacements)
    losses = property(losses)
    _check_same_losses(Layer.losses, losses)
    return replacements + [(Layer, "losses", losses)]


def _check_same_numbers(replacements):
    """Raises a `RuntimeError` unless each replacement gives the numbers
    of the Keras function it replaces (for a Keras whose internals changed
    without a rename)."""
    ones = torch.ones((3, 4))
    target = torch.tensor([[1.0], [0.0]])
    logits = torch.tensor([[0.5], [-2.0]])
    calls = {
        "normal": lambda f: f((3, 4), 0.5, 2.0, None, 11),
        "uniform": lambda f: f((5,), -1.0, 2.0, None, 12),
        "randint": lambda f: f((6,), 0, 9, "int32", 13),
        "dropout": lambda f: f(ones, 0.5, None, 14),
        "categorical": lambda f: f(
            torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.1, -3.0]]), 64, "int32",
            15),
        "binary_crossentropy": lambda f: f(target, logits, True),
    }
    for module, name, replacement in replacements:
        theirs = calls[name](getattr(module, name))
        ours = calls[name](replacement)
        if theirs.dtype != ours.dtype or not torch.allclose(
                theirs.float(), ours.float(), rtol=1e-6, atol=0.0):
            raise RuntimeError(f"{name} differs from Keras' own")
    from keras.src.random.seed_generator import SeedGenerator

    seeded = {"normal": lambda f, seed: f((3, 4), 0.5, 2.0, None, seed),
              "categorical": lambda f, seed: f(
                  torch.tensor([[0.5, -1.0, 2.0]]), 64, "int32", seed)}

    def draws(function, draw, host):
        # two draws from a `SeedGenerator`, its state on the device or held
        # on the host (`_seeds_on_host`), and its state after them
        generator = SeedGenerator(16)
        if host:
            generator._genzoo_host_state = generator.state.value.cpu().clone()
        values = [draw(function, generator) for _ in range(2)]
        state = (generator._genzoo_host_state if host
                 else generator.state.value)
        return [*values, state.cpu()]

    for module, name, replacement in replacements:
        if name not in seeded:
            continue
        theirs = draws(getattr(module, name), seeded[name], host=False)
        for host in (False, True):
            ours = draws(replacement, seeded[name], host)
            if not all(torch.allclose(a.float(), b.float(), rtol=1e-6,
                                      atol=0.0)
                       for a, b in zip(theirs, ours)):
                raise RuntimeError(f"{name} from a seed generator differs "
                                   f"from Keras' own")


def _check_same_losses(theirs, ours):
    """Raises a `RuntimeError` unless the property `ours` lists the losses
    that Keras' `Layer.losses` (`theirs`) lists, for a model with a
    regularized layer in a nested layer and an `add_loss` term."""
    import keras

    class Penalized(keras.layers.Layer):
        def call(self, x):
            self.add_loss(keras.ops.sum(x))
            return x

    # named, so that the names Keras gives the user's layers stay as they
    # would be without this check
    inner = keras.Sequential([
        keras.Input((3,), name="genzoo_check_inner_input"),
        keras.layers.Dense(2, kernel_regularizer=keras.regularizers.L2(0.5),
                           kernel_initializer="ones",
                           name="genzoo_check_dense"),
        Penalized(name="genzoo_check_penalized")],
        name="genzoo_check_inner")
    model = keras.Sequential(
        [keras.Input((3,), name="genzoo_check_input"), inner],
        name="genzoo_check_outer")
    model(torch.ones((1, 3)))
    expected = [float(loss.detach()) for loss in theirs.fget(model)]
    found = [float(loss.detach()) for loss in ours.fget(model)]
    if len(expected) != 2 or found != expected:
        raise RuntimeError(f"losses differ from Keras' own: {found} against "
                           f"{expected}")


def _dynamo_traced_backward():
    """Settings under which dynamo traces `backward()` into the step's
    graph, as `(module, name, value)` triples; raises where this PyTorch
    has no such setting.

    `torch._dynamo.config.trace_autograd_ops` (PyTorch 2.11 and 2.13)
    turns `loss.backward()` into `torch.autograd.grad` and gradient
    accumulation inside the graph. PyTorch 2.13 has a bug that Keras' own
    `train_step` meets: it sets each `.grad` to `None` (`zero_grad()`) before
    `backward()`, whose traced form then reads each `.grad`, and reading a
    `.grad` that was set to `None` in the traced frame writes that frame's
    source onto dynamo's one process-wide `ConstantVariable(None)`. Every
    later compile in the process is handed it for its own `None`s, guards
    on the first model's `.grad` and fails (`AttributeError` in Keras'
    `Layer.__call__`, `KeyError`, or `'self' not in cell_and_freevars`).
    Here the reads of `.grad` (and of `requires_grad`, which reaches the
    same assignment) return a fresh constant, as the proposed upstream fix
    does (pytorch/pytorch#194749).
    """
    from torch._dynamo import config
    if not hasattr(config, "trace_autograd_ops"):
        raise RuntimeError(
            "this PyTorch has no torch._dynamo.config.trace_autograd_ops")
    from torch._dynamo.variables import constant
    from torch._dynamo.variables import tensor
    interned = _interned_constants()
    settings = [(config, "trace_autograd_ops", True)]
    if not interned:
        return settings
    variable_class = tensor.TensorVariable
    for name in ("method_attr_grad", "method_attr_requires_grad"):
        # PyTorch 2.11 has no `method_attr_grad` (its `.grad` reads go
        # through `dynamic_getattr` and leave the interned `None` alone)
        read = getattr(variable_class, name, None)
        if read is None:
            continue

        def fresh(self, tx, read=read):
            result = read(self, tx)
            if any(result is variable for variable in interned):
                return constant.ConstantVariable(result.value)
            return result

        settings.append((variable_class, name, fresh))
    return settings


def _interned_constants():
    """Dynamo's process-wide `ConstantVariable`s of `None`, `True` and
    `False`, those this PyTorch has (see `_dynamo_traced_backward`)."""
    from torch._dynamo.variables import constant
    interned = [getattr(constant, name, None) for name in (
        "CONSTANT_VARIABLE_NONE", "CONSTANT_VARIABLE_TRUE",
        "CONSTANT_VARIABLE_FALSE")]
    return [variable for variable in interned if variable is not None]


def _clear_interned_sources():
    """Removes a source that a compile outside the zoo's steps may have
    written onto dynamo's interned constants (see
    `_dynamo_traced_backward`); they never have one of their own."""
    for variable in _interned_constants():
        if variable.source is not None:
            variable.source = None


class _TraceableSteps:
    """Keras' functions replaced by `_traceable_keras()`, and dynamo set to
    trace `backward()` (`_dynamo_traced_backward()`), while the outermost
    of these (re-entrant) contexts is active."""

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._replacements = None
        self._originals = None
        self._traces_backward = False

    def __enter__(self):
        with self._lock:
            if self._depth == 0:
                if self._replacements is None:
                    try:
                        self._replacements = _traceable_keras()
                    except Exception as error:
                        # another Keras or PyTorch than these were written
                        # for (Keras 3.15, PyTorch 2.13): Keras' own draws
                        self._replacements = []
                        warnings.warn(
                            f"keras_genzoo could not make Keras' seeded "
                            f"draws traceable ({error}): compiled PyTorch "
                            f"steps break at each of them (slower).")
                    try:
                        settings = _dynamo_traced_backward()
                        self._replacements += settings
                        self._traces_backward = bool(settings)
                    except Exception as error:
                        warnings.warn(
                            f"keras_genzoo could not set dynamo to trace "
                            f"`backward()` ({error}): compiled PyTorch "
                            f"steps break at each `backward()` (slower).")
                self._originals = [getattr(module, name) for module, name, _
                                   in self._replacements]
                try:
                    for module, name, replacement in self._replacements:
                        setattr(module, name, replacement)
                    if self._traces_backward:
                        _clear_interned_sources()
                except BaseException:
                    self._restore()
                    raise
            self._depth += 1
        return self

    def replaces(self, name):
        """Whether Keras' function `name` (e.g. "categorical") is replaced
        while this context is active."""
        return any(replaced == name and callable(replacement)
                   for _, replaced, replacement in self._replacements or ())

    def _restore(self):
        for (module, name, _), original in zip(self._replacements,
                                               self._originals):
            setattr(module, name, original)

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                self._restore()
        return False


_TRACEABLE = _TraceableSteps()


def traceable_steps():
    """A context where Keras' seeded draws and binary cross-entropy are
    traceable by `torch.compile`, with the same numbers as Keras' own, and
    where dynamo traces `backward()` into the graph
    (`torch._dynamo.config.trace_autograd_ops`, PyTorch 2.13; see
    `_dynamo_traced_backward` for the PyTorch bug worked around with it).
    A step compiled in it is one graph: a GAN's whole update, both
    `backward()` calls and optimizers included, and Keras' own
    `train_step` (the VAE's).

    The replacement and dynamo's settings are process-wide while any such
    step runs: other threads' Keras draws get the same numbers, but their
    own compiled functions may see Keras' functions change and be compiled
    again, and trace their `backward()` too.

    Returns:
        A context manager.
    """
    return _TRACEABLE


# Whether compiled steps skip dynamo's guards on the layers (`_CompiledStep`);
# False compiles them as Keras does (benchmarks/step_speed.py's
# `--layer-guards keras` measures the difference)
SKIP_LAYER_GUARDS = True


def _guard_filter_frees_models():
    """Whether this PyTorch lets a model go whose step was compiled with a
    `guard_filter_fn` (what skips the layers' guards).

    PyTorch 2.11 keeps it for good: the guards it builds to filter hold the
    model in the cache entry on the step's code object, which the garbage
    collector cannot see, so every compiled model stayed in memory (a
    `GAN()` checked 2026-12-03; without the filter it was freed). 2.13
    frees it. 2.12 was not tried and is treated as 2.11: there the steps
    are compiled as Keras compiles them.
    """
    return torch.__version__ >= (2, 13)  # a `TorchVersion`


def _layer_guard_filter(entries):
    """Dynamo's guards on a compiled step, less those on the model's layers
    (`torch.compiler.skip_guard_on_all_nn_modules_unsafe`), but keeping
    those on the `.grad` of a variable: a step that adds its gradients to
    the last step's (no `zero_grad()`) is traced again once they exist.
    (Keras' `train_step` sets them to `None` first, so it would not need
    them.)"""
    keep = torch.compiler.skip_guard_on_all_nn_modules_unsafe(entries)
    return [kept or entry.name.endswith(".grad")
            for kept, entry in zip(keep, entries)]


def _variables_signature(model):
    """The variables a compiled step's graph was traced with, by group:
    which the model trains and which it keeps (a layer frozen or unfrozen,
    LoRA enabled, a kernel quantized change them), its optimizer's and its
    metrics' (`compile()` again, an optimizer built again)."""
    optimizer = getattr(model, "optimizer", None)
    groups = (model.trainable_variables, model.non_trainable_variables,
              [] if optimizer is None else optimizer.variables,
              model.metrics_variables)
    return (tuple(map(len, groups)),
            tuple(variable for group in groups for variable in group))


def _same_signature(ours, theirs):
    """Whether two `_variables_signature`s hold the same variables (by
    identity: a variable compares by value in Keras)."""
    return (theirs is not None and ours[0] == theirs[0]
            and all(map(operator.is_, ours[1], theirs[1])))


class _CompiledStep:
    """Keras' step function `fn` of `model` (its `one_step_on_data`),
    compiled by `torch.compile` from a copy of its code of its own, as one
    graph (`fullgraph=True`) without dynamo's guards on the model's layers
    (`_layer_guard_filter`).

    Why: Keras' layer calls read many Python attributes, and dynamo checks
    a guard on each before every step: 22,973 guards in a `GAN()` step,
    1.5-1.6 ms to check by dynamo's own measure (a 2-core CPU,
    2026-12-03), 0.45-0.5 ms without those on the layers; JAX's whole
    DCGAN step took 2.8 ms on an H100. Here the step's graph is traced
    once per model and data shape, as `jax.jit` and `tf.function` trace
    Keras' step: what the layers hold as Python values (a dropout rate, a
    loss weight) is read at the trace, and tensors (variables, seed
    states) at every step. What guards on the
    layers would catch is checked here instead, before each step: which
    variables the model, its optimizer and its metrics hold, and in which
    group (`_variables_signature`); on a change the step is traced again.
    The data's shapes and dtypes, global settings and the `.grad` of each
    variable keep their guards.

    Safe only because the graph is the whole step: dynamo then compiles
    no other function (Keras' `train_step`, `Layer.__call__`, shared by
    every model) under this filter, which would let one model run
    another's graph. A step dynamo cannot trace as one graph (a graph
    break: `mixed_float16`'s loss-scale `cond`, a network with a Python
    `if` on a tensor) raises `Unsupported` at its trace, before anything
    ran, and is then compiled for good with all of dynamo's guards, as
    Keras compiles it (so is a step that reaches dynamo's recompile
    limit; an error of the step itself is raised by that compile, and the
    filtered step is kept). The copy's compiled versions are released when it
    is replaced (a retrace, `compile()` again) and when the model is
    freed. On a PyTorch older than 2.13 the step is compiled with all of
    dynamo's guards from the start (`_guard_filter_frees_models`).
    """

    def __init__(self, model, fn):
        self._model = weakref.ref(model)
        self._fn = fn
        # what drops the compiled versions of the model's step of this kind
        # (train, test, predict): those of the step this one replaces
        # (`compile()` again) go now
        key = getattr(fn, "__func__", fn).__code__
        self._finalizers = _FINALIZERS.setdefault(model, {}).setdefault(
            key, [])
        self._release()
        self._signature = None
        self._filtered = (SKIP_LAYER_GUARDS and hasattr(
            torch.compiler, "skip_guard_on_all_nn_modules_unsafe")
            and _guard_filter_frees_models())
        self._compiled = None

    def _compile(self, filtered):
        """`(compiled, finalizer)`: a new code copy of the step, compiled,
        and what drops its compiled versions (at the latest with the
        model)."""
        copy = _with_own_code(self._fn)
        if filtered:
            compiled = torch.compile(
                copy, fullgraph=True,
                options={"guard_filter_fn": _layer_guard_filter})
        else:
            compiled = torch.compile(copy)
        code = getattr(copy, "__func__", copy).__code__
        finalizer = weakref.finalize(self._model(), _reset_code, code)
        finalizer.atexit = False
        return compiled, finalizer

    def _use(self, compiled, finalizer):
        self._release()
        self._compiled = compiled
        self._finalizers.append(finalizer)

    def _release(self):
        while self._finalizers:
            self._finalizers.pop()()

    def __call__(self, *args, **kwargs):
        if not self._filtered:
            if self._compiled is None:
                self._use(*self._compile(filtered=False))
            return self._compiled(*args, **kwargs)
        signature = _variables_signature(self._model())
        if not _same_signature(signature, self._signature):
            self._use(*self._compile(filtered=True))
            self._signature = signature
        try:
            return self._compiled(*args, **kwargs)
        except _NOT_ONE_GRAPH:
            # found at the trace, before anything ran: a graph break, or
            # dynamo's recompile limit (a hard error under fullgraph=True),
            # or an error of the step itself (an exception while tracing
            # comes as `Unsupported` too): the step as Keras compiles it
            # then raises that error, and the filtered one is tried again
            compiled, finalizer = self._compile(filtered=False)
            try:
                result = compiled(*args, **kwargs)
            except BaseException:
                finalizer()
                raise
        self._filtered = False
        self._signature = None
        self._use(compiled, finalizer)
        return result


# what dynamo raises, under fullgraph=True, for a step it will not compile
# as one graph
_NOT_ONE_GRAPH = tuple(
    error for error in (getattr(torch._dynamo.exc, name, None) for name in (
        "Unsupported", "UserError", "FailOnRecompileLimitHit"))
    if error is not None)

# each model's `weakref.finalize`s of its compiled steps' code copies, by the
# code of Keras' step they copy (a finalizer holds the model weakly)
_FINALIZERS = weakref.WeakKeyDictionary()


def _reset_code(code):
    """Drops dynamo's compiled versions of `code` (kept on the code object
    for as long as it lives, and it may outlive the model)."""
    reset = getattr(torch._dynamo, "reset_code", None)
    if reset is not None:
        reset(code)


def wrap_step_function(model, fn):
    """Keras' train, test or predict function of `model`, as the zoo runs
    it: a function that `torch.compile` compiled (the model was compiled
    with `jit_compile=True`) runs in `traceable_steps()`, so that a step is
    one graph without a break; NumPy arrays given to it (`train_on_batch`
    passes them as they are) become tensors first, since dynamo breaks the
    graph at Keras' conversion of one. Any other `fn` as it is.

    Measured (`GAN()` at batch 2 on a 2-core CPU, 2026-12-02, ms per
    step; see docs/performance.md): compiled with Keras' draws, 25
    breaks, dynamo's recompile limit hit in Keras' layer calls, slower
    than eager; with the draws traceable, about eager's speed (a break at
    each of its two `backward()` calls); with `backward()` traced too, one
    graph: 6.8 against 19.7 eager and 3.4 on JAX (a faster CPU that
    evening).

    The step is compiled once per model, as one graph, without dynamo's
    guards on the model's layers (`_CompiledStep`: checking them took
    about 1 ms of an 11 ms `GAN()` step at batch 2 here, 2026-12-03);
    a step that breaks the graph is compiled as Keras compiles it.

    Args:
        model: the model the function belongs to.
        fn: the function Keras made (`model.train_function`, ...), or
            `None`.

    Returns:
        A callable with the signature of `fn`, or `fn`.
    """
    if (fn is None or getattr(fn, "_genzoo_traceable", False)
            or not hasattr(fn, "_torchdynamo_orig_callable")):
        return fn
    step = _CompiledStep(model, fn._torchdynamo_orig_callable)

    def as_tensors(value):
        if isinstance(value, np.ndarray):
            return keras.ops.convert_to_tensor(value)
        return value

    def run(*args, **kwargs):
        args, kwargs = keras.tree.map_structure(as_tensors, (args, kwargs))
        with traceable_steps():
            return step(*args, **kwargs)

    run._genzoo_traceable = True
    run._genzoo_step = step
    return run
