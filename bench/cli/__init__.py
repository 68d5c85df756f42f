"""The command line: ``app`` holds the commands, ``main`` is the console script's entry point.

A module per command (or a few close ones), each registering on ``app`` as it is imported, in the
order of ``MODULES``: the order ``taskbench --help`` lists the commands in. A new command is a
module here and its name in ``MODULES``."""

import importlib

from bench.cli.app import app, main

MODULES = ("seeding", "matrix", "gate", "upgrade", "bench", "scale", "load", "crosscheck", "advise", "admin")
for _module in MODULES:
    importlib.import_module(f"bench.cli.{_module}")

__all__ = ["app", "main"]
