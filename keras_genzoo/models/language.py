"""Character-level language models: the shared base and the bigram model.

`CharLanguageModel` holds what every char-level model of the zoo shares: the
vocabulary (saved inside the `.keras` file), text <-> id conversion, the
next-character datasets, a cross-entropy loss that also logs bits per
character, and sampling with temperature, top-k, top-p and a seed.
`BigramLM` is the first model of "Let's build GPT": each character predicts
the next one through a learned table of logits.
"""

import math

import numpy as np

import keras
from keras import ops

from keras_genzoo import datasets
from keras_genzoo.models.base import DefaultCompile


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


def warmup_cosine_adamw(steps, learning_rate=1e-3, min_learning_rate=None,
                        warmup_steps=100, beta_2=0.99, weight_decay=0.1,
                        global_clipnorm=1.0):
    """AdamW on nanoGPT's schedule: linear warmup, then cosine decay.

    The learning rate rises linearly from 0 to `learning_rate` over
    `warmup_steps`, then follows a cosine down to `min_learning_rate` at
    `steps`. Weight decay applies to matrices only (not to biases and
    normalisation scales), and the global gradient norm is clipped, as in
    nanoGPT.

    Args:
        steps: total training steps (e.g. nanoGPT's 2000).
        learning_rate: the peak learning rate.
        min_learning_rate: the final rate; default `learning_rate / 10`.
        warmup_steps: steps of linear warmup.
        beta_2: Adam's second-moment decay (0.99 for small models).
        weight_decay: decoupled weight decay of the matrices.
        global_clipnorm: clip the norm of all gradients together.

    Returns:
        A `keras.optimizers.AdamW`.

    Examples:
        >>> optimizer = warmup_cosine_adamw(2000)
        >>> [round(float(optimizer.learning_rate), 6)]
        [0.0]
    """
    steps, warmup_steps = int(steps), int(warmup_steps)
    if steps <= 0 or warmup_steps < 0:
        raise ValueError(
            f"`steps` must be positive and `warmup_steps` >= 0; got "
            f"{steps} and {warmup_steps}."
        )
    warmup_steps = min(warmup_steps, steps)
    if min_learning_rate is None:
        min_learning_rate = learning_rate / 10
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else learning_rate,
        decay_steps=max(steps - warmup_steps, 1),
        alpha=min_learning_rate / learning_rate,
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule, beta_2=beta_2, weight_decay=weight_decay,
        global_clipnorm=global_clipnorm,
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


