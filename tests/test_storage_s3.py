"""The storage layer on a real S3 server (moto on loopback, reached through AWS_ENDPOINT_URL as AWS would be):
put/get/list, one object put per file, the driver lock's conditional writes, the one-line errors before any trial
(missing bucket, wrong endpoint, denied write, credentials in the URI), node-local copies fetched once, and the
analysis reading a stored results folder."""

import json
import os
import threading
import uuid

import numpy as np
import pandas as pd
import pytest

from itsel_ray.runs import node_cache
from itsel_ray.runs.lock import DriverLock, LockedError, holder
from itsel_ray.runs.storage import Storage, StorageError, sweep_root
from tests.s3_server import free_port


@pytest.fixture
def s3(s3_server):
    return s3_server


@pytest.fixture
def bucket(s3):
    return s3.make_bucket(f"b-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def store(bucket, tmp_path, monkeypatch):
    monkeypatch.setenv(node_cache.NODE_CACHE_ENV, str(tmp_path / "node"))
    return sweep_root(f"s3://{bucket}/runs", "smoke")


def puts(s3, key_part: str):
    return [r for r in s3.requests if r.method == "PUT" and key_part in r.key]


def test_put_get_list_remove(store):
    assert store.remote and store.read_bytes("a/b.json") is None and not store.exists("a/b.json")
    store.write_json("a/b.json", {"x": 1})
    store.write_bytes("a/c.bin", b"\x00" * 10)
    store.write_bytes("a/d/e.txt", b"e")
    assert store.read_json("a/b.json") == {"x": 1} and store.size("a/c.bin") == 10
    assert store.list_files("a") == ["a/b.json", "a/c.bin"]
    assert store.list_folders("a") == ["d"] and store.list_folders() == ["a"]
    assert set(store.list_tree("a")) == {"a/b.json", "a/c.bin", "a/d/e.txt"}
    assert store.list_files("nothing/here") == [] and store.list_tree("nothing") == {}
    store.remove("a/d")
    store.remove("a/b.json")
    store.remove("never/was")
    assert store.list_files("a") == ["a/c.bin"] and store.read_json_checked("a/b.json") == (None, False)
    store.write_bytes("bad.json", b"{not json")
    assert store.read_json_checked("bad.json") == (None, True)


def test_each_file_is_one_object_put(store, s3):
    """A reader sees the old object or the whole new one: a file is one PUT (no folder markers, no append); a file
    larger than a multipart part is one multipart upload, which S3 shows only once complete."""
    s3.reset_log()
    store.write_json("w/result.json", {"status": "done"})
    store.write_bytes("w/prompts/step_000010.safetensors", b"\x01" * 300_000)
    assert [(r.method, r.key.removeprefix("runs/smoke/"), r.query) for r in s3.requests] == [
        ("PUT", "w/result.json", ""), ("PUT", "w/prompts/step_000010.safetensors", "")]
    data = np.random.default_rng(0).bytes(12 * 1024**2)
    s3.reset_log()
    store.write_bytes("w/state.pt", data)
    kinds = [(r.method, r.query.split("=")[0]) for r in s3.requests]
    assert kinds[0] == ("POST", "uploads") and kinds[-1] == ("POST", "uploadId"), kinds
    assert store.read_bytes("w/state.pt") == data


def test_check_usable_errors_are_one_line(s3, bucket, monkeypatch):
    Storage(f"s3://{bucket}/runs/x").check_usable()  # writable: the probe object is put and deleted
    assert Storage(f"s3://{bucket}/runs/x").list_tree("") == {}
    with pytest.raises(StorageError, match=r"bucket 'no-such-bucket-1' does not exist") as err:
        Storage("s3://no-such-bucket-1/runs/x").check_usable()
    assert "\n" not in str(err.value)
    s3.deny_writes(bucket)
    try:
        with pytest.raises(StorageError, match="is not writable") as err:
            Storage(f"s3://{bucket}/runs/x").check_usable()
        assert "\n" not in str(err.value) and s3.secret not in str(err.value)
    finally:
        s3.deny_writes(bucket, False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StorageError, match="cannot be reached") as err:
        Storage(f"s3://{bucket}/runs/x").check_usable()
    assert "\n" not in str(err.value) and "endpoint http://127.0.0.1" in str(err.value)


def test_credentials_in_the_uri_are_refused(bucket):
    with pytest.raises(StorageError, match="carries credentials") as err:
        Storage(f"s3://AKIAX:supersecret@{bucket}/runs")
    assert "supersecret" not in str(err.value)


def test_driver_lock_is_a_conditional_object(store, s3):
    """Of two drivers, one holds the lock; the other is refused naming it. The lock object is created with
    If-None-Match and heartbeats only replace the object this driver wrote (If-Match)."""
    first = DriverLock(store, "transfer").acquire()
    try:
        assert first.mode == "conditional" and holder(store).pid == os.getpid()
        second = DriverLock(store, "tune")
        with pytest.raises(LockedError, match=f"pid {os.getpid()}"):
            second.acquire()
        # an object that changed under the holder: its heartbeat notices, its release leaves the object alone
        assert first.beat()
        store.write_json("driver.lock", {"host": "elsewhere", "pid": 1, "started": 0.0, "heartbeat": 1e12})
        assert not first.beat()
        assert first.lost and holder(store).host == "elsewhere"
    finally:
        first.release()
    assert holder(store).host == "elsewhere"  # not deleted: it was not this driver's any more
    store.remove("driver.lock")
    assert holder(store) is None


def test_lock_race_has_one_winner(store):
    """Drivers racing for a free lock: the conditional create lets exactly one through."""
    locks = [DriverLock(store, f"d{i}") for i in range(4)]
    won, refused, barrier = [], [], threading.Barrier(4)

    def go(lock):
        barrier.wait()
        try:
            lock._acquire_object()
            won.append(lock)
        except LockedError:
            refused.append(lock)

    threads = [threading.Thread(target=go, args=(lk,)) for lk in locks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == 3


def test_dead_drivers_lock_is_taken_over(store):
    store.write_json("driver.lock", {"host": "gone-host", "pid": 1, "started": 0.0, "heartbeat": 0.0})
    lock = DriverLock(store, "transfer").acquire()
    try:
        assert holder(store).pid == os.getpid()
    finally:
        lock.release()
    assert holder(store) is None


def test_fetch_folder_once_per_node(store, s3, tmp_path):
    """Concurrent readers on one node: one fetch, and nobody sees the folder before it is complete."""
    for i in range(5):
        store.write_bytes(f"prepared/t/k1/train/a{i}.npy", bytes([i]) * 1000)
    dest = tmp_path / "copy" / "t" / "k1"
    s3.reset_log()
    seen, barrier = [], threading.Barrier(6)

    def read():
        barrier.wait()
        node_cache.fetch_folder(store, "prepared/t/k1", dest, "v1")
        seen.append(sorted(p.name for p in (dest / "train").iterdir()))

    threads = [threading.Thread(target=read) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gets = [r for r in s3.requests if r.method == "GET" and r.key.endswith(".npy")]
    assert len(gets) == 5 and all(s == [f"a{i}.npy" for i in range(5)] for s in seen)
    store.write_bytes("prepared/t/k1/train/a0.npy", b"new")
    node_cache.fetch_folder(store, "prepared/t/k1", dest, "v2")  # a new version replaces the copy
    assert (dest / "train" / "a0.npy").read_bytes() == b"new"
    with pytest.raises(FileNotFoundError):
        node_cache.fetch_folder(store, "prepared/none", tmp_path / "copy" / "none", "v1")


def test_progress_log_and_attempts_on_the_store(store):
    from itsel_ray.runs.progress import ProgressLog, latest_run

    log = ProgressLog(store, "tune", "run-1")
    log.write("run", total=2, todo=2)
    log.write("trial", trial="tune/a/seed=1", state="done")
    log.write("end", outcome="complete")
    log.flush()
    run = latest_run(store, "tune")
    assert run.run == "run-1" and run.states == {"tune/a/seed=1": "done"} and run.ended["outcome"] == "complete"
    assert store.list_files("progress/tune.d") == ["progress/tune.d/run-1.jsonl"]  # the ended run: one object
    later = ProgressLog(store, "tune", "run-2")
    later.write("run", total=2, todo=1)
    later.write("trial", trial="tune/a/seed=2", state="running")  # buffered: the last put was just now
    assert latest_run(store, "tune").states == {}
    later._last_flush -= 1.0
    later.flush_due()  # what the stage's Tune callback calls at every step: a second later, it is stored
    # a compaction cut short (the merged object put, the batches not yet deleted) reads the same
    store.write_bytes("progress/tune.d/run-2.jsonl", b"".join(store.read_bytes(k) for k in
                                                              store.list_files("progress/tune.d") if "run-2-" in k))
    run = latest_run(store, "tune")
    assert run.run == "run-2" and run.states == {"tune/a/seed=2": "running"} and run.todo == 1


def test_analysis_reads_a_stored_results_folder(store, s3, tmp_path, capsys):
    """`study_from_sweep` and `rank` take an s3:// results folder: its tables and the tune prompts they name are
    fetched once into a node-local copy (the transfer runs' prompts are not), and refetched only when changed."""
    from itsel_ray.analysis.from_sweep import source_library_from_sweep
    from itsel_ray.artifacts import prompt_to_bytes
    from itsel_ray.runs.tables import HEAD, TAIL

    rng = np.random.default_rng(1)
    rows, prompt_rows = [], []
    for source in ("syn_has0", "syn_has1"):
        key = f"tune/{source}/seed=42"
        store.write_bytes(f"{key}/best.safetensors", prompt_to_bytes(rng.normal(size=(4, 8)).astype(np.float32)))
        rows.append(dict(stage="tune", role="source", task=source, source="", target="", seed=42, status="done",
                         score=50.0, best_step=10, steps=20, wall_s=1.0, trial_dir=f"../{key}",
                         best_prompt=f"../{key}/best.safetensors"))
        prompt_rows.append(dict(stage="tune", role="source", task=source, source="", seed=42, step=10,
                                path=f"../{key}/best.safetensors", is_best=True))
    for source, score in (("syn_has0", 60.0), ("syn_has1", 40.0)):
        key = f"transfer/{source}__syn_and01/seed=28"
        store.write_bytes(f"{key}/best.safetensors", b"not fetched")
        rows.append(dict(stage="transfer", role="transfer", task="syn_and01", source=source, target="syn_and01",
                         seed=28, status="done", score=score, best_step=10, steps=20, wall_s=1.0,
                         trial_dir=f"../{key}", best_prompt=f"../{key}/best.safetensors"))
    key = "tune/syn_and01/seed=28"
    store.write_bytes(f"{key}/prompts/step_000010.safetensors",
                      prompt_to_bytes(rng.normal(size=(4, 8)).astype(np.float32)))
    rows.append(dict(stage="tune", role="target", task="syn_and01", source="", target="syn_and01", seed=28,
                     status="done", score=30.0, best_step=10, steps=20, wall_s=1.0, trial_dir=f"../{key}",
                     best_prompt=f"../{key}/prompts/step_000010.safetensors"))
    prompt_rows.append(dict(stage="tune", role="target", task="syn_and01", source="", seed=28, step=10,
                            path=f"../{key}/prompts/step_000010.safetensors", is_best=False))
    for stem, df in (("results", pd.DataFrame(rows, columns=HEAD + TAIL)), ("prompts", pd.DataFrame(prompt_rows))):
        store.write_bytes(f"results/{stem}.csv", df.to_csv(index=False).encode())
    s3.reset_log()
    names, prompts = source_library_from_sweep(store.path("results"))
    assert names == ("syn_has0", "syn_has1") and prompts.shape == (2, 4, 8)
    fetched = sorted(r.key.removeprefix("runs/smoke/") for r in s3.requests if r.method == "GET" and "list-type" not in r.query
                     and r.key)
    assert fetched == ["results/prompts.csv", "results/results.csv",
                       "tune/syn_and01/seed=28/prompts/step_000010.safetensors",
                       "tune/syn_has0/seed=42/best.safetensors", "tune/syn_has1/seed=42/best.safetensors"], fetched
    s3.reset_log()
    source_library_from_sweep(store.path("results"))  # nothing changed: listings only
    assert not [r for r in s3.requests if r.method == "GET" and "list-type" not in r.query and r.key]

    from itsel_ray.rank import main as rank

    target = store.path("tune/syn_has1/seed=42/best.safetensors")
    assert rank(["--library", store.path("results"), "--target-prompt", target, "--format", "json"]) == 0
    assert rank(["--library", f"s3://{store.root.split('/')[2]}/missing/results", "--target-prompt", target]) == 2

    for name in ("alpha", "beta"):  # a library that is a folder of prompt files
        store.write_bytes(f"lib/{name}.safetensors", prompt_to_bytes(rng.normal(size=(4, 8)).astype(np.float32)))
    assert rank(["--library", store.path("lib"), "--target-prompt", target, "--format", "csv"]) == 0
    store.remove("lib/beta.safetensors")
    store.write_bytes("lib/gamma.safetensors", prompt_to_bytes(rng.normal(size=(4, 8)).astype(np.float32)))
    capsys.readouterr()
    assert rank(["--library", store.path("lib"), "--target-prompt", target, "--format", "csv"]) == 0
    assert sorted(line.split(",")[1] for line in capsys.readouterr().out.splitlines()[1:]) == ["alpha", "gamma"]

    from itsel_ray.analyze import main as analyze

    out = store.path("my-analysis")
    args = ["--results", store.path("results"), "--out", out, "--selectors", "size", "max", "--steps", "10",
            "--step", "10"]
    assert analyze(args) == 0
    assert store.exists("my-analysis/report.md") and store.exists("my-analysis/analysis_config.json")
    assert analyze(args) == 0  # replaces its own output
    assert analyze([*args[:2], "--out", store.path("results"), *args[4:]]) == 2  # never replaces other files


def test_status_of_a_store(store, bucket, capsys):
    from itsel_ray.sweep.cli import main

    assert main(["status", "--storage", f"s3://{bucket}/runs"]) == 0
    assert "no sweeps under" in capsys.readouterr().out
    assert main(["status", "--storage", "s3://no-such-bucket-2/runs"]) == 2
    assert "bucket 'no-such-bucket-2' does not exist" in capsys.readouterr().err


def test_trial_actors_get_no_credentials_in_their_runtime_env(monkeypatch):
    """Ray Tune would copy AWS_* from the driver into each trial actor's runtime env, which Ray logs in plain text
    and shows on the dashboard; the sweep's trainable module stops that."""
    import itsel_ray.sweep.trainable  # noqa: F401
    from ray.tune.execution.class_cache import _ActorClassCache

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "never-in-a-runtime-env")

    class Trainable:
        pass

    options = _ActorClassCache().get(Trainable)._default_options
    assert "never-in-a-runtime-env" not in json.dumps(options.get("runtime_env") or {}, default=str)
