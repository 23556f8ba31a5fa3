# %% [markdown]
# # A character-level GPT on Tiny Shakespeare (or yours), on any Keras backend
#
# `MiniGPT` is nanoGPT's "baby GPT" made of pre-norm causal self-attention
# blocks: 4 layers, 4 heads, 128 dimensions, a context of 64 characters. In
# about 1.5 minutes on a laptop CPU (TensorFlow backend) it writes
# Shakespeare-shaped text; a `TextSampler` prints a sample after every
# "epoch" of 250 steps so you can watch it learn.
#
# Run it as a script, `python examples/minigpt_shakespeare.py` (`--help`
# lists the options), with your own text (`--text my_book.txt`, any UTF-8),
# or as the notebook `notebooks/minigpt_shakespeare.ipynb`, which is made
# from this file and opens in Colab.
#
# `--smoke` trains a tiny GPT for a few steps (what the tests run).

# %%
import argparse
import os
import sys
import time

import keras

from keras_genzoo import MiniGPT, datasets, plots, warmup_cosine_adamw
from keras_genzoo.callbacks import TextSampler

# %% [markdown]
# ## Options
# From a shell they are the command line's; in a notebook, put them in
# `NOTEBOOK_ARGS`, for example `["--steps", "5000", "--prompt", "JULIET:"]`.

# %% tags=["parameters"]
NOTEBOOK_ARGS = []

# %%
parser = argparse.ArgumentParser(
    description="A character-level GPT on Tiny Shakespeare (or your text)")
parser.add_argument("--text", default="tiny_shakespeare",
                    help="tiny_shakespeare (embedded) or a UTF-8 file")
parser.add_argument("--steps", type=int, default=2000)
parser.add_argument("--sample-every", type=int, default=250,
                    help="steps between text samples")
parser.add_argument("--prompt", default=None,
                    help="the text samples start from (default: ROMEO: "
                         "where the text has its characters, else the "
                         "text's first character)")
parser.add_argument("--output-dir", default="outputs/minigpt")
parser.add_argument("--smoke", action="store_true",
                    help="20,000 characters, a tiny GPT, 6 steps "
                         "(--steps and --sample-every, given, win)")
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
    parser.set_defaults(steps=6, sample_every=3)
    args = parser.parse_args(argv)
if args.steps < 1 or args.sample_every < 1:
    parser.error("--steps and --sample-every must be at least 1")

keras.utils.set_random_seed(1337)
print(f"Keras {keras.__version__}, backend: {keras.backend.backend()}")

# %% [markdown]
# ## The text and its vocabulary
# Every distinct character of the text; saved inside the model file.

# %%
text = datasets.load_text(args.text)
size = {}
steps, every = args.steps, args.sample_every
if args.smoke:
    text = text[:20_000]
    size = dict(num_layers=1, num_heads=2, hidden_dim=32,
                sequence_length=32)
# The samples' prompt: ROMEO: where the text has its characters
prompt = args.prompt or (
    "ROMEO:" if set("ROMEO:") <= set(text) else text[:1])
gpt = MiniGPT.from_text(text, **size)
gpt.encode_text(prompt)  # its characters: a ValueError before training
print(f"{len(text):,} characters, vocabulary of {gpt.vocabulary_size}, "
      f"{gpt.count_params():,} parameters")

# %% [markdown]
# ## Data: windows of 64 characters, the next character as target
# Training windows start at every character of the first 90 % (shuffled),
# validation windows tile the last 10 %.

# %%
train_ds, _ = gpt.make_datasets(text, batch_size=12, stride=1)
_, val_ds = gpt.make_datasets(text, batch_size=64, shuffle=False)

# %% [markdown]
# ## Training: nanoGPT's schedule
# AdamW, 100 warmup steps to 1e-3, cosine decay to 1e-4. An "epoch" here is
# `sample_every` steps: after each one, a sample from a fixed prompt and seed
# is printed and appended to samples.txt. Training stops after exactly
# `steps` steps, the length of the schedule: when `sample_every` does not
# divide them, the last epoch is shorter. `StepLog` stops it there and
# prints each epoch's losses with the steps trained so far.


# %%
class StepLog(keras.callbacks.Callback):
    """Stops `fit` after `steps` steps in all; prints each epoch's logs."""

    def __init__(self, steps):
        super().__init__()
        self.steps, self.done, self.first = steps, 0, 0
        self.start = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.first = self.done

    def on_train_batch_end(self, batch, logs=None):
        self.done = self.first + batch + 1
        if self.done >= self.steps:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        values = " - ".join(f"{k}: {float(v):.4f}"
                            for k, v in sorted((logs or {}).items()))
        print(f"step {self.done}/{self.steps} - "
              f"{time.time() - self.start:.0f}s - {values}")


gpt.compile(optimizer=warmup_cosine_adamw(steps),
            jit_compile=gpt.default_jit_compile())
os.makedirs(args.output_dir, exist_ok=True)
sample_path = os.path.join(args.output_dir, "samples.txt")
if os.path.exists(sample_path):
    os.remove(sample_path)
sampler = TextSampler(prompt, max_new_tokens=200, path=sample_path,
                      temperature=0.8, top_k=40, seed=0)
every = min(every, steps)
epochs = -(-steps // every)  # the last one shorter if every does not divide
print(f"{steps} steps, a sample after every {every}"
      + (f" and after the last {steps % every}" if steps % every else ""))
start = time.time()
history = gpt.fit(train_ds, validation_data=val_ds,
                  steps_per_epoch=every, epochs=epochs,
                  callbacks=[StepLog(steps), sampler], verbose=0)
seconds = time.time() - start
print(f"Trained in {seconds:.0f} s: validation loss "
      f"{history.history['val_loss'][-1]:.4f} nats/char, "
      f"{history.history['val_bits_per_char'][-1]:.3f} bits/char")

# %% [markdown]
# ## Generation
# A keras-hub sampler in a compiled loop; the same seed gives the same text.
# `top_k=1` is greedy decoding.

# %%
sample = gpt.generate(prompt, max_new_tokens=500, temperature=0.8,
                      top_k=40, seed=0)
print(sample)

# %% [markdown]
# ## Plots
# The loss per "epoch" of `sample_every` steps (training solid, validation
# dashed; bits per character in their own panel), and what the last block
# attends to over the start of the generated text: one panel per head, each
# character (row) weighing the characters up to itself (columns), the
# lower-triangular matrix of causal self-attention.

# %%
figures = {
    "minigpt_history.png": plots.plot_history(history),
    "minigpt_attention.png": plots.plot_attention(
        gpt, sample[:min(32, gpt.sequence_length)]),
}
plot_paths = []
for name, figure in figures.items():
    plot_paths.append(os.path.join(args.output_dir, name))
    figure.savefig(plot_paths[-1])
    print(f"Plot: {plot_paths[-1]}")

# %% active="ipynb"
# from IPython.display import display
# display(*figures.values())

# %%
model_path = os.path.join(args.output_dir, "minigpt.keras")
gpt.save(model_path)
print(f"Saved {model_path} (load it with keras.models.load_model)")
result = {"history": history.history, "seconds": seconds,
          "sample": sample, "paths": [sample_path, model_path] + plot_paths}
