import os

import keras
import numpy as np
import pytest

from keras_genzoo import MiniGPT, datasets
from keras_genzoo import backend as zoo_backend_module
from keras_genzoo.callbacks import TextSampler

SMALL = dict(sequence_length=16, num_layers=2, num_heads=2, hidden_dim=32)


@pytest.fixture(scope="module")
def shakespeare():
    return datasets.load_text("tiny_shakespeare")[:40_000]


@pytest.fixture(scope="module")
def trained(shakespeare):
    """A tiny GPT after two epochs on real text, and its history."""
    keras.utils.set_random_seed(0)
    gpt = MiniGPT.from_text(shakespeare, **SMALL)
    train_ds, val_ds = gpt.make_datasets(shakespeare, batch_size=32)
    history = gpt.fit(train_ds, validation_data=val_ds, epochs=2, verbose=0)
    return gpt, history.history


def test_loss_goes_down_and_bits_per_char_logged(trained):
    gpt, history = trained
    loss = history["loss"]
    # uniform over the vocabulary is ln(V) ~ 4.1 nats; the trained model
    # is well below, and learning continues in the second epoch
    assert loss[0] < np.log(gpt.vocabulary_size)
    assert loss[1] < loss[0] - 0.1
    assert history["val_loss"][-1] < 2.9
    np.testing.assert_allclose(history["bits_per_char"],
                               np.array(loss) / np.log(2), rtol=1e-4)
    assert "val_bits_per_char" in history


def test_architecture_fused_blocks_or_keras_hub_decoder_blocks():
    import keras_hub

    from keras_genzoo.layers import CausalSelfAttentionBlock

    gpt = MiniGPT(vocabulary=list("abcdefgh"))
    assert (gpt.num_layers, gpt.num_heads, gpt.hidden_dim,
            gpt.sequence_length, gpt.block_type) == (4, 4, 128, 64, "fused")
    assert len(gpt.blocks) == 4
    assert all(isinstance(b, CausalSelfAttentionBlock) for b in gpt.blocks)
    assert isinstance(gpt.embedding,
                      keras_hub.layers.TokenAndPositionEmbedding)
    # the output head is tied to the token embedding: one matrix
    assert gpt.embedding.token_embedding.tie_weights
    logits = gpt(np.zeros((2, 64), dtype="int32"))
    assert tuple(logits.shape) == (2, 64, 8)
    hub = MiniGPT(vocabulary=list("abcdefgh"), block_type="keras_hub")
    assert all(isinstance(b, keras_hub.layers.TransformerDecoder)
               and b.normalize_first for b in hub.blocks)
    # the same parameters, laid out differently (q, k, v fused)
    # per block 12 d^2 + 13 d; embeddings (8 + 64) d; final norm 2 d
    d = 128
    assert hub.count_params() == gpt.count_params() == (
        4 * (12 * d * d + 13 * d) + (8 + 64) * d + 2 * d)
    assert tuple(hub(np.zeros((2, 64), dtype="int32")).shape) == (2, 64, 8)
    with pytest.raises(ValueError, match="block_type"):
        MiniGPT(vocabulary=list("ab"), block_type="flash")


def test_keras_hub_blocks_generate_save_and_old_configs(tmp_path):
    """`block_type="keras_hub"`: keras-hub's cached attention in generate,
    saving, and configs written before `block_type` existed."""
    text = datasets.load_text("tiny_shakespeare")[:3000]
    gpt = MiniGPT.from_text(text, block_type="keras_hub", **SMALL)
    gpt.fit(gpt.make_datasets(text, batch_size=16)[0], epochs=1, verbose=0)
    greedy = _greedy_by_hand(gpt, "First", 20)
    assert gpt.generate("First", max_new_tokens=20, top_k=1) == greedy
    path = os.path.join(tmp_path, "hub.keras")
    gpt.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.block_type == "keras_hub"
    ids = gpt.encode_text("First")[None]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(ids)),
                                  keras.ops.convert_to_numpy(gpt(ids)))
    old = gpt.get_config()
    del old["block_type"]
    assert MiniGPT.from_config(old).block_type == "keras_hub"


def test_attention_is_causal():
    gpt = MiniGPT(vocabulary=list("abcdefgh"), **SMALL)
    ids = np.random.default_rng(0).integers(0, 8, (1, 16)).astype("int32")
    changed = ids.copy()
    changed[0, 10:] = (changed[0, 10:] + 1) % 8
    a = keras.ops.convert_to_numpy(gpt(ids))
    b = keras.ops.convert_to_numpy(gpt(changed))
    np.testing.assert_allclose(a[0, :10], b[0, :10], atol=1e-5)
    assert not np.allclose(a[0, 10:], b[0, 10:])


