"""The bigram language model: the first model of "Let's build GPT"."""

import keras
from keras import ops

from keras_genzoo import backend as zoo_backend
from keras_genzoo.models.language import CharLanguageModel


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
        # in the model's dtype policy (without it the table took the global
        # policy: float32 logits from a "mixed_bfloat16" model)
        self.table = keras.layers.Embedding(
            self.vocabulary_size, self.vocabulary_size,
            dtype=self.dtype_policy, name="logit_table"
        )
        self.build((None, None))

    def build(self, input_shape=None):
        self.table.build(input_shape)
        self.built = True

    def call(self, ids):
        """Next-character logits `(batch, length, vocabulary_size)`."""
        return self.table(ids)

    def next_logits(self, ids):
        # one row of the table, not the whole table, per generated
        # character, as `call` computes it
        ids = self._last_ids(ids)
        if getattr(self.table, "quantization_mode", None) is None:
            # a float table: its row, in the compute dtype (faster than a
            # layer call per character: 4-11x, measured)
            row = ops.cast(self.table.embeddings[int(ids[-1])],
                           self.table.compute_dtype)
            return zoo_backend.to_numpy(ops.cast(row, "float32"))
        # quantized: through the model's call (its int8 values alone,
        # without their scale, were taken before; the table called alone,
        # outside the model's autocast, gave bfloat16-rounded logits under
        # mixed_bfloat16, where `model(ids)` gives float32 ones)
        row = self(ops.convert_to_tensor([[int(ids[-1])]], "int32"))
        return zoo_backend.to_numpy(ops.cast(row, "float32"))[0, 0]
