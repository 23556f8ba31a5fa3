"""The literate examples run end to end in their --smoke mode."""

import importlib.util
import os

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples")


def _load(name):
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "name, flags",
    [("vae_mnist", []), ("vae_mnist", ["--conditional"]),
     ("autoencoder_mnist", []), ("gan_mnist", []),
     ("gan_mnist", ["--model", "wgan-gp", "--conditional"]),
     ("diffusion_mnist", ["--conditional"]),
     ("bigram_shakespeare", []), ("minigpt_shakespeare", [])],
)
def test_example_smoke(name, flags, tmp_path):
    result = _load(name).main(
        ["--smoke", "--output-dir", str(tmp_path)] + flags)
    for path in result["paths"]:
        assert os.path.getsize(path) > 0, path
    assert all(len(v) >= 1 for v in result["history"].values())
    assert result["history"]
    if name == "diffusion_mnist":
        # --load draws the figures with the saved model, without training
        saved = os.path.join(str(tmp_path), "diffusion.keras")
        again = _load(name).main(["--smoke", "--load", saved, "--output-dir",
                                  str(tmp_path / "loaded")])
        assert again["history"] is None
        names = sorted(os.path.basename(p) for p in again["paths"])
        assert names == ["diffusion.keras", "diffusion_img2img.png",
                         "diffusion_inpaint.png", "diffusion_reverse.png",
                         "diffusion_samples.png"], names
        for path in again["paths"]:
            assert os.path.getsize(path) > 0, path


def test_bigram_to_gpt_smoke(tmp_path):
    result = _load("bigram_to_gpt").main(
        ["--smoke", "--output-dir", str(tmp_path)])
    assert [r["stage"].split()[0] for r in result["results"]] == [
        "bigram", "one", "multi-head", "full"]
    for r in result["results"]:
        assert 0 < r["val_loss"] < 10 and r["sample"].startswith("ROMEO:")
    assert os.path.getsize(result["paths"][0]) > 0


def test_anomaly_example_smoke(tmp_path):
    rows = _load("anomaly_mnist").main(
        ["--smoke", "--output-dir", str(tmp_path)])
    assert [row["model"] for row in rows] == ["ae", "vae"]
    for row in rows:
        # even one epoch on 400 digits tells uniform noise from digits
        assert row["noise"]["auroc"] > 0.95, row
        assert row["noise"]["flagged"] > 0.9, row
        assert row["normal_flagged"] < 0.2, row
        assert 0.0 <= row["unseen class"]["auroc"] <= 1.0
        assert os.path.getsize(row["extremes"]) > 0


def test_auroc():
    auroc = _load("anomaly_mnist").auroc
    assert auroc([1.0, 2.0], [3.0, 4.0]) == 1.0
    assert auroc([3.0, 4.0], [1.0, 2.0]) == 0.0
    assert auroc([1.0, 2.0], [1.0, 2.0]) == 0.5