class CharLanguageModel(DefaultCompile, keras.Model):
    """Base of the character-level language models.

    Subclasses build their layers in `__init__` and implement `call(ids)`
    returning next-character logits `(batch, length, vocabulary_size)`, in
    which position `t` sees only positions up to `t`; they may override
    `next_logits(ids)` or `sample_ids(...)` to generate faster.

    Args:
        vocabulary: the characters the model knows; id `i` is
            `vocabulary[i]`.
        sequence_length: characters of context per training window.
        **kwargs: standard `keras.Model` arguments (`name`, `dtype`).

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
        if int(sequence_length) <= 0:
            raise ValueError(
                f"`sequence_length` must be positive; got {sequence_length}."
            )
        self.vocabulary = vocabulary
        self.sequence_length = int(sequence_length)
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
        if not isinstance(text, str) or not text:
            raise ValueError(
                "`text` is empty: pass the text to train on, e.g. "
                "`keras_genzoo.datasets.load_text('tiny_shakespeare')`."
            )
        return cls(vocabulary=datasets.char_vocabulary(text), **kwargs)

    def encode_text(self, text):
        """Turns a string into an int32 array of ids.

        Raises:
            ValueError: the text has characters outside the vocabulary.
        """
        unknown = sorted(set(text) - set(self._index))
        if unknown:
            raise ValueError(
                f"Characters outside the model's vocabulary: {unknown[:20]}. "
                "Use only characters of the training text (see "
                "`model.vocabulary`)."
            )
        return np.array([self._index[c] for c in text], dtype="int32")

    def decode_ids(self, ids):
        """Turns a sequence of ids back into a string."""
        return "".join(self.vocabulary[int(i)] for i in np.asarray(ids))

    def make_datasets(self, text, batch_size=12, validation_split=0.1,
                      stride=None, shuffle=True, seed=0):
        """Cuts `text` into next-character training and validation windows.

        Args:
            text: the text; every character must be in the vocabulary.
            batch_size: windows per batch.
            validation_split: fraction of the text (its end) held out.
            stride: characters between window starts; default
                `sequence_length`.
            shuffle: reshuffle the training windows every epoch.
            seed: shuffling seed.

        Returns:
            `(train_ds, val_ds)` of `(inputs, targets)` id batches; see
            `keras_genzoo.datasets.text_datasets`.
        """
        self.encode_text("".join(sorted(set(text))))  # clear error first
        return datasets.text_datasets(
            text, sequence_length=self.sequence_length,
            batch_size=batch_size, validation_split=validation_split,
            vocabulary=self.vocabulary, stride=stride, shuffle=shuffle,
            seed=seed,
        )

    def default_optimizer(self):
        """AdamW with `default_learning_rate`, beta_2 0.99 (as nanoGPT)."""
        return keras.optimizers.AdamW(
            learning_rate=self.default_learning_rate, beta_2=0.99
        )

    def fit(self, *args, **kwargs):
        """Trains the model; see `keras.Model.fit` (uncompiled: AdamW)."""
        x = args[0] if args else kwargs.get("x")
        if not isinstance(x, (np.ndarray, list, tuple, dict)):
            # datasets shuffle themselves (`make_datasets` does); Keras would
            # warn that its default shuffle=True is ignored
            kwargs.setdefault("shuffle", False)
        self._ensure_compiled()
        return super().fit(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        """Evaluates the model; see `keras.Model.evaluate`."""
        self._ensure_compiled()
        return super().evaluate(*args, **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        # cross-entropy of the next character, in nats: log-softmax picked
        # at the target (TensorFlow's fused op would log "Ignoring Assert"
        # warnings under XLA)
        logits = ops.cast(y_pred, "float32")
        log_probs = logits - ops.logsumexp(logits, axis=-1, keepdims=True)
        targets = ops.expand_dims(ops.cast(y, "int32"), axis=-1)
        loss = -ops.mean(ops.take_along_axis(log_probs, targets, axis=-1))
        # weighted by batch size, like Keras' own "loss" log
        self.bits_per_char_tracker.update_state(
            loss / math.log(2.0), sample_weight=ops.shape(y)[0])
        if self.losses:
            loss = loss + ops.cast(ops.sum(self.losses), "float32")
        return loss

    def next_logits(self, ids):
        """Logits of the character after `ids` (a 1-D numpy array).

        Runs the model on the last `sequence_length` ids, right-padded to
        one fixed shape so the compiled predict function is reused (the
        padding cannot change the logits of earlier positions in a causal
        model).
        """
        window = np.asarray(ids, dtype="int32")[-self.sequence_length:]
        padded = np.zeros((1, self.sequence_length), dtype="int32")
        padded[0, :len(window)] = window
        logits = self.predict_on_batch(padded)
        return ops.convert_to_numpy(logits)[0, len(window) - 1]

    @staticmethod
    def _check_sampling(prompt, temperature, top_k, top_p):
        if not isinstance(prompt, str) or not prompt:
            raise ValueError(
                "`prompt` is empty: start with at least one character, "
                "e.g. '\\n'."
            )
        if float(temperature) <= 0:
            raise ValueError(
                f"`temperature` must be > 0; got {temperature} (use top_k=1 "
                "for greedy decoding)."
            )
        if top_k is not None and int(top_k) < 1:
            raise ValueError(f"`top_k` must be >= 1; got {top_k}.")
        if top_p is not None and not 0.0 < float(top_p) <= 1.0:
            raise ValueError(f"`top_p` must be in (0, 1]; got {top_p}.")

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
                the same backend).

        Returns:
            `prompt` followed by the generated characters.
        """
        self._check_sampling(prompt, temperature, top_k, top_p)
        ids = [int(i) for i in self.encode_text(prompt)]
        if int(max_new_tokens) <= 0:
            return prompt
        new = self.sample_ids(ids, int(max_new_tokens), float(temperature),
                              top_k, top_p, seed)
        return prompt + self.decode_ids(new[:int(max_new_tokens)])

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
            ids.append(sample_from_logits(logits, rng, temperature, top_k,
                                          top_p))
        return ids[-max_new_tokens:]

    def get_config(self):
        config = super().get_config()
        config.update({
            "vocabulary": list(self.vocabulary),
            "sequence_length": self.sequence_length,
        })
        return config


@keras.saving.register_keras_serializable(package="keras_genzoo")
class BigramLM(CharLanguageModel):
    """The bigram language model: each character predicts the next one.

    A `vocabulary_size x vocabulary_size` table of logits, learned with the
    cross-entropy of the next character: the baseline of "Let's build GPT".
    `fit` logs the loss (nats per character) and `bits_per_char`.

    Args:
        vocabulary: the characters the model knows (use `from_text`).
        sequence_length: characters per training window (the model itself
            looks at one character).
        **kwargs: standard `keras.Model` arguments (`name`, `dtype`).

    Examples:
        >>> from keras_genzoo import BigramLM
        >>> text = "abcabcabc" * 40
        >>> model = BigramLM.from_text(text, sequence_length=8)
        >>> train_ds, val_ds = model.make_datasets(text, batch_size=8)
        >>> _ = model.fit(train_ds, epochs=10, verbose=0)
        >>> model.generate("a", max_new_tokens=5, top_k=1)
        'abcabc'
    """

    default_learning_rate = 1e-2

    def __init__(self, vocabulary, sequence_length=64, **kwargs):
        super().__init__(vocabulary, sequence_length, **kwargs)
        self.table = keras.layers.Embedding(
            self.vocabulary_size, self.vocabulary_size, name="logit_table"
        )
        self.build((None, None))

    def build(self, input_shape=None):
        self.table.build(input_shape)
        self.built = True

    def call(self, ids):
        """Next-character logits `(batch, length, vocabulary_size)`."""
        return self.table(ids)

    def next_logits(self, ids):
        # one row of the table, not the whole table, per generated character
        return ops.convert_to_numpy(self.table.embeddings[int(ids[-1])])
