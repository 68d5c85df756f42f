"""Write docs/commands.md, the command reference, from the taskbench CLI itself (`make docs`).

Nothing here lists a command or an option: the typer app is turned into its click command
(``typer.main.get_command``) and walked — every registered command and sub-command, each
parameter's declaration, help, default, range and environment variable as ``--help`` shows them.
``tests/test_docs.py`` renders the page again in memory and fails when the committed file differs,
so a changed option is a stale reference until ``make docs`` is run.

Options that several commands declare identically (same names, same help, same default) are
printed once, as a group, when there are at least ``MIN_GROUP`` of them (the target options, the
gate's thresholds); every command's section names the groups it takes.

    python tools/cli_reference.py            # write docs/commands.md
    python tools/cli_reference.py --check    # exit 1 if docs/commands.md is stale
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "commands.md"
PROGRAM = "taskbench"
MIN_GROUP = 5  # options shared by the same commands that are printed once, as a group

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Param:
    kind: str  # "argument" or "option"
    declaration: str  # e.g. "-c, --clients <int range>"
    help: str  # with "[default: ...; env var: ...; range]" as --help shows it
    usage: str  # for the usage line: "BASELINE", "[RUN_DIR]"


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]  # ("baseline", "save")
    help: str
    params: tuple[Param, ...]
    groups: tuple[tuple[str, str], ...] = ()  # the command groups it sits in: (name, help)

    @property
    def name(self) -> str:
        return " ".join(self.path)

    @property
    def anchor(self) -> str:
        return "cmd-" + "-".join(self.path)


def _context(command: Any, name: str, parent: Any = None) -> Any:
    """A click context for ``command``, as --help would build it (no argument is parsed)."""
    return command.context_class(command, info_name=name, parent=parent)


def _params(command: Any, ctx: Any) -> tuple[Param, ...]:
    params = []
    for p in command.get_params(ctx):
        if getattr(p, "hidden", False):
            continue
        record = p.get_help_record(ctx)
        if record is None:
            continue
        declaration, text = record
        if declaration.split(",")[-1].strip() == "--help":
            continue
        if p.param_type_name == "argument":
            usage = (p.name or "").upper() + ("..." if p.nargs == -1 else "")
            usage = usage if p.required else f"[{usage}]"
        else:
            usage = ""
        params.append(Param(p.param_type_name, declaration, " ".join(text.split()), usage))
    return tuple(params)


def walk(
    command: Any, path: tuple[str, ...] = (), ctx: Any = None, groups: tuple[tuple[str, str], ...] = ()
) -> Iterator[Command]:
    """Every leaf command under ``command``, in the order they were registered."""
    ctx = ctx if ctx is not None else _context(command, PROGRAM)
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield Command(path, inspect.cleandoc(command.help or ""), _params(command, ctx), groups)
        return
    if path:  # a command group below the program
        groups = (*groups, (" ".join(path), inspect.cleandoc(command.help or "")))
    for name, sub in subcommands.items():
        if getattr(sub, "hidden", False):
            continue
        yield from walk(sub, (*path, name), _context(sub, name, ctx), groups)


def groups_of(commands: list[Command]) -> list[tuple[tuple[str, ...], list[Param]]]:
    """Options that exactly the same commands declare identically, where there are ``MIN_GROUP`` or
    more of them: (the commands' names, the options), in order of first appearance."""
    users: dict[Param, list[str]] = {}
    for cmd in commands:
        for p in cmd.params:
            if p.kind == "option":
                users.setdefault(p, []).append(cmd.name)
    by_users: dict[tuple[str, ...], list[Param]] = {}
    for p, names in users.items():
        if len(names) > 1:
            by_users.setdefault(tuple(names), []).append(p)
    return [(names, params) for names, params in by_users.items() if len(params) >= MIN_GROUP]


_CODE = re.compile(r"(`[^`]*`)")


def text(raw: str) -> str:
    """Help text as Markdown: what Markdown would swallow (<run-id>, a | in a table) is escaped,
    except inside `code`."""
    parts = _CODE.split(raw)
    for i in range(0, len(parts), 2):
        parts[i] = (
            parts[i]
            .replace("&", "&amp;")
            .replace("<", "&lt;")
            .replace(">", "&gt;")
            .replace("*", r"\*")
            .replace("_", r"\_")
        )
    return "".join(parts).replace("|", r"\|")


def _table(params: list[Param]) -> list[str]:
    lines = ["| | |", "|---|---|"]
    for p in params:
        lines.append(f"| `{p.declaration}` | {text(p.help)} |")
    return lines


def _group_anchor(index: int) -> str:
    return f"shared-{index + 1}"


def render(app: Any = None) -> str:
    """The whole of docs/commands.md."""
    import typer

    if app is None:
        from bench.cli.app import app
    root = typer.main.get_command(app)
    commands = list(walk(root))
    groups = groups_of(commands)
    grouped = {p: i for i, (_, params) in enumerate(groups) for p in params}

    out = [
        "# Command reference",
        "",
        "<!-- Generated by tools/cli_reference.py from the taskbench CLI: do not edit by hand. -->",
        "",
        (
            "Generated from the CLI itself by `tools/cli_reference.py` (`make docs`); "
            "`tests/test_docs.py` fails when this page no longer matches the code. "
            "Every command also answers `--help`. The words are those of the [glossary](glossary.md)."
        ),
        "",
        f"`{PROGRAM} [OPTIONS] COMMAND [ARGS]...` — {text(inspect.cleandoc(root.help or ''))}",
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    for cmd in commands:
        first = cmd.help.split("\n\n")[0].replace("\n", " ")
        out.append(f"| [`{PROGRAM} {cmd.name}`](#{cmd.anchor}) | {text(first)} |")
    for cmd in commands:
        arguments = [p for p in cmd.params if p.kind == "argument"]
        own = [p for p in cmd.params if p.kind == "option" and p not in grouped]
        shared = sorted({grouped[p] for p in cmd.params if p in grouped})
        usage = " ".join([PROGRAM, cmd.name, "[OPTIONS]", *(p.usage for p in arguments)])
        out += ["", f'<a id="{cmd.anchor}"></a>', "", f"## `{PROGRAM} {cmd.name}`", ""]
        out += [text(paragraph.replace("\n", " ")) + "\n" for paragraph in cmd.help.split("\n\n")] if cmd.help else []
        out += [f"`{PROGRAM} {name}`: {text(group_help)}\n" for name, group_help in cmd.groups if group_help]
        out += ["```", usage, "```"]
        if arguments:
            out += ["", "Arguments:", "", *_table(arguments)]
        if own:
            out += ["", "Options:", "", *_table(own)]
        for index in shared:
            names, params = groups[index]
            users = ", ".join(f"`{n}`" for n in names)
            out += ["", f"And the [{len(params)} options shared by {users}](#{_group_anchor(index)})."]
    for index, (names, params) in enumerate(groups):
        out += [
            "",
            f'<a id="{_group_anchor(index)}"></a>',
            "",
            f"## Options shared by {', '.join(f'`{n}`' for n in names)}",
            "",
            *_table(params),
        ]
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="Write the command reference from the taskbench CLI.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale, write nothing")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default: {OUTPUT.relative_to(ROOT)}")
    args = parser.parse_args()
    page = render()
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    if args.check:
        if current != page:
            print(f"{args.output} is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    if current != page:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(page, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(f"{args.output} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
