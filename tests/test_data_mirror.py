"""Which files of a local mirror hold a split: every accepted Hub layout, shard order, and the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from itsel_ray.tasks.mirror import MIRROR_ENV, Mirror, MirrorError, file_stamps, read_parquet, split_files
from tests.mirrors import write_parquet


def touch(folder: Path, *paths: str) -> None:
    for p in paths:
        write_parquet(folder / p, [{"x": 1}])


@pytest.mark.parametrize("config,files,split,expected", [
    # the repository layout of push_to_hub datasets (GLUE, SuperGLUE, WinoGrande, RACE)
    ("mnli", ["mnli/train-00000-of-00001.parquet", "mnli/validation_matched-00000-of-00001.parquet",
              "mnli/validation_mismatched-00000-of-00001.parquet"], "validation_mismatched",
     ["mnli/validation_mismatched-00000-of-00001.parquet"]),
    # sharded splits come back in shard order
    ("qqp", ["qqp/train-00001-of-00002.parquet", "qqp/train-00000-of-00002.parquet"], "train",
     ["qqp/train-00000-of-00002.parquet", "qqp/train-00001-of-00002.parquet"]),
    # the refs/convert/parquet export: <config>/<split>/NNNN.parquet
    (None, ["default/train/0001.parquet", "default/train/0000.parquet", "default/validation/0000.parquet"], "train",
     ["default/train/0000.parquet", "default/train/0001.parquet"]),
    # default-config repos: data/ (DROP, HellaSwag), a named folder (SQuAD's plain_text), or the folder itself
    (None, ["data/train-00000-of-00001.parquet", "data/validation-00000-of-00001.parquet"], "validation",
     ["data/validation-00000-of-00001.parquet"]),
    (None, ["plain_text/train-00000-of-00001.parquet"], "train", ["plain_text/train-00000-of-00001.parquet"]),
    (None, ["train-00000-of-00001.parquet", "test-00000-of-00001.parquet"], "train", ["train-00000-of-00001.parquet"]),
    # one file per split, and the export's older names
    ("wic", ["wic/train.parquet", "wic/validation.parquet"], "train", ["wic/train.parquet"]),
    ("SelfRC", ["SelfRC/duorc-train.parquet", "SelfRC/duorc-test.parquet"], "train", ["SelfRC/duorc-train.parquet"]),
])
def test_accepted_layouts(tmp_path, config, files, split, expected):
    touch(tmp_path, *files)
    assert split_files(tmp_path, config, split) == [tmp_path / e for e in expected]


def test_a_declared_config_is_the_only_folder_looked_in(tmp_path):
    touch(tmp_path, "boolq/train-00000-of-00001.parquet", "cb/train-00000-of-00001.parquet")
    assert split_files(tmp_path, "cb", "train") == [tmp_path / "cb/train-00000-of-00001.parquet"]


def test_several_config_folders_without_a_declared_config_is_an_error(tmp_path):
    touch(tmp_path, "boolq/train-00000-of-00001.parquet", "cb/train-00000-of-00001.parquet")
    with pytest.raises(MirrorError, match=r"several config folders .* \(boolq, cb\); declare the dataset's config"):
        split_files(tmp_path, None, "train")


def test_a_missing_split_lists_the_patterns_tried(tmp_path):
    touch(tmp_path, "mnli/train-00000-of-00001.parquet")
    with pytest.raises(MirrorError, match=r"no parquet files for split 'validation_matched' in .*; looked for "
                                          r"mnli/validation_matched-\*\.parquet, mnli/validation_matched/\*\.parquet"):
        split_files(tmp_path, "mnli", "validation_matched")
    with pytest.raises(MirrorError, match=r"\(the folder does not exist\)"):
        split_files(tmp_path / "nope", "mnli", "train")


def test_hidden_folders_are_not_configs(tmp_path):
    touch(tmp_path, "data/train-00000-of-00001.parquet", ".cache/huggingface/train-00000-of-00001.parquet")
    assert split_files(tmp_path, None, "train") == [tmp_path / "data/train-00000-of-00001.parquet"]


def test_mirror_root_per_task_folders_and_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    assert not Mirror.of(None) and Mirror.of(None).folder("mnli", "nyu-mll/glue") is None
    m = Mirror.of(tmp_path / "root", {"rte": str(tmp_path / "rte-copy")})
    assert m.folder("mnli", "nyu-mll/glue") == tmp_path / "root" / "nyu-mll" / "glue"
    assert m.folder("rte", "nyu-mll/glue") == tmp_path / "rte-copy"
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "env"))
    assert Mirror.of(None).folder("cb", "aps/super_glue") == tmp_path / "env" / "aps" / "super_glue"
    assert Mirror.of(m).tasks == m.tasks and Mirror.of(m).root == m.root


def test_shards_read_as_one_table_and_stamps_see_a_rewrite(tmp_path):
    write_parquet(tmp_path / "a.parquet", [{"x": 1}, {"x": 2}])
    write_parquet(tmp_path / "b.parquet", [{"x": 3}])
    files = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    assert read_parquet(files).column("x").to_pylist() == [1, 2, 3]
    before = file_stamps(files)
    write_parquet(tmp_path / "b.parquet", [{"x": 3}, {"x": 4}])
    assert file_stamps(files) != before and file_stamps(files)[0] == before[0]
