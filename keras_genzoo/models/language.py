"""The base of the character-level language models.

`CharLanguageModel` holds what every char-level model of the zoo shares: the
vocabulary (saved inside the `.keras` file), text <-> id conversion, the
next-character datasets, a cross-entropy loss that also logs bits per
character, and sampling with temperature, top-k, top-p and a seed. The
models are `BigramLM` (`keras_genzoo.models.bigram`) and `MiniGPT`
(`keras_genzoo.models.gpt`).
"""

import json
import math
import os
import types

import numpy as np

import keras
from keras import ops

from keras_genzoo import backend as zoo_backend
from keras_genzoo import _inputs, datasets
from keras_genzoo.models.base import (
    OWN_MISMATCH_PREFIX,
    GenerativeModel,
    read_weights_file,
    with_added_losses,
)
from keras_genzoo.optimizers import warmup_cosine_adamw  # its 0.1.0 home
from keras_genzoo.sampling import (
    _sample_from_logits,
    check_settings,
    sample_from_logits,
)

__all__ = ["CharLanguageModel", "sample_from_logits", "warmup_cosine_adamw"]


def __getattr__(name):
    # `keras_genzoo.models.language.BigramLM`: its home in 0.1.0.
    if name == "BigramLM":
        from keras_genzoo.models.bigram import BigramLM

        return BigramLM
    raise AttributeError(name)


def _check_text(text):
    if not isinstance(text, str):
        hint = (" Decode it first, e.g. `text = data.decode('utf-8')`."
                if isinstance(text, (bytes, bytearray)) else "")
        raise ValueError(
            f"`text` must be a string; got {type(text).__name__}.{hint}")


# The entry of a text model's weights that holds its vocabulary.
VOCABULARY_KEY = "vocabulary"


def _vocabulary_of(entry):
    """The vocabulary a weights file's entry holds (`None` for none)."""
    if entry is None:
        return None
    return json.loads(bytes(np.asarray(entry)).decode("utf-8"))


