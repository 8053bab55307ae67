"""`itsel-ray data import TASK FILES... --out MIRROR`: a task's official distribution files -> a local mirror.

The files are converted into the rows the Hub's parquet conversion holds (`data.official`: label ids in the Hub's
class order, MultiRC one row per answer, ReCoRD's entities and answers, DROP's answers_spans, the wsc.fixed span
repair) and written in the Hub's repository layout under `<out>/<dataset id>/<config>/<split>-00000-of-00001.parquet`,
which `data.mirror` (or $ITSEL_RAY_DATA_MIRROR) then reads (docs/data.md). Local JSON-lines tasks (CR) are checked
and copied to `<out>/<folder>/<file>`. Each file is written to a temporary name and renamed into place. Then every
row of the task's declared splits is read back through the mirror and formatted as the task formats it, so a
conversion that the task cannot use fails here, not in a trial. Errors are one line naming the file, line or
record (exit 2); a disk that fills names the file (exit 3).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from itsel_ray.artifacts import UMASK
from itsel_ray.data.official import FORMATS, OfficialFormat, OfficialFormatError, Tally
from itsel_ray.registry import UnknownNameError
from itsel_ray.tasks.mirror import MIRROR_ENV, Mirror
from itsel_ray.tasks.rows import ArrowRows, ListRows, RowFileError, Rows, read_jsonl
from itsel_ray.tasks.spec import TaskDataError, TaskSpec, split_source

SHARD = "{split}-00000-of-00001.parquet"
BATCH = 20_000  # rows per parquet row group (and held in memory at once)


class ImportError_(ValueError):
    """A bad argument or input file for `data import`; the message names it."""


@dataclass
class Written:
    split: str  # the dataset's split name
    rows: int
    sources: list[Path]
    path: Path


@dataclass
class ImportReport:
    task: str
    dataset: str
    written: list[Written] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    checked: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def lines(self, out: Path) -> list[str]:
        lines = [f"{self.task} ({self.dataset}):"]
        for w in self.written:
            src = ", ".join(str(s) for s in w.sources[:2]) + (f" ... ({len(w.sources)} files)" if len(w.sources) > 2
                                                             else "")
            lines.append(f"  {w.split:<22} {w.rows:>9,} rows  <- {src}")
            lines.append(f"  {'':<22} {'':>9}       -> {w.path}")
        lines += [f"  {line}" for line in self.tally.lines()]
        lines += [f"  checked: {line}" for line in self.checked]
        lines += [f"  not imported: {line}" for line in self.missing]
        lines.append(f"use it: data.mirror: {out}  (or {MIRROR_ENV}={out})")
        return lines


# ------------------------------------------------------------------------------------------------ which files


def expand(paths: Iterable[str], fmt: OfficialFormat | None) -> list[tuple[str | None, Path]]:
    """(forced split or None, file) for each argument: SPLIT=PATH forces the split; a folder is expanded the way
    the dataset's distribution lays it out (RACE: every article file below it)."""
    out = []
    for arg in paths:
        forced, sep, rest = arg.partition("=")
        forced, path = (forced, Path(rest)) if sep and forced and "/" not in forced else (None, Path(arg))
        path = path.expanduser()
        if not path.exists():
            raise ImportError_(f"{path}: no such file or folder")
        if path.is_dir():
            files = fmt.expand(path) if fmt else sorted(p for p in path.iterdir() if p.is_file())
            if not files:
                expected = f"; expected {fmt.files}" if fmt else ""
                raise ImportError_(f"{path}: no {fmt.dataset + ' ' if fmt else ''}files in this folder{expected}")
            out += [(forced, f) for f in files]
        else:
            out.append((forced, path))
    return out


def group_by_split(files: list[tuple[str | None, Path]], fmt: OfficialFormat, config: str | None,
                   tally: Tally) -> dict[str, list[Path]]:
    splits: dict[str, list[Path]] = {}
    for forced, path in files:
        split = forced or fmt.split_of(path, config)
        if split is None:
            tally.ignored.append(f"{path} (not a file of config {config or 'default'}: {fmt.files})")
            continue
        splits.setdefault(split, []).append(path)
    if not splits:
        raise ImportError_(f"none of the files is a {fmt.dataset} file of config {config or 'default'}; expected "
                           f"{fmt.files} (or SPLIT=PATH)")
    return splits


# ------------------------------------------------------------------------------------------------ writing


def _temp_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~UMASK)
    os.close(fd)
    return Path(tmp)


