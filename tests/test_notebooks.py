"""The Colab notebooks: made from the examples, and they run.

`notebooks/NAME.ipynb` is generated from `examples/NAME.py` by
`tools/make_notebooks.py`; the first test fails when one has drifted. The
others execute each notebook in a Jupyter kernel (nbclient), on this test
run's backend and in `--smoke` mode, the way Colab runs it: the install
cell, the backend cell, the GPU check, then the example, with its pictures
shown in the notebook. The options and the backend go in the way papermill
injects parameters, as a cell after the tagged one.
"""

import importlib.metadata
import importlib.util
import json
import os
import re
import sys

import keras
import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import make_notebooks  # noqa: E402

NOTEBOOKS = os.path.join(ROOT, "notebooks")
RESULT = "NOTEBOOK RESULT "


def test_notebooks_are_made_from_the_examples(capsys):
    assert make_notebooks.names() == sorted(
        f[:-6] for f in os.listdir(NOTEBOOKS) if f.endswith(".ipynb"))
    assert make_notebooks.main(["--check"]) == 0, capsys.readouterr().out


def test_a_changed_script_makes_the_check_fail(tmp_path, monkeypatch,
                                               capsys):
    examples = tmp_path / "examples"
    examples.mkdir()
    (tmp_path / "notebooks").mkdir()
    with open(os.path.join(ROOT, "examples", "bigram_shakespeare.py")) as f:
        script = f.read()
    (examples / "bigram_shakespeare.py").write_text(script)
    monkeypatch.setattr(make_notebooks, "EXAMPLES", str(examples))
    monkeypatch.setattr(make_notebooks, "NOTEBOOKS",
                        str(tmp_path / "notebooks"))
    assert make_notebooks.main(["--check"]) == 1  # missing
    assert make_notebooks.main([]) == 0
    assert make_notebooks.main(["--check"]) == 0
    (examples / "bigram_shakespeare.py").write_text(
        script.replace("--epochs\", type=int, default=3",
                       "--epochs\", type=int, default=4"))
    assert make_notebooks.main(["--check"]) == 1
    assert "default=4" in capsys.readouterr().out


@pytest.mark.parametrize("name", make_notebooks.names())
def test_notebook_setup_cells(name):
    notebook = nbformat.read(os.path.join(NOTEBOOKS, f"{name}.ipynb"), 4)
    sources = [cell.source for cell in notebook.cells]
    repository = make_notebooks.repository()
    assert sources[0] == (
        "[![Open In Colab](https://colab.research.google.com/assets/"
        f"colab-badge.svg)](https://colab.research.google.com/github/"
        f"{repository}/blob/main/notebooks/{name}.ipynb)")
    assert sources[1].startswith("# ")  # the example's title
    install, = (c.source for c in notebook.cells
                if "install" in c.metadata.get("tags", []))
    # Only the package, only when missing, and nothing that would replace
    # the frameworks Colab has: no upgrade or reinstall flags; the
    # frameworks installed, at their versions (`{keep}`)
    pip = re.findall(r"%pip install (.*)", install)
    assert pip == ['-q "keras-genzoo @ git+https://github.com/'
                   f'{repository}@main" {{keep}}'], pip
    assert 'find_spec("keras_genzoo") is None' in install
    backend, = (c.source for c in notebook.cells
                if "backend" in c.metadata.get("tags", []))
    assert 'os.environ["KERAS_BACKEND"] = "jax"' in backend
    order = [next(i for i, c in enumerate(notebook.cells)
                  if tag in c.metadata.get("tags", []))
             for tag in ("install", "backend", "gpu-check", "parameters")]
    assert order == sorted(order)
    first_keras = next(i for i, s in enumerate(sources)
                       if "import keras" in s)
    assert first_keras == order[2]  # after the backend is chosen
    assert notebook.metadata["accelerator"] == "GPU"


def test_repository_must_be_a_github_url(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(
        '[project.urls]\nRepository = "https://example.com/x"\n')
    monkeypatch.setattr(make_notebooks, "ROOT", str(tmp_path))
    with pytest.raises(ValueError, match="GitHub URL"):
        make_notebooks.repository()


def _inject(notebook, tag, source):
    """Adds a code cell after the cell tagged `tag` (papermill's way)."""
    index = next(i for i, c in enumerate(notebook.cells)
                 if tag in c.metadata.get("tags", []))
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(source))


