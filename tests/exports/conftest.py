"""Realistic run records built from the shared camera-trap manifest (reference boxes + real EXIF)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from sleuth.exports.records import DetectionRecord, ImageRecord, RunInfo

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
CT = DATA / "camera_traps"
BLANK = "f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank"
ANIMAL = "1f689929-883d-4dae-958c-3d57ab5b6c16;;;;;;animal"
VIDEO_FILE = "videos/site_b/clip_0001.mp4"


def exif_datetime(path: Path) -> datetime | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            exif = im.getexif()
            text = exif.get_ifd(0x8769).get(36867) or exif.get(306)
    except Exception:
        return None
    if not text:
        return None
    return datetime.strptime(str(text).strip("\x00").strip(), "%Y:%m:%d %H:%M:%S")


def build_records() -> tuple[list[ImageRecord], RunInfo]:
    manifest = json.loads((CT / "manifest.json").read_text())
    records: list[ImageRecord] = []
    for item in manifest["images"]:
        path = item["path"]
        if item["kind"] == "invalid":
            records.append(ImageRecord(file=path, failure="Failure image access", is_video=path.endswith(".mp4")))
            continue
        expected = item.get("expected_speciesnet") or {}
        top_box = expected.get("classifier_input_bbox")
        dets = []
        for box in item["boxes"] or []:
            conf = box["conf"] if box["conf"] is not None else 1.0  # ground-truth boxes have no conf
            det = DetectionRecord(category=int(box["md_category"]), conf=conf, bbox=tuple(box["bbox"]))
            if expected.get("label") and top_box is not None and list(box["bbox"]) == list(top_box):
                # classifier output on the box it was run on (score derived from the box conf)
                score = round(0.5 + box["conf"] / 2, 3)
                det.label, det.label_score = expected["label"], score
                det.classifications = [(expected["label"], score), (ANIMAL, round(1 - score, 3) / 2)]
            dets.append(det)
        dt = exif_datetime(CT / path)
        exif = {"DateTimeOriginal": dt.strftime("%Y:%m:%d %H:%M:%S")} if dt else {}
        records.append(
            ImageRecord(file=path, detections=dets, width=item["width"], height=item["height"], datetime=dt, exif=exif)
        )
    # one video: two frames with the same animal, one with a person
    records.append(
        ImageRecord(
            file=VIDEO_FILE,
            is_video=True,
            frame_rate=25.0,
            frames_processed=[0, 25, 50],
            width=1920,
            height=1080,
            datetime=datetime(2021, 6, 1, 21, 15, 2),
            detections=[
                DetectionRecord(1, 0.91, (0.1, 0.2, 0.3, 0.25), frame_number=0),
                DetectionRecord(1, 0.88, (0.12, 0.21, 0.3, 0.25), frame_number=25),
                DetectionRecord(2, 0.45, (0.7, 0.1, 0.1, 0.5), frame_number=50),
            ],
        )
    )
    info = RunInfo(
        detector="md_v5a.0.0.pt",
        classifier="speciesnet-v4.0.0a",
        threshold=0.2,
        completion_time=datetime(2024, 5, 1, 12, 30, 0),
        classification_completion_time=datetime(2024, 5, 1, 12, 31, 0),
        detector_metadata={"megadetector_version": "v5a.0.0", "conservative_detection_threshold": 0.05},
    )
    return records, info


@pytest.fixture(scope="session")
def run_records() -> tuple[list[ImageRecord], RunInfo]:
    if not (CT / "manifest.json").is_file():
        pytest.skip("shared/data/camera_traps not present")
    return build_records()
