"""tests/workers.py: the xdist workers' lock — an ``alone`` test's hold kept for the next ``alone``
test of the same worker, let go otherwise, and each module's ``alone`` tests ordered last in it."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest

from tests.workers import FILES, Slots, alone_last


def _free(directory: Path) -> bool:
    """Whether another worker could start a test now: the lock taken shared without waiting (another
    open file description than the holder's, as another process has)."""
    fd = os.open(directory / FILES[1], os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_an_alone_hold_is_kept_for_the_next_alone_test_and_let_go_after_the_last(tmp_path):
    slots = Slots(tmp_path)
    with slots.slot(alone=True, next_alone=True):
        assert not _free(tmp_path)
    assert not _free(tmp_path) and slots.kept  # no other worker's test slips in between
    with slots.slot(alone=True, next_alone=False):
        assert not _free(tmp_path)
    assert _free(tmp_path) and not slots.kept
    with slots.slot(alone=False):
        assert _free(tmp_path)  # shared: the other worker's tests run beside it
    slots.close()


def test_a_hold_kept_for_a_test_that_never_came_is_let_go_at_the_end(tmp_path):
    slots = Slots(tmp_path)
    with slots.slot(alone=True, next_alone=True):
        pass
    assert not _free(tmp_path)
    slots.close()
    assert _free(tmp_path)


def test_without_xdist_nothing_is_locked(tmp_path):
    slots = Slots(None)
    with slots.slot(alone=True, next_alone=True):
        assert not slots.kept and _free(tmp_path)
    slots.close()


@dataclass
class _Item:
    nodeid: str
    markers: list[str] = field(default_factory=list)

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.markers else None


def test_each_modules_alone_tests_come_last_in_it_every_other_order_kept():
    items = [
        _Item("tests/test_b.py::first", ["alone"]),
        _Item("tests/test_b.py::second"),
        _Item("tests/test_b.py::third", ["alone"]),
        _Item("tests/test_b.py::fourth"),
        _Item("tests/test_a.py::only", ["alone"]),
        _Item("tests/test_c.py::one"),
    ]
    alone_last(cast(list[pytest.Item], items))
    assert [i.nodeid.split("::")[1] for i in items] == ["second", "fourth", "first", "third", "only", "one"]
