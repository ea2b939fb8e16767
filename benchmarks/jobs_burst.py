"""A burst of async wildlife jobs against a real ``sleuth serve``: drain time, nothing lost, sync latency.

Starts ``sleuth serve`` (uvicorn, SQLite in a temp data dir, billing off, rate limits off, the
in-process job workers: ``--workers``, default 2 = ``settings.workers``) and talks HTTP to it:

1. sync ``POST /v1/detect`` alone: ``--sync`` sequential requests (p50/p95);
2. ``--jobs`` async jobs (operation ``detect``) created, uploaded and submitted by
   ``--submit-threads`` client threads (POST /v1/jobs -> PUT upload.url -> POST submit_url);
3. while they drain, the same sync requests again (p50/p95 during the burst; only requests
   that finished before the last job completed count);
4. drain time (first submit -> last ``completed_at``), then every job accounted for with
   ``GET /v1/jobs?status=completed`` (cursor pagination): prints ``lost: N``.

Usage (from the repo root)::

    SLEUTH_MODEL_MIRROR=../shared/data/models SLEUTH_MODEL_CACHE=.cache/models \\
        python benchmarks/jobs_burst.py [--jobs 200] [--sync 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_latency import (  # noqa: E402
    CT,
    Server,
    fmt_ms,
    load_average,
    pct,
    pick_images,
    post_detect,
    print_table,
    ratio,
)


def _ts(iso: str | None) -> float:
    if not iso:
        return float("nan")
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def list_jobs(c: httpx.Client, status: str) -> list[dict[str, Any]]:
    """Every job of the team with ``status`` (follows ``next_cursor``)."""
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"status": status, "limit": 100}
    while True:
        r = c.get("/v1/jobs", params=params)
        r.raise_for_status()
        page = r.json()
        out += page["data"]
        if not page.get("next_cursor"):
            return out
        params["cursor"] = page["next_cursor"]


def submit_jobs(server: Server, images: Sequence[tuple[str, bytes]], n: int, threads: int) -> tuple[list[str], float]:
    """Create + upload + submit ``n`` detect jobs from ``threads`` clients: (job ids, wall time of the first submit)."""
    ids: list[str | None] = [None] * n
    first_submit = [float("inf")]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            with server.client() as c:
                for i in range(k, n, threads):
                    name, data = images[i % len(images)]
                    body = {
                        "operation": "detect",
                        "filename": f"burst_{i:03d}_{name}",
                        "content_type": "image/jpeg",
                        "client_reference_id": f"burst/{i:03d}",
                        "options": {"threshold": 0.2, "classify": True},
                    }
                    r = c.post("/v1/jobs", json=body)
                    if r.status_code != 201:
                        raise RuntimeError(f"create: {r.status_code} {r.text[:300]}")
                    job = r.json()
                    up = c.put(job["upload"]["url"], content=data, headers=job["upload"]["headers"])
                    if up.status_code != 200:
                        raise RuntimeError(f"upload: {up.status_code} {up.text[:300]}")
                    t = time.time()
                    sub = c.post(job["submit_url"])
                    if sub.status_code != 202:
                        raise RuntimeError(f"submit: {sub.status_code} {sub.text[:300]}")
                    with lock:
                        first_submit[0] = min(first_submit[0], t)
                    ids[i] = job["id"]
        except BaseException as e:  # surfaced below
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise SystemExit(f"job submission failed: {errors[0]!r}")
    return [i for i in ids if i is not None], first_submit[0]


class Poller(threading.Thread):
    """Counts completed/failed jobs every ``period`` s until ``expected`` are terminal (or stopped)."""

    def __init__(self, server: Server, period: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.period = period
        self.expected: int | None = None
        self.samples: list[tuple[float, int, int]] = []  # (time, completed, failed)
        self.stop = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        with self.server.client() as c:
            while not self.stop.is_set():
                done, failed = len(list_jobs(c, "completed")), len(list_jobs(c, "failed"))
                self.samples.append((time.time(), done, failed))
                if self.expected is not None and done + failed >= self.expected:
                    self.done.set()
                    return
                self.stop.wait(self.period)

    def completed_at(self, t: float) -> int:
        """Completed jobs at wall time ``t`` (last sample before it)."""
        n = 0
        for ts, done, _ in self.samples:
            if ts <= t:
                n = done
        return n


def sync_run(server: Server, images: Sequence[tuple[str, bytes]], n: int) -> list[tuple[float, float]]:
    """``n`` sequential ``/v1/detect`` (cycling over ``images``): (latency s, wall end time) each."""
    out = []
    with server.client() as c:
        for i in range(n):
            t = time.perf_counter()
            post_detect(c, images[i % len(images)])
            out.append((time.perf_counter() - t, time.time()))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=200, help="async jobs in the burst (default 200)")
    ap.add_argument("--sync", type=int, default=20, help="sequential sync requests per phase (default 20)")
    ap.add_argument("--workers", type=int, default=2, help="in-process job worker threads (default 2)")
    ap.add_argument("--submit-threads", type=int, default=4, help="client threads creating the jobs (default 4)")
    ap.add_argument("--drain-timeout", type=float, default=900.0, help="give up waiting after this many s")
    args = ap.parse_args(argv)
    if not CT.is_dir():
        print(f"skip: {CT} not present")
        return 0
    images = pick_images()
    print(f"load average at start: {load_average()}")

    with Server(workers=args.workers) as server:
        with server.client() as c:
            t = time.perf_counter()
            for im in images:  # loads the models; the job lane shares the same batchers
                post_detect(c, im)
            print(f"warm-up (model load + 10 singles): {time.perf_counter() - t:.1f} s")
        alone = sync_run(server, images, args.sync)
        load_alone = load_average()

        poller = Poller(server)
        poller.start()
        t_sub0 = time.time()
        ids, first_submit = submit_jobs(server, images, args.jobs, args.submit_threads)
        t_sub1 = time.time()
        poller.expected = len(ids)
        backlog_start = len(ids) - poller.completed_at(time.time())
        during = sync_run(server, images, args.sync)
        t_sync_end = time.time()
        load_during = load_average()
        backlog_end = len(ids) - poller.completed_at(t_sync_end)
        if not poller.done.wait(args.drain_timeout):
            poller.stop.set()
            print(f"WARNING: the burst did not drain within {args.drain_timeout:.0f} s")
        poller.join(5)

        with server.client() as c:
            completed = list_jobs(c, "completed")
            failed = list_jobs(c, "failed")
            queued = list_jobs(c, "queued") + list_jobs(c, "processing")
    submitted = set(ids)
    done_ids = {j["id"] for j in completed} & submitted
    lost = len(submitted) - len(done_ids)
    last_done = max((_ts(j["completed_at"]) for j in completed), default=float("nan"))
    drain = last_done - first_submit
    during_ok = [lat for lat, end in during if end <= last_done]

    print(
        f"\nsubmitted {len(ids)} jobs with {args.submit_threads} client threads in {t_sub1 - t_sub0:.1f} s; "
        f"server job workers: {args.workers}"
    )
    print(
        f"backlog (submitted - completed) when the sync run started: ~{backlog_start}, "
        f"when it ended: ~{backlog_end} (1 s poll)"
    )
    a_lat = [lat for lat, _ in alone]
    print_table(
        "sync POST /v1/detect, single image, sequential",
        ["phase", "requests", "p50", "p95", "load avg (1/5/15 min)"],
        [
            ["alone", str(len(a_lat)), fmt_ms(pct(a_lat, 50)), fmt_ms(pct(a_lat, 95)), load_alone],
            [
                "during the burst",
                f"{len(during_ok)}/{len(during)}",
                fmt_ms(pct(during_ok, 50)),
                fmt_ms(pct(during_ok, 95)),
                load_during,
            ],
            [
                "ratio during / alone",
                "",
                ratio(pct(during_ok, 50), pct(a_lat, 50)),
                ratio(pct(during_ok, 95), pct(a_lat, 95)),
                "",
            ],
        ],
    )
    print_table(
        f"burst of {len(ids)} async detect jobs",
        ["drain (first submit -> last completed)", "jobs/s", "completed", "failed", "still pending", "lost"],
        [
            [
                f"{drain:.1f} s",
                f"{len(done_ids) / drain:.2f}" if drain == drain and drain > 0 else "—",
                str(len(done_ids)),
                str(len(failed)),
                str(len(queued)),
                str(lost),
            ]
        ],
    )
    print(f"\nlost: {lost}")
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