def write_parquet_rows(path: Path, rows: Iterable[dict], schema: pa.Schema) -> tuple[Path, int]:
    """Stream `rows` into a temporary parquet file beside `path` (row groups of BATCH rows); (its path, rows).
    The caller renames it into place once it has been checked."""
    tmp = _temp_beside(path)
    n = 0
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            batch: list[dict] = []
            for row in rows:
                batch.append(row)
                if len(batch) >= BATCH:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    n, batch = n + len(batch), []
            if batch or n == 0:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                n += len(batch)
        return tmp, n
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def copy_file(source: Path, dest: Path) -> None:
    tmp = _temp_beside(dest)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _convert_rows(fmt: OfficialFormat, files: list[Path], split: str, config: str | None, tally: Tally):
    for path in files:
        try:
            yield from fmt.read(path, split, config, tally)
        except OfficialFormatError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
            raise OfficialFormatError(f"{path}: not a {fmt.dataset} file as its distribution writes it "
                                      f"({type(err).__name__}: {str(err)[:120]}); expected {fmt.files}") from None


# ------------------------------------------------------------------------------------------------ the command


def import_task(spec: TaskSpec, paths: Sequence[str], out: Path) -> ImportReport:
    """Convert `paths` for `spec` into mirror `out`: every split is written to a temporary file, checked (every row
    of the task's declared splits formats), and only then renamed into place; returns what was done."""
    if spec.data.kind == "json":
        return _import_json(spec, paths, out)
    if spec.data.kind != "hub":
        raise ImportError_(f"task {spec.name} reads {spec.data.kind} data ({spec.data.path}); there is nothing to "
                           "import")
    try:
        fmt = FORMATS.get(spec.data.path)
    except UnknownNameError:
        raise ImportError_(f"task {spec.name} reads {spec.data.path}, which has no converter; convertible datasets: "
                           f"{', '.join(FORMATS.names())}") from None
    config = spec.data.name
    report = ImportReport(spec.name, f"{spec.data.path}" + (f", config {config}" if config else ""))
    splits = group_by_split(expand(paths, fmt), fmt, config, report.tally)
    folder = out / spec.data.path / fmt.folder(config)
    staged: dict[str, tuple[Path, Path]] = {}
    try:
        for split, files in sorted(splits.items()):
            dest = folder / SHARD.format(split=split)
            tmp, n = write_parquet_rows(dest, _convert_rows(fmt, files, split, config, report.tally),
                                        fmt.schema(config))
            staged[split] = (tmp, dest)
            report.written.append(Written(split, n, files, dest))
        _check(spec, report, {split: ArrowRows(pq.read_table(tmp), str(tmp)) for split, (tmp, _) in staged.items()})
        for tmp, dest in staged.values():
            os.replace(tmp, dest)
    finally:
        for tmp, _ in staged.values():
            tmp.unlink(missing_ok=True)
    _found_by_the_mirror(spec, out, report)
    return report


def _import_json(spec: TaskSpec, paths: Sequence[str], out: Path) -> ImportReport:
    """Local JSON-lines tasks: check each file (UTF-8, one object per line, the task's columns, every row formats)
    and copy it to its declared name."""
    from itsel_ray.data.official import split_from_name

    report = ImportReport(spec.name, f"local JSON lines {spec.data.path}/")
    chosen: dict[str, tuple[Path, ListRows]] = {}
    for forced, path in expand(paths, None):
        split = split_from_name(path)
        logical = forced or ("train" if split == "train" else "validation" if split else None)
        name = spec.data.splits.get(logical) if logical else None
        if not name:
            report.tally.ignored.append(f"{path} (expected {', '.join(spec.data.splits.values())})")
            continue
        try:
            chosen[name] = (path, read_jsonl(path))
        except RowFileError as err:
            raise ImportError_(str(err)) from None
    if not chosen:
        raise ImportError_(f"none of the files is a {spec.name} file; expected {', '.join(spec.data.splits.values())}"
                           " (JSON lines)")
    _check(spec, report, {name: rows for name, (_, rows) in chosen.items()})
    for name, (path, rows) in chosen.items():
        dest = out / spec.data.path / name
        copy_file(path, dest)
        report.written.append(Written(name, len(rows), [path], dest))
    _found_by_the_mirror(spec, out, report)
    return report


