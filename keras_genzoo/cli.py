"""The `genzoo` command: train a model and draw from it, from a shell.

    genzoo train vae                                # embedded MNIST, runs/vae
    genzoo train gan --dataset mnist --download --epochs 20 --conditional
    genzoo train gpt --text book.txt --epochs 8 --out runs/book
    genzoo train diffusion --dataset ~/my_images --backend jax
    genzoo generate runs/vae/vae.keras --num 64 --out grid.png --seed 0
    genzoo generate runs/gpt/gpt.keras --prompt "ROMEO:" --max-new-tokens 300

`genzoo train MODEL` writes into `--out DIR`: the `.keras` model (after every
epoch, so the latest is always there), a sample grid (image models) or a text
sample (text models) after every epoch, `history.csv` (Keras' `CSVLogger`),
`genzoo.json` (the run's settings) and, until the run is finished, a
`backup/` of `keras.callbacks.BackupAndRestore`. Run the same command again
after an interruption (Ctrl-C, a lost Colab runtime, `kill -9`) and it
resumes from the backup, at the epoch it had reached, with the run's saved
settings; stopped after its last epoch (an auto-encoder fitting its latent
prior), it trains no further and does only what was left.

Bad arguments print a usage message and exit with status 2 before anything
is written. `--backend` picks the Keras backend; as Keras fixes its backend
when it is first imported, a `--backend` other than the current one (the
`KERAS_BACKEND` variable, else Keras' config) runs the command again in a
new process with `KERAS_BACKEND` set (setting the variable yourself saves
that second start).
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import zipfile

from keras_genzoo._inputs import MAX_SEED

BACKENDS = ("tensorflow", "jax", "torch")
IMAGE_MODELS = ("ae", "vae", "gan", "wgan-gp", "diffusion")
TEXT_MODELS = ("bigram", "gpt")
MODELS = IMAGE_MODELS + TEXT_MODELS
CONDITIONAL_MODELS = ("vae", "gan", "wgan-gp", "diffusion")
SETTINGS_FILE = "genzoo.json"
# what a resumed run takes from genzoo.json (the rest may change: --epochs)
RUN_SETTINGS = ("model", "dataset", "text", "batch_size", "seed",
                "conditional", "steps_per_epoch", "download", "limit",
                "smoke")

# per model: epochs, batch size and (text models) steps per epoch
DEFAULTS = {
    "ae": dict(epochs=10, batch_size=128),
    "vae": dict(epochs=25, batch_size=128),
    "gan": dict(epochs=20, batch_size=128),
    "wgan-gp": dict(epochs=20, batch_size=64),
    "diffusion": dict(epochs=20, batch_size=128),
    "bigram": dict(epochs=4, batch_size=64, steps_per_epoch=250),
    "gpt": dict(epochs=8, batch_size=12, steps_per_epoch=250),
}
# --smoke: tiny networks, few images, characters and steps (seconds on a CPU)
SMOKE_MODELS = {
    "ae": dict(latent_dim=8, filters=(8, 16)),
    "vae": dict(latent_dim=2, filters=(8, 16)),
    "gan": dict(latent_dim=16, generator_filters=(16, 8),
                discriminator_filters=(8, 16)),
    "wgan-gp": dict(latent_dim=16, generator_filters=(16, 8),
                    discriminator_filters=(8, 16)),
    "diffusion": dict(widths=(8, 16)),
    "bigram": dict(sequence_length=32),
    "gpt": dict(num_layers=1, num_heads=2, hidden_dim=32, sequence_length=32),
}
# `genzoo generate`'s defaults; each option is refused for the models it
# does not apply to (given, not left at its default)
GENERATE_DEFAULTS = {"num": 64, "steps": 50, "max_new_tokens": 300,
                     "temperature": 0.8}
IMAGE_OPTIONS = ("num", "columns", "labels", "steps")
TEXT_OPTIONS = ("prompt", "max_new_tokens", "temperature", "top_k")
SMOKE_IMAGES = 256
# the Gaussians of the mixture `ae` fits to its codes after training
AE_PRIOR_COMPONENTS = 10
SMOKE_CHARACTERS = 20_000
SMOKE_STEPS = 3
DEFAULT_DATASET = "embedded_mnist"
DEFAULT_TEXT = "tiny_shakespeare"


class UsageError(Exception):
    """Bad command-line input: reported with the usage, exit status 2."""


def _argument_type(convert, accept, expected):
    """An argparse `type`: `convert(text)`, refused unless `accept(value)`."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(
                f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _argument_type(int, lambda n: n > 0, "a positive whole number")
# (numpy's and every backend's seeds: a larger one was numpy's traceback
# from `keras.utils.set_random_seed` after the data had been loaded)
_seed = _argument_type(int, lambda n: 0 <= n <= MAX_SEED,
                       f"a whole number in 0..{MAX_SEED}")
