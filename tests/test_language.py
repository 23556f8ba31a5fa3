import os

import keras
import numpy as np
import pytest

from keras_genzoo import BigramLM, datasets


@pytest.fixture(scope="module")
def shakespeare():
    return datasets.load_text("tiny_shakespeare")[:60_000]


def test_bigram_loss_goes_down_and_logs_bits_per_char(shakespeare):
    model = BigramLM.from_text(shakespeare, sequence_length=32)
    train_ds, val_ds = model.make_datasets(shakespeare, batch_size=32)
    history = model.fit(train_ds, validation_data=val_ds, epochs=3,
                        verbose=0).history
    loss, bpc = history["loss"], history["bits_per_char"]
    assert loss[-1] < 0.8 * loss[0]
    np.testing.assert_allclose(bpc, np.array(loss) / np.log(2), rtol=1e-4)
    assert "val_bits_per_char" in history
    # a bigram table cannot beat ~2.45 nats on Shakespeare, nor be worse
    # than uniform over the vocabulary after training
    assert 2.3 < history["val_loss"][-1] < np.log(model.vocabulary_size)


def test_generate_is_seeded_and_stays_in_the_vocabulary(shakespeare):
    model = BigramLM.from_text(shakespeare)
    train_ds, _ = model.make_datasets(shakespeare, batch_size=32)
    model.fit(train_ds, epochs=1, verbose=0)
    a = model.generate("ROMEO:", max_new_tokens=80, temperature=0.8,
                       top_k=40, seed=0)
    assert a.startswith("ROMEO:") and len(a) == 86
    assert set(a) <= set(model.vocabulary)
    assert a == model.generate("ROMEO:", max_new_tokens=80, temperature=0.8,
                               top_k=40, seed=0)
    assert a != model.generate("ROMEO:", max_new_tokens=80, temperature=0.8,
                               top_k=40, seed=1)
    nucleus = model.generate("A", max_new_tokens=50, top_p=0.9, seed=3)
    assert set(nucleus) <= set(model.vocabulary)
    # a model made with `seed=` generates the same texts in the same
    # order, also after a call refused for its prompt (which took a seed)
    texts = []
    for refused in (False, True):
        seeded = BigramLM.from_text("abcab", seed=5)
        # the same table (`seed=` seeds the sampling, not the weights)
        seeded.set_weights(
            [np.linspace(-1, 1, 9, dtype="float32").reshape(3, 3)])
        if refused:
            with pytest.raises(ValueError, match="outside the model's"):
                seeded.generate("abz", max_new_tokens=5)
        texts.append([seeded.generate("a", max_new_tokens=12)
                      for _ in range(2)])
    assert texts[0] == texts[1] and texts[0][0] != texts[0][1]


def test_top_k_one_is_greedy(shakespeare):
    model = BigramLM.from_text(shakespeare)
    model.fit(model.make_datasets(shakespeare, batch_size=32)[0], epochs=1,
              verbose=0)
    table = keras.ops.convert_to_numpy(model.table.embeddings)
    ids = [model.vocabulary.index("T")]
    for _ in range(20):
        ids.append(int(np.argmax(table[ids[-1]])))
    greedy = model.decode_ids(ids)
    assert model.generate("T", max_new_tokens=20, top_k=1, seed=0) == greedy
    assert model.generate("T", max_new_tokens=20, top_k=1, seed=9) == greedy


def test_save_load_keeps_vocabulary_and_logits(tmp_path):
    text = "Olá, coração! São João. " * 30
    model = BigramLM.from_text(text, sequence_length=16)
    model.fit(model.make_datasets(text, batch_size=4)[0], epochs=1,
              verbose=0)
    path = os.path.join(tmp_path, "bigram.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert loaded.vocabulary == model.vocabulary and "ç" in loaded.vocabulary
    ids = model.encode_text("coração")[None]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(ids)),
                                  keras.ops.convert_to_numpy(model(ids)))
    assert loaded.generate("S", 20, seed=4) == model.generate("S", 20, seed=4)
    # a weights file into a model of the same vocabulary: the same text;
    # into one of another vocabulary of the same size: refused (it loaded
    # in silence and generated other characters)
    weights = os.path.join(tmp_path, "bigram.weights.h5")
    model.save_weights(weights)
    same = BigramLM.from_text(text, sequence_length=16)
    same.load_weights(weights)
    assert same.generate("S", 20, seed=4) == model.generate("S", 20, seed=4)
    other = BigramLM.from_text(text.replace("ç", "x"),
                               sequence_length=16)
    assert len(other.vocabulary) == len(model.vocabulary)
    before = keras.ops.convert_to_numpy(other.table.embeddings).copy()
    with pytest.raises(ValueError, match="bigram.weights.h5: These weights "
                                         "were saved by a model of another "
                                         "vocabulary"):
        other.load_weights(weights)
    # refused before any weight loads: the model keeps its own table
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(other.table.embeddings), before)


