"""The README's shell examples (and the docs' ```bash blocks) run as written against a live server.

Every ```bash block of README.md and docs/*.md is run, in order, in one bash session (a new shell: nothing is
set but what the blocks set), from a folder that holds the example files and a ``.venv`` (a link to the venv
running the tests, so ``. .venv/bin/activate`` puts ``sleuth`` on PATH as it does in a checkout). Only the
placeholders of PLACEHOLDERS are replaced:

- the host and port ``127.0.0.1:8000`` -> the live server's port;
- the file names ``cam-1.jpg``, ``cam-2.jpg`` (real camera-trap JPEGs with EXIF times), ``voice.wav``,
  ``media.zip`` (two WAVs) and the folder ``~/camera-traps/site-3`` -> files this test writes;
- the receiver URL ``https://example.org/hook`` -> a local receiver; the server runs with
  ``SLEUTH_URL_ALLOW_PRIVATE=127.0.0.1`` as the README says.

Not run: blocks whose commands are ``make ...`` (``make run`` starts the server this test starts itself;
``make test`` is the suite), and blocks of ``benchmarks/`` commands (measurements of minutes on the shared
data; docs/performance.md and docs/accuracy.md give their output). Blocks in ```sh are configuration or commands
of third-party tools (docs/deploy.md, docs/models.md) and ```console blocks show output; neither is run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
CT = DATA / "camera_traps" / "animl_southwest"
pytestmark = pytest.mark.skipif(
    not (DATA / "models").is_dir() or not CT.is_dir(), reason="../shared/data (models, camera traps) not present"
)

FENCE = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)


def bash_blocks(path: Path) -> list[str]:
    return [m.group(1) for m in FENCE.finditer(path.read_text(encoding="utf-8"))]


def commands(block: str) -> list[str]:
    """The block's commands: backslash continuations joined, blank and comment-only lines dropped."""
    out: list[str] = []
    cur = ""
    for line in block.splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        cur += line + "\n"
        if not line.rstrip().endswith("\\"):
            out.append(cur.rstrip("\n"))
            cur = ""
    if cur:
        out.append(cur.rstrip("\n"))
    return out


def runnable(block: str) -> bool:
    cmds = commands(block)
    return bool(cmds) and not all(c.startswith("make ") for c in cmds) and "benchmarks/" not in block


def test_the_readme_has_the_examples_the_issue_asks_for():
    blocks = [b for b in bash_blocks(ROOT / "README.md") if runnable(b)]
    text = "\n".join(blocks)
    for needle in (". .venv/bin/activate", "sleuth keys create", "/v1/batch-detect", "/detect/batch", "sleuth detect"):
        assert needle in text
    assert "include=results" in text and "sleuth webhooks secret" in text


def test_benchmark_commands_in_docs_name_real_scripts_and_flags():
    """Blocks of benchmark commands are not run (minutes each); their scripts and flags must exist."""
    seen = 0
    fence = re.compile(r"^```(?:bash|sh)\n(.*?)^```", re.S | re.M)
    for doc in sorted((ROOT / "docs").glob("*.md")):
        for block in (m.group(1) for m in fence.finditer(doc.read_text(encoding="utf-8"))):
            if "benchmarks/" not in block:
                continue
            for cmd in commands(block):
                m = re.match(r"python (benchmarks/\S+\.py)(.*)", cmd)
                if not m:
                    continue
                seen += 1
                script = ROOT / m.group(1)
                assert script.is_file(), f"{doc.name}: {m.group(1)} does not exist"
                source = script.read_text(encoding="utf-8")
                for flag in re.findall(r"(--[a-z][a-z0-9-]*)", m.group(2).split("#")[0]):
                    assert f'"{flag}"' in source, f"{doc.name}: {m.group(1)} has no {flag} option"
    assert seen >= 5


