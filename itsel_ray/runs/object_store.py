"""What an object store (s3://) needs beyond reading and writing files: a check before any trial starts, and the
conditional writes the driver lock rests on.

- `check_store(storage)`: the bucket exists, the endpoint answers, and a probe object can be put and deleted; each
  failure is one StorageError line naming the bucket (and the endpoint when one is set), never the credentials.
- `create_if_absent` / `replace_if_unchanged`: S3 conditional writes (PUT with `If-None-Match: *`, and with
  `If-Match: <etag>`), through boto3, which pyarrow does not expose. Of two drivers that create the lock at once
  exactly one gets it, and a dead driver's lock is replaced by exactly one taker. Only s3:// has them here; other
  URI schemes fall back to write-then-read-back (see lock.py).

Credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, a profile or an
instance role), as pyarrow and boto3 read them; a URI that carries them (s3://KEY:SECRET@bucket) is refused, since
the URI is printed and stored. The endpoint is AWS's unless AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) names
another. No Ray here.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

ENDPOINT_ENVS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


class ConditionalWriteUnavailable(RuntimeError):
    """The store (or this environment) cannot do conditional writes; the caller falls back or refuses."""


def endpoint() -> str | None:
    for name in ENDPOINT_ENVS:
        if os.environ.get(name):
            return os.environ[name]
    return None


def check_uri(uri: str) -> None:
    """Refuse a storage URI that carries credentials (they would be printed, logged and stored with the sweep)."""
    if "@" in urlsplit(uri).netloc:
        from itsel_ray.runs.storage import StorageError

        raise StorageError(f"storage URI {uri.split('://', 1)[0]}://...@{uri.split('@', 1)[1]} carries credentials; "
                           "put them in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or a profile")


def bucket_and_key(uri: str) -> tuple[str, str]:
    """('bucket', 'prefix/to/key') of s3://bucket/prefix/to/key."""
    parts = urlsplit(uri)
    return parts.netloc, parts.path.lstrip("/")


def _where(storage) -> str:
    ep = endpoint()
    return f"{storage.root}" + (f" (endpoint {ep})" if ep else "")


def _short(err: BaseException) -> str:
    """The first line of a store error, without the request ids pyarrow appends."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:300]


def check_store(storage) -> None:
    """Before any trial: the bucket exists, the endpoint answers, and this process may write and delete there.

    Costs three requests (a bucket lookup, one put and one delete of a tiny probe object)."""
    import pyarrow.fs

    from itsel_ray.runs.storage import StorageError

    fs, base = storage.fs
    bucket = base.split("/", 1)[0]
    try:
        info = fs.get_file_info(bucket)
    except OSError as err:
        raise StorageError(f"storage {_where(storage)} cannot be reached: {_short(err)}") from None
    if info.type == pyarrow.fs.FileType.NotFound:
        raise StorageError(f"storage {_where(storage)}: bucket {bucket!r} does not exist (create it, or check the "
                           "bucket name and AWS_ENDPOINT_URL)")
    probe = f".write-check-{socket.gethostname()}-{os.getpid()}"
    try:
        storage.write_bytes(probe, b"ok")
        storage.remove(probe)
    except OSError as err:
        raise StorageError(f"storage {_where(storage)} is not writable: {_short(err)}") from None


# ------------------------------------------------------------------------------------------- conditional writes


def _client():
    try:
        import boto3
        import botocore.config
    except ImportError:
        raise ConditionalWriteUnavailable("boto3 is not installed (pip install 'itsel-ray[s3]')") from None
    cfg = botocore.config.Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10,
                                 read_timeout=30)
    return boto3.client("s3", endpoint_url=endpoint(), config=cfg)


def _code(err) -> str:
    return str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))


def _conditional_put(uri: str, data: bytes, **condition) -> str | None:
    """Put `data` at `uri` if the condition holds: its new ETag, or None when the condition failed."""
    from botocore.exceptions import ClientError

    bucket, key = bucket_and_key(uri)
    try:
        return _client().put_object(Bucket=bucket, Key=key, Body=data, **condition)["ETag"]
    except ClientError as err:
        # 412: the precondition failed; 409: a concurrent conditional write to the same key won
        if _code(err) in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
            return None
        if _code(err) in ("NotImplemented", "501"):
            raise ConditionalWriteUnavailable(f"the store at {uri} does not do conditional writes") from None
        raise OSError(f"{uri}: {_short(err)}") from None


def create_if_absent(uri: str, data: bytes) -> str | None:
    """Create the object only if no object has that key (If-None-Match: *): its ETag, or None if one exists."""
    return _conditional_put(uri, data, IfNoneMatch="*")


def replace_if_unchanged(uri: str, data: bytes, etag: str) -> str | None:
    """Replace the object only if it still has `etag` (If-Match): the new ETag, or None if it changed or is gone."""
    return _conditional_put(uri, data, IfMatch=etag)


def read_with_etag(uri: str) -> tuple[bytes, str] | None:
    """(body, ETag) of the object, or None when it does not exist."""
    from botocore.exceptions import ClientError

    bucket, key = bucket_and_key(uri)
    try:
        reply = _client().get_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if _code(err) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise OSError(f"{uri}: {_short(err)}") from None
    return reply["Body"].read(), reply["ETag"]


def delete_if_unchanged(uri: str, etag: str) -> bool:
    """Delete the object if it still has `etag`; True when deleted. Stores without conditional deletes get a
    read-compare-delete, which is enough for releasing a lock that only its holder rewrites."""
    from botocore.exceptions import ClientError

    bucket, key = bucket_and_key(uri)
    current = read_with_etag(uri)
    if current is None or current[1] != etag:
        return False
    try:
        _client().delete_object(Bucket=bucket, Key=key)
    except ClientError as err:
        raise OSError(f"{uri}: {_short(err)}") from None
    return True


def conditional_writes(uri: str) -> bool:
    """Whether this URI's store gets conditional writes here (s3:// with boto3 installed)."""
    if not uri.startswith("s3://"):
        return False
    try:
        import boto3  # noqa: F401
    except ImportError:
        return False
    return True
