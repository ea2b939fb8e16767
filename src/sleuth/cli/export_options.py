"""Export options shared by ``sleuth detect`` and ``sleuth export``: formats, output paths, the per-format
options, and the check of what each format needs (run before any file is processed)."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Annotated, Any

import typer

FORMAT_FILES = {"md": "results.json", "csv": "results.csv", "coco": "results.coco.json", "camtrap-dp": "camtrap-dp"}


def parse_formats(values: list[str] | None) -> list[str]:
    from sleuth.exports import FORMATS

    out: list[str] = []
    for v in values or ["md"]:
        for part in v.split(","):
            p = part.strip().lower()
            if not p:
                continue
            p = {"megadetector": "md", "camtrap": "camtrap-dp", "camtrapdp": "camtrap-dp", "cct": "coco"}.get(p, p)
            if p not in FORMATS:
                raise ValueError(f"unknown format {part!r}; choose from {', '.join(FORMATS)}")
            if p not in out:
                out.append(p)
    if not out:
        raise ValueError("no output format given")
    return out


def output_paths(output: Path, formats: list[str]) -> dict[str, Path]:
    """``--output`` is a folder (one file per format inside), or a file when one file format is
    asked for and the name has a suffix (``results.json``, ``out.csv``)."""
    if len(formats) == 1 and formats[0] != "camtrap-dp" and output.suffix and not output.is_dir():
        return {formats[0]: output}
    return {fmt: output / FORMAT_FILES[fmt] for fmt in formats}


def parse_timezone(text: str | None) -> tzinfo | None:
    if text is None or not text.strip():
        return None
    s = text.strip()
    if s.upper() in ("UTC", "Z"):
        return UTC
    sign = 1
    if s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        hh, _, mm = s[1:].partition(":")
        try:
            return timezone(sign * timedelta(hours=int(hh), minutes=int(mm or 0)))
        except ValueError:
            raise ValueError(f"bad timezone offset {text!r} (use +02:00 or an IANA name)") from None
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(s)
    except Exception:  # noqa: BLE001 - ZoneInfoNotFoundError, ValueError
        raise ValueError(f"unknown timezone {text!r} (use +02:00 or an IANA name like Europe/Paris)") from None


def export_options(
    fmt: str,
    *,
    threshold: float | None,
    gap_seconds: float,
    deployments: Path | None,
    deployment_id: str | None,
    latitude: float | None,
    longitude: float | None,
    tz: str | None,
    placeholder_coordinates: bool,
    media_root: str,
    category_names: str,
) -> dict[str, Any]:
    if fmt == "md":
        return {}
    opts: dict[str, Any] = {"threshold": threshold, "gap_seconds": gap_seconds}
    if fmt == "coco":
        opts["category_names"] = category_names
    if fmt == "camtrap-dp":
        from sleuth.exports import Deployment

        if deployments is not None and (latitude is not None or deployment_id is not None):
            raise ValueError("give either --deployments CSV or --deployment-id/--latitude/--longitude, not both")
        if deployments is not None:
            opts["deployments"] = deployments
        elif latitude is not None or longitude is not None or deployment_id is not None:
            opts["deployments"] = Deployment(deployment_id or "deployment", latitude, longitude)
        opts["timezone"] = parse_timezone(tz)
        opts["allow_placeholder_coordinates"] = placeholder_coordinates
        opts["media_root"] = media_root
    return opts


def coordinates_message(missing: list[str]) -> str:
    """The Camtrap DP remedy in the command line's own words (its flags)."""
    return (
        f"camtrap-dp needs latitude/longitude for every deployment; missing for {', '.join(missing)}. Pass "
        "--latitude and --longitude (one deployment for everything, optionally named with --deployment-id), "
        "--deployments CSV (one row per camera folder: folder,deploymentID,latitude,longitude,...), or "
        "--placeholder-coordinates (0, 0, marked as placeholders)"
    )


def check_export_needs(fmts: list[str], opts_for: Any, folders: set[str]) -> None:
    """Check what every asked-for format needs before anything is processed, so that no export fails after a
    long run: the options parse (time zone, deployments CSV), COCO's category names, Camtrap DP's coordinates
    for every camera folder. Raises ValueError naming the command-line flags."""
    from sleuth.exports.camtrap_dp import deployments_without_coordinates

    for fmt in fmts:
        opts = opts_for(fmt)
        if fmt == "coco" and opts.get("category_names") not in ("label", "detector"):
            raise ValueError(f"--category-names must be label or detector, got {opts.get('category_names')!r}")
        if fmt == "camtrap-dp" and not opts.get("allow_placeholder_coordinates"):
            missing = deployments_without_coordinates(sorted(folders), opts.get("deployments"))
            if missing:
                raise ValueError(coordinates_message(missing))


def write_exports(records: Any, info: Any, paths: dict[str, Path], opts_for: Any) -> list[str]:
    """Write every format; a format that cannot be written (e.g. Camtrap DP without coordinates) is
    reported and the others are still written. Returns the error messages."""
    from sleuth.exports import export
    from sleuth.exports.camtrap_dp import MissingCoordinatesError

    errors = []
    for fmt, path in paths.items():
        try:
            written = export(records, info, fmt, path, **opts_for(fmt))
        except MissingCoordinatesError as e:
            msg = coordinates_message(e.deployments)
            errors.append(msg)
            typer.secho(f"error: could not write {fmt}: {msg}", err=True, fg=typer.colors.RED)
            continue
        except ValueError as e:
            errors.append(f"{fmt}: {e}")
            typer.secho(f"error: could not write {fmt}: {e}", err=True, fg=typer.colors.RED)
            continue
        typer.echo(f"wrote {fmt}: {written}", err=True)
    return errors


Formats = Annotated[
    list[str] | None,
    typer.Option("--format", "-f", help="md, csv, coco, camtrap-dp (repeat or comma-separate; default md)."),
]
Threshold = Annotated[float | None, typer.Option(help="Export threshold (default: the run's).")]
GapSeconds = Annotated[float, typer.Option(help="Sequence (event) gap in seconds, per camera folder.")]
DeploymentsCsv = Annotated[
    Path | None, typer.Option(help="Camtrap DP deployments CSV (folder,deploymentID,latitude,...).")
]
DeploymentId = Annotated[str | None, typer.Option(help="Camtrap DP: one deployment id for everything.")]
Latitude = Annotated[float | None, typer.Option(help="Camtrap DP deployment latitude.")]
Longitude = Annotated[float | None, typer.Option(help="Camtrap DP deployment longitude.")]
Tz = Annotated[str | None, typer.Option("--timezone", help="Time zone of EXIF times: +02:00 or Europe/Paris.")]
Placeholder = Annotated[
    bool, typer.Option("--placeholder-coordinates", help="Camtrap DP: allow 0,0 when coordinates are unknown.")
]
MediaRoot = Annotated[str, typer.Option(help="Camtrap DP: prefix of media filePath (e.g. a URL).")]
CategoryNames = Annotated[str, typer.Option(help="COCO categories: label (species) or detector.")]
