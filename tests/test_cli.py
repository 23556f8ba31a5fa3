"""The `genzoo` command line: train, resume, generate, help, bad arguments.

Runs in-process through `keras_genzoo.cli.main` on the current backend
(`--smoke` sizes), plus subprocesses for the installed entry point and for
`--backend`, which starts a new process under the other backend.
"""

import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from keras_genzoo import cli

BACKEND = keras.backend.backend()


def run(*argv):
    """`genzoo ARGV` in this process; returns its exit status."""
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        return exit_.code


def history_epochs(out):
    with open(os.path.join(out, "history.csv")) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def grid_size(path):
    with Image.open(path) as image:
        return image.size


@pytest.mark.parametrize("model", cli.IMAGE_MODELS)
def test_train_and_generate_images(model, tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", model, "--smoke", "--epochs", 2, "--out", out,
               "--verbose", 0) == 0
    files = set(os.listdir(out))
    assert {f"{model}.keras", "history.csv", "genzoo.json"} <= files
    assert "backup" not in files  # a finished run keeps no backup
    prefix = "reconstructions" if model == "ae" else "samples"
    assert {f"{prefix}_epoch_001.png", f"{prefix}_epoch_002.png"} <= files
    assert history_epochs(out) == [0, 1]
    with open(out / "genzoo.json") as f:
        settings = json.load(f)
    assert settings["model"] == model and settings["finished"]
    assert settings["dataset"] == "embedded_mnist" and settings["epochs"] == 2
    loaded = keras.saving.load_model(out / f"{model}.keras")
    assert loaded.optimizer is not None

    grid = tmp_path / "grid.png"
    steps = ("--steps", 2) if model == "diffusion" else ()
    assert run("generate", out / f"{model}.keras", "--num", 6, "--seed", 3,
               "--columns", 3, "--out", grid, *steps) == 0
    # 3 x 2 images of 28 x 28 with 2 pixels of padding around each
    assert grid_size(grid) == (3 * 28 + 4 * 2, 2 * 28 + 3 * 2)
    again = tmp_path / "again.png"
    assert run("generate", out / f"{model}.keras", "--num", 6, "--seed", 3,
               "--columns", 3, "--out", again, *steps) == 0
    assert np.array_equal(np.asarray(Image.open(grid)),
                          np.asarray(Image.open(again)))
    assert f"wrote {grid}" in capsys.readouterr().out


@pytest.mark.parametrize("model", cli.TEXT_MODELS)
def test_train_and_generate_text(model, tmp_path, capsys):
    out = tmp_path / "run"
    text = tmp_path / "book.txt"
    text.write_text("to be or not to be, that is the question. " * 40)
    assert run("train", model, "--smoke", "--text", text, "--epochs", 2,
               "--out", out, "--verbose", 0) == 0
    assert history_epochs(out) == [0, 1]
    samples = (out / "samples.txt").read_text()
    assert samples.count("=== epoch ") == 2 and "=== epoch 2, loss " in samples
    with open(out / "genzoo.json") as f:
        assert json.load(f)["text"] == str(text)  # absolute: resumable
    capsys.readouterr()
    written = tmp_path / "sample.txt"
    assert run("generate", out / f"{model}.keras", "--prompt", "to be",
               "--max-new-tokens", 20, "--seed", 0, "--out", written) == 0
    printed = capsys.readouterr().out
    sample = written.read_text()
    assert sample.startswith("to be") and len(sample) == len("to be") + 20
    assert sample in printed
    assert set(sample) <= set("to be or not to be, that is the question. ")


def test_conditional_gan_draws_the_labels_asked_for(tmp_path):
    out = tmp_path / "cgan"
    assert run("train", "gan", "--smoke", "--conditional", "--epochs", 1,
               "--out", out, "--verbose", 0) == 0
    model = keras.saving.load_model(out / "gan.keras")
    assert model.num_classes == 10
    grid = tmp_path / "by_class.png"
    assert run("generate", out / "gan.keras", "--num", 4, "--labels", "3,7",
               "--seed", 0, "--columns", 4, "--out", grid) == 0
    expected = model.generate(4, seed=0, labels=np.array([3, 7, 3, 7]))
    from keras_genzoo.callbacks import save_image_grid

    reference = save_image_grid(expected, str(tmp_path / "ref.png"),
                                columns=4)
    assert np.array_equal(np.asarray(Image.open(grid)),
                          np.asarray(Image.open(reference)))


