"""The Python API, for notebooks: include your own modules and tasks, run a sweep, load its results as DataFrames,
rank sources for a target. Every function here wraps what a command does (`itsel-ray ...`), with the same checks
and the same one-line errors, so a notebook and the command line give the same answers. docs/api.md has a
runnable example.

    from itsel_ray import api
    results = api.run("transfer", sweep="smoke", storage="/tmp/itsel")    # or api.load_results("runs/demo")
    results.results.groupby("stage").score.mean()
    api.rank_sources(results.results_dir, target_prompt=results.target_prompt("syn_and01"), selector="max")
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from itsel_ray.schema import ConfigError

RESULTS_DIR, ANALYSIS_DIR = "results", "analysis"


class ApiError(ValueError):
    """What the command would have printed as `error: ...` (a bad name, path or option)."""


# ------------------------------------------------------------------------------------------------ your own


def include(*paths: str | Path):
    """Load plugins (.py files, package folders, module names) and task files (.yaml) into this process, as a
    sweep's `plugins:` / `tasks:` or `--include` do; returns what was loaded (an `itsel_ray.plugins.PluginSet`)."""
    from itsel_ray.plugins import load_plugins, resolve, split_includes

    return load_plugins(*split_includes(resolve([str(p) for p in paths], Path.cwd())))


_include = include  # rank_sources and run take an `include` argument of the same name


def tasks() -> pd.DataFrame:
    """Every declared task: name, role, category, task type, training size, description, the file it came from."""
    from itsel_ray.tasks import TASKS

    rows = [{"name": s.name, "role": s.role, "category": s.category, "task_type": s.task_type,
             "train_size": s.train_size, "metrics": ",".join(s.metrics), "description": s.description,
             "origin": s.origin} for s in (TASKS.get(n) for n in TASKS.names())]
    return pd.DataFrame(rows)


def selectors() -> pd.DataFrame:
    """Every registered selector: name, label, what it reads, description."""
    from itsel_ray.listing import first_line
    from itsel_ray.selection import SELECTORS

    return pd.DataFrame([{"name": s.name, "label": s.label, "needs": ",".join(sorted(s.needs)),
                          "description": first_line(s.fn)} for s in (SELECTORS.get(n) for n in SELECTORS.names())])


def check_task(name: str, *, rows: int = 8, tokenizer: str | None = None, data_dir=None, mirror=None):
    """The task contract (itsel_ray/task_check.py) on the first `rows` rows of each split: a `TaskCheck` with
    `.ok`, `.problems` and `.notes`."""
    from itsel_ray.task_check import check_task as check, load_tokenizer, sample_rows
    from itsel_ray.tasks import get_task

    spec = get_task(name)
    tok, note = load_tokenizer(tokenizer)
    result = check(spec, sample_rows(spec, rows, data_dir=data_dir, mirror=mirror), tokenizer=tok)
    if note and tokenizer:
        result.notes.append(note)
    return result


# ------------------------------------------------------------------------------------------------ results


@dataclass
class SweepResults:
    """A sweep's results as DataFrames.

    results: one row per planned trial (stage, role, task, source, target, seed, status, score, best_step, metric_*
    columns, trial_dir); a failed or missing trial is a row with its status and a NaN score. evaluations: one row
    per evaluation of every finished trial (its `history`: step, loss, score, each metric). prompts: every saved
    prompt file. model_tables: the frozen-model selector inputs (probe, logme) by name. analysis: the analysis
    tables (table3, table4, per_target, summary, selector_scores, ...) by name, empty before `analyze`.
    """

    root: Path
    results: pd.DataFrame
    prompts: pd.DataFrame
    evaluations: pd.DataFrame
    model_tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    analysis: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def results_dir(self) -> Path:
        return self.root / RESULTS_DIR

    @property
    def report(self) -> Path | None:
        path = self.root / ANALYSIS_DIR / "report.md"
        return path if path.is_file() else None

    def target_prompt(self, task: str, *, seed: int | None = None, step: int | None = None) -> Path:
        """The prompt file of a target's own tune run (a seed and step; default: its first seed, last step)."""
        rows = self.prompts[(self.prompts.stage == "tune") & (self.prompts.task == task) & ~self.prompts.is_best]
        if seed is not None:
            rows = rows[rows.seed == seed]
        if step is not None:
            rows = rows[rows.step == step]
        if rows.empty:
            raise ApiError(f"no saved prompt of task {task!r} (seed {seed}, step {step}) in {self.results_dir}")
        row = rows.sort_values(["seed", "step"]).iloc[-1] if seed is not None else \
            rows[rows.seed == rows.seed.min()].sort_values("step").iloc[-1]
        return (self.results_dir / row.path).resolve()


