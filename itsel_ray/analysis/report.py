"""Write the analysis outputs: tables (CSV + Markdown), figures (PNG), the tidy metrics, and report.md.

report.md links every file by a relative path and embeds every figure, each with one sentence on what it shows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from itsel_ray.analysis import figures, tables
from itsel_ray.analysis import tables_uncertainty as tu
from itsel_ray.analysis.cells import ALL, CellContext
from itsel_ray.analysis.analysis_file import AnalysisConfig
from itsel_ray.analysis.markdown import fmt, frame_to_md, md_table
from itsel_ray.analysis.study import Study, seed_label
from itsel_ray.analysis.uncertainty import INTERVALS
from itsel_ray.artifacts import atomic_write_text, write_json
from itsel_ray.selection import MODEL_INPUTS
from itsel_ray.environment import describe, summary


@dataclass
class AnalysisResult:
    """What `run_analysis` produced: the output folder, the report path, the tidy per-cell metrics, the summary
    at the headline step, the written files by name, and the messages (skipped selectors, missing data)."""

    out_dir: Path
    report: Path
    tidy: pd.DataFrame
    summary: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    headline_step: int | None = None

    def moved(self, src: Path, dst: Path) -> "AnalysisResult":
        """The same result after its folder `src` became `dst`."""
        move = lambda p: dst / Path(p).relative_to(src)  # noqa: E731
        return dataclasses.replace(self, out_dir=dst, report=move(self.report),
                                   files={k: move(v) for k, v in self.files.items()})


def _csv(df: pd.DataFrame, path: Path, *, index: bool = False) -> Path:
    return atomic_write_text(path, df.to_csv(index=index, float_format="%.10g"))


def _table7_md(t7: pd.DataFrame, study: Study) -> str:
    rows = []
    for name, row in t7.iterrows():
        cells = []
        for t in study.targets:
            mean, std = row[t], row[f"{t}_std"]
            text = f"{fmt(mean)} ± {fmt(std)}"
            base = t7.loc["no transfer", t]
            if name != "no transfer" and np.isfinite(mean) and np.isfinite(base) and mean > base:
                text = f"**{text}**"
            cells.append(text)
        rows.append([name, *cells])
    return md_table(["source", *study.targets], rows)


def _table8_md(t8: pd.DataFrame, top_n: int) -> str:
    if t8.empty:
        return "_no complete transfer scores_"
    rows = []
    for (target, seed), part in t8.groupby(["target", "seed"], sort=False):
        cells = []
        for _, r in part.sort_values("rank").iterrows():
            same = set(str(r["same_type_sources"] or "").split("/"))
            names = "/".join(f"{n}*" if n in same else n for n in r["sources"].split("/"))
            cells.append(f"{names} ({r['task_types']}) {r['rel_pct']:+.2f}%")
        cells += ["-"] * (top_n - len(cells))
        rows.append([target, seed, *cells])
    return md_table(["target", "seed", *[f"#{i}" for i in range(1, top_n + 1)]], rows, align="ll" + "l" * top_n)


def _table4_md(t4: pd.DataFrame) -> str:
    rows = []
    for _, r in t4.iterrows():
        k = "" if pd.isna(r["k"]) else f"k={int(r['k'])}"
        rows.append([r["selector"], k, fmt(r["abs"]), fmt(r["rel"]), fmt(r["rel_cells"]), fmt(r["avg_score"])])
    return md_table(["selector", "best of top-k", "abs. gain", "rel. gain (%)", "rel. gain, cell mean (%)",
                     "avg. score"], rows)


def _step_summary(tidy: pd.DataFrame, metric_labels: list[str]) -> pd.DataFrame:
    rows = tidy[(tidy["status"] == "ok") & tidy["step"].notna()]
    if rows.empty:
        return pd.DataFrame(columns=["selector", "group", "step", *metric_labels])
    return rows.groupby(["selector", "group", "step"], sort=False)[metric_labels].mean().reset_index()


def write_outputs(study: Study, cfg: AnalysisConfig, ctx: CellContext, tidy: pd.DataFrame, scores: pd.DataFrame,
                  lookup: dict, headline: int | None, out_dir: Path, messages: list[str]) -> AnalysisResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    fig_dir = out_dir / "figures"
    files: dict[str, Path] = {}
    metric_labels = [m.label for m in ctx.metrics]
    labels = [e.label for e in ctx.entries]
    if tidy.empty:
        tidy = pd.DataFrame(columns=["selector", "target", "seed", "step", "group", "n_sources", "partial",
                                     "status", *metric_labels])
    files["selector_metrics"] = _csv(tidy, out_dir / "selector_metrics.csv")
    files["scores"] = _csv(scores, out_dir / "selector_scores.csv")
    messages.extend(failure_notes(tidy))
    summary = tables.selector_summary(tidy, metric_labels, headline)
    files["summary"] = _csv(summary, out_dir / "summary.csv")
    files["summary_by_step"] = _csv(_step_summary(tidy, metric_labels), out_dir / "summary_by_step.csv")

    t3_points = tables.table3(summary, labels, list(ctx.groups)[:-1], metric_labels)
    random_label = next((e.label for e in ctx.entries if e.selector.name == "random"), None)
    reference_label = _reference_label(cfg, ctx, labels, messages)
    unc = tu.table3_uncertainty(tidy, selectors=labels, groups=list(ctx.groups), metric_labels=metric_labels,
                                targets=study.targets, seeds=study.seeds, step=headline, cfg=cfg.uncertainty,
                                random_label=random_label, reference_label=reference_label)
    if random_label is None:
        messages.append("Table 3: RANDOM is not among the selectors, so no test against its expectation")
    t3 = tu.table3_with_uncertainty(t3_points, unc)
    t3c = tables.correlations_table(summary, labels, metric_labels)
    pt = tu.per_target(tidy, selectors=labels, targets=study.targets, step=headline)
    counts = tu.cell_counts(summary, labels, list(ctx.groups))
    t4_labels = ctx.labels(cfg.labels_for(cfg.table4_selectors))
    t4_rows = [(e.label, e.selector.uniform, headline if e.uses_prompts else None) for e in ctx.entries
               if e.label in t4_labels]
    t4 = tables.table4(study, lookup, t4_rows, cfg.table4_ks)
    for label in [r[0] for r in t4_rows if r[0] not in set(t4["selector"])]:
        messages.append(f"Table 4: {label} left out (it lacks a score in some complete cell)")
    t7 = tables.table7(study)
    t8 = tables.table8(study, cfg.top_n)
    ref = reference_label or cfg.uncertainty.reference
    no_tests = tu.unreachable_note(unc, cfg.uncertainty, len(study.targets))
    correction = ", Holm-adjusted" if cfg.uncertainty.correction == "holm" else ""
    tests_md = [no_tests] if no_tests else [f"Paired p-values{correction} (vs RANDOM / vs {ref}):", "",
                                            tu.table3_tests_md(unc, labels)]
    expectations = [e.label for e in ctx.entries if e.selector.uniform]
    md = {
        "table3": "\n".join([tu.table3_md(unc, labels), "", *tests_md]),
        "table3_all_metrics": frame_to_md(t3c, digits=3), "table4": _table4_md(t4),
        "table7": _table7_md(t7, study), "table8": _table8_md(t8, cfg.top_n),
        "per_target": "\n".join([f"nDCG x100, {_ALL}:", "",
                                 tu.per_target_md(pt, "ndcg", labels, study.targets, expectations=expectations), "",
                                 f"Regret@1, {_ALL}:", "",
                                 tu.per_target_md(pt, "regret@1", labels, study.targets, expectations=expectations)]),
        "cell_counts": frame_to_md(counts),
    }
    for name, df, index in (("table3", t3, True), ("table3_all_metrics", t3c, True), ("table4", t4, False),
                            ("table7", t7, True), ("table8", t8, False), ("per_target", pt, False),
                            ("cell_counts", counts, True)):
        files[name] = _csv(df, out_dir / f"{name}.csv", index=index)
        files[f"{name}_md"] = atomic_write_text(out_dir / f"{name}.md", md[name] + "\n")

    figs = {"fig3": figures.fig3_violin(study, fig_dir / "fig3_relative_transfer.png"),
            "fig6": figures.fig6_gain_vs_size(study, fig_dir / "fig6_gain_vs_size.png"),
            "heatmap": figures.heatmap(study, fig_dir / "heatmap_transfer.png")}
    step_labels = [label for label in ctx.labels(cfg.labels_for(cfg.step_selectors)) if label in labels]
    prompt_labels = [e.label for e in ctx.entries if e.uses_prompts and e.label in step_labels]
    if prompt_labels and tidy["step"].notna().any():
        refs = [e.label for e in ctx.entries if not e.uses_prompts]
        u = cfg.uncertainty
        interval = INTERVALS.get(u.interval)
        def band(values):
            ci = interval(values, level=u.level, resamples=u.resamples, seed=u.seed, bounds=(-np.inf, 1.0))
            return ci.low, ci.high

        figs["fig5"] = figures.fig5_ndcg_by_step(tidy, prompt_labels, refs, fig_dir / "fig5_ndcg_by_step.png",
                                                 band=band, level=u.level)
        ordered = [study.targets[i] for i in figures.targets_by_size(study)]  # as in Figure 3
        figs["fig7"] = figures.fig7_ndcg_by_step_per_target(
            tidy, prompt_labels, ordered, fig_dir / "fig7_ndcg_by_step_per_target.png",
            rows_of={t: study.meta[t].train_size for t in study.targets})
    tokens = study.source_prompts.shape[1] if study.source_prompts is not None else 0
    if study.has_prompts and headline is not None and cfg.tsne_targets and tokens < cfg.tsne_min_tokens:
        messages.append(f"Figure 4: no t-SNE: {tokens} tokens per prompt (4 x {tokens} points) are too few for "
                        f"t-SNE to show more than its own layout (tsne_min_tokens: {cfg.tsne_min_tokens})")
    elif study.has_prompts and headline is not None:
        for target in cfg.tsne_targets:
            key = (target, study.seeds[0], headline)
            if target not in study.targets or key not in study.target_prompts or len(study.sources) < 3:
                messages.append(f"Figure 4: no t-SNE for {target} (not a target, no prompt at {key}, "
                                "or fewer than 3 sources)")
                continue
            figs[f"fig4_{target}"] = figures.fig4_tsne(study, target, study.seeds[0], headline,
                                                       fig_dir / f"fig4_tsne_{target}.png",
                                                       random_state=cfg.tsne_seed)
    files.update(figs)
    files["config"] = write_json(out_dir / "analysis_config.json", dataclasses.asdict(cfg))
    report = out_dir / "report.md"
    atomic_write_text(report, _report_text(study, cfg, ctx, headline, md, figs, files, messages, out_dir, ref))
    files["report"] = report
    return AnalysisResult(out_dir=out_dir, report=report, tidy=tidy, summary=summary, files=files,
                          messages=messages, headline_step=headline)


_ALL = "all sources, mean ± std over the target's scored seeds"


def failure_notes(tidy: pd.DataFrame) -> list[str]:
    """One note per selector that raised on some cells: how many cells (of all steps) and the first reason."""
    if "error" not in tidy.columns:
        return []
    failed = tidy[(tidy["status"] == "failed") & (tidy["group"] == ALL)]
    notes = []
    for label, part in failed.groupby("selector", sort=False):
        reasons = part["error"].drop_duplicates().tolist()
        more = f" and {len(reasons) - 1} other reasons" if len(reasons) > 1 else ""
        notes.append(f"{label} failed on {len(part)} cells, which are unscored: {reasons[0]}{more}")
    return notes


def _reference_label(cfg: AnalysisConfig, ctx: CellContext, labels: list[str], messages: list[str]) -> str | None:
    """The evaluated label of the reference selector of the paired tests, or None (with a note)."""
    found = [label for label in ctx.labels(cfg.labels_for((cfg.uncertainty.reference,))) if label in labels]
    if not found:
        messages.append(f"Table 3: the reference selector {cfg.uncertainty.reference!r} was not evaluated, so no "
                        "test against it")
        return None
    return found[0]


def _provenance(study: Study) -> list[str]:
    """Where the numbers came from: the environments the trials ran in (CPU and vector extensions, torch's
    kernels, threads and BLAS, library versions), a warning when they are mixed, and where this analysis ran."""
    lines = ["## Where these numbers came from", ""]
    envs = list(study.environments)
    recorded = [e for e in envs if e["fingerprint"]]
    if not envs:
        lines.append("- the input records no environment (a ground-truth table, not a sweep's results)")
    for e in envs:
        name = f"`{e['fingerprint']}`" if e["fingerprint"] else "unrecorded"
        lines.append(f"- {e['trials']} finished trials, environment {name}: {e['summary']}")
    if len(recorded) > 1 or (recorded and len(envs) > len(recorded)):
        lines += ["", "**The trials ran in more than one environment.** Another CPU (its vector extensions and "
                  "BLAS kernels), another thread count or other library versions round differently, and training "
                  "carries that into other scores: on the offline demo a few nDCG points (README). Compare "
                  "selectors on trials of one environment where it matters, or read the intervals as covering it."]
    lines += ["", f"- this analysis ran on: {summary(describe())}", ""]
    return lines


def _how_to_read(u, ref: str, n_targets: int) -> list[str]:
    """The paragraph under Table 3 that says what its brackets and p-values mean, for the configured methods."""
    interval = {
        "bootstrap-t": "a studentized bootstrap over the targets (each target's mean over its seeds; targets drawn "
                       "with replacement)",
        "bootstrap": "a two-stage percentile bootstrap (targets, then seeds within them; too narrow with few "
                     "targets)",
    }.get(u.interval, u.interval)
    tests = {
        "cluster-sign-flip": "a paired sign-flip test with the target as the unit (each target's difference "
                             "flips sign as a whole)",
        "cluster-bootstrap-t": "a studentized bootstrap test over the targets (the interval's method, inverted)",
        "sign-flip": "a paired sign-flip test per cell (too many false positives when a target's seeds move "
                     "together)",
    }
    correction = (f"Holm-adjusted within each {'Table 3 column' if u.family == 'column' else 'table'} (all "
                  "comparisons with RANDOM and with the reference together), so a p-value below "
                  f"{u.alpha:g} holds for the whole family" if u.correction == "holm"
                  else "per comparison, not corrected for the many in the table")
    return [
        f"How to read the brackets and p-values: the targets are the sampled unit (the seeds of one target move "
        f"together). The brackets are a {u.level:.0%} interval of the mean from {interval}, {u.resamples} "
        f"resamples: where the selector's mean over other targets of the same kind would fall; with "
        f"{n_targets} targets it is wide, and it is cut at the metric's range (nDCG at 100, Regret at 0). A "
        "p-value is the chance of a mean difference at least this large over the cells both selectors score if "
        "the two were equally good (small = a real difference). The first compares with RANDOM's exact "
        f"expectation, by {tests.get(u.random_test, u.random_test)}; the second with {ref}, by "
        f"{tests.get(u.test, u.test)}. The p-values are {correction}. Overlapping intervals do not mean two "
        "selectors are alike (the paired test removes the targets' shared difficulty).",
    ]


def _rel(path: Path, out_dir: Path) -> str:
    return path.relative_to(out_dir).as_posix()


def _model_input_lines(study: Study) -> list[str]:
    """One line per model-backed selector input the study has (probe, logme, ...): how many pairs have a score."""
    return [f"- {name}: {MODEL_INPUTS.get(name).description if name in MODEL_INPUTS else 'scores'} for "
            f"{int(np.isfinite(table).sum())} of {table.size} (target, source) pairs"
            for name, table in sorted(study.model_scores.items())]


def _report_text(study, cfg, ctx, headline, md, figs, files, messages, out_dir, ref) -> str:
    link = lambda key: f"[{_rel(files[key], out_dir)}]({_rel(files[key], out_dir)})"  # noqa: E731
    opts, unc_cfg = cfg.options, cfg.uncertainty
    lines = [
        f"# Intermediate-task selection: {cfg.name}", "",
        cfg.description.strip() or "Selector evaluation for intermediate-task transfer.", "",
        f"- input: {study.origin}",
        f"- {len(study.sources)} sources, {len(study.targets)} targets, seeds "
        f"{', '.join(seed_label(s) for s in study.seeds)}; checkpoint steps evaluated: "
        f"{', '.join(str(s) for s in sorted({c for c in ctx.study.steps})) or 'none (no prompts)'}",
        f"- Tables 3 and 4 use the prompt selectors at step {headline if headline is not None else '-'}",
        f"- nDCG gain `{cfg.ranking.gain}`, relevance `{cfg.ranking.relevance}`, missing cells "
        f"`{cfg.ranking.missing}`; MAX direction `{opts.max_direction}`, token normalisation "
        f"{'on' if opts.normalize else 'off'}, seed averaging {'on' if cfg.seed_average else 'off'}",
        "- ties between equal selector scores are broken by source name (ascending)",
        *_model_input_lines(study), "",
    ]
    if messages:
        lines += ["## Notes", "", *[f"- {m}" for m in messages], ""]
    lines += _provenance(study)
    lines += [
        "## Table 3: selector quality by source group", "",
        "Mean Regret@k (lower is better) and nDCG x100 (higher is better) over (target, seed) cells; each group "
        "ranks only the sources of that Table 6 category, ALL ranks every source. "
        f"CSV: {link('table3')}.", "",
        *_how_to_read(unc_cfg, ref, len(study.targets)), "", md["table3"], "",
        f"Every metric over ALL sources, with Spearman and Kendall rank correlations and the number of scored and "
        f"missing cells ({link('table3_all_metrics')}):", "", md["table3_all_metrics"], "",
        "## Per target", "",
        "nDCG x100 and Regret@1 of each target (over ALL sources, at the headline step): mean ± std over its "
        f"scored seeds, and \"(k of n)\" where some seeds are unscored. CSV: {link('per_target')}.", "",
        md["per_target"], "",
        "Scored cells per selector and group; an undefined cell (a metric without a value there, e.g. a best "
        "transfer score of 0), a missing one (a missing score) and a failed one (the selector raised there; the "
        "notes say why) are in no mean. "
        f"CSV: {link('cell_counts')}.", "", md["cell_counts"], "",
        "## Table 4: transfer gain of the selected sources", "",
        "The best transfer score among each selector's top-k sources, against no transfer (rel. gain = mean "
        f"absolute gain / mean baseline, as the paper; ORACLE picks the best source). CSV: {link('table4')}.", "",
        md["table4"], "",
        "## Table 7: transfer matrix", "",
        "Mean ± std over seeds of every source -> target transfer; bold marks scores above the no-transfer "
        f"baseline. CSV: {link('table7')}.", "", md["table7"], "",
        f"## Table 8: top-{cfg.top_n} sources per target and seed", "",
        "The best sources of each cell (sources tying on score share a rank) with task types and relative gain; "
        f"* marks each source of the target's task type. CSV: {link('table8')}.", "", md["table8"], "",
        "## Figures", "",
    ]
    captions = {
        "fig3": "Figure 3: relative transfer of every (source, seed) run per target, targets by training-set size.",
        "fig6": "Figure 6: relative transfer against the target's training-set size, with the mean trend.",
        "heatmap": "Transfer matrix heatmap: relative gain of the seed-mean transfer over the seed-mean baseline.",
        "fig5": "Figure 5: mean nDCG of the prompt selectors against the target checkpoint step, each shaded with "
                f"the {cfg.uncertainty.level:.0%} interval of its mean over the targets (the Table 3 method); "
                "horizontal lines: selectors that read no target prompt, hence no step. Where two bands overlap, "
                "the step-to-step order of those lines is not established.",
        "fig7": "Figure 7: the same per target (ordered as in Figure 3, largest training set first; one y-axis): "
                "the mean over the target's seeds, shaded from its lowest to its highest seed.",
    }
    for key, path in figs.items():
        caption = captions.get(key) or (f"Figure 4: t-SNE of the prompt tokens of the best, second-best and "
                                        f"worst source and of the target ({key.split('_', 1)[1]}). A caveat: "
                                        "t-SNE keeps near neighbours, not distances or cluster sizes, and one "
                                        "seed's layout is one of many; read it as a picture, not as evidence "
                                        "for MAX (Table 3 is).")
        lines += [caption, "", f"![{key}]({_rel(path, out_dir)})", ""]
    lines += [
        "## Files", "",
        f"- per-cell metrics (selector, target, seed, step, group, metrics): {link('selector_metrics')}",
        f"- per-source selector scores and ranks: {link('scores')}",
        f"- summary at the headline step: {link('summary')}; by step: {link('summary_by_step')}",
        f"- the analysis configuration: {link('config')}", "",
    ]
    return "\n".join(lines)
