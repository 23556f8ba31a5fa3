"""One device against two: what tests/test_data_parallel.py runs.

    KERAS_BACKEND=jax python tests/data_parallel_worker.py OUTDIR [FAMILY...]
    KERAS_BACKEND=tensorflow python tests/data_parallel_worker.py OUTDIR ...

The number of devices must be fixed before JAX or TensorFlow starts, hence
a process of its own: JAX gets two CPU devices from `XLA_FLAGS`, TensorFlow
two logical CPU devices. For each family (default: vae, gan, wgan_gp,
minigpt; tiny models from tests/resume_worker.py) the same seeded model is
trained twice in this process on the same batches in the same order (global
batch 32, `shuffle=False`): on one device, then data parallel over two
(JAX: `keras.distribution.DataParallel`; TensorFlow:
`tf.distribute.MirroredStrategy`, the model created and compiled in its
scope). On JAX, `minigpt_tp` trains the MiniGPT a third time, tensor
parallel over the two devices (`keras.distribution.ModelParallel` with the
layout map of docs/scaling.md), against the same one-device run.

Written to OUTDIR: results.json (the logs after every batch of both runs,
their times, and evidence that the second run used two devices: JAX, the
sharding of a batch inside the compiled step and of the variables;
TensorFlow, the replicas in sync inside the step, the per-replica batch
size, mirrored variables and how far their copies differ) and
FAMILY_{one,two}.npz (every model variable after training: weights,
batch-norm statistics, seed-generator states).
"""

import contextlib
import json
import os
import re
import sys
import time

BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
FAMILIES = ["vae", "gan", "wgan_gp", "minigpt"]
EPOCHS = 2
DEVICES = 2
DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "docs", "scaling.md")


def setup_devices():
    """Two CPU devices, before the framework starts."""
    if BACKEND == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_force_host_platform_device_count={DEVICES}")
        import jax

        assert len(jax.devices()) == DEVICES, jax.devices()
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * DEVICES)
        assert len(tf.config.list_logical_devices("CPU")) == DEVICES
    else:
        raise SystemExit(f"No data parallel run on {BACKEND}.")


def make_model(family):
    """`(model, x, fit_kwargs)`: a tiny seeded model of `family`, compiled.

    The GANs train with SGD: Adam divides each gradient by its own running
    size, which would hide replicas' gradients summed instead of averaged
    (twice the step); the VAE and MiniGPT keep their default Adam(W), and
    Keras' "loss" log shows such a mistake for them.
    """
    import keras
    from resume_worker import make_family

    from keras_genzoo import GAN, VAE

    if family in ("vae", "gan"):
        # Built by `fit` from the first batch, as users' models are (its
        # variables must be created in the strategy's scope, which `fit` is
        # not called in); wgan_gp and minigpt come built.
        _, x, _, kwargs = make_family("vae")
        if family == "vae":
            model = VAE(latent_dim=4, filters=(8,), seed=0)
        else:
            # No dropout: each replica would draw the masks of its share of
            # the batch from the same seed (Keras' `Dropout`), not the masks
            # one device draws for the whole batch (see docs/scaling.md).
            model = GAN(latent_dim=8, generator_filters=(8,),
                        discriminator_filters=(8,), dropout=0.0, seed=0)
        assert not model.built
    else:
        model, x, y, kwargs = make_family(family)
        assert y is None
    if family == "minigpt":
        # 3 full batches of 32 windows (one shape: one compiled step)
        from keras_genzoo import datasets

        text = datasets.load_text("tiny_shakespeare")[:1720]
        x, _ = model.make_datasets(text, batch_size=32, shuffle=False)
    if family in ("gan", "wgan_gp"):
        model.compile(
            d_optimizer=keras.optimizers.SGD(0.02, momentum=0.5),
            g_optimizer=keras.optimizers.SGD(0.02, momentum=0.5))
    else:
        model.compile()
    return model, x, kwargs


def model_state(model):
    """Every model variable as numpy, keyed by its path in the model (the
    second model of a family is named e.g. "vae_1")."""
    import keras
    import numpy as np

    return {v.path.split("/", 1)[-1]: np.asarray(
        keras.ops.convert_to_numpy(v)) for v in model.variables}


