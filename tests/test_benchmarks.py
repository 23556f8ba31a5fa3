"""The benchmarks run in small modes (the diffusion one end to end in its
--smoke mode), in this process, on the backend the tests run on (the others
are benchmarked by hand: they train for minutes); a failing child backend
of vae_mnist / dcgan_mnist is run as a subprocess."""

import importlib.util
import os

import pytest

BENCHMARKS = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks")


def _load(name):
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(BENCHMARKS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_diffusion_benchmark_smoke(tmp_path):
    import keras

    # one model keeps it short (each model compiles its own steps); the
    # conditional one passes through every code path but the DCGAN's
    rows = _load("diffusion_mnist").main(
        ["--smoke", "--in-process", "--models", "cond_diffusion",
         "--grid-dir", str(tmp_path)])
    assert [r.get("error") for r in rows] == [None] * len(rows)
    assert {r["backend"] for r in rows} == {keras.backend.backend()}
    # real_test, then cond_diffusion at 1 step with guidance 1 and 2 and at
    # 2 steps with guidance 1
    assert [(r["model"], r.get("ddim_steps"), r.get("guidance"))
            for r in rows] == [
        ("real_test", None, None), ("cond_diffusion", 1, 1.0),
        ("cond_diffusion", 1, 2.0), ("cond_diffusion", 2, 1.0)]
    for row in rows[1:]:
        assert row["train_steps"] >= 1 and row["images_per_s"] > 0
        assert row["sample_images_per_s"] > 0 and row["num_samples"] == 8
        assert row["fd"] >= 0 and 0 < row["confidence"] <= 1
        assert 1 <= row["classes_covered"] <= 10
        assert isinstance(row["target_met"], bool)
        assert 0 <= row["label_accuracy"] <= 1
    paths = [r[key] for r in rows
             for key in ("grid", "reverse_grid", "reverse_gif") if key in r]
    assert len(paths) == 3
    for path in paths:
        assert os.path.getsize(path) > 0, path


def test_gmm_speed_benchmark_smoke():
    import keras

    rows = _load("gmm_speed").main(["--smoke", "--in-process",
                                    "--cases", "full,diag"])
    ours = [r for r in rows if r.get("estimator") == "keras_genzoo"]
    assert [r["case"] for r in ours] == ["full", "diag"]
    for row in ours:
        assert row["backend"] == keras.backend.backend()
        assert row["iterations"] == 5  # tol=0: every iteration runs
        assert row["fit_s"] > 0 and row["s_per_iteration"] > 0
        assert row["mean_log_likelihood"] < 0
    reference = [r for r in rows if r.get("estimator") == "scikit-learn"]
    if reference:  # scikit-learn installed: same data, comparable fits
        for ours_row, ref_row in zip(ours, reference):
            assert ours_row["speedup"] > 0
            assert abs(ours_row["mean_log_likelihood"]
                       - ref_row["mean_log_likelihood"]) < 0.05 * abs(
                ref_row["mean_log_likelihood"])


def test_latent_prior_benchmark_smoke(tmp_path):
    rows = _load("latent_prior_mnist").main(
        ["--smoke", "--in-process", "--grid-dir", str(tmp_path)])
    assert [r.get("error") for r in rows] == [None] * len(rows)
    assert [(r["model"], r["prior"]) for r in rows] == [
        ("real", None), ("vae", "normal"), ("vae", "gaussian"),
        ("vae", "gmm"), ("ae", "gaussian"), ("ae", "gmm")]
    for row in rows[1:]:
        assert row["fd"] >= 0 and 0 < row["confidence"] <= 1
        assert os.path.getsize(row["grid"]) > 0
    assert rows[3]["n_components"] == 3 and rows[3]["prior_fit_s"] > 0


def test_step_speed_benchmark_runs_both_transposed_conv_paths():
    import keras

    from keras_genzoo import backend as zoo_backend

    module = _load("step_speed")
    fused = zoo_backend.group_normalization
    by_phases = zoo_backend.TRANSPOSED_CONV_BY_PHASES
    try:
        rows = [module.run_one("vae", by_phases, batches=1, jit_compile=None,
                               group_norm=norm, batch_end=batch_end,
                               batch_size=batch_size)
                for by_phases, norm, batch_end, batch_size in (
                    (False, None, "async", 128), (True, "keras", "sync", 2))]
    finally:  # run_one sets both for the rest of the process
        zoo_backend.group_normalization = fused
        zoo_backend.TRANSPOSED_CONV_BY_PHASES = by_phases
    assert [r["transposed_conv"] for r in rows] == ["keras", "phases"]
    # TensorFlow's Keras runs the batch hooks on fit's thread either way
    assert [r["batch_end"] for r in rows] == [
        "sync" if keras.backend.backend() == "tensorflow" else "async",
        "sync"]
    assert [r["batch_size"] for r in rows] == [128, 2]
    assert rows[0]["group_norm"] == ("fused" if fused else "keras")
    assert rows[1]["group_norm"] == "keras"
    for row in rows:
        assert row["backend"] == keras.backend.backend()
        assert row["images_per_s"] > 0 and row["ms_per_step"] > 0
        assert row["layer_guards"] is None  # not a compiled PyTorch step
    if fused is None:  # the parent skips a child that exits so
        with pytest.raises(SystemExit) as exit_info:
            module.run_one("vae", None, batches=1, jit_compile=None,
                           group_norm="fused")
        assert exit_info.value.code == module.NO_FUSED_GROUP_NORM


def test_step_speed_benchmark_compiles_pytorch_steps_as_keras_does():
    """`--layer-guards keras`: the compiled PyTorch step keeps dynamo's
    guards on the layers, as Keras' own `jit_compile=True` does."""
    import keras

    if keras.backend.backend() != "torch":
        pytest.skip("compiled steps without layer guards are PyTorch's")
    from keras_genzoo.backend import torch_steps

    module = _load("step_speed")
    try:
        row = module.run_one("vae", None, batches=1, jit_compile=True,
                             batch_size=2, layer_guards="keras")
        assert not torch_steps.SKIP_LAYER_GUARDS
    finally:
        torch_steps.SKIP_LAYER_GUARDS = True
    assert row["layer_guards"] == "keras" and row["jit_compile"] is True
    assert row["ms_per_step"] > 0
    # the row says what the step ran with
    row = module.run_one("vae", None, batches=1, jit_compile=True,
                         batch_size=2)
    assert row["layer_guards"] == ("skipped"
                                   if torch_steps._guard_filter_frees_models()
                                   else "keras")


def test_tf_data_teardown_benchmark_trial():
    row = _load("tf_data_teardown").trial(0.2, autotune=False,
                                          source="zoo_text")
    assert row["batches"] >= 1 and row["delete_s"] >= 0


def test_gpt_step_speed_benchmark_times_a_step():
    import keras

    from keras_genzoo import backend as zoo_backend

    module = _load("gpt_step_speed")
    rows = module.main(["--in-process", "--rounds", "1", "--recipe",
                        "overhead", "--block-types", "fused,fused_keras_ops",
                        "--jit-compile", "false", "--generate", "3"])
    (row,) = rows
    assert row["backend"] == keras.backend.backend()
    # the backend's own block op, switched off for its own kind only; a
    # `jit_compile` other than the model's default named in the kind
    kinds = {"fused"} | ({"fused_keras_ops"}
                         if zoo_backend.causal_self_attention_block else set())
    kinds = {kind + "_jit_compile_false" for kind in kinds}
    assert set(row["ms_per_step"]) == kinds
    assert set(row["first_step_and_forward_s"]) == kinds
    assert row["generate_characters"] == 3
    assert set(row["first_generate_s"]) == kinds
    assert set(row["generate_ms_per_char"]) == kinds
    assert all(v > 0 for v in row["generate_ms_per_char"].values())
    assert module._kind("fused", "default") == "fused"
    with pytest.raises(SystemExit):
        module.main(["--in-process", "--jit-compile", "sometimes"])
    with pytest.raises(SystemExit):
        module.main(["--in-process", "--generate", "-1"])
    assert all(v > 0 for v in row["ms_per_step"].values())
    assert all(v > 0 for v in row["ms_per_forward"].values())
    assert zoo_backend.causal_self_attention_block is getattr(
        zoo_backend._steps, "causal_self_attention_block", None)


def test_host_syncs_benchmark_counts_reads_per_character():
    """PyTorch: the count of host reads per generated character is what
    `run_sampler` promises (none, greedy or seeded: a seeded draw reads
    its seed from a copy on the host; CUDA's count only on a GPU)."""
    import keras

    if keras.backend.backend() != "torch":
        pytest.skip("counts PyTorch's host reads")
    rows = _load("host_syncs").run(["gpt"], [False], 1)
    by_what = {(row["what"], row.get("sampling", {}).get("top_k")): row
               for row in rows}
    assert set(by_what) == {
        ("fit step", None),
        ("generated character in the context", 1),
        ("generated character past the context", 1),
        ("generated character in the context", 10),
        ("generated character past the context", 10)}
    assert by_what[("generated character in the context", 1)][
        "python_host_reads"] == 0
    assert by_what[("generated character in the context", 10)][
        "python_host_reads"] == 0
    assert by_what[("fit step", None)]["python_host_reads"] == 0
    assert all(row["cuda_syncs"] is None for row in rows) == (
        not __import__("torch").cuda.is_available())


def test_run_sampler_reads_nothing_on_the_host_per_token():
    """PyTorch: `run_sampler`'s loop reads the device on the host once (its
    number of steps), where keras-hub's Python `while` reads its condition
    and its iteration count at every token (on a GPU, a wait for the
    device each). A seeded draw reads its seed from a copy on the host:
    the sampler's seed state (on the device) is read and written once per
    call, where keras-hub's loop moves it on at every token (and Keras
    reads it on the host to seed a `torch.Generator`). Counted with the
    benchmark's counter, after a first call (which compiles, and makes
    Keras' draws traceable once per process)."""
    import keras
    import numpy as np
    from keras import ops

    if keras.backend.backend() != "torch":
        pytest.skip("a host read of a tensor is PyTorch's (elsewhere the "
                    "loop is compiled whole)")
    pytest.importorskip("keras_hub")

    from keras_genzoo import backend
    from keras_genzoo.sampling import make_sampler

    host_reads = _load("host_syncs").counter()

    table = ops.convert_to_tensor(
        np.random.default_rng(1).normal(size=(7, 7)), "float32")

    def next_fn(prompt, cache, index):
        previous = ops.take(prompt, ops.reshape(index - 1, (1,)), axis=1)
        return ops.take(table, previous[:, 0], axis=0), None, cache

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])

    def count(loop, length):
        prompt = ops.convert_to_tensor(np.ones((2, length), "int32"))
        return host_reads(lambda: loop(prompt))[1]

    for settings in (dict(top_k=1), dict(top_k=3), dict(top_p=0.8)):
        sampler = make_sampler(seed=1, vocabulary_size=7, **settings)
        writes = []
        if sampler.variables:
            (state,) = sampler.variables
            assign = state.assign
            state.assign = lambda value: writes.append(1) or assign(value)

        def ours(prompt):
            return backend.run_sampler(model, sampler, next_fn, prompt,
                                       index=3)

        def keras_hubs(prompt):
            return sampler(next_fn, prompt, index=3, model=model)

        count(ours, 5)
        assert count(ours, 23) - count(ours, 13) == 0
        assert count(keras_hubs, 23) - count(keras_hubs, 13) >= 20
        if sampler.variables:
            del writes[:]
            count(ours, 23)
            assert len(writes) == 1
            del writes[:]
            count(keras_hubs, 23)
            assert len(writes) == 20
            # during the loop the state on the device stays, and the
            # draws move the host's copy on, one per token
            seen = []

            def watching(prompt, cache, index, sampler=sampler):
                seed = sampler.seed_generator
                seen.append((ops.convert_to_numpy(seed.state.value),
                             seed._genzoo_host_state.numpy().copy(),
                             seed._genzoo_host_state.device.type))
                return next_fn(prompt, cache, index)

            backend.run_sampler(model, sampler, watching,
                                ops.ones((2, 8), "int32"), index=3)
            devices, hosts, kinds = zip(*seen)
            assert all((d == devices[0]).all() for d in devices)
            np.testing.assert_array_equal(
                [h[1] - hosts[0][1] for h in hosts], range(5))
            assert set(kinds) == {"cpu"}


