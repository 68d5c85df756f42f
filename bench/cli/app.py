"""The ``taskbench`` application: ``app``, which every command module registers on (``command``),
and ``main``, which turns Ctrl-C, SIGTERM and every error into one line and a documented exit code."""

from __future__ import annotations

import atexit
import functools
import gc
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import typer
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from bench.cli.console import err
from bench.errors import EXIT_INPUT, EXIT_OK, Interrupted, TaskbenchError, as_user_error, first_line, hide_secrets

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Benchmark the Todo/chat app's queries under index variants against their SLAs.",
)


# Python's shutdown collects garbage through every object the imports made (NumPy, pyarrow, pandas,
# SQLAlchemy, pydantic...): about 0.3 s of a command's exit here, as long as loading a small dataset.
# Frozen at exit, they are left alone. atexit's other handlers (the embedded server's) still run, and
# what taskbench opens it closes in context managers, never through the collector.
atexit.register(gc.freeze)


def command(name: str, on: typer.Typer | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a command (on ``app``, or the sub-command group ``on``) whose Ctrl-C becomes a
    documented exit code instead of 'Aborted!'."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except KeyboardInterrupt:
                raise Interrupted(
                    "interrupted; no partial results were written and applied indexes were removed"
                ) from None

        return (on or app).command(name)(guarded)

    return register


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (CI cancelling a job, `kill`) takes exactly the Ctrl-C path: inside asyncio.run the
    # runner's SIGINT handler cancels the run at an await (the applied variant is removed, nothing
    # partial is written). Raising KeyboardInterrupt here instead could land inside asyncpg's
    # protocol callbacks and leave the connection hanging.
    os.kill(os.getpid(), signal.SIGINT)


# A Ctrl-C (or SIGTERM, re-sent as one) that lands while Python runs a weakref callback or a __del__
# cannot stop the command: Python prints it as "Exception ignored" and goes on, and a `taskbench
# report` interrupted so once ran to its end and exited 0 after a traceback. The hook keeps that
# traceback off the terminal and remembers the interrupt, so that ``main`` still exits as interrupted.
_swallowed: list[KeyboardInterrupt] = []


def _unraisable(info: Any) -> None:
    if isinstance(info.exc_value, KeyboardInterrupt):
        _swallowed.append(info.exc_value)
    else:
        sys.__unraisablehook__(info)


def _usage_line(exc: UsageError) -> str:
    """A usage error (an unknown option, a missing argument, a value of the wrong type) as one line
    naming the command whose help to read, instead of click's boxed usage text."""
    names: list[str] = []
    ctx = exc.ctx
    while ctx is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    command = " ".join(["taskbench", *reversed(names[:-1])])
    return f"{' '.join(exc.format_message().split())} (see {command} --help)"


def main() -> None:
    # A shell starts a background job (`taskbench run &` in a script) with SIGINT ignored, and
    # asyncio only turns SIGINT into a cancellation where Python's own handler is installed: without
    # this line both Ctrl-C and SIGTERM (which re-sends SIGINT) would be ignored for the whole run.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    before, sys.unraisablehook = sys.unraisablehook, _unraisable
    try:
        # standalone_mode=False: click's own errors reach the handlers below instead of being
        # printed as a box of many lines; typer.Exit's code is returned.
        code = app(standalone_mode=False)
        if _swallowed:  # the command went on to its end: what it wrote, it wrote whole
            _swallowed.clear()
            raise Interrupted("interrupted; the command had finished what it was doing")
    except NoArgsIsHelpError as exc:  # the help was printed: nothing to add
        sys.exit(exc.exit_code)
    except UsageError as exc:
        _error(_usage_line(exc), EXIT_INPUT)
    except Exception as exc:
        known = exc if isinstance(exc, TaskbenchError) else as_user_error(exc)
        if known is None:
            raise  # a bug in taskbench: the traceback is what a report needs
        _error(str(known), known.exit_code)
    finally:
        sys.unraisablehook = before
    sys.exit(code if isinstance(code, int) else EXIT_OK)


def _error(message: str, exit_code: int) -> NoReturn:
    # The last guards, for messages that quote what they did not word: a password in a URL (a
    # usage error's extra argument), a server's DETAIL:, HINT: or LINE lines after its message.
    err.print(f"taskbench: error: {first_line(hide_secrets(message))}", highlight=False, markup=False)
    sys.exit(exit_code)
