"""Resume after `kill -9`: every family, on the current backend.

A real training process (tests/resume_worker.py, a user's script with
`keras.callbacks.BackupAndRestore`) trains every family in turn and is
stopped in the middle of each one's second epoch: SIGKILL for the last
family, for the others an exception at the same batch, which leaves the
backup folder as the kill would (one process for all families: each start
costs 4-8 s of imports). Then it is started again. Each restarted `fit`
must begin at that epoch with exactly the state the last backup held
(every optimizer's steps and moments, both of a GAN's; the seed
generators; the weights), and end with the same optimizer steps and the
same weights as an uninterrupted run.
"""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

WORKER = os.path.join(os.path.dirname(__file__), "resume_worker.py")
FAMILIES = ["autoencoder", "vae", "gan", "wgan_gp", "diffusion", "bigram",
            "minigpt"]


def _run(args, timeout=1800):
    env = dict(os.environ, PYTHONHASHSEED="0", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, WORKER] + args, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The killed process, then the resumed one (with the references)."""
    workdir = str(tmp_path_factory.mktemp("resume"))
    families = ",".join(FAMILIES)
    killed = _run([families, workdir, "--kill-at", "1", "1"])
    resumed = _run([families, workdir, "--reference"])
    return workdir, killed, resumed


def _error(workdir):
    path = os.path.join(workdir, "error.txt")
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        return f.read()


def _records(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


STATE = ("optimizers", "seed_states", "weights")


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_resume_after_sigkill(family, runs):
    root, killed, resumed = runs
    workdir = os.path.join(root, family)
    # (the last family's process kills itself: its error, if it failed
    # before, is in its error.txt)
    assert killed.returncode == -signal.SIGKILL, (
        killed.stderr[-3000:] + _error(os.path.join(root, FAMILIES[-1])))
    # (exit status 1: a family failed, and its error.txt says how)
    assert resumed.returncode in (0, 1), resumed.stderr[-3000:]
    assert not _error(workdir), _error(workdir)
    # the killed run's records, then the resumed run's
    records = _records(os.path.join(workdir, "records.jsonl"))
    first = records[:3]
    assert [r["event"] for r in first] == ["begin", "epoch_end", "kill"]

    second = records[len(first):]
    reference = _records(os.path.join(workdir, "reference",
                                      "records.jsonl"))
    assert [r["event"] for r in second] == [
        "begin", "epoch_end", "epoch_end", "end"]

    # it starts at the killed epoch, from the backup of the epoch before
    begin, backup = second[0], first[1]
    assert begin["initial_epoch"] == 1
    for key in STATE:
        assert begin[key] == backup[key], key
    if family in ("gan", "conditional_gan", "wgan_gp"):
        assert set(begin["optimizers"]) == {"d_optimizer", "g_optimizer"}
    assert all(o["iterations"] > 0 for o in begin["optimizers"].values())

    # and ends where an uninterrupted run ends
    assert [r["epoch"] for r in second[1:3]] == [1, 2]
    end, twin = second[-1], reference[-1]
    assert end["optimizers"].keys() == twin["optimizers"].keys()
    for name, state in twin["optimizers"].items():
        assert end["optimizers"][name]["iterations"] == state["iterations"]
    assert end["seed_states"] == twin["seed_states"]
    ours = np.load(os.path.join(workdir, "final_weights.npz"))
    theirs = np.load(os.path.join(workdir, "reference", "final_weights.npz"))
    for key in theirs.files:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5,
                                   atol=1e-6, err_msg=key)
    for a, b in zip(second[2]["logs"].items(), reference[3]["logs"].items()):
        assert a[0] == b[0]
        np.testing.assert_allclose(a[1], b[1], rtol=1e-4, err_msg=a[0])