def watch_step(model, items):
    """Wraps the model's `train_step` to record what a step sees."""
    original = model.train_step
    if BACKEND == "jax":
        import jax

        def train_step(state, data):
            first = jax.tree_util.tree_leaves(data)[0]
            items["global_batch_in_step"] = int(first.shape[0])

            def seen(sharding):
                items["batch_shard_shape"] = [
                    int(d) for d in sharding.shard_shape(first.shape)]
                items["batch_devices"] = len(sharding.device_set)

            jax.debug.inspect_array_sharding(first, callback=seen)
            return original(state, data)
    else:
        import tensorflow as tf

        # each replica writes the size of its share of the batch: MEAN
        # aggregation keeps their mean, SUM their sum (the global batch)
        sizes = {name: tf.Variable(0.0, trainable=False, aggregation=how)
                 for name, how in (
                     ("_per_replica", tf.VariableAggregation.MEAN),
                     ("_global", tf.VariableAggregation.SUM))}
        items.update(sizes)

        def train_step(data):
            context = tf.distribute.get_replica_context()
            items["replicas_in_step"] = int(context.num_replicas_in_sync)
            size = tf.cast(tf.shape(tf.nest.flatten(data)[0])[0], "float32")
            for variable in sizes.values():
                variable.assign(size)
            return original(data)

    model.train_step = train_step


def train(family, strategy=None, items=None):
    """Trains one seeded model; returns it, its logs after each batch, its
    variables and the seconds `fit` took."""
    import keras

    keras.utils.set_random_seed(0)
    with strategy.scope() if strategy else contextlib.nullcontext():
        model, x, kwargs = make_model(family)
        if items is not None:
            watch_step(model, items)
    records = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            records.append({k: float(v) for k, v in logs.items()})

    start = time.perf_counter()
    model.fit(x, epochs=EPOCHS, verbose=0, callbacks=[Record()], **kwargs)
    seconds = time.perf_counter() - start
    return model, records, model_state(model), seconds


def jax_evidence(model, items):
    import jax

    items["variable_devices"] = sorted(
        {len(v.value.sharding.device_set) for v in model.variables})
    items["devices"] = [str(d) for d in jax.devices()]


def tf_evidence(model, strategy, items):
    import numpy as np

    items["num_replicas_in_sync"] = int(strategy.num_replicas_in_sync)
    # of the last step
    items["per_replica_batch"] = float(items.pop("_per_replica").numpy())
    items["global_batch"] = float(items.pop("_global").numpy())
    items["variable_kinds"] = sorted(
        {type(v.value).__name__ for v in model.variables})
    # the copies of every variable on the two devices, compared
    spread = 0.0
    for v in model.variables:
        copies = [np.asarray(c) for c in v.value.values]
        assert len(copies) == DEVICES, v.path
        spread = max(spread, max(float(np.max(np.abs(c - copies[0])))
                                 for c in copies) if copies[0].size else 0.0)
    items["max_difference_between_copies"] = spread


def docs_layout_map():
    """`minigpt_layout_map` as docs/scaling.md defines it."""
    with open(DOCS) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    code = [b for b in blocks if "def minigpt_layout_map" in b]
    assert len(code) == 1, "docs/scaling.md must define minigpt_layout_map"
    namespace = {}
    exec(code[0], namespace)
    return namespace["minigpt_layout_map"]


def train_tensor_parallel(items):
    """The MiniGPT tensor parallel over both devices (no data parallelism):
    the docs' layout map on a (1, 2) mesh."""
    import jax
    import keras

    mesh = keras.distribution.DeviceMesh(
        shape=(1, DEVICES), axis_names=("batch", "model"),
        devices=jax.devices())
    layout_map = docs_layout_map()(mesh)
    keras.distribution.set_distribution(keras.distribution.ModelParallel(
        layout_map=layout_map, batch_dim_name="batch"))
    try:
        model, logs, state, seconds = train("minigpt")
        # the map's keras-hub entries: a MiniGPT of TransformerDecoder
        # blocks, built (not trained) under the same distribution
        from keras_genzoo import MiniGPT

        hub = MiniGPT(model.vocabulary, sequence_length=model.sequence_length,
                      num_layers=1, num_heads=model.num_heads,
                      hidden_dim=model.hidden_dim, block_type="keras_hub")
    finally:
        keras.distribution.set_distribution(None)
    for key, built in (("layouts", model), ("hub_layouts", hub)):
        layouts = {}
        for v in built.weights:
            layout = layout_map[v.path]
            layouts[v.path] = {
                "shape": list(v.shape),
                "axes": None if layout is None else list(layout.axes),
                "shard_shape": list(v.value.sharding.shard_shape(v.shape)),
                "devices": len(v.value.sharding.device_set),
            }
        items[key] = layouts
    return model, logs, state, seconds