def _check(spec: TaskSpec, report: ImportReport, staged: dict[str, Rows]) -> None:
    """Every declared split among `staged` (dataset split name -> rows): the task's columns are there, no cell is
    null, no text column is empty, no row is runaway, and every row formats as the task formats it."""
    from itsel_ray.data.checks import scan_columns

    for logical, name in spec.data.splits.items():
        if name not in staged:
            report.missing.append(f"the {logical} split ({name}); give its file too")
            continue
        rows = staged[name]
        if len(rows) == 0:
            raise ImportError_(f"the {logical} split ({name}) converted to no rows; are these the right files?")
        try:
            spec.check_columns(rows.column_names, split=logical)
        except TaskDataError as err:
            raise ImportError_(f"the converted rows do not fit task {spec.name}: {err}") from None
        found = scan_columns(spec, rows, logical)
        if found.problems:
            raise ImportError_("the converted rows cannot be used: " + "; ".join(found.problems))
        errors, n_examples, start = [], 0, 0
        for batch in rows.batches(2048):
            for i, row in enumerate(batch, start):
                try:
                    n_examples += len(spec.examples_from_rows([row], split=logical, columns=rows.column_names,
                                                              where=logical, start=i))
                except TaskDataError as err:
                    errors.append(str(err))
            start += len(batch)
        if errors:
            raise ImportError_(f"{len(errors):,} of {len(rows):,} converted {logical} rows do not format as task "
                               f"{spec.name}; first: {errors[0]}")
        report.checked.append(f"{logical} ({name}): {len(rows):,} rows format into {n_examples:,} {spec.name} examples"
                              + "".join(f"; {w}" for w in found.warnings))


def _found_by_the_mirror(spec: TaskSpec, out: Path, report: ImportReport) -> None:
    """The written files are the ones the mirror finds for the task (the layout agrees with the declaration)."""
    written = {w.split: w.path for w in report.written}
    for logical, name in spec.data.splits.items():
        if name not in written:
            continue
        source = split_source(spec, logical, data_dir=str(out), mirror=Mirror(str(out)))
        if written[name].resolve() not in [Path(f).resolve() for f in source.files]:
            raise ImportError_(f"the mirror finds {source.origin} for the {logical} split of {spec.name}, not the "
                               f"file written ({written[name]}); remove the other files there")


def build_parser(prog: str = "itsel-ray data import") -> argparse.ArgumentParser:
    formats = "\n".join(f"  {f.dataset:<20} {f.files}" for f in (FORMATS.get(n) for n in FORMATS.names()))
    p = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Convert a task's official distribution files into a local mirror of the Hub dataset.",
        epilog=f"official formats (by the dataset a task declares):\n{formats}\n  local JSON lines     CR: train.jsonl, "
               "test.jsonl\n\nexamples:\n  itsel-ray data import mnli MNLI/ --out /data/mirror\n"
               "  itsel-ray data import wsc WSC/train.jsonl WSC/val.jsonl --out /data/mirror\n"
               "  itsel-ray data import race RACE/ --out /data/mirror\n"
               "  itsel-ray data import rte validation=my_dev.tsv RTE/train.tsv --out /data/mirror\n\n"
               "exit status: 0 written and checked, 2 bad task, file or row, 3 cannot write (disk full, permissions)")
    p.add_argument("task", metavar="TASK", help="a declared task (its dataset decides the converter)")
    p.add_argument("files", nargs="+", metavar="FILE|FOLDER|SPLIT=FILE",
                   help="the official files or their folder; SPLIT=FILE names the dataset split of a file")
    p.add_argument("--out", metavar="MIRROR", help=f"the mirror root (default: ${MIRROR_ENV})")
    return p


def main(argv: Sequence[str] | None = None, *, prog: str = "itsel-ray data import") -> int:
    args = build_parser(prog).parse_args(argv)
    out = args.out if args.out is not None else os.environ.get(MIRROR_ENV)
    if not out or not out.strip():
        print(f"error: give --out MIRROR (or set ${MIRROR_ENV}): the mirror root to write into", file=sys.stderr)
        return 2
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        print(f"error: --out {out} is a file, not a folder", file=sys.stderr)
        return 2
    from itsel_ray.tasks import get_task

    try:
        report = import_task(get_task(args.task), args.files, out)
    except (UnknownNameError, ImportError_, OfficialFormatError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        from itsel_ray.disk import describe_os_error

        print(f"error: {describe_os_error(err)}", file=sys.stderr)
        return 3
    print("\n".join(report.lines(out)))
    return 0


def data_main(argv: Sequence[str] | None = None) -> int:
    """`itsel-ray data SUBCOMMAND`: only `import` so far."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: itsel-ray data import TASK FILES... --out MIRROR   (itsel-ray data import --help)")
        return 0 if args else 2
    if args[0] != "import":
        print(f"error: unknown data command {args[0]!r}; valid: import", file=sys.stderr)
        return 2
    return main(args[1:])


if __name__ == "__main__":
    sys.exit(data_main())
