"""What ``sleuth detect`` reads: discovering images and videos under the given paths, file lists."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sleuth.exports.records import VIDEO_EXTENSIONS

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True)
class InputFile:
    path: Path
    name: str  # relative, forward slashes: the ``file`` of the results

    @property
    def is_video(self) -> bool:
        return self.path.suffix.lower() in VIDEO_EXTENSIONS


def _wanted(p: Path) -> bool:
    ext = p.suffix.lower()
    return ext in IMAGE_EXTENSIONS or ext in VIDEO_EXTENSIONS


def discover(paths: Sequence[str | Path], *, recursive: bool = True) -> list[InputFile]:
    """Images and videos under ``paths`` (folders walked recursively; files taken as given).

    Names are relative to the common parent of the inputs (the folder itself for one folder),
    with forward slashes, sorted. Hidden files and folders (``.name``) are skipped. Raises
    ``ValueError`` for a path that does not exist or when nothing is found.
    """
    if not paths:
        raise ValueError("no input paths given")
    found: dict[Path, None] = {}
    roots: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise ValueError(f"input not found: {raw}")
        p = p.resolve()
        if p.is_dir():
            roots.append(p)
            it = p.rglob("*") if recursive else p.glob("*")
            for f in it:
                rel = f.relative_to(p).parts
                if any(part.startswith(".") for part in rel):
                    continue
                if f.is_file() and _wanted(f):
                    found.setdefault(f, None)
        else:
            roots.append(p.parent)
            found.setdefault(p, None)
    if not found:
        raise ValueError(
            "no images or videos found in "
            + ", ".join(str(p) for p in paths)
            + f" (extensions: {', '.join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))})"
        )
    base = Path(os.path.commonpath([str(r) for r in roots]))
    files = [InputFile(f, f.relative_to(base).as_posix()) for f in found]
    files.sort(key=lambda f: f.name)
    return files


def read_file_list(path: str | Path) -> list[str]:
    """Paths listed one per line in a text file (blank lines and ``#`` comments ignored); relative
    paths are relative to the list's folder."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ValueError(f"file list not found: {path}") from None
    out = []
    for line in lines:
        s = line.strip()
        if s and not s.startswith("#"):
            q = Path(s).expanduser()
            out.append(str(q if q.is_absolute() else p.parent / q))
    return out
