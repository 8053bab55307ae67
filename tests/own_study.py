"""A user's own study in a folder outside the package, as the plugin tests write it: a plugin module (a formatter, a
task metric and a selector, each writing a line to a trace file whenever it runs, with its process and the file it
was imported from), a task file declaring a task on local rows beside it, an analysis definition naming the user's
selector, and a smoke-sized sweep file naming all of them."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from itsel_ray.runs.sweep_file import sweeps_dir
from itsel_ray.tasks.synthetic import generate_rows

PLUGIN = '''"""A user's plugin: a formatter, a task metric and a selector."""
import json, os

import numpy as np

from itsel_ray.examples import Example
from itsel_ray.metrics.task_metrics import TASK_METRICS, accuracy
from itsel_ray.selection import register_selector
from itsel_ray.tasks import FORMATTERS

TRACE = {trace!r}


def trace(what):
    node = None
    if what != "import":  # a plugin may import Ray, but not needlessly at import time
        try:
            import ray
            node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
        except Exception:
            pass
    with open(TRACE, "a") as f:
        f.write(json.dumps({{"what": what, "pid": os.getpid(), "file": __file__, "node": node}}) + "\\n")


trace("import")


@FORMATTERS.register("mine_format")
def mine_format(row, spec, ctx):
    trace("format")
    target, label = spec.label_target(row["label"], ctx)
    return [Example(input=row["text"], target=target, label=label)]


@TASK_METRICS.register("mine_accuracy")
def mine_accuracy(predictions, examples, labels=None):
    trace("metric")
    return accuracy(predictions, examples, labels)


@register_selector("mine", label="MINE", needs=("prompts",))
def mine(inp, opts):
    """Negative distance between the mean source and mean target prompt."""
    trace("selector")
    src, tgt = inp.prompts.tokens(opts.normalize)
    return -np.linalg.norm(src.mean(axis=1) - tgt.mean(axis=(0, 1)), axis=-1)
'''

TASKS = {
    "tasks": [{
        "name": "mine_task",
        "description": "groups 4 and 5 both present, in the user's own rows",
        "role": "target",
        "prefix": "",
        "data": {"kind": "local", "path": "data"},
        "columns": ["text", "label"],
        "formatter": "mine_format",
        "labels": {"words": ["no", "yes"], "abstract": ["0", "1"]},
        "metrics": ["mine_accuracy"],
        "max_source_length": 64,
        "max_target_length": 4,
    }]
}


def write_rows(folder: Path, train: int = 128, validation: int = 64) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", train, 1), ("validation", validation, 2)):
        rows = generate_rows("and45", n, seed)
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_study(root: Path, *, engine: str = "t5") -> dict[str, Path]:
    """Write the study under `root`; returns its paths (sweep, plugin, tasks, trace)."""
    root.mkdir(parents=True, exist_ok=True)
    trace = root.parent / f"{root.name}-trace.jsonl"
    (root / "mine_plugin.py").write_text(PLUGIN.format(trace=str(trace)))
    write_rows(root / "data")
    (root / "tasks.yaml").write_text(yaml.safe_dump(TASKS, sort_keys=False))
    analysis = yaml.safe_load((sweeps_dir().parent / "analysis" / "demo.yaml").read_text())
    analysis.update(name="mine", selectors=["random", "size", "feature", "max", "mine"],
                    step_selectors=["feature", "max", "mine"], table4_selectors=["random", "max", "mine"],
                    tsne_targets=["mine_task"])
    analysis["uncertainty"]["resamples"] = analysis["uncertainty"]["permutations"] = 200
    (root / "analysis.yaml").write_text(yaml.safe_dump(analysis, sort_keys=False))
    sweep = yaml.safe_load((sweeps_dir() / "smoke.yaml").read_text())
    sweep.update(name="mine", engine=engine, plugins=["mine_plugin.py"], tasks=["tasks.yaml"],
                 analysis="analysis.yaml")
    sweep["grid"].update(sources=["syn_has4", "syn_has0"], targets=["mine_task"])
    (root / "study.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False))
    return {"sweep": root / "study.yaml", "plugin": root / "mine_plugin.py", "tasks": root / "tasks.yaml",
            "trace": trace, "analysis": root / "analysis.yaml"}


def read_trace(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
