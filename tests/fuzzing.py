"""Shared pieces of the property-based bad-input tests (`test_fuzz*.py`).

The property every fuzz test checks: a call on odd input either succeeds
with a sane result, or raises one `ValueError` of keras_genzoo's own, with
a message, before any work; never another exception type, and never a
`ValueError` from deep inside numpy, TensorFlow, JAX or PyTorch (those do
not say what to change).

Hypothesis runs under one deterministic profile: `derandomize=True` (the
same examples on every run and in CI), no example database (no
`.hypothesis` folder), no deadline (first calls compile).
"""

import atexit
import os
import re
import shutil
import tempfile

import numpy as np
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

import keras_genzoo

# Hypothesis keeps caches (Unicode tables, constants) in `.hypothesis/`
# even without an example database: keep them out of the checkout.
_home = tempfile.mkdtemp(prefix="genzoo_hypothesis_")
atexit.register(shutil.rmtree, _home, ignore_errors=True)
set_hypothesis_home_dir(_home)

settings.register_profile(
    "genzoo",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=25,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow,
                           HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)
settings.load_profile("genzoo")

_PACKAGE = os.path.dirname(os.path.abspath(keras_genzoo.__file__))

# Messages Python, numpy and the frameworks write for a failed conversion:
# a ValueError with one of these names no fix, wherever it is raised.
_GENERIC = re.compile(
    r"invalid literal|could not convert|cannot convert|must be real number|"
    r"cannot be interpreted|inhomogeneous|setting an array element|"
    r"range\(\) arg|need at least one array|zero-size array|"
    r"out of bounds|too large to convert|Maximum allowed size|"
    r"Unsupported dtype|truth value of an array", re.IGNORECASE)


def raised_in(error):
    """The file of the innermost frame that raised `error`."""
    tb = error.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return os.path.abspath(tb.tb_frame.f_code.co_filename)


def check_error(error):
    """Asserts that `error` is one of keras_genzoo's clear ValueErrors."""
    assert isinstance(error, ValueError), repr(error)
    message = str(error)
    assert len(message) >= 20, f"too short a message: {message!r}"
    where = raised_in(error)
    assert where.startswith(_PACKAGE), (
        f"ValueError raised in {where}, not by keras_genzoo: {message}")
    assert not _GENERIC.search(message), (
        f"a generic conversion message that names no fix: {message}")


def outcome(fn, *args, **kwargs):
    """Calls `fn`: its result, or the clear `ValueError` it raised (checked
    with `check_error`). Any other exception fails the test."""
    try:
        result = fn(*args, **kwargs)
    except ValueError as error:
        check_error(error)
        event("clear ValueError")  # `--hypothesis-show-statistics`
        return error
    event("succeeded")
    return result


def failed(result):
    return isinstance(result, ValueError)


# --------------------------------------------------------------- values
HUGE = [10**13, 2**63, 10**30, -(2**40)]

# Junk for scalar arguments (counts, seeds, temperatures, ...): every
# Python and numpy kind a user may pass by mistake, but no huge ints (for
# counts that would run for ever rather than fail).
small_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 6),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([0.5, 1.0, 2.0, 2.5, -1.5]),
    st.sampled_from(["", "3", "abc", "1e3", b"3"]),
    st.sampled_from([np.int64(2), np.int32(-1), np.uint8(3),
                     np.float32(2.0), np.float64(0.5), np.bool_(True),
                     np.array(2), np.array([1, 2]), np.float16(np.nan)]),
    st.sampled_from([[1], (2,), [], {}, {"a": 1}, object(), 1 + 2j]),
)
junk_scalars = st.one_of(small_junk, st.sampled_from(HUGE))


@st.composite
def arguments(draw, valid, junk):
    """Keyword arguments of a call: all valid one time in three, otherwise
    one to three of them (any of `junk`'s keys) junk.

    Args:
        valid: `{name: strategy}` of valid values, one per argument.
        junk: `{name: strategy}` of bad (or odd) values for the arguments
            that are fuzzed.
    """
    kwargs = {name: draw(strategy) for name, strategy in valid.items()}
    if draw(st.integers(0, 2)):
        names = draw(st.lists(st.sampled_from(sorted(junk)), min_size=1,
                              max_size=min(3, len(junk)), unique=True))
        for name in names:
            kwargs[name] = draw(junk[name])
    return kwargs


def mostly(valid, junk=junk_scalars):
    """A valid value three times in four, junk otherwise: every argument
    of a call is fuzzed, and calls still get past their checks often."""
    return st.one_of(valid, valid, valid, junk)


# Seeds: valid ones (None, small ints, the largest 32-bit one) and junk.
seeds = mostly(st.one_of(st.none(), st.integers(0, 2**32 - 1)),
               st.one_of(junk_scalars, st.sampled_from([-1, 2**32])))