def test_bad_input_messages():
    with pytest.raises(ValueError, match="`text` is empty"):
        BigramLM.from_text("")
    model = BigramLM.from_text("abcdef")
    with pytest.raises(ValueError, match=r"outside the model's vocabulary: \['z'\]"):
        model.generate("abz")
    with pytest.raises(ValueError, match="prompt` is empty"):
        model.generate("")
    with pytest.raises(ValueError, match="fewer than one window"):
        BigramLM.from_text("abc", sequence_length=64).make_datasets("abc")
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        model.make_datasets("abcdefxyz" * 100)
    with pytest.raises(ValueError, match="temperature"):
        model.generate("a", temperature=0)
    with pytest.raises(ValueError, match="top_p"):
        model.generate("a", top_p=1.5)


@pytest.mark.skipif(keras.backend.backend() == "torch",
                    reason="Keras 3.15's torch export fails for any "
                           "subclassed model (torch.export dynamic_shapes)")
@pytest.mark.parametrize("family", ["bigram", "minigpt"])
def test_export_signs_for_int_ids(family, tmp_path):
    # Keras signed a subclassed model's export with its compute dtype:
    # float32, which takes no ids
    import tensorflow as tf

    from keras_genzoo import MiniGPT

    text = "a small text, for a small model. " * 20
    if family == "bigram":
        model = BigramLM.from_text(text, sequence_length=16)
    else:
        model = MiniGPT.from_text(text, sequence_length=16, num_layers=1,
                                  num_heads=2, hidden_dim=8)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    # exported at once, as a server would (Keras refused a model that was
    # never called: "The model provided has never called")
    loaded.export(str(tmp_path / "export"), verbose=False)
    ids = loaded.encode_text(text[:16])[None]
    expected = keras.ops.convert_to_numpy(loaded(ids))
    restored = tf.saved_model.load(str(tmp_path / "export"))
    served = restored.serve(tf.constant(ids, "int32"))
    np.testing.assert_allclose(served.numpy(), expected, atol=1e-5)
    if family == "bigram":  # any length
        served = restored.serve(tf.constant(ids[:, :5], "int32"))
        np.testing.assert_allclose(served.numpy(), expected[:, :5],
                                   atol=1e-5)
    elif keras.backend.backend() == "tensorflow":
        # docs/backends.md: shorter windows with a signature of any length
        loaded.export(str(tmp_path / "any"), verbose=False,
                      input_signature=[keras.InputSpec(shape=(None, None),
                                                       dtype="int32")])
        any_length = tf.saved_model.load(str(tmp_path / "any"))
        served = any_length.serve(tf.constant(ids[:, :5], "int32"))
        np.testing.assert_allclose(
            served.numpy(), keras.ops.convert_to_numpy(loaded(ids[:, :5])),
            atol=1e-5)
    # built and never called, too
    model.export(str(tmp_path / "export2"), verbose=False)


@pytest.mark.parametrize("mode, dtype", [
    ("int8", "float32"), ("int4", "float32"), ("int8", "mixed_bfloat16")])
