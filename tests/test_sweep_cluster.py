"""Joining Ray: cluster mistakes are one-line errors before Ray is touched, and the private local instance listens
on loopback only (every service, checked on the sockets of a started instance)."""

import ipaddress
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from itsel_ray.sweep.cluster import ClusterError, bootstrap_address, check_cluster, object_store_bytes, token_available


def test_object_store_is_capped(monkeypatch):
    monkeypatch.delenv("ITSEL_RAY_OBJECT_STORE_MB", raising=False)
    assert 100 * 2**20 <= object_store_bytes() <= 512 * 2**20
    monkeypatch.setenv("ITSEL_RAY_OBJECT_STORE_MB", "256")
    assert object_store_bytes() == 256 * 2**20


def test_token_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert not token_available({})
    assert token_available({"RAY_AUTH_TOKEN": "abc"})
    (tmp_path / "tok").write_text("xyz\n")
    assert token_available({"RAY_AUTH_TOKEN_PATH": str(tmp_path / "tok")})
    assert not token_available({"RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")})
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("t")
    assert token_available({})


def test_token_auth_without_a_token_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for key in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    with pytest.raises(ClusterError, match="no token was found") as err:
        check_cluster("127.0.0.1:6379")
    assert "\n" not in str(err.value)


def test_unreachable_address_and_no_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClusterError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        check_cluster(f"127.0.0.1:{port}", timeout_s=2)
    with pytest.raises(ClusterError, match="expected 'auto' or HOST:PORT"):
        check_cluster("nonsense")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    with pytest.raises(ClusterError, match="no Ray cluster is running on this node"):
        check_cluster("auto")
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text("10.1.2.3:6379\n")
    assert bootstrap_address("auto") == "10.1.2.3:6379"
    assert bootstrap_address("auto", {"RAY_ADDRESS": "ray://h:10001"}) == "h:10001"


LISTEN = textwrap.dedent("""
    import ipaddress, json, os, psutil, time
    from itsel_ray.sweep.cluster import start_local
    start_local(1, dashboard=True, object_store_memory=100 * 1024**2)
    import ray
    time.sleep(3)
    mine = {os.getpid()} | {c.pid for c in psutil.Process().children(recursive=True)}
    bound = sorted({(psutil.Process(c.pid).name(), c.laddr.ip) for c in psutil.net_connections(kind="inet")
                    if c.status == psutil.CONN_LISTEN and c.pid in mine})
    print(json.dumps(bound))
    ray.shutdown()
""")


@pytest.mark.slow
def test_local_instance_listens_on_loopback_only():
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    out = subprocess.run([sys.executable, "-c", LISTEN], capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    import json

    bound = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(bound) >= 4, bound  # GCS, raylet, workers, dashboard and agents all listen somewhere
    for name, ip in bound:
        addr = ipaddress.ip_address(ip)
        addr = addr.ipv4_mapped or addr if isinstance(addr, ipaddress.IPv6Address) else addr
        assert addr.is_loopback, f"{name} listens on {ip}"
