"""A small multi-process sleuth deployment for the scale-out tests.

API (``sleuth serve``) and Celery workers (``sleuth worker --celery``) as subprocesses, a
fresh PostgreSQL database, a dedicated Redis database number with a per-run queue prefix,
and media in a real S3-compatible server (moto's) running in the test process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# A dedicated Redis database number; SLEUTH_TEST_BROKER_URL=amqp://guest:guest@127.0.0.1:5672// runs on RabbitMQ.
REDIS_URL = os.environ.get("SLEUTH_TEST_BROKER_URL", "redis://127.0.0.1:6379/11")
PG_ADMIN_URL = os.environ.get("SLEUTH_TEST_DATABASE_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CLI = [sys.executable, "-c", "from sleuth.cli import main; main()"]


from support import free_port  # noqa: E402  (tests/support.py; conftest puts tests/ on sys.path)


def services_unavailable() -> str | None:
    """Why the cluster cannot run here (None when Redis, PostgreSQL and the extras are there)."""
    try:
        import boto3  # noqa: F401
        import celery  # noqa: F401
        import moto.server  # noqa: F401
        import redis
    except ImportError as e:
        return f"scale-out extras not installed ({e.name}): pip install -e '.[celery,s3,dev]' moto[server]"
    try:
        if REDIS_URL.startswith("redis"):
            redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        else:
            from kombu import Connection

            with Connection(REDIS_URL, connect_timeout=2) as conn:
                conn.ensure_connection(max_retries=1)
    except Exception as e:
        return f"broker not reachable at {REDIS_URL} ({type(e).__name__}); .ci/run starts Redis"
    try:
        from sqlalchemy import create_engine, text

        eng = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.execute(text("SELECT 1"))
        eng.dispose()
    except Exception as e:
        return f"PostgreSQL not reachable at {PG_ADMIN_URL} ({type(e).__name__}); .ci/run starts it"
    return None


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    from support import fresh_pg_database as fresh

    with fresh(PG_ADMIN_URL, "sleuth_scaleout") as url:
        yield url


@contextmanager
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


class Cluster:
    """Environment + processes. ``env`` is what every subprocess (and ``settings``) sees."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.port = int(env["SLEUTH_PORT"])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._settings: Any = None

    @property
    def settings(self) -> Any:
        from sleuth.settings import Settings

        if self._settings is not None:
            return self._settings
        saved = dict(os.environ)
        try:
            os.environ.update(self.env)
            self._settings = Settings()
            return self._settings
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        p = subprocess.Popen(
            [*CLI, *args], cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs[name] = p
        return p

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def start_api(self) -> None:
        import httpx

        self.start("api", "serve", "--log-level", "warning")
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.procs["api"].poll() is not None:
                raise RuntimeError("API exited:\n" + self.log("api"))
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("API did not start:\n" + self.log("api"))

    def start_worker(self, name: str, *extra: str) -> subprocess.Popen[bytes]:
        return self.start(name, "worker", "--celery", "--threads", "1", "--loglevel", "WARNING", *extra)

    def wait_workers(self, n: int, model: str | None = None, timeout: float = 90.0) -> dict[str, dict[str, Any]]:
        from sleuth.platform.dispatch import list_workers

        deadline = time.time() + timeout
        found: dict[str, dict[str, Any]] = {}
        while time.time() < deadline:
            for name, p in self.procs.items():
                if name.startswith("worker") and p.poll() is not None and p.returncode != -signal.SIGKILL:
                    raise RuntimeError(f"{name} exited:\n" + self.log(name))
            found = {h: i for h, i in list_workers(self.settings, timeout=1.0).items() if i.get("ready")}
            if len(found) >= n and (model is None or all(model in i["models"] for i in found.values())):
                return found
        raise RuntimeError(f"{n} workers not ready; answered: {found}")

    def signal(self, name: str, sig: int) -> None:
        os.killpg(self.procs[name].pid, sig)

    def kill(self, name: str) -> None:
        p = self.procs[name]
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for p in self.procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)


def purge_redis(prefix: str) -> None:
    """Drop this run's queues and bindings from the test Redis database."""
    if not REDIS_URL.startswith("redis"):
        return  # RabbitMQ: the run's queues are not durable-critical; leave them to the broker
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(f"{prefix}*")) + list(r.scan_iter(f"_kombu.binding.{prefix}*"))
    if keys:
        r.delete(*keys)


def cluster_env(
    workdir: Path, database_url: str, s3_endpoint: str, model_cache: Path, mirror: Path | None, **overrides: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLEUTH_")}
    env.update(
        {
            "SLEUTH_DATA_DIR": str(workdir / "data"),
            "SLEUTH_DATABASE_URL": database_url,
            "SLEUTH_QUEUE": "celery",
            "SLEUTH_BROKER_URL": REDIS_URL,
            "SLEUTH_CELERY_QUEUE_PREFIX": f"sleuth-test-{uuid.uuid4().hex[:8]}",
            "SLEUTH_CELERY_VISIBILITY_TIMEOUT_S": "60",
            "SLEUTH_CELERY_ORPHAN_AFTER_S": "4",
            "SLEUTH_STORAGE": "s3",
            "SLEUTH_S3_ENDPOINT_URL": s3_endpoint,
            "SLEUTH_S3_BUCKET": "sleuth-media",
            "SLEUTH_S3_ACCESS_KEY_ID": "testing",
            "SLEUTH_S3_SECRET_ACCESS_KEY": "testing",
            "SLEUTH_WORKERS": "0",
            "SLEUTH_PORT": str(free_port()),
            "SLEUTH_BILLING_ENABLED": "true",
            "SLEUTH_URL_ALLOW_PRIVATE": "127.0.0.1",
            "SLEUTH_WEBHOOK_BACKOFF_S": "0.2",
            "SLEUTH_JOB_LEASE_S": "3",
            "SLEUTH_JOB_HEARTBEAT_S": "0.5",
            "SLEUTH_SWEEP_INTERVAL_S": "3600",
            "SLEUTH_MODEL_CACHE": str(model_cache),
            "SLEUTH_INTRA_OP_THREADS": "1",
        }
    )
    if mirror is not None:
        env["SLEUTH_MODEL_MIRROR"] = str(mirror)
    env.update(overrides)
    return env
