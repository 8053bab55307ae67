"""Bad input and faults, tried as a careless or hostile user (or an unlucky machine) would: every case through the
real command line, classified.

Each case is one command (`python -m itsel_ray.sweep ...`, `... status`, `python -m itsel_ray.analyze`, `python -m
itsel_ray.rank`, `itsel-ray data import`, the CxC builder) on a bad sweep file, override, argument, table, prompt
file, data file or storage entry, or a fault done to a running sweep (a killed raylet or GCS, a disk that fills, a
private instance that cannot start). Cases come in four groups: data, storage, cli/sweep, faults. A case is
  accepted-right  exit 0 on an input that is right, and the output says how it was read (label words, repairs)
  clear           non-zero exit (or exit 0 with a warning, where a warning is the answer), no traceback, and the
                  message names what is wrong (the field, file, row or value)
  unclear         non-zero exit without a traceback, but the message does not name it
  silent          exit 0: the bad input went through without a word (or a right one without saying how)
  traceback       a Python traceback reached the user
The data cases run the prepare step (`itsel-ray prepare`: a Ray instance each) on fixture rows written as a local
mirror; the fault cases start sweeps and kill parts of them, or mount small tmpfs disks (root only: skipped where
mounting is not allowed). Prints one line per case, then the count of each class per group and in all.

    python benchmarks/audit_inputs.py                  # about 12 minutes on 2 cores
    python benchmarks/audit_inputs.py --groups data    # one group
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

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


# ------------------------------------------------------------------------------------------------ the new groups

sys.path.insert(0, str(ROOT))  # the fixture rows and the mirror writer of the tests
TINY = {"d_model": 16, "d_ff": 32, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 2, "d_kv": 8,
        "dropout_rate": 0.0}
FAST = ["--no-dashboard", "--num-cpus", "1", "--quiet"]


@dataclass
class Case:
    group: str  # data | storage | cli/sweep | faults
    what: str
    argv: list[str] | None  # after `python -m`; None: `run` does it
    needle: str  # what the output must say (case-insensitive)
    expect: str = "error"  # "error": the input is wrong; "accept": it is right and must be read as said
    run: Callable[[], tuple[int, str]] | None = None  # custom runner: (exit status, output)
    timeout: int = 300
    env: dict = field(default_factory=dict)


def data_sweep(tmp: Path, name: str, target: str, mirror: Path) -> str:
    """A torch-engine sweep of mnli -> `target` with a tiny model and the synthetic word vocabulary, reading the
    mirror at `mirror` (prepare runs the real checks; nothing trains)."""
    data = json.loads(json.dumps(SMOKE))
    data.update(name=name, engine="torch")
    data["grid"] = {"sources": ["mnli"], "targets": [target], "source_seeds": [1], "target_seeds": [2]}
    data["trial"]["model"] = {"config": TINY, "tokenizer": "vocab:synthetic"}
    data["trial"]["data"] = {"mirror": str(mirror)}
    data["trial"]["train"].update(loss="sequence", eval_mode="generate")
    data["stages"] = {}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def data_cases(tmp: Path) -> list[Case]:
    from tests.mirrors import fixture, split_path, write_task

    out: list[Case] = []

    def prepare(what: str, target: str, rows: dict | None, needle: str, expect: str = "error",
                edit: Callable[[Path], None] | None = None) -> None:
        name = f"d{len(out)}"
        mirror = tmp / f"mirror_{name}"
        write_task(mirror, "mnli")
        write_task(mirror, target, rows)
        if edit:
            edit(mirror)
        argv = ["itsel_ray.sweep", "prepare", "--sweep", data_sweep(tmp, name, target, mirror), "--storage",
                str(tmp / f"store_{name}"), *FAST[:-1]]
        out.append(Case("data", what, argv, needle, expect))

    def rows(task: str, n: int, split: str = "train", **change):
        base = fixture(task)[split]
        return [{**base[i % len(base)], **{k: (v(i) if callable(v) else v) for k, v in change.items()}}
                for i in range(n)]

    val = {t: fixture(t)["validation"] for t in ("rte", "cr", "boolq")}
    prepare("label words in a training split", "rte",
            {"train": rows("rte", 20, label=lambda i: ["entailment", "not_entailment"][i % 2]), "validation": val["rte"]},
            "labels given as label words", expect="accept")
    prepare("CR's Hub label words (positive for 'postive')", "cr",
            {"train": [{"text": f"review {i}", "label": ["negative", "positive"][i % 2]} for i in range(8)],
             "validation": val["cr"]}, "'positive' -> 1 (postive)", expect="accept")
    prepare("booleans as BoolQ labels", "boolq",
            {"train": rows("boolq", 6, label=lambda i: bool(i % 2)), "validation": val["boolq"]},
            "booleans (False -> 0, True -> 1)", expect="accept")
    prepare("booleans as RTE labels", "rte",
            {"train": rows("rte", 6, label=lambda i: bool(i % 2)), "validation": val["rte"]}, "is a boolean")
    prepare("a label word that is no label", "rte",
            {"train": rows("rte", 4, label="entailed"), "validation": val["rte"]},
            "expected a class id 0..1 or a label word")
    prepare("null text in 13 of 64 rows", "rte",
            {"train": rows("rte", 64, sentence1=lambda i: None if i % 5 == 2 else f"s {i}"), "validation": val["rte"]},
            "is null (an empty cell) in 13 of 64 rows")
    prepare("an all-empty text column", "rte", {"train": rows("rte", 6, sentence2=""), "validation": val["rte"]},
            "is empty in every row")
    prepare("a 10 MB row", "rte",
            {"train": rows("rte", 3, sentence1=lambda i: "word " * 2_000_000 if i == 1 else "x"), "validation": val["rte"]},
            "hold more text than")
    prepare("duplicated rows", "rte", {"train": rows("rte", 6, sentence1="same", sentence2="same", label=0),
                                       "validation": val["rte"]}, "repeat an earlier one", expect="accept")
    prepare("train/validation overlap", "rte",
            {"train": rows("rte", 4), "validation": rows("rte", 2)}, "also occurs in the training split",
            expect="accept")
    prepare("a missing column", "rte",
            {"train": [{k: v for k, v in r.items() if k != "sentence2"} for r in rows("rte", 2)],
             "validation": val["rte"]}, "missing column 'sentence2'")

    def latin1(mirror: Path) -> None:
        split_path(mirror, "cr", "train").write_bytes(b'{"text": "caf\xe9", "label": 1}\n')

    prepare("a Latin-1 JSON-lines file", "cr", None, "line 1 is not UTF-8", edit=latin1)
    prepare("an empty JSON-lines file", "cr", None, "is empty (0 bytes)",
            edit=lambda m: split_path(m, "cr", "train").write_bytes(b""))
    prepare("a Git LFS pointer saved as .parquet", "rte", None, "is a Git LFS pointer",
            edit=lambda m: split_path(m, "rte", "train").write_text(
                "version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 12\n"))
    prepare("a CSV saved as .parquet", "rte", None, "is not a parquet file",
            edit=lambda m: split_path(m, "rte", "validation").write_text("a,b\n1,2\n"))
    sts = tmp / "sts"
    sts.mkdir()
    (sts / "sts_val.csv").write_text("caption1,caption2,agg_score,sampling_method\n")
    (sts / "sts_test.csv").write_text("caption1,caption2,agg_score,sampling_method\n")
    out.append(Case("data", "building CxC offline", ["itsel_ray.tasks.cxc", "--sts-dir", str(sts), "--out",
                                                      str(tmp / "cxc")], "cannot fetch the caption map"))
    # the converter of the official files
    glue = tmp / "RTE"
    glue.mkdir()
    (glue / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\tA cat sat.\tA cat.\tentailment\n"
                                    "1\tcut short\n2\tDogs bark.\tCats bark.\tnot_entailment\n")
    (glue / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\tA b.\tA.\tentailment\n")
    imp = ["itsel_ray.data.importer", "import"]
    out.append(Case("data", "import: GLUE TSV with a cut line", imp + ["rte", str(glue), "--out", str(tmp / "m1")],
                    "skipped 1 row(s)", expect="accept"))
    wsc = tmp / "WSC"
    wsc.mkdir()
    row = {"text": "The trophy does not fit because it is too large.", "idx": 0, "label": True,
           "target": {"span1_index": 0, "span1_text": "the trophy.", "span2_index": 6, "span2_text": "it"}}
    for name in ("train.jsonl", "val.jsonl"):
        (wsc / name).write_text(json.dumps(row) + "\n")
    out.append(Case("data", "import: WSC spans that need the wsc.fixed repair", imp + ["wsc", str(wsc), "--out",
                                                                                        str(tmp / "m2")],
                    "repaired 2 row(s)", expect="accept"))
    squad = tmp / "train-v1.1.json"
    squad.write_text(json.dumps({"data": []}))
    out.append(Case("data", "import: a SQuAD file given for MNLI", imp + ["mnli", str(squad), "--out",
                                                                          str(tmp / "m3")], "no column(s)"))
    return out


def storage_cases(tmp: Path) -> list[Case]:
    out: list[Case] = []
    fake = ["--set", "engine=fake", *FAST]

    def store(name: str) -> Path:
        root = tmp / f"st_{name}" / "smoke"
        (root / "tune").mkdir(parents=True)
        return root

    outside = tmp / "outside"
    outside.mkdir()
    for folder in ("results", "analysis"):
        root = store(folder)
        os.symlink(outside, root / folder)
        out.append(Case("storage", f"{folder}/ a symlink to a folder outside", ["itsel_ray.sweep", "tune", "--sweep",
                        "smoke", "--storage", str(root.parent), *fake], f"{folder} is a symlink"))
    root = store("prompts")
    (root / "tune" / "syn_has0" / "seed=42" / "prompts").mkdir(parents=True)
    os.symlink("/etc/passwd", root / "tune" / "syn_has0" / "seed=42" / "prompts" / "step_000010.safetensors")
    out.append(Case("storage", "a prompt file that is a symlink to /etc/passwd", ["itsel_ray.sweep", "tune",
                    "--sweep", "smoke", "--storage", str(root.parent), *fake], "is a symlink to /etc/passwd"))
    root = store("fifo")
    os.mkfifo(root / "sweep.yaml")
    out.append(Case("storage", "a FIFO where a file is read", ["itsel_ray.sweep", "tune", "--sweep", "smoke",
                    "--storage", str(root.parent), *fake], "is a FIFO", timeout=60))
    finished = tmp / "st_done"
    out.append(Case("storage", "status --sweep demo on a storage holding only smoke", None, "no sweep 'demo'",
                    run=lambda: _status_other_sweep(finished)))
    for what, value, needle in (("best_score NaN in a finished result.json", float("nan"), "has best_score nan"),
                                ("best_score 250 on a 0-100 metric", 250.0, "outside the score range [0, 100]"),
                                ("a 2 GiB result.json", "2GiB", "larger than any record")):
        out.append(Case("storage", what, None, needle, expect="accept",
                        run=lambda v=value, w=what: _status_damaged(tmp / f"dmg_{len(w)}_{abs(hash(w)) % 1000}", v)))
    return out


def _finished_smoke(store: Path) -> Path:
    """A storage holding the smoke sweep's finished tune stage, written by the stand-in engine (no Ray)."""
    code = ("import sys; from pathlib import Path; from itsel_ray.artifacts import write_json; "
            "from itsel_ray.engine import fake; from itsel_ray.runs.plan import plan_stage; "
            "from itsel_ray.runs.storage import sweep_root; from itsel_ray.runs.sweep_file import load_sweep; "
            "from itsel_ray.runs.trial_state import MARKER, expected_fingerprint, marker_record\n"
            "sweep = load_sweep('smoke', overrides=['engine=fake']); st = sweep_root(sys.argv[1], 'smoke')\n"
            "for t in plan_stage(sweep, 'tune'):\n"
            "    fake.run_trial(sweep.trial_config(t.role, task=t.task, seed=t.seed), st.local(t.key))\n"
            "    write_json(st.local(t.key) / MARKER, marker_record(t, expected_fingerprint(sweep, t)))\n")
    subprocess.run([sys.executable, "-c", code, str(store)], check=True, cwd=ROOT, timeout=120)
    return store / "smoke"


