"""Benchmark: latent priors on full MNIST ("ex-post density estimation").

Ghosh et al. (2020, "From variational to deterministic autoencoders",
Table 1) fit a 10-component Gaussian mixture to the latent codes of trained
auto-encoders and sample it: a plain auto-encoder's MNIST FID went from
58.7 (one Gaussian fitted ex post) to 10.7, a VAE's from 19.2 (its N(0, I)
prior) to 17.7. This script measures the same direction with the zoo:

- `vae` (`VAE(latent_dim=16)`) and `ae` (`AutoEncoder(latent_dim=16)`),
  each trained on the 60,000 MNIST training digits for `--budget-minutes`
  (training stops after the batch that uses it up);
- then `fit_latent_prior` on the codes of all training digits with one
  Gaussian (`gaussian`, full covariance) and with `--components` (10) of
  them (`gmm`), timed (`prior_fit_s`);
- `--num-samples` samples per prior (the VAE also from its own `normal`
  prior) scored with `keras_genzoo.metrics` against the 10,000 test digits:
  Fréchet and kernel distances on the shipped MNIST classifier's features
  (not Inception FIDs: compare the direction, not the values, with the
  paper), mode coverage and the classifier's mean confidence.

Prints one JSON line per model, prior and backend, plus a `real` row (training
digits against test digits: the floor of the metrics).

    python benchmarks/latent_prior_mnist.py                      # 3 backends
    python benchmarks/latent_prior_mnist.py --backends torch --budget-minutes 3
    python benchmarks/latent_prior_mnist.py --smoke --backends jax   # seconds

`--mnist-dir` is a folder of MNIST idx files (default `../shared/data/mnist`
next to the repository); `--smoke` uses the package's embedded digits and a
few seconds of training. Each backend runs in its own subprocess;
`--in-process` runs on the current process's backend (tests). Figures are
measurements on the machine at hand, not test thresholds.
"""

import argparse
import gc
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _backends import main_per_backend, positive  # noqa: E402  (a sibling module)

BENCHMARK = "latent_prior_mnist"
MODELS = ("vae", "ae")
DEFAULT_MNIST_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
    "shared", "data", "mnist")
MAX_EPOCHS = 100_000  # the time budget stops training long before


def load_data(args):
    """`(train_images, test_images, source)` as uint8 numpy."""
    from keras_genzoo import datasets

    if datasets.is_mnist_idx_folder(args.mnist_dir) and not args.smoke:
        train, _ = datasets.load_mnist_idx(args.mnist_dir, "train")
        test, _ = datasets.load_mnist_idx(args.mnist_dir, "t10k")
        return train, test, "mnist_idx"
    if not args.smoke:
        raise FileNotFoundError(
            f"No MNIST idx files in {args.mnist_dir}: pass --mnist-dir.")
    images, _ = datasets.load_embedded_mnist()
    return images[:1000], images[8000:8200], "embedded_mnist"


def make_model(name, args):
    from keras_genzoo import VAE, AutoEncoder

    filters = (8,) if args.smoke else (32, 64)
    cls = VAE if name == "vae" else AutoEncoder
    return cls(latent_dim=args.latent_dim, filters=filters, seed=0)


def budget_callback(budget_s, num_images, batch_size, state):
    """Stops `fit` after the batch that uses `budget_s` up; counts images."""
    import keras

    class Budget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            state["start"] = time.perf_counter()
            state["images"] = 0

        def on_train_batch_end(self, batch, logs=None):
            state["images"] += min(batch_size,
                                   num_images - batch * batch_size)
            if time.perf_counter() - state["start"] >= budget_s:
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            state["train_s"] = time.perf_counter() - state["start"]

    return Budget()


def make_scorer(test_images, args):
    from keras_genzoo.metrics import mnist_classifier, scores_from_features

    import numpy as np

    classifier = mnist_classifier()
    real_features = classifier.features(test_images, 500)

    def score(images):
        features = classifier.features(images, 500)
        probabilities = np.asarray(classifier.predict(
            images, batch_size=500, verbose=0), "float64")
        scores = scores_from_features(
            real_features, features, probabilities,
            subset_size=min(1000, len(images)))
        return {
            "fd": round(float(scores["fd"]), 2),
            "kid": round(float(scores["kid"]), 4),
            "classes_covered": int(scores["classes_covered"]),
            "kl_to_uniform": round(float(scores["kl_to_uniform"]), 4),
            "confidence": round(float(scores["confidence"]), 4),
        }

    return score


