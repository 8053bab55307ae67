"""`itsel-ray list tasks|selectors|metrics|formatters|sweeps|analyses`: what the registries and the shipped
definitions hold, one line each (name and a short description), with a user's own plugins and task files
(`--include`) among them; `list tasks --check` runs the task contract (itsel_ray/task_check.py) on a few rows of
each task.

    itsel-ray list tasks
    itsel-ray list selectors
    itsel-ray list tasks --include my_tasks.yaml --check --tokenizer t5-base

Exit status: 0, 1 when a checked task breaks its contract, 2 on bad input.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path
from typing import Callable, Sequence

from itsel_ray.schema import ConfigError, read_yaml

KINDS = ("tasks", "selectors", "metrics", "formatters", "sweeps", "analyses")


WIDTH = 100  # characters of a description


def short(text: str, width: int = WIDTH) -> str:
    """The first sentence of `text` (its first paragraph, unwrapped), cut to `width` characters."""
    para = " ".join(text.strip().split("\n\n")[0].split())
    end = re.search(r"(?<!\beq)(?<!e\.g)(?<!i\.e)\.\s", para)  # not after "eq.", "e.g.", "i.e."
    sentence = para[: end.start() + 1] if end else para
    return sentence if len(sentence) <= width else sentence[: width - 3].rstrip() + "..."


def first_line(obj) -> str:
    """The first sentence of an object's docstring ("" without one)."""
    return short(inspect.getdoc(obj) or "")


def task_lines(names: Sequence[str] | None = None) -> list[str]:
    from itsel_ray.tasks import TASKS

    specs = [TASKS.get(n) for n in (names or TASKS.names())]
    width = max([4, *(len(s.name) for s in specs)])
    lines = []
    for s in specs:
        origin = f"  [{s.origin}]" if s.origin and not s.origin.endswith("itsel_ray/tasks/paper.yaml") else ""
        lines.append(f"{s.name:<{width}}  {s.role or '-':<17} {s.category:<15} {s.description or s.task_type}{origin}")
    return lines


def selector_lines() -> list[str]:
    from itsel_ray.selection import SELECTORS

    selectors = [SELECTORS.get(n) for n in SELECTORS.names()]
    width = max(len(s.name) for s in selectors)
    out = []
    for s in selectors:
        needs = f" (reads {', '.join(sorted(s.needs))})" if s.needs else ""
        out.append(f"{s.name:<{width}}  {s.label:<14} {first_line(s.fn)}{needs}")
    return out


def metric_lines() -> list[str]:
    from itsel_ray.metrics.ranking import RANKING_METRICS
    from itsel_ray.metrics.task_metrics import TASK_METRICS

    names = [*TASK_METRICS.names(), *RANKING_METRICS.names()]
    width = max(len(n) for n in names)
    out = ["task metrics (a task's `metrics:`; x100):"]
    out += [f"  {n:<{width}}  {first_line(TASK_METRICS.get(n))}" for n in TASK_METRICS.names()]
    out.append("ranking metrics (an analysis' `metrics:`; e.g. ndcg@5, regret@1):")
    for n in RANKING_METRICS.names():
        m = RANKING_METRICS.get(n)
        cutoff = " (needs @k)" if m.needs_k else " (@k optional)" if m.takes_k else ""
        better = "lower" if m.lower_is_better else "higher"
        out.append(f"  {n:<{width}}  {first_line(m.value).rstrip('.')}; {better} is better{cutoff}")
    return out


def formatter_lines() -> list[str]:
    from itsel_ray.tasks import FORMATTERS

    width = max(len(n) for n in FORMATTERS.names())
    return [f"{n:<{width}}  {first_line(FORMATTERS.get(n))}" for n in FORMATTERS.names()]


def definition_lines(kind: str) -> list[str]:
    from itsel_ray.definitions import definitions_dir, shipped

    names = shipped(kind)
    width = max([4, *(len(n) for n in names)])
    out = []
    for name in names:
        try:
            description = str(read_yaml(definitions_dir(kind) / f"{name}.yaml").get("description") or "")
        except ConfigError:
            description = "(unreadable)"
        out.append(f"{name:<{width}}  {short(description)}")
    return out


LISTERS: dict[str, Callable[[], list[str]]] = {
    "tasks": task_lines, "selectors": selector_lines, "metrics": metric_lines, "formatters": formatter_lines,
    "sweeps": lambda: definition_lines("sweeps"), "analyses": lambda: definition_lines("analysis"),
}


def build_parser(prog: str = "itsel-ray list") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("kind", choices=KINDS, metavar="KIND", help=" | ".join(KINDS))
    p.add_argument("names", nargs="*", metavar="NAME", help="tasks: only these (default: every task, or with "
                   "--include only the included files' tasks when checking)")
    p.add_argument("--include", action="append", default=[], metavar="PATH",
                   help="load a plugin (.py file, package folder, module name) or a task file or folder (.yaml) "
                        "first (repeatable)")
    p.add_argument("--check", action="store_true", help="tasks: run the task contract on a few rows of each")
    p.add_argument("--rows", type=int, default=8, metavar="N", help="--check: rows read per split (default 8)")
    p.add_argument("--tokenizer", default="t5-base", metavar="NAME|PATH",
                   help="--check: tokenizer the label words must fit (a Hub id, a folder, or vocab:NAME; default "
                        "t5-base; 'none' skips)")
    p.add_argument("--data-dir", metavar="DIR", help="--check: folder of local task files (json tasks)")
    p.add_argument("--mirror", metavar="DIR", help="--check: a local copy of the Hub datasets")
    return p


def main(argv: Sequence[str] | None = None, *, prog: str = "itsel-ray list") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        from itsel_ray.plugins import load_plugins, resolve, split_includes

        plugins, tasks = split_includes(resolve(args.include, Path.cwd()))
        loaded = load_plugins(plugins, tasks)
        if args.kind != "tasks" and (args.names or args.check):
            raise ConfigError(f"names and --check go with `list tasks`, not `list {args.kind}`")
        from itsel_ray.tasks import TASKS

        for name in args.names:
            TASKS.get(name)
        if not args.check:
            lines = task_lines(args.names) if args.kind == "tasks" else LISTERS[args.kind]()
            print("\n".join(lines))
            return 0
        names = list(args.names) or loaded.task_names or TASKS.names()
        return check(names, args)
    except ValueError as err:  # ConfigError, UnknownNameError
        print(f"error: {err}", file=sys.stderr)
        return 2


def check(names: Sequence[str], args) -> int:
    """Run the task contract on each task; print one line per task, then its problems and notes."""
    from itsel_ray.task_check import check_task, load_tokenizer, sample_rows
    from itsel_ray.tasks import get_task
    from itsel_ray.tasks.spec import TaskDataError

    if args.rows < 1:
        raise ConfigError(f"--rows must be >= 1, got {args.rows}")
    tokenizer, note = load_tokenizer(None if args.tokenizer == "none" else args.tokenizer)
    if note:
        print(f"note: {note}")
    failed = 0
    for name in names:
        spec = get_task(name)
        try:
            rows = sample_rows(spec, args.rows, data_dir=args.data_dir, mirror=args.mirror)
        except TaskDataError as err:
            print(f"{name}: cannot read its rows: {err}")
            failed += 1
            continue
        result = check_task(spec, rows, tokenizer=tokenizer)
        failed += not result.ok
        print(result.line())
        for problem in result.problems:
            print(f"  problem: {problem}")
        for line in result.notes:
            if "no tokenizer" not in line:  # said once, above
                print(f"  note: {line}")
    print(f"{len(names) - failed} of {len(names)} task(s) meet the contract")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
