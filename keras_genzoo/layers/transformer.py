"""A pre-norm causal self-attention block written as one layer."""

import functools
import math

import keras
from keras import ops

from keras_genzoo import _inputs
from keras_genzoo import backend as zoo_backend
from keras_genzoo.layers.seed_state import SeedStateSaving


@keras.saving.register_keras_serializable(package="keras_genzoo")
class CausalSelfAttentionBlock(SeedStateSaving, keras.layers.Layer):
    """A GPT block: pre-norm causal self-attention, then a GELU MLP.

    `x + attention(norm(x))`, then `x + mlp(norm(x))`, as in GPT-2 and
    nanoGPT's `Block`: the same computation and parameters as
    `keras_hub.layers.TransformerDecoder(normalize_first=True,
    activation="gelu")` used for self-attention only, with the query, key
    and value projections in one kernel. It is one layer holding its
    weights, where keras-hub's block is eleven layers: PyTorch pays Keras'
    Python for every layer call at every step, and a 4-layer, 128-wide GPT's
    training step on a 2-core CPU took 17 % less time with these blocks
    (72.7 against 87.7 ms; nanoGPT's own 53.2 ms; see docs/performance.md).
    On TensorFlow and JAX, XLA compiles the layer calls away and both
    blocks take the same time. On PyTorch, a call runs the whole block
    as the backend's own ops
    (`keras_genzoo.backend.causal_self_attention_block`: one `addmm` per
    projection, as nanoGPT), the same function and gradients with 10 %
    less time per training step again (81.6 against 90.6 ms).

    Attention runs through `keras.ops.dot_product_attention` (the backend's
    fused kernel, flash attention where it has one; on PyTorch the backend
    op's `scaled_dot_product_attention`), except in training with
    `dropout > 0`, where the probabilities are dropped out explicitly
    (that function has no dropout).

    Args:
        num_heads: attention heads; must divide the input width.
        intermediate_dim: width of the MLP's hidden layer.
        dropout: dropout rate of the attention probabilities and of each
            branch's output (training only).
        epsilon: the layer normalisations' epsilon.
        kernel_initializer: initializer of the four matrices (biases start
            at zero, normalisation scales at one).
        seed: seed of the dropout masks.
        **kwargs: standard layer arguments (`name`, `dtype`).

    Call arguments:
        inputs: `(batch, length, width)`.
        training: enables dropout.
        cache: optional keys and values of earlier positions,
            `(batch, 2, max_length, num_heads, width // num_heads)`; with it
            the call returns `(outputs, cache)`, the cache updated at
            positions `cache_update_index .. + length - 1`, and each
            position attends to every cached position up to its own.
        cache_update_index: position of `inputs[:, 0]` (with `cache`).
        mask: optional padding mask `(batch, length)`, True at the tokens
            and False at padding (Keras passes it from a layer that makes
            one, e.g. `keras.layers.Embedding(mask_zero=True)`, and the
            block passes it on): no position attends to a padding key (a
            padding position attends to itself only), so the outputs at
            the tokens are those of the sequence without its padding,
            wherever the padding is (left, right or between). Not taken
            with `cache`.

    Examples:
        >>> import numpy as np
        >>> block = CausalSelfAttentionBlock(num_heads=2, intermediate_dim=32)
        >>> tuple(block(np.ones((1, 5, 8), "float32")).shape)
        (1, 5, 8)
    """

    def __init__(self, num_heads, intermediate_dim, dropout=0.0, epsilon=1e-5,
                 kernel_initializer="glorot_uniform", seed=None, **kwargs):
        super().__init__(**kwargs)
        if int(num_heads) <= 0 or int(intermediate_dim) <= 0:
            raise ValueError(
                "`num_heads` and `intermediate_dim` must be positive; got "
                f"{num_heads} and {intermediate_dim}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1); got {dropout}.")
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim)
        self.dropout = float(dropout)
        self.epsilon = float(epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(
            _inputs.generator_seed(seed))
        # the padding mask goes on to the next block, as keras-hub's
        self.supports_masking = True

    def build(self, input_shape):
        width = int(input_shape[-1])
        if width % self.num_heads:
            raise ValueError(
                f"The input width ({width}) must be a multiple of "
                f"`num_heads` ({self.num_heads}).")
        self.width = width
        heads, head_dim = self.num_heads, width // self.num_heads

        def weight(name, shape, initializer, autocast=True):
            return self.add_weight(name=name, shape=shape,
                                   initializer=initializer, autocast=autocast)

        kernel = self.kernel_initializer
        # normalisation parameters stay float32 under mixed precision, as
        # in keras.layers.LayerNormalization
        self.attention_norm_gamma = weight(
            "attention_norm_gamma", (width,), "ones", autocast=False)
        self.attention_norm_beta = weight(
            "attention_norm_beta", (width,), "zeros", autocast=False)
        # query, key and value in one kernel, by head: tensor parallelism
        # (a LayoutMap) can split every projection along the heads axis
        self.qkv_kernel = weight(
            "qkv_kernel", (width, 3, heads, head_dim), kernel)
        self.qkv_bias = weight("qkv_bias", (3, heads, head_dim), "zeros")
        self.attention_output_kernel = weight(
            "attention_output_kernel", (heads, head_dim, width), kernel)
        self.attention_output_bias = weight(
            "attention_output_bias", (width,), "zeros")
        self.mlp_norm_gamma = weight(
            "mlp_norm_gamma", (width,), "ones", autocast=False)
        self.mlp_norm_beta = weight(
            "mlp_norm_beta", (width,), "zeros", autocast=False)
        self.mlp_kernel = weight(
            "mlp_kernel", (width, self.intermediate_dim), kernel)
        self.mlp_bias = weight("mlp_bias", (self.intermediate_dim,), "zeros")
        self.mlp_output_kernel = weight(
            "mlp_output_kernel", (self.intermediate_dim, width), kernel)
        self.mlp_output_bias = weight("mlp_output_bias", (width,), "zeros")

    def _norm(self, x, gamma, beta):
        x = ops.layer_normalization(x, gamma, beta, epsilon=self.epsilon)
        return ops.cast(x, self.compute_dtype)

    def _dropout(self, x, training):
        if training and self.dropout > 0:
            return keras.random.dropout(x, self.dropout,
                                        seed=self.seed_generator)
        return x

    def _queries_keys_values(self, x):
        h = self._norm(x, self.attention_norm_gamma, self.attention_norm_beta)
        # Inside `__call__` Keras reads the kernel in the compute dtype
        # (autocast) and these casts do nothing; `attention_probabilities`
        # runs outside it, where a mixed-precision block's kernel reads as
        # its float32 variable (PyTorch's einsum refuses float16 by float32)
        kernel = ops.cast(self.qkv_kernel, h.dtype)
        bias = ops.cast(self.qkv_bias, h.dtype)
        # (batch, length, 3, heads, head_dim)
        qkv = ops.einsum("btd,dkhe->btkhe", h, kernel) + bias
        return qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]

    @staticmethod
    def _causal_mask(length, key_length, offset):
        """`(1, 1, length, key_length)`: query `i` (at position `offset +
        i`) sees keys `0 .. offset + i`."""
        rows = ops.expand_dims(ops.arange(length) + offset, 1)
        columns = ops.expand_dims(ops.arange(key_length), 0)
        return ops.expand_dims(columns <= rows, (0, 1))

    @staticmethod
    def _probabilities(q, k, mask):
        """Softmax of the scaled scores of queries and keys `(batch,
        length, heads, head_dim)` where `mask`, in float32: `(batch, heads,
        queries, keys)`."""
        scores = ops.einsum("bqhd,bkhd->bhqk", q, k)
        scores = ops.cast(scores, "float32") / math.sqrt(q.shape[-1])
        scores = ops.where(mask, scores, -1e9)
        return ops.softmax(scores, axis=-1)

    @classmethod
    def causal_probabilities(cls, q, k):
        """The causal attention weights of queries and keys `(batch,
        length, heads, head_dim)` of one sequence: `(batch, heads, length,
        length)`, float32, zero above the diagonal (also what
        `keras_genzoo.plots` computes for keras-hub blocks)."""
        length = ops.shape(q)[1]
        return cls._probabilities(q, k, cls._causal_mask(length, length, 0))

    _WEIGHTS = ("attention_norm_gamma", "attention_norm_beta", "qkv_kernel",
                "qkv_bias", "attention_output_kernel",
                "attention_output_bias", "mlp_norm_gamma", "mlp_norm_beta",
                "mlp_kernel", "mlp_bias", "mlp_output_kernel",
                "mlp_output_bias")

    def _weights_by_name(self):
        """The weights as this call reads them (cast to the compute dtype
        under mixed precision, except the normalisation parameters)."""
        # `.value` is what `convert_to_tensor` reads, without its checks
        # (12 weights: ~110 -> ~50 us per call on eager PyTorch, measured)
        return {name: getattr(self, name).value for name in self._WEIGHTS}

    @classmethod
    def _padding_mask(cls, padding, length):
        """`(batch, 1, length, length)`: the causal mask without the
        padding keys, each query keeping its own key (so that no row is
        empty: fused attention kernels give NaN for one)."""
        keys = ops.expand_dims(ops.cast(padding, "bool"), (1, 2))
        positions = ops.arange(length)
        itself = ops.expand_dims(ops.expand_dims(positions, 1)
                                 == ops.expand_dims(positions, 0), (0, 1))
        return ops.logical_and(cls._causal_mask(length, length, 0),
                               ops.logical_or(keys, itself))

    def call(self, inputs, training=False, cache=None,
             cache_update_index=None, mask=None):
        if mask is not None and cache is not None:
            raise ValueError(
                "`CausalSelfAttentionBlock` takes a padding `mask` or a "
                "`cache`, not both: generate with a cache from sequences "
                "without padding (or call without `cache`).")
        if (zoo_backend.causal_self_attention_block is not None
                and mask is None):
            # the backend's own ops for the whole block (PyTorch), where
            # Keras' ops cost Python one by one; the Keras ops below are
            # its definition (tests compare the two), so a change here is
            # a change there
            dropout = (functools.partial(self._dropout, training=training)
                       if training and self.dropout > 0 else None)
            if cache is not None:
                cache = ops.convert_to_tensor(cache)
            return zoo_backend.causal_self_attention_block(
                ops.convert_to_tensor(inputs), self._weights_by_name(),
                self.num_heads, self.epsilon, dropout, cache,
                0 if cache_update_index is None else cache_update_index)
        x = inputs
        q, k, v = self._queries_keys_values(x)
        if mask is not None:
            # (the backend's fused block has no padding mask: these ops)
            mask = self._padding_mask(mask, ops.shape(q)[1])
        if cache is not None:
            index = 0 if cache_update_index is None else cache_update_index
            start = [0, index, 0, 0]
            k = ops.slice_update(cache[:, 0], start, k)
            v = ops.slice_update(cache[:, 1], start, v)
            cache = ops.stack((k, v), axis=1)
            mask = self._causal_mask(ops.shape(q)[1], ops.shape(k)[1], index)
        if training and self.dropout > 0:
            if mask is None:
                mask = self._causal_mask(ops.shape(q)[1], ops.shape(k)[1], 0)
            probs = self._dropout(self._probabilities(q, k, mask), training)
            attended = ops.einsum("bhqk,bkhd->bqhd",
                                  ops.cast(probs, v.dtype), v)
        else:
            attended = ops.dot_product_attention(
                q, k, v, mask=mask, is_causal=mask is None)
        attended = (ops.einsum("bthe,hed->btd", attended,
                               self.attention_output_kernel)
                    + self.attention_output_bias)
        x = x + self._dropout(attended, training)
        h = self._norm(x, self.mlp_norm_gamma, self.mlp_norm_beta)
        h = ops.gelu(ops.matmul(h, self.mlp_kernel) + self.mlp_bias,
                     approximate=False)
        h = ops.matmul(h, self.mlp_output_kernel) + self.mlp_output_bias
        x = x + self._dropout(h, training)
        return x if cache is None else (x, cache)

    def attention_probabilities(self, inputs):
        """The attention weights `(batch, num_heads, length, length)` of
        `inputs` (causal, no dropout): row `i` is how much position `i`
        draws from each position up to it."""
        q, k, _ = self._queries_keys_values(
            ops.cast(inputs, self.compute_dtype))
        return self.causal_probabilities(q, k)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
            "epsilon": self.epsilon,
            "kernel_initializer": keras.initializers.serialize(
                self.kernel_initializer),
            "seed": self.seed,
        })
        return config
