"""layers.CausalSelfAttentionBlock: the same function as keras-hub's
pre-norm TransformerDecoder, its key/value cache, dropout, dtypes, saving."""

import os

import keras
import numpy as np
import pytest

from keras_genzoo.layers import CausalSelfAttentionBlock

WIDTH, HEADS, HIDDEN, LENGTH = 16, 4, 32, 7


def _n(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _pair(seed=0):
    """A keras-hub TransformerDecoder with random weights, and our block
    holding the same numbers (q, k, v fused into one matrix)."""
    import keras_hub

    hub = keras_hub.layers.TransformerDecoder(
        intermediate_dim=HIDDEN, num_heads=HEADS, activation="gelu",
        layer_norm_epsilon=1e-5, normalize_first=True)
    hub.build((None, LENGTH, WIDTH))
    rng = np.random.default_rng(seed)
    for weight in hub.weights:
        weight.assign(0.3 * rng.normal(size=weight.shape).astype("float32"))
    theirs = {w.path.split("/", 1)[1]: _n(w) for w in hub.weights}
    block = CausalSelfAttentionBlock(HEADS, HIDDEN)
    block.build((None, LENGTH, WIDTH))
    attention = "self_attention/{}/{}"
    # keras-hub: (width, heads, head_dim) each; ours (width, 3, heads,
    # head_dim) and (3, heads, head_dim)
    block.qkv_kernel.assign(np.stack(
        [theirs[attention.format(n, "kernel")]
         for n in ("query", "key", "value")], axis=1))
    block.qkv_bias.assign(np.stack(
        [theirs[attention.format(n, "bias")]
         for n in ("query", "key", "value")]))
    block.attention_output_kernel.assign(
        theirs[attention.format("attention_output", "kernel")])
    block.attention_output_bias.assign(
        theirs[attention.format("attention_output", "bias")])
    for ours, name in (("attention_norm", "self_attention_layer_norm"),
                       ("mlp_norm", "feedforward_layer_norm")):
        getattr(block, ours + "_gamma").assign(theirs[name + "/gamma"])
        getattr(block, ours + "_beta").assign(theirs[name + "/beta"])
    for ours, name in (("mlp", "feedforward_intermediate_dense"),
                       ("mlp_output", "feedforward_output_dense")):
        getattr(block, ours + "_kernel").assign(theirs[name + "/kernel"])
        getattr(block, ours + "_bias").assign(theirs[name + "/bias"])
    return hub, block


def _copy(block, **kwargs):
    """A built `CausalSelfAttentionBlock(HEADS, HIDDEN, **kwargs)` holding
    `block`'s weights."""
    copy = CausalSelfAttentionBlock(HEADS, HIDDEN, **kwargs)
    copy.build((None, LENGTH, WIDTH))
    copy.set_weights(block.get_weights())
    return copy


def _inputs(batch=2, length=LENGTH, seed=1):
    return np.random.default_rng(seed).normal(
        size=(batch, length, WIDTH)).astype("float32")


def test_equals_keras_hub_pre_norm_decoder():
    hub, block = _pair()
    x = _inputs()
    expected = _n(hub(x))
    assert np.abs(expected).max() > 1.0  # not a degenerate comparison
    np.testing.assert_allclose(_n(block(x)), expected, rtol=1e-5, atol=1e-5)
    # and its gradients with respect to the inputs
    from keras_genzoo import backend as zoo_backend

    def total(layer):
        return zoo_backend.input_gradients(
            lambda v: keras.ops.sum(keras.ops.square(layer(v))),
            keras.ops.convert_to_tensor(x))

    np.testing.assert_allclose(_n(total(block)), _n(total(hub)),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_backend_block_equals_the_keras_ops(monkeypatch, dtype, dropout):
    """Where the backend runs the block in its own ops (PyTorch), outputs
    and gradients (inputs and every weight) equal the layer's Keras ops,
    dropout masks included."""
    from keras_genzoo import backend as zoo_backend

    if zoo_backend.causal_self_attention_block is None:
        pytest.skip(f"{keras.backend.backend()} runs the block's Keras ops")
    import torch

    _, reference = _pair()

    def run(fused):
        block = _copy(reference, dropout=dropout, seed=5, dtype=dtype)
        if not fused:
            monkeypatch.setattr(zoo_backend, "causal_self_attention_block",
                                None)
        x = torch.tensor(_inputs(), requires_grad=True)
        out = block(x, training=dropout > 0)
        monkeypatch.undo()
        weights = [w.value for w in block.trainable_weights]
        grads = torch.autograd.grad(out.float().square().sum(), [x] + weights)
        dtypes = [str(t.dtype) for t in [out] + list(grads)]
        return dtypes, [_n(out.float())] + [_n(g.float()) for g in grads]

    (fused_dtypes, fused), (keras_dtypes, keras_ops) = run(True), run(False)
    assert len(fused) == 1 + 1 + 12
    assert fused_dtypes == keras_dtypes
    # bfloat16 rounding differs between the two by up to ~1 % of the
    # largest value: that comparison catches wrong arithmetic, the float32
    # one any difference in the function
    tolerance = 1e-5 if dtype == "float32" else 3e-2
    for a, b in zip(fused, keras_ops):
        scale = max(np.abs(b).max(), 1.0)
        np.testing.assert_allclose(a, b, rtol=tolerance,
                                   atol=tolerance * scale)
    if dropout:  # masks drawn, and the same ones: not a dropout-free match
        no_dropout = _copy(reference, dtype=dtype)
        assert not np.allclose(_n(keras.ops.cast(no_dropout(_inputs()),
                                                 "float32")), fused[0],
                               atol=0.1)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_backend_block_cache_equals_the_keras_ops(monkeypatch, dtype):
    """The backend's own ops (PyTorch) with a key/value cache: the same
    outputs and the same cache as the layer's Keras ops, filling the
    context then one position at a time."""
    from keras_genzoo import backend as zoo_backend

    if zoo_backend.causal_self_attention_block is None:
        pytest.skip(f"{keras.backend.backend()} runs the block's Keras ops")
    _, reference = _pair()
    block = _copy(reference, dtype=dtype)
    x = _inputs()

    def decode():
        cache = keras.ops.zeros((2, 2, LENGTH, HEADS, WIDTH // HEADS),
                                block.compute_dtype)
        out, cache = block(x[:, :3], cache=cache, cache_update_index=0)
        outs = [out]
        for i in range(3, LENGTH):
            out, cache = block(x[:, i:i + 1], cache=cache,
                               cache_update_index=keras.ops.convert_to_tensor(
                                   i, "int32"))
            outs.append(out)
        return [_n(keras.ops.cast(t, "float32"))
                for t in (keras.ops.concatenate(outs, axis=1), cache)]

    fused = decode()
    monkeypatch.setattr(zoo_backend, "causal_self_attention_block", None)
    keras_ops = decode()
    tolerance = 1e-5 if dtype == "float32" else 3e-2
    for a, b in zip(fused, keras_ops):
        np.testing.assert_allclose(a, b, rtol=tolerance,
                                   atol=tolerance * np.abs(b).max())


def test_cache_gives_the_full_call_position_by_position():
    _, block = _pair()
    x = _inputs()
    full = _n(block(x))
    cache = np.zeros((2, 2, LENGTH, HEADS, WIDTH // HEADS), "float32")
    out, cache = block(x[:, :3], cache=cache, cache_update_index=0)
    outs = [_n(out)]
    for i in range(3, LENGTH):
        out, cache = block(x[:, i:i + 1], cache=cache, cache_update_index=i)
        outs.append(_n(out))
    np.testing.assert_allclose(np.concatenate(outs, axis=1), full,
                               rtol=1e-5, atol=1e-5)
    assert _n(cache).shape == (2, 2, LENGTH, HEADS, WIDTH // HEADS)
    # every position written: no all-zero key row left
    assert (np.abs(_n(cache)).sum(axis=(0, 3, 4)) > 0).all()


def test_is_causal():
    _, block = _pair()
    x = _inputs()
    changed = x.copy()
    changed[:, 4:] += 1.0
    a, b = _n(block(x)), _n(block(changed))
    np.testing.assert_allclose(a[:, :4], b[:, :4], rtol=1e-5, atol=1e-5)
    assert not np.allclose(a[:, 4:], b[:, 4:])


@pytest.mark.parametrize("where", ["left", "right", "between"])
def test_padding_mask_gives_the_outputs_without_the_padding(where):
    """With a padding mask, the outputs at the tokens are those of the
    sequence without its padding (the block has no positions of its own),
    in the fused attention path and the explicit one (dropout, training);
    a padding position attends to itself only (no NaN anywhere)."""
    _, block = _pair()
    x = _inputs(batch=1)
    tokens = {"left": np.arange(3, LENGTH), "right": np.arange(0, 4),
              "between": np.array([0, 1, 4, 6])}[where]
    mask = np.zeros((1, LENGTH), bool)
    mask[0, tokens] = True
    alone = _n(block(x[:, tokens]))
    out = _n(block(x, mask=mask))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, tokens], alone, rtol=1e-5, atol=1e-5)
    # the explicit attention path (training with dropout; a rate of 1e-9
    # drops nothing, so the outputs are comparable)
    explicit = _copy(block, dropout=1e-9, seed=1)
    trained = _n(explicit(x, mask=mask, training=True))
    np.testing.assert_allclose(trained[:, tokens], alone, rtol=1e-4,
                               atol=1e-4)


def test_a_masking_embedding_masks_every_block():
    """Keras passes an `Embedding(mask_zero=True)`'s mask to the first
    block and each block passes it on; padding ids change nothing at the
    tokens."""
    ids = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(11, WIDTH, mask_zero=True)(ids)
    h = CausalSelfAttentionBlock(HEADS, HIDDEN)(h)
    h = CausalSelfAttentionBlock(HEADS, HIDDEN)(h)
    model = keras.Model(ids, h)
    padded = np.array([[0, 0, 3, 5, 7]], "int32")
    np.testing.assert_allclose(_n(model(padded))[:, 2:],
                               _n(model(padded[:, 2:])), rtol=1e-5,
                               atol=1e-5)
    _, block = _pair()
    with pytest.raises(ValueError, match="not both"):
        block(_inputs()[:, :2], mask=np.ones((2, 2), bool),
              cache=np.zeros((2, 2, LENGTH, HEADS, WIDTH // HEADS),
                             "float32"), cache_update_index=0)


def test_attention_probabilities_are_causal_rows():
    _, block = _pair()
    probs = _n(block.attention_probabilities(_inputs()))
    assert probs.shape == (2, HEADS, LENGTH, LENGTH)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.triu(probs, 1) == 0)


def test_dropout_only_in_training_and_seeded():
    x = _inputs()
    block = CausalSelfAttentionBlock(HEADS, HIDDEN, dropout=0.5, seed=3)
    inference = _n(block(x))
    np.testing.assert_array_equal(_n(block(x)), inference)
    trained_a = _n(block(x, training=True))
    assert not np.allclose(trained_a, inference)
    again = _copy(block, dropout=0.5, seed=3)
    np.testing.assert_allclose(_n(again(x, training=True)), trained_a,
                               rtol=1e-6, atol=1e-6)
    # and it is still causal with dropout (the explicit attention path)
    changed = x.copy()
    changed[:, 4:] += 1.0
    c = _copy(block, dropout=0.5, seed=3)
    np.testing.assert_allclose(_n(c(changed, training=True))[:, :4],
                               trained_a[:, :4], rtol=1e-5, atol=1e-5)


def test_mixed_precision():
    block = CausalSelfAttentionBlock(HEADS, HIDDEN, dtype="mixed_bfloat16")
    out = block(_inputs())
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    assert all(w.dtype == "float32" for w in block.weights)
    cache = np.zeros((2, 2, LENGTH, HEADS, WIDTH // HEADS), "float32")
    out, cache = block(_inputs()[:, :2], cache=keras.ops.cast(
        cache, "bfloat16"), cache_update_index=0)
    assert keras.backend.standardize_dtype(cache.dtype) == "bfloat16"


def test_config_and_saving(tmp_path):
    block = CausalSelfAttentionBlock(HEADS, HIDDEN, dropout=0.1, epsilon=1e-6,
                                     seed=5, name="blk")
    config = block.get_config()
    again = CausalSelfAttentionBlock.from_config(config)
    assert again.get_config() == config
    inputs = keras.Input((LENGTH, WIDTH))
    model = keras.Model(inputs, block(inputs))
    path = os.path.join(tmp_path, "block.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = _inputs()
    np.testing.assert_allclose(_n(loaded(x)), _n(model(x)), rtol=1e-6)
    assert isinstance(loaded.layers[-1], CausalSelfAttentionBlock)


def test_bad_arguments():
    with pytest.raises(ValueError, match="multiple of `num_heads`"):
        CausalSelfAttentionBlock(3, HIDDEN)(_inputs())
    with pytest.raises(ValueError, match="positive"):
        CausalSelfAttentionBlock(0, HIDDEN)
    with pytest.raises(ValueError, match="dropout"):
        CausalSelfAttentionBlock(HEADS, HIDDEN, dropout=1.0)
