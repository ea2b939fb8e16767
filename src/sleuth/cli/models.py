"""``sleuth models``: list, pull and verify catalog models.

Imports stay light (no torch, no onnxruntime): converters import torch themselves, and
only when a pull actually converts something.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from sleuth.cli.common import typer_app
from sleuth.engine import catalog as cat

app = typer_app("Model catalog: list, pull (fetch + verify + convert) and verify models.")


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
    return "\n".join(lines)


def _log_to_stderr() -> None:
    logger = logging.getLogger("sleuth.models")
    if not any(getattr(h, "_sleuth_cli", False) for h in logger.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(message)s"))
        h._sleuth_cli = True  # type: ignore[attr-defined]
        logger.addHandler(h)
    logger.setLevel(logging.INFO)


def _load() -> dict[str, cat.CatalogEntry]:
    try:
        return cat.load_catalog()
    except cat.CatalogError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


@app.command("list")
def list_models(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show every catalog model: name, version, task, licence, default, status, size."""
    catalog = _load()
    records: list[dict[str, Any]] = []
    for e in catalog.values():
        records.append(
            {
                "name": e.name,
                "version": e.version,
                "task": e.task,
                "licence": e.licence,
                "default": e.default,
                "status": cat.status(e),
                "size": e.size,
                "converted": bool(e.convert),
                "digest": cat.digest_state(e),
                "description": e.description,
            }
        )
    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    if not records:
        typer.echo("The catalog is empty.")
        return
    header = ["NAME", "VERSION", "TASK", "LICENCE", "DEFAULT", "STATUS", "SIZE", "DIGEST"]
    rows = [
        [
            r["name"],
            r["version"],
            r["task"],
            r["licence"],
            "yes" if r["default"] else "",
            r["status"],
            _human(r["size"]),
            r["digest"],
        ]
        for r in records
    ]
    typer.echo(_table(rows, header))


@app.command("pull")
def pull_models(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Model names, 'default' (the default set) or 'all'.", show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Re-run converters even if up to date.")] = False,
) -> None:
    """Fetch, verify and convert models into the cache (default: the default set)."""
    _log_to_stderr()
    catalog = _load()
    try:
        wanted = cat.resolve_names(names or ["default"], catalog)
    except cat.ModelNotFoundError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    if not wanted:
        typer.echo("Nothing to pull.")
        return
    from sleuth.engine.catalog.mirror import missing_files, missing_report

    failed: dict[str, Exception] = {}
    for n in wanted:
        try:
            paths = cat.ensure(catalog[n], force=force)
        except (cat.ArtefactError, OSError) as e:
            failed[n] = e
            continue
        typer.echo(f"ok {n} {catalog[n].version}: " + ", ".join(f"{k}={p}" for k, p in sorted(paths.items())))
        note = catalog[n].extra.get("manual_export")
        if not catalog[n].servable and isinstance(note, str):
            typer.echo(f"note {n}: downloaded and verified, but not servable as is: {note}")
    if not failed:
        return
    # Files that could not be fetched: one message with each file, its digest and its mirror path. Other
    # failures (a converter, a modified cached file) are reported one by one.
    missing = missing_files([catalog[n] for n in failed])
    unfetched = {m.model for m in missing}
    for n, err in failed.items():
        if n not in unfetched:
            typer.echo(f"FAILED {n}: {err}", err=True)
    if missing:
        first = next(err for n, err in failed.items() if n in unfetched)
        typer.echo(f"{missing_report(missing)}\n(first error: {first})", err=True)
    raise typer.Exit(1)


@app.command("import")
def import_model(
    path: Annotated[
        Path, typer.Argument(help="A SpeciesNet release folder (info.json, .pt, labels, ...) or its archive.")
    ],
    force: Annotated[bool, typer.Option("--force", help="Replace a different file recorded before.")] = False,
) -> None:
    """Import a model you downloaded yourself (SpeciesNet releases): recorded, converted, ready to serve."""
    _log_to_stderr()
    catalog = _load()
    from sleuth.engine.catalog.imports import import_artefact

    try:
        from sleuth.convert.speciesnet import ReleaseError, pack_folder, release_version
    except ImportError as e:  # pragma: no cover - the package always has it
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    if not path.exists():
        typer.echo(f"error: {path} does not exist", err=True)
        raise typer.Exit(2)
    try:
        version = release_version(path)
    except ReleaseError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    name = f"speciesnet-{version}"
    if name not in catalog:
        known = ", ".join(n for n in catalog if n.startswith("speciesnet-")) or "none"
        typer.echo(
            f"error: {path}: info.json says version {version!r}; the catalog has no {name} (known: {known})", err=True
        )
        raise typer.Exit(2)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sleuth-import-") as tmp:
        archive = path if path.is_file() else pack_folder(path, Path(tmp) / "release.tar.gz")
        try:
            paths = import_artefact(catalog[name], "archive", archive, what=f"import {path}", force=force)
        except (cat.ArtefactError, OSError) as e:
            typer.echo(f"FAILED {name}: {e}", err=True)
            raise typer.Exit(1) from e
    typer.echo(f"ok {name} {version}: " + ", ".join(f"{k}={p}" for k, p in sorted(paths.items())))


@app.command("mirror")
def mirror_models(
    directory: Annotated[Path, typer.Argument(help="The mirror folder to write (created if missing).")],
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Model names, 'default' or 'all' (default: every model in the cache).", show_default=False),
    ] = None,
) -> None:
    """Write a mirror folder from the cache, for air-gapped installs: copy it over, point SLEUTH_MODEL_MIRROR
    at it, and `sleuth models pull` fetches nothing from the network."""
    from sleuth.engine.catalog.mirror import missing_report, write_mirror

    catalog = _load()
    try:
        if names:
            wanted = cat.resolve_names(names, catalog)
        else:
            wanted = [n for n, e in catalog.items() if cat.status(e) == "installed"]
    except cat.ModelNotFoundError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    if not wanted:
        typer.echo("error: the cache holds no model; run `sleuth models pull` first", err=True)
        raise typer.Exit(1)
    written, lacking = write_mirror(directory, [catalog[n] for n in wanted])
    typer.echo(f"wrote {len(written)} files of {len(wanted)} models to {directory}")
    if lacking:
        typer.echo(f"the cache lacks some files, not in the mirror:\n{missing_report(lacking)}", err=True)
        raise typer.Exit(1)


@app.command("verify")
def verify_models(
    name: Annotated[
        str | None, typer.Argument(help="One model (default: every model in the cache).", show_default=False)
    ] = None,
) -> None:
    """Re-hash cached artefacts and converted files; exit code 1 on any problem."""
    problems = cat.verify(name)
    for p in problems:
        typer.echo(f"problem: {p}")
    if problems:
        raise typer.Exit(1)
    typer.echo(f"ok: {name}" if name else "ok: every cached model verifies")