def test_generate_is_seeded_and_stays_in_the_vocabulary(trained):
    gpt, _ = trained
    kwargs = dict(max_new_tokens=40, temperature=0.8, top_k=10)
    a = gpt.generate("ROMEO:", seed=0, **kwargs)
    assert a.startswith("ROMEO:") and len(a) == 46
    assert set(a) <= set(gpt.vocabulary)
    assert a == gpt.generate("ROMEO:", seed=0, **kwargs)
    assert a != gpt.generate("ROMEO:", seed=1, **kwargs)
    # seed 1's text was seed 0's a character on, on PyTorch (Keras seeds
    # each draw with the seed plus the draw count)
    shifted = [gpt.generate("ROMEO:", seed=s, **kwargs)[6:] for s in (0, 1)]
    assert shifted[1][:-1] != shifted[0][1:]
    nucleus = gpt.generate("A", max_new_tokens=30, top_p=0.9, seed=3)
    assert len(nucleus) == 31 and set(nucleus) <= set(gpt.vocabulary)
    assert nucleus == gpt.generate("A", max_new_tokens=30, top_p=0.9, seed=3)
    assert gpt.generate("A", max_new_tokens=0) == "A"
    # a vanishing temperature samples greedily (keras-hub's softmax of
    # logits / 1e-30 overflowed in the compiled loop: other text on
    # TensorFlow and JAX)
    greedy = gpt.generate("ROMEO:", max_new_tokens=12, top_k=1)
    for sampling in (dict(top_k=3), dict(top_p=0.9), {}):
        assert gpt.generate("ROMEO:", max_new_tokens=12, temperature=1e-30,
                            seed=0, **sampling) == greedy, sampling


def _greedy_by_hand(gpt, prompt, steps):
    """Greedy decoding by full forward passes over the last window (right-
    padded to one compiled shape: attention is causal)."""
    ids = list(gpt.encode_text(prompt))
    for _ in range(steps):
        window = ids[-gpt.sequence_length:]
        padded = np.zeros((1, gpt.sequence_length), dtype="int32")
        padded[0, :len(window)] = window
        logits = gpt.predict_on_batch(padded)[0, len(window) - 1]
        ids.append(int(np.argmax(logits)))
    return gpt.decode_ids(ids)


def test_top_k_one_is_greedy_inside_and_beyond_the_context(trained):
    gpt, _ = trained
    # 5 + 40 characters: the cached loop fills the 16-character context,
    # then the sliding window takes over
    greedy = _greedy_by_hand(gpt, "First", 40)
    assert gpt.generate("First", max_new_tokens=40, top_k=1, seed=0) == greedy
    assert gpt.generate("First", max_new_tokens=40, top_k=1, seed=7) == greedy


def test_prompt_longer_than_the_context_is_cropped(trained, shakespeare):
    gpt, _ = trained
    prompt = shakespeare[:50]  # > sequence_length 16
    out = gpt.generate(prompt, max_new_tokens=10, top_k=1)
    assert out.startswith(prompt) and len(out) == 60
    assert out == _greedy_by_hand(gpt, prompt, 10)


def test_save_load_keeps_vocabulary_logits_and_samples(tmp_path):
    text = "Olá, coração! São João, maçã e pão. " * 40
    gpt = MiniGPT.from_text(text, **SMALL)
    gpt.fit(gpt.make_datasets(text, batch_size=8)[0], epochs=1, verbose=0)
    path = os.path.join(tmp_path, "gpt.keras")
    gpt.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded, MiniGPT)
    assert loaded.vocabulary == gpt.vocabulary and "ç" in loaded.vocabulary
    assert loaded.get_config() == gpt.get_config()
    ids = gpt.encode_text("São João, maçã")[None]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(ids)),
                                  keras.ops.convert_to_numpy(gpt(ids)))
    kwargs = dict(max_new_tokens=30, temperature=0.9, seed=4)
    assert loaded.generate("Olá", **kwargs) == gpt.generate("Olá", **kwargs)
    # the loaded model is compiled like the saved one (no silent skip)
    assert loaded.compiled and type(loaded.optimizer) is type(gpt.optimizer)
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == (
        int(keras.ops.convert_to_numpy(gpt.optimizer.iterations)))


def test_compile_drops_the_compiled_sampling_loops():
    text = "to be or not to be " * 30
    gpt = MiniGPT.from_text(text, **SMALL)
    first = gpt.generate("to", max_new_tokens=5, top_k=1)
    assert gpt._loops.by_setting
    gpt.compile(optimizer="sgd")
    assert not gpt._loops.by_setting
    assert gpt.generate("to", max_new_tokens=5, top_k=1) == first


def test_text_sampler_prints_and_appends(trained, tmp_path, capsys):
    gpt, _ = trained
    path = os.path.join(tmp_path, "samples", "gpt.txt")
    sampler = TextSampler("ROMEO:", max_new_tokens=20, every_n_epochs=2,
                          path=path, seed=0, temperature=0.8, top_k=10)
    data = gpt.make_datasets(datasets.load_text("tiny_shakespeare")[:5000],
                             batch_size=32)[0]
    gpt.fit(data, epochs=4, callbacks=[sampler], verbose=0)
    assert [epoch for epoch, _ in sampler.samples] == [2, 4]
    printed = capsys.readouterr().out
    with open(path, encoding="utf-8") as f:
        written = f.read()
    for epoch, text in sampler.samples:
        assert text.startswith("ROMEO:") and len(text) == 26
        assert text in printed and text in written
        assert f"=== epoch {epoch}, loss " in written
    # the same prompt and seed: the same text as a direct call
    assert sampler.samples[-1][1] == gpt.generate(
        "ROMEO:", 20, seed=0, temperature=0.8, top_k=10)
    # appends: a second fit adds to the same file
    gpt.fit(data, epochs=2, callbacks=[sampler], verbose=0)
    with open(path, encoding="utf-8") as f:
        assert f.read().count("=== epoch") == 3


