"""The layers stay apart: only itsel_ray/sweep/ may import Ray, and the run state (itsel_ray/runs/) is pure: it
imports neither Ray nor the Ray adapters, so `status`, `--dry-run` and the tables work without a cluster."""

import ast
import subprocess
import sys
from pathlib import Path

import itsel_ray

PACKAGE = Path(itsel_ray.__file__).parent


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the file, function-level ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            out.append((node.lineno, node.module or ""))
    return out


def is_ray(name: str) -> bool:
    return name == "ray" or name.startswith("ray.")


def test_only_the_sweep_package_imports_ray():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "sweep":
            continue
        offenders += [f"itsel_ray/{rel}:{line}" for line, name in imports(path) if is_ray(name)]
    assert not offenders, f"`import ray` outside itsel_ray/sweep/: {offenders}"


def test_the_run_state_does_not_reach_up_into_the_ray_adapters():
    offenders = []
    for path in sorted((PACKAGE / "runs").rglob("*.py")):
        offenders += [f"{path.name}:{line} {name}" for line, name in imports(path)
                      if name == "itsel_ray.sweep" or name.startswith("itsel_ray.sweep.")]
    assert not offenders, offenders


def test_the_run_state_imports_without_ray():
    modules = [f"itsel_ray.runs.{p.stem}" for p in sorted((PACKAGE / "runs").glob("*.py")) if p.stem != "__init__"]
    code = (f"import sys, importlib; [importlib.import_module(m) for m in {modules!r}]; "
            "import itsel_ray.sweep.cli, itsel_ray.sweep.exit_codes; "
            "assert 'ray' not in sys.modules, sorted(m for m in sys.modules if m.startswith('ray'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_the_check_sees_every_import_form(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("import os\nimport ray\nfrom ray import tune\nfrom ray.tune import Tuner\nimport rayon\n"
                      "def f():\n    import ray.train\n")
    assert [line for line, name in imports(sample) if is_ray(name)] == [2, 3, 4, 7]
