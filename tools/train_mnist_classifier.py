"""Trains the MNIST classifier that `keras_genzoo.metrics` ships.

The classifier gives the feature space of the Fréchet and kernel distances
and the class probabilities of `mode_coverage`. It is trained on the 60,000
MNIST *training* images only (the package's embedded data, which the models
train on by default, is the 10,000-image test split: the classifier never
sees it) and scored once on those 10,000 test images.

    KERAS_BACKEND=tensorflow python tools/train_mnist_classifier.py \
        --mnist-dir ../shared/data/mnist

It writes `keras_genzoo/data/mnist_classifier.keras` (architecture and
weights, no optimizer state; loads with `safe_mode=True` on every backend)
and prints one JSON line with the test accuracy, the size and the time.
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def classifier_architecture():
    """LeNet-style CNN, ~180k parameters (~0.7 MB of float32 weights).

    Input: float images (N, 28, 28, 1) in [0, 1]. The layer named
    "features" (128 ReLU units) is the penultimate layer whose activations
    the distances use; "probabilities" is the softmax over the 10 digits.
    """
    import keras
    from keras import layers

    inputs = keras.Input((28, 28, 1), name="images")
    x = inputs
    for filters in (32, 64):  # 28 -> 14 -> 7
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)  # 7 -> 3
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3)(x)
    features = layers.Dense(128, activation="relu", name="features")(x)
    x = layers.Dropout(0.3)(features)
    outputs = layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mnist_classifier")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-dir",
                        default=os.path.join(ROOT, "..", "shared", "data",
                                             "mnist"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--output", default=os.path.join(
        ROOT, "keras_genzoo", "data", "mnist_classifier.keras"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import keras
    import numpy as np

    from keras_genzoo.datasets import load_mnist_idx

    keras.utils.set_random_seed(args.seed)
    x_train, y_train = load_mnist_idx(args.mnist_dir, "train")
    x_test, y_test = load_mnist_idx(args.mnist_dir, "t10k")
    x_train = x_train.astype("float32") / 255.0
    x_test = x_test.astype("float32") / 255.0

    model = classifier_architecture()
    # Small shifts and rotations, applied only while training (they are not
    # part of the saved model).
    augment = keras.Sequential([
        keras.layers.RandomTranslation(0.08, 0.08, fill_mode="constant",
                                       seed=args.seed),
        keras.layers.RandomRotation(0.03, fill_mode="constant",
                                    seed=args.seed),
    ])
    trainer = keras.Sequential([keras.Input((28, 28, 1)), augment, model])
    steps = args.epochs * int(np.ceil(len(x_train) / args.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, steps, alpha=0.02)
    trainer.compile(optimizer=keras.optimizers.Adam(schedule),
                    loss="sparse_categorical_crossentropy",
                    metrics=["accuracy"])
    start = time.perf_counter()
    trainer.fit(x_train, y_train, batch_size=args.batch_size,
                epochs=args.epochs, verbose=2)
    seconds = time.perf_counter() - start

    probabilities = model.predict(x_test, batch_size=500, verbose=0)
    accuracy = float(np.mean(probabilities.argmax(-1) == y_test))

    # Save a fresh, uncompiled copy: architecture and weights only.
    shipped = classifier_architecture()
    shipped.set_weights(model.get_weights())
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    shipped.save(args.output)
    print(json.dumps({
        "backend": keras.backend.backend(),
        "train_images": int(len(x_train)),
        "epochs": args.epochs,
        "test_accuracy": round(accuracy, 4),
        "params": int(model.count_params()),
        "file_bytes": os.path.getsize(args.output),
        "train_seconds": round(seconds, 1),
        "output": os.path.relpath(args.output, ROOT),
    }))


if __name__ == "__main__":
    main()