class _Receiver(BaseHTTPRequestHandler):
    calls: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        _Receiver.calls.append((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a: Any) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wav(seconds: float, seed: int) -> bytes:
    sys.path.insert(0, str(ROOT / "tests" / "deepfake"))
    from helpers import wav_bytes

    return wav_bytes(seconds, seed=seed)


def _base_env(tmp: Path, model_cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLEUTH_", "VIRTUAL_ENV"))}
    env.update(
        XDG_DATA_HOME=str(tmp / "xdg"),  # the default data folder, shared by the server and the shell
        SLEUTH_MODEL_CACHE=str(model_cache),
        SLEUTH_MODEL_MIRROR=str(DATA / "models"),
        SLEUTH_DETECTOR_PRECISION=os.environ.get("SLEUTH_DETECTOR_PRECISION", "int8"),
        PYTHONPATH=str(ROOT / "src"),
        HOME=str(tmp / "home"),
    )
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if Path(sys.prefix) / "bin" != Path(p))
    return env


@pytest.fixture
def server(tmp_path: Path, model_cache: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = _free_port()
    env = _base_env(tmp_path, model_cache)
    server_env = dict(env, SLEUTH_URL_ALLOW_PRIVATE="127.0.0.1", SLEUTH_WORKERS="1", SLEUTH_WEBHOOK_BACKOFF_S="0.5")
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "sleuth.cli", "serve", "--port", str(port), "--log-level", "warning"],
        env=server_env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError((tmp_path / "server.log").read_text()) from None
                time.sleep(0.3)
        yield url, env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_readme_and_docs_bash_blocks_run_as_written(server, tmp_path: Path):
    from sleuth.platform.webhooks import verify

    url, env = server
    work = tmp_path / "work"
    (work / "site-3").mkdir(parents=True)
    (tmp_path / "home").mkdir(exist_ok=True)
    os.symlink(sys.prefix, work / ".venv")
    shutil.copyfile(CT / "2021-05-28_SYFR0041_deer.JPG", work / "cam-1.jpg")
    shutil.copyfile(CT / "2021-06-30_SYFR0218_cougar.JPG", work / "cam-2.jpg")
    for name in ("cam-1.jpg", "cam-2.jpg"):
        shutil.copyfile(work / name, work / "site-3" / name)
    (work / "voice.wav").write_bytes(_wav(3.0, 1))
    with zipfile.ZipFile(work / "media.zip", "w") as z:
        z.writestr("a.wav", _wav(1.0, 2))
        z.writestr("b.wav", _wav(1.0, 3))

    _Receiver.calls = []
    hook = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    placeholders = {
        "http://127.0.0.1:8000": url,
        "https://example.org/hook": f"http://127.0.0.1:{hook.server_port}/hook",
        "~/camera-traps/site-3": str(work / "site-3"),
    }

    cmds: list[tuple[str, str]] = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in bash_blocks(doc):
            if runnable(block):
                cmds += [(doc.name, c) for c in commands(block)]
    assert len(cmds) >= 8
    script = []
    for i, (_doc, cmd) in enumerate(cmds):
        for old, new in placeholders.items():
            cmd = cmd.replace(old, new)
        script.append(f'{cmd}\n__rc=$?; echo; echo "@@END {i} $__rc"')
    try:
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", "\n".join(script)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        outs = re.split(r"^@@END (\d+) (\d+)$", proc.stdout, flags=re.M)
        results = {int(outs[j]): (int(outs[j + 1]), outs[j - 1].strip()) for j in range(1, len(outs) - 1, 3)}
        assert len(results) == len(cmds), proc.stdout + proc.stderr
        secret = ""
        for i, (doc, cmd) in enumerate(cmds):
            rc, out = results[i]
            assert rc == 0, f"{doc}: {cmd!r} exited {rc}\n{out}\n{proc.stderr}"
            if cmd.startswith("curl"):
                body = json.loads(out)
                assert body.get("success", True) is not False, (cmd, body)
            if cmd.startswith("sleuth webhooks secret"):
                secret = out.splitlines()[-1]
                assert secret.startswith("whsec_")
            if "include=results" in cmd:
                assert len(json.loads(out)["item"]["items"]) == 2
        assert (work / "results" / "results.json").is_file()
        assert (work / "results" / "camtrap-dp" / "datapackage.json").is_file()
        deadline = time.time() + 120
        while time.time() < deadline and not _Receiver.calls:
            time.sleep(0.2)
    finally:
        hook.shutdown()
    assert _Receiver.calls, "the batch callback never came"
    headers, body = _Receiver.calls[-1]
    assert verify(secret, headers, body)  # with the secret `sleuth webhooks secret acme` printed
    item = json.loads(body)["item"]
    assert item["completed_count"] == 2 and len(item["items"]) == 2
