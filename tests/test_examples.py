"""The literate examples as scripts: options from the command line.

Each example is also a notebook (tests/test_notebooks.py runs every one of
them in `--smoke` mode, with all the checks on what they write); here the
same files run as `python examples/NAME.py ...` does, through `runpy`.
"""

import os
import random
import runpy
import sys

# Imported as a notebook test's kernel manager does in the same worker:
# without a running IPython shell the scripts must still read the command
# line, not NOTEBOOK_ARGS
import IPython  # noqa: F401
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        os.pardir, "examples")
NAMES = sorted(f[:-3] for f in os.listdir(EXAMPLES) if f.endswith(".py"))


def run_script(name, argv, monkeypatch):
    """Runs `examples/NAME.py` as `__main__` with `argv`; its globals."""
    # no IPython shell runs here (else the script reads NOTEBOOK_ARGS), even
    # where a notebook test of this worker imported IPython
    ipython = sys.modules.get("IPython")
    assert ipython is None or ipython.get_ipython() is None
    monkeypatch.setattr(sys, "argv", [f"{name}.py"] + argv)
    return runpy.run_path(os.path.join(EXAMPLES, f"{name}.py"),
                          run_name="__main__")


@pytest.mark.parametrize("name", NAMES)
def test_script_help(name, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_script(name, ["--help"], monkeypatch)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {name}.py") and "--smoke" in out


@pytest.mark.parametrize("name", NAMES)
def test_script_rejects_unknown_options(name, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_script(name, ["--smoke", "--no-such-option"], monkeypatch)
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --no-such-option" in \
        capsys.readouterr().err


@pytest.mark.parametrize("name", ["bigram_shakespeare"])
def test_script_smoke(name, monkeypatch, tmp_path):
    # the smallest; the notebooks test runs every example, the same code
    result = run_script(name, ["--smoke", "--output-dir", str(tmp_path)],
                        monkeypatch)["result"]
    for path in result["paths"]:
        assert os.path.getsize(path) > 0, path
        assert os.path.dirname(path) == str(tmp_path)
    assert result["history"]
    assert all(len(v) == 1 for v in result["history"].values())


TEXT_EXAMPLES = ["bigram_shakespeare", "bigram_to_gpt", "minigpt_shakespeare"]


@pytest.fixture(scope="module")
def own_text(tmp_path_factory):
    # lower case only: the examples' Tiny Shakespeare prompt, ROMEO:, is
    # not in its vocabulary
    path = tmp_path_factory.mktemp("text") / "book.txt"
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "ran"]
    rng = random.Random(0)
    text = " ".join(["the"] + [rng.choice(words) for _ in range(3000)])
    path.write_text(text + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("name", TEXT_EXAMPLES)
def test_text_script_on_your_own_text(name, own_text, monkeypatch, tmp_path):
    # the default prompt is one of the text's characters (ROMEO: was not,
    # and the examples failed after training)
    result = run_script(name, ["--smoke", "--text", own_text,
                               "--output-dir", str(tmp_path)],
                        monkeypatch)
    assert result["prompt"] == "t"
    samples = ([r["sample"] for r in result["results"]]
               if name == "bigram_to_gpt" else [result["sample"]])
    assert all(s.startswith("t") and len(s) > 1 for s in samples)
    with pytest.raises(ValueError, match=r"outside the model's vocabulary: "
                                         r"\[':', 'E', 'M', 'O', 'R'\]"):
        run_script(name, ["--smoke", "--text", own_text, "--prompt", "ROMEO:",
                          "--output-dir", str(tmp_path / "bad")],
                   monkeypatch)
    assert not os.path.exists(tmp_path / "bad")  # before any training


# --- a folder of images without class sub-folders (bare image batches) ---

@pytest.fixture(scope="module")
def plain_folder(tmp_path_factory):
    """40 small RGB PNGs, no sub-folders: `load_images` yields bare images."""
    import numpy as np
    from PIL import Image

    folder = tmp_path_factory.mktemp("plain")
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
                        ).save(folder / f"{i}.png")
    return str(folder)


@pytest.mark.parametrize("name", ["vae_mnist", "autoencoder_mnist"])
def test_image_script_on_a_folder_without_classes(name, plain_folder,
                                                  monkeypatch, tmp_path):
    # the batches are bare images, not (images, labels): the examples failed
    # to unpack them (or took one image's rows for 10 images)
    result = run_script(name, ["--smoke", "--data", plain_folder,
                               "--batch-size", "16",
                               "--output-dir", str(tmp_path)],
                        monkeypatch)
    assert result["result"]["history"]
    assert result["fixed_images" if name == "vae_mnist"
                  else "clean"].shape == (4, 16, 16, 3)  # the val split
    for path in result["result"]["paths"]:
        assert os.path.getsize(path) > 0, path
    if name == "vae_mnist":
        # a conditional model needs labels: a clear error, before training
        with pytest.raises(ValueError, match="needs labels"):
            run_script(name, ["--smoke", "--conditional", "--data",
                              plain_folder, "--output-dir",
                              str(tmp_path / "conditional")], monkeypatch)


@pytest.mark.parametrize("name", ["vae_mnist", "gan_mnist"])
def test_conditional_script_takes_the_classes_of_its_folder(
        name, monkeypatch, tmp_path):
    # --conditional made a 10-class model whatever --data held: 12 class
    # folders failed at `fit`, 3 drew classes 3..9 the data never had
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("a", "b", "c"):
        os.makedirs(tmp_path / "data" / label)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)
                            ).save(tmp_path / "data" / label / f"{i}.png")
    result = run_script(name, ["--smoke", "--conditional", "--data",
                               str(tmp_path / "data"), "--batch-size", "8",
                               "--output-dir", str(tmp_path / "out")],
                        monkeypatch)
    model = result["vae" if name == "vae_mnist" else "model"]
    assert model.num_classes == 3
    grid = [p for p in result["result"]["paths"] if "by_class" in p]
    assert len(grid) == 1
    with Image.open(grid[0]) as image:  # one row per class, 10 columns
        width, height = image.size
    assert round(height / width * 10) == 3
    if name == "gan_mnist":
        # no class sub-folders: said before training (the model's message
        # about (images, labels) tuples from inside `fit`, before)
        plain = tmp_path / "plain"
        plain.mkdir()
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)
                            ).save(plain / f"{i}.png")
        with pytest.raises(ValueError, match="needs labels.*sub-folder"):
            run_script(name, ["--smoke", "--conditional", "--data",
                              str(plain), "--output-dir",
                              str(tmp_path / "plain_out")], monkeypatch)


