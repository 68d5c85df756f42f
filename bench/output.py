"""Where results and reports are written: the directory checked before anything is measured, each
file written whole or not at all, and results that still cannot be written saved elsewhere.

A run can measure for twenty minutes; finding only then that its directory is read-only or its disk
full would throw the measurements away. So every command that writes checks its directory first
(``require_writable``), and a write that fails anyway (the disk filled meanwhile) leaves no partial
file and puts the results in the system's temporary directory, named in the one-line error
(``rescue``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.errors import InputError

RESULTS_FILE = "results.json"
REPORTS_DIR = Path("reports")  # where a run's directory is written unless told otherwise
BASELINE_FILE = REPORTS_DIR / "baseline.json"  # the committed reference run (`make check`, `baseline save`)
CHECK_DIR = REPORTS_DIR / "check"  # the gate's own runs, apart from the measurements a team keeps

# Room a command needs where it writes: the committed baseline (the whole matrix, 210 cells) came to
# 4.6 MB with its report (2.6 MB of results.json, the figures and the HTML that embeds them); the
# margin is for larger matrices and cells with more samples. The README states it.
MIN_FREE_MB = 64


class NotWritten(InputError):
    """Results or a report could not be written where they were meant to go."""


def reason(exc: OSError) -> str:
    """An OS error as the user needs it: its message without the path the caller names anyway."""
    return exc.strerror or type(exc).__name__


def _existing(directory: Path) -> Path:
    """``directory`` or, when it does not exist yet, its nearest ancestor that does (it is created
    there later); refused when that is not a directory."""
    probe = directory.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise NotWritten(f"cannot write in {directory}: {probe} is not a directory")
    return probe


def require_writable(directory: Path) -> Path:
    """Refuse, before any work, a directory that cannot be written or whose disk has less than
    MIN_FREE_MB free. Writing is tried for real (a file created and removed at once): permissions
    say nothing for root, and a read-only mount only shows when written to."""
    where = _existing(directory)
    try:
        with tempfile.TemporaryFile(dir=where):
            pass
        free = shutil.disk_usage(where).free
    except OSError as exc:
        raise NotWritten(f"cannot write in {directory}: {reason(exc)}") from None
    if free < MIN_FREE_MB * 1024 * 1024:
        raise NotWritten(
            f"cannot write in {directory}: {free / 1024 / 1024:.1f} MB free on its disk, "
            f"taskbench needs {MIN_FREE_MB} MB for results and their report"
        )
    return directory


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` to write, moved over ``path`` once written: a reader never
    sees half a file, and a failure or Ctrl-C leaves none (the temporary file is removed). It keeps
    ``path``'s suffix, for writers that choose the format by it (matplotlib)."""
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> Path:
    """``text`` (UTF-8) in ``path``, written whole or not at all (``replacing``)."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def rescue(text: str, name: str, meant: Path, exc: OSError) -> NotWritten:
    """Write ``text`` as ``name`` in a new directory of the system's temporary directory, after
    writing it to ``meant`` failed with ``exc``; the error to raise names where it went (or that it
    could not go there either)."""
    directory: Path | None = None
    try:
        directory = Path(tempfile.mkdtemp(prefix="taskbench-"))
        write_text(directory / name, text)
    except OSError as again:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        return NotWritten(
            f"cannot write {meant}: {reason(exc)}; nor in {tempfile.gettempdir()}: {reason(again)}: "
            f"the results are lost"
        )
    return NotWritten(f"cannot write {meant}: {reason(exc)}; the results were written to {directory / name} instead")
