"""Makes the Colab notebooks in notebooks/ from the literate examples.

Every `examples/NAME.py` is a jupytext "percent" script: `# %%` starts a code
cell, `# %% [markdown]` a text cell, and a cell marked `active="ipynb"` is
commented out in the script and live in the notebook (the pictures are shown
there). This tool reads each script with jupytext and writes
`notebooks/NAME.ipynb`: the script's title cell, then the same setup cells in
every notebook, then the rest of the script, cell for cell.

The setup cells:

- an "Open in Colab" badge;
- the install cell: `%pip install` of the package only when it is not
  importable yet. The package has lower bounds only, so pip keeps the
  TensorFlow, JAX and PyTorch that Colab already has;
- the backend cell (`KERAS_BACKEND`, before Keras is imported);
- the GPU check: the backend's accelerators, and what to do without one.

The notebooks are committed (Colab opens them from GitHub) and never edited
by hand: `make notebooks` writes them, and `--check` (run by the tests)
fails when one differs from what its script makes.

    python tools/make_notebooks.py            # write notebooks/*.ipynb
    python tools/make_notebooks.py --check    # exit 1 if any is stale
"""

import argparse
import difflib
import os
import re
import sys

import jupytext
import nbformat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
NOTEBOOKS = os.path.join(ROOT, "notebooks")
BRANCH = "main"
DEFAULT_BACKEND = "jax"  # the fastest on Colab's GPUs (docs/performance.md)


def repository():
    """`owner/name` of the GitHub repository, from pyproject's project.urls.

    The one place it is written: the badges and the install cell follow it.
    """
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        found = re.search(r'^Repository\s*=\s*"([^"]*)"', f.read(), re.M)
    url = found.group(1) if found else None  # (tomllib: Python 3.11+ only)
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)/?", url)
    if not match:
        raise ValueError(f"project.urls.Repository must be a GitHub URL, "
                         f"https://github.com/OWNER/NAME; got {url!r}")
    return match.group(1)


def colab_url(name):
    """The URL that opens `notebooks/NAME.ipynb` in Colab."""
    return (f"https://colab.research.google.com/github/{repository()}"
            f"/blob/{BRANCH}/notebooks/{name}.ipynb")


def badge(name):
    """The "Open in Colab" badge of a notebook, as markdown."""
    return (f"[![Open In Colab](https://colab.research.google.com/assets/"
            f"colab-badge.svg)]({colab_url(name)})")


# what the install cell keeps at the versions installed
KEPT_FRAMEWORKS = ("tensorflow", "jax", "jaxlib", "torch")


def install_requirement():
    """What the install cell gives pip: the package from its repository."""
    return f"keras-genzoo @ git+https://github.com/{repository()}@{BRANCH}"


def setup_cells(name):
    """The cells every notebook starts with, after the script's title."""
    md = nbformat.v4.new_markdown_cell
    code = nbformat.v4.new_code_cell
    return [
        md("## Setup\n"
           "Install the package (skipped when it is already there). The "
           "TensorFlow, JAX and PyTorch this machine has are kept at their "
           "versions, with their GPU support; pip adds only what is missing "
           "or older than the package needs (on Colab, usually Keras and "
           "keras-hub). Where it upgraded a package Colab had already "
           "imported, Colab asks to restart the session: do, then run on "
           "from the next cell."),
        code("import importlib.metadata\n"
             "import importlib.util\n"
             "\n"
             "if importlib.util.find_spec(\"keras_genzoo\") is None:\n"
             "    # the frameworks installed here, at their own versions: "
             "pip would\n"
             "    # otherwise take the newest keras-hub, whose "
             "tensorflow-text can\n"
             "    # ask for a newer TensorFlow, and replace Colab's\n"
             "    keep = []\n"
             "    for name in ("
             + ", ".join(f'"{name}"' for name in KEPT_FRAMEWORKS) + "):\n"
             "        try:\n"
             "            version = importlib.metadata.version(name)\n"
             "        except importlib.metadata.PackageNotFoundError:\n"
             "            continue\n"
             "        # (a TensorFlow older than the package takes: "
             "upgraded)\n"
             "        if name != \"tensorflow\" or tuple(\n"
             "                int(part) for part in "
             "version.split(\".\")[:2]) >= (2, 19):\n"
             "            keep.append(f\"{name}=={version}\")\n"
             "    keep = \" \".join(keep)\n"
             f"    %pip install -q \"{install_requirement()}\" {{keep}}",
             metadata={"tags": ["install"]}),
        md("Choose the backend before Keras is imported: `\"jax\"`, "
           "`\"tensorflow\"` or `\"torch\"`. The code below is the same on "
           "each. To change it later, restart the session "
           "(Runtime > Restart session) and run from here."),
        code("import os\n"
             "\n"
             f"os.environ[\"KERAS_BACKEND\"] = \"{DEFAULT_BACKEND}\"",
             metadata={"tags": ["backend"]}),
        md("Which accelerator does the backend see? Full runs want a GPU "
           "(on Colab: Runtime > Change runtime type > a GPU); "
           "`--smoke` runs anywhere in a minute."),
        code("import keras\n"
             "\n"
             "backend = keras.backend.backend()\n"
             "if backend == \"torch\":\n"
             "    import torch\n"
             "\n"
             "    gpus = [torch.cuda.get_device_name(i)\n"
             "            for i in range(torch.cuda.device_count())]\n"
             "elif backend == \"jax\":\n"
             "    import jax\n"
             "\n"
             "    gpus = [str(d) for d in jax.devices() "
             "if d.platform == \"gpu\"]\n"
             "else:\n"
             "    import tensorflow as tf\n"
             "\n"
             "    gpus = [d.name for d in tf.config.list_logical_devices"
             "(\"GPU\")]\n"
             "print(f\"Keras {keras.__version__} on {backend}; \"\n"
             "      f\"GPUs: {', '.join(gpus) or 'none, the CPU will do "
             "the work'}\")",
             metadata={"tags": ["gpu-check"]}),
    ]


