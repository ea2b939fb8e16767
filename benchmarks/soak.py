"""A bounded mixed soak against a real ``sleuth serve`` on loopback: latency, memory, fairness, nothing lost.

Starts ``sleuth serve`` (uvicorn, SQLite in a temp data dir, **billing on**, rate limits off, the in-process job
workers) with one team and key per client kind, every team granted plenty of credits, then:

1. **Idle baselines.** ``--idle`` sequential sync ``POST /v1/batch-detect`` (the 10 benchmark camera-trap images of
   ``api_latency.py``) and ``--idle`` one-file deepfake batches (``POST /detect/batch`` + polling), alone.
2. **Soak** for ``--duration`` seconds, ``--clients`` client threads split by ``--mix`` (weights):

   * ``sync``: ``POST /v1/batch-detect`` with the 10 images, back to back (team ``wild``);
   * ``audio``: ``POST /detect`` with ``Prefer: wait``, one shared audio file each (team ``audio``);
   * ``batch``: small deepfake batches (``--batch-files``: audio and face images) to ``POST /detect/batch``,
     polled until done (team ``df``);
   * ``bulk``: 50-file deepfake batches (team ``bulk``), polled until done;
   * ``probe``: one-file deepfake batches from its own team (``probe``), polled every 0.2 s: the fairness figure
     is its completion time under load against its idle time.

3. **Drain**: every batch still running is polled to its end (at most ``--drain-timeout`` s).
4. **Checks** (from the server's database, after the drain): every item the clients created exists and is
   terminal; per team, no credits still reserved, the wallet equals the ledger, and the captured credits equal
   what the clients were served (wildlife: images without an error in 200 answers; deepfake: the cost of the
   completed items).

RSS is sampled every second from ``/proc`` for the server process and all its descendants (start = healthy,
before any model is loaded). "Growth" compares the largest RSS in the first and in the last ``--window`` seconds
of the soak.

Usage (from the repo root)::

    SLEUTH_MODEL_MIRROR=../shared/data/models SLEUTH_MODEL_CACHE=.cache/models \\
        python benchmarks/soak.py [--clients 16] [--duration 600] [--mix sync=2,audio=6,batch=6,bulk=1,probe=1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_latency import DATA, ROOT, Server, load_average, pct, pick_images, print_table  # noqa: E402

KINDS = ("sync", "audio", "batch", "bulk", "probe")
TEAMS = {"sync": "wild", "audio": "audio", "batch": "df", "bulk": "bulk", "probe": "probe"}
GRANT = 10_000_000


# ---------------------------------------------------------------------------- inputs


def audio_files(n: int = 12) -> list[tuple[str, bytes, str]]:
    """Shared real and synthetic speech (FLAC and WAV), from the manifest."""
    man = json.loads((DATA / "audio" / "manifest.json").read_text())["files"]
    real = [f for f in man if f["label"] == "real"][: n // 2]
    fake = [f for f in man if f["label"] != "real" and f["path"].endswith(".wav")][: n - len(real)]
    out = []
    for f in real + fake:
        p = DATA / "audio" / f["path"]
        out.append((p.name, p.read_bytes(), "audio/wav" if p.suffix == ".wav" else "audio/flac"))
    return out


def face_files() -> list[tuple[str, bytes, str]]:
    man = json.loads((DATA / "faces" / "manifest.json").read_text())["files"]
    return [(Path(f["path"]).name, (DATA / "faces" / f["path"]).read_bytes(), "image/jpeg") for f in man]


def split_mix(spec: str, clients: int) -> dict[str, int]:
    """``sync=2,audio=6,...`` weights -> client counts summing to ``clients`` (largest remainder)."""
    weights = {k: 0.0 for k in KINDS}
    for part in spec.split(","):
        k, _, v = part.partition("=")
        if k.strip() not in weights:
            raise SystemExit(f"--mix: unknown kind {k!r} (kinds: {', '.join(KINDS)})")
        weights[k.strip()] = float(v)
    total = sum(weights.values())
    raw = {k: clients * w / total for k, w in weights.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[: clients - sum(counts.values())]:
        counts[k] += 1
    return counts


# ---------------------------------------------------------------------------- memory


def tree_rss(pid: int) -> int:
    """RSS in bytes of ``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = defaultdict(list)
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children[ppid].append(int(d))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
        todo += children.get(p, [])
    return total


class RssSampler(threading.Thread):
    def __init__(self, pid: int, period: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), tree_rss(self.pid)))
            self.stop.wait(self.period)

    def between(self, a: float, b: float) -> list[int]:
        return [r for t, r in self.samples if a <= t <= b]


