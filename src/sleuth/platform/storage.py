"""Blob storage by key: a small interface with a local-directory implementation.

Keys are relative, slash-separated paths (``media/<team>/<id>/file.wav``). The interface
maps one-to-one onto an S3-compatible object store (put/get/delete/exists/list by prefix).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from sleuth.settings import Settings


class StorageError(Exception):
    pass


def check_key(key: str) -> str:
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise StorageError(f"Invalid storage key {key!r}")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"Invalid storage key {key!r}")
    return key


class Storage(ABC):
    @abstractmethod
    def put(self, key: str, data: bytes | BinaryIO) -> int:
        """Store bytes or a readable stream under ``key``; returns the size written."""

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing key is not an error."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def iterate(self, prefix: str = "") -> Iterator[str]:
        """Yield every key starting with ``prefix``."""

    def local_path(self, key: str) -> Path | None:
        """A filesystem path for ``key`` when the backend has one (lets decoders avoid a copy)."""
        return None


class LocalStorage(Storage):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes | BinaryIO) -> int:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                if isinstance(data, bytes | bytearray | memoryview):
                    f.write(data)
                else:
                    shutil.copyfileobj(data, f, 1 << 20)
                size = f.tell()
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as e:
            raise KeyError(key) from e

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # prune empty parents up to the root
        parent = path.parent
        while parent != self.root and parent.is_dir():
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def iterate(self, prefix: str = "") -> Iterator[str]:
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                rel = (Path(dirpath) / name).relative_to(self.root).as_posix()
                if rel.startswith(prefix):
                    yield rel

    def local_path(self, key: str) -> Path | None:
        return self._path(key)


def make_storage(settings: Settings) -> Storage:
    if settings.storage == "s3":
        from sleuth.platform.s3 import S3Storage  # optional extra

        return S3Storage.from_settings(settings)
    assert settings.storage_dir is not None
    return LocalStorage(settings.storage_dir)
