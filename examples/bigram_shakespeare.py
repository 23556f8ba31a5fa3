"""
# A bigram language model on Tiny Shakespeare, on any Keras backend

The first model of "Let's build GPT": every character predicts the next one
through a learned table of logits. Train it on any text, watch the loss
(and bits per character) fall, and sample from it.

Run it as a script (`python examples/bigram_shakespeare.py`), with your own
text (`--text my_book.txt`), or on Colab:

    !pip install keras-genzoo          # or: pip install -e . in a clone
    import os; os.environ["KERAS_BACKEND"] = "torch"   # or tensorflow, jax
    !python bigram_shakespeare.py

`--smoke` trains on the first 50,000 characters for one epoch (what the
tests run).
"""

import argparse
import os
import time

import keras

from keras_genzoo import BigramLM, datasets


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--text", default="tiny_shakespeare",
                        help="tiny_shakespeare (embedded) or a UTF-8 file")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output-dir", default="outputs/bigram")
    parser.add_argument("--smoke", action="store_true")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(0)
    print(f"Keras {keras.__version__}, backend: {keras.backend.backend()}")

    # ## The text and its vocabulary
    # The vocabulary is every distinct character of the text; it is saved
    # inside the model file.
    text = datasets.load_text(args.text)
    if args.smoke:
        text = text[:50_000]
    model = BigramLM.from_text(text, sequence_length=64)
    print(f"{len(text):,} characters, vocabulary of {model.vocabulary_size}")

    # ## Training: first 90 % of the text trains, the last 10 % validates.
    train_ds, val_ds = model.make_datasets(text, batch_size=args.batch_size)
    epochs = 1 if args.smoke else args.epochs
    start = time.time()
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs,
                        verbose=2)
    seconds = time.time() - start
    print(f"Trained in {seconds:.1f} s: validation loss "
          f"{history.history['val_loss'][-1]:.4f} nats/char, "
          f"{history.history['val_bits_per_char'][-1]:.3f} bits/char")

    # ## Sampling
    sample = model.generate("ROMEO:", max_new_tokens=300, temperature=0.8,
                            top_k=40, seed=0)
    print(sample)
    os.makedirs(args.output_dir, exist_ok=True)
    sample_path = os.path.join(args.output_dir, "bigram_sample.txt")
    with open(sample_path, "w", encoding="utf-8") as f:
        f.write(sample)
    model_path = os.path.join(args.output_dir, "bigram.keras")
    model.save(model_path)
    return {"history": history.history, "seconds": seconds,
            "sample": sample, "paths": [sample_path, model_path]}


if __name__ == "__main__":
    main()
