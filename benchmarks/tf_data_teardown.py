"""Benchmark: how long deleting a `tf.data` iterator takes, with and without
tf.data's autotuning (a minimal reproduction without Keras or a model).

`fit` on a `tf.data.Dataset` deletes its iterator when training ends (and,
without `steps_per_epoch`, at the end of every epoch). With TensorFlow 2.21
that deletion waits for the autotuning ("model") thread of the iterator to
wake from its current sleep, and that sleep doubles after each optimisation
(10 ms, 20 ms, ... up to 60 s): an iterator read for half a minute can take
seconds to delete, one read for minutes up to a minute. Nothing runs in that
time. Disabling autotuning (`options.autotune.enabled = False`) removes the
thread; the zoo's own datasets do that (they set their parallelism and
prefetching themselves).

Each trial runs in a fresh process: it reads batches of a small pipeline
(a permutation of window starts per iteration, `batch`, `map`, `prefetch`:
the shape of `keras_genzoo.datasets.text_datasets`) for `--seconds`, about
a training step apart, then deletes the iterator. The delay does not show in
every trial: it is the time left of the thread's sleep at that moment.
Prints one JSON object per trial and a summary.

    python benchmarks/tf_data_teardown.py --seconds 25 --trials 3
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _backends import positive  # noqa: E402  (a sibling module)


def trial(seconds, autotune, source):
    import numpy as np
    import tensorflow as tf

    if source == "zoo_text":  # autotuning is off there: `--autotune on`
        from keras_genzoo import datasets  # turns it back on

        ds, _ = datasets.text_datasets(datasets.load_text(
            "tiny_shakespeare"), sequence_length=64, batch_size=12, stride=1)
    else:
        # a fresh permutation of 10**6 indices per iteration, in batches
        starts = tf.constant(np.arange(10**6))
        ds = tf.data.Dataset.random(seed=0, rerandomize_each_iteration=True)
        ds = ds.take(1).map(lambda r: tf.random.experimental.stateless_shuffle(
            starts, seed=tf.stack([r, tf.constant(0, tf.int64)])))
        ds = ds.unbatch().batch(12).map(lambda b: b * 2).prefetch(2)
    options = tf.data.Options()
    options.autotune.enabled = autotune
    ds = ds.with_options(options)
    iterator = iter(ds)
    start = time.perf_counter()
    batches = 0
    while time.perf_counter() - start < seconds:
        next(iterator)
        batches += 1
        time.sleep(0.05)  # a training step
    start = time.perf_counter()
    del iterator
    return {"source": source, "autotune": autotune, "read_s": seconds,
            "batches": batches,
            "delete_s": round(time.perf_counter() - start, 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=positive(float), default=25.0)
    parser.add_argument("--trials", type=positive(int), default=3)
    parser.add_argument("--source", default="plain",
                        help="plain (a tf.data range) or zoo_text "
                             "(keras_genzoo.datasets.text_datasets)")
    parser.add_argument("--child", choices=["on", "off"],
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(trial(args.seconds, args.child == "on",
                               args.source)), flush=True)
        return
    summary = {}
    for autotune in ("on", "off"):
        deletes = []
        for _ in range(args.trials):
            out = subprocess.run(
                [sys.executable, __file__, "--child", autotune,
                 "--seconds", str(args.seconds), "--source", args.source],
                capture_output=True, text=True, check=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            print(json.dumps(result), flush=True)
            deletes.append(result["delete_s"])
        summary[f"autotune_{autotune}_delete_s"] = deletes
    print(json.dumps({"summary": "tf_data_teardown", **summary}))


if __name__ == "__main__":
    main()
