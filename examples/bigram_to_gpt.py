# %% [markdown]
# # From a bigram model to a GPT, on Tiny Shakespeare, on any Keras backend
#
# The stages of "Let's build GPT", each trained with the same recipe
# (nanoGPT's CPU one: context 64, batch 12, AdamW with warmup and cosine
# decay, 2000 steps) and compared on the same validation text:
#
# 1. **bigram**: each character predicts the next from a table of logits;
# 2. **one attention head**: token + position embeddings, one causal
#    self-attention head (the characters of the context exchange
#    information, weighted by learned affinities), a linear head;
# 3. **multi-head attention**: four smaller heads side by side;
# 4. **full blocks**: `MiniGPT`, 4 causal self-attention blocks
#    (attention + feed-forward, residual connections, pre-LayerNorm).
#
# Run it as a script, `python examples/bigram_to_gpt.py` (`--help` lists the
# options), with your own text (`--text my_book.txt`), or as the notebook
# `notebooks/bigram_to_gpt.ipynb`, which is made from this file and opens in
# Colab.
#
# It prints a table of validation losses and a sample of each stage, and
# writes them to `--output-dir`. `--smoke` trains each stage for a few steps
# on a slice of the text (what the tests run).

# %%
import argparse
import json
import os
import sys
import time

import keras

from keras_genzoo import BigramLM, MiniGPT, datasets, warmup_cosine_adamw
from keras_genzoo.models.language import CharLanguageModel

# %% [markdown]
# ## Options
# From a shell they are the command line's; in a notebook, put them in
# `NOTEBOOK_ARGS`, for example `["--steps", "500", "--text", "my_book.txt"]`.

# %% tags=["parameters"]
NOTEBOOK_ARGS = []

# %%
parser = argparse.ArgumentParser(
    description="From a bigram model to a GPT, on Tiny Shakespeare")
parser.add_argument("--text", default="tiny_shakespeare",
                    help="tiny_shakespeare (embedded) or a UTF-8 file")
parser.add_argument("--steps", type=int, default=2000)
parser.add_argument("--prompt", default=None,
                    help="the text samples start from (default: ROMEO: "
                         "where the text has its characters, else the "
                         "text's first character)")
parser.add_argument("--output-dir", default="outputs/bigram_to_gpt")
parser.add_argument("--smoke", action="store_true",
                    help="20,000 characters, 5 steps a stage (--steps, "
                         "given, wins)")
# In a notebook the options are NOTEBOOK_ARGS: a running IPython shell, and
# code run as cells, which have no __file__ (`python script.py` and IPython's
# `%run script.py ARGS` set it, and then the command line counts)
ipython = sys.modules.get("IPython")
in_notebook = (ipython is not None and ipython.get_ipython() is not None
               and "__file__" not in globals())
argv = NOTEBOOK_ARGS if in_notebook else None
args = parser.parse_args(argv)
if args.smoke:
    # `--smoke`'s sizes, where the options do not give their own
    parser.set_defaults(steps=5)
    args = parser.parse_args(argv)
if args.steps < 1:
    # (0 trained nothing, then failed at the end)
    parser.error("--steps must be at least 1")

print(f"Keras {keras.__version__}, backend: {keras.backend.backend()}")

# %% [markdown]
# ## The text

# %%
text = datasets.load_text(args.text)
steps, sample_length = args.steps, 200
if args.smoke:
    text, sample_length = text[:20_000], 40
# The samples' prompt: ROMEO: where the text has its characters
prompt = args.prompt or (
    "ROMEO:" if set("ROMEO:") <= set(text) else text[:1])

# %% [markdown]
# ## Stages 2 and 3: attention without the rest of the block
# The model sees the last `sequence_length` characters. Each position embeds
# its character and its position, then causal self-attention (the mask stops
# a position from looking ahead) mixes the positions; a linear layer turns
# each position's vector into next-character logits. With `num_heads=1` it
# is one head of size `hidden_dim`; with 4 heads, four heads of size
# `hidden_dim / 4` whose outputs are concatenated.