# ---------------------------------------------------------------------------- clients


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.requests: dict[str, int] = defaultdict(int)
        self.errors: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.wild_ok_images = 0
        self.created: dict[str, list[str]] = defaultdict(list)  # team -> detect uuids
        self.batches: dict[str, int] = defaultdict(int)  # team -> batches that finished
        self.pending: list[tuple[str, str, str]] = []  # (kind, team, batch uuid) not yet polled to its end

    def record(self, endpoint: str, seconds: float, status: int | str) -> None:
        with self.lock:
            self.requests[endpoint] += 1
            if status in (200, 201, 202):
                self.latency[endpoint].append(seconds)
            else:
                self.errors[endpoint][str(status)] += 1


def post_batch_detect(c: httpx.Client, images: Sequence[tuple[str, bytes]], st: Stats) -> float | None:
    files = [("images", (n, d, "image/jpeg")) for n, d in images]
    t = time.perf_counter()
    try:
        r = c.post("/v1/batch-detect", files=files)
    except httpx.HTTPError as e:
        st.record("POST /v1/batch-detect", time.perf_counter() - t, type(e).__name__)
        return None
    dt = time.perf_counter() - t
    st.record("POST /v1/batch-detect", dt, r.status_code)
    if r.status_code != 200:
        return None
    ok = int(r.json()["info"]["total_processed"])
    with st.lock:
        st.wild_ok_images += ok
    return dt


def create_batch(c: httpx.Client, files: Sequence[tuple[str, bytes, str]], st: Stats, team: str) -> str | None:
    t = time.perf_counter()
    try:
        r = c.post("/detect/batch", files=[("files[]", f) for f in files], data={"visualize": "false"})
    except httpx.HTTPError as e:
        st.record("POST /detect/batch", time.perf_counter() - t, type(e).__name__)
        return None
    st.record("POST /detect/batch", time.perf_counter() - t, r.status_code)
    if r.status_code != 202:
        return None
    item = r.json()["item"]
    with st.lock:
        st.created[team] += list(item["detect_uuids"])
    return str(item["uuid"])


def poll_batch(c: httpx.Client, uuid: str, st: Stats, team: str, deadline: float, every: float = 1.0) -> bool:
    while time.monotonic() < deadline:
        try:
            r = c.get(f"/detect/batch/{uuid}")
            if r.status_code == 200 and r.json()["item"]["status"] in ("completed", "failed"):
                with st.lock:
                    st.batches[team] += 1
                return True
            if r.status_code != 200:
                st.record("GET /detect/batch/{uuid}", 0.0, r.status_code)
        except httpx.HTTPError as e:
            st.record("GET /detect/batch/{uuid}", 0.0, type(e).__name__)
        time.sleep(every)
    return False


def run_client(kind: str, k: int, server: Server, keys: dict[str, str], inputs: dict[str, Any], st: Stats,
               until: float, probe_times: list[float]) -> None:  # fmt: skip
    team = TEAMS[kind]
    audio, faces = inputs["audio"], inputs["faces"]
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {keys[team]}"}, timeout=600) as c:
        n = 0
        while time.monotonic() < until:
            n += 1
            if kind == "sync":
                post_batch_detect(c, inputs["images"], st)
            elif kind == "audio":
                name, data, ctype = audio[(k + n) % len(audio)]
                t = time.perf_counter()
                try:
                    r = c.post("/detect", files={"file": (name, data, ctype)}, headers={"Prefer": "wait"})
                    status: int | str = r.status_code
                except httpx.HTTPError as e:
                    r, status = None, type(e).__name__
                st.record("POST /detect (Prefer: wait)", time.perf_counter() - t, status)
                if r is not None and r.status_code == 200:
                    with st.lock:
                        st.created[team].append(r.json()["item"]["uuid"])
            else:
                if kind == "probe":
                    files = [audio[n % len(audio)]]
                elif kind == "bulk":
                    files = [(audio + faces)[(n + i) % (len(audio) + len(faces))] for i in range(50)]
                else:
                    files = [(audio + faces)[(k + n + i) % (len(audio) + len(faces))] for i in range(inputs["bsize"])]
                files = [(f"{i}-{f[0]}", f[1], f[2]) for i, f in enumerate(files)]
                t = time.monotonic()
                uuid = create_batch(c, files, st, team)
                if uuid is None:
                    time.sleep(1.0)
                    continue
                done = poll_batch(c, uuid, st, team, until + 5, 0.2 if kind == "probe" else 1.0)
                if not done:
                    with st.lock:
                        st.pending.append((kind, team, uuid))
                    return
                if kind == "probe":
                    probe_times.append(time.monotonic() - t)


