"""Where the commands write: what they found on stdout, notes and progress on stderr."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from bench.targets.target import Target

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def say(lines: Iterable[str]) -> None:
    """Lines of a command's findings, as they are: no markup, no highlighting (names and paths may
    hold brackets)."""
    for line in lines:
        out.print(line, highlight=False, markup=False)


def note(message: str) -> None:
    err.print(message, highlight=False, markup=False)


def show(target: Target) -> Target:
    """Say where the measuring happens, and how the first contact went."""
    probe = target.probe
    first = (
        f"; first contact: connect {probe.connect_ms:.0f} ms, first query {probe.first_query_ms:.1f} ms "
        f"(then {probe.warm_query_ms:.2f} ms)"
        if probe
        else ""
    )
    note(f"target: {target.kind} {target.display} ({target.host_kind} connection{first})")
    return target
