"""S3 adapter: streamed downloads, puts with Content-Type, heads. Errors come out typed."""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from botocore.exceptions import ClientError

from ..worker_config import Settings
from .aws import make_client, translate_aws_error
from .errors import BadMedia, PermanentError, WorkerError

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    content_type: Optional[str]


class S3Store:
    """One bucket. Keys only: never URLs (the API presigns on demand)."""

    def __init__(self, settings: Settings, client: Any = None):
        self.settings = settings
        self.bucket = settings.bucket
        self.client = client or make_client("s3", settings)

    def _uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def head(self, key: str) -> ObjectInfo:
        try:
            r = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            raise translate_aws_error(exc, f"S3 head {self._uri(key)}") from exc
        return ObjectInfo(key=key, size=int(r["ContentLength"]), content_type=r.get("ContentType"))

    def download_to_file(self, key: str, dest_dir: str | os.PathLike | None = None,
                         max_bytes: Optional[int] = None, suffix: str = "",
                         on_chunk: Callable[[int], None] = lambda _n: None) -> Path:
        """Stream the object to a new temp file (1 MiB chunks, never all in memory);
        ``on_chunk(bytes so far)`` after each chunk (progress of a long download).

        Refuses objects over ``max_bytes`` before and while reading.  The caller deletes the
        file; on any failure it is already deleted.
        """
        what = f"S3 get {self._uri(key)}"
        try:
            r = self.client.get_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            raise translate_aws_error(exc, what) from exc
        size = int(r.get("ContentLength") or 0)
        if max_bytes is not None and size > max_bytes:
            r["Body"].close()
            raise BadMedia(f"{what}: object is {size} bytes, over the {max_bytes}-byte limit "
                           "(max_video_bytes); split or re-encode the video")
        fd, name = tempfile.mkstemp(prefix="cvitx-", suffix=suffix, dir=dest_dir)
        path = Path(name)
        done = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in r["Body"].iter_chunks(CHUNK):
                    done += len(chunk)
                    if max_bytes is not None and done > max_bytes:
                        raise BadMedia(f"{what}: object is over the {max_bytes}-byte limit (max_video_bytes); "
                                       "split or re-encode the video")
                    fh.write(chunk)
                    on_chunk(done)
        except WorkerError:
            path.unlink(missing_ok=True)
            raise
        except Exception as exc:
            path.unlink(missing_ok=True)
            raise translate_aws_error(exc, what) from exc
        if size and done != size:
            path.unlink(missing_ok=True)
            raise translate_aws_error(OSError(f"short read: {done} of {size} bytes"), what)
        return path

    def get_bytes(self, key: str, max_bytes: int, limit_name: str = "snapshot_max_bytes") -> tuple[bytes, ObjectInfo]:
        """The whole (small) object, refusing more than ``max_bytes`` (the setting ``limit_name``)."""
        what = f"S3 get {self._uri(key)}"
        try:
            r = self.client.get_object(Bucket=self.bucket, Key=key)
            size = int(r.get("ContentLength") or 0)
            if size > max_bytes:
                r["Body"].close()
                raise BadMedia(f"{what}: object is {size} bytes, over the {max_bytes}-byte limit ({limit_name})")
            data = r["Body"].read(max_bytes + 1)
        except WorkerError:
            raise
        except Exception as exc:
            raise translate_aws_error(exc, what) from exc
        if len(data) > max_bytes:
            raise BadMedia(f"{what}: object is over the {max_bytes}-byte limit ({limit_name})")
        return data, ObjectInfo(key=key, size=len(data), content_type=r.get("ContentType"))

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        """Write (or overwrite: deterministic keys make a redo converge) one object."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except Exception as exc:
            raise translate_aws_error(exc, f"S3 put {self._uri(key)}") from exc

    def upload_file(self, path: str | os.PathLike, key: str, content_type: str) -> None:
        try:
            self.client.upload_file(str(path), self.bucket, key, ExtraArgs={"ContentType": content_type})
        except Exception as exc:
            raise translate_aws_error(exc, f"S3 upload {self._uri(key)}") from exc

    def probe(self, key: str) -> None:
        """One ranged GetObject of ``key``, which need not exist: proves that S3 answers and the
        bucket exists, with no permission beyond the worker's own GetObject scope (a missing
        key reads as NoSuchKey, or AccessDenied without s3:ListBucket; both are fine here).
        Raises DependencyDown while S3 is unreachable, PermanentError when the bucket is missing."""
        try:
            r = self.client.get_object(Bucket=self.bucket, Key=key, Range="bytes=0-0")
            r["Body"].close()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket":
                raise PermanentError(f"S3 bucket {self.bucket!r} does not exist; create it with "
                                     "`python -m video_analysis setup` or fix the bucket setting",
                                     code="no_bucket") from exc
            if code in ("NoSuchKey", "AccessDenied", "403", "404", "InvalidRange"):
                return
            raise translate_aws_error(exc, f"S3 probe {self._uri(key)}") from exc
        except Exception as exc:
            raise translate_aws_error(exc, f"S3 probe {self._uri(key)}") from exc

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(o["Key"] for o in page.get("Contents", []))
        except Exception as exc:
            raise translate_aws_error(exc, f"S3 list s3://{self.bucket}/{prefix}") from exc
        return keys