def run_notebook(name, args, directory, extra=""):
    """Executes a notebook with `args` on this backend; returns its outputs.

    Returns `(outputs, result)`: every output of every cell, and the JSON
    of `summary` as computed by `extra` in the kernel after the example.
    """
    notebook = nbformat.read(os.path.join(NOTEBOOKS, f"{name}.ipynb"), 4)
    _inject(notebook, "backend",
            f"os.environ[\"KERAS_BACKEND\"] = "
            f"{keras.backend.backend()!r}")
    _inject(notebook, "parameters", f"NOTEBOOK_ARGS = {args!r}")
    notebook.cells.append(nbformat.v4.new_code_cell(
        "import json\n"
        "summary = {}\n"
        f"{extra}\n"
        f"print({RESULT!r} + json.dumps(summary, default=str))"))
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(directory)}}).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code"
               for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs
                   if o.output_type == "stream")
    result = json.loads(text.split(RESULT)[-1])
    return outputs, text, result


def _images(outputs):
    return [o for o in outputs if o.output_type == "display_data"
            and "image/png" in o.get("data", {})]


RESULT_PATHS = ("summary['paths'] = result['paths']\n"
                "summary['history'] = result['history']\n")


# A notebook's options are read the same way on every backend, and the
# models they choose (conditional VAE, WGAN-GP, conditional GAN) are tested
# on every backend in their own test files: the runs with options take the
# quickest backend only (each notebook run costs a kernel start and a
# compile, 50-70 s on JAX).
_OPTIONS_ON_ONE_BACKEND = pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="a notebook's options run on the torch backend only")


@pytest.mark.parametrize(
    "name, flags, num_images",
    # the PNG grids and the keras_genzoo.plots figures each shows
    [("vae_mnist", [], 3 + 3),
     pytest.param("vae_mnist", ["--conditional"], 4 + 3,
                  marks=_OPTIONS_ON_ONE_BACKEND),
     ("autoencoder_mnist", [], 1 + 2), ("gan_mnist", [], 1 + 2),
     pytest.param("gan_mnist", ["--model", "wgan-gp", "--conditional"],
                  2 + 2, marks=_OPTIONS_ON_ONE_BACKEND),
     ("bigram_shakespeare", [], 1), ("minigpt_shakespeare", [], 2)],
)
def test_notebook_runs(name, flags, num_images, tmp_path):
    out = tmp_path / "out"
    outputs, text, result = run_notebook(
        name, ["--smoke", "--output-dir", str(out)] + flags, tmp_path,
        RESULT_PATHS)
    assert f"on {keras.backend.backend()}; GPUs: " in text  # the GPU check
    assert f"backend: {keras.backend.backend()}" in text
    for path in result["paths"]:
        assert os.path.getsize(path) > 0, path
        assert os.path.dirname(path) == str(out)
    assert result["history"] and all(
        len(v) >= 1 for v in result["history"].values())
    assert len(_images(outputs)) == num_images
    if name.endswith("shakespeare"):
        assert "ROMEO:" in text  # the generated text is printed


def test_diffusion_notebook_trains_then_loads(tmp_path):
    outputs, _, result = run_notebook(
        "diffusion_mnist", ["--smoke", "--conditional", "--output-dir",
                            str(tmp_path / "trained")], tmp_path,
        RESULT_PATHS)
    # samples grid (PNG), history, samples, reverse process, img2img and
    # inpainting (the GIFs are image/gif)
    assert result["history"] and len(_images(outputs)) == 6
    saved = str(tmp_path / "trained" / "diffusion.keras")
    assert saved in result["paths"]
    # --load draws the figures with the saved model, without training
    outputs, _, again = run_notebook(
        "diffusion_mnist", ["--smoke", "--load", saved, "--output-dir",
                            str(tmp_path / "loaded")], tmp_path,
        RESULT_PATHS)
    assert again["history"] is None
    assert sorted(os.path.basename(p) for p in again["paths"]) == [
        "diffusion.keras", "diffusion_img2img.png", "diffusion_inpaint.png",
        "diffusion_reverse.png", "diffusion_samples.png"]
    for path in again["paths"]:
        assert os.path.getsize(path) > 0, path
    assert len(_images(outputs)) == 4  # no training: no grid, no history


