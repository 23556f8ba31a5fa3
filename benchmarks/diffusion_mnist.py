"""Benchmark: the diffusion model on full MNIST next to the DCGAN, same budget.

Trains each model with `fit` on the shuffled 60,000 MNIST training digits
until a wall-clock budget is spent (`--budget-minutes`, 15 by default;
training stops after the batch that uses it up, mid-epoch), then samples
`--num-samples` digits and scores them with `keras_genzoo.metrics` (Fréchet
and kernel distances on the shipped MNIST classifier's features against
`--reference-images` training digits, mode coverage, the classifier's mean
confidence). Prints one JSON line per row:

- `diffusion` (`DiffusionModel()`) and `cond_diffusion`
  (`DiffusionModel(num_classes=10)`, sampled with labels `arange(n) % 10`):
  one row per DDIM step count (`--steps`, 10, 25 and 50 by default) of the
  same trained model; the conditional model at each `--guidance` scale for
  the step counts of `--guidance-steps` (the middle one by default, the
  first scale at the others). Guidance 1 is plain conditional sampling
  (`guidance=None`: one network pass per step, the same images as 1.0).
- `dcgan` (`GAN()`, the zoo's DCGAN): one row.
- `real_test`: `--num-samples` MNIST test digits scored like the samples,
  the floor of the metrics.

Each row carries the training figures of its model (`train_s` from the
start of `fit`, compilation included; `train_steps`; `epochs`, fractional;
`epoch_s` and `steady_images_per_s`: the steady state, leaving out the
batches of a shape seen for the first time, which hold the tracing or
compilation; `images_per_s` over the whole budget; `first_epoch_s`;
`final_logs`, the last epoch's running means), its sampling figures
(`sample_s` without compilation, `sample_images_per_s`, `sample_warmup_s`:
a one-step pass that compiles the same batch shapes), its scores (`fd`,
`kid`, `classes_covered`, `kl_to_uniform`, `confidence`; `label_accuracy`
for the conditional model: the share of samples the classifier reads as
their label) and `target_met`: mean confidence >= 0.9 and all 10 classes
covered. Scoring and sampling are not charged to the budget. Machine facts
(`backend`, `backend_version`, `keras`, `device`: "CPU" or the GPU's name,
`cpu`, `cpu_count`, `torch_threads`, `dtype_policy`) tell runs on other
machines apart; `load_avg` (before training) and `load_avg_end` (after the
row) are the 1-minute load averages: CPU figures taken next to other busy
processes are not comparable (PyTorch's threads suffer most).

    python benchmarks/diffusion_mnist.py                  # 3 backends, 15 min
    python benchmarks/diffusion_mnist.py --backends jax --models diffusion \\
        --budget-minutes 5 --steps 10,50 --grid-dir outputs/diffusion_grids
    python benchmarks/diffusion_mnist.py --smoke --backends torch  # ~1 min

`--mnist-dir` is a folder of MNIST idx files (train-images-idx3-ubyte.gz,
...; default `../shared/data/mnist` next to the repository); `--smoke` falls
back to the package's embedded 10,000 digits when it is missing. Each
backend runs in its own subprocess (the backend is fixed at import);
`--in-process` runs on the backend of the current process instead (tests).
TensorFlow is imported only by the tensorflow backend's run. `--grid-dir`
writes per model and backend a grid of samples (10 columns: one digit per
column for the conditional model) and, for the diffusion models, the
reverse process: one row per sample from pure noise to digit
(`*_reverse.png`), its frames and an animated GIF (`*_reverse.gif`).
`--learning-rate` trains the diffusion models with Adam at that rate (the
model's gradient-norm clip of 1 kept; default: the model's Adam(2e-3)).
`--mixed-precision mixed_bfloat16` trains and samples under that dtype
policy (the scoring classifier stays float32). 60,000 digits in batches of
128 leave a last batch of 96: on JAX and TensorFlow its first occurrence
compiles the training step again, inside the budget (left out of the
steady state). Figures are measurements on the machine at hand, not test
thresholds.
"""

