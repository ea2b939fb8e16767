"""Schemathesis against a live `sleuth serve`: every operation (aliases included), bodies included.

Every check is on except ``positive_data_acceptance``, which expects any schema-valid request to succeed: random
bytes in a ``format: binary`` field are valid by the schema but are not an image or a recording, and sleuth
rightly answers 400. The run must find nothing: no 5xx, no undeclared status code or content type, no response
off its schema, no schema-violating request accepted, no ignored auth, Allow headers that match.

Deterministic: ``--generation-deterministic`` (no random seed, no example database), one request at a time, and
a server without background workers (tests/contract/fuzz.py), so each run sends the same requests to the same
server state. Bounded: ``SLEUTH_FUZZ_EXAMPLES`` examples per canonical operation (default 15), 5 per alias.
Figures: docs/api.md.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz import DATA, IMAGE, fuzz_server  # noqa: E402

ST = Path(sys.executable).with_name("st")
pytestmark = [
    pytest.mark.skipif(not ST.exists(), reason="schemathesis (the dev extra) is not installed: no `st` beside python"),
    pytest.mark.skipif(not IMAGE.is_file() or not (DATA / "models").is_dir(), reason="../shared/data not present"),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (convert extra) needed once"),
    pytest.mark.db,  # and again on PostgreSQL in the -m db pass
]
EXAMPLES = int(os.environ.get("SLEUTH_FUZZ_EXAMPLES", "15"))
# The aliases run the canonical handlers; what differs is the path-based machinery (body limits, the family's
# envelope, Allow), which a few fuzzed examples each reach without repeating the canonical coverage phase.
RUNS = {
    "canonical": ["--exclude-tag", "aliases", "--max-examples", str(EXAMPLES)],
    "aliases": ["--include-tag", "aliases", "--phases", "examples,fuzzing", "--max-examples", "5"],
}


def _st(url: str, key: str, selection: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    cmd = [
        str(ST),
        "run",
        f"{url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        *selection,
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "120",
        "--no-color",
    ]
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=cwd)  # its .schemathesis/ there
    return out, time.monotonic() - t0


def test_schemathesis_finds_nothing(tmp_path, model_cache):
    figures = []
    with fuzz_server(tmp_path, model_cache, os.environ.get("SLEUTH_TEST_DATABASE_URL", "")) as (url, key):
        for name, selection in RUNS.items():
            out, elapsed = _st(url, key, selection, tmp_path)
            report = out.stdout[-20000:] + out.stderr[-5000:]
            assert out.returncode == 0, f"{name}:\n{report}"
            ops = re.search(r"Tested: (\d+)", out.stdout)
            cases = re.search(r"(\d+) generated, (\d+) passed", out.stdout)
            assert ops and int(ops.group(1)) >= 40, report  # every operation
            assert cases and cases.group(1) == cases.group(2), report
            figures.append(f"{name}: {ops.group(1)} operations, {cases.group(1)} cases, {elapsed:.0f} s")
    print("schemathesis: " + "; ".join(figures))