def test_mixed_bfloat16_trains_and_generates():
    text = datasets.load_text("tiny_shakespeare")[:3000]
    gpt = MiniGPT.from_text(text, dtype="mixed_bfloat16", **SMALL)
    # Keras' default jit_compile (no XLA on a TensorFlow CPU): a quicker
    # compile than MiniGPT's default, the same dtype handling
    gpt.compile(optimizer=keras.optimizers.AdamW(1e-3))
    history = gpt.fit(gpt.make_datasets(text, batch_size=16)[0], epochs=1,
                      verbose=0).history
    assert np.isfinite(history["loss"][0])
    sample = gpt.generate("A", max_new_tokens=20, seed=0)
    assert len(sample) == 21 and set(sample) <= set(gpt.vocabulary)
    # the cached steps compute as the model's call: logits in the same
    # dtype (float32, from the float32 tied table), the same values
    ids = np.asarray([gpt.encode_text(text[:16])], "int32")
    full = gpt(ids)
    cached, _ = gpt.call_with_cache(ids, gpt.empty_cache(1), 0)
    assert (keras.backend.standardize_dtype(cached.dtype)
            == keras.backend.standardize_dtype(full.dtype) == "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(cached),
                               keras.ops.convert_to_numpy(full),
                               rtol=2e-2, atol=2e-2)
    # and so are `predict`'s and `next_logits`' on every backend (JAX's
    # compiled predict gave bfloat16)
    assert gpt.predict(ids, verbose=0).dtype == np.float32
    assert gpt.next_logits(ids[0]).dtype == np.float32


@pytest.mark.parametrize("block_type", ["fused", "keras_hub"])
def test_mixed_float16_trains_or_names_the_fix(block_type):
    text = datasets.load_text("tiny_shakespeare")[:3000]
    gpt = MiniGPT.from_text(text, dtype="mixed_float16",
                            block_type=block_type, **SMALL)
    gpt.compile(optimizer=keras.optimizers.AdamW(1e-3))
    data = gpt.make_datasets(text, batch_size=16)[0]
    if (keras.backend.backend() == "jax"
            and __import__("jax").default_backend() == "cpu"):
        # XLA's CPU backend cannot compile Keras' float16 attention: one
        # ValueError that names the fix, from fit and generate, not XLA's
        before = [keras.ops.convert_to_numpy(w) for w in gpt.weights]
        started = []
        spy = keras.callbacks.LambdaCallback(
            on_train_begin=lambda logs: started.append(True))
        with pytest.raises(ValueError, match="mixed_bfloat16"):
            gpt.fit(data, epochs=1, steps_per_epoch=2, verbose=0,
                    callbacks=[spy])
        assert not started  # refused before any callback ran
        with pytest.raises(ValueError, match="mixed_bfloat16"):
            gpt.generate("A", max_new_tokens=5, seed=0)
        for w, b in zip(gpt.weights, before):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), b)
        return
    history = gpt.fit(data, epochs=1, steps_per_epoch=2, verbose=0).history
    assert np.isfinite(history["loss"][0])
    sample = gpt.generate("A", max_new_tokens=5, seed=0)
    assert len(sample) == 6 and set(sample) <= set(gpt.vocabulary)


def test_bad_input_messages(trained):
    gpt, _ = trained
    with pytest.raises(ValueError, match="`text` is empty"):
        MiniGPT.from_text("")
    with pytest.raises(ValueError, match="multiple of `num_heads`"):
        MiniGPT(vocabulary=list("abc"), hidden_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="`num_layers` must be positive"):
        MiniGPT(vocabulary=list("abc"), num_layers=0)
    with pytest.raises(ValueError, match=r"outside the model's vocabulary: \['~'\]"):
        gpt.generate("ROMEO~")
    with pytest.raises(ValueError, match="prompt` is empty"):
        gpt.generate("")
    with pytest.raises(ValueError, match="temperature"):
        gpt.generate("A", temperature=0)
    with pytest.raises(ValueError, match="top_k"):
        gpt.generate("A", top_k=0)
    with pytest.raises(ValueError, match="fewer than one window"):
        MiniGPT.from_text("short text", **SMALL).make_datasets("short text")
    with pytest.raises(ValueError, match="at most sequence_length=16"):
        gpt(np.zeros((1, 17), dtype="int32"))
    # a bad sampler prompt fails before the first training step
    fresh = MiniGPT.from_text("abcdefgh" * 40, **SMALL)
    with pytest.raises(ValueError, match=r"vocabulary: \['z'\]"):
        fresh.fit(fresh.make_datasets("abcdefgh" * 40, batch_size=4)[0],
                  callbacks=[TextSampler("z", verbose=False)], verbose=0)
    assert int(fresh.optimizer.iterations) == 0
    with pytest.raises(ValueError, match="`prompt` must be a non-empty"):
        TextSampler("")


