#!/usr/bin/env python3
"""Fetch the API-docs front ends the server ships (Swagger UI for /docs, ReDoc for /redoc) from the npm registry,
at pinned versions, into ``src/sleuth/web/vendor/`` and record their sha256 in ``VENDOR.json``.

Run once when bumping a version (needs ``npm``); the files are committed, so neither building nor serving needs npm
or the network. ``tests/webapp/test_ui_assets.py`` checks the committed files against ``VENDOR.json``.

Usage: ``python scripts/vendor_web_assets.py``
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "sleuth" / "web" / "vendor"
PACKAGES = {
    # npm package, version, folder under vendor/, {path in the tarball: file name}
    "swagger-ui-dist": (
        "5.35.0",
        "swagger-ui",
        {
            "package/swagger-ui-bundle.js": "swagger-ui-bundle.js",
            "package/swagger-ui.css": "swagger-ui.css",
            "package/favicon-32x32.png": "favicon-32x32.png",
            "package/LICENSE": "LICENSE",
            "package/NOTICE": "NOTICE",
        },
    ),
    # 2.x: the 3.x standalone bundle is over the repository's 2 MB per-file limit
    "redoc": (
        "2.5.4",
        "redoc",
        {
            "package/bundles/redoc.standalone.js": "redoc.standalone.js",
            "package/bundles/redoc.standalone.js.LICENSE.txt": "redoc.standalone.js.LICENSE.txt",
            "package/LICENSE": "LICENSE",
        },
    ),
}


# The only change made to upstream bytes: ReDoc 2's side menu shows Redocly's logo from its CDN (an outside request
# on every page view); it becomes an empty inline image. The manifest records both digests.
PATCHES = {
    "redoc.standalone.js": [
        (
            b'src:"https://cdn.redoc.ly/redoc/logo-mini.svg"',
            b'src:"data:image/svg+xml,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27/%3E"',
        )
    ],
}


def patch(fname: str, data: bytes) -> bytes:
    for old, new in PATCHES.get(fname, []):
        if data.count(old) != 1:
            raise SystemExit(f"{fname}: expected exactly one {old!r} to patch")
        data = data.replace(old, new)
    return data


def main() -> None:
    manifest: dict[str, object] = {"generator": "scripts/vendor_web_assets.py", "packages": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (version, folder, files) in PACKAGES.items():
            out = subprocess.run(
                ["npm", "pack", f"{name}@{version}", "--silent"], cwd=tmp, check=True, capture_output=True, text=True
            )
            tgz = Path(tmp) / out.stdout.strip().splitlines()[-1]
            dest = OUT / folder
            dest.mkdir(parents=True, exist_ok=True)
            entry: dict[str, object] = {"version": version, "folder": f"vendor/{folder}", "files": {}}
            with tarfile.open(tgz) as tf:
                for member, fname in files.items():
                    f = tf.extractfile(member)
                    assert f is not None, member
                    data = f.read()
                    served = patch(fname, data)
                    (dest / fname).write_bytes(served)
                    digest = {"sha256": hashlib.sha256(served).hexdigest()}
                    if served != data:
                        digest["upstream_sha256"] = hashlib.sha256(data).hexdigest()
                    entry["files"][fname] = digest  # type: ignore[index]
            manifest["packages"][name] = entry  # type: ignore[index]
    (OUT / "VENDOR.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