def test_quality_benchmark_scores_the_real_digits_once():
    """quality_mnist computes the test digits' features once per backend
    (not once per row), with the definition of `metrics.quality_scores`;
    `--smoke` scores against 1,000 test digits with 10 KID subsets."""
    import numpy as np

    from keras_genzoo import metrics
    from keras_genzoo.datasets import load_embedded_mnist

    module = _load("quality_mnist")
    smoke = module.parse_args(["--smoke", "--in-process"])
    assert (smoke.reference_images, smoke.kid_subsets) == (1000, 10)
    full = module.parse_args(["--in-process", "--models", "vae,dcgan"])
    assert (full.reference_images, full.kid_subsets) == (10_000, 100)
    assert full.models == ["vae", "dcgan"]
    with pytest.raises(SystemExit):
        module.parse_args(["--models", "vea"])

    images, _ = load_embedded_mnist()
    real, generated = images[:300], images[300:360]
    args = module.parse_args(["--in-process", "--num-samples", "60",
                              "--kid-subsets", "3"])
    calls = []
    features = metrics.MnistClassifier.features

    def counted(self, images, batch_size=500):
        calls.append(len(images))
        return features(self, images, batch_size)

    metrics.MnistClassifier.features = counted
    try:
        score = module.make_scorer(real, args)
        first = score(generated)
        second = score(images[400:460])
    finally:
        metrics.MnistClassifier.features = features
    assert calls == [300, 60, 60]  # the real digits' features once
    expected = metrics.quality_scores(real, generated, subsets=3,
                                      subset_size=60)
    for key in ("fd", "kid", "kl_to_uniform", "confidence"):
        np.testing.assert_allclose(first[key], expected[key], rtol=1e-5,
                                   atol=1e-6)
    assert first["classes_covered"] == expected["classes_covered"]
    assert second["fd"] != first["fd"]