def test_keras_hub_is_imported_only_for_the_gpt():
    import subprocess
    import sys

    code = (
        "import sys, keras_genzoo\n"
        "keras_genzoo.BigramLM.from_text('abc')\n"
        "assert 'keras_hub' not in sys.modules\n"
        "keras_genzoo.MiniGPT.from_text('abc', sequence_length=4, "
        "num_layers=1, num_heads=1, hidden_dim=8)\n"
        "assert 'keras_hub' in sys.modules\n"
    )
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    subprocess.run([sys.executable, "-c", code], check=True, env=env,
                   cwd=os.path.join(os.path.dirname(__file__), os.pardir),
                   capture_output=True)


def test_a_compiled_training_step_is_one_graph():
    """`jit_compile=True` on PyTorch: MiniGPT's training step, with dropout
    and the zoo's AdamW recipe, traces as one graph, Keras' `backward()`
    included, as the zoo compiles it (no `.item()`, data-dependent branch
    or other break that would cut torch.compile's graphs into pieces)."""
    if keras.backend.backend() != "torch":
        pytest.skip("torch.compile is PyTorch's")
    import torch

    from keras_genzoo import warmup_cosine_adamw
    from keras_genzoo.backend import torch_steps

    gpt = MiniGPT(list("abcdefghij"), dropout=0.1, **SMALL)
    gpt.compile(optimizer=warmup_cosine_adamw(100))
    ids = keras.ops.convert_to_tensor(
        np.random.default_rng(0).integers(0, 10, (2, 16)), "int32")
    gpt.train_on_batch(ids, ids)  # builds the optimizer's variables
    with torch_steps.traceable_steps():
        explanation = torch._dynamo.explain(gpt.train_step)((ids, ids))
    reasons = [r.reason.splitlines()[0] for r in explanation.break_reasons]
    assert explanation.graph_break_count == 0, reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_jit_compile_true_generates_the_same_text_with_compiled_steps(dtype):
    """`jit_compile=True`: the same greedy and seeded text, inside and
    beyond the context, as the default; on PyTorch the two model steps of
    the sampling loop (one token with the cache, one window past the
    context) are then compiled, each as one graph, once for every sampler
    setting, and the sampler's step (probabilities, the seeded draw, the
    new token written) as one graph for each setting and prompt length;
    by default nothing is compiled there. Under a mixed policy too."""
    text = "to be or not to be, that is the question. " * 4
    keras.utils.set_random_seed(0)
    default = MiniGPT.from_text(text, sequence_length=8, num_layers=1,
                                num_heads=2, hidden_dim=16, dtype=dtype)
    compiled = MiniGPT.from_config(default.get_config())
    compiled.set_weights(default.get_weights())
    default.compile()
    compiled.compile(jit_compile=True)
    torch_counters = None
    if keras.backend.backend() == "torch":
        import torch

        torch._dynamo.reset()
        torch_counters = torch._dynamo.utils.counters
        torch_counters.clear()

    settings = [dict(top_k=1), dict(seed=3),
                dict(seed=3, temperature=0.5, top_k=4),
                dict(seed=3, top_p=0.8)]

    def samples(model):
        return [model.generate("to be", max_new_tokens=12, **kwargs)
                for kwargs in settings]

    expected = samples(default)
    if torch_counters is not None:  # eager by default
        assert not torch_counters["stats"]["unique_graphs"]
    assert samples(compiled) == expected
    if torch_counters is None:
        return
    graphs = 2 + 2 * len(settings)
    assert torch_counters["stats"]["unique_graphs"] == graphs
    assert not torch_counters["graph_break"], dict(
        torch_counters["graph_break"])
    # generating again compiles nothing
    assert samples(compiled) == expected
    assert torch_counters["stats"]["unique_graphs"] == graphs
    # every model compiles its own steps: more models than dynamo keeps
    # versions of one code object (8; 2 here, for a sampler step's two
    # prompt shapes) are all compiled
    with torch._dynamo.config.patch(recompile_limit=2):
        for _ in range(2):
            another = MiniGPT.from_config(default.get_config())
            another.set_weights(default.get_weights())
            another.compile(jit_compile=True)
            assert another.generate("to be", max_new_tokens=12,
                                    **settings[0]) == expected[0]
    assert torch_counters["stats"]["unique_graphs"] == graphs + 2 * 4
    # and compiled again without `jit_compile`, the loop is eager again
    compiled.compile()
    assert samples(compiled) == expected
    assert torch_counters["stats"]["unique_graphs"] == graphs + 2 * 4


# the embedding, head and loss (the blocks' op is tested with the layer)
OWN_OPS = tuple(name for name in zoo_backend_module.GPT_OPS
                if name != "causal_self_attention_block")


def _own_ops_or_skip():
    if any(getattr(zoo_backend_module, name) is None for name in OWN_OPS):
        pytest.skip(f"{keras.backend.backend()} runs MiniGPT's Keras ops")
    return zoo_backend_module


def _without_own_ops(monkeypatch, zoo_backend):
    for name in OWN_OPS:
        monkeypatch.setattr(zoo_backend, name, None)


