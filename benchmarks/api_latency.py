"""End-to-end API latency of the wildlife sync endpoints against a real ``sleuth serve``.

Starts ``sleuth serve`` (uvicorn, SQLite in a temp data dir, billing off, rate limits off,
no job workers) as a subprocess, creates an API key with ``sleuth keys create``, and talks
HTTP to it with httpx, so every number includes HTTP, multipart parsing, auth, credit
bookkeeping and the stored-result DB write.

1. ``POST /v1/batch-detect`` with 10 shared camera-trap images (default profile: MD-Lite +
   YOLOX-nano relabel + Coral classifier on the crops), ``--requests`` sequential requests:
   p50/p95 latency, against the **model-only** time of the same 10 images measured in this
   process: the same models' ORT sessions on pre-decoded, pre-processed tensors
   (``predict_batch`` of MD-Lite in batches of 8, YOLOX-nano, and the Coral pack on the crops
   the pipeline would classify), timing only ``predict_batch``.
2. ``POST /v1/detect``: 1 client vs ``--clients`` concurrent single-image clients (threads,
   one httpx.Client each): throughput (images/s) and p50/p95 latency, with ratios.

Usage (from the repo root)::

    SLEUTH_MODEL_MIRROR=../shared/data/models SLEUTH_MODEL_CACHE=.cache/models \\
        python benchmarks/api_latency.py [--requests 20] [--clients 8] [--per-client 4]

``benchmarks/jobs_burst.py`` reuses :class:`Server`, :func:`pick_images` and :func:`pct`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CT = DATA / "camera_traps"

# 10 ordinary camera-trap frames (animals of several sizes, a person, a vehicle, a blank, a
# night frame, one 12 MP MPO): 8.2 MB together, under the 10 MB raw-image budget of a batch.
BATCH_IMAGES = (
    "speciesnet/african_elephants.jpg",
    "speciesnet/american_black_bear.jpg",
    "speciesnet/blank.jpg",
    "speciesnet/domestic_cattle.jpg",
    "speciesnet/domestic_dog.jpg",
    "speciesnet/human.jpg",
    "speciesnet/ocelot.jpg",
    "speciesnet/vehicle.jpg",
    "animl_southwest/IMAG0004_cougar.JPG",
    "animl_southwest/2021-05-28_SYFR0041_deer.JPG",
)
RAW_BUDGET = 10_000_000


def pick_images() -> list[tuple[str, bytes]]:
    """The 10 benchmark images as (filename, bytes); checked against the manifest (no 0-byte files)."""
    man = json.loads((CT / "manifest.json").read_text())
    known = {r["path"]: r for r in man["images"]}
    out = []
    for rel in BATCH_IMAGES:
        rec = known.get(rel)
        if rec is None or rec["kind"] == "invalid" or not rec["bytes"]:
            raise SystemExit(f"benchmark image {rel} is missing from the manifest or unusable")
        data = (CT / rel).read_bytes()
        out.append((Path(rel).name, data))
    total = sum(len(d) for _, d in out)
    if total > RAW_BUDGET:
        raise SystemExit(f"the benchmark batch is {total} bytes, over the {RAW_BUDGET} byte budget")
    return out


def pct(values: Sequence[float], q: float) -> float:
    """Percentile (linear interpolation, numpy's default) of ``values``; NaN when empty."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def fmt_ms(v: float) -> str:
    return "—" if v != v else f"{v * 1000:.0f} ms"


def ratio(a: float, b: float) -> str:
    return "—" if not b or a != a or b != b else f"{a / b:.2f}x"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    line = "  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on Linux
        return "n/a"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def model_env() -> dict[str, str]:
    """SLEUTH_MODEL_MIRROR / SLEUTH_MODEL_CACHE defaults relative to the repo root (as CI sets them)."""
    env = {}
    env["SLEUTH_MODEL_MIRROR"] = os.environ.get("SLEUTH_MODEL_MIRROR") or str(DATA / "models")
    env["SLEUTH_MODEL_CACHE"] = os.environ.get("SLEUTH_MODEL_CACHE") or str(ROOT / ".cache" / "models")
    # relative values are relative to the repo root (the server runs there too)
    for k, v in env.items():
        if not Path(v).is_absolute():
            env[k] = str((ROOT / v).resolve())
    return env


class Server:
    """``sleuth serve`` in a subprocess on a free port, with its own temp data dir and one API key."""

    def __init__(self, *, workers: int = 0, extra_env: dict[str, str] | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="sleuth-bench-")
        data = Path(self._tmp.name) / "data"
        self.env = {
            **os.environ,
            **model_env(),
            "SLEUTH_DATA_DIR": str(data),
            "SLEUTH_BILLING_ENABLED": "false",
            "SLEUTH_RATE_LIMIT_ENABLED": "false",
            "SLEUTH_WORKERS": str(workers),
            "SLEUTH_QUEUE": "local",
            **(extra_env or {}),
        }
        for k in ("SLEUTH_DATABASE_URL", "SLEUTH_CONFIG", "SLEUTH_STORAGE", "SLEUTH_STORAGE_DIR"):
            self.env.pop(k, None)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(self._tmp.name) / "server.log"

    def __enter__(self) -> Server:
        cli = [sys.executable, "-m", "sleuth.cli"]
        out = subprocess.run(
            [*cli, "keys", "create", "--team", "bench", "--create-team"],
            env=self.env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        self.key = out.stdout.strip().splitlines()[-1].strip()
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [*cli, "serve", "--port", str(self.port), "--log-level", "warning"],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"sleuth serve exited ({self.proc.returncode}):\n{self.log_path.read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.3)
        self.__exit__()
        raise SystemExit("sleuth serve did not become healthy within 90 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._tmp.cleanup()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def client(self, timeout: float = 300.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.auth, timeout=timeout)


# ---------------------------------------------------------------------------- requests


def post_batch(c: httpx.Client, images: Sequence[tuple[str, bytes]]) -> dict[str, Any]:
    files = [("images", (name, data, "image/jpeg")) for name, data in images]
    r = c.post("/v1/batch-detect", files=files)
    if r.status_code != 200:
        raise SystemExit(f"batch-detect failed: {r.status_code} {r.text[:500]}")
    body: dict[str, Any] = r.json()
    return body


def post_detect(c: httpx.Client, image: tuple[str, bytes]) -> dict[str, Any]:
    r = c.post("/v1/detect", files=[("image", (image[0], image[1], "image/jpeg"))])
    if r.status_code != 200:
        raise SystemExit(f"detect failed: {r.status_code} {r.text[:500]}")
    body: dict[str, Any] = r.json()
    return body


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def sequential_detect(server: Server, images: Sequence[tuple[str, bytes]], n: int) -> list[float]:
    """``n`` sequential single-image ``POST /v1/detect`` (cycling over ``images``): latencies in s."""
    with server.client() as c:
        return [timed(partial(post_detect, c, images[i % len(images)])) for i in range(n)]


def concurrent_detect(
    server: Server, images: Sequence[tuple[str, bytes]], clients: int, per_client: int
) -> tuple[list[float], float]:
    """``clients`` threads, each sending ``per_client`` sequential ``/v1/detect``: (latencies, wall s)."""
    lat: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            with server.client() as c:
                start.wait()
                for j in range(per_client):
                    dt = timed(partial(post_detect, c, images[(k * per_client + j) % len(images)]))
                    with lock:
                        lat.append(dt)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"a client failed: {errors[0]!r}")
    return lat, wall


# ---------------------------------------------------------------------------- model-only


def model_only_seconds(images: Sequence[tuple[str, bytes]], repeats: int, threshold: float = 0.2) -> dict[str, Any]:
    """Best-of and median time of the models alone on the 10 images (``predict_batch`` only).

    Same models and the same inputs as the server's default profile: decode at the service's
    ``DECODE_MAX_SIDE``, MD-Lite and YOLOX-nano ``preprocess`` (untimed), MD-Lite in batches
    of its batcher size, YOLOX-nano at its fixed batch, then the crops the pipeline classifies
    (boxes >= ``threshold`` after the person/vehicle fusion) through the Coral pack's
    ``preprocess`` (untimed) and ``predict_batch`` in chunks of 16.
    """
    from sleuth.engine.registry import get_model
    from sleuth.media.images import decode_image
    from sleuth.models.classifier import load_coral_pack
    from sleuth.models.yolox_nano import fuse_person_vehicle
    from sleuth.pipelines.wildlife import crop_box
    from sleuth.services.wildlife import DECODE_MAX_SIDE, PROFILES
    from sleuth.settings import Settings

    env = model_env()
    s = Settings(
        model_mirror=Path(env["SLEUTH_MODEL_MIRROR"]),
        model_cache=Path(env["SLEUTH_MODEL_CACHE"]),
        data_dir=Path(tempfile.gettempdir()) / "sleuth-bench-model-only",
    )
    prof = PROFILES["default"]
    det = get_model(prof.detector, s)
    assert prof.relabeler is not None
    rel = get_model(prof.relabeler, s)
    pack = load_coral_pack(settings=s)
    batch = min(s.max_batch_size, det.max_batch_size or s.max_batch_size)
    rel_batch = min(s.max_batch_size, rel.max_batch_size or s.max_batch_size)

    t = time.perf_counter()
    decoded = [decode_image(data, DECODE_MAX_SIDE) for _, data in images]
    t_decode = time.perf_counter() - t
    t = time.perf_counter()
    det_in = [det.preprocess(d) for d in decoded]
    rel_in = [rel.preprocess(d) for d in decoded]
    t_prep = time.perf_counter() - t

    def chunks(xs: Sequence[Any], n: int) -> list[Sequence[Any]]:
        return [xs[i : i + n] for i in range(0, len(xs), n)]

    # untimed pass: the boxes the pipeline crops
    det_raw = [r for ch in chunks(det_in, batch) for r in det.predict_batch(ch)]
    rel_raw = [r for ch in chunks(rel_in, rel_batch) for r in rel.predict_batch(ch)]
    crops = []
    for d, dr, rr, dp, rp in zip(decoded, det_raw, rel_raw, det_in, rel_in, strict=True):
        dets = fuse_person_vehicle(det.postprocess(dr, dp).detections, rel.postprocess(rr, rp).detections)
        crops += [pack.preprocess(crop_box(d, x.bbox)) for x in dets if x.conf >= threshold]

    t_det: list[float] = []
    t_rel: list[float] = []
    t_cls: list[float] = []
    for _ in range(repeats):
        t = time.perf_counter()
        for ch in chunks(det_in, batch):
            det.predict_batch(ch)
        t_det.append(time.perf_counter() - t)
        t = time.perf_counter()
        for ch in chunks(rel_in, rel_batch):
            rel.predict_batch(ch)
        t_rel.append(time.perf_counter() - t)
        t = time.perf_counter()
        for ch in chunks(crops, 16):
            pack.predict_batch(ch)
        t_cls.append(time.perf_counter() - t)
    totals = [a + b + c for a, b, c in zip(t_det, t_rel, t_cls, strict=True)]
    return {
        "crops": len(crops),
        "detector_batch": batch,
        "relabeler_batch": rel_batch,
        "detector_s": statistics.median(t_det),
        "relabeler_s": statistics.median(t_rel),
        "classifier_s": statistics.median(t_cls),
        "median_s": statistics.median(totals),
        "best_s": min(totals),
        "decode_s": t_decode,
        "preprocess_s": t_prep,
    }


# ---------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20, help="sequential batch-detect requests (default 20)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent single-image clients (default 8)")
    ap.add_argument("--per-client", type=int, default=4, help="requests per concurrent client (default 4)")
    ap.add_argument("--single", type=int, default=20, help="requests of the 1-client detect run (default 20)")
    ap.add_argument("--model-repeats", type=int, default=5, help="model-only repetitions (default 5)")
    ap.add_argument("--warmup", type=int, default=2, help="warm-up batch-detect requests (default 2)")
    args = ap.parse_args(argv)
    if not CT.is_dir():
        print(f"skip: {CT} not present")
        return 0
    images = pick_images()
    total_mb = sum(len(d) for _, d in images) / 1e6
    print(f"images: {len(images)} shared camera-trap frames, {total_mb:.2f} MB raw; load average {load_average()}")

    with Server(workers=0) as server:
        with server.client() as c:
            t = time.perf_counter()
            for _ in range(max(1, args.warmup)):
                body = post_batch(c, images)
            for im in images:
                post_detect(c, im)
            print(f"warm-up (model load + {args.warmup} batches + 10 singles): {time.perf_counter() - t:.1f} s")
            n_ann = sum(len(r.get("annotations", [])) for r in body["results"])
            failed = body["info"]["total_failed"]
            print(f"batch result: {n_ann} annotations, {failed} failed images")
            batch_lat = []
            server_ms = []
            for _ in range(args.requests):
                t = time.perf_counter()
                body = post_batch(c, images)
                batch_lat.append(time.perf_counter() - t)
                server_ms.append(body["info"]["total_time_ms"] / 1000)
        load_mid = load_average()
        single_lat = sequential_detect(server, images, args.single)
        single_wall = sum(single_lat)
        conc_lat, conc_wall = concurrent_detect(server, images, args.clients, args.per_client)
        load_end = load_average()

    mo = model_only_seconds(images, args.model_repeats)

    p50, p95 = pct(batch_lat, 50), pct(batch_lat, 95)
    print_table(
        f"POST /v1/batch-detect, 10 images, {args.requests} sequential requests (load avg after: {load_mid})",
        ["", "p50", "p95", "min", "p50 / model-only"],
        [
            ["HTTP round trip", fmt_ms(p50), fmt_ms(p95), fmt_ms(min(batch_lat)), ratio(p50, mo["median_s"])],
            [
                "server-side (info.total_time_ms)",
                fmt_ms(pct(server_ms, 50)),
                fmt_ms(pct(server_ms, 95)),
                fmt_ms(min(server_ms)),
                ratio(pct(server_ms, 50), mo["median_s"]),
            ],
            [
                f"model-only (predict_batch; median of {args.model_repeats})",
                fmt_ms(mo["median_s"]),
                "",
                fmt_ms(mo["best_s"]),
                "1.00x",
            ],
        ],
    )
    print(
        f"  model-only split (median): MD-Lite {fmt_ms(mo['detector_s'])} (batches of {mo['detector_batch']}), "
        f"YOLOX-nano {fmt_ms(mo['relabeler_s'])} (batch {mo['relabeler_batch']}), "
        f"Coral pack {fmt_ms(mo['classifier_s'])} ({mo['crops']} crops)"
    )
    print(
        f"  not in model-only (one thread, once): decode to >= 1280 px {fmt_ms(mo['decode_s'])}, "
        f"detector preprocessing {fmt_ms(mo['preprocess_s'])}"
    )

    n_conc = len(conc_lat)
    thr1 = len(single_lat) / single_wall
    thr8 = n_conc / conc_wall
    print_table(
        f"POST /v1/detect, single image (load avg at end: {load_end})",
        ["clients", "requests", "images/s", "p50", "p95"],
        [
            ["1", str(len(single_lat)), f"{thr1:.2f}", fmt_ms(pct(single_lat, 50)), fmt_ms(pct(single_lat, 95))],
            [
                str(args.clients),
                str(n_conc),
                f"{thr8:.2f}",
                fmt_ms(pct(conc_lat, 50)),
                fmt_ms(pct(conc_lat, 95)),
            ],
            [
                f"ratio {args.clients} / 1",
                "",
                f"{thr8 / thr1:.2f}x",
                ratio(pct(conc_lat, 50), pct(single_lat, 50)),
                ratio(pct(conc_lat, 95), pct(single_lat, 95)),
            ],
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
