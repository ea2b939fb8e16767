"""In-memory run record shared by every export format.

A run is a list of :class:`ImageRecord` (one per image or video) plus one :class:`RunInfo`.
The canonical on-disk form is the MegaDetector batch output format 1.6 (see
:mod:`sleuth.exports.megadetector`); :func:`read_md` reads such a file back into records so
``sleuth export`` can convert a finished results file into any other format.

Conventions:

* ``file`` is relative, with forward slashes.
* ``bbox`` is ``[x_min, y_min, width, height]`` normalised to the (EXIF-upright) image size.
* ``category`` is the MegaDetector category: 1 animal, 2 person, 3 vehicle.
* ``label`` is a SpeciesNet 7-field label string
  ``"<uuid>;<class>;<order>;<family>;<genus>;<species>;<common name>"`` (or any plain name).
* ``review`` (a :class:`ReviewMark`) marks what a person decided in the web app: on a detection, that its label
  was confirmed, corrected or that the box was added; on an image, that it was marked blank or reviewed. A
  reviewed detection is always exported, whatever the export threshold (a person kept it).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

DETECTION_CATEGORIES: dict[int, str] = {1: "animal", 2: "person", 3: "vehicle"}
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".wmv", ".m4v", ".mpg", ".mpeg", ".webm", ".asf"})

#: Detection threshold used by the exporters when neither the caller nor the run gives one.
DEFAULT_EXPORT_THRESHOLD = 0.2


REVIEW_STATUSES = ("confirmed", "corrected", "added", "blank", "reviewed")


@dataclass
class ReviewMark:
    """A human decision: ``status`` is confirmed | corrected | added (a box) or blank | reviewed (an image)."""

    status: str
    reviewer: str
    reviewed_at: datetime
    machine_label: str | None = None  # corrected: the label the model gave
    rejected_boxes: int = 0  # image: machine boxes the reviewer removed

    def __post_init__(self) -> None:
        if self.status not in REVIEW_STATUSES:
            raise ValueError(f"review status must be one of {', '.join(REVIEW_STATUSES)}, got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "reviewer": self.reviewer,
            "reviewed_at": self.reviewed_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        if self.machine_label is not None:
            out["machine_label"] = self.machine_label
        if self.rejected_boxes:
            out["rejected_boxes"] = self.rejected_boxes
        return out

    @classmethod
    def from_dict(cls, d: Any) -> ReviewMark | None:
        if not isinstance(d, dict) or "status" not in d:
            return None
        when = d.get("reviewed_at")
        try:
            reviewed_at = datetime.fromisoformat(str(when).replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"review.reviewed_at {when!r} is not an ISO 8601 date-time") from None
        return cls(
            status=str(d["status"]),
            reviewer=str(d.get("reviewer") or ""),
            reviewed_at=reviewed_at,
            machine_label=d.get("machine_label"),
            rejected_boxes=int(d.get("rejected_boxes") or 0),
        )


@dataclass
class DetectionRecord:
    """One box of one image (or of one video frame)."""

    category: int
    conf: float
    bbox: tuple[float, float, float, float]
    label: str | None = None
    label_score: float | None = None
    classifications: list[tuple[str, float]] = field(default_factory=list)
    frame_number: int | None = None
    repeat: bool = False  # flagged by repeat detection elimination (recurs at this place across the camera)
    review: ReviewMark | None = None

    def __post_init__(self) -> None:
        if self.category not in DETECTION_CATEGORIES:
            raise ValueError(f"detection category must be 1, 2 or 3, got {self.category!r}")
        if len(self.bbox) != 4:
            raise ValueError(f"bbox must have 4 values [x, y, w, h], got {self.bbox!r}")
        try:
            self.bbox = tuple(float(v) for v in self.bbox)  # type: ignore[assignment]
            self.conf = float(self.conf)
        except (TypeError, ValueError):
            raise ValueError(f"conf and bbox must be numbers, got conf={self.conf!r} bbox={self.bbox!r}") from None

    @property
    def category_name(self) -> str:
        return DETECTION_CATEGORIES[self.category]

    def top_label(self) -> tuple[str | None, float | None]:
        """The label to report: ``label`` if set, else the best classification."""
        if self.label is not None:
            return self.label, self.label_score
        if self.classifications:
            best = max(self.classifications, key=lambda c: c[1])
            return best[0], best[1]
        return None, None


@dataclass
class ImageRecord:
    """One processed image or video (or one that failed)."""

    file: str
    detections: list[DetectionRecord] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    datetime: datetime | None = None
    exif: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None
    is_video: bool = False
    frame_rate: float | None = None
    frames_processed: list[int] | None = None
    camera: str | None = None
    review: ReviewMark | None = None

    def __post_init__(self) -> None:
        self.file = normalise_file(self.file)
        if self.failure is not None:
            self.detections = []

    @property
    def camera_folder(self) -> str:
        """The camera/deployment folder: ``camera`` if set, else the file's parent folder."""
        if self.camera is not None:
            return self.camera
        return posixpath.dirname(self.file)

    def kept(self, threshold: float) -> list[DetectionRecord]:
        """Detections with ``conf >= threshold``, and every reviewed one."""
        return [d for d in self.detections if d.conf >= threshold or d.review is not None]


@dataclass
class RunInfo:
    """Provenance of a run (written to ``info`` in MD files)."""

    detector: str | None = None
    classifier: str | None = None
    threshold: float | None = None
    completion_time: datetime | None = None
    classification_completion_time: datetime | None = None
    detector_metadata: dict[str, Any] = field(default_factory=dict)
    classifier_metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def resolve_threshold(self, threshold: float | None = None) -> float:
        """Export threshold: explicit value, else the run's, else the detector's typical one."""
        if threshold is not None:
            return float(threshold)
        if self.threshold is not None:
            return float(self.threshold)
        typical = self.detector_metadata.get("typical_detection_threshold")
        if isinstance(typical, (int, float)):
            return float(typical)
        return DEFAULT_EXPORT_THRESHOLD

    @property
    def classified_by(self) -> str:
        names = [n for n in (self.detector, self.classifier) if n]
        return "+".join(names) if names else "sleuth"


def normalise_file(file: str) -> str:
    """Relative path with forward slashes (no leading ``./``)."""
    if not isinstance(file, str) or not file.strip():
        raise ValueError(f"file must be a non-empty relative path, got {file!r}")
    out = file.replace("\\", "/")
    while out.startswith("./"):
        out = out[2:]
    return out


def is_video_file(file: str) -> bool:
    return Path(file).suffix.lower() in VIDEO_EXTENSIONS


def read_md(path: str | Path) -> tuple[list[ImageRecord], RunInfo]:
    """Read a MegaDetector batch output file (format >= 1.3) into records."""
    from sleuth.exports.megadetector import read_md as _read

    return _read(path)