@pytest.mark.parametrize("dtype", ["float32", "float16", "mixed_bfloat16",
                                   "mixed_float16"])
def test_backend_embedding_head_and_loss_equal_the_keras_ops(monkeypatch,
                                                             dtype):
    """Where the backend runs MiniGPT's embedding, head and loss in its own
    ops (PyTorch), logits, loss and the gradient of every weight equal
    those of the Keras layers and ops (blocks as they are either way), in
    float32, float16 and under both mixed policies (where the layers read
    the token table as stored, past the model's autocast)."""
    zoo_backend = _own_ops_or_skip()
    import torch

    vocabulary = list("abcdefghij")
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 10, (3, 16)).astype("int32")
    targets = rng.integers(0, 10, (3, 16)).astype("int32")
    keras.utils.set_random_seed(0)
    reference = MiniGPT(vocabulary, dtype=dtype, **SMALL)
    # non-trivial normalisation parameters, so that they are checked too
    for variable in reference.trainable_variables:
        if "final_norm" in variable.path:
            variable.assign(rng.normal(1.0, 0.3, variable.shape))

    calls = []

    def run(own_ops):
        model = MiniGPT(vocabulary, dtype=dtype, **SMALL)
        model.set_weights(reference.get_weights())
        if not own_ops:
            _without_own_ops(monkeypatch, zoo_backend)
        else:  # counted, so that a path never taken cannot pass
            for name in OWN_OPS:
                def spy(*args, _op=getattr(zoo_backend, name), _name=name):
                    calls.append(_name)
                    return _op(*args)
                monkeypatch.setattr(zoo_backend, name, spy)
        logits = model(ids)
        loss = model.compute_loss(y=targets, y_pred=logits)
        # an offset position start, as the cached decoding reads it
        embedded = model._embed(ids[:, :4], start_index=5)
        monkeypatch.undo()
        variables = [v.value for v in model.trainable_variables]
        grads = torch.autograd.grad(loss, variables)
        tensors = [logits, loss, embedded] + list(grads)
        return ([str(t.dtype) for t in tensors],
                [np.asarray(t.detach().float().cpu()) for t in tensors])

    (own_dtypes, own), (keras_dtypes, keras_ops) = run(True), run(False)
    assert sorted(set(calls)) == sorted(OWN_OPS)
    assert own_dtypes == keras_dtypes
    assert own_dtypes[2] == "torch." + dtype.replace("mixed_", "")
    assert len(own) == 3 + len(reference.trainable_variables)
    # half-precision rounding differs between the two by up to ~1 % of the
    # largest value: that comparison catches wrong arithmetic, the float32
    # one any difference in the function
    tolerance = 1e-5 if dtype == "float32" else 3e-2
    for a, b in zip(own, keras_ops):
        scale = max(np.abs(b).max(), 1.0)
        np.testing.assert_allclose(a, b, rtol=tolerance,
                                   atol=tolerance * scale)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_backend_ops_decode_and_generate_as_the_keras_ops(monkeypatch,
                                                          trained, dtype):
    """The same with the key/value cache: logits and cache position by
    position, and the same seeded text (PyTorch), in float32 and under a
    mixed policy (there the cached steps run outside the model's call, so
    no autocast scope of the model's stands around the ops)."""
    zoo_backend = _own_ops_or_skip()
    gpt, _ = trained
    if dtype != "float32":
        config = dict(gpt.get_config(), dtype=dtype)
        gpt = MiniGPT.from_config(config)
        gpt.set_weights(trained[0].get_weights())
    ids = np.asarray([gpt.encode_text("ROMEO:\nWhat")], "int32")

    def decode():
        cache = gpt.empty_cache(1)
        logits, cache = gpt.call_with_cache(ids[:, :4], cache, 0)
        outputs = [logits]
        for i in range(4, ids.shape[1]):  # the index as an int, a tensor
            index = i if i % 2 else keras.ops.convert_to_tensor(i)
            logits, cache = gpt.call_with_cache(ids[:, i:i + 1], cache,
                                                index)
            outputs.append(logits)
        tensors = outputs + [cache]
        return ([keras.ops.convert_to_numpy(keras.ops.cast(t, "float32"))
                 for t in tensors], [str(t.dtype) for t in tensors])

    def text():
        return gpt.generate("ROMEO:", max_new_tokens=40, seed=4)

    (own, own_dtypes), own_text = decode(), text()
    _without_own_ops(monkeypatch, zoo_backend)
    (keras_ops, keras_dtypes), keras_text = decode(), text()
    assert own_dtypes == keras_dtypes
    for a, b in zip(own, keras_ops):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert own_text == keras_text


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_backend_ops_read_a_lora_token_table(monkeypatch, dtype):
    """With LoRA on the token embedding, the backend's ops (PyTorch) read
    the table with its low-rank update, as the Keras layers do (under a
    mixed policy: cast to the compute dtype, as `Embedding` reads it)."""
    zoo_backend = _own_ops_or_skip()
    keras.utils.set_random_seed(0)
    gpt = MiniGPT(list("abcdefghij"), dtype=dtype, **SMALL)
    ids = np.random.default_rng(2).integers(0, 10, (2, 16)).astype("int32")
    gpt.embedding.token_embedding.enable_lora(2)
    before = keras.ops.convert_to_numpy(gpt(ids))  # its B starts at zero
    for variable in gpt.embedding.token_embedding.trainable_variables:
        if "lora" in variable.path:
            variable.assign(np.random.default_rng(1).normal(
                0, 0.5, variable.shape))
    own = keras.ops.convert_to_numpy(gpt(ids))
    assert not np.allclose(own, before, atol=1e-3)  # the update counts
    _without_own_ops(monkeypatch, zoo_backend)
    np.testing.assert_allclose(own, keras.ops.convert_to_numpy(gpt(ids)),
                               rtol=1e-5, atol=1e-5)


