"""Bad input, tried as a careless or hostile user would: every case through the real command line, classified.

Each case is one command (`python -m itsel_ray.sweep ... --dry-run`, `... status`, `python -m itsel_ray.analyze`,
`python -m itsel_ray.rank`) on a bad sweep file, override, argument, table or prompt file. A case is
  clear      non-zero exit, no traceback, and the message names what is wrong (the field, file or value);
  unclear    non-zero exit, but a traceback or a message that does not name it;
  accepted   exit 0: the bad input went through.
Nothing here starts Ray (the sweep cases are --dry-run or status). Prints one line per case and the tally.

    python benchmarks/audit_inputs.py            # about 3 minutes on 2 cores
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((ROOT / "sweeps" / "smoke.yaml").read_text())


def sweep_file(tmp: Path, name: str, change: dict | None = None, *, text: str | None = None) -> str:
    path = tmp / f"{name}.yaml"
    if text is not None:
        path.write_text(text)
        return str(path)
    data = json.loads(json.dumps(SMOKE))
    for dotted, value in (change or {}).items():
        node = data
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    path.write_text(yaml.safe_dump(data))
    return str(path)


def cases(tmp: Path) -> list[tuple[str, list[str], str]]:
    """(what, argv after `python -m`, text the message must contain)."""
    sw = ["itsel_ray.sweep", "tune", "--dry-run", "--sweep"]
    out = []

    def bad_sweep(what, change, needle, name=None):
        out.append((what, sw + [sweep_file(tmp, name or f"s{len(out)}", change)], needle))

    def bad_set(what, setting, needle):
        out.append((what, sw + ["smoke", "--set", setting], needle))

    # sweep files: keys, types, values
    bad_sweep("unknown top-level key", {"grdi": {}}, "grdi")
    bad_sweep("unknown nested key", {"trial.optim.lrr": 1.0}, "trial.optim.lrr")
    bad_sweep("typo inside model.config", {"trial.model.config.d_modle": 64}, "d_modle")
    bad_sweep("wrong type", {"trial.train.max_steps": "many"}, "trial.train.max_steps")
    bad_sweep("bool for an int", {"execution.max_failures": True}, "execution.max_failures")
    bad_sweep("unknown task", {"grid.targets": ["syn_and01", "syn_nope"]}, "syn_nope")
    bad_sweep("empty grid", {"grid.sources": []}, "grid.sources")
    bad_sweep("duplicate seeds", {"grid.source_seeds": [1, 1]}, "more than once")
    bad_sweep("negative seed", {"grid.source_seeds": [-1]}, "grid.source_seeds[0]")
    bad_sweep("seed 2^70", {"grid.target_seeds": [2**70]}, "grid.target_seeds[0]")
    bad_sweep("task both source and target", {"grid.targets": ["syn_has0"]}, "both sources and targets")
    bad_sweep("lr nan", {"trial.optim.lr": float("nan")}, "lr")
    bad_sweep("lr inf", {"trial.optim.lr": float("inf")}, "lr")
    bad_sweep("lr negative", {"trial.optim.lr": -1.0}, "lr")
    bad_sweep("max_eval_examples 0", {"trial.train.max_eval_examples": 0}, "max_eval_examples")
    bad_sweep("max_steps 0", {"trial.train.max_steps": 0}, "max_steps")
    bad_sweep("population 1e9", {"trial.prompt.population": 10**9}, "population")
    bad_sweep("missing from_file prompt", {"trial.prompt.init": "from_file", "trial.prompt.path": "/nonexistent.npy"},
              "nonexistent.npy")
    bad_sweep("unknown optimiser", {"trial.optim.name": "sgd"}, "sgd")
    bad_sweep("unknown loss", {"trial.train.loss": "hinge"}, "hinge")
    bad_sweep("unknown eval mode", {"trial.train.eval_mode": "beam"}, "beam")
    bad_sweep("unknown label style", {"trial.data.label_style": "emoji"}, "emoji")
    bad_sweep("unknown precision", {"trial.train.precision": "fp8"}, "precision")
    bad_sweep("micro batch > batch", {"trial.train.micro_batch_size": 1000}, "micro_batch_size")
    bad_sweep("prompt length 0", {"trial.prompt.length": 0}, "prompt.length")
    bad_sweep("unknown engine", {"engine": "jax"}, "engine")
    bad_sweep("unknown analysis", {"analysis": "nope"}, "analysis")
    bad_sweep("gpu share 3.5", {"resources.gpu_per_trial": 3.5}, "gpu_per_trial")
    bad_sweep("gpu share words", {"resources.gpu_per_trial": "lots"}, "gpu_per_trial")
    bad_sweep("cpu 0", {"resources.cpu_per_trial": 0}, "cpu_per_trial")
    bad_sweep("use_gpu sometimes", {"resources.use_gpu": "sometimes"}, "use_gpu")
    bad_sweep("max_failures -1", {"execution.max_failures": -1}, "max_failures")
    bad_sweep("unknown fault key", {"testing.fail_trials": ["tune/nope/seed=1"]}, "testing.fail_trials")
    bad_sweep("name escapes storage", {"name": "../../etc"}, "one folder name")
    bad_sweep("absolute name", {"name": "/tmp/x"}, "one folder name")
    bad_sweep("transfer prompt shape", {"stages.transfer.prompt.length": 7}, "same model and prompt.length")
    bad_sweep("wandb mode", {"tracking.wandb.mode": "sometimes"}, "tracking.wandb.mode")
    # analysis definition named by the sweep: checked at planning
    adef = tmp / "bad_analysis.yaml"
    adef.write_text(yaml.safe_dump({**yaml.safe_load((ROOT / "analysis" / "demo.yaml").read_text()),
                                    "selectors": ["max", "telepathy"]}))
    bad_sweep("unknown selector in the analysis", {"analysis": str(adef)}, "telepathy")
    adef2 = tmp / "bad_metric.yaml"
    adef2.write_text(yaml.safe_dump({**yaml.safe_load((ROOT / "analysis" / "demo.yaml").read_text()),
                                     "metrics": ["ndcg", "precision@1"]}))
    bad_sweep("unknown metric in the analysis", {"analysis": str(adef2)}, "precision")
    # YAML itself
    out.append(("not YAML", sw + [sweep_file(tmp, "y1", text="grid: [1, 2\n")], "not valid YAML"))
    out.append(("not a mapping", sw + [sweep_file(tmp, "y2", text="- 1\n- 2\n")], "must be a mapping"))
    out.append(("duplicate key", sw + [sweep_file(tmp, "y3", text=(ROOT / "sweeps" / "smoke.yaml").read_text()
                                                  + "\nengine: fake\nengine: torch\n")], "duplicate key"))
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    out.append(("alias bomb", sw + [sweep_file(tmp, "y4", text=bomb)], "aliases"))
    out.append(("huge file", sw + [sweep_file(tmp, "y5", text="# " + "x" * (2 * 1024**2))], "too large"))
    out.append(("missing sweep file", sw + [str(tmp / "none.yaml")], "none.yaml"))
    out.append(("unknown sweep name", sw + ["nosuch"], "known sweeps"))
    out.append(("defaults as a sweep", sw + [str(ROOT / "sweeps" / "defaults.yaml")], "defaults layer"))
    # --set
    bad_set("--set without =", "trial.train.max_steps", "KEY=VALUE")
    bad_set("--set unknown key", "trial.train.max_stepz=3", "trial.train.max_stepz")
    bad_set("--set bad value", "trial.train.max_steps=[1", "not valid YAML")
    bad_set("--set wrong type", "grid.target_seeds=28", "grid.target_seeds")
    # arguments
    out.append(("--num-cpus 0", ["itsel_ray.sweep", "tune", "--sweep", "smoke", "--num-cpus", "0"], "--num-cpus"))
    out.append(("--max-concurrent -2", ["itsel_ray.sweep", "tune", "--sweep", "smoke", "--max-concurrent", "-2"],
                "--max-concurrent"))
    out.append(("unknown stage", ["itsel_ray.sweep", "train"], "invalid choice"))
    afile = tmp / "afile"
    afile.write_text("x")
    out.append(("--storage is a file", ["itsel_ray.sweep", "tune", "--sweep", "smoke", "--storage", str(afile),
                                        "--set", "engine=fake"], "is a file"))
    out.append(("status: no storage", ["itsel_ray.sweep", "status", "--storage", str(tmp / "nowhere")],
                "does not exist"))
    out.append(("status: storage is a file", ["itsel_ray.sweep", "status", "--storage", str(afile)], "is a file"))
    out.append(("gpu sweep on cpu", ["itsel_ray.sweep", "transfer", "--sweep", "paper", "--dry-run"], "asks for GPUs"))
    out.append(("--address unreachable", ["itsel_ray.sweep", "tune", "--sweep", "smoke", "--dry-run", "--address",
                                          "127.0.0.1:1"], "cannot reach"))
    out.append(("--address auto, none", ["itsel_ray.sweep", "tune", "--sweep", "smoke", "--dry-run", "--address",
                                         "auto"], "no Ray cluster is running"))
    out += analysis_cases(tmp)
    out += rank_cases(tmp)
    return out


def table7(tmp: Path, name: str, edit) -> str:
    lines = (ROOT.parent / "shared" / "anchors" / "paper_table7.csv").read_text().splitlines() \
        if (ROOT.parent / "shared" / "anchors" / "paper_table7.csv").is_file() else None
    if lines is None:  # a small matrix in the same layout
        lines = ["source,boolq,cola,rte", "prompt-text,60.0,10.0,55.0", "mnli,65.0,12.0,70.0", "qqp,62.0,9.0,60.0"]
    lines = edit(list(lines))
    path = tmp / f"{name}.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _set_cell(lines, row, col, value):
    cells = lines[row].split(",")
    cells[col] = value
    lines[row] = ",".join(cells)
    return lines


def analysis_cases(tmp: Path) -> list[tuple[str, list[str], str]]:
    an = ["itsel_ray.analyze", "--selectors", "random", "size", "--out"]
    out = []
    for what, value in (("negative score", "-5"), ("score above 100", "250"), ("inf score", "inf"),
                        ("1e308 score", "1e308"), ("text 'nan' score", "nan"), ("word score", "high")):
        path = table7(tmp, f"gt{len(out)}", lambda ls, v=value: _set_cell(ls, 2, 1, v))
        out.append((f"ground truth: {what}", an + [str(tmp / f"o{len(out)}"), "--ground-truth", path], "row"))
    path = table7(tmp, "gt_scale", lambda ls: [ls[0]] + [",".join([r.split(",")[0]] + [
        str(float(x) / 100) if x.replace(".", "").isdigit() else x for x in r.split(",")[1:]]) for r in ls[1:]])
    out.append(("ground truth on a 0-1 scale (warning, may be meant)", an + [str(tmp / "o_scale"), "--ground-truth",
                                                                            path], "0-1"))
    out.append(("ground truth missing", an + [str(tmp / "o_m"), "--ground-truth", str(tmp / "no.csv")], "no.csv"))
    out.append(("unknown selector", ["itsel_ray.analyze", "--selectors", "telepathy", "--out", str(tmp / "o_s"),
                                     "--ground-truth", table7(tmp, "gt_ok", lambda ls: ls)], "telepathy"))
    out.append(("unknown metric", ["itsel_ray.analyze", "--metrics", "accuracy@3", "--out", str(tmp / "o_t"),
                                   "--ground-truth", table7(tmp, "gt_ok2", lambda ls: ls)], "accuracy"))
    return out


def rank_cases(tmp: Path) -> list[tuple[str, list[str], str]]:
    lib = tmp / "library"
    lib.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for name in ("mnli", "qqp", "rte"):
        np.save(lib / f"{name}.npy", rng.standard_normal((4, 8)).astype(np.float32))
    target = tmp / "target.npy"
    np.save(target, rng.standard_normal((4, 8)).astype(np.float32))
    rk = ["itsel_ray.rank", "--target-prompt", str(target), "--library"]
    out = []

    def bad_lib(what, name, writer, needle):
        folder = tmp / f"lib_{len(out)}"
        folder.mkdir()
        for p in lib.iterdir():
            (folder / p.name).write_bytes(p.read_bytes())
        writer(folder / name)
        out.append((f"rank library: {what}", rk + [str(folder)], needle))

    bad_lib("int prompt", "cola.npy", lambda p: np.save(p, np.ones((4, 8), dtype=np.int64)), "cola.npy")
    bad_lib("bool prompt", "cola.npy", lambda p: np.save(p, np.ones((4, 8), dtype=bool)), "cola.npy")
    bad_lib("all-zero prompt", "cola.npy", lambda p: np.save(p, np.zeros((4, 8), dtype=np.float32)), "cola.npy")
    bad_lib("NaN prompt", "cola.npy", lambda p: np.save(p, np.full((4, 8), np.nan, dtype=np.float32)), "cola.npy")
    bad_lib("truncated prompt", "cola.npy", lambda p: p.write_bytes((lib / "mnli.npy").read_bytes()[:60]), "cola.npy")
    bad_lib("pickled object", "cola.npy", lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True),
            "cola.npy")

    def huge(p):
        with open(p, "wb") as f:  # a valid header for a 1.6 GB array, the data sparse
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (400_000, 1000)})
            f.seek(1_600_000_000)
            f.write(b"\0")

    bad_lib("1.6 GB .npy", "cola.npy", huge, "cola.npy")
    bad_lib("wrong shape", "cola.npy", lambda p: np.save(p, np.ones((3, 5), dtype=np.float32)), "cola.npy")
    out.append(("rank: --top -1", rk + [str(lib), "--top", "-1"], "--top"))
    out.append(("rank: --top 0", rk + [str(lib), "--top", "0"], "--top"))
    out.append(("rank: unknown selector", rk + [str(lib), "--selector", "telepathy"], "telepathy"))
    out.append(("rank: missing library", rk + [str(tmp / "nolib")], "nolib"))
    out.append(("rank: bad --size", ["itsel_ray.rank", "--library", str(lib), "--selector", "size", "--size",
                                     "mnli=lots"], "mnli=lots"))
    return out


def classify(code: int, err: str, needle: str) -> str:
    if code == 0:
        return "accepted" if "warning" not in err.lower() else "clear (warning)"
    if "Traceback" in err:
        return "unclear"
    return "clear" if needle.lower() in err.lower() else "unclear"


def main() -> None:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "RAY_ADDRESS": "", "RAY_TMPDIR": tempfile.gettempdir() + "/no-ray-here"}
    tally: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for what, argv, needle in cases(tmp):
            done = subprocess.run([sys.executable, "-m", *argv], cwd=tmp, env=env, capture_output=True, text=True,
                                  timeout=300)
            kind = classify(done.returncode, done.stderr + done.stdout if done.returncode == 0 else done.stderr,
                            needle)
            tally[kind] = tally.get(kind, 0) + 1
            first = (done.stderr.strip().splitlines() or [""])[-1 if "Traceback" in done.stderr else 0][:110]
            print(f"{kind:>16}  exit {done.returncode:>3}  {what:<50} {first}")
    total = sum(tally.values())
    print(f"\n{total} bad inputs tried: " + ", ".join(f"{n} {k}" for k, n in sorted(tally.items())))


if __name__ == "__main__":
    main()