class _Interrupted(Exception):
    """What the test's interruption raises."""


class _Interrupt(keras.callbacks.Callback):
    """Stops the process's first run after its second epoch's backup."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise _Interrupted("interrupted by the test")


def test_resumes_from_the_backup_after_an_interruption(tmp_path, monkeypatch,
                                                       capsys):
    out = tmp_path / "run"
    make_callbacks = cli._callbacks
    made = []
    monkeypatch.setattr(
        cli, "_callbacks",
        lambda *a: made.extend(make_callbacks(*a)) or made + [_Interrupt()])
    argv = ("train", "vae", "--smoke", "--epochs", 4, "--out", out,
            "--verbose", 0)
    with pytest.raises(_Interrupted):
        run(*argv)
    assert os.listdir(out / "backup")
    assert history_epochs(out) == [0, 1]
    # none of the command's callbacks makes Keras run the batch hooks on
    # fit's thread after each step (JAX and PyTorch; Keras' rule)
    base = keras.callbacks.Callback
    assert made and all(
        getattr(c, "async_safe", False)
        or type(c).on_train_batch_end is base.on_train_batch_end
        and type(c).on_batch_end is base.on_batch_end for c in made), [
        type(c).__name__ for c in made]
    assert not json.loads((out / "genzoo.json").read_text())["finished"]
    monkeypatch.setattr(cli, "_callbacks", make_callbacks)

    # a resumed run must keep its settings: another dataset is refused
    assert run("train", "vae", "--out", out, "--batch-size", 7) == 2
    assert "--batch-size 128" in capsys.readouterr().err
    # the same command resumes at the third epoch and finishes the run
    assert run(*argv) == 0
    assert "resuming vae" in capsys.readouterr().out
    assert history_epochs(out) == [0, 1, 2, 3]
    # the animation holds every epoch's grid, those before the crash too
    with Image.open(out / "progress.gif") as gif:
        assert gif.n_frames == 4
    assert not os.path.exists(out / "backup")
    assert json.loads((out / "genzoo.json").read_text())["finished"]
    model = keras.saving.load_model(out / "vae.keras")
    # 2 smoke batches per epoch (256 images, 10 % held out, batch 128)
    assert int(model.optimizer.iterations) == 4 * 2


def _interrupted_run(model, out, monkeypatch):
    """`genzoo train MODEL --smoke --epochs 3` stopped after its second
    epoch (and backup); returns the command to run it again."""
    make_callbacks = cli._callbacks
    monkeypatch.setattr(cli, "_callbacks",
                        lambda *a: make_callbacks(*a) + [_Interrupt()])
    argv = ("train", model, "--smoke", "--epochs", 3, "--out", out,
            "--verbose", 0)
    with pytest.raises(_Interrupted):
        run(*argv)
    monkeypatch.setattr(cli, "_callbacks", make_callbacks)
    return argv


def test_resumes_from_a_backup_half_written_when_killed(tmp_path,
                                                        monkeypatch, capsys):
    """A run killed while Keras writes its backup resumes from the epoch
    before (the previous backup is kept); before, every rerun failed on the
    half-written file. Options that contradict the saved run, `--epochs`
    below those trained included, are refused (ignored before)."""
    out = tmp_path / "run"
    argv = _interrupted_run("vae", out, monkeypatch)
    assert history_epochs(out) == [0, 1]
    for option, message in [
            (("--conditional",), "a run without --conditional"),
            (("--epochs", 1), "has trained 2 epochs; --epochs 1 is fewer")]:
        assert run("train", "vae", "--out", out, *option) == 2
        assert message in capsys.readouterr().err
    # the latest backup cut in half, as a kill in the middle of writing it
    # leaves it
    weights = out / "backup" / "latest.weights.h5"
    data = weights.read_bytes()
    weights.write_bytes(data[:len(data) // 2])
    assert run(*argv) == 0
    assert "resuming vae" in capsys.readouterr().out
    # resumed from the first epoch's backup: the second epoch is trained
    # again, and history.csv lists it once
    assert history_epochs(out) == [0, 1, 2]
    model = keras.saving.load_model(out / "vae.keras")
    assert int(model.optimizer.iterations) == 3 * 2


def test_resumes_after_a_kill_while_the_backup_epoch_was_written(
        tmp_path, monkeypatch, capsys):
    """Keras falls back to the previous backup on an unreadable weights
    file only: a half-written training_metadata.json failed every rerun
    too."""
    out = tmp_path / "run"
    argv = _interrupted_run("bigram", out, monkeypatch)
    (out / "backup" / "training_metadata.json").write_text('{"epo')
    assert run(*argv) == 0
    assert history_epochs(out) == [0, 1, 2]
    model = keras.saving.load_model(out / "bigram.keras")
    assert int(model.optimizer.iterations) == 3 * cli.SMOKE_STEPS


def test_a_backup_that_cannot_be_read_exits_2(tmp_path, monkeypatch,
                                              capsys):
    out = tmp_path / "run"
    argv = _interrupted_run("bigram", out, monkeypatch)
    for name in os.listdir(out / "backup"):
        if name.endswith(".h5") or name.endswith(".bkp"):
            (out / "backup" / name).write_bytes(b"")
    assert run(*argv) == 2
    err = capsys.readouterr().err
    assert "cannot be read" in err and "delete" in err, err


@pytest.mark.parametrize("content", ["", "[1]", "{\"model\": "])
def test_settings_that_cannot_be_read_exit_2(tmp_path, capsys, content):
    # an empty genzoo.json (a run killed while writing it) or one that is
    # not an object: a traceback before
    out = tmp_path / "run"
    out.mkdir()
    (out / "genzoo.json").write_text(content)
    assert run("train", "vae", "--smoke", "--out", out) == 2
    err = capsys.readouterr().err
    assert "genzoo.json cannot be read" in err and "--out" in err, err


def test_settings_are_written_whole(tmp_path, monkeypatch):
    # written to a temporary file, then moved into place: a kill while
    # writing leaves the old file
    out = tmp_path / "run"
    out.mkdir()
    settings = {"out": str(out), "model": "vae", "resumed": False}
    cli._write_settings(settings)
    before = (out / "genzoo.json").read_text()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(json, "dump", killed)
    with pytest.raises(KeyboardInterrupt):
        cli._write_settings(settings, finished=True)
    assert (out / "genzoo.json").read_text() == before
    assert json.loads(before) == {"model": "vae", "finished": False}


def test_text_epochs_have_the_steps_asked_for(tmp_path):
    """A text with fewer windows than --steps-per-epoch batches: each epoch
    still has --steps-per-epoch steps (before, Keras stopped the run when
    the windows ran out: 75 of 600 steps)."""
    out = tmp_path / "run"
    text = tmp_path / "book.txt"
    text.write_text("to be or not to be, that is the question. " * 20)
    assert run("train", "bigram", "--smoke", "--text", text,
               "--steps-per-epoch", 20, "--batch-size", 64, "--epochs", 2,
               "--out", out, "--verbose", 0) == 0
    model = keras.saving.load_model(out / "bigram.keras")
    assert int(model.optimizer.iterations) == 2 * 20


def test_an_auto_encoder_run_with_too_few_images_cannot_get_stuck(
        tmp_path, capsys):
    """A run left by an older genzoo (it trained, then failed fitting the
    mixture, and every rerun resumed into the failure) is named as one
    that cannot finish; the seeded run's shuffling is not moved on by
    counting its images (they are counted without shuffling)."""
    out = tmp_path / "stuck"
    (out / "backup").mkdir(parents=True)
    (out / "backup" / "training_metadata.json").write_text('{"epoch": 1}')
    settings = dict(model="ae", dataset="embedded_mnist", text=None,
                    batch_size=128, seed=0, conditional=False,
                    steps_per_epoch=None, download=False, limit=5,
                    smoke=False, epochs=1, finished=False)
    (out / cli.SETTINGS_FILE).write_text(json.dumps(settings))
    assert run("train", "ae", "--out", out) == 2
    err = capsys.readouterr().err
    assert "gives 5 training image(s)" in err, err
    assert "this unfinished run cannot finish" in err, err
    assert "larger --limit" not in err, err


def test_a_backend_that_is_not_installed_exits_2(monkeypatch, capsys):
    """(The new process died in `import keras` with a traceback: a plain
    `pip install keras-genzoo` brings TensorFlow alone.)"""
    import importlib.util

    other = {"tensorflow": "jax", "jax": "torch", "torch": "tensorflow"}[
        BACKEND]
    module = cli.BACKEND_PACKAGES[other][0]
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
        None if name == module else find_spec(name, *a)))
    monkeypatch.setattr(cli, "_run_under", lambda *a, **k: pytest.fail(
        "started a process for a backend that is not installed"))
    assert run("train", "vae", "--backend", other) == 2
    err = capsys.readouterr().err
    assert f"--backend {other}: {module} is not installed" in err, err
    assert "pip install" in err, err


def test_another_backend_replaces_the_process(monkeypatch):
    """From the command line, `--backend` other than the current one
    replaces the process (before: a child that outlived a killed genzoo);
    from Python, a child's signal is reported as a shell does."""
    other = {"tensorflow": "jax", "jax": "torch", "torch": "tensorflow"}[
        BACKEND]
    argv = ["generate", "x.keras", "--backend", other]
    called = []

    def execve(path, args, env):
        called.append((path, args, env["KERAS_BACKEND"]))
        raise _Interrupted

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.setattr(sys, "argv", ["genzoo"] + argv)
    with pytest.raises(_Interrupted):
        cli.main()
    assert called == [(sys.executable,
                       [sys.executable, "-m", "keras_genzoo.cli"] + argv,
                       other)]
    monkeypatch.setattr(cli.subprocess, "call", lambda *a, **k: -9)
    assert cli.main(argv) == 128 + 9