def sweep_folder(path: str | Path, sweep: str | None = None) -> Path:
    """The folder of one sweep: `path` itself (<storage>/<sweep>), its results folder's parent, or
    <path>/<sweep> when `sweep` is given."""
    path = Path(path).expanduser()
    if sweep:
        path = path / sweep
    if path.name == RESULTS_DIR and not (path / RESULTS_DIR).is_dir():
        path = path.parent
    if not (path / RESULTS_DIR).is_dir():
        raise ApiError(f"{path}: no {RESULTS_DIR}/ folder; give a sweep's folder (<storage>/<sweep>) or its results "
                       "folder, after a stage has run")
    return path


def load_results(path: str | Path, sweep: str | None = None) -> SweepResults:
    """A sweep's tables as DataFrames, read from storage (nothing is run; `itsel-ray analyze` refreshes them)."""
    from itsel_ray.analysis.inputs import InputError, load_pair_table, load_prompts, load_results as read_results

    root = sweep_folder(path, sweep)
    folder = root / RESULTS_DIR
    try:
        results = read_results(folder)
        prompts = load_prompts(folder)
    except InputError as err:
        raise ApiError(str(err)) from None
    tables = {}
    for name in ("probe", "logme"):
        try:
            table = load_pair_table(folder, name)  # None when the sweep has none
        except InputError as err:
            raise ApiError(str(err)) from None
        if table is not None:
            tables[name] = table
    analysis = {p.stem: pd.read_csv(p) for p in sorted((root / ANALYSIS_DIR).glob("*.csv"))}
    return SweepResults(root, results, prompts, _evaluations(folder, results), tables, analysis)


def _evaluations(folder: Path, results: pd.DataFrame) -> pd.DataFrame:
    from itsel_ray.artifacts import read_json

    rows = []
    keys = ["stage", "role", "task", "source", "seed"]
    for trial in results[results.status == "done"].itertuples(index=False):
        try:
            history = read_json(folder / trial.trial_dir / "result.json").get("history") or []
        except (OSError, ValueError, TypeError, AttributeError):
            continue  # a folder copied without its trial folders: the results table still holds the summary
        base = {k: getattr(trial, k) for k in keys}
        rows += [{**base, **entry} for entry in history if isinstance(entry, Mapping)]
    return pd.DataFrame(rows, columns=None if rows else [*keys, "step", "score"])


# ------------------------------------------------------------------------------------------------ running


def run(stage: str, *, sweep: str | None = None, storage: str | Path | None = None,
        overrides: Sequence[str] = (), include: Sequence[str | Path] = (), address: str | None = None,
        num_cpus: int | None = None, quiet: bool = True) -> SweepResults:
    """Run a sweep stage as `itsel-ray STAGE` does (a private local Ray instance unless `address`), then load its
    results. Raises ApiError with the command's exit status when it does not finish cleanly."""
    import contextlib
    import io
    import os

    from itsel_ray.sweep.cli import STORAGE_ENV, main

    argv = [stage, *(["--sweep", sweep] if sweep else [])]
    argv += [x for o in overrides for x in ("--set", o)] + [x for i in include for x in ("--include", str(i))]
    argv += ["--storage", str(storage)] if storage else []
    argv += ["--address", address] if address else []
    argv += ["--num-cpus", str(num_cpus)] if num_cpus else []
    argv += ["--quiet"] if quiet else []
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv, prog="itsel-ray")
    if code != 0:
        raise ApiError(f"itsel-ray {' '.join(argv)} exited {code}: {err.getvalue().strip()[-2000:]}")
    from itsel_ray.runs.sweep_file import pick_sweep

    name = pick_sweep(sweep, overrides=overrides, include=[str(i) for i in include])[0].name
    return load_results(Path(storage or os.environ.get(STORAGE_ENV) or "runs") / name)


