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

Each module's ``alone`` tests run last in it, one after the other (``alone_last``), and a worker
whose next test is ``alone`` too keeps its exclusive hold for it (``Slots``): let go in between,
the other worker would start a test of its own there, and the next ``alone`` test wait for its end
(about 18 s of a worker's waiting over a suite, in 10 holds for 15 such tests, before).
"""

from __future__ import annotations

import fcntl
import os
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


FILES = ("turnstile.lock", "tests.lock")


def alone_last(items: list[pytest.Item]) -> None:
    """Each module's ``alone`` tests after its others, every other order kept (modules stay whole:
    ``--dist loadscope`` gives a module to one worker)."""
    modules: dict[str, int] = {}
    items.sort(key=lambda item: (modules.setdefault(item.nodeid.split("::")[0], len(modules)), is_alone(item)))


def is_alone(item: pytest.Item) -> bool:
    return item.get_closest_marker("alone") is not None


class Slots:
    """This worker's holds on the lock in ``directory`` (None: not on xdist, nothing is locked): its
    two files open for the session, flock(2) taken and let go test by test."""

    def __init__(self, directory: Path | None) -> None:
        self._held: tuple[int, int] | None = None  # the turnstile's and the lock's file descriptors
        if directory is not None:
            turnstile, lock = (os.open(directory / name, os.O_CREAT | os.O_RDWR) for name in FILES)
            self._held = turnstile, lock
        self.kept = False  # held exclusively since the last test, for this one: alone too

    @contextmanager
    def slot(self, alone: bool, next_alone: bool = False) -> Iterator[None]:
        """The lock held for one test, exclusively when ``alone``; kept held after it when the next
        test is ``alone`` too (``next_alone``)."""
        if self._held is None:
            yield
            return
        turnstile, lock = self._held
        if self.kept and not alone:
            self._let_go(True)
        if not self.kept:
            fcntl.flock(turnstile, fcntl.LOCK_EX)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
            finally:
                if not alone:
                    fcntl.flock(turnstile, fcntl.LOCK_UN)
        self.kept = False
        try:
            yield
        finally:
            if alone and next_alone:
                self.kept = True
            else:
                self._let_go(alone)

    def close(self) -> None:
        """The session's end: a hold kept for an ``alone`` test that did not come let go, the files closed."""
        if self.kept:
            self._let_go(True)
        if self._held is not None:
            for fd in self._held:
                os.close(fd)
            self._held = None

    def _let_go(self, alone: bool) -> None:
        assert self._held is not None
        turnstile, lock = self._held
        fcntl.flock(lock, fcntl.LOCK_UN)
        if alone:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        self.kept = False