_positive_float = _argument_type(float, lambda x: 0 < x < float("inf"),
                                 "a positive number")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's "(default: ...)" for options with a value by default; not
    for `None` (the help says what is chosen then) nor a flag's `False`."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser():
    """The `genzoo` argument parser (`genzoo --help` prints its help).

    Returns:
        An `argparse.ArgumentParser` with the `train` and `generate`
        commands.

    Example:
        >>> from keras_genzoo.cli import build_parser
        >>> args = build_parser().parse_args(["train", "vae", "--epochs", "3"])
        >>> args.command, args.model, args.epochs, args.dataset
        ('train', 'vae', 3, None)
    """
    parser = argparse.ArgumentParser(
        prog="genzoo",
        description="Train keras_genzoo models and draw from them, on "
                    "TensorFlow, JAX or PyTorch.",
        epilog="`genzoo train --help` and `genzoo generate --help` list "
               "each command's options.",
    )
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND",
                                     required=True)

    train = commands.add_parser(
        "train", help="train a model, writing the model, samples and a "
                      "backup into --out",
        description="Train MODEL, writing into --out DIR the .keras model "
                    "and a sample grid (or text sample) after every epoch, "
                    "history.csv and genzoo.json. Run it again on the same "
                    "DIR after an interruption to resume from DIR/backup.",
        formatter_class=_HelpFormatter,
    )
    train.add_argument("model", choices=MODELS, metavar="MODEL",
                       help="one of: " + ", ".join(MODELS) + " (ae: "
                            "denoising auto-encoder; gpt: MiniGPT)")
    data = train.add_mutually_exclusive_group()
    data.add_argument("--dataset", default=None,
                      help="image models: embedded_mnist (offline), mnist, "
                           "fashion_mnist, cifar10 (TensorFlow Datasets), a "
                           "folder of images (one sub-folder per class for "
                           "--conditional) or of MNIST idx files "
                           f"[default: {DEFAULT_DATASET}]")
    data.add_argument("--text", default=None,
                      help="text models: tiny_shakespeare (embedded) or a "
                           f"UTF-8 text file [default: {DEFAULT_TEXT}]")
    train.add_argument("--download", action="store_true",
                       help="let TensorFlow Datasets download --dataset")
    train.add_argument("--epochs", type=_positive_int, default=None,
                       help="epochs [default per model: " + ", ".join(
                           f"{m} {d['epochs']}" for m, d in DEFAULTS.items())
                       + "]")
    train.add_argument("--batch-size", type=_positive_int, default=None,
                       help="examples per step [default per model: " +
                            ", ".join(f"{m} {d['batch_size']}"
                                      for m, d in DEFAULTS.items()) + "]")
    train.add_argument("--steps-per-epoch", type=_positive_int, default=None,
                       help="text models: steps between text samples "
                            "[default: 250]")
    train.add_argument("--conditional", action="store_true",
                       help="vae, gan, wgan-gp, diffusion: condition on the "
                            "dataset's labels (generate then takes --labels)")
    train.add_argument("--limit", type=_positive_int, default=None,
                       help="image models: train on at most this many images")
    train.add_argument("--smoke", action="store_true",
                       help="a quick check of the whole run: tiny networks, "
                            f"at most {SMOKE_IMAGES} images or "
                            f"{SMOKE_CHARACTERS:,} characters, "
                            f"{SMOKE_STEPS} steps per text epoch")
    train.add_argument("--seed", type=_seed, default=None,
                       help="seed of the weights, the data order and the "
                            "samples [default: 0]")
    train.add_argument("--backend", choices=BACKENDS, default=None,
                       help="Keras backend [default: KERAS_BACKEND, else "
                            "Keras' config]")
    train.add_argument("--out", default=None, metavar="DIR",
                       help="output folder [default: runs/MODEL]")
    train.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                       help="Keras' progress display: 0 silent, 1 progress "
                            "bar, 2 one line per epoch")

    generate = commands.add_parser(
        "generate", help="draw images or text from a saved .keras model",
        description="Draw from a saved keras_genzoo model: a grid of --num "
                    "images written to --out, or (text models) a text that "
                    "continues --prompt, printed and written to --out if "
                    "given.",
        formatter_class=_HelpFormatter,
    )
    generate.add_argument("model_path", metavar="MODEL.keras",
                          help="a model saved by `genzoo train` or "
                               "`model.save`")
    generate.add_argument("--num", type=_positive_int, default=None,
                          help="image models: images to draw "
                               f"[default: {GENERATE_DEFAULTS['num']}]")
    generate.add_argument("--out", default=None,
                          help="image models: the grid's PNG file "
                               "[default: samples.png]; text models: also "
                               "write the text to this file")
    generate.add_argument("--columns", type=_positive_int, default=None,
                          help="image models: images per row of the grid "
                               "[default: a square grid]")
    generate.add_argument("--seed", type=_seed, default=None,
                          help="the same seed draws the same samples "
                               "[default: a fresh draw, whose seed is "
                               "printed]")
    generate.add_argument("--labels", default=None,
                          help="conditional image models: a class, or "
                               "comma-separated classes in turn "
                               "[default: 0, 1, 2, ... in turn]")
    generate.add_argument("--steps", type=_positive_int, default=None,
                          help="diffusion models: DDIM sampling steps "
                               f"[default: {GENERATE_DEFAULTS['steps']}]")
    generate.add_argument("--prompt", default=None,
                          help="text models: the start of the text (required "
                               "for them)")
    generate.add_argument("--max-new-tokens", type=_positive_int,
                          default=None,
                          help="text models: characters to add [default: "
                               f"{GENERATE_DEFAULTS['max_new_tokens']}]")
    generate.add_argument("--temperature", type=_positive_float, default=None,
                          help="text models: sampling temperature [default: "
                               f"{GENERATE_DEFAULTS['temperature']}]")
    generate.add_argument("--top-k", type=_positive_int, default=None,
                          help="text models: sample among the k likeliest "
                               "characters")
    generate.add_argument("--backend", choices=BACKENDS, default=None,
                          help="Keras backend [default: KERAS_BACKEND, else "
                               "Keras' config]")
    parser.subcommands = {"train": train, "generate": generate}
    return parser


