"""Camtrap DP 1.0 data package (https://camtrap-dp.tdwg.org): datapackage.json + 3 CSV tables.

Mapping (see ``docs/exports.md``):

* ``deployments.csv``: one row per deployment. Deployments come from (in order) the
  ``deployments`` argument (one :class:`Deployment` for everything, a ``{folder: Deployment}``
  mapping, or a deployments CSV, see :func:`read_deployments_csv`), else one deployment per
  camera folder. Missing start/end are taken from the media timestamps; missing
  latitude/longitude raise ``ValueError`` unless ``allow_placeholder_coordinates=True``
  (then 0/0 with a ``deploymentComments`` note).
* ``media.csv``: one row per processed image/video (failed ones are left out: Camtrap DP has no
  place for unreadable media). Naive EXIF times get ``timezone`` (default UTC, and then the
  deployment is flagged ``timestampIssues=true``); media without a timestamp get the deployment
  start, flagged the same way and explained in ``mediaComments``.
* ``observations.csv``: ``observationLevel=media``; one row per box at or above the export
  threshold (``observationType`` animal/human/vehicle, ``count`` 1, ``bbox*``,
  ``scientificName`` from the label's genus+species or most precise taxon,
  ``classificationMethod=machine``, ``classifiedBy="<detector>+<classifier>"``,
  ``classificationProbability`` = label score where there is a taxon, else the detector
  confidence), and one ``blank`` row for media with no box kept. ``eventID``/``eventStart``/
  ``eventEnd`` come from :func:`sleuth.exports.sequences.group_events`.
* Human review (the web app): a box a person confirmed, corrected or added, and an image a person marked blank,
  get ``classificationMethod=human``, ``classifiedBy`` = the reviewer, ``classificationTimestamp`` = the review
  time and no ``classificationProbability``; ``observationTags`` carries ``review:<status>``. Reviewed boxes are
  kept whatever the threshold; boxes a reviewer rejected are not exported.
"""

from __future__ import annotations

import csv
import hashlib
import json
import mimetypes
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from sleuth.exports.megadetector import parse_datetime
from sleuth.exports.records import ImageRecord, ReviewMark, RunInfo, is_video_file
from sleuth.exports.sequences import DEFAULT_GAP_SECONDS, Event, event_index, group_events
from sleuth.exports.taxonomy import parse_label

CAMTRAP_DP_VERSION = "1.0.1"
_BASE_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{CAMTRAP_DP_VERSION}"
PROFILE_URL = f"{_BASE_URL}/camtrap-dp-profile.json"
TABLES = ("deployments", "media", "observations")
SCHEMA_URLS = {name: f"{_BASE_URL}/{name}-table-schema.json" for name in TABLES}
#: Local copies of the profile and table schemas (used for offline validation).
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas" / f"camtrap-dp-{CAMTRAP_DP_VERSION}"

DEPLOYMENT_COLUMNS = [
    "deploymentID",
    "locationID",
    "locationName",
    "latitude",
    "longitude",
    "coordinateUncertainty",
    "deploymentStart",
    "deploymentEnd",
    "setupBy",
    "cameraID",
    "cameraModel",
    "cameraDelay",
    "cameraHeight",
    "cameraDepth",
    "cameraTilt",
    "cameraHeading",
    "detectionDistance",
    "timestampIssues",
    "baitUse",
    "featureType",
    "habitat",
    "deploymentGroups",
    "deploymentTags",
    "deploymentComments",
]
MEDIA_COLUMNS = [
    "mediaID",
    "deploymentID",
    "captureMethod",
    "timestamp",
    "filePath",
    "filePublic",
    "fileName",
    "fileMediatype",
    "exifData",
    "favorite",
    "mediaComments",
]
OBSERVATION_COLUMNS = [
    "observationID",
    "deploymentID",
    "mediaID",
    "eventID",
    "eventStart",
    "eventEnd",
    "observationLevel",
    "observationType",
    "cameraSetupType",
    "scientificName",
    "count",
    "lifeStage",
    "sex",
    "behavior",
    "individualID",
    "individualPositionRadius",
    "individualPositionAngle",
    "individualSpeed",
    "bboxX",
    "bboxY",
    "bboxWidth",
    "bboxHeight",
    "classificationMethod",
    "classifiedBy",
    "classificationTimestamp",
    "classificationProbability",
    "observationTags",
    "observationComments",
]
#: Columns of the deployments CSV accepted by :func:`read_deployments_csv` (``folder`` and
#: ``deploymentID`` required; the rest optional).
DEPLOYMENTS_CSV_COLUMNS = (
    "folder",
    "deploymentID",
    "latitude",
    "longitude",
    "deploymentStart",
    "deploymentEnd",
    "locationID",
    "locationName",
    "coordinateUncertainty",
    "cameraID",
    "cameraModel",
    "deploymentComments",
)

