"""A real S3 server on loopback for tests and benchmarks: moto's S3 backend served over HTTP in a thread, with a
request log kept at the server (method, key, bytes in and out) and a switch that denies writes to chosen buckets.

Clients reach it as they reach AWS: `AWS_ENDPOINT_URL` (pyarrow, boto3 and Tune follow it) and fake credentials
in the environment (`env()`); nothing in the client is mocked.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote

DENIED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied'
          b'</Message></Error>')


@dataclass
class Request:
    method: str
    bucket: str
    key: str
    query: str
    bytes_in: int
    bytes_out: int = 0
    status: int = 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class _Counting:
    """WSGI middleware around moto's app: logs every request, denies writes to `deny` buckets."""

    app: object
    log: list = field(default_factory=list)
    deny: set = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ, start_response):
        path = unquote(environ.get("PATH_INFO", ""))
        bucket, _, key = path.lstrip("/").partition("/")
        req = Request(environ["REQUEST_METHOD"], bucket, key, environ.get("QUERY_STRING", ""),
                      int(environ.get("HTTP_X_AMZ_DECODED_CONTENT_LENGTH") or environ.get("CONTENT_LENGTH") or 0))
        with self.lock:
            self.log.append(req)
        if bucket in self.deny and req.method in ("PUT", "POST", "DELETE"):
            start_response("403 Forbidden", [("Content-Type", "application/xml"),
                                             ("Content-Length", str(len(DENIED)))])
            req.status = 403
            return [DENIED]

        def start(status, headers, exc_info=None):
            req.status = int(status.split()[0])
            return start_response(status, headers, exc_info)

        body = self.app(environ, start)
        out = []
        try:
            for chunk in body:
                req.bytes_out += len(chunk)
                out.append(chunk)
        finally:
            if hasattr(body, "close"):
                body.close()
        return out


class S3Server:
    """moto's S3 on http://127.0.0.1:PORT, in a thread of this process."""

    def __init__(self, port: int | None = None):
        from moto.moto_server.threaded_moto_server import MotoRequestHandler
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        import logging

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = _Counting(DomainDispatcherApplication(create_backend_app))
        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True,
                                   request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-s3", daemon=True)
        self.key_id = "AKIA" + secrets.token_hex(8).upper()
        self.secret = "itselraytestsecret" + secrets.token_hex(12)

    def start(self) -> "S3Server":
        self._thread.start()
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"moto did not start on port {self.port}")

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)

    def env(self) -> dict[str, str]:
        """What a client process needs to reach this server as it would reach AWS."""
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": self.key_id,
                "AWS_SECRET_ACCESS_KEY": self.secret, "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}

    def make_bucket(self, name: str) -> str:
        import boto3

        boto3.client("s3", endpoint_url=self.url, aws_access_key_id=self.key_id,
                     aws_secret_access_key=self.secret, region_name="us-east-1").create_bucket(Bucket=name)
        return name

    @property
    def requests(self) -> list[Request]:
        with self.app.lock:
            return list(self.app.log)

    def reset_log(self) -> None:
        with self.app.lock:
            self.app.log.clear()

    def deny_writes(self, bucket: str, deny: bool = True) -> None:
        (self.app.deny.add if deny else self.app.deny.discard)(bucket)


def apply_env(server: S3Server) -> dict[str, str | None]:
    """Point this process at `server`; returns what to restore."""
    old = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    return old


def restore_env(old: dict[str, str | None]) -> None:
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