def _version():
    try:
        from importlib.metadata import version

        return version("keras-genzoo")
    except Exception:  # not installed (a source tree on sys.path)
        return "unknown"


def main(argv=None):
    """Runs `genzoo` with `argv` (default: the command line).

    Args:
        argv: the arguments after `genzoo`, e.g.
            `["train", "vae", "--epochs", "3"]`; default: `sys.argv[1:]`.

    Returns:
        The exit status: 0 on success, or the status of the new process
        that a `--backend` other than the current one runs (from the
        command line, `argv=None`, that process replaces this one).

    Raises:
        SystemExit: with status 2 (after printing the usage and the
            problem) for bad arguments, before anything is written; with
            status 0 after `--help`.

    Example:
        `main(["train", "vae", "--smoke", "--out", "runs/check"])` trains
        a tiny VAE for the default epochs and writes into `runs/check`, as
        `genzoo train vae --smoke --out runs/check` does in a shell.
    """
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.backend and args.backend != _current_backend():
            # Keras reads KERAS_BACKEND once, at its first import (and this
            # package has imported it already): run again in a new process.
            _check_installed(args.backend)
            return _run_under(args.backend, argv, replace=from_command_line)
        if args.command == "train":
            return train(args)
        return generate(args)
    except UsageError as error:
        # the command's usage and the message on stderr, exit status 2
        parser.subcommands[args.command].error(str(error))


def _current_backend():
    import keras

    return keras.backend.backend()


# the package each backend imports, and how to install it
BACKEND_PACKAGES = {
    "tensorflow": ("tensorflow", "pip install tensorflow"),
    "jax": ("jax", 'pip install "keras-genzoo[jax]"'),
    "torch": ("torch", 'pip install "keras-genzoo[torch]"'),
}


def _check_installed(backend):
    """A `UsageError` where `backend`'s framework is not installed (the new
    process died in `import keras` with a traceback: a plain
    `pip install keras-genzoo` brings TensorFlow alone)."""
    import importlib.util

    module, install = BACKEND_PACKAGES[backend]
    if importlib.util.find_spec(module) is None:
        raise UsageError(f"--backend {backend}: {module} is not installed "
                         f"in this Python; `{install}` (or choose another "
                         "--backend).")


def _run_under(backend, argv, replace):
    """Runs `genzoo argv` again with `KERAS_BACKEND=backend`.

    From the command line (`replace`, on POSIX) the new process replaces
    this one (`os.execve`): a signal sent to `genzoo` (Ctrl-C, `kill`)
    reaches the run itself, and its exit status is the shell's. Before, a
    child process was started: killing `genzoo` left it training (into the
    same --out as a rerun), and a child killed by a signal gave status 247.
    Called from Python (`main([...])`, which must not replace a notebook's
    process), it runs a child and returns its status, `128 + N` for a
    child ended by signal N (as a shell reports it).
    """
    env = dict(os.environ, KERAS_BACKEND=backend)
    command = [sys.executable, "-m", "keras_genzoo.cli"] + argv
    if replace and os.name == "posix":
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, command, env)
    status = subprocess.call(command, env=env)
    return 128 - status if status < 0 else status


# ---------------------------------------------------------------- train --