OBSERVATION_TYPES = {1: "animal", 2: "human", 3: "vehicle"}
PLACEHOLDER_NOTE = "placeholder coordinates (0, 0): set the real latitude/longitude"


@dataclass
class Deployment:
    """A camera placement. ``latitude``/``longitude`` in WGS84 decimal degrees."""

    deployment_id: str
    latitude: float | None = None
    longitude: float | None = None
    start: datetime | None = None
    end: datetime | None = None
    location_id: str | None = None
    location_name: str | None = None
    coordinate_uncertainty: int | None = None
    camera_id: str | None = None
    camera_model: str | None = None
    comments: str | None = None

    def __post_init__(self) -> None:
        if not self.deployment_id or not str(self.deployment_id).strip():
            raise ValueError("deployment id must be a non-empty string")
        if self.latitude is not None and not -90 <= float(self.latitude) <= 90:
            raise ValueError(f"deployment {self.deployment_id}: latitude {self.latitude} not in [-90, 90]")
        if self.longitude is not None and not -180 <= float(self.longitude) <= 180:
            raise ValueError(f"deployment {self.deployment_id}: longitude {self.longitude} not in [-180, 180]")
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError(f"deployment {self.deployment_id}: give both latitude and longitude or neither")


def _opt_float(row: Mapping[str, str], key: str, where: str) -> float | None:
    value = (row.get(key) or "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{where}: {key} {value!r} is not a number") from None


def _opt_dt(row: Mapping[str, str], key: str, where: str) -> datetime | None:
    value = (row.get(key) or "").strip()
    if not value:
        return None
    dt = parse_datetime(value)
    if dt is None:
        raise ValueError(f"{where}: {key} {value!r} is not an ISO 8601 date-time")
    return dt


def read_deployments_csv(path: str | Path) -> dict[str, Deployment]:
    """Read a deployments CSV: ``folder -> Deployment``.

    Columns: ``folder`` (camera folder, relative, as in the results' file paths; ``""`` = the
    root/default), ``deploymentID``, and optionally ``latitude``, ``longitude``,
    ``deploymentStart``, ``deploymentEnd`` (ISO 8601), ``locationID``, ``locationName``,
    ``coordinateUncertainty`` (m), ``cameraID``, ``cameraModel``, ``deploymentComments``.
    Several folders may share one ``deploymentID`` (same values required).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"deployments CSV not found: {path}") from None
    reader = csv.DictReader(text.splitlines())
    cols = set(reader.fieldnames or [])
    missing = {"folder", "deploymentID"} - cols
    if missing:
        raise ValueError(
            f"{path}: deployments CSV lacks column(s) {sorted(missing)}; expected {', '.join(DEPLOYMENTS_CSV_COLUMNS)}"
        )
    unknown = cols - set(DEPLOYMENTS_CSV_COLUMNS)
    if unknown:
        raise ValueError(f"{path}: unknown column(s) {sorted(unknown)}; expected {', '.join(DEPLOYMENTS_CSV_COLUMNS)}")
    out: dict[str, Deployment] = {}
    for i, row in enumerate(reader, start=2):
        where = f"{path} line {i}"
        folder = (row.get("folder") or "").strip().replace("\\", "/").strip("/")
        if folder in out:
            raise ValueError(f"{where}: folder {folder!r} listed twice")
        unc = _opt_float(row, "coordinateUncertainty", where)
        out[folder] = Deployment(
            deployment_id=(row.get("deploymentID") or "").strip(),
            latitude=_opt_float(row, "latitude", where),
            longitude=_opt_float(row, "longitude", where),
            start=_opt_dt(row, "deploymentStart", where),
            end=_opt_dt(row, "deploymentEnd", where),
            location_id=(row.get("locationID") or "").strip() or None,
            location_name=(row.get("locationName") or "").strip() or None,
            coordinate_uncertainty=int(unc) if unc is not None else None,
            camera_id=(row.get("cameraID") or "").strip() or None,
            camera_model=(row.get("cameraModel") or "").strip() or None,
            comments=(row.get("deploymentComments") or "").strip() or None,
        )
    if not out:
        raise ValueError(f"{path}: deployments CSV has no rows")
    return out


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")
    return s or "root"


def _media_id(file: str) -> str:
    return "m_" + hashlib.sha1(file.encode("utf-8")).hexdigest()[:16]


def format_timestamp(dt: datetime) -> str:
    """ISO 8601 with timezone designator, seconds precision (``Z`` for UTC)."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("timestamp needs a timezone")
    s = dt.isoformat(timespec="seconds")
    return s[:-6] + "Z" if s.endswith("+00:00") else s


