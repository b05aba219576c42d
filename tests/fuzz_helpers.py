"""Shared pieces of the property-based (Hypothesis) tests of the file readers.

* :func:`fuzz_settings` -- modest example counts for the suite; set the environment variable
  ``KERAS_ICNN_FUZZ_EXAMPLES`` (e.g. 2000) to run every fuzz test with that many examples.
* :func:`outcome` -- call a reader under a time limit: its result, or ``None`` after one of
  the documented errors (``ValueError`` and subclasses, ``FileNotFoundError``) whose message
  names the file.  Any other exception, or a hang, fails the test.
* :func:`mutated` -- a strategy for valid file bytes with bytes flipped, inserted or deleted.
"""
from __future__ import annotations

import contextlib
import os
import signal
import tempfile

from hypothesis import HealthCheck, configuration, settings
from hypothesis import strategies as st

# Hypothesis caches data (e.g. its unicode tables) under .hypothesis/ in the working
# directory: keep the checkout clean.
configuration.set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "keras-icnn-hypothesis"))

#: The errors the readers document.
DOCUMENTED = (ValueError, FileNotFoundError)

#: Seconds one reader call may take before it counts as a hang.
TIME_LIMIT = 20


def fuzz_settings(max_examples):
    """Hypothesis settings for one fuzz test (``KERAS_ICNN_FUZZ_EXAMPLES`` overrides the
    count)."""
    n = int(os.environ.get("KERAS_ICNN_FUZZ_EXAMPLES", "0") or 0) or max_examples
    return settings(max_examples=n, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])


class Hang(BaseException):
    """A reader did not return in time (a BaseException, so that no ``except Exception`` in
    the code under test turns it into a documented error)."""


@contextlib.contextmanager
def time_limit(seconds=TIME_LIMIT):
    def on_alarm(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def outcome(fn, *args, names, **kwargs):
    """``fn(*args, **kwargs)`` under :func:`time_limit`: its result, or ``None`` when it raised
    a documented error whose message contains ``names`` (the file's path)."""
    with time_limit():
        try:
            return fn(*args, **kwargs)
        except DOCUMENTED as exc:
            assert str(names) in str(exc), (
                f"{type(exc).__name__} does not name {names}: {exc}")
            return None


class QuietBytes(bytes):
    """File contents that Hypothesis' failure reports show briefly (length and digest)."""

    def __repr__(self):
        import hashlib
        return f"<{len(self)} bytes, sha1 {hashlib.sha1(self).hexdigest()[:12]}>"


def _positions(draw, size):
    """A byte position in ``[0, size]``; half the time within the first 2 KiB (the headers)."""
    if size == 0:
        return 0
    return draw(st.one_of(st.integers(0, min(size, 2048)), st.integers(0, size)))


@st.composite
def mutated(draw, base: bytes, max_edits=4):
    """``base`` with 1..``max_edits`` bytes flipped, overwritten, inserted or deleted."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, max_edits))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        pos = _positions(draw, len(data))
        if kind in ("flip", "set") and pos < len(data):
            if kind == "flip":
                data[pos] ^= 1 << draw(st.integers(0, 7))
            else:
                data[pos] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x01]))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[pos:pos + draw(st.integers(1, 16))]
    return QuietBytes(data)


def truncations(base: bytes):
    """``base`` cut at a random point (never whole)."""
    return st.integers(0, len(base) - 1).map(lambda cut: QuietBytes(base[:cut]))
