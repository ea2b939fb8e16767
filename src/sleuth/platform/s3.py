"""S3-compatible object storage (AWS S3, MinIO, Ceph RGW, Garage, ...) behind the ``Storage`` interface.

Selected with ``SLEUTH_STORAGE=s3``; configured by ``SLEUTH_S3_ENDPOINT_URL`` (empty = AWS),
``SLEUTH_S3_BUCKET``, ``SLEUTH_S3_REGION``, ``SLEUTH_S3_ACCESS_KEY_ID`` and
``SLEUTH_S3_SECRET_ACCESS_KEY`` (empty = boto3's usual credential chain: environment,
instance profile, ...). Keys are the same relative paths ``LocalStorage`` uses, so a
deployment can move between backends by copying the tree. ``boto3`` is the ``s3`` extra.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from sleuth.platform.storage import Storage, StorageError, check_key
from sleuth.settings import Settings

_MISSING = ("404", "NoSuchKey", "NotFound")


class _Counting:
    """A read-only stream wrapper that counts the bytes boto3 reads (``put`` returns the size)."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.n = 0

    def read(self, size: int = -1) -> bytes:
        b = self.f.read(size)
        self.n += len(b)
        return b


class S3Storage(Storage):
    def __init__(self, client: Any, bucket: str) -> None:
        if not bucket:
            raise StorageError("S3 storage needs a bucket (SLEUTH_S3_BUCKET)")
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as e:  # pragma: no cover - depends on the install
            raise StorageError("SLEUTH_STORAGE=s3 needs boto3: pip install 'sleuth[s3]'") from e
        kwargs: dict[str, Any] = {
            "region_name": settings.s3_region or None,
            "config": Config(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"}),
        }
        if settings.s3_endpoint_url:
            kwargs["endpoint_url"] = settings.s3_endpoint_url
        if settings.s3_access_key_id:
            kwargs["aws_access_key_id"] = settings.s3_access_key_id
            kwargs["aws_secret_access_key"] = settings.s3_secret_access_key
        return cls(boto3.client("s3", **kwargs), settings.s3_bucket)

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (deployments usually provision it instead)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            if str(e.response.get("Error", {}).get("Code")) not in _MISSING:
                raise
            self.client.create_bucket(Bucket=self.bucket)

    def put(self, key: str, data: bytes | BinaryIO) -> int:
        check_key(key)
        if isinstance(data, bytes | bytearray | memoryview):
            body = bytes(data)
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
            return len(body)
        stream = _Counting(data)
        # upload_fileobj switches to a multipart upload for large media
        self.client.upload_fileobj(stream, self.bucket, key)
        return stream.n

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        check_key(key)
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if str(e.response.get("Error", {}).get("Code")) in _MISSING:
                raise KeyError(key) from e
            raise
        body = obj["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def delete(self, key: str) -> None:
        check_key(key)
        self.client.delete_object(Bucket=self.bucket, Key=key)  # missing key: S3 answers 204 too

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        check_key(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if str(e.response.get("Error", {}).get("Code")) in _MISSING:
                return False
            raise
        return True

    def iterate(self, prefix: str = "") -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", ()):
                yield str(obj["Key"])
