"""The layers stay apart: only itsel_ray/sweep/ may import Ray; the run state (itsel_ray/runs/) is pure: it imports
neither Ray nor the Ray adapters nor torch, so `status`, `--dry-run` and the tables work without a cluster; and no
module or package imports itself back through others (README: "no import cycles", imports inside functions
included)."""

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


def test_the_run_state_imports_without_ray_or_torch():
    modules = [f"itsel_ray.runs.{p.stem}" for p in sorted((PACKAGE / "runs").glob("*.py")) if p.stem != "__init__"]
    code = (f"import sys, importlib; [importlib.import_module(m) for m in {modules!r}]; "
            "import itsel_ray.sweep.cli, itsel_ray.sweep.exit_codes, itsel_ray.engine, itsel_ray.selection; "
            "assert 'ray' not in sys.modules, sorted(m for m in sys.modules if m.startswith('ray')); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_the_check_sees_every_import_form(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("import os\nimport ray\nfrom ray import tune\nfrom ray.tune import Tuner\nimport rayon\n"
                      "def f():\n    import ray.train\n")
    assert [line for line, name in imports(sample) if is_ray(name)] == [2, 3, 4, 7]


# ------------------------------------------------------------------------------------------------ import cycles


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules `path` imports, anywhere in the file. `from package import name` counts as importing
    the submodule `package.name` when there is one, else the package itself."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            subs = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules}
            out |= subs if len(subs) == len(node.names) else subs | {base}
    return {m for m in out if m in modules and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def module_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): project_imports(p, modules) for p in paths}


def layer(module: str) -> str:
    """The top-level part of the package a module belongs to: `engine` for itsel_ray.engine.t5.model."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_no_module_imports_itself_back():
    assert cycles(module_graph()) == []


def test_no_package_imports_itself_back():
    graph: dict[str, set[str]] = {}
    for module, deps in module_graph().items():
        graph.setdefault(layer(module), set()).update(layer(d) for d in deps if layer(d) != layer(module))
    assert cycles(graph) == [], {k: sorted(v) for k, v in graph.items()}


def test_the_cycle_check_sees_a_cycle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "itsel_ray"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("from itsel_ray.a import x\n")
    (pkg / "a" / "x.py").write_text("def f():\n    from itsel_ray.b import y\n")
    (pkg / "b.py").write_text("from . import a\n")
    modules = {"itsel_ray", "itsel_ray.a", "itsel_ray.a.x", "itsel_ray.b"}
    global PACKAGE
    saved, PACKAGE = PACKAGE, pkg
    try:
        graph = {module_name(p): project_imports(p, modules) for p in sorted(pkg.rglob("*.py"))}
    finally:
        PACKAGE = saved
    assert graph["itsel_ray.a"] == {"itsel_ray.a.x"} and graph["itsel_ray.a.x"] == {"itsel_ray.b"}
    assert graph["itsel_ray.b"] == {"itsel_ray.a"}
    assert cycles(graph) == [["itsel_ray.a", "itsel_ray.a.x", "itsel_ray.b"]]