def _train_settings(args):
    """The run's settings: `genzoo.json` of a backup in --out wins."""
    model = args.model
    defaults = DEFAULTS[model]
    out = args.out or os.path.join("runs", model)
    if model in IMAGE_MODELS and args.text is not None:
        raise UsageError(f"--text is for the text models "
                         f"({', '.join(TEXT_MODELS)}); {model} trains on "
                         "images: use --dataset.")
    if model in TEXT_MODELS and args.dataset is not None:
        raise UsageError(f"--dataset is for the image models; {model} "
                         "trains on a text: use --text FILE.")
    if args.conditional and model not in CONDITIONAL_MODELS:
        raise UsageError(f"--conditional works with "
                         f"{', '.join(CONDITIONAL_MODELS)}, not {model}.")
    if model in IMAGE_MODELS and args.steps_per_epoch is not None:
        raise UsageError("--steps-per-epoch is for the text models; an "
                         "image model's epoch is one pass over --dataset.")
    if model in TEXT_MODELS and args.limit is not None:
        raise UsageError("--limit is for the image models.")
    if model in TEXT_MODELS and args.download:
        raise UsageError("--download is for the image models' --dataset "
                         "(TensorFlow Datasets); a text model reads --text.")
    settings = {
        "model": model,
        "dataset": (args.dataset or DEFAULT_DATASET)
        if model in IMAGE_MODELS else None,
        "text": (args.text or DEFAULT_TEXT) if model in TEXT_MODELS else None,
        "batch_size": args.batch_size or defaults["batch_size"],
        "seed": 0 if args.seed is None else args.seed,
        "conditional": bool(args.conditional),
        "steps_per_epoch": (args.steps_per_epoch or (
            SMOKE_STEPS if args.smoke else defaults.get("steps_per_epoch"))
            if model in TEXT_MODELS else None),
        "download": bool(args.download),
        "limit": args.limit,
        "smoke": bool(args.smoke),
        "epochs": args.epochs or defaults["epochs"],
    }
    for key in ("dataset", "text"):
        settings[key] = _as_path(settings[key])
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} is a file; give a folder.")
    _check_can_create("--out", out)
    backup = os.path.join(out, "backup")
    has_backup = os.path.isdir(backup) and bool(os.listdir(backup))
    saved_path = os.path.join(out, SETTINGS_FILE)
    saved = None
    if os.path.isfile(saved_path):
        try:
            with open(saved_path) as f:
                saved = json.load(f)
        except (OSError, ValueError):
            saved = None
        if not isinstance(saved, dict):
            # (a traceback before; an empty file is what a run killed
            # while writing it left, before the writes were atomic)
            raise UsageError(
                f"{saved_path} cannot be read as the settings of a "
                "`genzoo train` run (it is empty or damaged): choose "
                "another --out, or delete the folder to start again.")
    elif has_backup:
        raise UsageError(f"{out} holds a backup but no {SETTINGS_FILE}; it "
                         "was not written by `genzoo train`: choose another "
                         "--out.")
    settings["resumed"] = False
    if saved is None:
        pass  # a new run
    elif saved.get("finished"):
        raise UsageError(
            f"{out} holds a finished {saved.get('model')} run; choose "
            "another --out, or delete the folder to start again.")
    elif saved.get("model") != model:
        raise UsageError(
            f"{out} holds an unfinished {saved.get('model')} run; choose "
            f"another --out for {model} (or resume that run with `genzoo "
            f"train {saved.get('model')} --out {out}`).")
    elif has_backup:
        # (a flag left out cannot be told from one not given: only a flag
        # given where the saved run had none is refused)
        given = {"dataset": _as_path(args.dataset),
                 "text": _as_path(args.text), "batch_size": args.batch_size,
                 "seed": args.seed, "steps_per_epoch": args.steps_per_epoch,
                 "limit": args.limit, "conditional": args.conditional or None,
                 "smoke": args.smoke or None}
        for key, value in given.items():
            if value is not None and value != saved.get(key):
                option = "--" + key.replace("_", "-")
                was = (f"without {option}" if value is True
                       else f"with {option} {saved.get(key)}")
                raise UsageError(
                    f"{out} holds the backup of a run {was}; leave the "
                    "option out to resume it, or choose another --out.")
        trained = _trained_epochs(backup)
        if args.epochs and trained and args.epochs < trained:
            raise UsageError(
                f"{out} holds the backup of a run that has trained "
                f"{trained} epochs; --epochs {args.epochs} is fewer: give "
                f"--epochs {trained} or more (or leave it out) to resume it.")
        epochs = settings["epochs"] if args.epochs else saved["epochs"]
        settings = {key: saved.get(key) for key in RUN_SETTINGS}
        settings["epochs"] = epochs
        settings["resumed"] = True
    # else: a run stopped before its first backup starts again
    if settings["dataset"] is not None and os.path.isdir(settings["dataset"]):
        # the run's folder would be read as a class of images: a resumed
        # run trained on the sample grids (or found too few images)
        inside = os.path.realpath(settings["dataset"])
        try:
            common = os.path.commonpath([inside, os.path.realpath(out)])
        except ValueError:  # on Windows, paths on two drives
            common = None
        if common == inside:
            raise UsageError(
                f"--out {out} is inside --dataset {settings['dataset']}: "
                "the run's files would be read as images of the dataset; "
                "choose an --out outside it.")
    settings["out"] = out
    return settings


