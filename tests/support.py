"""Helpers several test areas share: a throwaway PostgreSQL database and a live `sleuth serve`."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

SLEUTH = [sys.executable, "-m", "sleuth.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def fresh_pg_database(admin_url: str, prefix: str = "sleuth_test") -> Iterator[str]:
    """Create a uniquely named database, yield its URL, drop it (closing sleuth's pooled connections)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        from sleuth.db import engine as dbengine

        for url, eng in list(dbengine._engines.items()):
            if name in url:
                eng.dispose()
                dbengine._engines.pop(url, None)
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def cli_key(env: dict[str, str], team: str) -> str:
    """A new API key for ``team`` (created if missing), made with the CLI as a user would."""
    out = subprocess.run(
        [*SLEUTH, "keys", "create", "--team", team, "--create-team"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


@contextmanager
def live_server(env: dict[str, str], timeout_s: float = 60.0) -> Iterator[str]:
    """``sleuth serve`` on a free port with ``env``; yields its base URL once /healthz answers."""
    port = free_port()
    proc = subprocess.Popen([*SLEUTH, "serve", "--port", str(port), "--log-level", "warning"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout_s
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError("sleuth serve did not come up")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