# ---------------------------------------------------------------------------- checks


def check_books(env: dict[str, str], st: Stats) -> list[str]:
    """Nothing lost, credits add up: read the server's database."""
    os.environ.update({k: v for k, v in env.items() if k.startswith("SLEUTH_")})
    from sqlalchemy import select

    from sleuth.db.engine import Database
    from sleuth.db.models import JobItem
    from sleuth.platform import credits
    from sleuth.platform.auth import get_team
    from sleuth.settings import Settings

    db = Database(Settings())
    problems: list[str] = []
    for team_name in sorted(set(TEAMS.values())):
        try:
            team = get_team(db, team_name)
        except Exception:
            continue
        with db.session() as s:
            items = {i.id: i for i in s.scalars(select(JobItem).where(JobItem.team_id == team.id))}
        created = st.created.get(team_name, [])
        missing = [u for u in created if u not in items]
        unfinished = [i.id for i in items.values() if i.status not in ("completed", "failed")]
        failed = sum(1 for i in items.values() if i.status == "failed")
        b = credits.balance(db, team.id)
        expected = (
            st.wild_ok_images if team_name == "wild" else sum(i.cost for i in items.values() if i.status == "completed")
        )
        ok = (
            not missing
            and not unfinished
            and b.reserved_open == 0
            and b.available == credits.ledger_sum(db, team.id)
            and b.granted_total - b.captured_total == b.available
            and b.captured_total == expected
        )
        print(
            f"  {team_name:<6} items {len(items):>5} (created by clients {len(created)}, missing {len(missing)}, "
            f"unfinished {len(unfinished)}, failed {failed}); captured {b.captured_total} = expected {expected}; "
            f"reserved {b.reserved_open}; wallet {b.available} = ledger {credits.ledger_sum(db, team.id)}: "
            f"{'OK' if ok else 'MISMATCH'}"
        )
        if not ok:
            problems.append(team_name)
    return problems


# ---------------------------------------------------------------------------- main