class CharLanguageModel(GenerativeModel):
    """Base of the character-level language models.

    Subclasses build their layers in `__init__` and implement `call(ids)`
    returning next-character logits `(batch, length, vocabulary_size)`, in
    which position `t` sees only positions up to `t`; they may override
    `next_logits(ids)` or `sample_ids(...)` to generate faster.

    Args:
        vocabulary: the characters the model knows; id `i` is
            `vocabulary[i]`.
        sequence_length: characters of context per training window.
        **kwargs: standard `keras.Model` arguments (`name`, `dtype`) and
            `seed` (the model's own seed generator, see `GenerativeModel`).

    Examples:
        >>> from keras_genzoo import BigramLM
        >>> model = BigramLM.from_text("hello world")
        >>> model.encode_text("hello").tolist()
        [3, 2, 4, 4, 5]
        >>> model.decode_ids([3, 2, 4, 4, 5])
        'hello'
    """

    default_learning_rate = 1e-3

    def __init__(self, vocabulary, sequence_length=64, **kwargs):
        super().__init__(**kwargs)
        vocabulary = list(vocabulary)
        if not vocabulary:
            raise ValueError(
                "`vocabulary` is empty: build the model from a text, e.g. "
                "`BigramLM.from_text(text)`."
            )
        if any(not isinstance(c, str) or len(c) != 1 for c in vocabulary):
            raise ValueError(
                "`vocabulary` must be a list of single characters."
            )
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError("`vocabulary` has repeated characters.")
        try:
            sequence_length = _inputs.check_count(sequence_length,
                                                  "sequence_length")
        except ValueError:
            raise ValueError(
                f"`sequence_length` must be positive (an integer); got "
                f"{sequence_length!r}.") from None
        self.vocabulary = vocabulary
        self.sequence_length = sequence_length
        self._index = {c: i for i, c in enumerate(vocabulary)}
        self.bits_per_char_tracker = keras.metrics.Mean(name="bits_per_char")

    @property
    def vocabulary_size(self):
        """Number of characters in the vocabulary."""
        return len(self.vocabulary)

    @classmethod
    def from_text(cls, text, **kwargs):
        """Creates a model whose vocabulary is the characters of `text`.

        Args:
            text: the training text (any Unicode).
            **kwargs: the model's other constructor arguments.

        Returns:
            A new, untrained model.
        """
        _check_text(text)
        if not text:
            raise ValueError(
                "`text` is empty: pass the text to train on, e.g. "
                "`keras_genzoo.datasets.load_text('tiny_shakespeare')`."
            )
        return cls(vocabulary=datasets.char_vocabulary(text), **kwargs)

    def encode_text(self, text):
        """Turns a string into an int32 array of ids.

        Raises:
            ValueError: `text` is not a string, or has characters outside
                the vocabulary.
        """
        _check_text(text)
        unknown = sorted(set(text) - set(self._index))
        if unknown:
            raise ValueError(
                f"Characters outside the model's vocabulary: {unknown[:20]}. "
                "Use only characters of the training text (see "
                "`model.vocabulary`)."
            )
        return np.array([self._index[c] for c in text], dtype="int32")

    def decode_ids(self, ids):
        """Turns a sequence of ids back into a string.

        Raises:
            ValueError: `ids` are not ints in `0..vocabulary_size - 1`.
        """
        array = _inputs.to_numpy(ids, "`ids`")
        whole = array.dtype.kind != "b" and _inputs.holds_whole_numbers(
            array)
        if array.ndim > 1 or not whole or array.size and (
                array.min() < 0 or array.max() >= self.vocabulary_size):
            raise ValueError(
                f"`ids` must be a sequence of ints in 0.."
                f"{self.vocabulary_size - 1} (the vocabulary's ids); got "
                f"{array.dtype} values of shape {array.shape}"
                + (f" from {array.min()} to {array.max()}."
                   if whole and array.ndim <= 1 and array.size else "."))
        return "".join(self.vocabulary[int(i)] for i in array.reshape(-1))

    def make_datasets(self, text, batch_size=12, validation_split=0.1,
                      stride=None, shuffle=True, seed=0):
        """Cuts `text` into next-character training and validation windows.

        Args:
            text: the text; every character must be in the vocabulary.
            batch_size: windows per batch.
            validation_split: fraction of the text (its end) held out.
            stride: characters between training window starts; default
                `sequence_length`. Validation windows never overlap.
            shuffle: reshuffle the training windows every epoch.
            seed: shuffling seed.

        Returns:
            `(train_ds, val_ds)` of `(inputs, targets)` id batches; see
            `keras_genzoo.datasets.text_datasets`.
        """
        _check_text(text)
        self.encode_text("".join(sorted(set(text))))  # clear error first
        return datasets.text_datasets(
            text, sequence_length=self.sequence_length,
            batch_size=batch_size, validation_split=validation_split,
            vocabulary=self.vocabulary, stride=stride, shuffle=shuffle,
            seed=seed,
        )

    def check_data(self, x, y=None, what="the training data"):
        """Checks that `x` holds windows of ids (and targets) before any
        step: one `ValueError` that names `make_datasets` otherwise."""
        fix = ("cut the text into (inputs, targets) windows with "
               "`train_ds, val_ds = model.make_datasets(text)`")
        if x is None or isinstance(x, str):
            raise ValueError(
                f"{what} is {'a string' if x else 'None'}: {fix}.")
        if hasattr(x, "element_spec"):  # tf.data
            spec = x.element_spec
            if not isinstance(spec, tuple) or len(spec) < 2:
                raise ValueError(
                    f"{what} yields {spec}, not (inputs, targets) pairs: "
                    f"{fix}.")
            for part in spec[:2]:
                if part.shape.rank != 2 or not part.dtype.is_integer:
                    raise ValueError(
                        f"{what} yields {part.dtype.name} tensors of rank "
                        f"{part.shape.rank}; the model takes batches of int "
                        f"ids of shape (batch, length): {fix}.")
            # the first batch (read once per dataset, see `_inputs`)
            inputs, targets = _inputs.first_batch(x, what)
            self._check_windows(inputs, targets, what, fix)
        elif hasattr(x, "shape") and hasattr(x, "dtype"):
            if y is None:
                raise ValueError(
                    f"{what} has no targets: pass `fit(inputs, targets)`, "
                    f"or {fix}.")
            self._check_stream_windows((x, y), what, fix)
        elif isinstance(x, (dict, list, tuple)):
            raise ValueError(
                f"{what} is a {type(x).__name__}: pass `fit(inputs, "
                f"targets)` with int id arrays, or {fix}.")
        elif isinstance(x, types.GeneratorType):
            first, x = _inputs.peek_generator(x, what, fix)
            self._check_stream_windows(_inputs.split_batch(first), what,
                                       fix)
        elif hasattr(x, "__getitem__") or hasattr(x, "__iter__"):
            # a PyDataset or a torch DataLoader, by its first batch (ids
            # outside the vocabulary gave NaN on JAX, an IndexError on
            # PyTorch and silently clamped lookups on TensorFlow)
            self._check_stream_windows(_inputs.first_batch(x, what), what,
                                       fix)
        return x

    def _check_stream_windows(self, batch, what, fix):
        """Checks `(inputs, targets)` windows: arrays, or a stream's first
        batch."""
        inputs, targets = batch
        if targets is None:
            raise ValueError(
                f"{what} yields batches without targets; the model trains "
                f"on (inputs, targets) pairs: {fix}.")
        self._check_windows(_inputs.to_numpy(inputs, f"{what} (inputs)"),
                            _inputs.to_numpy(targets, f"{what} (targets)"),
                            what, fix)

    def check_predict_data(self, x):
        """Checks the windows of ids given to `predict` (and
        `predict_on_batch`): arrays whole, a
        tf.data dataset (of inputs, or of (inputs, targets)) by its first
        batch, with the `ValueError`s of `fit` and `evaluate`. Returns `x`.

        Before this check `predict` ran on whatever it was given: windows
        longer than the context failed deep in XLA on TensorFlow, ids
        outside the vocabulary gave NaN (JAX), an IndexError (PyTorch) or
        silently wrong logits (-1)."""
        what = "the data given to `predict`"
        fix = ("pass int id windows of shape (batch, length), e.g. "
               "`model.encode_text(text)[None]`, or the inputs of "
               "`model.make_datasets(text)`")
        if x is None or isinstance(x, (str, bytes)):
            raise ValueError(
                f"{what} is {'None' if x is None else 'a string'}: {fix}.")
        if _inputs._is_tf_dataset(x):
            spec = x.element_spec
            part = spec[0] if isinstance(spec, tuple) and spec else spec
            if (getattr(part, "shape", None) is None
                    or part.shape.rank != 2 or not part.dtype.is_integer):
                raise ValueError(
                    f"{what} yields {spec}; the model takes batches of int "
                    f"ids of shape (batch, length): {fix}.")
            # the first batch (read once per dataset, see `_inputs`)
            inputs, _ = _inputs.first_batch(x, what)
            self._check_ids(inputs, what, fix)
        elif _inputs._is_array_like(x):
            ids = _inputs.to_numpy(x, what)
            if ids.ndim and not len(ids):
                raise ValueError(
                    f"{what} is empty: it holds no windows: {fix}.")
            self._check_ids(ids, what, fix)
        elif not isinstance(x, (dict, list, tuple, types.GeneratorType)) and (
                hasattr(x, "__getitem__") or hasattr(x, "__iter__")):
            # a PyDataset or a torch DataLoader, by its first batch
            inputs, _ = _inputs.first_batch(x, what)
            self._check_ids(inputs, what, fix)
        return x

    # Whether the model reads at most `sequence_length` ids at once (a
    # position embedding does; a bigram table does not).
    limited_context = False

    def export_signature(self):
        """The `input_signature` `export` serves by default: int32 ids
        `(batch, length)`, windows of `sequence_length` ids for a model of
        limited context (any length for a bigram)."""
        length = self.sequence_length if self.limited_context else None
        return [keras.InputSpec(shape=(None, length), dtype="int32")]

    def ensure_built(self, method):
        """Builds the model (for windows of ids) if it is not built yet."""
        del method
        if not self.built:
            self.build((None, self.sequence_length))

    def _check_windows(self, inputs, targets, what, fix):
        """Checks numpy `(inputs, targets)` windows of ids."""
        if inputs.ndim and not len(inputs):
            raise ValueError(f"{what} is empty: it holds no windows: {fix}.")
        for name, ids in (("inputs", inputs), ("targets", targets)):
            self._check_ids(ids, f"{what} ({name})", fix)
        if inputs.shape != targets.shape:
            raise ValueError(
                f"{what} has inputs of shape {inputs.shape} and targets of "
                f"shape {targets.shape}; they must match (the targets are "
                f"the inputs shifted by one character): {fix}.")

    def _check_ids(self, ids, what, fix):
        whole = ids.dtype.kind != "b" and _inputs.holds_whole_numbers(ids)
        if ids.ndim != 2 or not whole:
            raise ValueError(
                f"{what} has {ids.dtype} values of shape {ids.shape}; the "
                f"model takes int ids of shape (batch, length): {fix}.")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocabulary_size):
            raise ValueError(
                f"{what} has ids from {ids.min()} to {ids.max()}, outside "
                f"the vocabulary of {self.vocabulary_size} characters: {fix}.")
        if self.limited_context and ids.shape[1] > self.sequence_length:
            raise ValueError(
                f"{what} has windows of {ids.shape[1]} ids; the model reads "
                f"at most sequence_length={self.sequence_length}: {fix}.")

    def default_optimizer(self):
        """AdamW with `default_learning_rate`, beta_2 0.99 (as nanoGPT)."""
        return keras.optimizers.AdamW(
            learning_rate=self.default_learning_rate, beta_2=0.99
        )

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        # cross-entropy of the next character, in nats: log-softmax picked
        # at the target (TensorFlow's fused op would log "Ignoring Assert"
        # warnings under XLA)
        if zoo_backend.next_token_cross_entropy is None:
            logits = ops.cast(y_pred, "float32")
            log_probs = logits - ops.logsumexp(logits, axis=-1,
                                               keepdims=True)
            targets = ops.expand_dims(ops.cast(y, "int32"), axis=-1)
            loss = -ops.mean(ops.take_along_axis(log_probs, targets,
                                                 axis=-1))
        else:  # the same in one op of the backend's own (PyTorch)
            loss = zoo_backend.next_token_cross_entropy(
                ops.convert_to_tensor(y_pred), ops.convert_to_tensor(y))
        # weighted by batch size, like Keras' own "loss" log
        self.bits_per_char_tracker.update_state(
            loss / math.log(2.0), sample_weight=ops.shape(y)[0])
        loss = with_added_losses(loss, self.losses)
        # a replica's share under tf.distribute (the identity elsewhere)
        return zoo_backend.scale_loss_for_replicas(loss)

    def evaluate_text(self, text, stride=None, batch_size=32):
        """Bits per character of the model on any string.

        Every character after the first is predicted from the ones before
        it (at most `sequence_length` of them): the text is cut into
        overlapping windows of `sequence_length` characters, `stride` apart,
        and each character is scored once, in the window where it has the
        most context (at least `sequence_length - stride` characters, except
        at the start of the text). The result is comparable with the
        `bits_per_char` that `fit` and `evaluate` log (those score each
        window on its own, so their early positions see less context).

        Args:
            text: a string of at least 2 characters of the vocabulary.
            stride: characters between window starts, `1 <= stride <=
                sequence_length`; default half the context (`stride =
                sequence_length` is faster and gives less context to the
                first characters of each window).
            batch_size: windows per model call.

        Returns:
            Bits per character (a float): the mean negative log2-probability
            of each character after the first.

        Examples:
            A model that gives every character the same probability scores
            log2(vocabulary size) bits:

            >>> import numpy as np
            >>> from keras_genzoo import BigramLM
            >>> model = BigramLM.from_text("abcabc")
            >>> _ = model.table.embeddings.assign(np.zeros((3, 3)))
            >>> round(model.evaluate_text("abcabc"), 3)  # log2(3)
            1.585
        """
        if not isinstance(text, str) or len(text) < 2:
            raise ValueError(
                "`text` must be a string of at least 2 characters (the "
                "first one is only context); got "
                f"{text!r:.40}.")
        ids = self.encode_text(text)
        length = self.sequence_length
        stride = _inputs.check_count(
            max(1, length // 2) if stride is None else stride, "stride")
        if not 1 <= stride <= length:
            raise ValueError(
                f"`stride` must be in [1, sequence_length={length}]; got "
                f"{stride}.")
        # Windows start at 0, stride, 2 * stride, ... until one reaches the
        # last character; window w predicts ids[start + 1 : start + 1 + L].
        last_start = max(0, len(ids) - 1 - length)
        starts = list(range(0, last_start, stride)) + [last_start]
        windows = np.zeros((len(starts), length), dtype="int32")
        targets = np.zeros((len(starts), length), dtype="int32")
        scored = np.zeros((len(starts), length), dtype=bool)
        done = 0  # targets up to index `done` (in `ids`) are scored
        for w, start in enumerate(starts):
            piece = ids[start:start + length + 1]
            windows[w, :len(piece) - 1] = piece[:-1]
            targets[w, :len(piece) - 1] = piece[1:]
            first = max(done, start) - start  # first new target position
            scored[w, first:len(piece) - 1] = True
            done = start + len(piece) - 1
        total, count = 0.0, 0
        batch_size = _inputs.check_count(batch_size, "batch_size")
        for i in range(0, len(windows), batch_size):
            batch = windows[i:i + batch_size]
            size = len(batch)
            if size < batch_size:
                # one fixed shape: the compiled predict function is reused
                batch = np.concatenate([batch, np.zeros(
                    (batch_size - size, length), "int32")])
            logits = np.asarray(zoo_backend.to_numpy(
                self.predict_on_batch(batch)), "float64")[:size]
            peak = logits.max(-1, keepdims=True)
            log_probs = logits - peak - np.log(
                np.exp(logits - peak).sum(-1, keepdims=True))
            picked = np.take_along_axis(
                log_probs, targets[i:i + size, :, None], axis=-1)[..., 0]
            mask = scored[i:i + size]
            total -= float(picked[mask].sum())
            count += int(mask.sum())
        return total / count / math.log(2.0)

    @staticmethod
    def _last_ids(ids):
        """`ids` (the text so far) as int32 numpy, or one `ValueError` where
        there is none (MiniGPT gave the logits after its padding, BigramLM
        an `IndexError`)."""
        ids = np.asarray(ids, dtype="int32").reshape(-1)
        if not ids.size:
            raise ValueError(
                "`next_logits` needs the ids of at least one character (the "
                "text so far, e.g. `model.encode_text(prompt)`); got none.")
        return ids

    def next_logits(self, ids):
        """Logits of the character after `ids` (a 1-D numpy array).

        Runs the model on the last `sequence_length` ids, right-padded to
        one fixed shape so the compiled predict function is reused (the
        padding cannot change the logits of earlier positions in a causal
        model).
        """
        window = self._last_ids(ids)[-self.sequence_length:]
        padded = np.zeros((1, self.sequence_length), dtype="int32")
        padded[0, :len(window)] = window
        logits = self.predict_on_batch(padded)
        return zoo_backend.to_numpy(logits)[0, len(window) - 1]

    @staticmethod
    def _check_sampling(prompt, temperature, top_k, top_p):
        """The checked `(temperature, top_k, top_p)`: a float, an int or
        `None`, a float or `None`."""
        if not isinstance(prompt, str):
            raise ValueError(
                f"`prompt` must be a string; got {type(prompt).__name__} "
                f"{prompt!r:.40}.")
        if not prompt:
            raise ValueError(
                "`prompt` is empty: start with at least one character, "
                "e.g. '\\n'."
            )
        return check_settings(temperature, top_k, top_p)

    def generate(self, prompt, max_new_tokens=100, temperature=1.0,
                 top_k=None, top_p=None, seed=None):
        """Continues `prompt` with sampled characters.

        A prompt longer than the model's context is cropped to its last
        `sequence_length` characters for the model (and returned whole).

        Args:
            prompt: the start of the text (at least one character, all in
                the vocabulary).
            max_new_tokens: how many characters to add.
            temperature: > 0; below 1 is more conservative.
            top_k: sample among the `top_k` likeliest characters only
                (`top_k=1` is greedy decoding).
            top_p: sample among the likeliest characters whose
                probabilities add up to `top_p`.
            seed: optional integer; the same seed gives the same text (on
                the same backend). Without one, a seed is drawn from the
                model's seed generator, which advances (so a model created
                with `seed=` generates the same texts in the same order).

        Returns:
            `prompt` followed by the generated characters.
        """
        temperature, top_k, top_p = self._check_sampling(
            prompt, temperature, top_k, top_p)
        max_new_tokens = _inputs.check_count(max_new_tokens,
                                             "max_new_tokens", minimum=0)
        seed = _inputs.check_seed(seed)
        # every check before the draw: a refused call takes no seed (the
        # later texts of a seeded model came one place late)
        ids = [int(i) for i in self.encode_text(prompt)]
        if seed is None:
            seed = self.draw_seed()
        if max_new_tokens == 0:
            return prompt
        new = self.sample_ids(ids, max_new_tokens, temperature, top_k,
                              top_p, seed)
        return prompt + self.decode_ids(new[:max_new_tokens])

    def sample_ids(self, ids, max_new_tokens, temperature, top_k, top_p,
                   seed):
        """The ids `generate` appends to the prompt's `ids` (a list).

        This base version samples in numpy from `next_logits`, one character
        at a time; models override it with a faster loop.
        """
        ids = list(ids)
        rng = np.random.default_rng(seed)
        for _ in range(max_new_tokens):
            logits = self.next_logits(np.asarray(ids, dtype="int32"))
            ids.append(_sample_from_logits(logits, rng, temperature,
                                           top_k, top_p))
        return ids[-max_new_tokens:]

    @property
    def input_dtype(self):
        """The ids' dtype: what Keras converts float inputs to, and the
        dtype of `model.export`'s input signature (Keras' default, the
        compute dtype, made a float32 signature that takes no ids)."""
        return "int32"

    def save_own_variables(self, store):
        # the vocabulary beside the weights: a `.weights.h5` file loaded
        # into a model of another vocabulary of the same size (the text's
        # characters in another order) generated other characters, in
        # silence
        super().save_own_variables(store)
        store[VOCABULARY_KEY] = np.frombuffer(
            json.dumps(list(self.vocabulary)).encode("utf-8"), "uint8")

    def load_weights(self, filepath, *args, **kwargs):
        """`keras.Model.load_weights`; a file of another vocabulary is
        refused before any weight is loaded (`load_own_variables` checks
        it too, after the layers Keras loads first)."""
        saved = read_weights_file(
            filepath, lambda weights: _vocabulary_of(
                weights.get(f"vars/{VOCABULARY_KEY}")))
        if saved is not None:
            self._check_vocabulary(saved, os.fspath(filepath) + ": ")
        return super().load_weights(filepath, *args, **kwargs)

    def load_own_variables(self, store):
        keys = list(store.keys())
        if VOCABULARY_KEY in keys:  # (files of before 2026-12 have none)
            self._check_vocabulary(_vocabulary_of(store[VOCABULARY_KEY]))
            store = {key: store[key] for key in keys if key != VOCABULARY_KEY}
        super().load_own_variables(store)

    def _check_vocabulary(self, saved, where=""):
        """A `ValueError` unless `saved` is this model's vocabulary."""
        if list(saved) == list(self.vocabulary):
            return
        differ = sum(a != b for a, b in zip(saved, self.vocabulary))
        short = (f", or `vocabulary={''.join(saved)!r}`" if len(saved) <= 40
                 else "")
        raise ValueError(
            f"{where}{OWN_MISMATCH_PREFIX} a model of another vocabulary "
            f"({len(saved)} characters, {differ} of them at other ids than "
            f"in this model's {len(self.vocabulary)}): they would generate "
            f"other characters. Make the model as the saved one was "
            f"(`{type(self).__name__}.from_text` of the same text{short}), "
            f"or load its `.keras` file, which holds it.")

    def get_config(self):
        config = super().get_config()
        config.update({
            "vocabulary": list(self.vocabulary),
            "sequence_length": self.sequence_length,
        })
        return config
