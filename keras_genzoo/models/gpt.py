"""MiniGPT: a character-level GPT of pre-norm causal self-attention blocks.

The last model of "Let's build GPT" (and nanoGPT's `model.py`): token and
position embeddings, `num_layers` pre-norm causal self-attention blocks
(`keras_genzoo.layers.CausalSelfAttentionBlock`, or keras-hub
`TransformerDecoder` blocks with `block_type="keras_hub"`), a final
LayerNorm and an output head that shares the token embedding's weights.
Training goes through `compute_loss` (inherited from
`CharLanguageModel`), so Keras' own `train_step` runs it on every backend.

Generation runs keras-hub's samplers in one compiled loop per call
(`keras_genzoo.backend.run_sampler`; on PyTorch a Python loop, whose
model steps `jit_compile=True` compiles with the fused blocks, in float32
and under mixed precision but not quantized, and whose sampler step it
compiles):

1. while the text fits in the context, a key/value cache (the blocks'
   `cache`, or keras-hub's `self_attention_cache`) makes each new character
   cost one position;
2. past the context, each new character is predicted from exactly the last
   `sequence_length` characters (as nanoGPT crops), one window per step.

keras_hub (which loads TensorFlow and tensorflow-text, ~5 s) is imported only
when a `MiniGPT` is built.
"""

import collections
import inspect
import threading

import numpy as np

import keras
from keras import ops
from keras.src.backend import AutocastScope as _AutocastScope
from keras.src.backend import get_autocast_scope as _get_autocast_scope

from keras_genzoo import _inputs, backend
from keras_genzoo.layers.transformer import CausalSelfAttentionBlock
from keras_genzoo.models.language import CharLanguageModel
from keras_genzoo.sampling import _keras_hub, make_sampler, sampler_setting


BLOCK_TYPES = ("fused", "keras_hub")


class _CompiledLoops:
    """Compiled sampling loops by sampler setting (kept out of Keras'
    attribute tracking: they are not state to save), the `KEPT` used last:
    each holds compiled programs (about 15 MB on TensorFlow, measured)."""

    KEPT = 8

    def __init__(self):
        self.by_setting = collections.OrderedDict()
        self.steps = None  # the loops' steps, shared by every setting
        self.lock = threading.RLock()

    def get(self, key):
        loops = self.by_setting.get(key)
        if loops is not None:
            self.by_setting.move_to_end(key)
        return loops

    def put(self, key, loops):
        self.by_setting[key] = loops
        while len(self.by_setting) > self.KEPT:
            self.by_setting.popitem(last=False)

    def clear(self):
        self.by_setting.clear()
        self.steps = None


def _as_stored(read):
    """`read()` (a layer's variables) past a mixed precision policy's
    autocast, as a layer with `autocast=False` reads them in its own call.
    Keras' public API has no such read from outside the layer; this is the
    `AutocastScope(None)` its `Layer.__call__` enters (Keras 3.15)."""
    with _AutocastScope(None):
        return ops.convert_to_tensor(read())