import argparse
import gc
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _backends import main_per_backend, positive  # noqa: E402  (a sibling module)

BENCHMARK = "diffusion_mnist"
MODELS = ("diffusion", "cond_diffusion", "dcgan")
DEFAULT_MNIST_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
    "shared", "data", "mnist")
MAX_EPOCHS = 100_000  # the time budget stops training long before
TARGET_CONFIDENCE = 0.9
TARGET_CLASSES = 10
# --smoke: a few hundred digits, seconds of budget, few samples and steps.
SMOKE = {
    "budget_minutes": 0.05,
    "train_images": 256,
    "batch_size": 32,
    "num_samples": 8,  # the reverse process's 8: no extra compilation
    "reference_images": 200,
    "steps": "1,2",
    "widths": "8",  # one level: the quickest training step to compile
}
DEFAULTS = {
    "budget_minutes": 15.0,
    "train_images": None,  # all 60,000
    "batch_size": 128,
    "num_samples": 1000,
    "reference_images": 10_000,
    "steps": "10,25,50",
    "widths": None,  # the model's default
}


# ---------------------------------------------------------------- machine
def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts():
    """Backend, versions and device of this process, for every row."""
    import keras

    backend = keras.backend.backend()
    version, gpu, threads = None, None, None
    if backend == "jax":
        import jax

        version = jax.__version__
        gpus = [d for d in jax.devices()
                if d.platform in ("gpu", "cuda", "rocm")]
        gpu = gpus[0].device_kind if gpus else None
    elif backend == "torch":
        import torch

        version = torch.__version__
        threads = torch.get_num_threads()
        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    elif backend == "tensorflow":
        import importlib

        tf = importlib.import_module("tensorflow")  # only on this backend
        version = tf.__version__
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            gpu = details.get("device_name", gpus[0].name)
    return {
        "backend": backend,
        "backend_version": version,
        "keras": keras.__version__,
        "device": gpu or "CPU",
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "python": platform.python_version(),
    }


