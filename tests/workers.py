"""`make test` runs the suite on two pytest-xdist workers (``-n 2``), which share the embedded
server and the machine's cores. Most tests do not mind: they measure beside other measurements (see
tests/support.py) and assert verdicts far from their SLA. A test marked ``alone`` does mind: it
judges time side by side (a check's time gate and its calibration) or bounds a wall time, and the
other workers' work on the same cores would be measured with it (an A/A check came out "cannot
judge: the calibration workload differed"). Such a test runs while every other worker waits between
two tests.

The workers share a lock file: each test holds it shared, an ``alone`` test exclusively, from the
set-up of its fixtures (a module's expensive run is measured in the first test's set-up) to its
tear-down. A turnstile taken before the lock lets a waiting ``alone`` test in ahead of the next
shared holder: without it a worker running short tests one after another could keep it out.
Without xdist (``pytest`` alone, ``-p no:xdist``, ``-n 0``) nothing is locked.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def lock_dir(config: pytest.Config) -> Path | None:
    """The directory the workers of this run share, or None when the tests do not run on xdist
    workers: xdist gives each worker the basetemp ``<the run's basetemp>/<worker id>``, so its parent
    is the run's own (pytest keeps and removes it like any basetemp)."""
    if not hasattr(config, "workerinput"):
        return None
    return Path(config.option.basetemp).parent


@contextmanager
def slot(directory: Path | None, alone: bool) -> Iterator[None]:
    if directory is None:
        yield
        return
    with open(directory / "turnstile.lock", "a") as turnstile, open(directory / "tests.lock", "a") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            if not alone:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