def run_model(name, args, data, score, head):
    import keras

    from keras_genzoo.callbacks import save_image_grid

    train_images, _, _ = data
    keras.utils.set_random_seed(0)
    rows, state = [], {}
    model = make_model(name, args)
    budget = budget_callback(60 * args.budget_minutes, len(train_images),
                             args.batch_size, state)
    model.fit(train_images, batch_size=args.batch_size, epochs=MAX_EPOCHS,
              shuffle=True, callbacks=[budget], verbose=0)
    trained = dict(head, model=name, latent_dim=args.latent_dim,
                   train_s=round(state["train_s"], 1),
                   epochs=round(state["images"] / len(train_images), 3),
                   images_per_s=round(state["images"] / state["train_s"], 1),
                   params=int(model.count_params()))
    priors = (["normal"] if name == "vae" else []) + ["gaussian", "gmm"]
    for prior in priors:
        row = dict(trained, prior=prior)
        try:
            if prior == "normal":
                samples = model.generate(args.num_samples, seed=1)
            else:
                components = 1 if prior == "gaussian" else args.components
                begin = time.perf_counter()
                model.fit_latent_prior(train_images,
                                       n_components=components,
                                       covariance_type="full", seed=0)
                row["prior_fit_s"] = round(time.perf_counter() - begin, 2)
                row["n_components"] = components
                row["prior_iterations"] = model.latent_prior.n_iter_
                row["prior_log_likelihood"] = round(
                    model.latent_prior.lower_bound_, 3)
                if name == "vae":
                    samples = model.generate(args.num_samples, seed=1,
                                             prior="gmm")
                else:
                    samples = model.generate(args.num_samples, seed=1)
            row.update(score(samples))
            if args.grid_dir:
                path = os.path.join(
                    args.grid_dir, f"{name}_{prior}_{head['backend']}.png")
                row["grid"] = save_image_grid(samples[:100], path,
                                              columns=10)
        except Exception as error:  # report it, go on
            row["error"] = f"{type(error).__name__}: {error}"[:1000]
        rows.append(row)
        print(json.dumps(row), flush=True)
    del model
    gc.collect()
    return rows


def run(args):
    import keras

    train_images, test_images, source = load_data(args)
    head = {"benchmark": BENCHMARK, "backend": keras.backend.backend(),
            "keras": keras.__version__, "data": source,
            "budget_s": round(60 * args.budget_minutes, 1),
            "num_samples": args.num_samples, "cpu_count": os.cpu_count()}
    score = make_scorer(test_images, args)
    rows = [dict(head, model="real", prior=None,
                 **score(train_images[:args.num_samples]))]
    print(json.dumps(rows[0]), flush=True)
    for name in args.models:
        try:
            rows.extend(run_model(name, args,
                                  (train_images, test_images, source),
                                  score, head))
        except Exception as error:
            row = dict(head, model=name,
                       error=f"{type(error).__name__}: {error}"[:1000])
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--budget-minutes", type=positive(float), default=None,
                        help="training time per model (default 5; --smoke: "
                             "0.05)")
    parser.add_argument("--num-samples", type=positive(int), default=None,
                        help="samples scored per prior (default 10000; "
                             "--smoke: 50)")
    parser.add_argument("--components", type=positive(int), default=10)
    parser.add_argument("--latent-dim", type=positive(int), default=16)
    parser.add_argument("--batch-size", type=positive(int), default=128)
    parser.add_argument("--mnist-dir", default=DEFAULT_MNIST_DIR)
    parser.add_argument("--grid-dir", default=None,
                        help="write a 10x10 grid of each prior's samples")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--in-process", action="store_true")
    args = parser.parse_args(argv)
    if args.budget_minutes is None:
        args.budget_minutes = 0.05 if args.smoke else 5.0
    if args.num_samples is None:
        args.num_samples = 50 if args.smoke else 10_000
    if args.smoke:
        args.components = min(args.components, 3)
        args.latent_dim = min(args.latent_dim, 4)
    args.models = [m for m in args.models.split(",") if m]
    for name in args.models:
        if name not in MODELS:
            parser.error(f"unknown model {name!r}; choose from vae,ae")
    return args


def main(argv=None):
    return main_per_backend(__file__, argv, parse_args, run, BENCHMARK)


if __name__ == "__main__":
    main()