QUANTIZE_TEXT = "to be or not to be, that is the question. " * 10


def _greedy_by_forward_passes(gpt, prompt, steps):
    """Greedy continuation from full (non-cached) forward passes over the
    last `sequence_length` ids."""
    ids = list(gpt.encode_text(prompt))
    for _ in range(steps):
        window = np.array(ids[-gpt.sequence_length:], "int32")[None]
        logits = keras.ops.convert_to_numpy(gpt(window))[0, -1]
        ids.append(int(np.argmax(logits)))
    return gpt.decode_ids(ids)


@pytest.mark.parametrize("block_type", ["fused", "keras_hub"])
def test_quantize_int8_generates_as_a_forward_pass_and_saves(block_type,
                                                             tmp_path):
    # `quantize` used to refuse every keras-hub ("needs a newer keras-hub"):
    # its check of the layers' `quantize(config=...)` also read the model's
    # own `quantize(*args, **kwargs)`
    from contract import _keras_hub_too_old

    if _keras_hub_too_old():  # (make test-oldest: keras-hub 0.21)
        pytest.skip("this keras-hub's layers take no `config` in quantize: "
                    "see test_quantize_still_names_an_old_keras_hub_layer")
    keras.utils.set_random_seed(0)
    gpt = MiniGPT.from_text(QUANTIZE_TEXT, sequence_length=16, num_layers=1,
                            num_heads=2, hidden_dim=16, block_type=block_type)
    gpt.fit(gpt.make_datasets(QUANTIZE_TEXT, batch_size=8)[0], epochs=1,
            verbose=0)
    gpt.generate("to be", 5, top_k=1)  # compiled loops, dropped by quantize
    gpt.quantize("int8")
    # the token table (and the tied head) is int8; the fused blocks keep
    # their float kernels, keras-hub's blocks quantize their projections
    assert gpt.embedding.token_embedding.quantization_mode == "int8"
    int8 = [v for v in gpt.weights
            if keras.backend.standardize_dtype(v.dtype) == "int8"]
    blocks = [v for v in int8 if "block_0" in v.path]
    assert blocks if block_type == "keras_hub" else not blocks
    # inside the context (cache) and past it (sliding window)
    expected = _greedy_by_forward_passes(gpt, "to be", 20)
    assert gpt.generate("to be", 20, top_k=1) == expected
    path = str(tmp_path / "quantized.keras")
    gpt.save(path)
    loaded = keras.models.load_model(path)
    window = gpt.encode_text("to be or not to ")[None]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(window)),
                               keras.ops.convert_to_numpy(gpt(window)),
                               rtol=1e-5, atol=1e-5)
    assert loaded.generate("to be", 20, top_k=1) == expected
    # a weights file, as docs/backends.md loads one: build, quantize, load
    # (a second `build()` of a MiniGPT, built when made, failed in
    # keras-hub's layers: "cannot add new elements of state")
    weights_path = str(tmp_path / "quantized.weights.h5")
    gpt.save_weights(weights_path)
    config = gpt.get_config()
    config.pop("quantized_layers")  # a model made as the user made it
    fresh = MiniGPT.from_config(config)
    fresh.build()
    fresh.quantize("int8")
    fresh.load_weights(weights_path)
    assert fresh.generate("to be", 20, top_k=1) == expected


@pytest.mark.parametrize("block_type", ["fused", "keras_hub"])
def test_quantized_model_under_mixed_bfloat16_runs(block_type):
    # keras-hub added the quantized token table's float32 rows to the
    # bfloat16 positions: TensorFlow refused ("cannot compute AddV2")
    # every forward pass and `generate`
    from contract import _keras_hub_too_old

    if _keras_hub_too_old():  # (make test-oldest: keras-hub 0.21)
        pytest.skip("this keras-hub's layers take no `config` in quantize")
    gpt = MiniGPT.from_text(QUANTIZE_TEXT, sequence_length=16, num_layers=1,
                            num_heads=2, hidden_dim=16, seed=0,
                            block_type=block_type, dtype="mixed_bfloat16")
    gpt.quantize("int8")
    window = gpt.encode_text("to be or not to ")[None]
    assert np.isfinite(keras.ops.convert_to_numpy(
        keras.ops.cast(gpt(window), "float32"))).all()
    text = gpt.generate("to be", 8, top_k=1)
    assert text.startswith("to be") and len(text) == 13


