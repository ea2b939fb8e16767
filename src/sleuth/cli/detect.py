"""``sleuth detect`` (run the wildlife pipeline over folders, locally or on a server) and
``sleuth export`` (convert an MD results file or saved API responses). See ``docs/folder-cli.md``."""

from __future__ import annotations

import functools
import posixpath
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from sleuth.cli.export_options import (
    CategoryNames,
    DeploymentId,
    DeploymentsCsv,
    Formats,
    GapSeconds,
    Latitude,
    Longitude,
    MediaRoot,
    Placeholder,
    Threshold,
    Tz,
    check_export_needs,
    export_options,
    output_paths,
    parse_formats,
    write_exports,
)

CHECKPOINT_NAME = ".sleuth-checkpoint.jsonl"


def _fail(msg: str, code: int = 1) -> None:
    typer.secho(f"error: {msg}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _select_models(profile: str, detector: str | None, classifier: str | None) -> None:
    """--detector/--classifier as the profile's settings for this process; then every selected model must be
    installed (the same start-up check as the server)."""
    import os

    from sleuth.services.model_selection import SelectionError, check_selection
    from sleuth.settings import get_settings

    if detector:
        os.environ["SLEUTH_URBAN_DETECTOR" if profile == "urban" else "SLEUTH_WILDLIFE_DETECTOR"] = detector
    if classifier:
        os.environ["SLEUTH_URBAN_CLASSIFIER" if profile == "urban" else "SLEUTH_CLASSIFIER_PACK"] = classifier
    get_settings.cache_clear()
    try:
        check_selection(get_settings())
    except SelectionError as e:
        msg = str(e)
        if detector:
            msg = msg.replace("SLEUTH_URBAN_DETECTOR=", "--detector ").replace(
                "SLEUTH_WILDLIFE_DETECTOR=", "--detector "
            )
        if classifier:
            msg = msg.replace("SLEUTH_URBAN_CLASSIFIER=", "--classifier ").replace(
                "SLEUTH_CLASSIFIER_PACK=", "--classifier "
            )
        _fail(msg, 2)


def _missing_models_hint(engine: Any) -> str:
    """Every model file the run lacks, with its digest and mirror path (one message, not one error a run)."""
    from sleuth.engine import catalog as cat
    from sleuth.engine.catalog.mirror import missing_files, missing_report

    try:
        catalog = cat.load_catalog()
        missing = missing_files([catalog[n] for n in engine.catalog_models() if n in catalog])
    except (cat.CatalogError, OSError):
        return ""
    return f"\n{missing_report(missing)}" if missing else ""


def detect(
    paths: Annotated[list[Path] | None, typer.Argument(help="Folders (walked recursively) and/or files.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder, or file for one format.")] = Path(
        "sleuth-results"
    ),
    formats: Formats = None,
    threshold: Annotated[float, typer.Option(help="Detection threshold.")] = 0.2,
    country: Annotated[str | None, typer.Option(help="Country (CCA2/CCA3/name) for the species geofence.")] = None,
    admin1: Annotated[str | None, typer.Option(help="State/region (with --country), e.g. US-CA.")] = None,
    classify: Annotated[bool, typer.Option("--classify/--no-classify", help="Species classification.")] = True,
    profile: Annotated[str, typer.Option(help="Pipeline profile: default or urban.")] = "default",
    detector: Annotated[
        str | None,
        typer.Option(
            help="Detector for this run (catalog name: mdlite, mdv5a.0.0, mdv1000-redwood, ...); "
            "default: SLEUTH_WILDLIFE_DETECTOR / SLEUTH_URBAN_DETECTOR."
        ),
    ] = None,
    classifier: Annotated[
        str | None,
        typer.Option(
            help="Classifier for this run: coral, a SpeciesNet release (speciesnet-4.0.3a) or a "
            "SpeciesNet folder; default: SLEUTH_CLASSIFIER_PACK."
        ),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="MD-Lite graph: int8 (fast), fp32 (upstream) or auto (int8 where the CPU has VNNI or is ARM); "
            "default: SLEUTH_DETECTOR_PRECISION (auto)."
        ),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint (skip done files).")] = False,
    restart: Annotated[bool, typer.Option("--restart", help="Discard an existing checkpoint and start over.")] = False,
    checkpoint: Annotated[Path | None, typer.Option(help="Checkpoint file (default: inside --output).")] = None,
    checkpoint_every: Annotated[int, typer.Option(help="Write the checkpoint every N files.")] = 100,
    max_images: Annotated[int | None, typer.Option(help="Process at most N new files this run.")] = None,
    files_from: Annotated[Path | None, typer.Option(help="Text file listing input paths, one a line.")] = None,
    video_fps: Annotated[float, typer.Option(help="Frames sampled per second of video.")] = 1.0,
    max_video_secs: Annotated[float, typer.Option(help="Seconds of each video analysed at most.")] = 600.0,
    chunk_size: Annotated[int, typer.Option(help="Images per pipeline chunk.")] = 16,
    gap_seconds: GapSeconds = 60.0,
    deployments: DeploymentsCsv = None,
    deployment_id: DeploymentId = None,
    latitude: Latitude = None,
    longitude: Longitude = None,
    tz: Tz = None,
    placeholder_coordinates: Placeholder = False,
    media_root: MediaRoot = "",
    category_names: CategoryNames = "label",
    server: Annotated[str | None, typer.Option(help="Send the images to a running sleuth at this URL.")] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="SLEUTH_API_KEY", help="API key for --server (or SLEUTH_API_KEY).")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="--server: requests in flight.")] = 4,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    suppress_repeats: Annotated[
        bool,
        typer.Option(
            "--suppress-repeats",
            help="Drop repeat detections: boxes recurring at one place in >= 10 images of a camera folder "
            "(flagged as repeat_detection in the MD output either way).",
        ),
    ] = False,
) -> None:
    """Detect and classify wildlife in folders of camera-trap images and videos."""
    from sleuth.services import folder as fl

    if (detector or classifier) and server:
        _fail("--detector/--classifier choose local models; with --server the server's settings decide", 2)
    if not server:
        _select_models(profile, detector, classifier)
    try:
        fmts = parse_formats(formats)
        inputs = [str(p) for p in paths or []]
        if files_from is not None:
            inputs += fl.read_file_list(files_from)
        files = fl.discover(inputs)
        config = fl.DetectConfig(
            profile=profile,
            precision=precision,
            threshold=threshold,
            classify=classify,
            country=country,
            admin1=admin1,
            video_fps=video_fps,
            max_video_secs=max_video_secs,
            chunk_size=chunk_size,
            checkpoint_every=checkpoint_every,
            server=server,
            suppress_repeats=suppress_repeats,
        )
        out_paths = output_paths(output, fmts)
        single_file = list(out_paths.values()) == [output]
        ckpt_path = checkpoint or (
            output.with_name(output.name + ".checkpoint.jsonl") if single_file else output / CHECKPOINT_NAME
        )
        opts_for = functools.partial(
            export_options,
            threshold=None,
            gap_seconds=gap_seconds,
            deployments=deployments,
            deployment_id=deployment_id,
            latitude=latitude,
            longitude=longitude,
            tz=tz,
            placeholder_coordinates=placeholder_coordinates,
            media_root=media_root,
            category_names=category_names,
        )
        # fail on what an export needs before the run, not after it
        check_export_needs(fmts, opts_for, {posixpath.dirname(f.name) for f in files})
        ckpt = fl.Checkpoint(ckpt_path, config)
        done: dict[str, Any] = {}
        if ckpt_path.exists():
            if resume:
                done = ckpt.load()
            elif not restart and ckpt.has_records():  # one of a run that processed nothing blocks nothing
                raise ValueError(
                    f"a checkpoint of an earlier run exists ({ckpt_path}): pass --resume to continue "
                    "it or --restart to start over"
                )
        known = {f.name for f in files}
        done = {k: v for k, v in done.items() if k in known}
        engine: Any
        if server:
            if not api_key:
                raise ValueError("--server needs an API key: --api-key or SLEUTH_API_KEY")
            engine = fl.ServerEngine(config, server, api_key, concurrency=concurrency)
        else:
            engine = fl.LocalEngine(config)
    except ValueError as e:
        _fail(str(e))
        return
    todo = sum(1 for f in files if f.name not in done)
    if max_images is not None:
        todo = min(todo, max_images)
    where = f"on {server}" if server else "locally"
    typer.echo(
        f"{len(files)} files ({len(done)} already done); processing {todo} {where} with profile {profile!r}", err=True
    )
    ckpt.start(done.values())

    from tqdm import tqdm

    bar = tqdm(
        total=todo,
        unit="img",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
        mininterval=0.5,
    )
    if isinstance(engine, fl.LocalEngine) and todo:
        bar.set_description("loading models")
        try:
            engine.warm_up()
        except Exception as e:  # noqa: BLE001 - model/artefact problems: clear message, no traceback
            bar.close()
            ckpt.close(remove=not done)  # nothing processed: leave nothing that asks for --resume
            _fail(f"cannot load the models: {e}" + _missing_models_hint(engine))
        bar.set_description("detect")
        bar.reset(total=todo)

    failed = [0]

    def on_record(rec: Any) -> None:
        ckpt.add(rec)
        if rec.failure is not None:
            failed[0] += 1
            bar.set_postfix(failed=failed[0], refresh=False)
        bar.update(1)

    stop = threading.Event()
    try:
        records, stats = fl.run_folder(
            files, config, engine, done=done, on_record=on_record, max_files=max_images, stop=stop
        )
    except Exception as e:  # server refused, model crashed: keep what is done
        ckpt.close()
        bar.close()
        if not ckpt.has_records():
            ckpt.close(remove=True)
            _fail(str(e))
        _fail(f"{e} (finished files are in the checkpoint {ckpt_path}; rerun with --resume)")
        return
    finally:
        engine.close()
    bar.close()
    complete = not stats.interrupted and not stats.limited
    ckpt.close(remove=False)
    typer.echo(
        f"{stats.processed} files processed in {stats.seconds:.1f} s "
        f"({stats.processed / stats.seconds if stats.seconds else 0:.2f} files/s), {stats.failed} failed, "
        f"{stats.skipped} skipped (already done)" + (f", {stats.frames} video frames" if stats.frames else ""),
        err=True,
    )
    if stats.interrupted:
        typer.secho(
            f"interrupted: {len(records)} of {len(files)} files done; checkpoint {ckpt_path}; "
            "rerun with --resume to continue",
            err=True,
            fg=typer.colors.YELLOW,
        )
        raise typer.Exit(130)
    info = fl.run_info(config, datetime.now(), model_version=getattr(engine, "model_version", None))
    flagged, cameras = fl.flag_folder_repeats(records, suppress=suppress_repeats)
    if flagged:
        what = "dropped" if suppress_repeats else "flagged (repeat_detection; --suppress-repeats drops them)"
        typer.echo(f"{flagged} repeat detections in {cameras} camera folders {what}", err=True)

    errors = write_exports(records, info, out_paths, opts_for)
    if not complete:
        typer.secho(
            f"stopped after --max-images: {len(records)} of {len(files)} files done (outputs are "
            f"partial); rerun with --resume to continue",
            err=True,
            fg=typer.colors.YELLOW,
        )
    elif not errors:
        ckpt.close(remove=True)
    if errors:
        raise typer.Exit(1)


