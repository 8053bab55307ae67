"""Ray is one adapter: only itsel_ray/sweep/ may import it."""

import ast
from pathlib import Path

import itsel_ray

PACKAGE = Path(itsel_ray.__file__).parent


def ray_imports(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(n == "ray" or n.startswith("ray.") for n in names):
            lines.append(node.lineno)
    return lines


def test_only_the_sweep_package_imports_ray():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "sweep":
            continue
        offenders += [f"itsel_ray/{rel}:{line}" for line in ray_imports(path)]
    assert not offenders, f"`import ray` outside itsel_ray/sweep/: {offenders}"


def test_the_check_sees_every_import_form(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("import os\nimport ray\nfrom ray import tune\nfrom ray.tune import Tuner\nimport rayon\n"
                      "def f():\n    import ray.train\n")
    assert ray_imports(sample) == [2, 3, 4, 7]
