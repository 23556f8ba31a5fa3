"""Benchmark: `GaussianMixture` (EM in keras.ops) against scikit-learn.

The two cases of PyCave's published table (where scikit-learn took 18.8 s
and 1.2 s on a 4-core Xeon):

- `diag`: 100,000 x 32 points, 16 components, diagonal covariances;
- `full`: 10,000 x 8 points, 4 components, full covariances.

The points are drawn from a random mixture of that many Gaussians (seeded).
Both estimators run the same number of EM iterations (`--iterations`, 100
by default, `tol=0` so that neither stops early) from their own k-means
initialisation (`n_init=1`). Prints one JSON line per estimator, backend and
case: `fit_s` (a whole `fit`, initialisation included; for ours the second
fit, the first one compiles: `first_fit_s`), `iterations`, `s_per_iteration`
(`fit_s` over iterations, initialisation included), `mean_log_likelihood`
on the data, and machine facts. `speedup` in our rows is scikit-learn's
`fit_s` over ours on the same machine and case.

    python benchmarks/gmm_speed.py                       # 3 backends
    python benchmarks/gmm_speed.py --backends jax --cases diag
    python benchmarks/gmm_speed.py --smoke --backends torch   # seconds

Each backend runs in its own subprocess (the backend is fixed at import);
`--in-process` runs on the current process's backend only (tests).
scikit-learn runs in the parent process (no Keras backend needed); without
it the rows of ours come without `speedup`.
"""

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _backends import run_per_backend, positive  # noqa: E402  (a sibling module)

BENCHMARK = "gmm_speed"
CASES = {
    "diag": {"n_samples": 100_000, "n_features": 32, "n_components": 16,
             "covariance_type": "diag"},
    "full": {"n_samples": 10_000, "n_features": 8, "n_components": 4,
             "covariance_type": "full"},
}
SMOKE_CASES = {
    "diag": {"n_samples": 2_000, "n_features": 8, "n_components": 4,
             "covariance_type": "diag"},
    "full": {"n_samples": 1_000, "n_features": 4, "n_components": 3,
             "covariance_type": "full"},
}


def make_data(case, seed=0):
    """Points from a random mixture: means N(0, 3^2), per-component
    scales in [0.5, 1.5], random mixing weights."""
    import numpy as np

    rng = np.random.default_rng(seed)
    k, d, n = case["n_components"], case["n_features"], case["n_samples"]
    means = rng.normal(0.0, 3.0, (k, d))
    scales = rng.uniform(0.5, 1.5, (k, d))
    weights = rng.dirichlet(np.full(k, 5.0))
    components = rng.choice(k, size=n, p=weights)
    x = means[components] + rng.standard_normal((n, d)) * scales[components]
    return x.astype("float32")


def machine_facts():
    facts = {"cpu_count": os.cpu_count(),
             "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    facts["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        facts["load_avg"] = round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        pass
    return facts


def run_ours(args, cases):
    """Our rows, on the current process's Keras backend."""
    import keras

    from keras_genzoo import GaussianMixture

    backend = keras.backend.backend()
    device = "CPU"
    if backend == "jax":
        import jax

        device = str(jax.devices()[0].device_kind)
        version = jax.__version__
    elif backend == "torch":
        import torch

        version = torch.__version__
        if torch.cuda.is_available():
            device = torch.cuda.get_device_name(0)
    else:
        import tensorflow as tf

        version = tf.__version__
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            device = gpus[0].name
    rows = []
    for name in args.cases:
        case = cases[name]
        x = make_data(case)

        def fit():
            begin = time.perf_counter()
            gmm = GaussianMixture(
                case["n_components"], covariance_type=case["covariance_type"],
                tol=0.0, max_iter=args.iterations, n_init=1, seed=0)
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                gmm.fit(x)
            return gmm, time.perf_counter() - begin

        _, first = fit()
        gmm, seconds = fit()
        rows.append({
            "benchmark": BENCHMARK, "estimator": "keras_genzoo",
            "backend": backend, "backend_version": version,
            "keras": keras.__version__, "device": device, "case": name,
            **case, "iterations": gmm.n_iter_,
            "first_fit_s": round(first, 3), "fit_s": round(seconds, 3),
            "s_per_iteration": round(seconds / gmm.n_iter_, 5),
            "mean_log_likelihood": round(gmm.score(x), 4),
            **machine_facts(),
        })
    return rows


def run_sklearn(args, cases):
    try:
        import sklearn
        from sklearn.mixture import GaussianMixture
    except ImportError:
        return []
    import warnings

    rows = []
    for name in args.cases:
        case = cases[name]
        x = make_data(case).astype("float64")
        begin = time.perf_counter()
        gmm = GaussianMixture(
            case["n_components"], covariance_type=case["covariance_type"],
            tol=0.0, max_iter=args.iterations, n_init=1, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gmm.fit(x)
        seconds = time.perf_counter() - begin
        rows.append({
            "benchmark": BENCHMARK, "estimator": "scikit-learn",
            "backend": "numpy", "backend_version": sklearn.__version__,
            "device": "CPU", "case": name, **case,
            "iterations": int(gmm.n_iter_), "fit_s": round(seconds, 3),
            "s_per_iteration": round(seconds / gmm.n_iter_, 5),
            "mean_log_likelihood": round(float(gmm.score(x)), 4),
            **machine_facts(),
        })
    return rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--cases", default="diag,full",
                        help="comma-separated, from diag,full")
    parser.add_argument("--iterations", type=positive(int), default=None,
                        help="EM iterations of every fit (default 100; "
                             "--smoke: 5)")
    parser.add_argument("--smoke", action="store_true",
                        help="small data, 5 iterations (what the tests run)")
    parser.add_argument("--in-process", action="store_true",
                        help="run ours on this process's Keras backend "
                             "only")
    parser.add_argument("--skip-sklearn", action="store_true")
    args = parser.parse_args(argv)
    args.cases = [c for c in args.cases.split(",") if c]
    for name in args.cases:
        if name not in CASES:
            parser.error(f"unknown case {name!r}; choose from diag,full")
    if args.iterations is None:
        args.iterations = 5 if args.smoke else 100
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    return args


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    cases = SMOKE_CASES if args.smoke else CASES
    rows = []
    if args.in_process:
        rows.extend(run_ours(args, cases))
    else:
        rows.extend(run_per_backend(__file__, argv + ["--skip-sklearn"],
                                    args.backends, BENCHMARK, echo=False))
    if not args.skip_sklearn:
        reference = run_sklearn(args, cases)
        seconds = {row["case"]: row["fit_s"] for row in reference}
        for row in rows:
            if row.get("case") in seconds and row.get("fit_s"):
                row["speedup"] = round(seconds[row["case"]] / row["fit_s"], 2)
        rows.extend(reference)
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


if __name__ == "__main__":
    main()
