"""A scenarios directory as a git commit holds it: "before" for ``taskbench check --before-ref``.

The directory is exported with ``git archive`` into a temporary directory (nothing in the working
tree is touched, nothing is checked out) and read like any catalogue, by the same parser and rules.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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
    archive = _git("archive", "--format=tar", commit, "--", relative, cwd=top)
    with tempfile.TemporaryDirectory(prefix="taskbench-before-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        exported = Path(tmp) / relative
        if not exported.is_dir():
            raise InputError(f"commit {ref} has no {relative}/")
        yield exported