def load_average():
    """The 1-minute load average (other processes slow CPU runs down)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


# ------------------------------------------------------------------- data
def load_data(args):
    """`(train_images, train_labels, test_images, source)` as numpy (all
    the training digits: `run` takes `--train-images` of them)."""
    from keras_genzoo import datasets

    if datasets.is_mnist_idx_folder(args.mnist_dir):
        train_images, train_labels = datasets.load_mnist_idx(
            args.mnist_dir, "train")
        test_images, _ = datasets.load_mnist_idx(args.mnist_dir, "t10k")
        source = "mnist_idx"
    elif args.smoke:
        images, labels = datasets.load_embedded_mnist()
        train_images, train_labels = images[:8000], labels[:8000]
        test_images = images[8000:]
        source = "embedded_mnist"  # no full MNIST here: smoke only
    else:
        raise FileNotFoundError(
            f"No MNIST idx files (train-images-idx3-ubyte[.gz], ...) in "
            f"{args.mnist_dir}: pass --mnist-dir.")
    return train_images, train_labels.astype("int32"), test_images, source


# ----------------------------------------------------------------- models
def make_model(name, args):
    from keras_genzoo import GAN, DiffusionModel

    widths = {} if not args.widths else {"widths": args.widths}
    if name == "diffusion":
        return DiffusionModel(seed=0, **widths)
    if name == "cond_diffusion":
        return DiffusionModel(num_classes=10, seed=0, **widths)
    if name == "dcgan":
        return GAN(seed=0)
    raise ValueError(f"Unknown model {name!r}; choose from {MODELS}.")


def compile_model(model, name, args):
    """The model's own default optimizer; for the diffusion models
    `--learning-rate` replaces its rate (the gradient clip and everything
    else stay the model's). The DCGAN keeps its two Adams."""
    if name == "dcgan":
        return
    optimizer = model.default_optimizer()
    if args.learning_rate:
        optimizer.learning_rate = args.learning_rate
    model.compile(optimizer=optimizer)


def learning_rate(model):
    """The rate the model trains at, as a float."""
    import keras

    rate = model.optimizer.learning_rate
    return round(float(keras.ops.convert_to_numpy(rate)), 8)


def budget_callback(budget_s, num_images, batch_size):
    """Stops `fit` after the batch that uses `budget_s` up, and times it.

    Every batch's seconds run from the end of the one before (the first's
    from the start of `fit`). A batch of a size not seen before holds the
    tracing / compilation for that shape (the first batch; on JAX and
    TensorFlow also the last, partial batch of the first epoch), so the
    steady state leaves those out.
    """
    import keras

    class Budget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start = self.last = time.perf_counter()
            self.images = self.batches = self.steady_images = 0
            self.steady_s = self.warmup_s = 0.0
            self.sizes = set()
            self.epoch_times = []
            self.logs = None
            self.train_s = None

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_start = time.perf_counter()
            self.epoch_images = 0

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            size = min(batch_size, num_images - batch * batch_size)
            seconds, self.last = now - self.last, now
            if size in self.sizes:
                self.steady_s += seconds
                self.steady_images += size
            else:
                self.sizes.add(size)
                self.warmup_s += seconds
            self.images += size
            self.epoch_images += size
            self.batches += 1
            self.logs = logs
            if now - self.start >= budget_s:
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            if self.epoch_images >= num_images:
                self.epoch_times.append(time.perf_counter()
                                        - self.epoch_start)

        def on_train_end(self, logs=None):
            self.train_s = time.perf_counter() - self.start

    return Budget()


def train(model, name, args, train_images, train_labels):
    """Fits `model` for the budget; returns the row's training figures."""
    import numpy as np
    import keras

    labels = train_labels if name == "cond_diffusion" else None
    budget = budget_callback(60 * args.budget_minutes, len(train_images),
                             args.batch_size)
    model.fit(train_images, labels, batch_size=args.batch_size,
              epochs=MAX_EPOCHS, shuffle=True, callbacks=[budget], verbose=0)
    steady = (budget.steady_images / budget.steady_s
              if budget.steady_images and budget.steady_s > 0 else None)
    logs = {}
    for key, value in (budget.logs or {}).items():
        try:
            logs[key] = round(float(np.asarray(
                keras.ops.convert_to_numpy(value))), 4)
        except (TypeError, ValueError):
            pass
    return {
        "train_s": round(budget.train_s, 1),
        "train_steps": budget.batches,
        "epochs": round(budget.images / len(train_images), 3),
        "images_per_s": round(budget.images / budget.train_s, 1),
        "steady_images_per_s": None if steady is None else round(steady, 1),
        "epoch_s": (None if steady is None
                    else round(len(train_images) / steady, 1)),
        "first_epoch_s": (round(budget.epoch_times[0], 1)
                          if budget.epoch_times else None),
        "epoch_times": [round(s, 1) for s in budget.epoch_times],
        "warmup_s": round(budget.warmup_s, 1),
        "final_logs": logs,
        "params": int(model.count_params()),
    }


# ---------------------------------------------------------------- scoring
def make_scorer(reference_images, batch_size=500):
    """`score(images, labels=None)`: the row's quality figures; the
    reference digits' features are computed once."""
    import numpy as np

    from keras_genzoo.metrics import mnist_classifier, scores_from_features

    classifier = mnist_classifier()
    real_features = classifier.features(reference_images, batch_size)

    def score(images, labels=None):
        features = classifier.features(images, batch_size)
        probabilities = np.asarray(classifier.predict(
            images, batch_size=batch_size, verbose=0), "float64")
        scores = scores_from_features(
            real_features, features, probabilities,
            subset_size=min(1000, len(images)))
        row = {
            "fd": round(float(scores["fd"]), 2),
            "kid": round(float(scores["kid"]), 4),
            "classes_covered": int(scores["classes_covered"]),
            "kl_to_uniform": round(float(scores["kl_to_uniform"]), 4),
            "confidence": round(float(scores["confidence"]), 4),
        }
        if labels is not None:
            row["label_accuracy"] = round(float(np.mean(
                probabilities.argmax(-1) == np.asarray(labels))), 4)
        row["target_met"] = bool(
            scores["confidence"] >= TARGET_CONFIDENCE
            and scores["classes_covered"] >= TARGET_CLASSES)
        return row

    return score


# --------------------------------------------------------------- sampling
def sampling_settings(name, args):
    """`(ddim_steps, guidance)` of the rows of a model."""
    if name == "dcgan":
        return [(None, None)]
    settings = []
    for steps in args.steps:
        if name != "cond_diffusion":
            settings.append((steps, None))
            continue
        scales = (args.guidance if steps in args.guidance_steps
                  else args.guidance[:1])
        settings.extend((steps, scale) for scale in scales)
    return settings


def sampler(model, name, args):
    """`sample(steps, guidance)` -> `(images, labels, sample_s, warmup_s)`.

    The first call of each compiled setting (unguided, guided) first runs
    a one-step pass over the same batch shapes, timed apart (`warmup_s`;
    `None` on later calls), so `sample_s` holds no compilation."""
    import numpy as np

    compiled = set()
    n = args.num_samples

    def call(steps, guidance, num, labels):
        kwargs = {"batch_size": args.sample_batch_size}
        if name == "dcgan":
            return model.generate(num, seed=1, **kwargs)
        if labels is not None:
            kwargs["labels"] = labels
            if guidance is not None and float(guidance) != 1.0:
                kwargs["guidance"] = float(guidance)
        return model.generate(num, steps=steps, seed=1, verbose=False,
                              **kwargs)

    def sample(steps, guidance):
        labels = (np.arange(n) % 10 if name == "cond_diffusion" else None)
        guided = (name == "cond_diffusion" and guidance is not None
                  and float(guidance) != 1.0)
        warmup_s = None
        if guided not in compiled:
            begin = time.perf_counter()
            call(1 if steps else None, guidance, n, labels)
            warmup_s = time.perf_counter() - begin
            compiled.add(guided)
        begin = time.perf_counter()
        images = call(steps, guidance, n, labels)
        return images, labels, time.perf_counter() - begin, warmup_s

    return sample


def save_figures(model, name, args, backend, samples, steps, guidance):
    """Sample grid; for diffusion models the reverse process as a grid (one
    row per sample, noise to digit), frames and a GIF. Returns the paths."""
    import numpy as np

    from keras_genzoo import plots
    from keras_genzoo.callbacks import save_gif, save_image_grid

    prefix = os.path.join(args.grid_dir, f"{name}_{backend}")
    paths = {"grid": save_image_grid(samples[:100], prefix + "_samples.png",
                                     columns=10)}
    if not hasattr(model, "reverse_process"):
        return paths
    kwargs = {}
    if name == "cond_diffusion":
        kwargs["labels"] = np.arange(8) % 10
        if guidance is not None and float(guidance) != 1.0:
            kwargs["guidance"] = float(guidance)
    frames = model.reverse_process(8, steps=steps, frames=min(10, steps + 1),
                                   seed=1, **kwargs)
    num, count = frames.shape[:2]
    paths["reverse_grid"] = prefix + "_reverse.png"
    plots.plot_reverse_process(frames).savefig(paths["reverse_grid"])
    pngs = [save_image_grid(frames[:, i], os.path.join(
        prefix + "_reverse_frames", f"frame_{i:03d}.png"), columns=num,
        scale=2) for i in range(count)]
    paths["reverse_gif"] = prefix + "_reverse.gif"
    save_gif(pngs, paths["reverse_gif"], frame_seconds=0.3)
    return paths


# -------------------------------------------------------------------- run
def base_row(name, args, facts, source):
    import keras

    return {
        "benchmark": BENCHMARK,
        "model": name,
        **facts,
        "dtype_policy": keras.config.dtype_policy().name,
        "budget_s": round(60 * args.budget_minutes, 1),
        "batch_size": args.batch_size,
        "reference_images": args.reference_images,
        "data": source,
        "smoke": args.smoke,
        "load_avg": load_average(),
    }


def run_model(name, args, facts, data, score):
    """Trains one model for the budget; returns its rows."""
    import keras

    train_images, train_labels, _, source = data
    keras.utils.set_random_seed(0)
    head = base_row(name, args, facts, source)
    head["train_images"] = len(train_images)
    rows, model = [], None
    try:
        model = make_model(name, args)
        compile_model(model, name, args)
        if name != "dcgan":
            head["widths"] = list(model.widths)
            head["learning_rate"] = learning_rate(model)
        head.update(train(model, name, args, train_images, train_labels))
        if args.save_dir:
            os.makedirs(args.save_dir, exist_ok=True)
            head["saved"] = os.path.join(
                args.save_dir, f"{name}_{facts['backend']}.keras")
            model.save(head["saved"])
        sample = sampler(model, name, args)
        settings = sampling_settings(name, args)
        figures = figure_setting(settings)
        for steps, guidance in settings:
            row = dict(head, ddim_steps=steps, guidance=guidance)
            try:
                images, labels, seconds, warmup_s = sample(steps, guidance)
                row.update({
                    "num_samples": len(images),
                    "sample_s": round(seconds, 2),
                    "sample_images_per_s": round(len(images) / seconds, 1),
                    "sample_warmup_s": (None if warmup_s is None
                                        else round(warmup_s, 2)),
                })
                begin = time.perf_counter()
                row.update(score(images, labels))
                row["score_s"] = round(time.perf_counter() - begin, 1)
                if args.grid_dir and (steps, guidance) == figures:
                    row.update(save_figures(model, name, args,
                                            facts["backend"], images, steps,
                                            guidance))
            except Exception as error:  # report it, go on
                row["error"] = f"{type(error).__name__}: {error}"[:1000]
            row["load_avg_end"] = load_average()
            rows.append(row)
    except Exception as error:  # report it, go on with the next model
        head["error"] = f"{type(error).__name__}: {error}"[:1000]
        rows.append(head)
    del model
    gc.collect()
    return rows


def figure_setting(settings):
    """The setting whose samples the figures show: the most steps, the
    largest guidance measured there."""
    return max(settings, key=lambda s: (s[0] or 0, s[1] or 0.0))


def run(args):
    """Runs every model on this process's backend; prints and returns the
    rows."""
    import keras

    facts = machine_facts()
    data = load_data(args)
    train_images, _, test_images, source = data
    rows = []

    def report(row):
        print(json.dumps(row), flush=True)
        rows.append(row)

    # The scorer's classifier is loaded before any mixed-precision policy.
    reference = train_images[:args.reference_images]
    args.reference_images = len(reference)
    score = make_scorer(reference)
    if args.train_images:
        data = (train_images[:args.train_images],
                data[1][:args.train_images]) + data[2:]

    row = base_row("real_test", args, facts, source)
    row["num_samples"] = min(args.num_samples, len(test_images))
    begin = time.perf_counter()
    try:
        row.update(score(test_images[:args.num_samples]))
        row["score_s"] = round(time.perf_counter() - begin, 1)
    except Exception as error:
        row["error"] = f"{type(error).__name__}: {error}"[:1000]
    report(row)

    previous = keras.config.dtype_policy()
    try:
        if args.mixed_precision:
            keras.config.set_dtype_policy(args.mixed_precision)
        for name in args.models:
            for row in run_model(name, args, facts, data, score):
                report(row)
    finally:
        keras.config.set_dtype_policy(previous)
    return rows


# ------------------------------------------------------------------- main
def int_list(text):
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated, from {','.join(MODELS)}")
    parser.add_argument("--budget-minutes", type=positive(float), default=None,
                        help="training time per model and backend "
                             "(default 15)")
    parser.add_argument("--steps", default=None,
                        help="DDIM step counts, comma-separated (default "
                             "10,25,50)")
    parser.add_argument("--guidance", default="1.0,2.0",
                        help="guidance scales of cond_diffusion, "
                             "comma-separated (1: plain conditional)")
    parser.add_argument("--guidance-steps", default=None,
                        help="step counts that get every guidance scale "
                             "('all', or comma-separated; default: the "
                             "middle of --steps); the others get the first")
    parser.add_argument("--num-samples", type=positive(int), default=None,
                        help="samples scored per row (default 1000)")
    parser.add_argument("--reference-images", type=positive(int), default=None,
                        help="training digits the samples are scored "
                             "against (default 10000)")
    parser.add_argument("--batch-size", type=positive(int), default=None,
                        help="training batch size (default 128)")
    parser.add_argument("--learning-rate", type=positive(float), default=None,
                        help="Adam learning rate of the diffusion models "
                             "(default: the model's, 2e-3)")
    parser.add_argument("--sample-batch-size", type=positive(int), default=250,
                        help="images denoised / generated at once")
    parser.add_argument("--widths", default=None,
                        help="U-Net widths of the diffusion models, "
                             "comma-separated (default: the model's; "
                             "--smoke: 8)")
    parser.add_argument("--train-images", type=positive(int), default=None,
                        help="train on the first N digits (default all)")
    parser.add_argument("--mnist-dir", default=DEFAULT_MNIST_DIR)
    parser.add_argument("--save-dir", default=None,
                        help="save each trained model here as "
                             "{model}_{backend}.keras (for figures)")
    parser.add_argument("--grid-dir", default=None,
                        help="write sample grids, reverse-process figures "
                             "and GIFs here")
    parser.add_argument("--mixed-precision", default=None,
                        help="dtype policy of the trained models, e.g. "
                             "mixed_bfloat16 or mixed_float16")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny run: 256 digits in batches of 32, 3 s "
                             "budget, 8 samples scored against 200 digits, "
                             "1 and 2 steps, widths 8 (explicit flags win)")
    parser.add_argument("--in-process", action="store_true",
                        help="run on this process's Keras backend instead "
                             "of one subprocess per --backends entry")
    args = parser.parse_args(argv)
    for key, value in (SMOKE if args.smoke else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.models = [m for m in args.models.split(",") if m]
    for name in args.models:
        if name not in MODELS:
            parser.error(f"unknown model {name!r}; choose from "
                         f"{','.join(MODELS)}")
    args.steps = int_list(args.steps)
    if not args.steps or min(args.steps) < 1:
        parser.error("--steps needs positive integers, e.g. 10,25,50")
    args.guidance = [float(v) for v in args.guidance.split(",") if v.strip()]
    if not args.guidance or min(args.guidance) < 0:
        parser.error("--guidance needs scales >= 0, e.g. 1.0,2.0")
    if args.guidance_steps is None:
        args.guidance_steps = [sorted(args.steps)[(len(args.steps) - 1) // 2]]
    elif args.guidance_steps == "all":
        args.guidance_steps = list(args.steps)
    else:
        args.guidance_steps = int_list(args.guidance_steps)
    args.widths = int_list(args.widths) if args.widths else None
    if args.num_samples < 2 or args.reference_images < 2:
        parser.error("--num-samples and --reference-images must be >= 2")
    return args


def main(argv=None):
    """Runs the benchmark; returns the rows (dicts) it printed."""
    return main_per_backend(__file__, argv, parse_args, run, BENCHMARK)


if __name__ == "__main__":
    main()
