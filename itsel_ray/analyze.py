"""python -m itsel_ray.analyze: evaluate the task selectors on a sweep's results (or a ground-truth CSV) and
write the tables, figures and report.md.

    python -m itsel_ray.analyze --results runs/paper/results --out runs/paper/analysis
    python -m itsel_ray.analyze --ground-truth table7.csv --selectors random size --out /tmp/t7

Options override the analysis definition (--config, default analysis/paper.yaml). Exit status 2 on bad input.
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
from itsel_ray.selection import MAX_DIRECTIONS, SELECTORS

USER_ERRORS = (ConfigError, UnknownNameError, InputError, PromptFileError, ValueError, FileNotFoundError, KeyError)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m itsel_ray.analyze", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1] if "\n\n" in __doc__ else None)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--results", metavar="DIR", help="a sweep's results folder (results.* and prompts.*)")
    src.add_argument("--ground-truth", metavar="CSV", help="a sources x targets score matrix (e.g. Table 7)")
    p.add_argument("--out", metavar="DIR", required=True, help="where report.md, tables and figures go")
    p.add_argument("--config", metavar="YAML", help="analysis definition (default: analysis/paper.yaml)")
    p.add_argument("--selectors", nargs="+", metavar="NAME", help=f"selectors to run; valid: {', '.join(SELECTORS)}")
    p.add_argument("--metrics", nargs="+", metavar="M", help="e.g. ndcg ndcg@5 regret@1 regret@3 spearman kendall")
    p.add_argument("--k", nargs="+", type=int, metavar="K", help="Regret@k and Table 4 cutoffs (replace the config's)")
    p.add_argument("--ndcg-k", type=int, metavar="K", help="cut nDCG at k (default: the full list)")
    p.add_argument("--gain", help=f"nDCG gain; valid: {', '.join(GAINS)}")
    p.add_argument("--relevance", help=f"ground truth per cell; valid: {', '.join(RELEVANCE_MODES)}")
    p.add_argument("--missing", help=f"cells with missing scores; valid: {', '.join(MISSING_POLICIES)}")
    p.add_argument("--max-direction", help=f"MAX direction; valid: {', '.join(MAX_DIRECTIONS)}")
    p.add_argument("--normalize", choices=("on", "off"), help="L2-normalise prompt tokens first")
    p.add_argument("--seed-average", action="store_true", help="average similarity over the target's seeds")
    p.add_argument("--step", type=int, help="the checkpoint step of the prompt selectors in Tables 3 and 4")
    p.add_argument("--steps", nargs="+", type=int, help="checkpoint steps to evaluate (default: the config's)")
    p.add_argument("--baseline-row", default="prompt-text", help="ground-truth CSV: the no-transfer row")
    p.add_argument("--reference", metavar="SELECTOR", help="Table 3's paired tests: the reference (default feature)")
    p.add_argument("--resamples", type=int, metavar="N", help="Table 3's bootstrap resamples (default 2000)")
    p.add_argument("--level", type=float, metavar="L", help="Table 3's interval level (default 0.95)")
    p.add_argument("--ray", action="store_true", help="fan the cells out as Ray tasks on a local instance")
    p.add_argument("--num-cpus", type=int, help="--ray: CPUs of the local Ray instance")
    return p


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from itsel_ray.analysis import run_analysis, study_from_csv, study_from_sweep

        config_path = args.config or builtin_config("paper")
        cfg = apply_overrides(load_analysis_config(config_path), args, where=f"{config_path} + command line")
        if args.results:
            study = study_from_sweep(args.results, steps=cfg.steps)
        else:
            study = study_from_csv(args.ground_truth, baseline_row=args.baseline_row)
        if args.ray:
            from itsel_ray.sweep.parallel import local_ray, ray_map

            with local_ray(args.num_cpus):
                result = run_analysis(study, cfg, args.out, ray_map)
        else:
            result = run_analysis(study, cfg, args.out)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full or unwritable --out: the file and "disk full", not a traceback
        from itsel_ray.runs.disk import describe_os_error

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