def _what_each_says(calls):
    """`{name: "trained" or the ValueError's message}` of each call."""
    said = {}
    for name, call in calls.items():
        try:
            call()
            said[name] = "trained"
        except ValueError as error:
            said[name] = str(error)
    return said


def uneven_batches():
    """JAX: what the zoo's `fit`, `evaluate` and `predict` say of arrays
    whose batches two devices cannot share (before any step: Keras' own
    step fails inside JAX with an `IndivisibleError`), and that an even
    split trains. `{call: message or "trained"}`."""
    import jax
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_genzoo import VAE, MiniGPT

    images = np.random.default_rng(0).random((9, 8, 8, 1), "float32")
    early = VAE(latent_dim=2, filters=(4,), seed=0)
    early.build(images.shape)  # on one device
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=jax.devices()))
    model = VAE(latent_dim=2, filters=(4,), seed=0)

    def on_device_1(call):
        with keras.distribution.DataParallel(
                devices=jax.devices()[1:2]).scope():
            return call()

    text = "abcdefghij" * 30
    gpt = MiniGPT.from_text(text, num_layers=1, num_heads=2, hidden_dim=8,
                            sequence_length=4, seed=0)

    def fit_gpt(batch_size):
        train_ds, val_ds = gpt.make_datasets(text, batch_size=batch_size)
        assert [len(b[0]) for b in train_ds][-1] == 2  # 67 = 16 x 4 + 3
        gpt.fit(train_ds, validation_data=val_ds, epochs=1, verbose=0)

    def fit_images(batch_size):
        from keras_genzoo import datasets

        pixels = (images * 255).astype("uint8")
        train_ds, _ = datasets.arrays_to_datasets(
            pixels, batch_size=batch_size, validation_split=0)
        assert [len(b) for b in train_ds] == [4, 4]
        # a dataset whose size tf.data does not know: each batch trimmed
        unknown = datasets._batched(
            tf.data.Dataset.from_tensor_slices(pixels).filter(
                lambda x: True), batch_size, False, 0)
        assert [len(b) for b in unknown] == [4, 4]
        fresh = VAE(latent_dim=2, filters=(4,), seed=0)
        fresh.fit(train_ds, epochs=1, verbose=0)

    calls = {
        "fit, last batch of 1": lambda: model.fit(
            images, batch_size=4, epochs=1, verbose=0),
        "fit, odd batch size": lambda: model.fit(
            images[:6], batch_size=3, epochs=1, verbose=0),
        "fit, validation_split": lambda: model.fit(
            images[:6], batch_size=2, validation_split=0.5, epochs=1,
            verbose=0),
        "fit, validation_data": lambda: model.fit(
            images[:8], batch_size=4, validation_data=(images[:5],),
            epochs=1, verbose=0),
        # held out in batches of validation_batch_size (checked in batches
        # of batch_size before: refused at the end of the first epoch)
        "fit, validation_batch_size": lambda: model.fit(
            images[:8], batch_size=4, validation_split=0.5,
            validation_batch_size=3, epochs=1, verbose=0),
        "evaluate": lambda: model.evaluate(images, batch_size=4, verbose=0),
        # fewer than a batch: drop one, not all ("drop the last 7 (keep 0)")
        "evaluate, fewer than a batch": lambda: model.evaluate(
            images[:7], batch_size=32, verbose=0),
        "predict": lambda: model.predict(images, batch_size=4, verbose=0),
        "fit, even": lambda: model.fit(
            images[:8], batch_size=4, epochs=1, verbose=0),
        # (before: "Received incompatible devices for jitted computation"
        # from inside Keras' first step)
        "fit, made before the distribution": lambda: early.fit(
            images[:8], batch_size=4, epochs=1, verbose=0),
        # on device 0, under a distribution over device 1 alone (the same
        # number of devices passed a check that counted them)
        "fit, made on another device": lambda: on_device_1(
            lambda: early.fit(images[:8], batch_size=4, epochs=1,
                              verbose=0)),
        # one batch of 3 (before: JAX's IndivisibleError from the step)
        "train_on_batch": lambda: model.train_on_batch(images[:3]),
        "test_on_batch": lambda: model.test_on_batch(images[:3]),
        "predict_on_batch": lambda: model.predict_on_batch(images[:3]),
        # 67 training and 7 validation windows in batches of 4: the last
        # window of each is left out (before: JAX's IndivisibleError at the
        # end of the first epoch)
        "make_datasets": lambda: fit_gpt(4),
        "make_datasets, odd batch size": lambda: fit_gpt(3),
        # one training window: the odd batch size is the fix (before:
        # "fewer than the distribution's 2 devices. Use a longer text.")
        "make_datasets, odd batch size, one window": lambda: gpt.make_datasets(
            text[:12], batch_size=3, validation_split=0.5),
        # 9 images in batches of 4: the last image is left out (before:
        # JAX's IndivisibleError at the end of the first epoch), for
        # every image loader (arrays here; tfds and folders alike)
        "image datasets": lambda: fit_images(4),
        "image datasets, odd batch size": lambda: fit_images(3),
    }
    try:
        said = _what_each_says(calls)
    finally:
        keras.distribution.set_distribution(None)
    return said