def make_notebook(name):
    """The notebook of `examples/NAME.py`, as an nbformat v4 notebook."""
    script = jupytext.read(os.path.join(EXAMPLES, f"{name}.py"))
    cells = list(script.cells)
    if not cells or cells[0].cell_type != "markdown":
        raise ValueError(f"examples/{name}.py must start with a markdown "
                         f"cell (# %% [markdown]) that holds its title")
    notebook = nbformat.v4.new_notebook()
    title = cells[0]
    notebook.cells = [
        nbformat.v4.new_markdown_cell(badge(name)),
        nbformat.v4.new_markdown_cell(title.source),
        *setup_cells(name),
    ]
    for cell in cells[1:]:
        metadata = {"tags": cell.metadata["tags"]} \
            if cell.metadata.get("tags") else {}
        if cell.cell_type == "markdown":
            notebook.cells.append(
                nbformat.v4.new_markdown_cell(cell.source, metadata=metadata))
        else:
            notebook.cells.append(
                nbformat.v4.new_code_cell(cell.source, metadata=metadata))
    for index, cell in enumerate(notebook.cells):
        cell.id = f"{name.replace('_', '-')}-{index}"  # stable across runs
    notebook.metadata = {
        "accelerator": "GPU",  # Colab opens it on a GPU runtime
        "colab": {"name": f"{name}.ipynb", "provenance": []},
        "kernelspec": {"display_name": "Python 3", "language": "python",
                       "name": "python3"},
        "language_info": {"name": "python"},
    }
    nbformat.validate(notebook)
    return notebook


def names():
    """Every example's name, in order."""
    return sorted(f[:-3] for f in os.listdir(EXAMPLES)
                  if f.endswith(".py") and not f.startswith("_"))


def render(name):
    return nbformat.writes(make_notebook(name)) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a notebook is "
                             "missing or differs from its script")
    args = parser.parse_args(argv)
    stale = []
    os.makedirs(NOTEBOOKS, exist_ok=True)
    expected = {f"{name}.ipynb" for name in names()}
    for name in names():
        path = os.path.join(NOTEBOOKS, f"{name}.ipynb")
        text = render(name)
        old = None
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                old = f.read()
        if old == text:
            continue
        if args.check:
            stale.append(path)
            diff = difflib.unified_diff(
                (old or "").splitlines(), text.splitlines(),
                f"{path} (committed)", f"{path} (from examples/{name}.py)",
                lineterm="", n=1)
            print("\n".join(list(diff)[:40]))
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"wrote {os.path.relpath(path, ROOT)}")
    extra = sorted(set(f for f in os.listdir(NOTEBOOKS)
                       if f.endswith(".ipynb")) - expected)
    for name in extra:
        print(f"notebooks/{name} has no script in examples/")
    if stale or extra:
        if args.check:
            print("stale notebooks: run `make notebooks` "
                  "(python tools/make_notebooks.py)")
        return 1 if args.check or extra else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