@keras.saving.register_keras_serializable(package="keras_genzoo")
class MiniGPT(CharLanguageModel):
    """A character-level GPT: nanoGPT's model in Keras.

    Token + position embedding (`keras_hub.layers.TokenAndPositionEmbedding`),
    `num_layers` causal self-attention blocks with pre-normalisation and a
    GELU feed-forward of `intermediate_dim`, a final `LayerNormalization`
    and an output head tied to the token embedding (as in GPT-2 and
    nanoGPT). The blocks are `keras_genzoo.layers.CausalSelfAttentionBlock`
    (`block_type="fused"`, the default): the function of keras-hub's
    `TransformerDecoder(normalize_first=True)` with the query, key and value
    projections fused, as one layer, which makes a training step faster on
    PyTorch (17 % on a CPU; see docs/performance.md).
    `block_type="keras_hub"` builds `keras_hub.layers.TransformerDecoder`
    blocks instead (the same parameters, laid out differently); `.keras`
    files saved before `block_type` existed load as such. The
    defaults are nanoGPT's CPU configuration: 4 layers, 4 heads, 128
    dimensions, a context of 64 characters (~0.8M parameters with a
    65-character vocabulary).

    `fit` (uncompiled: AdamW, learning rate 1e-3, beta_2 0.99; XLA on
    TensorFlow) logs the loss in nats per character and `bits_per_char`.
    The vocabulary is saved in the `.keras` file.

    `generate` runs a keras-hub sampler (`GreedySampler` for `top_k=1`,
    `TopKSampler`, `TopPSampler` or `RandomSampler`) in one compiled loop,
    with a key/value cache while the text fits in the context and exactly
    the last `sequence_length` characters per new character beyond it. The
    first call for a setting of (top_k, top_p) compiles the loop, which
    takes the temperature as an argument; later calls reuse it. On
    PyTorch the loop runs in Python; a model compiled with
    `jit_compile=True` (fused blocks, any float policy, no quantization)
    compiles its steps (the next token with the
    cache, and past the context) with `torch.compile` at its first
    `generate`: 2.93 -> 1.84 ms per character on a 2-core CPU after 5-18 s
    of compilation (see the Performance page).

    Args:
        vocabulary: the characters the model knows (use `from_text`).
        sequence_length: the context: characters the model looks at.
        num_layers: number of transformer blocks.
        num_heads: attention heads per block; must divide `hidden_dim`.
        hidden_dim: width of the embeddings and of every block.
        intermediate_dim: width of the feed-forward layers; default
            `4 * hidden_dim`.
        dropout: dropout rate after the embeddings and inside the blocks.
        block_type: `"fused"` (`CausalSelfAttentionBlock`) or
            `"keras_hub"` (keras-hub `TransformerDecoder` blocks).
        **kwargs: standard `keras.Model` arguments (`name`, `dtype`, e.g.
            `dtype="mixed_bfloat16"`).

    Examples:
        >>> from keras_genzoo import MiniGPT
        >>> text = "to be or not to be, that is the question. " * 20
        >>> gpt = MiniGPT.from_text(text, sequence_length=16, num_layers=1,
        ...                         num_heads=2, hidden_dim=32)
        >>> train_ds, val_ds = gpt.make_datasets(text, batch_size=8)
        >>> history = gpt.fit(train_ds, validation_data=val_ds, epochs=1,
        ...                   verbose=0)
        >>> sample = gpt.generate("to be", max_new_tokens=20, seed=0)
        >>> len(sample)
        25
    """

    def __init__(self, vocabulary, sequence_length=64, num_layers=4,
                 num_heads=4, hidden_dim=128, intermediate_dim=None,
                 dropout=0.0, block_type="fused", **kwargs):
        super().__init__(vocabulary, sequence_length, **kwargs)
        # checked as counts: `int` cut 1.9 layers to 1 without a word
        sizes = {"num_layers": num_layers, "num_heads": num_heads,
                 "hidden_dim": hidden_dim}
        if intermediate_dim is not None:
            sizes["intermediate_dim"] = intermediate_dim
        for name, value in sizes.items():
            try:
                sizes[name] = _inputs.check_count(value, name)
            except ValueError:
                raise ValueError(
                    f"`{name}` must be positive (an integer); got "
                    f"{value!r}.") from None
        num_layers, num_heads, hidden_dim = (
            sizes["num_layers"], sizes["num_heads"], sizes["hidden_dim"])
        intermediate_dim = sizes.get("intermediate_dim")
        if hidden_dim % num_heads:
            raise ValueError(
                f"`hidden_dim` ({hidden_dim}) must be a multiple of "
                f"`num_heads` ({num_heads}): each head gets hidden_dim / "
                "num_heads dimensions. E.g. hidden_dim=128, num_heads=4."
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1); got {dropout}.")
        if block_type not in BLOCK_TYPES:
            raise ValueError(
                f"`block_type` must be one of {BLOCK_TYPES}; got "
                f"{block_type!r}. \"fused\" (the default) is the faster "
                "CausalSelfAttentionBlock; \"keras_hub\" builds keras-hub "
                "TransformerDecoder blocks.")
        self.block_type = block_type
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.hidden_dim = int(hidden_dim)
        self.intermediate_dim = int(intermediate_dim or 4 * self.hidden_dim)
        self.dropout = float(dropout)

        keras_hub = _keras_hub()
        # nanoGPT's initialisation: N(0, 0.02) for embeddings and kernels
        init = keras.initializers.RandomNormal(stddev=0.02)
        self.embedding = keras_hub.layers.TokenAndPositionEmbedding(
            vocabulary_size=self.vocabulary_size,
            sequence_length=self.sequence_length,
            embedding_dim=self.hidden_dim,
            tie_weights=True,
            embeddings_initializer=init,
            dtype=self.dtype_policy,
            name="embedding",
        )
        # Seeded dropout masks (from the model's seed, else NumPy's global
        # generator, which `keras.utils.set_random_seed` fixes): unseeded,
        # Keras' dropout on PyTorch draws from torch's global generator,
        # whose state no file or backup holds, so a loaded or resumed model
        # did not train on as the original would.
        self._dropout_seed = (
            _inputs.layer_seed(self.seed, 0) if self.seed is not None
            else int(np.random.randint(0, 2**30)) if self.dropout else 0)
        self.embedding_dropout = keras.layers.Dropout(
            self.dropout, seed=self._dropout_seed, dtype=self.dtype_policy,
            name="embedding_dropout")
        self.blocks = [self._make_block(i, init)
                       for i in range(self.num_layers)]
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, dtype=self.dtype_policy, name="final_norm")
        self._loops = _CompiledLoops()
        self.build((None, self.sequence_length))

    limited_context = True

    def _make_block(self, i, init):
        if self.block_type == "fused":
            return CausalSelfAttentionBlock(
                num_heads=self.num_heads,
                intermediate_dim=self.intermediate_dim,
                dropout=self.dropout,
                epsilon=1e-5,
                kernel_initializer=init,
                seed=_inputs.layer_seed(self._dropout_seed, 1 + i),
                dtype=self.dtype_policy,
                name=f"block_{i}",
            )
        # (keras-hub's block takes no seed: its dropout on PyTorch draws
        # from torch's generator, see docs/reliability.md)
        return _keras_hub().layers.TransformerDecoder(
            intermediate_dim=self.intermediate_dim,
            num_heads=self.num_heads,
            dropout=self.dropout,
            activation="gelu",
            layer_norm_epsilon=1e-5,
            kernel_initializer=init,
            normalize_first=True,
            dtype=self.dtype_policy,
            name=f"block_{i}",
        )

    def compile(self, *args, **kwargs):
        """`keras.Model.compile`; also drops the compiled sampling loops, so
        that `generate` compiles them again for the new settings."""
        super().compile(*args, **kwargs)
        self._loops.clear()

    def check_data(self, x, y=None, what="the training data"):
        # before any step and callback: inside the first traced step (a
        # float16 file loaded on JAX's CPU) it came after `on_train_begin`
        backend.check_attention_dtype(self.compute_dtype)
        return super().check_data(x, y, what)

    def quantize(self, *args, **kwargs):
        """`keras.Model.quantize`; also drops the compiled sampling loops,
        which computed with the weights as they were.

        Keras quantizes the layers that implement `quantize`: the token
        embedding (and with it the tied head) always, and with
        `block_type="keras_hub"` the blocks' projections. The fused
        `CausalSelfAttentionBlock` holds its kernels as plain weights and
        stays in float (Keras warns that it has no `quantize`)."""
        self._check_layers_quantize()
        super().quantize(*args, **kwargs)
        self._loops.clear()

    def _check_layers_quantize(self):
        """One `ValueError` where Keras would pass `config=` to a layer's
        `quantize` that does not take it: keras-hub 0.21's
        `ReversibleEmbedding` under Keras 3.15 raised a TypeError from
        inside `Model.quantize`."""
        def takes_config(function):
            return "config" in inspect.signature(function).parameters

        if not takes_config(keras.layers.Layer.quantize):
            return
        # the layers `Model.quantize` calls `quantize` on: those without
        # sub-layers. `_flatten_layers()` alone also lists the model itself,
        # whose `quantize(*args, **kwargs)` takes no `config`, and so this
        # refused every keras-hub
        for layer in self._flatten_layers(include_self=False):
            if len(list(layer._flatten_layers())) != 1:
                continue
            method = getattr(type(layer), "quantize", None)
            if method is not None and not takes_config(method):
                raise ValueError(
                    f"`quantize` needs a newer keras-hub: the "
                    f"{type(layer).__name__} layer of keras-hub "
                    f"{_keras_hub().__version__} does not take the `config` "
                    f"that Keras {keras.__version__} passes to it. Upgrade "
                    f"keras-hub (`pip install -U keras-hub`; 0.32 works).")

    def default_jit_compile(self):
        """XLA on TensorFlow (a GPT step there: 40 ms with XLA, 57 ms
        without, on a 2-core CPU), except for a model created in a
        `tf.distribute` scope; Keras' "auto" elsewhere (JAX always
        compiles; on PyTorch, `jit_compile=True` took nanoGPT's CPU recipe
        from 89.6 to 71.2 ms per step but cost 50-100 s of compilation,
        which pays only after a few thousand steps)."""
        if getattr(self, "_distribute_strategy", None) is not None:
            # Keras' "auto" turns XLA off under tf.distribute (an XLA step
            # over MirroredStrategy replicas fails: "Trying to access
            # resource ... located in device CPU:1 from device CPU:0")
            return "auto"
        return True if backend.BACKEND == "tensorflow" else "auto"

    def build(self, input_shape=None):
        if self.built:
            # (made built in `__init__`: keras-hub's layers refused a
            # second build, "cannot add new elements of state", so the
            # `build()`, `quantize`, `load_weights` recipe of a quantized
            # file failed here, where the other families take it)
            return
        shape = (None, self.sequence_length)
        self.embedding.build(shape)
        for block in self.blocks:
            block.build(shape + (self.hidden_dim,))
        self.final_norm.build(shape + (self.hidden_dim,))
        self.built = True

    def call(self, ids, training=False):
        """Next-character logits `(batch, length, vocabulary_size)`, float32
        under every dtype policy (as Keras' mixed-precision guide has a
        model's last layer).

        Args:
            ids: int ids `(batch, length)`, `length <= sequence_length`.
            training: enables dropout.
        """
        length = ids.shape[-1]
        if length is not None and length > self.sequence_length:
            raise ValueError(
                f"The model reads at most sequence_length="
                f"{self.sequence_length} characters; got windows of "
                f"{length}. Cut the text with `model.make_datasets(text)`."
            )
        backend.check_attention_dtype(self.compute_dtype)
        x = self._embed(ids)
        x = self.embedding_dropout(x, training=training)
        for block in self.blocks:
            x = block(x, training=training)
        # (bfloat16 from JAX's `predict` and float32 from TensorFlow's and
        # PyTorch's before: they converted it, JAX kept it)
        return ops.cast(self._head(x), "float32")

    # The embedding and the head run as the backend's own ops where it has
    # them (PyTorch: `keras_genzoo.backend.token_and_position_embedding`
    # and `tied_embedding_logits`), and as the layers' Keras ops elsewhere.
    # Those layers are their definition: tests compare the two, in float32
    # and under mixed precision. Not with a quantized token table.
    def _own_op(self, name):
        op = getattr(backend, name)
        if (op is None or getattr(self.embedding.token_embedding,
                                  "quantization_mode", None) is not None):
            return None
        return op

    def _token_table(self):
        # the `embeddings` property (the variable, or with LoRA enabled the
        # variable plus its low-rank update, cast to the compute dtype) as
        # Keras' `Embedding` reads it in its own call (a layer with
        # `autocast=False`, whose variable is not)
        return _as_stored(lambda: self.embedding.token_embedding.embeddings)

    def _embed(self, ids, start_index=0):
        op = self._own_op("token_and_position_embedding")
        if op is None and getattr(self.embedding.token_embedding,
                                  "quantization_mode", None) is not None:
            # keras-hub's sum of a quantized token table (float32 rows)
            # and the positions (in the compute dtype) failed on TensorFlow
            # under mixed_bfloat16 ("cannot compute AddV2"): the sum in the
            # compute dtype on every backend, as an unquantized table's (JAX
            # and PyTorch had promoted it to float32)
            tokens = self.embedding.token_embedding(ids)
            positions = self.embedding.position_embedding(
                tokens, start_index=start_index)
            return ops.cast(tokens, positions.dtype) + positions
        if op is None:
            return self.embedding(ids, start_index=start_index)
        # as keras-hub's `PositionEmbedding` reads its table: autocast to
        # its compute dtype (the sum's), wherever this is called from
        layer = self.embedding.position_embedding
        positions = ops.cast(_as_stored(lambda: layer.position_embeddings),
                             layer.compute_dtype)
        return op(ops.convert_to_tensor(ids), self._token_table(), positions,
                  start_index)

    def _head(self, x):
        op = self._own_op("tied_embedding_logits")
        if op is None:
            x = self.final_norm(x)
            return self.embedding.token_embedding(x, reverse=True)
        norm = self.final_norm
        return op(ops.convert_to_tensor(x), ops.convert_to_tensor(norm.gamma),
                  ops.convert_to_tensor(norm.beta), norm.epsilon,
                  self._token_table())

    def call_with_cache(self, ids, cache, index):
        """Forward pass of `ids` at position `index`, reading/writing a cache.

        Args:
            ids: int ids `(batch, length)` placed at positions
                `index .. index + length - 1`.
            cache: keys and values of every block,
                `(batch, num_layers, 2, sequence_length, num_heads,
                head_dim)`.
            index: position of `ids[:, 0]`.

        Returns:
            `(logits, cache)` with the cache updated at those positions.
        """
        # computed as the model's call computes: under a mixed policy (or
        # inside another autocast scope) Keras' `Layer.__call__` enters an
        # autocast scope for the model, which this method is not a call
        # of. Without it the tied head (a layer with `autocast=False`,
        # called outside any scope) would read its table cast to the
        # compute dtype here and as stored in `__call__` (Keras 3.15)
        return self._as_called(self._call_with_cache, ids, cache, index)

    def _as_called(self, fn, *args):
        """`fn(*args)` in the autocast scope the model's `__call__` runs
        its `call` in (`call_with_cache`, `plots.attention_weights`)."""
        if (self.compute_dtype == self.variable_dtype
                and _get_autocast_scope() is None):
            return fn(*args)
        with _AutocastScope(self.compute_dtype):
            return fn(*args)

    def _call_with_cache(self, ids, cache, index):
        backend.check_attention_dtype(self.compute_dtype)
        x = self._embed(ids, start_index=index)
        caches = []
        for i, block in enumerate(self.blocks):
            if self.block_type == "fused":
                x, layer_cache = block(x, cache=cache[:, i, ...],
                                       cache_update_index=index)
            else:
                x, layer_cache = block(
                    x, self_attention_cache=cache[:, i, ...],
                    self_attention_cache_update_index=index)
            caches.append(layer_cache)
        return self._head(x), ops.stack(caches, axis=1)

    def empty_cache(self, batch_size):
        """A zero key/value cache for `call_with_cache`."""
        head_dim = self.hidden_dim // self.num_heads
        return ops.zeros(
            (batch_size, self.num_layers, 2, self.sequence_length,
             self.num_heads, head_dim), dtype=self.compute_dtype)

    # -- generation ---------------------------------------------------------

    def _generator(self, loop_key):
        """Compiled sampling loops for one kind of sampler (cached):
        `(top_k, nucleus)`, `None` for greedy. The temperature and the
        nucleus' `top_p` are arguments of the loops: each new value
        compiled loops of its own before (a temperature 7 s on
        TensorFlow, a top_p 1-2 s and 15 MB, kept for the model's life)."""
        compiled = self._loops.get(loop_key)
        if compiled is not None:
            return compiled
        top_k, nucleus = (1, False) if loop_key is None else loop_key
        # temperature 1: the loops divide the logits by the temperature as
        # keras-hub's samplers do (float32, then the division); a nucleus
        # sampler reads the loops' `top_p` (its `p`, set while they run)
        sampler = make_sampler(1.0, top_k, 0.5 if nucleus else None,
                               vocabulary_size=self.vocabulary_size)
        cached_next, window_next = self._loop_steps()

        def cooled(step, temperature):
            def next_fn(prompt, cache, index):
                logits, hidden, cache = step(prompt, cache, index)
                return (ops.cast(logits, "float32") / temperature, hidden,
                        cache)
            return next_fn

        def run(next_fn, buffer, temperature, top_p, **kwargs):
            threshold = getattr(sampler, "p", None)
            if nucleus:
                sampler.p = top_p
            try:
                return backend.run_sampler(
                    self, sampler, cooled(next_fn, temperature), buffer,
                    **kwargs)
            finally:
                if nucleus:
                    sampler.p = threshold  # no traced value left on it

        def fill_context(buffer, start, temperature, top_p):
            # buffer (batch, sequence_length): the prompt, then zeros;
            # samples positions start .. sequence_length - 1 with the cache.
            _, cache = self.call_with_cache(
                buffer, self.empty_cache(ops.shape(buffer)[0]), 0)
            return run(cached_next, buffer, temperature, top_p, cache=cache,
                       index=start)

        def slide(buffer, temperature, top_p):
            # buffer (batch, 2 * sequence_length): a full context, then
            # zeros; each new character sees exactly the last
            # sequence_length characters.
            return run(window_next, buffer, temperature, top_p,
                       index=self.sequence_length)

        state = list(sampler.variables)
        compiled = (
            sampler,
            backend.compile_inference(self, fill_context, state),
            backend.compile_inference(self, slide, state),
        )
        self._loops.put(loop_key, compiled)
        return compiled

    def _loop_steps(self):
        """The sampling loops' two `next` functions (keras-hub's protocol:
        `next(prompt, cache, index) -> (logits, hidden_states, cache)`):
        the next token with the cache, and the next token from the window
        of the last `sequence_length` ids past the context. Each reads the
        prompt with `take` at its tensor position (a slice there is read on
        the host on PyTorch). Compiled on their own where the backend
        compiles a loop's steps (PyTorch with `jit_compile=True`), once per
        model for every sampler setting, if each is one graph there: the
        fused blocks with the backend's embedding and head. Keras' position
        embedding (keras-hub blocks, a quantized table) slices at a tensor
        position, which PyTorch reads on the host: the compiled step would
        break there and be compiled again at every position."""
        if self._loops.steps is not None:
            return self._loops.steps
        length = self.sequence_length

        def cached_next(prompt, cache, index):
            token = ops.take(prompt, ops.reshape(index - 1, (1,)), axis=1)
            logits, cache = self.call_with_cache(token, cache, index - 1)
            return logits[:, 0, :], None, cache

        def window_next(prompt, cache, index):
            offsets = ops.arange(length, dtype="int32")
            window = ops.take(prompt, index - length + offsets, axis=1)
            return self(window)[:, -1, :], None, cache

        steps = (cached_next, window_next)
        if (self.block_type == "fused"
                and self._own_op("token_and_position_embedding") is not None
                and self._own_op("tied_embedding_logits") is not None):
            steps = tuple(backend.compile_loop_step(self, step)
                          for step in steps)
        if steps[1] is not window_next:
            # Keras sets a layer's `_parent_path` at its first call (here
            # the embedding dropout's, which the cached step does not
            # call), and dynamo guards on it: called once before, the
            # compiled step is compiled once, not twice
            self(ops.zeros((1, length), "int32"))
        self._loops.steps = steps
        return steps

    def sample_ids(self, ids, max_new_tokens, temperature, top_k, top_p,
                   seed):
        """Samples with a compiled keras-hub sampler loop (see the class
        docstring); returns at least `max_new_tokens` new ids."""
        # one call at a time: the loops of a setting share one sampler (its
        # seed and its `top_p`), which two threads would set for each other
        with self._loops.lock:
            return self._sample_ids(ids, max_new_tokens, temperature, top_k,
                                    top_p, seed)

    def _sample_ids(self, ids, max_new_tokens, temperature, top_k, top_p,
                    seed):
        key = sampler_setting(temperature, top_k, top_p,
                              self.vocabulary_size)
        sampler, fill_context, slide = self._generator(
            None if key is None else (key[0], key[1] is not None))
        temperature = ops.convert_to_tensor(
            1.0 if key is None else float(temperature), "float32")
        top_p = ops.convert_to_tensor(
            1.0 if key is None or key[1] is None else key[1], "float32")
        if sampler.variables:
            fresh = keras.random.SeedGenerator(_inputs.generator_seed(seed))
            for variable in sampler.variables:
                variable.assign(fresh.state.value)
        length = self.sequence_length
        new = []
        if len(ids) < length:
            buffer = np.zeros((1, length), dtype="int32")
            buffer[0, :len(ids)] = ids
            out = fill_context(ops.convert_to_tensor(buffer),
                               ops.convert_to_tensor(len(ids), "int32"),
                               temperature, top_p)
            new += backend.to_numpy(out)[0, len(ids):].tolist()
        while len(new) < max_new_tokens:
            context = (ids + new)[-length:]
            buffer = np.zeros((1, 2 * length), dtype="int32")
            buffer[0, :length] = context
            out = slide(ops.convert_to_tensor(buffer), temperature, top_p)
            new += backend.to_numpy(out)[0, length:].tolist()
        return new

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "hidden_dim": self.hidden_dim,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
            "block_type": self.block_type,
        })
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # files saved before `block_type` existed hold keras-hub blocks
        config = dict(config)
        config.setdefault("block_type", "keras_hub")
        return super().from_config(config, custom_objects=custom_objects)
