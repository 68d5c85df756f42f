"""The command line: ``app`` holds the commands; ``main`` is the console script's entry point."""

from bench.cli.app import main

__all__ = ["main"]
