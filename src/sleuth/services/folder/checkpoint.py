"""The checkpoint: one JSON line per finished file, appended and fsynced, read back to resume."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from sleuth.exports.records import DetectionRecord, ImageRecord
from sleuth.services.folder.config import DetectConfig

CHECKPOINT_VERSION = 1


def record_to_json(r: ImageRecord) -> dict[str, Any]:
    d = asdict(r)
    d["datetime"] = r.datetime.isoformat() if r.datetime is not None else None
    for det in d["detections"]:
        det["bbox"] = list(det["bbox"])
        det["classifications"] = [list(c) for c in det["classifications"]]
    return d


def record_from_json(d: dict[str, Any]) -> ImageRecord:
    dets = [
        DetectionRecord(
            category=int(x["category"]),
            conf=float(x["conf"]),
            bbox=tuple(x["bbox"]),
            label=x.get("label"),
            label_score=x.get("label_score"),
            classifications=[(str(c[0]), float(c[1])) for c in x.get("classifications") or []],
            frame_number=x.get("frame_number"),
        )
        for x in d.get("detections") or []
    ]
    dt = d.get("datetime")
    return ImageRecord(
        file=d["file"],
        detections=dets,
        width=d.get("width"),
        height=d.get("height"),
        datetime=datetime.fromisoformat(dt) if dt else None,
        exif=dict(d.get("exif") or {}),
        failure=d.get("failure"),
        is_video=bool(d.get("is_video")),
        frame_rate=d.get("frame_rate"),
        frames_processed=d.get("frames_processed"),
        camera=d.get("camera"),
    )


class Checkpoint:
    """JSON-lines partial results: a header line with the options, then one record per line.

    Records are appended in one ``write`` per flush followed by ``fsync``; a torn last line (power
    loss mid-write) is ignored on load, so a crash loses at most the files since the last flush.
    """

    def __init__(self, path: str | Path, config: DetectConfig) -> None:
        self.path = Path(path)
        self.config = config
        self._pending: list[str] = []
        self._fh: Any = None

    def load(self) -> dict[str, ImageRecord]:
        """Finished records of an earlier run (``{}`` when there is no checkpoint)."""
        if not self.path.is_file():
            return {}
        lines = self.path.read_text(encoding="utf-8").split("\n")
        try:
            header = json.loads(lines[0])
        except (json.JSONDecodeError, IndexError):
            raise ValueError(f"{self.path} is not a sleuth checkpoint (bad header)") from None
        if not isinstance(header, dict) or header.get("sleuth_checkpoint") != CHECKPOINT_VERSION:
            raise ValueError(f"{self.path} is not a sleuth checkpoint (version {CHECKPOINT_VERSION})")
        want = json.loads(json.dumps(self.config.result_key()))
        stored = dict(header.get("options") or {})
        # Checkpoints from before the precision option: local runs used MD-Lite's FP32 graph.
        stored.setdefault("precision", None if self.config.server else "fp32")
        if stored != want:
            diff = [
                f"{k}: checkpoint {stored.get(k)!r}, now {want.get(k)!r}"
                for k in sorted(want.keys() | stored.keys())
                if stored.get(k) != want.get(k)
            ]
            raise ValueError(
                f"checkpoint {self.path} was made with different options ({'; '.join(diff)}): rerun with the "
                "same options, or delete it to start over"
            )
        out: dict[str, ImageRecord] = {}
        for line in lines[1:]:
            if not line.strip():
                continue
            try:
                rec = record_from_json(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # torn trailing line
            out[rec.file] = rec
        return out

    def has_records(self) -> bool:
        """The checkpoint file holds at least one finished file (not just its header)."""
        if not self.path.is_file():
            return False
        with open(self.path, encoding="utf-8") as f:
            f.readline()
            return any(line.strip() for line in f)

    def start(self, existing: Iterable[ImageRecord]) -> None:
        """Rewrite the checkpoint (atomically: temp file + rename) with ``existing``, then append."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            header = {"sleuth_checkpoint": CHECKPOINT_VERSION, "options": self.config.result_key()}
            f.write(json.dumps(header) + "\n")
            for r in existing:
                f.write(json.dumps(record_to_json(r), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def add(self, r: ImageRecord) -> None:
        self._pending.append(json.dumps(record_to_json(r), ensure_ascii=False) + "\n")
        if len(self._pending) >= self.config.checkpoint_every:
            self.flush()

    def flush(self) -> None:
        if self._fh is None or not self._pending:
            return
        data = "".join(self._pending)
        self._pending.clear()  # before writing: an interrupt mid-flush must not write the lines twice
        self._fh.write(data)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self, *, remove: bool = False) -> None:
        if self._fh is not None:
            self.flush()
            self._fh.close()
            self._fh = None
        if remove:
            self.path.unlink(missing_ok=True)