# %%
class AttentionLM(CharLanguageModel):
    """Embeddings, one causal multi-head self-attention layer, a linear head.

    Args:
        vocabulary: the characters the model knows (use `from_text`).
        sequence_length: the context.
        num_heads: attention heads (1: stage 2, 4: stage 3).
        hidden_dim: embedding width (split between the heads).
    """

    def __init__(self, vocabulary, sequence_length=64, num_heads=1,
                 hidden_dim=128, **kwargs):
        super().__init__(vocabulary, sequence_length, **kwargs)
        import keras_hub

        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.embedding = keras_hub.layers.TokenAndPositionEmbedding(
            self.vocabulary_size, sequence_length, hidden_dim,
            tie_weights=True)  # (the head below is a separate Dense)
        self.attention = keras.layers.MultiHeadAttention(
            num_heads=num_heads, key_dim=hidden_dim // num_heads)
        self.head = keras.layers.Dense(self.vocabulary_size)
        self.build((None, sequence_length))

    def build(self, input_shape=None):
        shape = (None, self.sequence_length)
        self.embedding.build(shape)
        self.attention.build(shape + (self.hidden_dim,),
                             shape + (self.hidden_dim,))
        self.head.build(shape + (self.hidden_dim,))
        self.built = True

    def call(self, ids):
        x = self.embedding(ids)
        x = self.attention(x, x, use_causal_mask=True)
        return self.head(x)


# %% [markdown]
# ## The stages
# Each is (stage, model, peak learning rate): the shallow models learn best
# at 1e-2 (at 1e-3 the attention stages end no better than the bigram in
# 2000 steps); the 4-block GPT at nanoGPT's 1e-3.

# %%
stages = [
    ("bigram", lambda: BigramLM.from_text(text), 1e-2),
    ("one attention head",
     lambda: AttentionLM.from_text(text, num_heads=1), 1e-2),
    ("multi-head attention (4 heads)",
     lambda: AttentionLM.from_text(text, num_heads=4), 1e-2),
    ("full blocks: MiniGPT 4x4x128", lambda: MiniGPT.from_text(text),
     1e-3),
]

# %% [markdown]
# ## Training each stage
# The same seed and the same windows for every stage: random offsets for
# training, every non-overlapping window of the last 10 % for validation.

# %%
results = []
for name, make, learning_rate in stages:
    keras.utils.set_random_seed(1337)
    model = make()
    model.encode_text(prompt)  # its characters: a ValueError before training
    train_ds, _ = model.make_datasets(text, batch_size=12, stride=1)
    _, val_ds = model.make_datasets(text, batch_size=64, shuffle=False)
    model.compile(optimizer=warmup_cosine_adamw(steps, learning_rate),
                  jit_compile=model.default_jit_compile())
    start = time.time()
    model.fit(train_ds, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.time() - start
    val = model.evaluate(val_ds, verbose=0, return_dict=True)
    sample = model.generate(prompt, max_new_tokens=sample_length,
                            temperature=0.8, top_k=40, seed=0)
    results.append({
        "stage": name, "params": int(model.count_params()),
        "val_loss": round(float(val["loss"]), 4),
        "val_bits_per_char": round(float(val["bits_per_char"]), 3),
        "train_seconds": round(seconds, 1), "sample": sample,
    })
    print(f"\n## {name}: {results[-1]['params']:,} parameters, "
          f"validation loss {val['loss']:.4f} nats/char "
          f"({seconds:.0f} s)\n{sample}", flush=True)

# %% [markdown]
# ## The table

# %%
print("\n| stage | parameters | validation loss | bits/char |")
print("|---|---|---|---|")
for r in results:
    print(f"| {r['stage']} | {r['params']:,} | {r['val_loss']:.4f} | "
          f"{r['val_bits_per_char']:.3f} |")
os.makedirs(args.output_dir, exist_ok=True)
path = os.path.join(args.output_dir, "stages.json")
with open(path, "w", encoding="utf-8") as f:
    json.dump({"backend": keras.backend.backend(), "steps": steps,
               "results": results}, f, indent=1, ensure_ascii=False)
result = {"results": results, "paths": [path]}