def test_diffusion_script_on_a_folder_without_classes_and_small_batches(
        plain_folder, monkeypatch, tmp_path):
    # One run (the diffusion smoke run is the slowest) for two bugs: bare
    # image batches failed to unpack, and with fewer fixed images than 8
    # (--batch-size 4) the image-to-image and inpainting grids still had 8
    # columns, their rows running into each other.
    from PIL import Image

    from keras_genzoo.callbacks import save_image_grid

    result = run_script("diffusion_mnist",
                        ["--smoke", "--data", plain_folder, "--batch-size",
                         "4", "--output-dir", str(tmp_path)], monkeypatch)
    assert result["fixed_images"].shape == (4, 16, 16, 3)
    assert result["fixed_labels"] is None
    assert result["result"]["history"]
    for path in result["result"]["paths"]:
        assert os.path.getsize(path) > 0, path
    for name, rows in [("diffusion_img2img.png", 5),
                       ("diffusion_inpaint.png", 4)]:
        # one column per fixed image, one row per kind
        expected = save_image_grid(
            result["np"].zeros((4 * rows, 16, 16, 3)),
            str(tmp_path / f"expected_{name}"), columns=4, scale=2)
        with Image.open(tmp_path / name) as got, \
                Image.open(expected) as want:
            assert got.size == want.size, name
    with pytest.raises(ValueError, match="needs labels"):
        run_script("diffusion_mnist",
                   ["--smoke", "--conditional", "--data", plain_folder,
                    "--output-dir", str(tmp_path / "conditional")],
                   monkeypatch)


def test_gan_progress_plot_shows_this_runs_grids_only(monkeypatch, tmp_path):
    # grids an earlier, longer run left in the same folder are not this
    # run's progress
    import numpy as np

    from keras_genzoo.callbacks import save_image_grid

    for epoch in (2, 3):
        save_image_grid(np.zeros((4, 28, 28, 1)),
                        str(tmp_path / f"samples_epoch_{epoch:03d}.png"))
    result = run_script("gan_mnist", ["--smoke", "--output-dir",
                                      str(tmp_path)], monkeypatch)
    figure = result["figures"]["dcgan_progress.png"]
    assert [ax.get_title() for ax in figure.axes] == ["epoch 1"]


class _Parsed(Exception):
    """What the options cell passed to `parse_args`."""


@pytest.mark.parametrize("as_cells", [False, True],
                         ids=["percent-run", "notebook-cells"])
@pytest.mark.parametrize("name", NAMES)
def test_options_under_an_ipython_shell(name, as_cells, monkeypatch):
    # `%run examples/NAME.py ARGS` (IPython sets __file__ and sys.argv)
    # reads the command line; the notebook's cells (no __file__) read
    # NOTEBOOK_ARGS. Before, a running shell always meant NOTEBOOK_ARGS.
    import argparse

    def parse_args(self, args=None, namespace=None):
        raise _Parsed(args)

    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--smoke"])
    path = os.path.join(EXAMPLES, f"{name}.py")
    with pytest.raises(_Parsed) as parsed:
        if as_cells:
            with open(path, encoding="utf-8") as f:
                code = compile(f.read(), path, "exec")
            exec(code, {"__name__": "__main__"})  # as cells: no __file__
        else:
            runpy.run_path(path, run_name="__main__")  # as %run does
    assert parsed.value.args[0] == ([] if as_cells else None)


