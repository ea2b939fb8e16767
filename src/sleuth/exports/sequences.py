"""Group images into events ("sequences") by camera folder and EXIF time gap.

Rules:

* Images are grouped per camera folder (:attr:`ImageRecord.camera_folder`).
* Within a camera, images with a datetime are sorted by (datetime, file); a new event starts
  when the gap to the previous image is **greater** than ``gap_seconds`` (default 60 s), so a
  gap of exactly ``gap_seconds`` stays in the same event.
* Timezone-aware datetimes are compared as instants; if a camera mixes naive and aware
  datetimes, all are compared by wall-clock time (timezone dropped).
* Images without a datetime (and failed images) are singleton events.
* Event ids are deterministic: ``"evt_" + sha1(camera, files)[:16]``, independent of the
  order of the input records and of the other cameras.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sleuth.exports.records import ImageRecord

DEFAULT_GAP_SECONDS = 60.0


@dataclass(frozen=True)
class Event:
    event_id: str
    camera: str
    files: tuple[str, ...]
    start: datetime | None
    end: datetime | None

    @property
    def size(self) -> int:
        return len(self.files)


def _event_id(camera: str, files: Sequence[str]) -> str:
    digest = hashlib.sha1("\n".join([camera, *files]).encode("utf-8")).hexdigest()
    return "evt_" + digest[:16]


def _make(camera: str, members: Sequence[ImageRecord]) -> Event:
    files = tuple(r.file for r in members)
    times = [r.datetime for r in members if r.datetime is not None]
    return Event(_event_id(camera, files), camera, files, times[0] if times else None, times[-1] if times else None)


def group_events(records: Iterable[ImageRecord], gap_seconds: float = DEFAULT_GAP_SECONDS) -> list[Event]:
    """Group records into events; returns events sorted by (camera, start, first file)."""
    if gap_seconds < 0:
        raise ValueError(f"gap_seconds must be >= 0, got {gap_seconds}")
    by_camera: dict[str, list[ImageRecord]] = {}
    for rec in records:
        by_camera.setdefault(rec.camera_folder, []).append(rec)

    events: list[Event] = []
    for camera in sorted(by_camera):
        recs = by_camera[camera]
        timed = [r for r in recs if r.datetime is not None and r.failure is None]
        untimed = [r for r in recs if r.datetime is None or r.failure is not None]
        aware = [
            r.datetime.tzinfo is not None and r.datetime.utcoffset() is not None
            for r in timed
            if r.datetime is not None
        ]
        mixed = any(aware) and not all(aware)

        def key(r: ImageRecord, _mixed: bool = mixed) -> datetime:
            assert r.datetime is not None
            return r.datetime.replace(tzinfo=None) if _mixed else r.datetime

        timed.sort(key=lambda r: (key(r), r.file))
        current: list[ImageRecord] = []
        for rec in timed:
            if current and (key(rec) - key(current[-1])).total_seconds() > gap_seconds:
                events.append(_make(camera, current))
                current = []
            current.append(rec)
        if current:
            events.append(_make(camera, current))
        for rec in sorted(untimed, key=lambda r: r.file):
            events.append(_make(camera, [rec]))
    return events


def event_index(events: Iterable[Event]) -> dict[str, tuple[Event, int]]:
    """``file -> (event, 0-based frame number within the event)``."""
    out: dict[str, tuple[Event, int]] = {}
    for ev in events:
        for i, f in enumerate(ev.files):
            out[f] = (ev, i)
    return out
