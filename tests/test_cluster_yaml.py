"""cluster.yaml passes the offline validation `ray up` runs (and Ray's shipped JSON schema); broken copies fail."""

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def load() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def ray_up_validate(cfg: dict) -> dict:
    """The same calls `ray up` makes before it touches a cloud: merge provider defaults, then validate."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(cfg))
    validate_config(prepared)
    return prepared


def schema_validate(cfg: dict) -> None:
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(cfg, schema)


def test_cluster_yaml_is_valid():
    cfg = load()
    schema_validate(cfg)
    prepared = ray_up_validate(cfg)
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_cluster_yaml_has_gpu_workers_token_auth_and_the_project():
    cfg = load()
    workers = [t for name, t in cfg["available_node_types"].items() if name != cfg["head_node_type"]]
    assert any(t["resources"].get("GPU", 0) >= 1 and t.get("min_workers", 0) >= 1 for t in workers)
    assert cfg["available_node_types"][cfg["head_node_type"]]["resources"].get("CPU") == 0
    text = (ROOT / "cluster.yaml").read_text()
    assert "RAY_AUTH_MODE=token" in " ".join(cfg["head_start_ray_commands"])
    assert "RAY_AUTH_MODE=token" in " ".join(cfg["worker_start_ray_commands"])
    assert any("auth_token" in k for k in cfg["file_mounts"])
    assert any("pip install -e" in c for c in cfg["setup_commands"])
    assert "shared storage" in text.lower() or "Shared storage" in text


@pytest.mark.parametrize("breakage", ["typo", "fractional_cpu", "bad_head_type"])
def test_broken_copies_fail(breakage):
    cfg = load()
    if breakage == "typo":
        cfg["setup_commandz"] = cfg.pop("setup_commands")
    elif breakage == "fractional_cpu":
        cfg["available_node_types"]["gpu_worker"]["resources"]["CPU"] = 0.5
    else:
        cfg["head_node_type"] = "no_such_type"
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        ray_up_validate(cfg)
    if breakage != "bad_head_type":  # the plain schema cannot see cross-field rules
        with pytest.raises(jsonschema.ValidationError):
            schema_validate(cfg)


LEAVE_OUT = [".env", "prod.env", ".git/config", "runs/demo/tune/x/state.pt", "results/results.parquet",
             "data/mnli/train.parquet", "mlruns/0/meta.yaml", "wandb/run-1/files", "secrets/token", "id.pem",
             "prompts/mnli.safetensors", ".venv/bin/python"]
KEEP = ["itsel_ray/data/__init__.py", "itsel_ray/runs/storage.py", "sweeps/paper.yaml", "analysis/paper.yaml",
        "tests/fixtures/tasks/mnli.json", "README.md", "cluster.yaml", "pyproject.toml"]


def test_rayignore_leaves_out_secrets_data_stores_and_git_but_not_the_project():
    """`ray job submit --working-dir .` reads .rayignore with Ray's own matcher."""
    pathspec = pytest.importorskip("ray._private.thirdparty.pathspec")
    spec = pathspec.PathSpec.from_lines("gitwildmatch", (ROOT / ".rayignore").read_text().splitlines())
    assert [p for p in LEAVE_OUT if not spec.match_file(p)] == []
    assert [p for p in KEEP if spec.match_file(p)] == []


def test_rsync_exclude_leaves_out_what_rayignore_does():
    excluded = {p.strip("/") for p in load()["rsync_exclude"]}
    ignored = {line.strip().strip("/") for line in (ROOT / ".rayignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert ignored - {"__pycache__"} <= excluded | {"**/__pycache__"}, sorted(ignored - excluded)