def test_bigram_to_gpt_notebook(tmp_path):
    _, _, result = run_notebook(
        "bigram_to_gpt", ["--smoke", "--output-dir", str(tmp_path)],
        tmp_path, "summary.update(result)")
    assert [r["stage"].split()[0] for r in result["results"]] == [
        "bigram", "one", "multi-head", "full"]
    for r in result["results"]:
        assert 0 < r["val_loss"] < 10 and r["sample"].startswith("ROMEO:")
    assert os.path.getsize(result["paths"][0]) > 0


def test_anomaly_notebook(tmp_path):
    outputs, _, result = run_notebook(
        "anomaly_mnist", ["--smoke", "--output-dir", str(tmp_path)],
        tmp_path,
        "summary['rows'] = result\n"
        # the example's AUROC on ties and on both orders
        "summary['auroc'] = [auroc([1.0, 2.0], [3.0, 4.0]),\n"
        "                    auroc([3.0, 4.0], [1.0, 2.0]),\n"
        "                    auroc([1.0, 2.0], [1.0, 2.0])]")
    assert result["auroc"] == [1.0, 0.0, 0.5]
    rows = result["rows"]
    assert [row["model"] for row in rows] == ["ae", "vae"]
    for row in rows:
        # even one epoch on 400 digits tells uniform noise from digits
        assert row["noise"]["auroc"] > 0.95, row
        assert row["noise"]["flagged"] > 0.9, row
        assert row["normal_flagged"] < 0.2, row
        assert 0.0 <= row["unseen class"]["auroc"] <= 1.0
        assert os.path.getsize(row["extremes"]) > 0
    assert len(_images(outputs)) >= 2


def test_install_cell_is_skipped_where_the_package_is(tmp_path):
    # The kernel sees the same package as this test (an editable install):
    # the install cell must not run pip there.
    assert importlib.util.find_spec("keras_genzoo") is not None
    notebook = nbformat.v4.new_notebook()
    install, = (c for c in nbformat.read(
        os.path.join(NOTEBOOKS, "vae_mnist.ipynb"), 4).cells
        if "install" in c.metadata.get("tags", []))
    notebook.cells = [install]
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert notebook.cells[0].outputs == []


def test_install_cell_keeps_the_installed_frameworks(tmp_path):
    # Where the package is missing, pip is given the frameworks installed
    # at their own versions: without them it took the newest keras-hub,
    # whose tensorflow-text asked for a newer TensorFlow than Colab's
    # (TensorFlow 2.19 -> 2.21, measured with pip's --dry-run)
    notebook = nbformat.v4.new_notebook()
    install, = (c for c in nbformat.read(
        os.path.join(NOTEBOOKS, "vae_mnist.ipynb"), 4).cells
        if "install" in c.metadata.get("tags", []))
    source = install.source.replace(
        'importlib.util.find_spec("keras_genzoo") is None', "True")
    assert source.count("%pip install -q") == 1
    install.source = source.replace("%pip install -q", "!echo")
    notebook.cells = [install]
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(o.get("text", "") for o in notebook.cells[0].outputs)
    kept = [f"{name}=={importlib.metadata.version(name)}"
            for name in make_notebooks.KEPT_FRAMEWORKS]
    assert printed.split() == (
        make_notebooks.install_requirement().split() + kept), printed


def test_docs_page_links_every_notebook():
    with open(os.path.join(ROOT, "docs", "notebooks.md")) as f:
        page = f.read()
    for name in make_notebooks.names():
        assert make_notebooks.badge(name) in page, name
    assert make_notebooks.install_requirement() in page


def test_plots_show_inline_in_a_kernel(tmp_path):
    # keras_genzoo.plots' figures come without pyplot: a fresh kernel must
    # still show them as pictures, not as "<Figure size ...>"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(
        "import numpy as np\n"
        "from keras_genzoo import plots\n"
        "plots.plot_samples(np.zeros((4, 8, 8, 1)))"),
        nbformat.v4.new_code_cell(
        "display(plots.plot_history({'loss': [2.0, 1.0]}))")]
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    for cell in notebook.cells:
        output, = cell.outputs
        assert "image/png" in output.data, output