# ------------------------------------------------------------------------------------------------ ranking


def rank_sources(library: str | Path | Mapping[str, np.ndarray], *,
                 target_prompt: str | Path | np.ndarray | Sequence[str | Path | np.ndarray] | None = None,
                 target: str | None = None, selector: str = "max", sweep: str | None = None,
                 include: Sequence[str | Path] = (), sizes: Mapping[str, int] | None = None,
                 **options) -> pd.DataFrame:
    """Rank the sources of `library` for a target, as `itsel-ray rank` does: a DataFrame (rank, source, score),
    best first, with the notes in `.attrs["notes"]`.

    Args:
        library: a folder of <source>.safetensors / .npy files, a sweep's results folder, or {source: [P, H]}.
        target_prompt: the target's prompt(s): files or [P, H] arrays (several: their similarity is averaged).
        target: the target task's name (SEMB reads its texts; PROBE and LOGME its rows, through `sweep`'s model).
        selector: a registered selector (`selectors()`); your own after `include(...)`.
        sizes: training-set sizes of sources the project does not declare (SIZE).
        **options: the command's other options by their long names: max_direction, normalize ("on"/"off"),
            topk, fusion, encoder, max_examples, random_seed, probe_examples, logme_examples.
    """
    from itsel_ray.rank import build_parser, load_library, selection_input, target_name
    from itsel_ray.selection import SELECTORS, SelectorOptions, rank_from_scores

    if include:
        _include(*include)
    with tempfile.TemporaryDirectory(prefix="itsel-ray-rank-") as scratch:
        args = build_parser().parse_args(["--library", str(library) if not isinstance(library, Mapping) else "."])
        unknown = sorted(set(options) - set(vars(args)))
        if unknown:
            raise ApiError(f"unknown option(s) {unknown}; valid: {', '.join(sorted(vars(args)))}")
        for key, value in options.items():
            setattr(args, key, value)
        args.selector, args.target, args.sweep = selector, target, sweep
        args.size = [f"{k}={v}" for k, v in (sizes or {}).items()]
        args.target_prompt = _prompt_files(target_prompt, Path(scratch))
        try:
            chosen = SELECTORS.get(selector)
            if chosen.uniform:
                raise ValueError(f"{selector!r} ranks every ordering equally; use 'random-draw' for one seeded draw")
            opts = SelectorOptions(normalize=args.normalize == "on", max_direction=args.max_direction,
                                   topk=args.topk, fusion=tuple(args.fusion))
            if isinstance(library, Mapping):
                sources = tuple(library)
                prompts = np.stack([np.asarray(library[s], dtype=np.float32) for s in sources])
            else:
                sources, prompts = load_library(library)
            notes: list[str] = []
            scores = chosen.scores(selection_input(args, chosen, opts, sources, prompts, notes), opts)
        except (ConfigError, ValueError, FileNotFoundError) as err:
            raise ApiError(str(err)) from None
    order = rank_from_scores(scores, sources)
    table = pd.DataFrame({"rank": range(1, len(order) + 1), "source": [sources[i] for i in order],
                          "score": [float(scores[i]) for i in order]})
    table.attrs.update(notes=notes, selector=chosen.label, target=target_name(args))
    return table


def _prompt_files(value, scratch: Path) -> list[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, (str, Path, np.ndarray)) else list(value)
    out = []
    for i, item in enumerate(items):
        if isinstance(item, np.ndarray):
            path = scratch / f"target_{i}.npy"
            np.save(path, np.asarray(item, dtype=np.float32), allow_pickle=False)
            out.append(str(path))
        else:
            out.append(str(item))
    return out


__all__ = ["ApiError", "SweepResults", "check_task", "include", "load_results", "rank_sources", "run", "selectors",
           "sweep_folder", "tasks"]
