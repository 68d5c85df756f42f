"""The layer contract (pyproject.toml's [tool.importlinter], run by `make test`) covers every package
and fails on an upward import: a contract that a new package escapes, or that cannot fail, would
keep nothing."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _layers() -> list[set[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = (c for c in config["contracts"] if c["id"] == "layers")
    return [{name.strip().strip("()") for name in re.split(r"[|:]", layer)} for layer in contract["layers"]]


def _top_level(package: str) -> set[str]:
    """The subpackages and modules directly inside ``package`` (its __init__ aside)."""
    found = set()
    for path in (ROOT / package).iterdir():
        if (path.is_dir() and (path / "__init__.py").exists()) or (path.suffix == ".py" and path.stem != "__init__"):
            found.add(f"{package}.{path.stem}")
    return found


def test_every_package_and_module_is_in_a_layer() -> None:
    placed = [name for layer in _layers() for name in layer]
    assert len(placed) == len(set(placed)), "a module placed in two layers"
    missing = (_top_level("bench") | {"seed"}) - set(placed)
    assert not missing, f"not in any layer of pyproject.toml's [tool.importlinter]: {sorted(missing)}"


def test_the_root_package_imports_nothing_of_its_own() -> None:
    """``bench`` itself is in no layer, so any layer may import it (its __version__): it must stay a
    leaf, or it would be a way round the contract."""
    tree = ast.parse((ROOT / "bench" / "__init__.py").read_text())
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
    assert not imports


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "pyproject.toml"], cwd=tree, capture_output=True, text=True, timeout=120
    )


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    for package in ("bench", "seed"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    clean = _lint(tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    results = tmp_path / "bench" / "results.py"
    # Inside a function, as a lazy import would be: those count too.
    results.write_text(results.read_text() + "\n\ndef _upward() -> None:\n    from bench.judge import stats\n")
    broken = _lint(tmp_path)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "bench.results is not allowed to import bench.judge" in broken.stdout
