"""The text path, fuzzed: any Unicode (lone surrogates, emoji, combining
marks, NUL), empty strings, one character, prompts with characters outside
the vocabulary, and odd `generate` / `make_datasets` / `fit` arguments.
Each call succeeds with a sane result or raises one clear `ValueError` of
keras_genzoo's (see `fuzzing.py`)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fuzzing import (arguments, failed, junk_scalars, mostly, outcome,
                     seeds, small_junk)
from keras_genzoo import BigramLM, MiniGPT
from keras_genzoo.datasets import text_datasets

# Characters that break naive text code: NUL, a lone surrogate of each
# half, an emoji, a family emoji (joined by zero-width joiners), a
# combining accent, right-to-left override, byte-order mark, CR LF, tab,
# characters whose case mapping changes their length.
ODD = ["\x00", "\ud800", "\udfff", "\U0001f600",
       "\U0001f469\u200d\U0001f469\u200d\U0001f467", "e\u0301", "\u0301",
       "\u202e", "\ufeff", "\r\n", "\t", " ", "\u00df", "\u0130", "\ufb01",
       "\U0010ffff", "a", "b"]
CORPUS = "".join(ODD) * 12  # what the module's models know

any_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF,
                         exclude_categories=())
texts = st.one_of(
    st.text(any_char, max_size=30),
    st.lists(st.sampled_from(ODD), max_size=20).map("".join),
    st.sampled_from(["", "a", "\x00", "\ud800", "😀", "e\u0301", " "]),
)
not_texts = st.sampled_from([None, b"abc", bytearray(b"ab"), 3, 2.5,
                             ["a", "b"], ("a",), np.array(["a", "b"]),
                             np.str_("ab"), {"text": "a"}])


@pytest.fixture(scope="module")
def bigram():
    keras.utils.set_random_seed(0)
    return BigramLM.from_text(CORPUS, sequence_length=8, seed=0)


@pytest.fixture(scope="module")
def gpt():
    keras.utils.set_random_seed(0)
    return MiniGPT.from_text(CORPUS, sequence_length=8, num_layers=1,
                             num_heads=1, hidden_dim=8, seed=0)


# ------------------------------------------------------------ from_text
@given(st.one_of(texts, not_texts))
@settings(max_examples=40)
@example("\ud800\x00😀")
@example(b"abc")
@example(np.str_("ab"))
def test_a_model_is_made_from_any_text(text):
    model = outcome(BigramLM.from_text, text, sequence_length=4)
    if failed(model):
        return
    assert model.vocabulary == sorted(set(text))
    ids = model.encode_text(text)
    assert ids.dtype == np.int32 and len(ids) == len(text)
    assert model.decode_ids(ids) == text
    copy = BigramLM.from_config(model.get_config())
    assert copy.vocabulary == model.vocabulary


def test_odd_vocabulary_survives_saving(tmp_path):
    """NUL, lone surrogates and emoji in the vocabulary round-trip through
    the `.keras` file."""
    model = BigramLM.from_text(CORPUS, sequence_length=4)
    path = tmp_path / "odd.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.vocabulary == model.vocabulary
    assert loaded.decode_ids(loaded.encode_text(CORPUS)) == CORPUS


@given(st.one_of(texts, not_texts))
@settings(max_examples=3)
def test_a_gpt_is_made_from_any_text(text):
    model = outcome(MiniGPT.from_text, text, sequence_length=4,
                    num_layers=1, num_heads=1, hidden_dim=4)
    if not failed(model):
        assert model.vocabulary == sorted(set(text))


@given(st.one_of(texts, not_texts, st.just(CORPUS[:40])))
@settings(max_examples=40)
@example(b"ab")
@example(None)
def test_encode_text_takes_anything(bigram, text):
    ids = outcome(bigram.encode_text, text)
    if not failed(ids):
        assert bigram.decode_ids(ids) == text


@given(st.one_of(
    hnp.arrays(st.sampled_from(["int32", "int64", "uint8", "float32",
                                "bool", "object", "complex64"]),
               hnp.array_shapes(min_dims=0, max_dims=2, max_side=4),
               elements=st.integers(-3, 40)),
    st.lists(st.integers(-3, 40), max_size=5), junk_scalars))
@settings(max_examples=40)
@example([-1])  # a negative id is no character
@example([10**6])
@example(np.array([1.5]))
def test_decode_ids_takes_anything(bigram, ids):
    text = outcome(bigram.decode_ids, ids)
    if not failed(text):
        assert isinstance(text, str)
        assert set(text) <= set(bigram.vocabulary)


valid_seeds = st.one_of(st.none(), st.integers(0, 2**32 - 1))
in_vocabulary = st.lists(st.sampled_from(sorted(set(CORPUS))), min_size=1,
                         max_size=20).map("".join)


# -------------------------------------------------------- make_datasets
@given(arguments(
    {"text": st.sampled_from([CORPUS, CORPUS[:60]]),
     "batch_size": st.integers(1, 8),
     "validation_split": st.sampled_from([0.0, 0.1, 0.5]),
     "stride": st.sampled_from([None, 1, 3, 8]), "seed": valid_seeds},
    {"text": st.one_of(texts, not_texts, in_vocabulary),
     "batch_size": small_junk, "validation_split": small_junk,
     "stride": small_junk, "seed": seeds}))
@settings(max_examples=50)
@example(dict(text=CORPUS, batch_size=0))  # was TensorFlow's error
@example(dict(text=CORPUS, stride=2.5))
@example(dict(text=b"abc"))
@example(dict(text=CORPUS, seed=-1))
def test_make_datasets_takes_anything(bigram, kwargs):
    result = outcome(bigram.make_datasets, **kwargs)
    if failed(result):
        return
    batch_size = kwargs.get("batch_size", 12)
    train_ds, val_ds = result
    for ds in (train_ds, val_ds):
        if ds is None:
            continue
        x, y = next(iter(ds))
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape and x.shape[1] == bigram.sequence_length
        assert 0 < len(x) <= int(batch_size)
        assert x.min() >= 0 and x.max() < bigram.vocabulary_size
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])


@given(mostly(st.integers(1, 12), small_junk))
@settings(max_examples=25)
def test_text_datasets_sequence_length(sequence_length):
    result = outcome(text_datasets, CORPUS, sequence_length=sequence_length,
                     batch_size=2)
    if not failed(result):
        x, _ = next(iter(result[0]))
        assert x.shape[1] == int(sequence_length)


# ------------------------------------------------------------- generate
GENERATE_JUNK = {"prompt": st.one_of(texts, not_texts),
                 "max_new_tokens": small_junk, "temperature": junk_scalars,
                 "top_k": junk_scalars, "top_p": junk_scalars,
                 "seed": seeds}


@given(arguments(
    {"prompt": in_vocabulary, "max_new_tokens": st.integers(0, 8),
     "temperature": st.floats(0.1, 3.0),
     "top_k": st.sampled_from([None, 1, 3, 99]),
     "top_p": st.sampled_from([None, 0.5, 0.9, 1.0]),
     "seed": valid_seeds}, GENERATE_JUNK))
@settings(max_examples=80)
@example(dict(prompt="a", temperature=float("nan")))
@example(dict(prompt="a", temperature=float("inf")))
@example(dict(prompt="a", max_new_tokens=-1))
@example(dict(prompt="a", top_k=2.5))
@example(dict(prompt="a", top_k="2"))
@example(dict(prompt=b"a"))
@example(dict(prompt="a", seed=-1))
@example(dict(prompt="\ud800\x00😀e\u0301", max_new_tokens=3, seed=0))
@example(dict(prompt="z"))  # outside the vocabulary
def test_bigram_generate_arguments(bigram, kwargs):
    _check_generate(bigram, kwargs)


# MiniGPT compiles a sampling loop per (temperature, top_k, top_p): the
# valid values are few, so that few loops compile.
@given(arguments(
    {"prompt": in_vocabulary, "max_new_tokens": st.integers(0, 6),
     "temperature": st.just(1.0), "top_k": st.sampled_from([None, 2]),
     "top_p": st.none(), "seed": valid_seeds}, GENERATE_JUNK))
@settings(max_examples=25)
@example(dict(prompt="a" * 30, max_new_tokens=3, seed=0))  # > the context
@example(dict(prompt="😀", max_new_tokens=3, top_k=2, seed=0))
def test_gpt_generate_arguments(gpt, kwargs):
    _check_generate(gpt, kwargs)


def _check_generate(model, kwargs):
    text = outcome(model.generate, **kwargs)
    if failed(text):
        return
    prompt = kwargs["prompt"]
    assert isinstance(text, str) and text.startswith(prompt)
    assert len(text) == len(prompt) + int(kwargs.get("max_new_tokens", 100))
    assert set(text) <= set(model.vocabulary)


# ------------------------------------------------------------------ fit
VOCABULARY_SIZE = len(set(CORPUS))


@st.composite
def text_training_data(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if draw(st.integers(0, 2)) == 0:  # windows of ids, in one container
        dtype = draw(st.sampled_from(["int32", "int64", "uint8", "int16",
                                      "float32"]))
        x = rng.integers(0, VOCABULARY_SIZE, (4, 8)).astype(dtype)
        y = rng.integers(0, VOCABULARY_SIZE, (4, 8)).astype(dtype)
        if draw(st.booleans()):
            return x, y
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(2), None
    kind = draw(st.sampled_from(["ids", "ids", "string", "tf", "tf_one",
                                 "dict", "list"]))
    dtype = draw(st.sampled_from(["int32", "int64", "uint8", "float32",
                                  "float64", "bool", "object", "str"]))
    shape = draw(st.sampled_from([(4, 8), (4, 8), (4, 9), (4,), (4, 8, 1),
                                  (0, 8), ()]))
    high = draw(st.sampled_from([VOCABULARY_SIZE, 40]))
    x = rng.integers(-1 if draw(st.booleans()) else 0, high, shape)
    if dtype == "str":
        x = np.full(shape, "a")
    else:
        x = x.astype(dtype)
    y = x if draw(st.integers(0, 3)) else x[..., :-1] if x.ndim else None
    if kind == "string":
        return CORPUS, None
    if kind == "dict":
        return {"ids": x, "targets": y}, None
    if kind == "list":
        return [x, y], None
    if kind.startswith("tf"):
        try:
            parts = (x,) if kind == "tf_one" else (x, y)
            ds = tf.data.Dataset.from_tensor_slices(parts)
        except Exception:  # TensorFlow cannot hold these: not our input
            return None
        return ds.batch(2), None
    return x, draw(st.sampled_from([y, y, None]))


@given(text_training_data())
@settings(max_examples=30)
@example((np.zeros((4, 8), "int32"), np.zeros((4, 7), "int32")))
@example((np.zeros((4, 8), "int32"), np.zeros((3, 8), "int32")))
@example((np.full((4, 8), "a"), np.full((4, 8), "a")))
def test_fit_takes_only_id_windows(bigram, data):
    if data is None:
        return
    x, y = data
    before = (int(keras.ops.convert_to_numpy(bigram.optimizer.iterations))
              if bigram.compiled else 0)
    history = outcome(bigram.fit, x, y, epochs=1, steps_per_epoch=1,
                      verbose=0)
    after = (int(keras.ops.convert_to_numpy(bigram.optimizer.iterations))
             if bigram.compiled else 0)
    if failed(history):
        assert after == before
        return
    assert after == before + 1
    assert np.isfinite(history.history["loss"]).all()


@given(st.one_of(texts, not_texts, st.just(CORPUS[:20])),
       mostly(st.sampled_from([None, 1, 4, 8]), small_junk),
       mostly(st.just(4), small_junk))
@settings(max_examples=40)
def test_evaluate_text_takes_anything(bigram, text, stride, batch_size):
    bits = outcome(bigram.evaluate_text, text, stride=stride,
                   batch_size=batch_size)
    if not failed(bits):
        assert np.isfinite(bits) and bits >= 0


# -------------------------------------------------------------- predict
@st.composite
def predict_data(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    dtype = draw(st.sampled_from(["int32", "int64", "uint8", "float32",
                                  "float64", "bool"]))
    shape = draw(st.sampled_from([(4, 8), (4, 8), (2, 3), (4, 9), (4,),
                                  (0, 8)]))
    low = draw(st.sampled_from([0, 0, -1]))
    high = draw(st.sampled_from([VOCABULARY_SIZE, VOCABULARY_SIZE, 40]))
    x = rng.integers(low, high, shape).astype(dtype)
    if draw(st.booleans()) and x.ndim == 2 and len(x) and (
            x.dtype.kind in "iu"):
        # a dataset of inputs, or of (inputs, targets)
        parts = x if draw(st.booleans()) else (x, x)
        return tf.data.Dataset.from_tensor_slices(parts).batch(2)
    return x


@given(predict_data(), st.sampled_from(["predict", "predict_on_batch"]))
@settings(max_examples=30, deadline=None)
@example(np.full((2, 8), VOCABULARY_SIZE, "int32"), "predict")
@example(np.full((2, 8), -1, "int32"), "predict_on_batch")
@example(np.zeros((2, 9), "int32"), "predict")
def test_predict_takes_only_id_windows(gpt, x, method):
    # `predict` used to compute on any ids: NaN (JAX) or an IndexError
    # (PyTorch) for ids past the vocabulary, an XLA error (TensorFlow) for
    # windows past the context
    if method == "predict_on_batch" and isinstance(x, tf.data.Dataset):
        return
    kwargs = {"verbose": 0} if method == "predict" else {}
    logits = outcome(getattr(gpt, method), x, **kwargs)
    if not failed(logits):
        logits = np.asarray(keras.ops.convert_to_numpy(logits))
        assert logits.shape[-1] == gpt.vocabulary_size
        assert np.isfinite(logits).all()