BAD = [
    ([], "the following arguments are required"),
    (["train"], "the following arguments are required"),
    (["train", "vqvae"], "invalid choice"),
    (["train", "vae", "--epochs", "0"], "positive whole number"),
    (["train", "vae", "--batch-size", "x"], "positive whole number"),
    (["train", "vae", "--seed", "-1"], "whole number in 0..4294967295"),
    # (numpy's traceback from set_random_seed, after the data was loaded)
    (["train", "vae", "--seed", str(2**32)], "whole number in 0..4294967295"),
    # (trained every epoch, then the 10-component mixture's fit failed,
    # and every rerun resumed into the same failure)
    (["train", "ae", "--limit", "5"], "`ae` needs at least 10"),
    (["train", "vae", "--text", "book.txt"], "--text is for the text models"),
    (["train", "gpt", "--dataset", "mnist"], "--dataset is for the image"),
    (["train", "vae", "--dataset", "mnist", "--text", "t.txt"],
     "not allowed with argument"),
    (["train", "ae", "--conditional"], "--conditional works with"),
    (["train", "bigram", "--limit", "5"], "--limit is for the image models"),
    (["train", "vae", "--steps-per-epoch", "5"], "is for the text models"),
    (["train", "vae", "--dataset", "no_such_dataset"], "Unknown image"),
    (["train", "gpt", "--text", "no_such_file.txt"], "Unknown text"),
    (["train", "vae", "--backend", "numpy"], "invalid choice"),
    (["generate"], "the following arguments are required"),
    (["generate", "missing.keras"], "is not a file"),
    (["generate", "x.keras", "--num", "-2"], "positive whole number"),
    (["generate", "x.keras", "--temperature", "nan"], "positive number"),
    (["train", "gpt", "--download"], "--download is for the image models"),
]