def mb(v: float) -> str:
    return f"{v / 1e6:.0f} MB"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--duration", type=float, default=600.0, help="soak seconds")
    ap.add_argument("--mix", default="sync=2,audio=6,batch=6,bulk=1,probe=1", help="client weights per kind")
    ap.add_argument("--batch-files", type=int, default=3, help="files per small deepfake batch")
    ap.add_argument("--idle", type=int, default=10, help="idle-baseline requests of each kind")
    ap.add_argument("--workers", type=int, default=2, help="in-process job workers of the server")
    ap.add_argument("--window", type=float, default=60.0, help="seconds compared for RSS growth")
    ap.add_argument("--drain-timeout", type=float, default=900.0)
    args = ap.parse_args(argv)
    counts = split_mix(args.mix, args.clients)
    inputs = {"images": pick_images(), "audio": audio_files(), "faces": face_files(), "bsize": args.batch_files}
    print(f"soak: {args.clients} clients {counts}, {args.duration:.0f} s, load average {load_average()}")

    extra = {"SLEUTH_BILLING_ENABLED": "true", "SLEUTH_WORKERS": str(args.workers)}
    with Server(workers=args.workers, extra_env=extra) as server:
        assert server.proc is not None
        rss = RssSampler(server.proc.pid)
        rss.start()
        keys = {}
        cli = [sys.executable, "-m", "sleuth.cli"]
        import subprocess

        for team in sorted(set(TEAMS.values())):
            out = subprocess.run([*cli, "keys", "create", "--team", team, "--create-team"], env=server.env,
                                 cwd=ROOT, check=True, capture_output=True, text=True)  # fmt: skip
            keys[team] = out.stdout.strip().splitlines()[-1].strip()
            subprocess.run([*cli, "credits", "grant", "--team", team, str(GRANT)], env=server.env, cwd=ROOT,
                           check=True, capture_output=True)  # fmt: skip
        st_idle = Stats()
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {keys['wild']}"}, timeout=600) as c:
            post_batch_detect(c, inputs["images"], st_idle)  # warm-up: loads the wildlife models
            idle_sync = [d for d in (post_batch_detect(c, inputs["images"], st_idle) for _ in range(args.idle)) if d]
        idle_probe: list[float] = []
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {keys['probe']}"}, timeout=600) as c:
            for n in range(args.idle + 1):
                t = time.monotonic()
                uuid = create_batch(c, [inputs["audio"][n % len(inputs["audio"])]], st_idle, "probe")
                if uuid and poll_batch(c, uuid, st_idle, "probe", time.monotonic() + 300, 0.2) and n:
                    idle_probe.append(time.monotonic() - t)  # the first one loads AASIST
            for f in inputs["faces"][:1]:  # load the face models too before the soak
                uuid = create_batch(c, [f], st_idle, "probe")
                if uuid:
                    poll_batch(c, uuid, st_idle, "probe", time.monotonic() + 300, 0.2)
        st = Stats()
        st.created = st_idle.created  # the idle batches count in the books too
        st.wild_ok_images = st_idle.wild_ok_images
        probe_times: list[float] = []
        rss_idle = tree_rss(server.proc.pid)
        t_load = time.monotonic()
        until = t_load + args.duration
        threads = [
            threading.Thread(target=run_client, args=(kind, k, server, keys, inputs, st, until, probe_times))
            for kind, n in counts.items()
            for k in range(n)
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        t_end = time.monotonic()
        # drain what is still running, then the books
        deadline = time.monotonic() + args.drain_timeout
        undrained = 0
        for _kind, team, uuid in list(st.pending):
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {keys[team]}"}) as c:
                undrained += not poll_batch(c, uuid, st, team, deadline)
        t_drained = time.monotonic()
        rss.stop.set()
        rss.join()
        first = rss.between(t_load, t_load + args.window)
        last = rss.between(t_end - args.window, t_end)
        all_rss = [r for _, r in rss.samples]
        print(
            f"\nload average at the end {load_average()}; soak {t_end - t_load:.0f} s, drain {t_drained - t_end:.0f} s"
        )
        rows = []
        for ep in sorted(st.requests):
            lat = st.latency.get(ep, [])
            errs = dict(st.errors.get(ep, {}))
            rows.append([ep, str(st.requests[ep]), json.dumps(errs) if errs else "0",
                         f"{pct(lat, 50):.2f} s", f"{pct(lat, 95):.2f} s"])  # fmt: skip
        print_table("Requests during the soak", ["endpoint", "requests", "errors", "p50", "p95"], rows)
        print("\nMemory (server process and children, RSS)")
        print(f"  start (healthy, no model loaded) {mb(rss.samples[0][1])}; after the idle baselines {mb(rss_idle)}")
        print(f"  peak {mb(max(all_rss))}; end {mb(all_rss[-1])}")
        if first and last:
            growth = max(last) / max(first) - 1
            print(f"  largest RSS in the first {args.window:.0f} s of the soak {mb(max(first))}, "
                  f"in the last {args.window:.0f} s {mb(max(last))}: growth {growth * 100:+.1f} %")  # fmt: skip
        minutes = [rss.between(t_load + 60 * m, t_load + 60 * (m + 1)) for m in range(int((t_end - t_load) // 60))]
        print("  largest RSS per minute of the soak: " + ", ".join(f"{max(v) / 1e6:.0f}" for v in minutes if v) + " MB")
        sync_load = st.latency.get("POST /v1/batch-detect", [])
        print("\nSync POST /v1/batch-detect (10 images)")
        print(f"  idle p50 {pct(idle_sync, 50):.2f} s p95 {pct(idle_sync, 95):.2f} s; "
              f"under load p50 {pct(sync_load, 50):.2f} s p95 {pct(sync_load, 95):.2f} s; "
              f"p95 ratio {pct(sync_load, 95) / pct(idle_sync, 95):.2f}x (target <= 3x)")  # fmt: skip
        print("\nFairness: one-file deepfake batch of its own team (create -> completed)")
        print(f"  idle median {pct(idle_probe, 50):.2f} s; under load n={len(probe_times)} "
              f"p50 {pct(probe_times, 50):.2f} s "
              f"p95 {pct(probe_times, 95):.2f} s max {max(probe_times, default=float('nan')):.2f} s; "
              f"p95 / idle {pct(probe_times, 95) / pct(idle_probe, 50):.2f}x (target <= 3x)")  # fmt: skip
        print(f"\nBatches finished per team: {dict(st.batches)} ({len(st.pending)} drained after the soak, "
              f"{undrained} still running after the drain timeout)")  # fmt: skip
        print("\nBooks (billing on)")
        problems = check_books(server.env, st)
        print(f"\nlost items / credit mismatches: {'none' if not problems else ', '.join(problems)}")
        print(f"server log: {server.log_path} (removed with the temp dir)")
        return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
