"""`itsel-ray`: one command for the whole tool.

    itsel-ray tune | transfer | analyze | all | status | prepare ...   the sweep stages (python -m itsel_ray.sweep)
    itsel-ray analyze --results DIR | --ground-truth CSV ...          the analysis alone (python -m itsel_ray.analyze)
    itsel-ray rank --library DIR --target-prompt FILE ...             rank source prompts (python -m itsel_ray.rank)
    itsel-ray list tasks | selectors | metrics | ...                  what is declared (python -m itsel_ray.listing)
    itsel-ray data import TASK FILES... --out MIRROR                  official dataset files -> a local mirror

`analyze` is the sweep's analysis stage unless it is given --results or --ground-truth (`itsel-ray analyze --help`
explains both forms); `itsel-ray COMMAND --help` explains each command with an example.
"""

from __future__ import annotations

import sys

USAGE = """\
usage: itsel-ray COMMAND [options]   (itsel-ray COMMAND --help for each)

Which intermediate task should I transfer a soft prompt from? The study of Lin et al. (2024) as a Ray sweep.

sweep stages (a local Ray instance, or --address auto on a cluster):
  prepare    load, check and tokenise every task's data once, before any trial
  tune       prompt-tune the source and target tasks (the target runs are the no-transfer baselines)
  transfer   tune every target from every source's best prompt, then analyze
  analyze    the results tables and the task-selection analysis of a sweep
  all        tune, transfer, analyze
  status     trials done / running / failed and an ETA, read from storage (starts nothing)

on their own:
  analyze --results DIR | --ground-truth CSV   the analysis of a results folder or a transfer matrix
  rank       rank a library of source prompts for a target (MAX, FEATURE, SEMB, PROBE, LOGME, ...)
  list       tasks, selectors, metrics, formatters, sweeps, analyses: one line each (list tasks --check: the
             task contract on a few rows of each)
  data       data import TASK FILES... --out MIRROR: a task's official distribution files -> a local mirror

your own study: a sweep file's `plugins:` and `tasks:` (or --include PATH) load your modules and task files in
every process, on every node (README: "Your own task")

examples:
  itsel-ray transfer                                  the offline demo, end to end, on this machine
  itsel-ray transfer --sweep paper --dry-run          the paper's plan, settings and GPU memory per task
  itsel-ray status --sweep paper --storage /mnt/shared/itsel-ray
  itsel-ray analyze --ground-truth table7.csv --out /tmp/t7
  itsel-ray list tasks --include my_tasks.yaml --check
  itsel-ray rank --library runs/demo --target-prompt runs/demo/tune/syn_and01/seed=28/best.safetensors
"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = args[0], args[1:]
    if command == "rank":
        from itsel_ray.rank import main as rank

        return rank(rest)
    if command == "data":
        from itsel_ray.data.importer import data_main

        return data_main(rest)
    if command == "analyze":
        from itsel_ray.analyze import main as analyze

        return analyze(rest, prog="itsel-ray analyze")
    if command == "list":
        from itsel_ray.listing import main as listing

        return listing(rest, prog="itsel-ray list")
    from itsel_ray.sweep.cli import STAGES, main as sweep

    if command in STAGES:
        return sweep(args, prog="itsel-ray")
    print(f"itsel-ray: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
