"""The command line: ``app`` holds the commands, ``main`` is the console script's entry point.

A module per command (or a few close ones), each registering on ``app`` as it is imported, in the
order of ``MODULES``: the order ``taskbench --help`` lists the commands in. A new command is a
module here and its name in ``MODULES``.

Every ``taskbench`` process imports every command module (typer needs each command's signature to
register it), so a command module imports at its top only what its signatures and option defaults
need: typer, ``bench.cli``'s own modules and the light ``options`` modules of the library (standard
library only: ``bench.*.options``, ``seed.profiles``, ``bench.output``). The library itself (the
drivers, the models, numpy, scipy, matplotlib...) is imported inside the command body that uses it,
so ``--help``, a refusal or ``taskbench seed`` pays only for what it runs (issue 25; tests/test_cli.py
checks what ``import bench.cli`` leaves out). Types only annotations need come under TYPE_CHECKING."""

import importlib

from bench.cli.app import app, main

MODULES = ("seeding", "matrix", "gate", "upgrade", "bench", "scale", "load", "crosscheck", "advise", "admin")
for _module in MODULES:
    importlib.import_module(f"bench.cli.{_module}")

__all__ = ["app", "main"]
