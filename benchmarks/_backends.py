"""Runs a benchmark script once per Keras backend, each in its own process.

The backend is fixed when Keras is imported, so a benchmark that compares
backends runs itself again with `--in-process` under each `KERAS_BACKEND`
and collects the JSON rows its children print.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile


def positive(convert=int, zero=False):
    """An argparse `type`: `convert(text)`, refused unless above 0 (or 0
    too, with `zero`, where the help says what 0 means): a count or a
    budget of 0 or less ran nothing, or ran the default, in silence."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not (value >= 0 if zero else value > 0):
            # (NaN too)
            raise argparse.ArgumentTypeError(
                f"expected a {'whole ' if convert is int else ''}number "
                f"{'of 0 or more' if zero else 'above 0'}, got {text!r}")
        return value

    return parse


def main_per_backend(script, argv, parse_args, run, benchmark):
    """A benchmark's `main(argv)`: `run(args)` in this process with
    `--in-process`, else `run_per_backend` over `--backends`; returns the
    rows."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.in_process:
        return run(args)
    return run_per_backend(script, argv, args.backends, benchmark)


def run_per_backend(script, argv, backends, benchmark, echo=True):
    """Runs `script --in-process ARGV` under each backend; returns the rows.

    Args:
        script: path of the benchmark script.
        argv: its command-line arguments (passed on unchanged).
        backends: backend names, a list or a comma-separated string.
        benchmark: the `benchmark` field of an error row.
        echo: print each row as it arrives (as one JSON line).

    Returns:
        the rows (dicts) the children printed, plus one
        `{"benchmark", "backend", "error"}` row for each child that failed
        (its exit code and the last line of its stderr). Lines that are not
        JSON (whatever a library printed) go to stderr.
    """
    if isinstance(backends, str):
        backends = backends.split(",")
    rows = []
    for backend in [b for b in backends if b]:
        env = dict(os.environ, KERAS_BACKEND=backend)
        with tempfile.TemporaryFile("w+") as stderr:
            process = subprocess.Popen(
                [sys.executable, os.path.abspath(script), "--in-process"]
                + list(argv), env=env, stdout=subprocess.PIPE, stderr=stderr,
                text=True)
            for line in process.stdout:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    sys.stderr.write(line)
                    continue
                if echo:
                    print(line.rstrip("\n"), flush=True)
            code = process.wait()
            if code:
                stderr.seek(0)
                lines = stderr.read().strip().splitlines() or [
                    "(no message)"]
                row = {"benchmark": benchmark, "backend": backend,
                       "error": f"exit code {code}: {lines[-1]}"[:1000]}
                if echo:
                    print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def run_child(command, env, benchmark, backend, skip_codes=(), **fields):
    """Runs one child benchmark process, echoing its stdout (its JSON rows).

    A child that fails prints one `{"benchmark", "backend", **fields,
    "error"}` row with its exit code and the last line of its stderr, and
    the caller goes on with the next one (a launcher that sent the
    children's stderr to /dev/null and raised on a failure said neither
    why nor ran the other backends).

    Args:
        command: the child's command line.
        env: its environment.
        benchmark: the `benchmark` field of an error row.
        backend: the `backend` field of an error row.
        skip_codes: exit codes that are not failures (no error row).
        **fields: more fields of an error row (the child's settings).

    Returns:
        `(exit code, stdout)`.
    """
    with tempfile.TemporaryFile("w+") as stderr:
        done = subprocess.run(command, env=env, stdout=subprocess.PIPE,
                              stderr=stderr, text=True)
        sys.stdout.write(done.stdout)
        sys.stdout.flush()
        if done.returncode and done.returncode not in skip_codes:
            stderr.seek(0)
            lines = stderr.read().strip().splitlines() or ["(no message)"]
            row = {"benchmark": benchmark, "backend": backend, **fields,
                   "error": f"exit code {done.returncode}: {lines[-1]}"[:1000]}
            print(json.dumps(row), flush=True)
    return done.returncode, done.stdout


def device():
    """The first device the backend trains on, e.g. "cpu:0" or "gpu:0"."""
    import keras

    if keras.backend.backend() == "torch":  # no keras.distribution there
        import torch

        return "cuda:0" if torch.cuda.is_available() else "cpu:0"
    return keras.distribution.list_devices()[0].lower()