def uneven_batches_tf(strategy):
    """TensorFlow: what the zoo's calls say of arrays whose batches the
    strategy's 2 replicas cannot run (before: TensorFlow's "AddN ... must
    have the same size and shape" from Keras' first step, or a shape error
    from a replica that got no example), and that the splits it can run
    train. `{call: message or "trained"}`."""
    import numpy as np

    from keras_genzoo import VAE, MiniGPT

    images = np.random.default_rng(0).random((11, 8, 8, 1), "float32")
    text = "abcdefghij" * 30
    with strategy.scope():
        model = VAE(latent_dim=2, filters=(4,), seed=0)
        model.compile()

    def unbuilt():
        with strategy.scope():
            fresh = VAE(latent_dim=2, filters=(4,), seed=0)
            fresh.compile()
        return fresh

    def make_datasets():
        with strategy.scope():  # the strategy the datasets are made for
            gpt = MiniGPT.from_text(text, num_layers=1, num_heads=2,
                                    hidden_dim=8, sequence_length=4, seed=0)
            gpt.make_datasets(text, batch_size=3)

    calls = {
        "fit, odd batch size": lambda: model.fit(
            images[:6], batch_size=3, epochs=1, verbose=0),
        "fit, last batch of 1": lambda: model.fit(
            images[:9], batch_size=4, epochs=1, verbose=0),
        # a last batch of 3 split 2 + 1 trained to other weights than one
        # device: refused since
        "fit, last batch of 3": lambda: model.fit(
            images, batch_size=4, epochs=1, verbose=0),
        "train_on_batch": lambda: model.train_on_batch(images[:3]),
        "make_datasets, odd batch size": make_datasets,
        # predict runs any split (refused by the first version of the
        # check)
        "predict": lambda: model.predict(images[:7], batch_size=8,
                                         verbose=0),
        # a last batch of 1: TensorFlow's convolutions fail on the replica
        # that gets none ("ConcatOp : Dimension 3 in both shapes must be
        # equal")
        "predict, last batch of 1": lambda: model.predict(
            images[:9], batch_size=4, verbose=0),
        "predict_on_batch": lambda: model.predict_on_batch(images[:3]),
        # predict splits one batch too: one example leaves a replica none
        "predict, one example": lambda: model.predict(
            images[:1], batch_size=1, verbose=0),
        # a model not built yet is built inside Keras' replica step, where
        # the strategy's scope cannot be entered
        "predict, not built": lambda: unbuilt().predict(
            images[:8], batch_size=4, verbose=0),
        "predict_on_batch, not built": lambda: unbuilt().predict_on_batch(
            images[:3]),
    }
    return _what_each_says(calls)


