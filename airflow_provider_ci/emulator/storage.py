"""Buckets as folders: ``DATA_DIR/<bucket>/<key>``.

Keeping objects as plain files lets a developer drop inputs in with ``cp`` and look at outputs
with an image viewer. Writes go to a temporary file under ``DATA_DIR/.tmp`` and are renamed
into place, so a reader (a job, a GET) never sees half an object. ``.tmp`` can never be a bucket
because bucket names cannot start with a dot.

Methods do blocking file I/O: callers on the event loop run them in an executor when the
data can be large (object bodies, job inputs).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

BUCKET_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]+$")
MAX_KEY_BYTES = 850


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` is not a ``name-appid`` bucket name, or ``None`` if it is one."""
    if not BUCKET_NAME.match(name) or len(name) > 60:
        return (
            f"bucket {name!r} is not in BucketName-APPID form "
            "(lowercase letters, digits and hyphens, then '-' and the numeric APPID)"
        )
    return None


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be stored as a file below the bucket folder, or ``None``.

    Empty, ``.`` and ``..`` path segments are refused: they would escape the bucket folder or
    alias another key. (COS itself allows ``dir/`` placeholder keys; the emulator does not.)
    """
    if not key:
        return "the object key is empty"
    if len(key.encode()) > MAX_KEY_BYTES:
        return f"the object key is longer than {MAX_KEY_BYTES} bytes"
    if "\x00" in key or any(part in ("", ".", "..") for part in key.split("/")):
        return f"object key {key!r} has an empty, '.' or '..' path segment"
    return None


@dataclass(frozen=True)
class ObjectEntry:
    key: str
    size: int
    modified: float
    etag: str


class Storage:
    """Object files below ``root``; the set of buckets is cached because every request checks it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / ".tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._buckets: dict[str, float] = {}
        for entry in root.iterdir():
            if entry.is_dir() and bucket_name_problem(entry.name) is None:
                self._buckets[entry.name] = entry.stat().st_mtime

    def create_bucket(self, name: str) -> None:
        problem = bucket_name_problem(name)
        if problem:
            raise ValueError(problem)
        (self.root / name).mkdir(exist_ok=True)
        with self._lock:
            self._buckets.setdefault(name, time.time())

    def has_bucket(self, name: str) -> bool:
        """Known buckets, plus a folder someone created by hand since start."""
        if name in self._buckets:
            return True
        if bucket_name_problem(name) is None and (self.root / name).is_dir():
            with self._lock:
                self._buckets.setdefault(name, time.time())
            return True
        return False

    def buckets(self) -> dict[str, float]:
        """Bucket name → creation time, sorted by name."""
        with self._lock:
            return dict(sorted(self._buckets.items()))

    def _path(self, bucket: str, key: str) -> Path:
        problem = key_problem(key)
        if problem:
            raise ValueError(problem)
        return self.root / bucket / key

    def put(self, bucket: str, key: str, data: bytes) -> str:
        """Write an object atomically; returns its ETag (quoted MD5 hex, as COS sends it)."""
        path = self._path(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / uuid.uuid4().hex
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return etag(data)

    def get(self, bucket: str, key: str) -> bytes:
        """The object's bytes; ``FileNotFoundError`` when there is no such object."""
        path = self._path(bucket, key)
        if not path.is_file():
            raise FileNotFoundError(key)
        return path.read_bytes()

    def read(self, bucket: str, key: str) -> tuple[bytes, ObjectEntry]:
        """The object's bytes and its listing entry (size, mtime, ETag)."""
        data = self.get(bucket, key)
        return data, ObjectEntry(key, len(data), (self.root / bucket / key).stat().st_mtime, etag(data))

    def delete(self, bucket: str, key: str) -> None:
        """Remove an object; deleting a missing object succeeds, as in COS."""
        self._path(bucket, key).unlink(missing_ok=True)

    def list(self, bucket: str, prefix: str, marker: str, max_keys: int) -> tuple[list[ObjectEntry], bool]:
        """Objects with ``prefix`` after ``marker`` in key order; second item: more remain."""
        base = self.root / bucket
        keys = sorted(str(path.relative_to(base).as_posix()) for path in base.rglob("*") if path.is_file())
        selected = [key for key in keys if key.startswith(prefix) and key > marker]
        return [self.read(bucket, key)[1] for key in selected[:max_keys]], len(selected) > max_keys


def etag(data: bytes) -> str:
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
