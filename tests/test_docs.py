"""The documentation stays true to the code: the generated command reference is current, every
relative link in README.md and docs/ leads somewhere, and the README stays a front page that names
every command and every Makefile target. When the CLI changes, `make docs` regenerates the reference."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from bench.cli.app import app
from tools import cli_reference

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
MAKEFILE = ROOT / "Makefile"
README_MAX_LINES = 200

_FENCED = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"(?<!\\)\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")


def _make_targets(makefile: str) -> list[str]:
    return re.findall(r"^([a-z][a-z0-9-]*):(?!=)", makefile, re.MULTILINE)


def _prose(page: Path) -> str:
    """The page without its code: a link-like text in a code block or span is not a link."""
    return _INLINE_CODE.sub("", _FENCED.sub("", page.read_text(encoding="utf-8")))


def _links(page: Path) -> list[str]:
    prose = _prose(page)
    return _LINK.findall(prose) + _REFERENCE.findall(prose)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_~]|<[^>]+>", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    source = _FENCED.sub("", page.read_text(encoding="utf-8"))
    slugs: set[str] = set()
    for heading in _HEADING.findall(source):
        slug, n = _slug(heading), 1
        while slug in slugs:  # GitHub numbers repeated headings: x, x-1, x-2
            slug = f"{_slug(heading)}-{n}"
            n += 1
        slugs.add(slug)
    return slugs | set(_ANCHOR.findall(source))


def test_command_reference_is_current() -> None:
    """docs/commands.md is what tools/cli_reference.py makes from the CLI today."""
    committed = cli_reference.OUTPUT.read_text(encoding="utf-8") if cli_reference.OUTPUT.exists() else ""
    assert committed == cli_reference.render(app), "docs/commands.md is stale: run `make docs` and commit it"


def test_command_reference_covers_every_command() -> None:
    root = typer.main.get_command(app)
    names = [cmd.name for cmd in cli_reference.walk(root)]
    assert {"seed", "run", "report", "compare", "check", "bench", "baseline save"} <= set(names)
    page = cli_reference.render(app)
    for name in names:
        assert f"## `taskbench {name}`" in page


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for link in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", link, re.IGNORECASE):  # https:, mailto: ...
            continue
        path, _, fragment = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link} (no {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target})")
        elif fragment and target.suffix == ".md" and fragment not in _anchors(target):
            broken.append(f"{link} (no heading or anchor #{fragment} in {target.name})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {', '.join(broken)}"


def test_readme_is_a_front_page() -> None:
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    assert "make bench" in text and "make test" in text


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(README.parent / link.partition("#")[0]).resolve() for link in _links(README)}
    orphans = [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert not orphans, f"docs pages the README does not link to: {', '.join(orphans)}"


def test_readme_names_every_command_and_make_target() -> None:
    text = README.read_text(encoding="utf-8")
    commands = [cmd.name for cmd in cli_reference.walk(typer.main.get_command(app))]
    missing = [f"taskbench {name}" for name in commands if f"`taskbench {name}" not in text]
    targets = _make_targets(MAKEFILE.read_text(encoding="utf-8"))
    missing += [f"make {target}" for target in targets if f"`make {target}" not in text]
    assert not missing, f"README.md's tables do not name: {', '.join(missing)}"


def test_makefile_declares_its_targets_phony_once() -> None:
    # One declaration beside the variables, so a new target is added where the others are listed.
    makefile = MAKEFILE.read_text(encoding="utf-8")
    declarations = re.findall(r"^\.PHONY:(.*)$", makefile, re.MULTILINE)
    assert len(declarations) == 1, f"{len(declarations)} .PHONY lines in the Makefile"
    assert sorted(declarations[0].split()) == sorted(_make_targets(makefile))
