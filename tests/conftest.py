import os
import tempfile

if os.environ.get("GENZOO_TEST_XLA_FAST_COMPILE", "1") != "0":
    # The tests compile hundreds of tiny XLA programs (every JAX step, and
    # TensorFlow's jit_compile steps and inference loops) and run each a few
    # times: compiling, not running, is most of their time. XLA's backend
    # optimisation level 0 (LLVM without its optimisation passes) compiles
    # them about twice as fast and computes the same functions; measured on
    # 2 cores: test_gan + test_vae on JAX 246 s -> 144 s, test_gpt +
    # test_diffusion on TensorFlow 149 s -> 114 s. Set here, before Keras
    # imports a backend, so that the processes the tests start (resume and
    # cross-backend workers, CLI commands, notebook kernels) inherit it.
    # Only for tiny programs run a few times: on a real model the steps run
    # about twice as slow (MiniGPT's CPU recipe, one training step: 100 ms
    # -> 205 ms on TensorFlow, 115 ms -> 235 ms on JAX), which is why the
    # zoo does not set it for users. GENZOO_TEST_XLA_FAST_COMPILE=0 keeps
    # XLA's default.
    _flags = os.environ.get("XLA_FLAGS", "")
    if "--xla_backend_optimization_level" not in _flags:
        os.environ["XLA_FLAGS"] = (
            _flags + " --xla_backend_optimization_level=0").strip()

if os.environ.get("KERAS_BACKEND") == "jax" and os.environ.get(
        "GENZOO_TEST_XLA_CPU_CONV", "1") != "0":
    # XLA's CPU backend (jaxlib 0.10) hands convolutions to YNNPACK, whose
    # kernel for a convolution's weight gradient is slow: 385 ms against
    # 38 ms with XLA's own (Eigen) kernel for 64 maps of 28x28x32 -> 32
    # channels, 3x3. YNNPACK keeps the matrix products. The same flag is
    # what docs/performance.md recommends to users of the JAX backend on a
    # CPU. Only for JAX runs: an XLA that does not know a flag in XLA_FLAGS
    # aborts the process (TensorFlow 2.21's knows this one, so the other
    # backends' processes that a JAX run starts inherit it safely; the
    # oldest TensorFlow of `make test-oldest` may not).
    # GENZOO_TEST_XLA_CPU_CONV=0 keeps XLA's default.
    _flags = os.environ.get("XLA_FLAGS", "")
    if "--xla_cpu_experimental_ynn_fusion_type" not in _flags:
        os.environ["XLA_FLAGS"] = (
            _flags + " --xla_cpu_experimental_ynn_fusion_type=individual_dot"
        ).strip()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_genzoo import datasets  # noqa: E402

if keras.backend.backend() == "jax" and os.environ.get(
        "GENZOO_TEST_JAX_CACHE", "1") != "0":
    # Many tests build the same tiny models, and compiling them is most of
    # JAX's test time on a CPU: JAX's persistent compilation cache (in a
    # fresh folder per run, so no run sees another's; pytest-xdist's workers
    # share their controller's) compiles each program once.
    # GENZOO_TEST_JAX_CACHE=0 turns it off.
    import atexit
    import shutil

    import jax

    _cache = os.environ.get("GENZOO_TEST_JAX_CACHE_DIR")
    if not _cache:  # the controller (or a run without xdist) makes it
        _cache = tempfile.mkdtemp(prefix="genzoo_jax_cache_")
        os.environ["GENZOO_TEST_JAX_CACHE_DIR"] = _cache
        atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    jax.config.update("jax_compilation_cache_dir", _cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    # and the processes the tests start (the resume, cross-backend and
    # data-parallel workers, CLI commands, notebook kernels) share it
    # through JAX's own variables: a resumed run, or a kernel that loads
    # what the one before it trained, compiles nothing the first one did
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"


def pytest_report_header(config):
    return f"keras {keras.__version__}, KERAS_BACKEND={keras.backend.backend()}"


@pytest.fixture(scope="session")
def mnist():
    """A few hundred real MNIST digits (uint8, 28x28x1) and their labels."""
    images, labels = datasets.load_embedded_mnist()
    return images[:512], labels[:512]


@pytest.fixture(autouse=True)
def seeded():
    keras.utils.set_random_seed(0)


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


# `make test` runs each backend's tests on two pytest-xdist workers, one
# test file at a time each (`--dist loadfile --no-loadscope-reorder`): a
# worker takes the next file of the queue when it is almost done with its
# own. Heaviest first, then the many light ones fill in, so that the two
# workers end together (longest-processing-time-first). The order is that of
# the files' summed test times in a full run on 2026-12-02 (worker seconds,
# TensorFlow / JAX / PyTorch on 2 cores, rounded): notebooks 318/320/283,
# resume 272/279/242, cross-backend 193/198/173, contract 261/131/30,
# cli 177/249/65, gpt 153/142/31, metrics 110+doctests/113/123+33, then the
# rest. With xdist's default order (most tests first) the heavy files came
# last and one worker idled: PyTorch's tests took 686 s for 1,129 s of
# tests (measured).
SLOW_FILES_FIRST = (
    # PyTorch only (skipped elsewhere): compiling, ~450 worker seconds each
    # on a fresh machine (no inductor cache; measured 2026-12-03, 865 s as
    # one file, the longest of any backend's)
    "tests/test_compiled_steps.py",
    "tests/test_compiled_step_cache.py",
    "tests/test_notebooks.py",
    "tests/test_resume.py",
    "tests/test_cross_backend.py",
    "tests/test_contract.py",
    "tests/test_cli.py",
    "tests/test_gpt.py",
    "tests/test_metrics.py",
    "tests/test_gan.py",
    "tests/test_fuzz.py",
    "tests/test_benchmarks.py",
    "keras_genzoo/models/diffusion.py",  # its docstring example, on TF
    "tests/test_data_parallel.py",
    "tests/test_diffusion.py",
    "tests/test_vae.py",
    "keras_genzoo/metrics.py",
    "tests/test_autoencoder.py",
    "tests/test_transformer_block.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0],
                                         len(rank)))