@pytest.mark.parametrize("steps, every, epochs", [(5, 2, 3), (1, 3, 1)])
def test_minigpt_trains_exactly_its_steps(steps, every, epochs, own_text,
                                          monkeypatch, tmp_path, capsys):
    # fit(steps_per_epoch=every, epochs=steps // every) trained 4 steps for
    # --steps 5 --sample-every 2, and 3 for --steps 1 --sample-every 3
    from keras_genzoo import MiniGPT

    from_text = MiniGPT.from_text
    tiny = dict(num_layers=1, num_heads=2, hidden_dim=32, sequence_length=32)
    monkeypatch.setattr(MiniGPT, "from_text", classmethod(
        lambda cls, text, **kwargs: from_text(text, **{**kwargs, **tiny})))
    result = run_script("minigpt_shakespeare",
                        ["--text", own_text, "--steps", str(steps),
                         "--sample-every", str(every),
                         "--output-dir", str(tmp_path)], monkeypatch)
    assert int(result["gpt"].optimizer.iterations) == steps
    assert len(result["history"].history["loss"]) == epochs
    assert len(result["sampler"].samples) == epochs
    out = capsys.readouterr().out
    assert f"step {steps}/{steps} - " in out


@pytest.mark.parametrize("value", ["150", "-1", "nan"])
def test_anomaly_percentile_checked_before_training(value, monkeypatch,
                                                    capsys, tmp_path):
    # numpy refused it after the first model had trained (minutes in)
    with pytest.raises(SystemExit) as exit_info:
        run_script("anomaly_mnist", ["--smoke", "--percentile", value,
                                     "--output-dir", str(tmp_path / "out")],
                   monkeypatch)
    assert exit_info.value.code == 2
    assert "--percentile must be in 0..100" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")


COUNTS = {"anomaly_mnist": "--epochs", "autoencoder_mnist": "--latent-dim",
          "bigram_shakespeare": "--epochs", "bigram_to_gpt": "--steps",
          "diffusion_mnist": "--steps", "gan_mnist": "--batch-size",
          "minigpt_shakespeare": "--steps", "vae_mnist": "--epochs"}


@pytest.mark.parametrize("name", NAMES)
def test_counts_below_one_are_refused_before_anything_runs(
        name, monkeypatch, capsys, tmp_path):
    # `--epochs 0` trained nothing, then failed at the end (an IndexError,
    # a KeyError, a plot's error) or scored untrained models
    with pytest.raises(SystemExit) as exit_info:
        run_script(name, ["--smoke", COUNTS[name], "0", "--output-dir",
                          str(tmp_path / "out")], monkeypatch)
    assert exit_info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")


# each example's --smoke sizes, and an option given with --smoke
SMOKE_SIZES = {
    "anomaly_mnist": (dict(epochs=1, latent_dim=4), ["--epochs", "3"]),
    "autoencoder_mnist": (dict(epochs=1, latent_dim=8),
                          ["--latent-dim", "5"]),
    "bigram_shakespeare": (dict(epochs=1), ["--epochs", "2"]),
    "bigram_to_gpt": (dict(steps=5), ["--steps", "7"]),
    "diffusion_mnist": (dict(epochs=1, widths="8,16", steps=10),
                        ["--steps", "3", "--widths", "4,8"]),
    "gan_mnist": (dict(epochs=1), ["--epochs", "2"]),
    "minigpt_shakespeare": (dict(steps=6, sample_every=3),
                            ["--sample-every", "2"]),
    "vae_mnist": (dict(epochs=1, latent_dim=2), ["--epochs", "4"]),
}


@pytest.mark.parametrize("name", NAMES)
def test_smoke_sizes_give_way_to_options_given(name, monkeypatch):
    # --smoke replaced --epochs, --steps, --latent-dim... without a word:
    # `--smoke --epochs 3` trained one epoch. Now it changes the defaults
    # only. Each script is stopped at its first print, after its options.
    import argparse
    import builtins

    sizes, given = SMOKE_SIZES[name]
    parsed = []
    parse_args = argparse.ArgumentParser.parse_args

    def recording(self, *args, **kwargs):
        parsed.append(parse_args(self, *args, **kwargs))
        return parsed[-1]

    def stop(*args, **kwargs):
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", recording)
    monkeypatch.setattr(builtins, "print", stop)
    for argv, expected in (
            (["--smoke"], sizes),
            (["--smoke"] + given, {
                **sizes, **{given[i][2:].replace("-", "_"): given[i + 1]
                            for i in range(0, len(given), 2)}})):
        parsed.clear()
        with pytest.raises(_Parsed):
            run_script(name, argv, monkeypatch)
        values = {key: getattr(parsed[-1], key) for key in expected}
        assert {k: str(v) for k, v in values.items()} == \
            {k: str(v) for k, v in expected.items()}, argv


def test_smoke_run_trains_the_epochs_given(monkeypatch, tmp_path):
    result = run_script("bigram_shakespeare",
                        ["--smoke", "--epochs", "2", "--output-dir",
                         str(tmp_path)], monkeypatch)["result"]
    assert all(len(v) == 2 for v in result["history"].values())