def test_vae_benchmark_has_no_steady_figure_from_one_epoch():
    import keras

    module = _load("vae_mnist")
    with pytest.raises(SystemExit):
        module.main(["--in-process", "--models", "vea"])
    (one,) = module.main(["--in-process", "--models", "autoencoder",
                          "--epochs", "1", "--train-images", "256"])
    assert one["backend"] == keras.backend.backend()
    assert one["train_images"] == 256 and one["epochs"] == 1
    assert one["first_epoch_s"] > 0  # the compile epoch, and only it
    assert one["steady_epoch_s"] is None and one["images_per_s"] is None
    (two,) = module.main(["--in-process", "--models", "autoencoder",
                          "--epochs", "2", "--train-images", "256"])
    assert two["steady_epoch_s"] >= 0 and two["images_per_s"] > 0


def test_dcgan_benchmark_has_no_steady_figure_from_one_epoch(tmp_path):
    module = _load("dcgan_mnist")
    rows = module.main(["--in-process", "--epochs", "1", "--train-images",
                        "128", "--batch-size", "64", "--latent-dim", "8",
                        "--generator-filters", "8", "4",
                        "--discriminator-filters", "4", "8",
                        "--output-dir", str(tmp_path)])
    assert [r.get("epoch") for r in rows] == [1, None]
    summary = rows[-1]
    assert summary["summary"] == "dcgan_mnist"
    assert summary["train_images"] == 128 and summary["epochs_run"] == 1
    assert summary["first_epoch_s"] >= 0
    assert summary["steady_epoch_s"] is None
    assert summary["images_per_s"] is None


