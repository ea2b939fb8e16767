"""Camera-trap exchange formats: MD batch JSON 1.6, Camtrap DP 1.0, flat CSV, COCO Camera Traps.

Pure library: build :class:`ImageRecord`/:class:`RunInfo` from a run (or read an MD results
file back with :func:`read_md`) and call :func:`export`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sleuth.exports.camtrap_dp import CamtrapOptions, Deployment, read_deployments_csv, write_camtrap_dp
from sleuth.exports.coco import to_coco_dict, write_coco
from sleuth.exports.csv import to_csv_text, write_csv
from sleuth.exports.megadetector import from_md_dict, read_md, to_md_dict, write_md
from sleuth.exports.records import DetectionRecord, ImageRecord, RunInfo
from sleuth.exports.sequences import Event, group_events

FORMATS = ("md", "camtrap-dp", "csv", "coco")


def export(records: Sequence[ImageRecord], info: RunInfo | None, fmt: str, out: str | Path, **options: Any) -> Path:
    """Write ``records`` in format ``fmt`` (one of :data:`FORMATS`) to ``out``.

    ``out`` is a file for md/csv/coco and a directory for camtrap-dp. ``options`` are passed
    on: ``threshold``/``gap_seconds`` (csv, coco), ``category_names`` (coco), the
    :class:`CamtrapOptions` fields (camtrap-dp). Returns the written file (for camtrap-dp,
    its ``datapackage.json``).
    """
    if fmt == "md":
        if options:
            raise ValueError(f"md export takes no options, got {sorted(options)}")
        return write_md(records, info, out)
    if fmt == "csv":
        return write_csv(records, info, out, **options)
    if fmt == "coco":
        return write_coco(records, info, out, **options)
    if fmt == "camtrap-dp":
        return write_camtrap_dp(records, info, out, CamtrapOptions(**options))
    raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


__all__ = [
    "FORMATS",
    "CamtrapOptions",
    "Deployment",
    "DetectionRecord",
    "Event",
    "ImageRecord",
    "RunInfo",
    "export",
    "from_md_dict",
    "group_events",
    "read_deployments_csv",
    "read_md",
    "to_coco_dict",
    "to_csv_text",
    "to_md_dict",
    "write_camtrap_dp",
    "write_coco",
    "write_csv",
    "write_md",
]