@pytest.mark.parametrize("argv,message", BAD,
                         ids=[" ".join(a) or "nothing" for a, _ in BAD])
def test_bad_arguments_exit_2_with_usage_and_write_nothing(
        argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run(*argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: genzoo") and message in err, err
    assert os.listdir(tmp_path) == []  # no runs/ folder, no grid


def test_generate_refuses_what_the_model_cannot_do(tmp_path, capsys):
    out = tmp_path / "gan"
    assert run("train", "gan", "--smoke", "--epochs", 1, "--out", out,
               "--verbose", 0) == 0
    text = tmp_path / "t.txt"
    text.write_text("abcabcabc" * 100)
    fake = tmp_path / "fake.keras"
    fake.write_text("not a model")
    short = tmp_path / "short.txt"
    short.write_text("abcabcabc" * 3)
    gpt = tmp_path / "gpt"
    assert run("train", "bigram", "--smoke", "--text", text, "--epochs", 1,
               "--out", gpt, "--verbose", 0) == 0
    capsys.readouterr()
    cases = [
        (["generate", out / "gan.keras", "--labels", "1"], "not conditional"),
        (["generate", out / "gan.keras", "--prompt", "a"], "--prompt is for"),
        (["generate", gpt / "bigram.keras"], "give --prompt"),
        (["generate", gpt / "bigram.keras", "--prompt", "xyz"],
         "outside the model's vocabulary"),
        (["train", "bigram", "--text", short, "--out", tmp_path / "new"],
         "fewer than one window"),
        (["generate", out / "history.csv"], "cannot load"),
        (["generate", fake], "is not a .keras file"),
        # each kind of model's options are refused for the other kind
        # (ignored before)
        (["generate", out / "gan.keras", "--temperature", "0.5"],
         "--temperature is for text models"),
        (["generate", out / "gan.keras", "--max-new-tokens", "5"],
         "--max-new-tokens is for text models"),
        (["generate", out / "gan.keras", "--steps", "5"],
         "--steps is for diffusion models"),
        (["generate", gpt / "bigram.keras", "--prompt", "a", "--num", "3"],
         "--num is for image models"),
        (["generate", gpt / "bigram.keras", "--prompt", "a", "--steps", "3"],
         "--steps is for diffusion models"),
        # a format PIL only reads, or cannot write in grayscale (a
        # KeyError / OSError after sampling, before)
        (["generate", out / "gan.keras", "--out", tmp_path / "grid.psd"],
         "end its name in .png"),
        (["generate", out / "gan.keras", "--out", tmp_path / "grid.xbm"],
         "end its name in .png"),
        # --out under a file (a traceback after sampling or training)
        (["generate", out / "gan.keras", "--out", text / "grid.png"],
         "is a file, not a folder"),
        (["generate", gpt / "bigram.keras", "--prompt", "a", "--out",
          text / "deeper" / "s.txt"], "is a file, not a folder"),
        (["train", "vae", "--smoke", "--out", text / "run"],
         "is a file, not a folder"),
        # --out: a folder, or a grid's name without an image extension
        # (PIL's error after sampling, before)
        (["generate", out / "gan.keras", "--out", tmp_path], "is a folder"),
        (["generate", gpt / "bigram.keras", "--prompt", "a", "--out", out],
         "is a folder"),
        (["generate", out / "gan.keras", "--out", tmp_path / "grid"],
         "end its name in .png"),
        # a finished run is not overwritten, another model is refused
        (["train", "gan", "--smoke", "--out", out], "finished gan run"),
    ]
    before = sorted(os.listdir(tmp_path))
    for argv, message in cases:
        assert run(*argv) == 2, argv
        err = capsys.readouterr().err
        assert "usage: genzoo" in err and message in err, (argv, err)
    assert sorted(os.listdir(tmp_path)) == before
    # the CLI has no option for a model's window length
    assert run("train", "bigram", "--text", short, "--out",
               tmp_path / "new") == 2
    err = capsys.readouterr().err
    assert "a shorter sequence_length" not in err, err
    assert "validation_split" not in err and "..\n" not in err, err

    # without --seed each draw is a fresh one (before: the same grid from
    # every load of the file: the model's seed generator is saved in it),
    # and the seed printed draws it again
    grids = [tmp_path / "a.png", tmp_path / "b.png"]
    seeds = []
    for grid in grids:
        assert run("generate", out / "gan.keras", "--num", 4,
                   "--out", grid) == 0
        line = capsys.readouterr().out
        assert f"wrote {grid} (seed " in line, line
        seeds.append(int(line.split("(seed ")[1].split(")")[0]))
    assert seeds[0] != seeds[1]
    assert not np.array_equal(np.asarray(Image.open(grids[0])),
                              np.asarray(Image.open(grids[1])))
    again = tmp_path / "again.png"
    assert run("generate", out / "gan.keras", "--num", 4, "--seed",
               seeds[0], "--out", again) == 0
    assert "(seed" not in capsys.readouterr().out
    assert np.array_equal(np.asarray(Image.open(grids[0])),
                          np.asarray(Image.open(again)))
    texts = []
    for _ in range(2):
        assert run("generate", gpt / "bigram.keras", "--prompt", "a",
                   "--max-new-tokens", 40) == 0
        printed = capsys.readouterr()
        assert "genzoo: seed " in printed.err, printed.err
        texts.append(printed.out)
    assert texts[0] != texts[1]


def test_a_text_that_is_not_utf8_names_the_fix_the_command_has(
        tmp_path, capsys):
    # the library's message named `load_text(encoding=)`, which the
    # command has no option for
    text = tmp_path / "latin1.txt"
    text.write_bytes("caf\u00e9 ".encode("latin-1") * 200)
    assert run("train", "bigram", "--text", text, "--smoke", "--out",
               tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert "not valid utf-8" in err and "iconv -f latin1" in err, err
    assert "load_text" not in err and not (tmp_path / "run").exists()
    # a UTF-16 file: converting it from latin1 gave text with NULs
    text = tmp_path / "utf16.txt"
    text.write_bytes("caf\u00e9 ".encode("utf-16") * 200)
    assert run("train", "bigram", "--text", text, "--smoke", "--out",
               tmp_path / "run") == 2
    assert "iconv -f utf-16" in capsys.readouterr().err


def test_image_folders_that_cannot_train_exit_2(tmp_path, capsys):
    """A folder too small to hold out a validation tenth, and
    `--conditional` on a folder without class sub-folders (no labels)."""
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(12):
        Image.fromarray(np.full((8, 8), i * 20, "uint8")).save(
            flat / f"{i}.png")
    small = tmp_path / "small"
    small.mkdir()
    for i in range(5):
        Image.fromarray(np.full((8, 8), i, "uint8")).save(small / f"{i}.png")
    cases = [
        (["train", "vae", "--dataset", small], "too few to hold out"),
        (["train", "vae", "--dataset", flat, "--conditional"],
         "at least two classes"),
    ]
    for argv, message in cases:
        assert run(*argv, "--out", tmp_path / "run") == 2, argv
        err = capsys.readouterr().err
        assert "usage: genzoo" in err and message in err, (argv, err)
        # the library's advice the command has no option for
        assert "`validation_split=0`" not in err, err
        assert not os.path.exists(tmp_path / "run")
    # an --out inside the folder became a class of its images: a resumed
    # run read the sample grids (and left the user's images out)
    for out in (flat / "run", flat):
        assert run("train", "vae", "--dataset", flat, "--out", out) == 2
        err = capsys.readouterr().err
        assert "is inside --dataset" in err, err
        assert not os.path.exists(flat / "run")
        assert not os.path.exists(flat / "genzoo.json")
    # the folder without classes trains an auto-encoder, whose grid shows
    # the validation image (bare batches: no labels) over its
    # reconstruction: one column of two 8x8 images, padding 2, scale 2
    out = tmp_path / "ae"
    assert run("train", "ae", "--dataset", flat, "--epochs", 1, "--out",
               out, "--verbose", 0) == 0
    assert grid_size(out / "reconstructions_epoch_001.png") == (
        2 * (8 + 2 + 2), 2 * (2 * 8 + 3 * 2))


def test_help_documents_every_command_and_option(capsys):
    assert run("--help") == 0
    top = capsys.readouterr().out
    assert "train" in top and "generate" in top
    assert run("train", "--help") == 0
    text = capsys.readouterr().out
    # one default per option: the help's own "[default: ...]" where the
    # option's value is None, argparse's "(default: ...)" otherwise
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "(default: 1)" in text  # --verbose
    for word in cli.MODELS + ("--dataset", "--text", "--epochs",
                              "--batch-size", "--backend", "--out",
                              "--smoke", "--conditional", "--download"):
        assert word in text, word
    assert run("generate", "--help") == 0
    text = capsys.readouterr().out
    for word in ("--num", "--out", "--prompt", "--seed", "--labels",
                 "--steps", "--temperature", "--top-k"):
        assert word in text, word
    assert "(default: None)" not in text and "[default: 64]" in text


@pytest.mark.slow
def test_backend_option_runs_the_command_under_that_backend(tmp_path):
    other = {"tensorflow": "jax", "jax": "torch", "torch": "tensorflow"}[
        BACKEND]
    out = tmp_path / "bigram"
    text = tmp_path / "t.txt"
    text.write_text("hello world " * 100)
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-m", "keras_genzoo.cli", "train", "bigram",
         "--smoke", "--text", str(text), "--epochs", "1", "--out", str(out),
         "--backend", other, "--verbose", "0"],
        env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"on {other}, writing into" in done.stdout
    assert os.path.isfile(out / "bigram.keras")


def test_a_run_stopped_after_its_last_epoch_does_not_train_again(
        tmp_path, monkeypatch, capsys):
    """`genzoo train ae` stopped while it fits its latent prior (after the
    last epoch) resumes there: Keras' backup is kept until the run is
    finished, so the rerun trains no epoch again."""
    from keras_genzoo import AutoEncoder

    out = tmp_path / "run"
    fit_prior = AutoEncoder.fit_latent_prior

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(AutoEncoder, "fit_latent_prior", interrupted)
    argv = ("train", "ae", "--smoke", "--epochs", 2, "--out", out,
            "--verbose", 0)
    with pytest.raises(KeyboardInterrupt):
        run(*argv)
    assert os.listdir(out / "backup")
    assert not json.loads((out / "genzoo.json").read_text())["finished"]
    monkeypatch.setattr(AutoEncoder, "fit_latent_prior", fit_prior)
    assert run(*argv) == 0
    assert "resuming ae" in capsys.readouterr().out
    assert history_epochs(out) == [0, 1]  # no epoch trained again
    model = keras.saving.load_model(out / "ae.keras")
    assert int(model.optimizer.iterations) == 2 * 2
    assert model.latent_prior is not None
    assert not os.path.exists(out / "backup")
    assert json.loads((out / "genzoo.json").read_text())["finished"]


def test_grid_file_format_is_checked_in_the_grid_mode(tmp_path):
    # QOI writes RGB but not grayscale: a 4-channel model's grid is RGB
    # (the alpha channel is dropped), so .qoi is fine for it (refused
    # before, checked in grayscale), and refused for a 1-channel model
    import types

    rgba = types.SimpleNamespace(image_shape=(8, 8, 4))
    gray = types.SimpleNamespace(image_shape=(8, 8, 1))
    cli._check_image_file(str(tmp_path / "grid.qoi"), rgba)
    with pytest.raises(cli.UsageError, match="end its name in .png"):
        cli._check_image_file(str(tmp_path / "grid.qoi"), gray)