def on_batch_calls(strategy):
    """`*_on_batch` on one device and on two, with the same seeded VAE and
    batch: `{call: [one device, two]}` (`train_on_batch` and
    `test_on_batch`: the loss; `weights`: the largest difference after
    the step; `predict_on_batch`: the rows), and `built outside the scope`
    (TensorFlow: a model created in the strategy's scope and built outside
    it, then fitted: "trained" or the error)."""
    import keras
    import numpy as np

    from keras_genzoo import VAE

    images = np.random.default_rng(1).random((4, 8, 8, 1), "float32")

    @contextlib.contextmanager
    def jax_devices(devices):
        if devices == 2:
            keras.distribution.set_distribution(
                keras.distribution.DataParallel(
                    devices=keras.distribution.list_devices()))
        try:
            yield
        finally:
            keras.distribution.set_distribution(None)

    def scope(devices):
        if strategy is None:
            return jax_devices(devices)
        return strategy.scope() if devices == 2 else contextlib.nullcontext()

    said = {}
    weights = []
    for devices in (1, 2):
        keras.utils.set_random_seed(0)  # the same initial weights
        with scope(devices):
            model = VAE(latent_dim=2, filters=(4,), seed=0)
            model.compile(optimizer=keras.optimizers.SGD(0.1))
            model.build(images.shape)
            train = model.train_on_batch(images, return_dict=True)["loss"]
            test = model.test_on_batch(images, return_dict=True)["loss"]
            rows = keras.tree.flatten(model.predict_on_batch(images))[0]
        weights.append([np.asarray(keras.ops.convert_to_numpy(w))
                        for w in model.weights])
        for name, value in (("train_on_batch", float(train)),
                            ("test_on_batch", float(test)),
                            ("predict_on_batch", int(rows.shape[0]))):
            said.setdefault(name, []).append(value)
    said["weights"] = max(float(np.max(np.abs(a - b)))
                          for a, b in zip(*weights))
    if strategy is not None:
        with strategy.scope():
            model = VAE(latent_dim=2, filters=(4,), seed=0)
            model.compile()
        model.build(images.shape)  # outside the scope
        said.update(_what_each_says({
            "built outside the scope": lambda: model.fit(
                images, batch_size=4, epochs=1, verbose=0)}))
    return said


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    outdir = argv.pop(0)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [here, os.path.dirname(here)]
    os.makedirs(outdir, exist_ok=True)
    families = argv or FAMILIES + (["minigpt_tp"] if BACKEND == "jax"
                                   else [])
    setup_devices()
    import keras
    import numpy as np

    results = {"backend": BACKEND, "families": {}}
    strategy = None
    if BACKEND == "tensorflow":
        import tensorflow as tf

        # one strategy for every model: a second MirroredStrategy in the
        # same process reuses the first one's collective keys and fails
        strategy = tf.distribute.MirroredStrategy(
            [f"/cpu:{i}" for i in range(DEVICES)])
    if BACKEND == "jax":
        results["uneven"] = uneven_batches()
    if BACKEND == "tensorflow":
        results["uneven"] = uneven_batches_tf(strategy)
    results["on_batch"] = on_batch_calls(strategy)
    references = {}
    for family in families:
        items = {}
        if family == "minigpt_tp":
            one_logs, one_state, one_s = references["minigpt"]
            _, logs, state, two_s = train_tensor_parallel(items)
        else:
            _, one_logs, one_state, one_s = train(family)
            references[family] = (one_logs, one_state, one_s)
            if BACKEND == "jax":
                import jax

                keras.distribution.set_distribution(
                    keras.distribution.DataParallel(devices=jax.devices()))
                try:
                    model, logs, state, two_s = train(family, items=items)
                    jax_evidence(model, items)
                finally:
                    keras.distribution.set_distribution(None)
            else:
                model, logs, state, two_s = train(family, strategy, items)
                tf_evidence(model, strategy, items)
        np.savez(os.path.join(outdir, f"{family}_one.npz"), **one_state)
        np.savez(os.path.join(outdir, f"{family}_two.npz"), **state)
        results["families"][family] = {
            "one": one_logs, "two": logs, "evidence": items,
            "seconds": [round(one_s, 2), round(two_s, 2)],
        }
        with open(os.path.join(outdir, "results.json"), "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