def _fmt_num(value: float, decimals: int = 4) -> str:
    return f"{round(float(value), decimals):.{decimals}f}".rstrip("0").rstrip(".")


def _clip01(v: float) -> float:
    return min(1.0, max(0.0, float(v)))


def _mediatype(file: str, video: bool) -> str:
    guess, _ = mimetypes.guess_type(file)
    if guess and guess.split("/")[0] in ("image", "video", "audio"):
        return guess
    return "video/x-unknown" if video else "image/x-unknown"


class _Resolver:
    def __init__(self, deployments: Deployment | Mapping[str, Deployment] | str | Path | None) -> None:
        self.single: Deployment | None = None
        self.mapping: dict[str, Deployment] = {}
        if isinstance(deployments, Deployment):
            self.single = deployments
        elif isinstance(deployments, (str, Path)):
            self.mapping = read_deployments_csv(deployments)
        elif deployments is not None:
            self.mapping = {k.strip("/"): v for k, v in deployments.items()}

    def for_folder(self, folder: str) -> Deployment:
        if self.single is not None:
            return self.single
        parts = folder.split("/") if folder else []
        for n in range(len(parts), -1, -1):
            key = "/".join(parts[:n])
            if key in self.mapping:
                return self.mapping[key]
        return Deployment(deployment_id=_slug(folder))


class MissingCoordinatesError(ValueError):
    """Camtrap DP needs coordinates for every deployment; ``deployments`` lists those without. Callers with
    their own vocabulary (the command line's flags) word the remedy from it."""

    def __init__(self, deployments: Sequence[str]) -> None:
        self.deployments = list(deployments)
        super().__init__(
            "Camtrap DP needs latitude/longitude for every deployment; missing for "
            f"{', '.join(self.deployments)}. Pass deployments (a Deployment, a folder mapping or a "
            "deployments CSV) or allow placeholder coordinates."
        )


def deployments_without_coordinates(
    folders: Iterable[str], deployments: Deployment | Mapping[str, Deployment] | str | Path | None
) -> list[str]:
    """The deployment ids that camera folders ``folders`` would get without coordinates (checked before a run,
    so that a Camtrap DP export cannot fail after every file is processed)."""
    resolver = _Resolver(deployments)
    return sorted({d.deployment_id for d in map(resolver.for_folder, folders) if d.latitude is None})


@dataclass
class CamtrapOptions:
    """Options of :func:`write_camtrap_dp` (all optional)."""

    deployments: Deployment | Mapping[str, Deployment] | str | Path | None = None
    project_title: str = "sleuth camera-trap detection run"
    contributors: list[dict[str, str]] = field(default_factory=lambda: [{"title": "sleuth", "role": "contributor"}])
    timezone: tzinfo | None = None
    allow_placeholder_coordinates: bool = False
    gap_seconds: float = DEFAULT_GAP_SECONDS
    threshold: float | None = None
    media_root: str = ""
    file_public: bool = False
    capture_method: str = "activityDetection"
    sampling_design: str = "opportunistic"
    created: datetime | None = None
    package_name: str | None = None


