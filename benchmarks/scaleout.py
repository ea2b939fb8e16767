"""Scale-out throughput: one 200-item deepfake job on 1 vs 2 Celery worker processes.

Needs Redis and PostgreSQL (``.ci/run`` starts both), the ``celery`` extra, and the AASIST
weights (``SLEUTH_MODEL_MIRROR``, e.g. ``../shared/data/models``). Each run gets a fresh
PostgreSQL database and a fresh Redis queue prefix; media sit in local storage shared by
the processes. Workers are started and warmed (model preloaded, ``sleuth_info`` answered)
before the clock starts; the clock stops when the job's last item is recorded.

    python benchmarks/scaleout.py --items 200 --seconds 2 --intra-op 1

Prints items/s for 1 and 2 worker processes and the ratio (2 vs 1, same process, same job).
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from sleuth.cli import main; main()"]


def wav_bytes(seconds: float, seed: int, sr: int = 16000) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * (180 + seed % 200) * t) + 0.05 * rng.standard_normal(t.size)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def run(n_workers: int, args: argparse.Namespace, workdir: Path) -> float:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from sleuth.db.engine import Database
    from sleuth.db.migrate import upgrade
    from sleuth.db.models import Job
    from sleuth.platform import jobs
    from sleuth.platform.auth import create_team
    from sleuth.platform.context import Platform
    from sleuth.platform.dispatch import dispatch, list_workers
    from sleuth.services import deepfake as svc
    from sleuth.settings import Settings

    base = make_url(args.database_url)
    name = f"sleuth_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLEUTH_")}
    env.update(
        SLEUTH_DATA_DIR=str(workdir / f"data-{n_workers}"),
        SLEUTH_DATABASE_URL=base.set(database=name).render_as_string(hide_password=False),
        SLEUTH_QUEUE="celery",
        SLEUTH_BROKER_URL=args.broker_url,
        SLEUTH_CELERY_QUEUE_PREFIX=f"sleuth-bench-{uuid.uuid4().hex[:8]}",
        SLEUTH_INTRA_OP_THREADS=str(args.intra_op),
        SLEUTH_MODEL_CACHE=str(Path(args.model_cache).resolve()),
    )
    if args.mirror:
        env["SLEUTH_MODEL_MIRROR"] = str(Path(args.mirror).resolve())
    procs: list[subprocess.Popen[bytes]] = []
    settings = None
    try:
        saved = dict(os.environ)
        os.environ.update(env)
        try:
            settings = Settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        upgrade(settings)
        platform = Platform.create(settings)
        db = Database(settings)
        team = create_team(db, "bench")
        job_id = str(uuid.uuid4())
        specs = []
        for i in range(args.items):
            spec = jobs.ItemSpec(filename=f"c{i:03d}.wav", media_type="audio", cost=1)
            spec.media_key = svc.media_key(team.id, job_id, spec.id, spec.filename)
            platform.storage.put(spec.media_key, wav_bytes(args.seconds, i))
            specs.append(spec)
        jobs.create_job(db, team.id, svc.KIND, specs, options={"batch": True}, job_id=job_id)
        for k in range(n_workers):
            log = open(workdir / f"worker-{n_workers}-{k}.log", "wb")  # noqa: SIM115
            procs.append(
                subprocess.Popen(
                    [*CLI, "worker", "--celery", "--threads", "1", "--preload", "aasist", "--loglevel", "WARNING"],
                    env=env,
                    cwd=workdir,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        deadline = time.time() + 300
        while len([i for i in list_workers(settings, 1.0).values() if i.get("ready")]) < n_workers:
            if time.time() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit(f"workers did not start; see {workdir}")
        t0 = time.perf_counter()
        dispatch(platform, [s.id for s in specs], svc.KIND)
        while True:
            with db.session() as s:
                job = s.get(Job, job_id)
                assert job is not None
                if job.status in ("completed", "failed"):
                    break
            time.sleep(0.05)
        dt = time.perf_counter() - t0
        if job.completed_count != args.items:
            raise SystemExit(f"only {job.completed_count}/{args.items} items completed")
        return dt
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(30)
        from sleuth.db.engine import dispose_engine

        if settings is not None:
            dispose_engine(settings)
        _purge(args.broker_url, env["SLEUTH_CELERY_QUEUE_PREFIX"])
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _purge(broker_url: str, prefix: str) -> None:
    try:
        import redis
    except ImportError:
        return
    r = redis.Redis.from_url(broker_url)
    keys = list(r.scan_iter(f"{prefix}*")) + list(r.scan_iter(f"_kombu.binding.{prefix}*"))
    if keys:
        r.delete(*keys)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each generated WAV")
    ap.add_argument("--intra-op", type=int, default=1, help="ORT intra-op threads per worker process")
    ap.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--broker-url", default="redis://127.0.0.1:6379/12")
    ap.add_argument("--model-cache", default=os.environ.get("SLEUTH_MODEL_CACHE", str(ROOT / ".cache" / "models")))
    default_mirror = ROOT.parent / "shared" / "data" / "models"
    ap.add_argument(
        "--mirror",
        default=os.environ.get("SLEUTH_MODEL_MIRROR", str(default_mirror) if default_mirror.is_dir() else ""),
    )
    args = ap.parse_args()
    print(f"cores={os.cpu_count()} items={args.items} clip={args.seconds}s intra_op_threads={args.intra_op}")
    with tempfile.TemporaryDirectory(prefix="sleuth-bench-") as tmp:
        results = {}
        for n in (1, 2):
            dt = run(n, args, Path(tmp))
            results[n] = dt
            print(f"{n} worker process(es): {dt:7.2f} s  {args.items / dt:7.2f} items/s", flush=True)
    print(f"ratio 2 vs 1 workers: {results[1] / results[2]:.2f}x throughput")


if __name__ == "__main__":
    main()