def _status_other_sweep(store: Path) -> tuple[int, str]:
    _finished_smoke(store)
    done = subprocess.run([sys.executable, "-m", "itsel_ray.sweep", "status", "--sweep", "demo", "--storage",
                           str(store)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    return done.returncode, done.stdout + done.stderr


def _status_damaged(store: Path, value) -> tuple[int, str]:
    root = _finished_smoke(store)
    result = root / "tune" / "syn_has0" / "seed=42" / "result.json"
    if value == "2GiB":
        with open(result, "wb") as f:
            f.truncate(2 * 2**30)
    else:
        result.write_text(json.dumps({**json.loads(result.read_text()), "best_score": value}))
    done = subprocess.run(["/usr/bin/time", "-f", "peak RSS %M KiB", sys.executable, "-m", "itsel_ray.sweep",
                           "status", "--sweep", "smoke", "--set", "engine=fake", "--storage", str(store)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    return done.returncode, done.stdout + done.stderr


def new_cli_cases(tmp: Path) -> list[Case]:
    sw = ["itsel_ray.sweep", "tune", "--dry-run", "--sweep"]
    out = [
        Case("cli/sweep", "sources duplicated under case folding", sw + ["smoke", "--set",
             "grid.sources=[syn_has0,SYN_HAS0]"], "one task"),
        Case("cli/sweep", "--sweep ''", ["itsel_ray.sweep", "tune", "--sweep", "", "--dry-run"], "--sweep is empty"),
        Case("cli/sweep", "--storage ''", ["itsel_ray.sweep", "tune", "--sweep", "smoke", "--storage", "",
                                           "--dry-run"], "--storage is empty"),
        Case("cli/sweep", "warmup_steps above max_steps", sw + ["smoke", "--set", "trial.optim.warmup_steps=500"],
             "exceeds train.max_steps"),
        Case("cli/sweep", "train.device tpu", sw + ["smoke", "--set", "trial.train.device=tpu"], "train.device"),
        Case("cli/sweep", "model.config.d_model 0 (left to the engine contract)", sw + ["smoke", "--set",
             "trial.model.config.d_model=0"], "d_model"),
    ]
    rng = np.random.default_rng(1)
    lib = tmp / "lib_keys"
    lib.mkdir()
    for name in ("mnli", "qqp"):
        np.save(lib / f"{name}.npy", rng.standard_normal((4, 8)).astype(np.float32))
    target = tmp / "target_keys.npy"
    np.save(target, rng.standard_normal((4, 8)).astype(np.float32))
    from safetensors.numpy import save

    (lib / "cola.safetensors").write_bytes(save({"weights": rng.standard_normal((4, 8)).astype(np.float32)}))
    out.append(Case("cli/sweep", "rank: safetensors without a 'prompt' tensor", ["itsel_ray.rank", "--library",
                    str(lib), "--target-prompt", str(target)], "no prompt tensor"))
    lib3 = tmp / "lib_3d"
    lib3.mkdir()
    for p in lib.glob("*.npy"):
        (lib3 / p.name).write_bytes(p.read_bytes())
    (lib3 / "cola.safetensors").write_bytes(save({"prompt": rng.standard_normal((1, 4, 8)).astype(np.float32)}))
    out.append(Case("cli/sweep", "rank: a 3-D prompt tensor", ["itsel_ray.rank", "--library", str(lib3),
                    "--target-prompt", str(target)], "must be 2-D"))
    gt = tmp / "self.csv"
    gt.write_text("source,boolq,rte\nprompt-text,60.0,55.0\nmnli,65.0,70.0\nrte,62.0,90.0\n")
    out.append(Case("cli/sweep", "ground truth with a target that is also a source row", ["itsel_ray.analyze",
                    "--selectors", "size", "--out", str(tmp / "o_self"), "--ground-truth", str(gt)],
                    "both a source row and a target column"))
    return out


# ------------------------------------------------------------------------------------------------ faults


def _driver(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "ITSEL_RAY_OBJECT_STORE_MB": "256"}
    return subprocess.Popen([sys.executable, "-m", "itsel_ray.sweep", *args, "--no-dashboard", "--num-cpus", "2"],
                            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _kill_part(tmp: Path, victim: str) -> tuple[int, str]:
    import psutil

    data = json.loads(json.dumps(SMOKE))
    data.update(name="k", engine="fake")
    data["trial"]["train"]["max_steps"] = 80
    data["stages"] = {"source": {"train": {"max_steps": 80}}}
    data["testing"] = {"report_delay_s": 1.0}
    sweep = tmp / f"kill_{victim}.yaml"
    sweep.write_text(yaml.safe_dump(data))
    store, log = tmp / f"kill_{victim}", tmp / f"kill_{victim}.log"
    proc = _driver(["tune", "--sweep", str(sweep), "--storage", str(store)], log)
    try:
        deadline = time.time() + 240
        events = store / "k" / "events"
        while time.time() < deadline and proc.poll() is None:
            if events.is_dir() and len(list(events.rglob("*.json"))) >= 2:
                break
            time.sleep(0.5)
        for p in psutil.Process(proc.pid).children(recursive=True):
            if p.name() == victim:
                p.send_signal(signal.SIGKILL)
        t0 = time.time()
        code = proc.wait(timeout=120)
        return code, log.read_text() + f"\n(exit {time.time() - t0:.1f}s after the kill)"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _mount(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", f"audit-{uuid.uuid4().hex[:6]}", str(path)],
                          capture_output=True).returncode == 0


def _full_disk(tmp: Path, argv: list[str], mount: Path, size: str) -> tuple[int, str]:
    if not _mount(mount, size):
        return -1, "SKIPPED: cannot mount a tmpfs here"
    try:
        done = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=600, cwd=ROOT,
                              env={**os.environ, "RAY_AUTH_MODE": "disabled", "ITSEL_RAY_OBJECT_STORE_MB": "256"})
        return done.returncode, done.stdout + done.stderr
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _threads_change(tmp: Path) -> tuple[int, str]:
    args = ["tune", "--sweep", "smoke", "--set", "engine=fake", "--storage", str(tmp / "threads"), *FAST[:-1]]
    first = subprocess.run([sys.executable, "-m", "itsel_ray.sweep", *args], capture_output=True, text=True,
                           timeout=600, cwd=ROOT)
    if first.returncode != 0:
        return first.returncode, first.stdout + first.stderr
    second = subprocess.run([sys.executable, "-m", "itsel_ray.sweep", *args, "--set", "trial.train.threads=2"],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    return second.returncode, second.stdout + second.stderr


def fault_cases(tmp: Path) -> list[Case]:
    shim = tmp / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        "import ray\n"
        "def _slow(**kwargs):\n"
        "    raise Exception('The current node timed out during startup. This could happen because some of the '\n"
        "                    'raylet failed to startup or the GCS has become overloaded.')\n"
        "ray.init = _slow\n")
    table = ROOT.parent / "shared" / "anchors" / "paper_table7.csv"
    gt = str(table) if table.is_file() else table7(tmp, "gt_disk", lambda ls: ls)
    return [
        Case("faults", "SIGKILL of the private instance's raylet", None, "its raylet process ended",
             run=lambda: _kill_part(tmp, "raylet")),
        Case("faults", "SIGKILL of the private instance's GCS", None, "its GCS (gcs_server) process ended",
             run=lambda: _kill_part(tmp, "gcs_server")),
        Case("faults", "a disk that fills during prepare", None, "disk full writing",
             run=lambda: _full_disk(tmp, ["itsel_ray.sweep", "prepare", "--sweep", "smoke", "--storage",
                                          str(tmp / "pd"), "--set", f"trial.data.cache_dir={tmp / 'small1'}",
                                          *FAST[:-1]], tmp / "small1", "48k")),
        Case("faults", "a disk that fills during the analysis", None, "disk full writing",
             run=lambda: _full_disk(tmp, ["itsel_ray.analyze", "--selectors", "random", "size", "--out",
                                          str(tmp / "small2" / "out"), "--ground-truth", gt], tmp / "small2", "96k")),
        Case("faults", "a private instance that times out at start-up (simulated)",
             ["itsel_ray.sweep", "tune", "--sweep", "smoke", "--set", "engine=fake", "--storage", str(tmp / "to"),
              *FAST], "did not start", env={"PYTHONPATH": f"{shim}{os.pathsep}{ROOT}"}),
        Case("faults", "changing threads retrains finished trials (must not)", None, "already done",
             expect="accept", run=lambda: _threads_change(tmp)),
    ]


# ------------------------------------------------------------------------------------------------ running


LEGACY_STORAGE = ("--storage is a file", "status: no storage", "status: storage is a file")


def all_cases(tmp: Path, groups: set[str]) -> list[Case]:
    out: list[Case] = []
    if groups & {"cli/sweep", "storage"}:
        for what, argv, needle in cases(tmp):
            group = "storage" if what in LEGACY_STORAGE else "cli/sweep"
            expect = "accept" if "may be meant" in what else "error"
            out.append(Case(group, what, argv, needle, expect))
        out += new_cli_cases(tmp)
    if "data" in groups:
        out += data_cases(tmp)
    if "storage" in groups:
        out += storage_cases(tmp)
    if "faults" in groups:
        out += fault_cases(tmp)
    return [c for c in out if c.group in groups]


CLASSES = ("accepted-right", "clear", "unclear", "silent", "traceback")


def classify(case: Case, code: int, output: str) -> str:
    text = output.lower()
    if "traceback (most recent call last)" in text:
        return "traceback"
    found = case.needle.lower() in text
    if case.expect == "accept":
        return ("accepted-right" if found else "silent") if code == 0 else "unclear"
    if code == 0:
        return "clear" if found and "warning" in text else "silent"
    return "clear" if found else "unclear"


def run_case(case: Case, tmp: Path, env: dict) -> tuple[int, str, float]:
    t0 = time.time()
    if case.run is not None:
        code, output = case.run()
    else:
        try:
            done = subprocess.run([sys.executable, "-m", *case.argv], cwd=tmp, env={**env, **case.env},
                                  capture_output=True, text=True, timeout=case.timeout)
            code, output = done.returncode, done.stderr + done.stdout
        except subprocess.TimeoutExpired:
            code, output = -9, f"TIMEOUT after {case.timeout}s (a hang)"
    return code, output, time.time() - t0


def first_line(output: str) -> str:
    lines = [x for x in output.strip().splitlines() if x.strip()]
    for needle in ("Traceback", "error: ", "note: ", "warning: "):
        hits = [x for x in lines if needle in x]
        if hits:
            return (hits[-1] if needle == "Traceback" else hits[0]).strip()[:110]
    return (lines[0] if lines else "").strip()[:110]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", nargs="+", default=["data", "storage", "cli/sweep", "faults"],
                        choices=["data", "storage", "cli/sweep", "faults"])
    parser.add_argument("--only", metavar="TEXT", help="run only the cases whose description contains TEXT")
    args = parser.parse_args()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "RAY_ADDRESS": "", "RAY_TMPDIR": tempfile.gettempdir() + "/no-ray-here", "PYTHONPATH": str(ROOT),
           "ITSEL_RAY_OBJECT_STORE_MB": "256", "RAY_USAGE_STATS_ENABLED": "0"}
    tally: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for case in all_cases(tmp, set(args.groups)):
            if args.only and args.only.lower() not in case.what.lower():
                continue
            code, output, took = run_case(case, tmp, env)
            if code == -1 and output.startswith("SKIPPED"):
                print(f"{'skipped':>15}  {case.group:<9}  {case.what:<52} {output}")
                continue
            kind = classify(case, code, output)
            tally.setdefault(case.group, dict.fromkeys(CLASSES, 0))[kind] += 1
            extra = " ".join(x.strip() for x in output.splitlines() if x.startswith(("(exit ", "peak RSS")))
            print(f"{kind:>15}  {case.group:<9}  exit {code:>3}  {took:5.1f}s  {case.what:<52} {first_line(output)}"
                  + (f"  [{extra}]" if extra else ""), flush=True)
    print()
    width = max(len(c) for c in CLASSES)
    print(f"{'group':<10}" + "".join(f"{c:>{width + 2}}" for c in CLASSES) + f"{'total':>8}")
    totals = dict.fromkeys(CLASSES, 0)
    for group, counts in tally.items():
        print(f"{group:<10}" + "".join(f"{counts[c]:>{width + 2}}" for c in CLASSES) + f"{sum(counts.values()):>8}")
        for c in CLASSES:
            totals[c] += counts[c]
    print(f"{'all':<10}" + "".join(f"{totals[c]:>{width + 2}}" for c in CLASSES) + f"{sum(totals.values()):>8}")


if __name__ == "__main__":
    main()