def test_quantize_still_names_an_old_keras_hub_layer(monkeypatch):
    # keras-hub 0.21's ReversibleEmbedding had `quantize(mode, type_check)`
    # under Keras 3.15, which passes `config=`: one ValueError, before any
    # layer is changed
    import inspect

    if "config" not in inspect.signature(
            keras.layers.Layer.quantize).parameters:
        pytest.skip("this Keras passes no `config` to a layer's quantize")
    gpt = MiniGPT.from_text(QUANTIZE_TEXT, sequence_length=16, num_layers=1,
                            num_heads=2, hidden_dim=16)
    table = gpt.embedding.token_embedding

    def old_quantize(self, mode, type_check=True):
        raise AssertionError("not reached")

    monkeypatch.setattr(type(table), "quantize", old_quantize)
    with pytest.raises(ValueError, match="needs a newer keras-hub"):
        gpt.quantize("int8")
    assert table.quantization_mode is None


def test_sizes_must_be_whole_numbers():
    # `int` used to cut them: 1.9 layers ran as 1, 2.5 heads as 2
    for name, value in (("num_layers", 1.9), ("num_heads", 2.5),
                        ("hidden_dim", 16.7), ("intermediate_dim", 8.5),
                        ("num_layers", "2"), ("num_heads", True)):
        kwargs = dict(sequence_length=16, num_layers=1, num_heads=2,
                      hidden_dim=16)
        kwargs[name] = value
        with pytest.raises(ValueError,
                           match=f"`{name}` must be positive \\(an integer"):
            MiniGPT(vocabulary=list("abc"), **kwargs)
    gpt = MiniGPT(vocabulary=list("abc"), sequence_length=16,
                  num_layers=np.int64(1), num_heads=2.0, hidden_dim=16)
    assert (gpt.num_layers, gpt.num_heads, gpt.hidden_dim) == (1, 2, 16)


def test_a_sweep_of_sampler_settings_warns_of_no_retracing():
    """TensorFlow counts traces per code object: each setting's compiled
    loop (a closure of one definition, traced once) read as one function
    traced again and again, and the fifth setting printed "triggered
    tf.function retracing" warnings."""
    import logging

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Keep()
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    try:
        gpt = MiniGPT(list("abcdefghij \n"), sequence_length=8,
                      num_layers=1, num_heads=2, hidden_dim=8, seed=0)
        for kwargs in (dict(top_k=1), dict(seed=0), dict(seed=0, top_k=3),
                       dict(seed=0, top_p=0.8), dict(seed=0, temperature=0.7),
                       dict(seed=0, temperature=0.9)):
            gpt.generate("abc", 4, **kwargs)
    finally:
        logger.removeHandler(handler)
    assert not [r for r in records if "retracing" in r], records


def test_text_sampler_checks_counts_and_seed_at_creation():
    # `int` cut max_new_tokens=2.7 to 2; a bad seed failed only after the
    # first epoch of training
    for kwargs, name in ((dict(max_new_tokens=2.7), "max_new_tokens"),
                         (dict(every_n_epochs=1.5), "every_n_epochs"),
                         (dict(max_new_tokens=0), "max_new_tokens"),
                         (dict(seed=-5), "seed"), (dict(seed=1.5), "seed")):
        with pytest.raises(ValueError, match=f"`{name}` must be an integer"):
            TextSampler("to", **kwargs)
    sampler = TextSampler("to", max_new_tokens=3.0, every_n_epochs=2,
                          seed=None)
    assert (sampler.max_new_tokens, sampler.every_n_epochs,
            sampler.seed) == (3, 2, None)


@pytest.mark.parametrize("method", ["predict", "predict_on_batch"])
def test_predict_checks_the_windows_like_evaluate(method):
    import tensorflow as tf

    gpt = MiniGPT.from_text(QUANTIZE_TEXT, sequence_length=16, num_layers=1,
                            num_heads=2, hidden_dim=16)
    run = getattr(gpt, method)
    size = gpt.vocabulary_size
    for x, match in ((np.zeros((2, 20), "int32"),
                      "has windows of 20 ids; the model reads at most "
                      "sequence_length=16"),
                     (np.full((2, 16), 999, "int32"),
                      f"ids from 999 to 999, outside the vocabulary of "
                      f"{size} characters"),
                     (np.full((2, 16), -1, "int32"), "ids from -1 to -1"),
                     (np.zeros(16, "int32"), "of shape \\(batch, length\\)"),
                     ("to be", "is a string")):
        with pytest.raises(ValueError, match=match):
            run(x)
    ids = gpt.encode_text(QUANTIZE_TEXT[:32]).reshape(2, 16)
    expected = keras.ops.convert_to_numpy(gpt(ids))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(run(ids)),
                               expected, rtol=1e-5, atol=1e-5)
    if method == "predict":
        inputs = tf.data.Dataset.from_tensor_slices(ids).batch(2)
        pairs = tf.data.Dataset.from_tensor_slices((ids, ids)).batch(2)
        for data in (inputs, pairs):
            np.testing.assert_allclose(gpt.predict(data, verbose=0),
                                       expected, rtol=1e-5, atol=1e-5)
        long = tf.data.Dataset.from_tensor_slices(
            np.zeros((4, 20), "int32")).batch(2)
        bad = tf.data.Dataset.from_tensor_slices(
            (np.full((4, 16), size, "int32"),) * 2).batch(2)
        with pytest.raises(ValueError, match="has windows of 20 ids"):
            gpt.predict(long, verbose=0)
        with pytest.raises(ValueError, match="outside the vocabulary"):
            gpt.predict(bad, verbose=0)


