"""README's "Your own task" as a user follows it: the task file it shows is the example's, and its commands (the
contract check, the sweep, the ranking) run as written, offline, from a folder holding a copy of examples/ (slow)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "own_task"


def section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Your own task", 1)[1].split("\n## ", 1)[0]


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", section(), flags=re.S)


def commands() -> list[list[str]]:
    (bash,) = blocks("bash")
    out = []
    for line in bash.strip().splitlines():
        argv = shlex.split(line, comments=True)
        assert argv[0] == "itsel-ray", line
        out.append([sys.executable, "-m", "itsel_ray.cli", *argv[1:]])
    return out


def test_the_task_file_shown_is_the_examples_own():
    (shown,) = blocks("yaml")
    shown = yaml.safe_load(shown)["tasks"][0]
    real = yaml.safe_load((EXAMPLE / "tasks.yaml").read_text())["tasks"][0]
    assert {k: real[k] for k in shown} == shown  # README shows a subset of the keys, each as in the file


def test_the_example_is_small_and_its_rows_are_the_tasks_schema():
    size = sum(p.stat().st_size for p in EXAMPLE.rglob("*") if p.is_file())
    assert size < 200_000
    assert [c[3] for c in commands()] == ["list", "transfer", "rank"]


@pytest.mark.slow
def test_readme_your_own_task_runs_as_written(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    outputs = []
    for argv in commands():
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, (argv, done.stdout[-3000:], done.stderr[-3000:])
        outputs.append(done.stdout)
    check, _, rank = outputs
    assert "pairs15: ok" in check and "1 of 1 task(s) meet the contract" in check
    report = tmp_path / "runs" / "own_task" / "analysis" / "report.md"
    assert report.is_file() and "pairs15" in report.read_text()
    ranked = [line.split()[1] for line in rank.splitlines() if re.match(r"\s*\d+\s+syn_has", line)]
    assert sorted(ranked) == ["syn_has1", "syn_has2", "syn_has5"]
