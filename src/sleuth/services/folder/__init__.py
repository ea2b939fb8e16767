"""Local folder runner behind ``sleuth detect``: walk, read, detect, checkpoint, resume.

Flow (memory stays flat: only the small per-file records are kept, never decoded images)::

    discover(paths) -> sorted InputFile list (images + camera-trap videos, relative names)
    reader thread   -> chunks of <= chunk_size work items (image bytes, or sampled video frames
                       re-encoded as JPEG), bounded queue of 2 chunks
    main thread     -> engine.detect(chunk) with at most ``in_flight`` chunks running (decode of
                       the next chunk overlaps inference of the current one; the per-model
                       micro-batchers batch across them) -> ImageRecord per finished file
                    -> checkpoint (JSON lines, appended and fsynced every N files) -> progress

Engines: :class:`LocalEngine` (``services.wildlife.run_images``, same profiles as the server) and
:class:`ServerEngine` (``POST /v1/batch-detect`` of a running sleuth, bounded concurrency).
Both return the same :class:`~sleuth.exports.records.ImageRecord` objects, so every export format
works the same way for both.
"""

from __future__ import annotations

from sleuth.services.folder.checkpoint import Checkpoint, record_from_json, record_to_json
from sleuth.services.folder.config import DetectConfig, run_info
from sleuth.services.folder.engines import Engine, ItemResult, LocalEngine, ServerEngine, WorkItem
from sleuth.services.folder.inputs import IMAGE_EXTENSIONS, InputFile, discover, read_file_list
from sleuth.services.folder.repeats import flag_folder_repeats
from sleuth.services.folder.runner import RunStats, run_folder

__all__ = [
    "IMAGE_EXTENSIONS",
    "Checkpoint",
    "DetectConfig",
    "Engine",
    "InputFile",
    "ItemResult",
    "LocalEngine",
    "RunStats",
    "ServerEngine",
    "WorkItem",
    "discover",
    "flag_folder_repeats",
    "read_file_list",
    "record_from_json",
    "record_to_json",
    "run_folder",
    "run_info",
]
