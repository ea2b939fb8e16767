"""S3Storage against a real S3-compatible HTTP server (moto's server, started here on a free port)."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator

import pytest

pytest.importorskip("boto3", reason="the s3 extra (boto3) is not installed")
moto_server = pytest.importorskip("moto.server", reason="moto[server] (dev dependency) is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def storage(s3_endpoint: str, tmp_path):  # type: ignore[no-untyped-def]
    import uuid

    from sleuth.platform.s3 import S3Storage
    from sleuth.platform.storage import make_storage
    from sleuth.settings import Settings

    settings = Settings(
        data_dir=tmp_path,
        storage="s3",
        s3_endpoint_url=s3_endpoint,
        s3_bucket=f"sleuth-{uuid.uuid4().hex[:8]}",
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
    )
    st = make_storage(settings)
    assert isinstance(st, S3Storage)
    st.ensure_bucket()
    st.ensure_bucket()  # idempotent
    return st


def test_put_get_exists_delete_bytes(storage) -> None:  # type: ignore[no-untyped-def]
    key = "media/team/job/item/clip.wav"
    assert not storage.exists(key)
    assert storage.put(key, b"RIFF1234") == 8
    assert storage.exists(key)
    assert storage.get(key) == b"RIFF1234"
    assert storage.local_path(key) is None  # consumers copy to a temp file
    storage.put(key, b"overwritten")
    assert storage.get(key) == b"overwritten"
    storage.delete(key)
    assert not storage.exists(key)
    storage.delete(key)  # deleting a missing key is not an error
    with pytest.raises(KeyError):
        storage.get(key)


def test_stream_put_reports_size_and_round_trips(storage) -> None:  # type: ignore[no-untyped-def]
    data = bytes(range(256)) * 40_000  # 10 MB: a multipart upload
    n = storage.put("results/t/big.bin", io.BytesIO(data))
    assert n == len(data)
    assert storage.get("results/t/big.bin") == data


def test_iterate_by_prefix_pages(storage) -> None:  # type: ignore[no-untyped-def]
    keys = [f"media/a/{i:04d}.wav" for i in range(1005)] + ["media/b/x.wav", "results/a/y.png"]
    for k in keys:
        storage.put(k, b"x")
    assert sorted(storage.iterate("media/a/")) == sorted(keys[:1005])  # more than one list page
    assert set(storage.iterate("media/")) == set(keys[:1006])
    assert set(storage.iterate()) == set(keys)


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "a\\b", "./a"])
def test_bad_keys_refused(storage, key: str) -> None:  # type: ignore[no-untyped-def]
    from sleuth.platform.storage import StorageError

    with pytest.raises(StorageError):
        storage.put(key, b"x")
    with pytest.raises(StorageError):
        storage.get(key)


def test_missing_bucket_is_a_clear_error(s3_endpoint: str) -> None:
    import boto3
    from botocore.exceptions import ClientError

    from sleuth.platform.s3 import S3Storage

    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    st = S3Storage(client, "no-such-bucket-here")
    with pytest.raises(ClientError, match="NoSuchBucket"):
        st.put("a/b", b"x")