Tables = dict[str, list[dict[str, str]]]


def build_camtrap_dp(
    records: Sequence[ImageRecord], info: RunInfo | None = None, options: CamtrapOptions | None = None
) -> tuple[dict[str, Any], Tables]:
    """Build ``(datapackage descriptor, {table: rows})`` without writing anything."""
    info = info or RunInfo()
    opt = options or CamtrapOptions()
    threshold = info.resolve_threshold(opt.threshold)
    resolver = _Resolver(opt.deployments)
    media_recs = [r for r in records if r.failure is None]
    if not media_recs:
        raise ValueError("no successfully processed media to export (all records are failures)")
    seen_files: set[str] = set()
    for r in media_recs:
        if r.file in seen_files:
            raise ValueError(f"file {r.file!r} appears twice in the run")
        seen_files.add(r.file)

    assumed_tz = opt.timezone is None
    tz: tzinfo = opt.timezone if opt.timezone is not None else UTC

    def localise(dt: datetime) -> datetime:
        return dt if dt.tzinfo is not None and dt.utcoffset() is not None else dt.replace(tzinfo=tz)

    # deployments
    dep_of: dict[str, Deployment] = {}
    members: dict[str, list[ImageRecord]] = {}
    deps: dict[str, Deployment] = {}
    for r in media_recs:
        dep = resolver.for_folder(r.camera_folder)
        prev = deps.get(dep.deployment_id)
        if prev is not None and prev != dep:
            raise ValueError(f"deployment id {dep.deployment_id!r} is given with different values")
        deps[dep.deployment_id] = dep
        dep_of[r.file] = dep
        members.setdefault(dep.deployment_id, []).append(r)

    missing_coords = sorted(d for d, dep in deps.items() if dep.latitude is None)
    if missing_coords and not opt.allow_placeholder_coordinates:
        raise MissingCoordinatesError(missing_coords)

    dep_rows: list[dict[str, str]] = []
    dep_span: dict[str, tuple[datetime, datetime]] = {}
    dep_issues: dict[str, list[str]] = {}
    for dep_id in sorted(deps):
        dep = deps[dep_id]
        recs = members[dep_id]
        times = [localise(r.datetime) for r in recs if r.datetime is not None]
        issues: list[str] = []
        if assumed_tz and any(r.datetime is not None and r.datetime.tzinfo is None for r in recs):
            issues.append("timezone unknown, UTC assumed")
        if any(r.datetime is None for r in recs):
            issues.append("some media have no timestamp (deployment start used)")
        start = localise(dep.start) if dep.start is not None else (min(times) if times else None)
        end = localise(dep.end) if dep.end is not None else (max(times) if times else None)
        if start is None or end is None:
            raise ValueError(
                f"deployment {dep_id!r}: no media timestamps to derive its start/end; "
                "give deploymentStart/deploymentEnd"
            )
        if end < start:
            raise ValueError(f"deployment {dep_id!r}: end {end} is before start {start}")
        dep_span[dep_id] = (start, end)
        dep_issues[dep_id] = issues
        comments = [c for c in (dep.comments,) if c]
        lat, lon = dep.latitude, dep.longitude
        if lat is None or lon is None:
            lat, lon = 0.0, 0.0
            comments.append(PLACEHOLDER_NOTE)
        comments.extend(issues)
        row = dict.fromkeys(DEPLOYMENT_COLUMNS, "")
        row.update(
            {
                "deploymentID": dep_id,
                "locationID": dep.location_id or "",
                "locationName": dep.location_name or "",
                "latitude": _fmt_num(lat, 6),
                "longitude": _fmt_num(lon, 6),
                "coordinateUncertainty": str(dep.coordinate_uncertainty) if dep.coordinate_uncertainty else "",
                "deploymentStart": format_timestamp(start),
                "deploymentEnd": format_timestamp(end),
                "cameraID": dep.camera_id or "",
                "cameraModel": dep.camera_model or "",
                "timestampIssues": "true" if issues else "false",
                "deploymentComments": "; ".join(comments),
            }
        )
        dep_rows.append(row)

    # events
    events = group_events(media_recs, opt.gap_seconds)
    ev_of = event_index(events)

    def ts_of(r: ImageRecord) -> datetime:
        if r.datetime is not None:
            return localise(r.datetime)
        return dep_span[dep_of[r.file].deployment_id][0]

    def ev_span(ev: Event, r: ImageRecord) -> tuple[datetime, datetime]:
        if ev.start is None or ev.end is None:
            t = ts_of(r)
            return t, t
        return localise(ev.start), localise(ev.end)

    cls_time = info.classification_completion_time or info.completion_time
    cls_ts = format_timestamp(localise(cls_time)) if cls_time is not None else ""
    classified_by = info.classified_by

    media_rows: list[dict[str, str]] = []
    obs_rows: list[dict[str, str]] = []
    taxa: dict[str, dict[str, Any]] = {}
    for r in sorted(media_recs, key=lambda r: (dep_of[r.file].deployment_id, ts_of(r), r.file)):
        dep_id = dep_of[r.file].deployment_id
        mid = _media_id(r.file)
        video = r.is_video or is_video_file(r.file)
        row = dict.fromkeys(MEDIA_COLUMNS, "")
        row.update(
            {
                "mediaID": mid,
                "deploymentID": dep_id,
                "captureMethod": opt.capture_method,
                "timestamp": format_timestamp(ts_of(r)),
                "filePath": posixpath.join(opt.media_root, r.file) if opt.media_root else r.file,
                "filePublic": "true" if opt.file_public else "false",
                "fileName": posixpath.basename(r.file),
                "fileMediatype": _mediatype(r.file, video),
                "exifData": json.dumps(r.exif, ensure_ascii=False, sort_keys=True, default=str) if r.exif else "",
                "mediaComments": "" if r.datetime is not None else "no EXIF timestamp; deployment start used",
            }
        )
        media_rows.append(row)

        ev, _ = ev_of[r.file]
        ev_start, ev_end = ev_span(ev, r)
        base = dict.fromkeys(OBSERVATION_COLUMNS, "")
        base.update(
            {
                "deploymentID": dep_id,
                "mediaID": mid,
                "eventID": ev.event_id,
                "eventStart": format_timestamp(ev_start),
                "eventEnd": format_timestamp(ev_end),
                "observationLevel": "media",
                "classificationMethod": "machine",
                "classifiedBy": classified_by,
                "classificationTimestamp": cls_ts,
            }
        )
        kept = r.kept(threshold)
        if not kept:
            obs = dict(base)
            obs.update({"observationID": f"{mid}_0", "observationType": "blank"})
            if r.review is not None:
                obs.update(_human(r.review, localise))
            obs_rows.append(obs)
            continue
        for k, det in enumerate(kept):
            obs = dict(base)
            x, y, w, h = det.bbox
            x, y = _clip01(x), _clip01(y)
            w = max(1e-4, min(_clip01(w), 1.0 - x)) if x < 1.0 else 1e-4
            h = max(1e-4, min(_clip01(h), 1.0 - y)) if y < 1.0 else 1e-4
            otype = OBSERVATION_TYPES[det.category]
            label, score = det.top_label()
            sci = ""
            prob = det.conf
            tags = []
            if label is not None:
                taxon = parse_label(label)
                tags.append(f"label:{taxon.name}")
                if otype == "animal" and taxon.scientific_name:
                    sci = taxon.scientific_name
                    if score is not None:
                        prob = score
                    entry = taxa.setdefault(sci, {"scientificName": sci})
                    if taxon.rank:
                        entry["taxonRank"] = taxon.rank
                    for key, val in (
                        ("class", taxon.class_),
                        ("order", taxon.order),
                        ("family", taxon.family),
                        ("genus", taxon.genus),
                    ):
                        if val and taxon.rank != key:
                            entry[key] = val.capitalize()
                    if taxon.common_name:
                        entry.setdefault("vernacularNames", {"eng": taxon.common_name})
            if det.frame_number is not None and video:
                tags.append(f"frame:{det.frame_number}")
            comment = f"detector confidence {_fmt_num(det.conf, 3)}"
            if det.review is not None:
                tags.append(f"review:{det.review.status}")
                if det.review.machine_label:
                    comment += f"; machine label {parse_label(det.review.machine_label).name}"
                if det.review.status == "added":
                    comment = "box added by a reviewer"
            obs.update(
                {
                    "observationID": f"{mid}_{k}",
                    "observationType": otype,
                    "scientificName": sci,
                    "count": "1",
                    "bboxX": _fmt_num(x),
                    "bboxY": _fmt_num(y),
                    "bboxWidth": _fmt_num(w),
                    "bboxHeight": _fmt_num(h),
                    "classificationProbability": _fmt_num(_clip01(prob), 3),
                    "observationTags": "|".join(tags),
                    "observationComments": comment,
                }
            )
            if det.review is not None:
                obs.update(_human(det.review, localise))
            obs_rows.append(obs)

    # package
    lats = [float(r["latitude"]) for r in dep_rows]
    lons = [float(r["longitude"]) for r in dep_rows]
    if len(set(zip(lats, lons, strict=True))) == 1:
        spatial: dict[str, Any] = {"type": "Point", "coordinates": [lons[0], lats[0]]}
    else:
        w_, e_, s_, n_ = min(lons), max(lons), min(lats), max(lats)
        if w_ == e_ or s_ == n_:
            spatial = {"type": "LineString", "coordinates": [[w_, s_], [e_, n_]]}
        else:
            spatial = {"type": "Polygon", "coordinates": [[[w_, s_], [e_, s_], [e_, n_], [w_, n_], [w_, s_]]]}
    start_all = min(s for s, _ in dep_span.values())
    end_all = max(e for _, e in dep_span.values())
    created = opt.created or info.completion_time or datetime.now(UTC)
    try:
        from importlib.metadata import version

        sleuth_version = version("sleuth")
    except Exception:  # pragma: no cover - not installed
        sleuth_version = "unknown"
    descriptor: dict[str, Any] = {
        "name": opt.package_name or f"sleuth-{localise(created).strftime('%Y%m%d%H%M%S')}",
        "title": opt.project_title,
        "profile": PROFILE_URL,
        "created": format_timestamp(localise(created)),
        "contributors": opt.contributors,
        "sources": [{"title": "sleuth", "version": sleuth_version}],
        "project": {
            "title": opt.project_title,
            "samplingDesign": opt.sampling_design,
            "captureMethod": [opt.capture_method],
            "individualAnimals": False,
            "observationLevel": ["media"],
            "description": f"Machine observations by {classified_by} (export threshold {threshold:g}); "
            f"events grouped with a {opt.gap_seconds:g} s gap.",
        },
        "spatial": spatial,
        "temporal": {"start": start_all.date().isoformat(), "end": end_all.date().isoformat()},
        "taxonomic": [taxa[k] for k in sorted(taxa)],
        "resources": [
            {
                "name": name,
                "path": f"{name}.csv",
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": SCHEMA_URLS[name],
            }
            for name in TABLES
        ],
    }
    tables = {"deployments": dep_rows, "media": media_rows, "observations": obs_rows}
    return descriptor, tables


def _human(review: ReviewMark, localise: Any) -> dict[str, str]:
    """The classification columns of an observation a person decided (the web app's reviews)."""
    return {
        "classificationMethod": "human",
        "classifiedBy": review.reviewer or "reviewer",
        "classificationTimestamp": format_timestamp(localise(review.reviewed_at)),
        "classificationProbability": "",
    }


_COLUMNS = {"deployments": DEPLOYMENT_COLUMNS, "media": MEDIA_COLUMNS, "observations": OBSERVATION_COLUMNS}


def write_camtrap_dp(
    records: Sequence[ImageRecord], info: RunInfo | None, out_dir: str | Path, options: CamtrapOptions | None = None
) -> Path:
    """Write the package into ``out_dir``; returns the ``datapackage.json`` path."""
    descriptor, tables = build_camtrap_dp(records, info, options)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        with (out / f"{name}.csv").open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=_COLUMNS[name], lineterminator="\n")
            writer.writeheader()
            writer.writerows(tables[name])
    path = out / "datapackage.json"
    path.write_text(json.dumps(descriptor, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