def test_dropout_trains_on_alike_after_a_reload(tmp_path):
    """Seeded dropout masks: a loaded model's next step equals the
    original's (on PyTorch, unseeded masks came from torch's global
    generator, which no file holds: the steps differed)."""
    text = QUANTIZE_TEXT
    gpt = MiniGPT.from_text(text, sequence_length=16, num_layers=1,
                            num_heads=2, hidden_dim=16, dropout=0.3, seed=0)
    train_ds, _ = gpt.make_datasets(text, batch_size=8, shuffle=False)
    x, y = next(iter(train_ds))
    x, y = np.asarray(x), np.asarray(y)
    gpt.train_on_batch(x, y)
    path = str(tmp_path / "gpt.keras")
    gpt.save(path)
    loaded = keras.saving.load_model(path)
    losses = [float(m.train_on_batch(x, y, return_dict=True)["loss"])
              for m in (gpt, loaded)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    for a, b in zip(gpt.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_temperatures_and_top_p_share_one_compiled_loop():
    # each new temperature compiled sampling loops of their own (7 s each
    # on TensorFlow, kept for the model's life); the temperature is an
    # argument of the loops now, and the text is what it was: keras-hub's
    # sampler divided the float32 logits by it, as the loops do
    from keras_genzoo.sampling import make_sampler

    gpt = MiniGPT(list("abcdefghij \n"), sequence_length=8, num_layers=1,
                  num_heads=2, hidden_dim=8, seed=0)
    texts = {t: gpt.generate("abc", 12, temperature=t, top_k=5, seed=1)
             for t in (0.6, 0.7, 0.71, 2.0)}
    assert len(gpt._loops.by_setting) == 1
    assert texts[0.7] == gpt.generate("abc", 12, temperature=0.7, top_k=5,
                                      seed=1)
    # settings the sampler reads alike share a loop: a top_k past the
    # vocabulary (12 characters), a top_p of 1 and none
    for kwargs in (dict(top_k=50), dict(top_k=500, top_p=1.0)):
        gpt.generate("abc", 4, seed=1, **kwargs)
    assert len(gpt._loops.by_setting) == 2
    # against keras-hub's own sampler at each temperature, compiled as the
    # loops are (TensorFlow's XLA draws other numbers than its eager ops)
    from keras_genzoo import backend

    buffer = np.zeros((1, 8), "int32")
    buffer[0, :3] = gpt.encode_text("abc")

    def next_fn(prompt, cache, index):
        return gpt(prompt)[:, index - 1, :], None, cache

    def keras_hubs_text(temperature, top_k, top_p):
        sampler = make_sampler(temperature, top_k, top_p, seed=1,
                               vocabulary_size=gpt.vocabulary_size)
        loop = backend.compile_inference(
            gpt, lambda b: backend.run_sampler(gpt, sampler, next_fn, b,
                                               index=3),
            list(sampler.variables))
        out = keras.ops.convert_to_numpy(loop(keras.ops.convert_to_tensor(
            buffer)))
        return gpt.decode_ids(out[0])

    for temperature, text in texts.items():
        assert keras_hubs_text(temperature, 5, None) == text[:8], temperature
    # top_p is an argument of the loops too (each new value compiled
    # loops of its own: 1-2 s and 15 MB on TensorFlow, kept for good)
    gpt._loops.clear()
    nucleus = {p: gpt.generate("abc", 5, temperature=2.0, top_p=p, seed=1)
               for p in (0.3, 0.6, 0.9)}
    assert len(gpt._loops.by_setting) == 1
    assert len(set(nucleus.values())) > 1  # the threshold reached the loop
    for top_p, text in nucleus.items():
        assert keras_hubs_text(2.0, None, top_p) == text, top_p
    # and the loops kept are the 8 used last
    for top_k in range(2, 12):
        gpt.generate("abc", 2, top_k=top_k, seed=1)
    assert list(gpt._loops.by_setting) == [(k, False) for k in range(4, 12)]


def test_generate_from_two_threads():
    """The loops of a setting share one sampler (its seed, its `top_p`):
    two threads generating with other `top_p` values got each other's
    (PyTorch: every text wrong) until calls were made one at a time."""
    import threading

    gpt = MiniGPT(list("abcdefghij \n"), sequence_length=8, num_layers=1,
                  num_heads=2, hidden_dim=8, seed=0)
    expected = {p: gpt.generate("abc", 12, temperature=2.0, top_p=p, seed=1)
                for p in (0.05, 0.99)}
    got = {p: [] for p in expected}

    def run(p):
        for _ in range(5):
            got[p].append(gpt.generate("abc", 12, temperature=2.0, top_p=p,
                                       seed=1))

    threads = [threading.Thread(target=run, args=(p,)) for p in expected]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for p, texts in got.items():
        assert texts == [expected[p]] * 5, p
