"""A training script that tests/test_resume.py kills and restarts.

    python tests/resume_worker.py FAMILIES WORKDIR [--kill-at EPOCH BATCH]
        [--reference]

Trains a tiny seeded model of each family of FAMILIES (comma-separated),
one after the other, for `EPOCHS` epochs with
`keras.callbacks.BackupAndRestore(WORKDIR/FAMILY/backup)`, as a user's
script would. With `--kill-at`, training stops after that batch of that
epoch (0-based), as a crash or a disconnected Colab session would: the
last family's process sends itself SIGKILL there; every family before it
raises `Interrupted` there instead, which leaves its folder as the kill
would (nothing is written after that batch) and lets the process go on to
the next family (one process for all: starting one costs 4-8 s of
imports). Run again without it, the same script resumes every family.
Every training start, epoch end and training end appends the training
state to WORKDIR/FAMILY/records.jsonl: each optimizer's step count and a
digest of its variables (moments), the model's seed-generator states, a
digest of the weights and the logs. `--reference` also trains an
uninterrupted twin of each family in the same process (in
WORKDIR/FAMILY/reference) and records its final state, so that the test
can compare the resumed run with it. A family that fails otherwise writes
its traceback to WORKDIR/FAMILY/error.txt (the process then exits with
1), and the others still run.
"""

import argparse
import hashlib
import json
import os
import signal
import sys
import traceback

EPOCHS = 3


def _digest(arrays):
    h = hashlib.sha256()
    for array in arrays:
        h.update(array.tobytes())
    return h.hexdigest()[:16]


def training_state(model):
    """What must survive a crash, as JSON-able values."""
    import keras
    import numpy as np

    def values(variables):
        return [np.asarray(keras.ops.convert_to_numpy(v)) for v in variables]

    optimizers = {}
    for name in ("optimizer", "d_optimizer", "g_optimizer"):
        optimizer = getattr(model, name, None)
        if optimizer is None or name == "optimizer" and hasattr(
                optimizer, "d_optimizer"):
            continue  # a GAN's `optimizer` wraps the two below
        optimizers[name] = {
            "iterations": int(keras.ops.convert_to_numpy(
                optimizer.iterations)),
            "variables": _digest(values(optimizer.variables)),
        }
    seeds = [v for v in model.non_trainable_variables
             if "seed_generator_state" in v.path]
    return {
        "optimizers": optimizers,
        "seed_states": [a.tolist() for a in values(seeds)],
        "weights": _digest(values(model.weights)),
    }


class Interrupted(Exception):
    """Stops a family's training where the kill would (see the module)."""


class Recorder:
    """Appends the training state to a JSON-lines file."""

    def __init__(self, path):
        self.path = path

    def write(self, **record):
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())


def make_family(family):
    """`(model, x, y, fit_kwargs)`: a tiny seeded model and its data."""
    from keras_genzoo import (GAN, VAE, WGANGP, AutoEncoder, BigramLM,
                              DiffusionModel, MiniGPT, datasets)

    if family in ("bigram", "minigpt"):
        text = datasets.load_text("tiny_shakespeare")[:2000]
        kwargs = dict(sequence_length=16, seed=0)
        if family == "minigpt":
            model = MiniGPT.from_text(text, num_layers=1, num_heads=2,
                                      hidden_dim=16, **kwargs)
        else:
            model = BigramLM.from_text(text, **kwargs)
        # a reshuffling tf.data pipeline starts its order sequence afresh
        # in a new process (no checkpoint holds an iterator): fixed order
        # here, so that the resumed run can match the uninterrupted one
        train, _ = model.make_datasets(text, batch_size=32, shuffle=False)
        return model, train, None, {}
    images, labels = datasets.load_embedded_mnist()
    images, labels = images[:96], labels[:96]
    gan = dict(latent_dim=8, generator_filters=(8,),
               discriminator_filters=(8,), seed=0)
    model = {
        "autoencoder": lambda: AutoEncoder(latent_dim=4, filters=(8,),
                                           noise_stddev=0.1, seed=0),
        "vae": lambda: VAE(latent_dim=4, filters=(8,), seed=0),
        "conditional_vae": lambda: VAE(latent_dim=4, filters=(8,),
                                       num_classes=10, seed=0),
        "gan": lambda: GAN(**gan),
        "conditional_gan": lambda: GAN(num_classes=10, **gan),
        "wgan_gp": lambda: WGANGP(d_steps=2, **gan),
        "diffusion": lambda: DiffusionModel(widths=(8,), seed=0),
    }[family]()
    y = labels if getattr(model, "num_classes", None) else None
    model.build((None, 28, 28, 1))
    return model, images, y, {"batch_size": 32, "shuffle": False}


def train(family, workdir, kill_at=None, recorder=None, kill=True):
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model, x, y, fit_kwargs = make_family(family)
    model.compile()
    recorder = recorder or Recorder(os.path.join(workdir, "records.jsonl"))

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            # after BackupAndRestore's on_train_begin (it comes first)
            recorder.write(event="begin",
                           initial_epoch=int(self.model._initial_epoch or 0),
                           **training_state(self.model))

        def on_epoch_end(self, epoch, logs=None):
            recorder.write(event="epoch_end", epoch=epoch,
                           logs={k: float(v) for k, v in logs.items()},
                           **training_state(self.model))

        def on_train_batch_end(self, batch, logs=None):
            if kill_at is not None and (self.epoch, batch) == kill_at:
                recorder.write(event="kill", epoch=self.epoch, batch=batch)
                if kill:
                    os.kill(os.getpid(), signal.SIGKILL)
                raise Interrupted(f"{family}: stopped as if killed")

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

    backup = keras.callbacks.BackupAndRestore(
        os.path.join(workdir, "backup"), delete_checkpoint=False)
    history = model.fit(x, y, epochs=EPOCHS, verbose=0,
                        callbacks=[backup, Record()], **fit_kwargs)
    recorder.write(event="end", epochs_run=len(history.epoch),
                   **training_state(model))
    np.savez(os.path.join(workdir, "final_weights.npz"),
             *[keras.ops.convert_to_numpy(w) for w in model.weights])
    return model


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("families", help="comma-separated")
    parser.add_argument("workdir")
    parser.add_argument("--kill-at", nargs=2, type=int, default=None)
    parser.add_argument("--reference", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    kill_at = None if args.kill_at is None else tuple(args.kill_at)
    families = args.families.split(",")
    failed = False
    for i, family in enumerate(families):
        workdir = os.path.join(args.workdir, family)
        os.makedirs(workdir, exist_ok=True)
        try:
            try:
                train(family, workdir, kill_at,
                      kill=i == len(families) - 1)
            except Interrupted:
                continue
            if args.reference:
                reference = os.path.join(workdir, "reference")
                os.makedirs(reference, exist_ok=True)
                train(family, reference)
        except Exception:
            failed = True
            run = "killed" if kill_at is not None else "resumed"
            with open(os.path.join(workdir, "error.txt"), "a") as f:
                f.write(f"in the {run} run:\n{traceback.format_exc()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
