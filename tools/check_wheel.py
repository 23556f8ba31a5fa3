"""Builds the wheel and checks it as a user would get it (`make test` runs this).

1. `python -m build --wheel` (without build isolation: setuptools comes from
   the test environment, so nothing is downloaded).
2. A new, empty virtual environment that sees the test environment's packages
   (TensorFlow, JAX, PyTorch, keras, keras-hub...) through a `.pth` line, so
   that they count as already installed, as on a user's machine or Colab.
3. `pip install --no-index WHEEL` there: pip may download nothing, so it
   succeeds only if the installed frameworks satisfy every requirement of the
   wheel, and it must install keras-genzoo alone (no framework replaced).
4. From outside the source tree, with the wheel's copy imported: the embedded
   MNIST and Tiny Shakespeare load, the shipped classifier's weights load and
   classify, and the `genzoo` console script trains a smoke VAE and draws
   from it.

Prints one JSON line; exits non-zero on the first failure.

    python tools/check_wheel.py [--workdir build/wheel-check] [--backend jax]
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHECK = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import keras_genzoo
    from keras_genzoo import datasets, metrics
    where = os.path.dirname(keras_genzoo.__file__)
    assert where.startswith(sys.prefix), (where, sys.prefix)
    images, labels = datasets.load_embedded_mnist()
    assert images.shape == (10000, 28, 28, 1) and labels.shape == (10000,)
    text = datasets.load_text("tiny_shakespeare")
    assert len(text) == 1115394, len(text)
    classifier = metrics.mnist_classifier()
    predicted = np.argmax(classifier.predict(images[:500], verbose=0),
                          axis=-1)
    accuracy = float(np.mean(predicted == labels[:500]))
    assert accuracy > 0.95, accuracy
    print(json.dumps({"package": where, "accuracy_500": accuracy}))
""")


def run(command, **kwargs):
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, check=True, text=True,
                          capture_output=True, **kwargs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir",
                        default=os.path.join(ROOT, "build", "wheel-check"))
    parser.add_argument("--backend", default="tensorflow")
    args = parser.parse_args(argv)
    workdir = os.path.abspath(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    dist, venv, scratch = (os.path.join(workdir, name)
                           for name in ("dist", "venv", "scratch"))
    os.makedirs(scratch)

    run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
         "--outdir", dist, ROOT])
    (wheel,) = glob.glob(os.path.join(dist, "keras_genzoo-*.whl"))

    run([sys.executable, "-m", "venv", venv])
    python = os.path.join(venv, "bin", "python")
    site = run([python, "-c", "import sysconfig; "
                "print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    with open(os.path.join(site, "frameworks.pth"), "w") as f:
        f.write(ours + "\n")  # a path line: its own .pth files stay unread

    before = run([python, "-m", "pip", "list", "--format=json"],
                 cwd=scratch).stdout
    installed = run([python, "-m", "pip", "install", "--no-index",
                     "--no-cache-dir", wheel], cwd=scratch).stdout
    after = run([python, "-m", "pip", "list", "--format=json"],
                cwd=scratch).stdout
    versions = {p["name"].lower(): p["version"] for p in json.loads(after)}
    previous = {p["name"].lower(): p["version"] for p in json.loads(before)}
    # keras-genzoo alone is installed (the test environment's editable copy
    # is listed before too: pip sees it, outside this environment)
    lines = [line.strip() for line in installed.splitlines()
             if line.startswith("Installing collected packages:")]
    assert lines == ["Installing collected packages: keras-genzoo"], installed
    assert versions == previous, (previous, versions)
    for name in ("keras", "keras-hub", "tensorflow", "jax", "torch"):
        assert name in versions, name

    env = dict(os.environ, KERAS_BACKEND=args.backend,
               TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH="")
    checked = run([python, "-c", CHECK], cwd=scratch, env=env).stdout
    result = json.loads(checked.strip().splitlines()[-1])

    genzoo = os.path.join(venv, "bin", "genzoo")
    help_text = run([genzoo, "train", "--help"], cwd=scratch, env=env).stdout
    assert "--dataset" in help_text
    run([genzoo, "train", "vae", "--smoke", "--epochs", "1", "--out", "run",
         "--verbose", "0"], cwd=scratch, env=env)
    run([genzoo, "generate", os.path.join("run", "vae.keras"), "--num", "4",
         "--seed", "0", "--out", "grid.png"], cwd=scratch, env=env)
    assert os.path.getsize(os.path.join(scratch, "grid.png")) > 0

    wheel_mb = os.path.getsize(wheel) / 2**20
    result.update(wheel=os.path.basename(wheel), wheel_mb=round(wheel_mb, 2),
                  kept={name: versions.get(name) for name in (
                      "keras", "keras-hub", "tensorflow", "jax", "torch")},
                  backend=args.backend, ok=True)
    print(json.dumps(result))


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as error:
        print(f"FAILED: {' '.join(error.cmd)}\n{error.stdout}\n"
              f"{error.stderr[-4000:]}", file=sys.stderr)
        sys.exit(1)