def _trained_epochs(backup):
    """The epochs a Keras `BackupAndRestore` folder says were trained (its
    `training_metadata.json`), or `None` where it cannot be read."""
    try:
        with open(os.path.join(backup, "training_metadata.json")) as f:
            return int(json.load(f)["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _check_can_create(option, path):
    """A `UsageError` unless `path` can be made: its nearest existing
    ancestor must be a folder (before, a file there failed with a traceback
    after the data, the model or the sampling)."""
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UsageError(f"{option} {path}: {parent} is a file, not a "
                         "folder; choose another path.")


def _as_path(value):
    """An existing file or folder as an absolute path (a resumed run finds
    it from any directory); a loader name (or None) as it is."""
    if value is None:
        return None
    expanded = os.path.expanduser(value)
    if os.path.exists(expanded):
        return os.path.abspath(expanded)
    return value


def _starts_with_utf16_mark(path):
    """Whether the file at `path` starts with a UTF-16 byte order mark."""
    try:
        with open(path, "rb") as file:
            return file.read(2) in (b"\xff\xfe", b"\xfe\xff")
    except OSError:
        return False


def _load_data(settings):
    """Loads the data (before anything is written): `(train, val, info)`."""
    from keras_genzoo import datasets

    if settings["model"] in TEXT_MODELS:
        try:
            text = datasets.load_text(settings["text"])
        except ValueError as error:
            message = str(error)
            if "is not valid" in message:
                # the command has no encoding option (the library's message
                # named `load_text`'s `encoding=`); a UTF-16 file (its byte
                # order mark) converted from latin1 became text with NULs
                source = ("utf-16" if _starts_with_utf16_mark(
                    settings["text"]) else "latin1")
                message = message.split(" Save it as UTF-8")[0] + (
                    f" Save it as UTF-8 (e.g. `iconv -f {source} -t utf-8 "
                    "in.txt > out.txt`) and give that file.")
            raise UsageError(f"--text: {message}") from None
        if settings["smoke"]:
            text = text[:SMOKE_CHARACTERS]
        if len(text) < 2:
            raise UsageError(f"--text {settings['text']} holds "
                             f"{len(text)} character(s); a text model needs "
                             "at least 2.")
        return text, None, {}
    dataset = settings["dataset"]
    limit = settings["limit"]
    if settings["smoke"]:
        limit = min(limit or SMOKE_IMAGES, SMOKE_IMAGES)
    try:
        train_ds, val_ds = datasets.load_images(
            dataset, batch_size=settings["batch_size"],
            validation_split=0.1, seed=settings["seed"],
            limit=limit, download=settings["download"])
    except (ValueError, FileNotFoundError) as error:
        raise UsageError(f"--dataset: {_as_command_advice(error)}") from None
    if settings["model"] == "ae":
        found = _training_images_up_to(train_ds, AE_PRIOR_COMPONENTS, dict(
            name=dataset, batch_size=settings["batch_size"],
            validation_split=0.1, seed=settings["seed"], limit=limit,
            download=settings["download"]))
        if found < AE_PRIOR_COMPONENTS:
            # (it trained every epoch, then the mixture's fit failed with
            # a traceback, and so did every rerun, resuming the run)
            fix = (f"this unfinished run cannot finish: choose another "
                   f"--out, or delete {settings['out']} to start again"
                   if settings["resumed"] else
                   "give more images (or a larger --limit)")
            raise UsageError(
                f"--dataset {dataset} gives {found} training image(s) "
                "(besides those held out for validation); `ae` needs at "
                f"least {AE_PRIOR_COMPONENTS}, for the "
                f"{AE_PRIOR_COMPONENTS}-component mixture fitted to their "
                f"codes after training: {fix}.")
    info = {}
    if settings["conditional"]:
        # the classes `load_images` names (a folder without class
        # sub-folders has no labels); before, the largest label of the
        # training batches, read through (a class only in the validation
        # split was missed)
        classes = len(getattr(train_ds, "class_names", None) or [None])
        if classes < 2:
            raise UsageError(f"--conditional needs labels of at least two "
                             f"classes; --dataset {dataset} has "
                             f"{classes}: give a folder with one sub-folder "
                             "per class.")
        info["num_classes"] = classes
    return train_ds, val_ds, info


def _training_images_up_to(train_ds, needed, load_kwargs):
    """How many images `train_ds` holds, counted up to `needed`. Read only
    where its number of batches leaves that open, and then from the same
    images loaded again without shuffling: a pass over `train_ds` itself
    would move its shuffling on, and the run would train on other orders
    than the same command did before."""
    from keras_genzoo import _inputs, datasets

    count = int(train_ds.cardinality())
    if count < 0 or (count - 1) * load_kwargs["batch_size"] + 1 >= needed:
        return needed  # unknown (not read through), or enough however full
    batches, _ = datasets.load_images(shuffle=False, **load_kwargs)
    found = 0
    for batch in batches:
        found += len(_inputs.split_batch(batch)[0])
        if found >= needed:
            break
    return min(found, needed)


def _as_command_advice(error):
    """The library's message with its advice in this command's options:
    it named `load_images` arguments the command does not have."""
    message = str(error)
    message = message.replace(
        ", or pass `validation_split=0`.", " (a tenth is held out).")
    message = message.replace(
        "Pass download=True to let tfds download it (needs internet), pass "
        "data_dir= pointing at a folder that has it, or train offline on "
        "load_images('embedded_mnist').",
        "Add --download to let tfds download it (needs internet), or train "
        "offline with --dataset embedded_mnist.")
    return message


def _make_model(settings, info, text=None):
    import keras_genzoo as zoo

    classes = {"ae": zoo.AutoEncoder, "vae": zoo.VAE, "gan": zoo.GAN,
               "wgan-gp": zoo.WGANGP, "diffusion": zoo.DiffusionModel,
               "bigram": zoo.BigramLM, "gpt": zoo.MiniGPT}
    model = settings["model"]
    kwargs = dict(SMOKE_MODELS[model]) if settings["smoke"] else {}
    kwargs["seed"] = settings["seed"]
    if model in CONDITIONAL_MODELS:
        kwargs["num_classes"] = info.get("num_classes")
    if model == "ae":
        kwargs["noise_stddev"] = 0.3
    if model in TEXT_MODELS:
        return classes[model].from_text(text, **kwargs)
    return classes[model](**kwargs)


def _model_file(settings):
    return os.path.join(settings["out"], f"{settings['model']}.keras")


def train(args):
    """`genzoo train`: see the module's docstring. Returns 0."""
    import keras

    settings = _train_settings(args)
    keras.utils.set_random_seed(settings["seed"])
    train_ds, val_ds, info = _load_data(settings)
    text = train_ds if settings["model"] in TEXT_MODELS else None
    try:
        model = _make_model(settings, info, text)
    except ValueError as error:
        raise UsageError(str(error)) from None
    out = settings["out"]
    fit_kwargs = {}
    if text is not None:
        try:
            train_ds, _ = model.make_datasets(
                text, batch_size=settings["batch_size"], stride=1,
                seed=settings["seed"])
            _, val_ds = model.make_datasets(text, batch_size=64,
                                            shuffle=False)
        except ValueError as error:  # e.g. a text shorter than a window
            # (the command has options for neither the model's window
            # length nor the validation split)
            message, advice, _ = str(error).partition(
                " or a shorter sequence_length")
            raise UsageError("--text: " + message + (
                "." if advice else "")) from None
        # an epoch is --steps-per-epoch steps, however short the text:
        # one pass over its windows may hold fewer (before, Keras stopped
        # the run when they ran out, after a fraction of the steps asked)
        train_ds = train_ds.repeat()
        fit_kwargs["steps_per_epoch"] = settings["steps_per_epoch"]
        if settings["model"] == "gpt":
            from keras_genzoo import warmup_cosine_adamw

            steps = settings["steps_per_epoch"] * settings["epochs"]
            model.compile(optimizer=warmup_cosine_adamw(steps))

    # everything is checked: from here on the run writes into --out
    os.makedirs(out, exist_ok=True)
    _write_settings(settings)
    callbacks = _callbacks(model, settings, val_ds, text)
    print(f"genzoo: {'resuming' if settings['resumed'] else 'training'} "
          f"{settings['model']} on {settings['dataset'] or settings['text']}"
          f" for {settings['epochs']} epoch(s), Keras "
          f"{keras.__version__} on {keras.backend.backend()}, writing "
          f"into {out}", flush=True)
    model.fit(train_ds, validation_data=val_ds, epochs=settings["epochs"],
              callbacks=callbacks, verbose=args.verbose, **fit_kwargs)
    if settings["model"] == "ae":
        # an auto-encoder draws new images from a mixture fitted to its
        # codes; `genzoo generate` on its file then works as for a VAE
        model.fit_latent_prior(train_ds, n_components=AE_PRIOR_COMPONENTS,
                               seed=settings["seed"])
    path = _model_file(settings)
    model.save(path)
    _write_settings(settings, finished=True)
    # kept until now (not deleted when `fit` ends): a run stopped after its
    # last epoch resumes there, with nothing left to train
    shutil.rmtree(os.path.join(out, "backup"), ignore_errors=True)
    print(f"genzoo: wrote {path}")
    return 0


def _write_settings(settings, finished=False):
    # written whole or not at all: a run killed while writing it (which
    # resuming is for) left it empty, and the run could not resume
    path = os.path.join(settings["out"], SETTINGS_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(dict({k: v for k, v in settings.items()
                        if k not in ("out", "resumed")}, finished=finished),
                  f, indent=2)
        f.flush()
        os.fsync(f.fileno())  # on disk before it replaces the old one
    os.replace(path + ".tmp", path)


def _callbacks(model, settings, val_ds, text):
    import keras

    from keras_genzoo.callbacks import (ImageGridSaver, ProgressGif,
                                        ReconstructionGridSaver, TextSampler)

    out = settings["out"]
    seed = settings["seed"]
    history = os.path.join(out, "history.csv")
    backup = _backup_callback(os.path.join(out, "backup"), history)
    checkpoint = keras.callbacks.ModelCheckpoint(_model_file(settings))
    for callback in (backup, checkpoint):
        # Both save once an epoch (`save_freq="epoch"`), so their batch
        # hooks do nothing; marked `async_safe`, they leave Keras free to
        # run the batch hooks in a worker thread while the next step runs
        # (JAX, PyTorch) instead of on fit's thread after each step
        callback.async_safe = True
    found = [
        # the backup restores first: the state is back before the others
        # start (and history.csv is cut back to the restored epoch)
        backup,
        keras.callbacks.CSVLogger(history, append=settings["resumed"]),
        checkpoint,
    ]
    if text is not None:
        prompt = text[:1]
        found.append(TextSampler(prompt, max_new_tokens=300,
                                 path=os.path.join(out, "samples.txt"),
                                 seed=seed, temperature=0.8, verbose=False))
    elif settings["model"] == "ae":
        import numpy as np

        from keras_genzoo import _inputs

        # (a folder without class sub-folders gives bare image batches)
        images, _ = _inputs.split_batch(next(iter(val_ds)))
        found.append(ReconstructionGridSaver(np.asarray(images)[:10], out))
    else:
        sampling = {}
        if settings["model"] == "diffusion":
            sampling["steps"] = 5 if settings["smoke"] else 20
        saver = ImageGridSaver(out, num_images=64, seed=seed, **sampling)
        if settings["resumed"]:
            # the grids of the epochs before the crash: frames of the GIF
            # too (an epoch trained again writes its grid again)
            saver.paths = sorted(glob.glob(os.path.join(
                glob.escape(out), f"{saver.prefix}_epoch_*.png")))
        found += [saver, ProgressGif(saver)]
    # ... and saves last, once the epoch's grid, text and history row are
    # written (saved first, a run killed just after it resumed past an
    # epoch whose grid or history row was never written)
    found.append(backup.saver)
    return found


def _backup_callback(directory, history):
    """Keras' `BackupAndRestore` for `genzoo train`, which restores at the
    start of `fit` where it stands in the list of callbacks but saves the
    epoch's state only in the callback `.saver` (put last in the list).

    It keeps the previous epoch's backup too (`double_checkpoint`): a run
    killed while it writes the backup resumes from that one (before, every
    rerun failed on the half-written file). A backup that still cannot be
    read is a `UsageError` naming the fix. After restoring, `history`
    (the `CSVLogger` file) is cut back to the restored epoch, so that an
    epoch trained again is not listed twice.
    """
    import keras

    class Backup(keras.callbacks.BackupAndRestore):

        def on_train_begin(self, logs=None):
            try:
                try:
                    super().on_train_begin(logs)
                except (ValueError, KeyError):
                    # a half-written training_metadata.json: Keras falls
                    # back to the previous backup on an OSError only
                    if not _restore_previous_backup(directory):
                        raise
                    super().on_train_begin(logs)
            except (OSError, ValueError, KeyError) as error:
                raise UsageError(
                    f"the backup in {directory} cannot be read ({error}); "
                    f"delete {directory} to train again from the first "
                    "epoch, or choose another --out.") from None
            _cut_history(history, _trained_epochs(directory) or 0)

        def on_epoch_end(self, epoch, logs=None):
            pass  # in `saver`, after the other callbacks

    class SaveBackup(keras.callbacks.Callback):
        async_safe = True

        def on_epoch_end(self, epoch, logs=None):
            keras.callbacks.BackupAndRestore.on_epoch_end(backup, epoch, logs)

    backup = Backup(directory, delete_checkpoint=False,
                    double_checkpoint=True)
    backup.saver = SaveBackup()
    return backup


def _restore_previous_backup(directory):
    """Puts the previous epoch's backup (`double_checkpoint`'s `.bkp`
    files) in place of the latest; `False` where there is none."""
    latest = [os.path.join(directory, name) for name in (
        "latest.weights.h5", "training_metadata.json")]
    if not all(os.path.isfile(path + ".bkp") for path in latest):
        return False
    for path in latest:
        shutil.copyfile(path + ".bkp", path)
    return True


def _cut_history(path, epochs):
    """Keeps the header and the rows of the first `epochs` epochs of a
    `CSVLogger` file (where there is one)."""
    if not os.path.isfile(path):
        return
    with open(path, newline="") as f:
        lines = f.readlines()
    kept = lines[:1] + [
        line for line in lines[1:]
        if line.split(",", 1)[0].strip().isdigit()
        and int(line.split(",", 1)[0]) < epochs]
    if kept != lines:
        with open(path, "w", newline="") as f:
            f.writelines(kept)


# ------------------------------------------------------------- generate --


def generate(args):
    """`genzoo generate`: see the module's docstring. Returns 0."""
    import keras
    import numpy as np

    from keras_genzoo.callbacks import save_image_grid
    from keras_genzoo.models.language import CharLanguageModel

    path = args.model_path
    if not os.path.isfile(path):
        raise UsageError(f"{path} is not a file; give the .keras file "
                         "`genzoo train` wrote (e.g. runs/vae/vae.keras).")
    if args.out is not None:
        if os.path.isdir(args.out):
            raise UsageError(
                f"--out {args.out} is a folder: give a file in it, e.g. "
                f"{os.path.join(args.out, 'samples.png')} (or samples.txt "
                "for a text model).")
        _check_can_create("--out", args.out)
    if path.endswith(".keras") and not zipfile.is_zipfile(path):
        raise UsageError(f"{path} is not a .keras file (a zip archive that "
                         "`model.save` writes); give the file `genzoo "
                         "train` wrote (e.g. runs/vae/vae.keras).")
    try:
        model = keras.saving.load_model(path)
    except Exception as error:  # not a .keras file, or not ours
        raise UsageError(f"cannot load {path}: {error}") from None
    if not hasattr(model, "generate"):
        raise UsageError(f"{path} holds a {type(model).__name__}, which "
                         "does not generate; give a generative model of "
                         "keras_genzoo (a VAE, GAN, diffusion model, "
                         "language model ...).")
    is_text = isinstance(model, CharLanguageModel)
    kind = "a text" if is_text else "an image"
    for option in IMAGE_OPTIONS if is_text else TEXT_OPTIONS:
        if getattr(args, option) is not None:
            models = ("diffusion" if option == "steps" else
                      "image" if is_text else "text")
            raise UsageError(
                f"{path} is {kind} model: --{option.replace('_', '-')} is "
                f"for {models} models.")
    if args.steps is not None and type(model).__name__ != "DiffusionModel":
        raise UsageError(f"--steps is for diffusion models; {path} holds a "
                         f"{type(model).__name__}.")
    options = {key: default if getattr(args, key) is None
               else getattr(args, key)
               for key, default in GENERATE_DEFAULTS.items()}
    seed = args.seed
    if seed is None:
        # a fresh draw: the model's own seed generator would draw the same
        # samples from every load of the file (its state is saved in it)
        seed = int.from_bytes(os.urandom(4), "little") >> 1
    drawn = "" if args.seed is not None else f" (seed {seed})"
    if is_text:
        if args.prompt is None:
            raise UsageError(f"{path} is a text model: give --prompt TEXT.")
        try:
            sample = model.generate(
                args.prompt, max_new_tokens=options["max_new_tokens"],
                temperature=options["temperature"], top_k=args.top_k,
                seed=seed)
        except ValueError as error:
            raise UsageError(str(error)) from None
        if drawn:  # on stderr: stdout is the text alone
            print(f"genzoo: seed {seed}", file=sys.stderr, flush=True)
        print(sample)
        if args.out:
            _make_parent(args.out)
            with open(args.out, "w", encoding="utf-8") as f:
                f.write(sample)
        return 0
    out = args.out or "samples.png"
    _check_image_file(out, model)
    kwargs = {"seed": seed}
    num = options["num"]
    if args.labels is not None:
        if not getattr(model, "num_classes", None):
            raise UsageError(f"{path} is not conditional: leave --labels "
                             "out.")
        try:
            labels = [int(label) for label in args.labels.split(",")]
        except ValueError:
            raise UsageError(f"--labels: expected whole numbers separated by "
                             f"commas, got {args.labels!r}.") from None
        kwargs["labels"] = np.resize(np.asarray(labels, "int32"), num)
    if type(model).__name__ == "DiffusionModel":
        kwargs["steps"] = options["steps"]
    try:
        images = model.generate(num, **kwargs)
    except ValueError as error:
        raise UsageError(str(error)) from None
    _make_parent(out)
    written = save_image_grid(images, out, columns=args.columns)
    print(f"genzoo: wrote {written}{drawn}")
    return 0


def _check_image_file(out, model):
    """A `UsageError` (before any sampling) unless PIL can write the grid
    of `model`'s images to `out`: its extension must name a format PIL
    writes in the grid's mode (registered extensions include formats PIL
    only reads: .psd, .fli, .cur; .xbm and .msp write no grayscale)."""
    import io

    from PIL import Image

    Image.init()
    extension = os.path.splitext(out)[1].lower()
    image_format = Image.registered_extensions().get(extension)
    channels = (getattr(model, "image_shape", None) or (1,))[-1]
    mode = "L" if channels == 1 else "RGB"  # grids drop an alpha channel
    try:
        if image_format not in Image.SAVE:
            raise KeyError(extension)
        Image.new(mode, (1, 1)).save(io.BytesIO(), format=image_format)
    except (KeyError, OSError, ValueError):
        raise UsageError(
            f"--out {out}: the grid is an image file; end its name in .png "
            "(or .jpg, .gif, .webp ...).") from None


def _make_parent(path):
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)


if __name__ == "__main__":
    sys.exit(main())
