"""itsel-ray analyze: the task-selection analysis, in one of two forms.

As the sweep's stage (no --results / --ground-truth): refresh the sweep's results tables from its trial folders,
score the source prompts through the frozen model (PROBE, LOGME) and run the analysis its `analysis:` definition
names, as Ray tasks; the report goes to <storage>/<sweep>/analysis/report.md. Same as `itsel-ray all` minus the
trials.

On its own (--results DIR or --ground-truth CSV, with --out DIR): the analysis of a results folder copied from
anywhere, or of a sources x targets score matrix (e.g. the paper's Table 7), in this process (--ray: as Ray tasks
on a local instance). Its options override the analysis definition (--config, default analysis/paper.yaml).

examples:
  itsel-ray analyze                                              the demo sweep's analysis (run `transfer` first)
  itsel-ray analyze --sweep paper --storage /mnt/shared/itsel-ray
  itsel-ray analyze --results runs/paper/results --out runs/paper/analysis
  itsel-ray analyze --ground-truth table7.csv --selectors random size --out /tmp/t7
  itsel-ray analyze --results s3://BUCKET/runs/paper/results --out s3://BUCKET/runs/paper/analysis
  itsel-ray analyze --results runs/mine/results --include my_selectors.py --selectors max mine --out /tmp/a

exit status: 0 ok, 1 the analysis failed (sweep stage), 2 bad input, 3 cannot run here (sweep stage).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Sequence

from itsel_ray.analysis.analysis_file import (
    MISSING_POLICIES,
    RELEVANCE_MODES,
    AnalysisConfig,
    analysis_config_from_dict,
    builtin_config,
    load_analysis_config,
)
from itsel_ray.analysis.inputs import InputError
from itsel_ray.artifacts import PromptFileError
from itsel_ray.schema import ConfigError
from itsel_ray.metrics.ranking import GAINS
from itsel_ray.registry import UnknownNameError
from itsel_ray.runs.storage import StorageError
from itsel_ray.selection import MAX_DIRECTIONS, SELECTORS

USER_ERRORS = (ConfigError, UnknownNameError, InputError, PromptFileError, ValueError, FileNotFoundError, KeyError,
               StorageError)


SWEEP_OPTIONS = ("sweep", "overrides", "storage", "address", "no_dashboard", "log_level", "quiet", "verbose",
                 "dry_run")


def build_parser(prog: str = "python -m itsel_ray.analyze") -> argparse.ArgumentParser:
    about, examples = __doc__.split("\nexamples:", 1)
    p = argparse.ArgumentParser(prog=prog, description=_sentence(about.split(": ", 1)[1].strip()),
                                epilog="examples:" + examples, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("what to analyse (neither: the sweep's own analysis stage)")
    one = src.add_mutually_exclusive_group()
    one.add_argument("--results", metavar="DIR", help="a sweep's results folder (results.* and prompts.*)")
    one.add_argument("--ground-truth", metavar="CSV", help="a sources x targets score matrix (e.g. Table 7)")
    both = p.add_argument_group("both forms")
    both.add_argument("--include", action="append", default=[], metavar="PATH",
                      help="load a plugin (.py file, package folder, module name: your selectors, metrics) or a "
                           "task file (.yaml) first; shipped to the Ray workers (repeatable)")
    both.add_argument("--num-cpus", type=int, metavar="N", help="CPUs of the local Ray instance")
    st = p.add_argument_group("the sweep's stage")
    st.add_argument("--sweep", metavar="NAME|PATH", help="a shipped sweep (demo, paper, smoke) or a YAML file "
                    "(default: demo)")
    st.add_argument("--set", dest="overrides", action="append", default=None, metavar="KEY=VALUE",
                    help="override one setting of the sweep file (repeatable), e.g. --set analysis=paper")
    st.add_argument("--storage", metavar="PATH", help="root of the sweep folders (default: $ITSEL_RAY_STORAGE, "
                    "else ./runs)")
    st.add_argument("--address", metavar="ADDR", help="Ray cluster to join ('auto' or HOST:PORT); default: a "
                    "private local instance")
    st.add_argument("--dry-run", action="store_true", default=None, help="print the sweep's plan; start nothing")
    st.add_argument("--no-dashboard", action="store_true", default=None, help="no dashboard for the local instance")
    st.add_argument("--log-level", metavar="LEVEL", help="DEBUG | INFO (default) | WARNING | ERROR")
    st.add_argument("--quiet", action="store_true", default=None, help="only warnings and errors")
    st.add_argument("-v", "--verbose", action="count", default=None, help="also Tune's own progress tables")
    al = p.add_argument_group("on its own (with --results or --ground-truth)")
    al.add_argument("--out", metavar="DIR", help="where report.md, tables and figures go (required): a folder, or a "
                    "store URI (written locally, then put there, report last)")
    al.add_argument("--config", metavar="YAML", help="analysis definition (default: analysis/paper.yaml)")
    al.add_argument("--selectors", nargs="+", metavar="NAME", help=f"selectors to run; valid: {', '.join(SELECTORS)}"
                    " (and your plugins')")
    al.add_argument("--metrics", nargs="+", metavar="M", help="e.g. ndcg ndcg@5 regret@1 regret@3 spearman kendall")
    al.add_argument("--k", nargs="+", type=int, metavar="K", help="Regret@k and Table 4 cutoffs (replace the config's)")
    al.add_argument("--ndcg-k", type=int, metavar="K", help="cut nDCG at k (default: the full list)")
    al.add_argument("--gain", help=f"nDCG gain; valid: {', '.join(GAINS)}")
    al.add_argument("--relevance", help=f"ground truth per cell; valid: {', '.join(RELEVANCE_MODES)}")
    al.add_argument("--missing", help=f"cells with missing scores; valid: {', '.join(MISSING_POLICIES)}")
    al.add_argument("--max-direction", help=f"MAX direction; valid: {', '.join(MAX_DIRECTIONS)}")
    al.add_argument("--normalize", choices=("on", "off"), help="L2-normalise prompt tokens first")
    al.add_argument("--seed-average", action="store_true", default=None,
                    help="average similarity over the target's seeds")
    al.add_argument("--step", type=int, help="the checkpoint step of the prompt selectors in Tables 3 and 4")
    al.add_argument("--steps", nargs="+", type=int, help="checkpoint steps to evaluate (default: the config's)")
    al.add_argument("--baseline-row", metavar="ROW", help="ground-truth CSV: the no-transfer row (default "
                    "prompt-text)")
    al.add_argument("--reference", metavar="SELECTOR", help="Table 3's paired tests: the reference (default feature)")
    al.add_argument("--resamples", type=int, metavar="N", help="Table 3's bootstrap resamples (default 2000)")
    al.add_argument("--level", type=float, metavar="L", help="Table 3's interval level (default 0.95)")
    al.add_argument("--ray", action="store_true", default=None, help="fan the cells out as Ray tasks on a local "
                    "instance")
    return p


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


STANDALONE_ONLY = ("out", "config", "selectors", "metrics", "k", "ndcg_k", "gain", "relevance", "missing",
                   "max_direction", "normalize", "seed_average", "step", "steps", "baseline_row", "reference",
                   "resamples", "level", "ray")


def _given(args, names) -> list[str]:
    return ["--" + n.replace("_", "-") if n != "overrides" else "--set" for n in names
            if getattr(args, n) not in (None, [], False)]


def apply_overrides(cfg: AnalysisConfig, args: argparse.Namespace, *, where: str) -> AnalysisConfig:
    """The config with the command-line options applied, re-validated."""
    data = dataclasses.asdict(cfg)
    if args.selectors:
        data["selectors"] = list(args.selectors)
        data["table4_selectors"] = [s for s in cfg.table4_selectors if s in args.selectors] or list(args.selectors)
        data["step_selectors"] = [s for s in cfg.step_selectors if s in args.selectors]
    metrics = list(args.metrics) if args.metrics else list(cfg.metrics)
    if args.k:
        metrics = [m for m in metrics if not m.startswith("regret")] + [f"regret@{k}" for k in args.k]
        data["table4_ks"] = list(args.k)
    if args.ndcg_k:
        metrics = [f"ndcg@{args.ndcg_k}" if m.split("@")[0] == "ndcg" else m for m in metrics]
    data["metrics"] = metrics
    for key, value in (("gain", args.gain), ("relevance", args.relevance), ("missing", args.missing)):
        if value is not None:
            data["ranking"][key] = value
    if args.max_direction:
        data["options"]["max_direction"] = args.max_direction
    if args.normalize:
        data["options"]["normalize"] = args.normalize == "on"
    if args.seed_average:
        data["seed_average"] = True
    if args.steps:
        data["steps"] = list(args.steps)
    if args.step is not None:
        data["headline_step"] = args.step
    for key, value in (("reference", args.reference), ("resamples", args.resamples), ("level", args.level)):
        if value is not None:
            data["uncertainty"][key] = value
    return analysis_config_from_dict(data, where=where)


def summary_lines(result) -> list[str]:
    """The ALL column of Table 3: selector, nDCG x100, Regret@k."""
    from itsel_ray.analysis.cells import ALL

    s = result.summary[result.summary["group"] == ALL]
    metrics = [c for c in s.columns if c.startswith(("ndcg", "regret"))]
    header = f"{'selector':<16}" + "".join(f"{m:>12}" for m in metrics) + f"{'cells':>8}"
    lines = [header]
    for _, row in s.iterrows():
        vals = "".join(f"{row[m] * (100 if m.startswith('ndcg') else 1):>12.2f}" for m in metrics)
        lines.append(f"{row['selector']:<16}{vals}{int(row['n_cells']):>8}")
    return lines


def _local_results(results: str) -> str:
    """The results folder to read: --results itself, or for a store URI a node-local copy of its tables and the
    prompt files they name."""
    if "://" not in results:
        return results
    from itsel_ray.runs.stored_results import local_results

    return str(local_results(results))


def _local_out(out: str) -> str:
    """The folder the analysis writes: --out itself, or for a store URI a node-local folder put there afterwards."""
    if "://" not in out:
        return out
    from itsel_ray.analysis.output_dir import MARKER
    from itsel_ray.runs import node_cache
    from itsel_ray.runs.storage import Storage
    from itsel_ray.runs.stored_results import check_output

    check_output(Storage(out), "", MARKER)
    return str(node_cache.location(out, "analysis") / "out")


def _store_out(result, uri: str):
    from pathlib import Path

    from itsel_ray.runs.storage import Storage
    from itsel_ray.runs.stored_results import upload_folder

    store = Storage(uri)
    upload_folder(Path(result.out_dir), store, "", last=Path(result.report).name)
    return dataclasses.replace(result, report=store.path(Path(result.report).name))


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m itsel_ray.analyze") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog).parse_args(argv)
    if not (args.results or args.ground_truth):
        stray = _given(args, STANDALONE_ONLY)
        if stray:
            print(f"error: {', '.join(stray)} belong(s) with --results or --ground-truth (the sweep's stage takes its "
                  "settings from the sweep's analysis definition: --set analysis=FILE)", file=sys.stderr)
            return 2
        from itsel_ray.sweep.cli import main as sweep

        return sweep(["analyze", *argv], prog="itsel-ray" if prog.startswith("itsel-ray") else
                     "python -m itsel_ray.sweep")
    stray = _given(args, SWEEP_OPTIONS)
    if stray:
        print(f"error: {', '.join(stray)} belong(s) with the sweep's stage, not with --results / --ground-truth",
              file=sys.stderr)
        return 2
    if not args.out:
        print("error: --out DIR is required with --results or --ground-truth", file=sys.stderr)
        return 2
    return standalone(args)


def standalone(args: argparse.Namespace) -> int:
    try:
        from pathlib import Path

        from itsel_ray.analysis import run_analysis, study_from_csv, study_from_sweep
        from itsel_ray.plugins import load_plugins, resolve, split_includes

        if args.ray:
            from itsel_ray.sweep.cluster import loopback_first

            loopback_first()  # before a plugin can import Ray
        plugins = load_plugins(*split_includes(resolve(args.include, Path.cwd())))
        config_path = args.config or builtin_config("paper")
        cfg = apply_overrides(load_analysis_config(config_path), args, where=f"{config_path} + command line")
        if args.results:
            study = study_from_sweep(_local_results(args.results), steps=cfg.steps)
        else:
            study = study_from_csv(args.ground_truth, baseline_row=args.baseline_row or "prompt-text")
        out = _local_out(args.out)
        if args.ray:
            from itsel_ray.sweep.parallel import local_ray, ray_map

            with local_ray(args.num_cpus, plugins=plugins):
                result = run_analysis(study, cfg, out, ray_map)
        else:
            result = run_analysis(study, cfg, out)
        if out != args.out:
            result = _store_out(result, args.out)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full or unwritable --out: the file and "disk full", not a traceback
        from itsel_ray.disk import describe_os_error

        print(f"error: {describe_os_error(err)}", file=sys.stderr)
        return 3
    for message in result.messages:
        if message.startswith("warning: "):  # loud: on stderr as well, where it is not lost among the notes
            print(f"WARNING: {message.removeprefix('warning: ')}", file=sys.stderr)
        print(f"note: {message}")
    print(*summary_lines(result), sep="\n")
    print(f"report: {result.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