def export_cmd(
    results: Annotated[
        Path,
        typer.Argument(
            help="MegaDetector batch results JSON (format >= 1.3), or saved API responses (batch-detect, detect, "
            "detect-url, a job result, or a JSON list of them)."
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder, or file for one format.")] = Path(
        "sleuth-export"
    ),
    formats: Formats = None,
    threshold: Threshold = None,
    gap_seconds: GapSeconds = 60.0,
    deployments: DeploymentsCsv = None,
    deployment_id: DeploymentId = None,
    latitude: Latitude = None,
    longitude: Longitude = None,
    tz: Tz = None,
    placeholder_coordinates: Placeholder = False,
    media_root: MediaRoot = "",
    category_names: CategoryNames = "label",
) -> None:
    """Convert an MD results file (from sleuth detect, MegaDetector or SpeciesNet), or saved API responses, to
    other formats."""
    from sleuth.services.results import read_results_file

    try:
        fmts = parse_formats(formats or ["csv"])
        records, info = read_results_file(results)
        out_paths = output_paths(output, fmts)
        opts_for = functools.partial(
            export_options,
            threshold=threshold,
            gap_seconds=gap_seconds,
            deployments=deployments,
            deployment_id=deployment_id,
            latitude=latitude,
            longitude=longitude,
            tz=tz,
            placeholder_coordinates=placeholder_coordinates,
            media_root=media_root,
            category_names=category_names,
        )
        check_export_needs(fmts, opts_for, {r.camera_folder for r in records if r.failure is None})
    except ValueError as e:
        _fail(str(e))
        return

    typer.echo(f"{len(records)} files in {results}", err=True)
    if write_exports(records, info, out_paths, opts_for):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``detect`` and ``export`` to the ``sleuth`` command line."""
    app.command("detect")(detect)
    app.command("export")(export_cmd)
