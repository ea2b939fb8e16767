"""A live `sleuth serve` for the contract tests: billing off, rate limits high, no background job workers.

No worker threads: what a request creates stays as it was left (a batch stays queued; ``Prefer: wait`` runs its
item inline), so that a deterministic fuzzer sees the same server state, in the same order, on every run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import cli_key, fresh_pg_database, live_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
IMAGE = DATA / "camera_traps" / "speciesnet" / "american_black_bear.jpg"


def server_env(data_dir: Path, model_cache: Path, database_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]),
        SLEUTH_DATA_DIR=str(data_dir),
        SLEUTH_MODEL_CACHE=str(model_cache),
        SLEUTH_BILLING_ENABLED="false",
        SLEUTH_RATE_LIMIT_INFERENCE="1000000",
        SLEUTH_RATE_LIMIT_REFERENCE="1000000",
        SLEUTH_RATE_LIMIT_USAGE="1000000",
        SLEUTH_WORKERS="0",
        SLEUTH_SWEEP_INTERVAL_S="86400",
        SLEUTH_URL_FETCH_TIMEOUT_S="2",
        SLEUTH_DETECTOR_PRECISION=env.get("SLEUTH_DETECTOR_PRECISION", "int8"),
    )
    if (DATA / "models").is_dir():
        env["SLEUTH_MODEL_MIRROR"] = str(DATA / "models")
    env.pop("SLEUTH_DATABASE_URL", None)
    if database_url:
        env["SLEUTH_DATABASE_URL"] = database_url
    return env


def warm_up(url: str, auth: dict[str, str]) -> None:
    """Load the models once (a fuzzed request must not pay a first conversion inside its timeout)."""
    sys.path.insert(0, str(ROOT / "tests" / "deepfake"))
    from helpers import wav_bytes

    with httpx.Client(base_url=url, headers=auth, timeout=600) as c:
        r = c.post("/v1/detect", files={"image": ("bear.jpg", IMAGE.read_bytes(), "image/jpeg")})
        assert r.status_code == 200, r.text
        r = c.post("/detect", headers={"Prefer": "wait"}, files={"file": ("a.wav", wav_bytes(1.0), "audio/wav")})
        assert r.status_code == 200 and r.json()["item"]["status"] == "completed", r.text


@contextmanager
def fuzz_server(tmp: Path, model_cache: Path, pg_admin_url: str = "") -> Iterator[tuple[str, str]]:
    """(base URL, API key) of a fresh server; on PostgreSQL when ``pg_admin_url`` is set."""
    with ExitStack() as stack:
        db_url = stack.enter_context(fresh_pg_database(pg_admin_url, "sleuth_fuzz")) if pg_admin_url else None
        env = server_env(tmp / "data", model_cache, db_url)
        key = cli_key(env, "fuzz")
        url = stack.enter_context(live_server(env, timeout_s=120))
        warm_up(url, {"Authorization": f"Bearer {key}"})
        yield url, key
