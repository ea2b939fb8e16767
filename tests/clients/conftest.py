"""The vendors' own clients, installed with npm at the versions pinned in package.json / package-lock.json.

``npm ci`` runs once and is cached in ``tests/clients/node_modules`` (gitignored): a stamp holds the lock file's
digest, so the install is redone only when the lock changes.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

CLIENTS = Path(__file__).resolve().parent
STAMP = CLIENTS / "node_modules" / ".sleuth-lock-sha256"


def node_missing() -> str | None:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (the vendors' JavaScript clients need Node.js 20 and npm)"
    return None


@pytest.fixture(scope="session")
def node_clients() -> Path:
    """``tests/clients`` with its pinned npm packages installed."""
    why = node_missing()
    if why:
        pytest.skip(why)
    digest = hashlib.sha256((CLIENTS / "package-lock.json").read_bytes()).hexdigest()
    if not (STAMP.is_file() and STAMP.read_text().strip() == digest):
        out = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=CLIENTS,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, f"npm ci failed:\n{out.stdout}\n{out.stderr}"
        STAMP.write_text(digest)
    return CLIENTS