@pytest.mark.parametrize("name", ["vae_mnist", "dcgan_mnist"])
def test_speed_benchmark_child_failure_is_an_error_row(name, tmp_path):
    """A backend's failed run is a row with its error message, not a bare
    CalledProcessError that stops the other backends."""
    import keras

    backend = keras.backend.backend()
    # "nope" is not a backend: its child fails at once, and the run goes on
    # to the next backend (a child that failed on a bad flag cannot be
    # made now: the flags are checked before any child starts)
    argv = ["--backends", f"nope,{backend}", "--epochs", "1",
            "--batch-size", "4", "--train-images", "8"]
    if name == "dcgan_mnist":
        argv += ["--output-dir", str(tmp_path), "--latent-dim", "4",
                 "--generator-filters", "8", "--discriminator-filters", "8"]
    rows = _load(name).main(argv)
    assert [r["backend"] for r in rows if "summary" not in r][:1] == ["nope"]
    assert rows[0]["benchmark"] == name
    # the child's own message, not a bare CalledProcessError
    assert rows[0]["error"].startswith("exit code ")
    assert "Unable to import backend" in rows[0]["error"]
    ran = [r for r in rows[1:] if r["backend"] == backend]
    assert ran and not any("error" in r for r in ran), rows


def test_step_speed_and_minigpt_launchers_go_on_after_a_failed_child(
        capsys):
    """Their children's stderr went to /dev/null and a failure raised a
    bare CalledProcessError: no reason, and the other backends never ran
    (gpu_checks.sh runs step_speed in every part)."""
    import json
    import sys

    code, out = _load("_backends").run_child(
        [sys.executable, "-c",
         "import sys; print('{\"x\": 1}'); sys.exit('ValueError: boom')"],
        dict(os.environ), "a_benchmark", "jax", model="vae")
    assert code == 1 and out == '{"x": 1}\n'
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [{"x": 1}, {"benchmark": "a_benchmark", "backend": "jax",
                               "model": "vae",
                               "error": "exit code 1: ValueError: boom"}]
    # "nope" is not a backend: the launcher goes on to it after the first
    # failure, and says why each failed
    module = _load("minigpt_shakespeare")
    argv = sys.argv
    sys.argv = ["minigpt_shakespeare.py", "--backends", "torch,nope",
                "--dtype", "not_a_policy", "--iters", "1"]
    try:
        with pytest.raises(SystemExit, match="2 backend"):  # (not 0)
            module.main()
    finally:
        sys.argv = argv
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["backend"] for r in rows] == ["torch", "nope"]
    assert "not_a_policy" in rows[0]["error"]
    with pytest.raises(SystemExit):
        sys.argv = ["step_speed.py", "--models", "gan,foo"]
        try:
            _load("step_speed").main()
        finally:
            sys.argv = argv
    assert "unknown ['foo']" in capsys.readouterr().err


