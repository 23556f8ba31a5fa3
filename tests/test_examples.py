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