def test_quantized_bigram_samples_from_its_dequantized_table(mode, dtype,
                                                             tmp_path):
    # `next_logits` (what `generate` samples from) read the raw int8 table
    # without its scale: the logits of an other, much sharper model; under
    # mixed_bfloat16 it called the table outside the model's autocast, and
    # sampled from bfloat16-rounded logits (`model(ids)`: float32)
    text = "abcabcabd" * 40
    model = BigramLM.from_text(text, sequence_length=8, dtype=dtype)
    model.fit(model.make_datasets(text, batch_size=8)[0], epochs=10,
              verbose=0)
    model.quantize(mode)
    assert model.table.quantization_mode == mode
    for prompt in ("a", "abc", "d"):
        ids = model.encode_text(prompt)
        expected = keras.ops.convert_to_numpy(model(ids[None]))[0, -1]
        np.testing.assert_allclose(model.next_logits(ids), expected,
                                   rtol=1e-6, atol=1e-6)
    # greedy generation follows the quantized model's own argmax
    ids = [model.vocabulary.index("a")]
    for _ in range(8):
        logits = keras.ops.convert_to_numpy(model(np.array([ids], "int32")))
        ids.append(int(np.argmax(logits[0, -1])))
    assert model.generate("a", 8, top_k=1) == model.decode_ids(ids)
    path = os.path.join(tmp_path, "quantized.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    ids = model.encode_text("c")
    np.testing.assert_allclose(loaded.next_logits(ids),
                               model.next_logits(ids), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["mixed_bfloat16", "bfloat16"])
def test_bigram_table_follows_the_dtype_policy(dtype):
    # the table used to be built with the global policy, whatever the
    # model's `dtype`
    model = BigramLM.from_text("abcabc", dtype=dtype)
    assert model.table.dtype_policy.name == dtype
    ids = model.encode_text("abc")
    logits = model(ids[None])
    assert keras.backend.standardize_dtype(logits.dtype) == "bfloat16"
    variable_dtype = "float32" if dtype.startswith("mixed") else "bfloat16"
    assert keras.backend.standardize_dtype(
        model.table.embeddings.dtype) == variable_dtype
    np.testing.assert_array_equal(
        model.next_logits(ids),
        keras.ops.convert_to_numpy(keras.ops.cast(logits, "float32"))[0, -1])
    assert len(model.generate("a", 5, seed=0)) == 6


def test_bigram_predict_checks_ids_like_evaluate():
    import tensorflow as tf

    model = BigramLM.from_text("abcabc", sequence_length=4)
    for method in (model.predict, model.predict_on_batch):
        for x, match in ((np.full((2, 4), 3, "int32"),
                          "ids from 3 to 3, outside the vocabulary of 3 "
                          "characters"),
                         (np.full((2, 4), -1, "int32"), "ids from -1 to -1"),
                         (np.zeros((2, 4), "float32") + 0.5,
                          "of shape \\(batch, length\\)")):
            with pytest.raises(ValueError, match=match):
                method(x)
    bad = tf.data.Dataset.from_tensor_slices(
        np.full((4, 4), 7, "int32")).batch(2)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.predict(bad, verbose=0)
    # a bigram reads one id at a time: longer windows than sequence_length
    # are fine
    ids = np.tile(model.encode_text("abc"), 4)[None]
    expected = keras.ops.convert_to_numpy(model(ids))
    np.testing.assert_allclose(model.predict(ids, verbose=0), expected)
    pairs = tf.data.Dataset.from_tensor_slices((ids, ids)).batch(1)
    np.testing.assert_allclose(model.predict(pairs, verbose=0), expected)


class _Windows(keras.utils.PyDataset):
    """(inputs, targets) batches of ids, with one bad id in the first."""

    def __init__(self, bad=None, length=4):
        super().__init__()
        self.bad, self.length = bad, length

    def __len__(self):
        return 2

    def __getitem__(self, index):
        ids = np.zeros((2, self.length), "int32")
        if index == 0 and self.bad is not None:
            ids[0, 0] = self.bad
        return ids, np.ones((2, self.length), "int32")


@pytest.mark.parametrize("family", ["bigram", "minigpt"])
def test_streams_of_windows_are_checked_before_training(family):
    # a PyDataset, a generator or a DataLoader of windows went unchecked:
    # ids outside the vocabulary trained into NaN (JAX, blamed on the
    # learning rate), were clamped in silence (TensorFlow's MiniGPT) or
    # failed inside the embedding (PyTorch)
    from keras_genzoo import MiniGPT

    if family == "bigram":
        model = BigramLM.from_text("abcabc", sequence_length=4)
    else:
        model = MiniGPT.from_text("abcabc", sequence_length=4, num_layers=1,
                                  num_heads=1, hidden_dim=4)

    def generator(bad):
        for index in range(2):
            yield _Windows(bad)[index]

    for bad, match in ((99, "ids from 0 to 99, outside the vocabulary"),
                       (-1, "ids from -1 to 0")):
        for data in (_Windows(bad), generator(bad)):
            with pytest.raises(ValueError, match=match):
                model.fit(data, epochs=1, verbose=0)
        with pytest.raises(ValueError, match=match):
            model.evaluate(_Windows(bad), verbose=0)
        with pytest.raises(ValueError, match="outside the vocabulary"):
            model.predict(_Windows(bad), verbose=0)
    if family == "minigpt":
        with pytest.raises(ValueError, match="at most sequence_length=4"):
            model.fit(_Windows(length=8), epochs=1, verbose=0)

    def inputs_only():
        yield np.zeros((2, 4), "int32")

    with pytest.raises(ValueError, match="without targets"):
        model.fit(inputs_only(), epochs=1, verbose=0)
    # good streams train, a generator's first batch too
    history = model.fit(_Windows(), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    seen = []

    def counted():
        for index in range(3):
            seen.append(index)
            yield _Windows()[0]

    model.fit(counted(), epochs=1, steps_per_epoch=3, verbose=0)
    assert seen == [0, 1, 2]


def _support(draw, times=200):
    """The ids a sampler drew in `times` draws."""
    return {int(draw()) for _ in range(times)}


@pytest.mark.parametrize("probabilities, top_k, top_p, kept", [
    ([0.40, 0.35, 0.25], 2, 0.5, {0}),   # top-p among the top 2
    ([0.40, 0.35, 0.25], 2, 0.9, {0, 1}),
    ([0.50, 0.30, 0.20], None, 0.5, {0}),  # 0.5 reaches 0.5: one token
    ([0.50, 0.30, 0.20], None, 0.85, {0, 1, 2}),
    ([0.50, 0.30, 0.20], None, 0.75, {0, 1}),
])
def test_both_samplers_keep_the_same_tokens(probabilities, top_k, top_p,
                                            kept):
    # BigramLM's numpy sampler and MiniGPT's keras-hub one: keras-hub's
    # TopPSampler took the cumulative sums of probabilities it did not
    # renormalise over the top k, and kept a token whose preceding ones
    # reached p exactly (two tokens for the first and third rows here)
    from keras_genzoo.sampling import make_sampler, sample_from_logits

    logits = np.log(np.array([probabilities], "float32"))
    rng = np.random.default_rng(0)
    assert _support(lambda: sample_from_logits(
        logits[0], rng, top_k=top_k, top_p=top_p)) == kept
    sampler = make_sampler(top_k=top_k, top_p=top_p, seed=0)

    def draw():
        token = sampler.get_next_token(sampler.compute_probabilities(logits))
        return keras.ops.convert_to_numpy(token)[0]

    assert _support(draw, 100) == kept


def test_numpy_sampler_keeps_exactly_k_and_is_greedy_when_cold():
    from keras_genzoo.sampling import sample_from_logits

    rng = np.random.default_rng(0)
    # ties at the cutoff: all four were kept for top_k=2
    assert _support(lambda: sample_from_logits(
        np.array([2.0, 1.0, 1.0, 1.0]), rng, top_k=2)) == {0, 1}
    # a temperature of 1e-310 made the logits infinite, then NaN
    # ("Probabilities contain NaN"); greedy as MiniGPT's sampler
    assert sample_from_logits(np.array([0.0, 3.0, 1.0]), rng,
                              temperature=1e-310) == 1


@pytest.mark.parametrize("settings, words", [
    (dict(top_k=0), "top_k"), (dict(top_k=-1), "top_k"),
    (dict(top_k=2.5), "top_k"), (dict(top_p=1.5), "top_p"),
    (dict(top_p=float("nan")), "top_p"), (dict(temperature=0), "temperature"),
    (dict(temperature=-1.0), "temperature"),
])
def test_the_public_samplers_check_their_settings(settings, words):
    # sample_from_logits(top_k=0) failed in numpy ("probabilities contain
    # NaN"), top_k=-1 dropped the likeliest token, 2.5 was cut to 2, top_p
    # 1.5 or NaN and temperatures of 0 or less were taken without a word
    from keras_genzoo.sampling import make_sampler, sample_from_logits

    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=words):
        sample_from_logits(np.array([0.0, 3.0, 1.0]), rng, **settings)
    with pytest.raises(ValueError, match=words):
        make_sampler(**settings)


@pytest.mark.parametrize("family", ["bigram", "minigpt"])
def test_next_logits_of_no_ids_is_refused(family):
    # MiniGPT gave the logits after its padding, BigramLM an IndexError
    from keras_genzoo import MiniGPT

    text = "abcab" * 4
    model = (BigramLM.from_text(text) if family == "bigram"
             else MiniGPT.from_text(text, sequence_length=4, num_layers=1,
                                    num_heads=1, hidden_dim=4))
    with pytest.raises(ValueError, match="at least one character"):
        model.next_logits(np.array([], "int32"))
    assert model.next_logits(model.encode_text("a")).shape == (
        model.vocabulary_size,)