@pytest.mark.parametrize("name, argv", [
    ("minigpt_shakespeare", ["--iters", "0"]),  # (ran the recipe's 2000)
    ("dcgan_mnist", ["--epochs", "0"]),  # (trained one epoch)
    ("dcgan_mnist", ["--minutes", "-1"]),
    ("host_syncs", ["--n", "0"]),
    ("tf_data_teardown", ["--seconds", "-1"]),
    ("latent_prior_mnist", ["--components", "0"]),  # (after training)
    ("quality_mnist", ["--num-samples", "nan"]),
])
def test_benchmark_flags_below_one_are_refused(name, argv, monkeypatch,
                                               capsys):
    import sys

    module = _load(name)
    monkeypatch.setattr(sys, "argv", [f"{name}.py"] + argv)
    parse = getattr(module, "parse_args", None)
    with pytest.raises(SystemExit) as exit_info:
        parse([*argv]) if parse else module.main()
    assert exit_info.value.code == 2
    assert "above 0" in capsys.readouterr().err


def test_benchmark_flags_whose_help_gives_0_a_meaning_take_it():
    args = _load("quality_mnist").parse_args(
        ["--nll-images", "0", "--monitor-samples", "0"])
    assert (args.nll_images, args.monitor_samples) == (0, 0)
