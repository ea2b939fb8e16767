"""Multi-process integration: API + two Celery workers + Redis + PostgreSQL + S3 (moto).

Submits deepfake batches (real AASIST), SIGKILLs one worker mid-batch and checks every
item completes exactly once (counts, one capture per item in the ledger with billing on)
and each job's callback fires exactly once; a job whose messages were never published
(lost) is picked up by the workers' orphan sweep.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "deepfake"))
from cluster import (  # noqa: E402
    CLI,
    Cluster,
    cluster_env,
    fresh_pg_database,
    purge_redis,
    s3_server,
    services_unavailable,
)
from helpers import wav_bytes  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
MIRROR = DATA / "models"
CT = DATA / "camera_traps" / "speciesnet"
WILDLIFE_MODELS = ("mdlite", "yolox-nano-coco")  # the default profile's detector + relabeler ("filter")

_why = services_unavailable()
pytestmark = [
    pytest.mark.skipif(_why is not None, reason=_why or ""),
    pytest.mark.skipif(not (MIRROR / "aasist").is_dir(), reason="../shared/data/models (AASIST mirror) not present"),
    pytest.mark.skipif(not CT.is_dir(), reason="../shared/data/camera_traps not present"),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (convert extra) builds AASIST once"),
    pytest.mark.timeout(300),
]


class _Receiver(BaseHTTPRequestHandler):
    calls: list[dict[str, Any]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with type(self).lock:
            type(self).calls.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a: Any) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    srv = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}/hook"
    finally:
        srv.shutdown()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[Cluster]:
    from sleuth.db.migrate import upgrade
    from sleuth.engine.catalog import ensure
    from sleuth.platform.storage import make_storage

    work = tmp_path_factory.mktemp("scaleout")
    with fresh_pg_database() as db_url, s3_server() as s3:
        c = Cluster(work, cluster_env(work, db_url, s3, model_cache, MIRROR))
        settings = c.settings
        for name in ("aasist", *WILDLIFE_MODELS):
            ensure(name, settings)  # convert once here, not in two workers at the same time
        upgrade(settings)
        make_storage(settings).ensure_bucket()  # type: ignore[attr-defined]
        try:
            c.start_api()
            preload = ",".join(("aasist", *WILDLIFE_MODELS))
            c.start_worker("worker-a", "--preload", preload)
            c.start_worker("worker-b", "--preload", preload)
            c.wait_workers(2, model="aasist")
            yield c
        finally:
            c.stop()
            purge_redis(c.env["SLEUTH_CELERY_QUEUE_PREFIX"])


@pytest.fixture(scope="module")
def team(cluster: Cluster) -> tuple[str, dict[str, str]]:
    from sleuth.db.engine import Database
    from sleuth.platform import credits
    from sleuth.platform.auth import create_key, create_team

    db = Database(cluster.settings)
    t = create_team(db, f"scaleout-{uuid.uuid4().hex[:6]}")
    credits.grant(db, t.id, 1000)
    return t.id, {"Authorization": f"Bearer {create_key(db, t.id).key}"}


def _items(cluster: Cluster, job_id: str) -> list[Any]:
    from sqlalchemy import select

    from sleuth.db.engine import Database
    from sleuth.db.models import JobItem

    with Database(cluster.settings).session() as s:
        return list(s.scalars(select(JobItem).where(JobItem.job_id == job_id).order_by(JobItem.seq)))


def _processing_by(cluster: Cluster, worker_pattern: str) -> list[str]:
    from sqlalchemy import select

    from sleuth.db.engine import Database
    from sleuth.db.models import JobItem

    q = select(JobItem.id).where(JobItem.status == "processing", JobItem.worker_id.like(worker_pattern))
    with Database(cluster.settings).session() as s:
        return list(s.scalars(q))


def _job(cluster: Cluster, job_id: str) -> Any:
    from sleuth.db.engine import Database
    from sleuth.db.models import Job

    with Database(cluster.settings).session() as s:
        return s.get(Job, job_id)


def _wait_job(cluster: Cluster, job_id: str, timeout: float = 90.0) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = _job(cluster, job_id)
        if job is not None and job.status in ("completed", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(
        f"job {job_id} not done: {[(i.status, i.worker_id) for i in _items(cluster, job_id)]}\n"
        f"--- worker-b log ---\n{cluster.log('worker-b')}"
    )


def test_workers_advertise_kinds_and_models(cluster: Cluster) -> None:
    found = cluster.wait_workers(2, model="aasist")
    pids = {p.pid for n, p in cluster.procs.items() if n.startswith("worker")}
    assert {i["pid"] for i in found.values()} == pids
    for info in found.values():
        assert {"deepfake", "wildlife"} <= set(info["kinds"])
        assert info["queues"] == [f"{cluster.env['SLEUTH_CELERY_QUEUE_PREFIX']}.{k}" for k in info["kinds"]]
        assert info["models"] == sorted(("aasist", *WILDLIFE_MODELS)) and info["providers"]
    # the operator's view: `sleuth workers --json`
    out = subprocess.run(
        [*CLI, "workers", "--json", "--timeout", "1"], env=cluster.env, cwd=cluster.workdir, capture_output=True
    )
    assert out.returncode == 0, out.stderr.decode()
    listed = json.loads(out.stdout)
    assert {i["pid"] for i in listed.values()} == pids and set(listed) == set(found)


def test_lost_messages_are_republished(cluster: Cluster, team: tuple[str, dict[str, str]]) -> None:
    """A job committed as queued whose messages never reached the broker still completes."""
    from sleuth.db.engine import Database
    from sleuth.platform import jobs
    from sleuth.platform.storage import make_storage

    team_id, _ = team
    settings = cluster.settings
    storage = make_storage(settings)
    job_id = str(uuid.uuid4())
    specs = []
    for i in range(3):
        spec = jobs.ItemSpec(filename=f"lost{i}.wav", media_type="audio", cost=1)
        spec.media_key = f"media/{team_id}/{job_id}/{spec.id}/{spec.filename}"
        storage.put(spec.media_key, wav_bytes(1.0, seed=100 + i))
        specs.append(spec)
    jobs.create_job(Database(settings), team_id, "deepfake", specs, options={"batch": True}, job_id=job_id)
    # no dispatch(): as if the API node died right after committing
    job = _wait_job(cluster, job_id, timeout=60)
    assert (job.status, job.completed_count, job.failed_count) == ("completed", 3, 0)


def test_kill_worker_mid_batch_every_item_once(
    cluster: Cluster, team: tuple[str, dict[str, str]], receiver: str
) -> None:
    import httpx
    from sqlalchemy import select

    from sleuth.db.engine import Database
    from sleuth.db.models import LedgerEntry
    from sleuth.platform import credits

    team_id, auth = team
    db = Database(cluster.settings)
    before = credits.balance(db, team_id)
    _Receiver.calls = []
    batches = {}
    sizes = {"a": 20, "b": 12}
    for tag, n in sizes.items():
        files = [("files[]", (f"{tag}{i:02d}.wav", wav_bytes(2.0, seed=i), "audio/wav")) for i in range(n)]
        r = httpx.post(
            cluster.base_url + "/detect/batch",
            headers=auth,
            files=files,
            data={"callback_url": receiver, "visualize": "false"},
            timeout=60,
        )
        assert r.status_code == 202, r.text
        batches[tag] = r.json()["item"]["uuid"]

    # wildlife: Animal Detect async jobs (one image each: create, upload to the signed URL, submit)
    wildlife = []
    images = [CT / "american_black_bear.jpg", CT / "blank.jpg", CT / "african_elephants.jpg"] * 2
    for n, img in enumerate(images):
        body = {"operation": "filter", "filename": f"cam{n}.jpg", "content_type": "image/jpeg"}
        job = httpx.post(cluster.base_url + "/v1/jobs", headers=auth, json=body, timeout=30).json()
        up = httpx.put(job["upload"]["url"], content=img.read_bytes(), headers=job["upload"]["headers"], timeout=30)
        assert up.status_code == 200, up.text
        sub = httpx.post(job["submit_url"], headers=auth, timeout=30)
        assert sub.status_code == 202, sub.text
        wildlife.append(job["id"])

    # SIGKILL worker-a in the middle of an item: freeze it (SIGSTOP), look at what it holds in the
    # database, kill it if that is an item, else let it go on and look again
    pid_a = cluster.procs["worker-a"].pid
    held: list[str] = []
    deadline = time.time() + 60
    while time.time() < deadline and not held:
        cluster.signal("worker-a", signal.SIGSTOP)
        held = _processing_by(cluster, f"%:{pid_a}:%")
        if held:
            cluster.kill("worker-a")
        else:
            cluster.signal("worker-a", signal.SIGCONT)
            time.sleep(0.05)
    assert len(held) == 1, f"worker-a never caught mid-item: {held}"
    victim = held[0]

    for tag, job_id in batches.items():
        job = _wait_job(cluster, job_id)
        assert (job.status, job.completed_count, job.failed_count) == ("completed", sizes[tag], 0), tag
        items = _items(cluster, job_id)
        assert all(i.status == "completed" and i.result and i.result["metrics"] for i in items)

    for job_id in wildlife:
        job = _wait_job(cluster, job_id)
        (item,) = _items(cluster, job_id)
        assert (job.status, item.status) == ("completed", "completed"), item.error
        assert item.result is not None

    every = [i for j in [*batches.values(), *wildlife] for i in _items(cluster, j)]
    killed = next(i for i in every if i.id == victim)
    assert killed.attempts == 2 and f":{pid_a}:" not in (killed.worker_id or "")  # redone by worker-b
    assert all(i.attempts == 1 for i in every if i.id != victim)

    # exactly one capture per item, and the wallet settled exactly
    all_ids = [i.id for i in every]
    with db.session() as s:
        captures = list(
            s.scalars(select(LedgerEntry.reason).where(LedgerEntry.team_id == team_id, LedgerEntry.kind == "capture"))
        )
    mine = {f"item {i}" for i in all_ids}
    assert sorted(c for c in captures if c in mine) == sorted(mine)
    after = credits.balance(db, team_id)
    assert before.available - after.available == len(all_ids) and after.reserved_open == 0

    # one callback per job, even with two deliverers (API + surviving worker) racing
    deadline = time.time() + 20
    while time.time() < deadline and len(_Receiver.calls) < len(batches):
        time.sleep(0.1)
    time.sleep(1.5)
    got = sorted(c["item"]["uuid"] for c in _Receiver.calls)
    assert got == sorted(batches.values())
    for call in _Receiver.calls:
        tag = next(t for t, u in batches.items() if u == call["item"]["uuid"])
        assert (call["item"]["status"], call["item"]["completed_count"]) == ("completed", sizes[tag])
