# %% [markdown]
# # A bigram language model on Tiny Shakespeare, on any Keras backend
#
# The first model of "Let's build GPT": every character predicts the next one
# through a learned table of logits. Train it on any text, watch the loss
# (and bits per character) fall, and sample from it.
#
# Run it as a script, `python examples/bigram_shakespeare.py` (`--help` lists
# the options), with your own text (`--text my_book.txt`), or as the notebook
# `notebooks/bigram_shakespeare.ipynb`, which is made from this file and
# opens in Colab.
#
# `--smoke` trains on the first 50,000 characters for one epoch (what the
# tests run).

# %%
import argparse
import os
import sys
import time

import keras

from keras_genzoo import BigramLM, datasets, plots

# %% [markdown]
# ## Options
# From a shell they are the command line's; in a notebook, put them in
# `NOTEBOOK_ARGS`, for example `["--text", "my_book.txt", "--epochs", "5"]`.

# %% tags=["parameters"]
NOTEBOOK_ARGS = []

# %%
parser = argparse.ArgumentParser(
    description="A bigram language model on Tiny Shakespeare")
parser.add_argument("--text", default="tiny_shakespeare",
                    help="tiny_shakespeare (embedded) or a UTF-8 file")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--prompt", default=None,
                    help="the text samples start from (default: ROMEO: "
                         "where the text has its characters, else the "
                         "text's first character)")
parser.add_argument("--output-dir", default="outputs/bigram")
parser.add_argument("--smoke", action="store_true",
                    help="50,000 characters, one epoch (--epochs, given, "
                         "wins)")
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
    parser.set_defaults(epochs=1)
    args = parser.parse_args(argv)
if min(args.epochs, args.batch_size) < 1:
    # (0 trained nothing, then failed at the end)
    parser.error("--epochs and --batch-size must be at least 1")

keras.utils.set_random_seed(0)
print(f"Keras {keras.__version__}, backend: {keras.backend.backend()}")

# %% [markdown]
# ## The text and its vocabulary
# The vocabulary is every distinct character of the text; it is saved inside
# the model file.

# %%
text = datasets.load_text(args.text)
if args.smoke:
    text = text[:50_000]
# The samples' prompt: ROMEO: where the text has its characters
prompt = args.prompt or (
    "ROMEO:" if set("ROMEO:") <= set(text) else text[:1])
model = BigramLM.from_text(text, sequence_length=64)
model.encode_text(prompt)  # its characters: a ValueError before training
print(f"{len(text):,} characters, vocabulary of {model.vocabulary_size}")

# %% [markdown]
# ## Training
# The first 90 % of the text trains, the last 10 % validates.

# %%
train_ds, val_ds = model.make_datasets(text, batch_size=args.batch_size)
epochs = args.epochs
start = time.time()
history = model.fit(train_ds, validation_data=val_ds, epochs=epochs,
                    verbose=2)
seconds = time.time() - start
print(f"Trained in {seconds:.1f} s: validation loss "
      f"{history.history['val_loss'][-1]:.4f} nats/char, "
      f"{history.history['val_bits_per_char'][-1]:.3f} bits/char")
os.makedirs(args.output_dir, exist_ok=True)
history_path = os.path.join(args.output_dir, "bigram_history.png")
history_figure = plots.plot_history(history)  # keras_genzoo.plots
history_figure.savefig(history_path)

# %% active="ipynb"
# from IPython.display import display
# display(history_figure)

# %% [markdown]
# ## Sampling

# %%
sample = model.generate(prompt, max_new_tokens=300, temperature=0.8,
                        top_k=40, seed=0)
print(sample)
os.makedirs(args.output_dir, exist_ok=True)
sample_path = os.path.join(args.output_dir, "bigram_sample.txt")
with open(sample_path, "w", encoding="utf-8") as f:
    f.write(sample)

# %%
model_path = os.path.join(args.output_dir, "bigram.keras")
model.save(model_path)
result = {"history": history.history, "seconds": seconds,
          "sample": sample,
          "paths": [sample_path, model_path, history_path]}
