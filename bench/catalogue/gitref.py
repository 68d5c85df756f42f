"""A scenarios directory as a git commit holds it: "before" for ``taskbench check --before-ref``.

The directory is exported with ``git archive`` into a temporary directory (nothing in the working
tree is touched, nothing is checked out) and read like any catalogue, by the same parser and rules.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.errors import InputError


def _git(*args: str, cwd: Path) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise InputError("--before-ref needs git, which is not on PATH") from None
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise InputError(f"git {args[0]}: {said[0] if said else f'exit {done.returncode}'}")
    return done.stdout


@contextmanager
def scenarios_at(ref: str, scenarios_dir: Path) -> Iterator[Path]:
    """``scenarios_dir`` as commit ``ref`` of its repository holds it, in a temporary directory
    removed on exit. InputError when there is no repository, no such commit or no such directory."""
    if ref.startswith("-"):  # git would read it as an option
        raise InputError(f"--before-ref {ref!r} is not a commit")
    folder = scenarios_dir.resolve()
    if not folder.is_dir():
        raise InputError(f"{scenarios_dir} is not a directory")
    top = Path(_git("rev-parse", "--show-toplevel", cwd=folder).decode().strip())
    try:
        commit = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=folder).decode().strip()
    except InputError:
        raise InputError(f"--before-ref {ref}: no such commit in {top}") from None
    relative = folder.relative_to(top.resolve()).as_posix()
    with _exported(top, commit, relative) as tmp:
        exported = tmp / relative
        if not exported.is_dir():
            raise InputError(f"commit {ref} has no {relative}/")
        yield exported


@contextmanager
def _exported(top: Path, commit: str, relative: str) -> Iterator[Path]:
    """``relative`` (a path in the repository at ``top``) as ``commit`` holds it, extracted with ``git
    archive`` into a temporary directory removed on exit; nothing in the working tree is touched."""
    archive = _git("archive", "--format=tar", commit, "--", relative, cwd=top)
    with tempfile.TemporaryDirectory(prefix="taskbench-at-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp)


@dataclass(frozen=True)
class MergeBase:
    commit: str
    branch: str  # the default branch it was found with, e.g. origin/main


_DEFAULT_BRANCHES = ("origin/HEAD", "origin/main", "origin/master", "main", "master")


def default_merge_base(scenarios_dir: Path) -> MergeBase | None:
    """The merge base of HEAD with the repository's default branch (the remote's HEAD, else main or
    master), or None where there is no git, no repository or no such branch: "before" for a check
    that is told none. On the default branch itself, that is HEAD: an A/A check."""
    folder = scenarios_dir.resolve()
    if not folder.is_dir():
        return None
    for branch in _DEFAULT_BRANCHES:
        try:
            _git("rev-parse", "--verify", "--quiet", f"{branch}^{{commit}}", cwd=folder)
            commit = _git("merge-base", "HEAD", branch, cwd=folder).decode().strip()
        except InputError:
            continue
        return MergeBase(commit, _symbolic(branch, folder))
    return None


def _symbolic(branch: str, cwd: Path) -> str:
    """origin/HEAD as the branch it points to (origin/main), for the output."""
    try:
        return _git("rev-parse", "--abbrev-ref", branch, cwd=cwd).decode().strip() or branch
    except InputError:
        return branch


# Printed by the models of another commit, in a process of their own: their DDL, as model_ddl() makes it.
_DDL_PROGRAM = """
import sys
from pathlib import Path
import bench
if Path(bench.__file__).resolve().parent != Path(sys.argv[1]).resolve() / "bench":
    sys.exit("the exported package was not the one imported")
from bench.targets.schema import model_ddl
sys.stdout.write(model_ddl())
"""
_DDL_TIMEOUT_S = 60


def models_ddl_at(ref: str, scenarios_dir: Path) -> str:
    """The DDL the models of commit ``ref`` produce: its ``bench`` package exported with ``git
    archive`` and imported in a separate Python process (this one's interpreter and libraries), which
    prints ``model_ddl()``. It is the repository's own code at a commit the caller named (in CI, the
    pull request's base); the DDL it prints is read by PostgreSQL's parser like any recorded schema
    before anything executes it. InputError when the commit has no models or they cannot be read."""
    top = Path(_git("rev-parse", "--show-toplevel", cwd=scenarios_dir.resolve()).decode().strip())
    with _exported(top, ref, "bench") as tmp:
        try:
            done = subprocess.run(
                [sys.executable, "-c", _DDL_PROGRAM, str(tmp)],
                cwd=tmp,
                env={**os.environ, "PYTHONPATH": str(tmp)},
                capture_output=True,
                text=True,
                timeout=_DDL_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise InputError(f"the models at {ref} did not print their DDL within {_DDL_TIMEOUT_S} s") from None
    if done.returncode != 0 or not done.stdout.strip():
        said = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise InputError(f"the models at {ref} could not be read: {said}")
    return done.stdout
