"""``sleuth detect`` / ``sleuth export`` on a copy of part of the shared camera-trap folder."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from sleuth.services import folder as fl
from validators import md_validate, validate_camtrap_dp

from .conftest import CT, DEPLOYMENTS_CSV, PICK, VIDEO, md_images, run_cli

IMAGES = [dst for _, dst in PICK]


def _strip(images: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(images, key=lambda im: im["file"])


# ----------------------------------------------------------------------------- inputs (no models)


def test_discover_nested_names_and_filters(ct_folder: Path, tmp_path: Path) -> None:
    files = fl.discover([ct_folder])
    names = [f.name for f in files]
    assert names == sorted([*IMAGES, VIDEO])  # nested, relative, sorted; no .txt, no hidden folder
    assert [f.name for f in fl.discover([ct_folder / "site_a", ct_folder / "site_b" / "cam1"])][:2] == [
        "site_a/2021-05-28_SYFR0041_deer.JPG",
        "site_a/2021-06-30_SYFR0218_cougar.JPG",
    ]
    one = fl.discover([ct_folder / "site_b" / "cam1" / "blank.jpg"])
    assert [f.name for f in one] == ["blank.jpg"]
    with pytest.raises(ValueError, match="input not found"):
        fl.discover([ct_folder / "nope"])
    with pytest.raises(ValueError, match="no images or videos"):
        fl.discover([tmp_path])


def test_checkpoint_roundtrip_torn_line_and_option_check(tmp_path: Path) -> None:
    from datetime import datetime

    from sleuth.exports import DetectionRecord, ImageRecord

    cfg = fl.DetectConfig(checkpoint_every=2)
    recs = [
        ImageRecord(
            "a/1.jpg",
            [DetectionRecord(1, 0.9, (0.1, 0.2, 0.3, 0.4), "x;;;;;;animal", 0.9, [("x;;;;;;animal", 0.9)])],
            10,
            20,
            datetime(2021, 1, 2, 3, 4, 5),
            {"Make": "SY"},
        ),
        ImageRecord("a/2.jpg", failure="empty file (0 bytes)"),
        ImageRecord(
            "v.mp4",
            [DetectionRecord(2, 0.5, (0, 0, 1, 1), frame_number=10)],
            is_video=True,
            frame_rate=10.0,
            frames_processed=[0, 10],
        ),
    ]
    ck = fl.Checkpoint(tmp_path / "ck.jsonl", cfg)
    ck.start(recs[:1])
    for r in recs[1:]:
        ck.add(r)
    ck.close()
    with open(tmp_path / "ck.jsonl", "a") as f:
        f.write('{"file": "torn", "detec')  # a crash mid-write
    loaded = fl.Checkpoint(tmp_path / "ck.jsonl", cfg).load()
    assert list(loaded) == ["a/1.jpg", "a/2.jpg", "v.mp4"]
    assert [loaded[r.file] for r in recs] == recs
    with pytest.raises(ValueError, match="different options .*threshold: checkpoint 0.2, now 0.5"):
        fl.Checkpoint(tmp_path / "ck.jsonl", fl.DetectConfig(threshold=0.5)).load()
    # a checkpoint from before the precision option (FP32 graph) resumes with --precision fp32 only
    lines = (tmp_path / "ck.jsonl").read_text().split("\n")
    header = json.loads(lines[0])
    del header["options"]["precision"]
    (tmp_path / "old.jsonl").write_text("\n".join([json.dumps(header), *lines[1:]]))
    assert list(fl.Checkpoint(tmp_path / "old.jsonl", fl.DetectConfig(precision="fp32")).load()) == list(loaded)
    with pytest.raises(ValueError, match="precision: checkpoint 'fp32', now 'int8'"):
        fl.Checkpoint(tmp_path / "old.jsonl", fl.DetectConfig(precision="int8")).load()
    (tmp_path / "bad.jsonl").write_text("hello\n")
    with pytest.raises(ValueError, match="not a sleuth checkpoint"):
        fl.Checkpoint(tmp_path / "bad.jsonl", cfg).load()


def test_cli_rejects_bad_options(detect_env: dict[str, str], ct_folder: Path, tmp_path: Path) -> None:
    r = run_cli(["detect", str(ct_folder), "-o", str(tmp_path / "o"), "-f", "md,xml"], detect_env)
    assert r.exit_code == 1 and "unknown format 'xml'" in r.output
    r = run_cli(["detect", str(ct_folder), "-o", str(tmp_path / "o"), "--country", "Atlantis"], detect_env)
    assert r.exit_code == 1 and "Atlantis" in r.output
    r = run_cli(["detect", str(tmp_path / "missing"), "-o", str(tmp_path / "o")], detect_env)
    assert r.exit_code == 1 and "input not found" in r.output
    r = run_cli(["detect", str(ct_folder), "--server", "http://127.0.0.1:9", "-o", str(tmp_path / "o")], detect_env)
    assert r.exit_code == 1 and "API key" in r.output


# ----------------------------------------------------------------------------- a real run


def test_clean_run_md_validates_with_failures_and_video(clean_run: Path) -> None:
    d = json.loads((clean_run / "results.json").read_text())
    res = md_validate(d)
    assert res["errors"] == [] and res["warnings"] == []
    by_file = {im["file"]: im for im in d["images"]}
    assert sorted(by_file) == sorted([*IMAGES, VIDEO])
    # the 0-byte files are failures, and the run went on
    assert by_file["site_a/error_img.JPG"]["detections"] is None
    assert "0 bytes" in by_file["site_a/error_img.JPG"]["failure"]
    assert by_file["site_a/error_vid.mp4"]["failure"]
    ok = [im for f, im in by_file.items() if "error" not in f]
    assert all(im.get("failure") is None and isinstance(im["detections"], list) for im in ok)
    bear = by_file["site_b/cam1/american_black_bear.jpg"]
    assert bear["width"] == 2048 and bear["detections"] and bear["detections"][0]["conf"] >= 0.2
    assert by_file["site_b/cam1/blank.jpg"]["detections"] == []
    assert by_file["site_a/2021-05-28_SYFR0041_deer.JPG"]["datetime"].startswith("2021:05:")
    # the video: sampled frames recorded, detections carry frame_number
    vid = by_file[VIDEO]
    assert vid["frame_rate"] == 10.0 and vid["frames_processed"] == [0, 10, 20]
    assert vid["detections"] and {det["frame_number"] for det in vid["detections"]} <= {0, 10, 20}
    assert d["info"]["detector"] == "mdlite-2022.05.28-int8" and d["classification_categories"]
    assert d["info"]["sleuth"]["precision"] == "int8"
    assert not (clean_run / ".sleuth-checkpoint.jsonl").exists()  # removed after a complete run


def test_precision_option(ct_folder: Path, clean_run: Path, detect_env: dict[str, str], tmp_path: Path) -> None:
    """``--precision fp32`` serves the FP32 graph: recorded in the results, refused on resume."""
    with pytest.raises(ValueError, match="precision"):
        fl.DetectConfig(precision="fp16")
    assert fl.DetectConfig(server="http://127.0.0.1:1").precision is None  # the server decides
    with pytest.raises(ValueError, match="server's setting decides"):
        fl.DetectConfig(server="http://127.0.0.1:1", precision="fp32")
    assert fl.DetectConfig().result_key()["precision"] == "int8"
    out = tmp_path / "fp32"
    args = [
        "detect",
        str(ct_folder / "site_b" / "cam1"),
        "-o",
        str(out / "r.json"),
        "-f",
        "md",
        "--no-classify",
        "--no-progress",
    ]
    r = run_cli([*args, "--precision", "fp32", "--max-images", "1"], detect_env)
    assert r.exit_code == 0, r.output
    r = run_cli([*args, "--resume"], detect_env)  # default int8 vs the fp32 checkpoint
    assert r.exit_code == 1 and "different options" in r.output and "precision" in r.output
    r = run_cli([*args, "--precision", "fp32", "--resume"], detect_env)
    assert r.exit_code == 0, r.output
    d = json.loads((out / "r.json").read_text())
    assert d["info"]["detector"] == "mdlite-2022.05.28" and d["info"]["sleuth"]["precision"] == "fp32"
    fp32 = {im["file"]: im for im in d["images"]}
    int8 = {im["file"].removeprefix("site_b/cam1/"): im for im in md_images(clean_run / "results.json")}
    bear_fp32, bear_int8 = fp32["american_black_bear.jpg"]["detections"], int8["american_black_bear.jpg"]["detections"]
    assert bear_fp32 and bear_int8 and abs(bear_fp32[0]["conf"] - bear_int8[0]["conf"]) < 0.1


def test_clean_run_other_formats(clean_run: Path) -> None:
    assert validate_camtrap_dp(clean_run / "camtrap-dp") == []
    obs = list(csv.DictReader(io.StringIO((clean_run / "camtrap-dp" / "observations.csv").read_text())))
    assert any(o["observationTags"] and "frame:" in o["observationTags"] for o in obs)
    assert all(o["eventID"] for o in obs)
    rows = list(csv.DictReader(io.StringIO((clean_run / "results.csv").read_text())))
    assert {r["category"] for r in rows if r["file"] == "site_a/error_img.JPG"} == {"failure"}
    assert {r["category"] for r in rows if r["file"] == "site_b/cam1/blank.jpg"} == {"blank"}
    assert all(r["event_id"].startswith("evt_") for r in rows if r["category"] != "failure")
    assert any(r["frame_number"] for r in rows if r["file"] == VIDEO)
    coco = json.loads((clean_run / "results.coco.json").read_text())
    assert {im["file_name"] for im in coco["images"]} == {*IMAGES, VIDEO}
    assert any(im.get("corrupt") for im in coco["images"]) and all("seq_id" in im for im in coco["images"])


def test_resume_after_partial_run_equals_clean_run(
    detect_env: dict[str, str], clean_run: Path, ct_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    base = ["detect", str(ct_folder), "-o", str(out), "--no-progress", "--checkpoint-every", "2"]
    r = run_cli([*base, "--max-images", "4"], detect_env)
    assert r.exit_code == 0, r.output
    ck = out / ".sleuth-checkpoint.jsonl"
    lines = ck.read_text().splitlines()
    assert json.loads(lines[0])["sleuth_checkpoint"] == 1 and len(lines) == 1 + 4
    assert len(md_images(out / "results.json")) == 4  # partial outputs
    r = run_cli(base, detect_env)  # an existing checkpoint needs --resume or --restart
    assert r.exit_code == 1 and "--resume" in r.output
    r = run_cli([*base, "--resume", "--threshold", "0.5"], detect_env)
    assert r.exit_code == 1 and "different options" in r.output
    r = run_cli([*base, "--resume"], detect_env)
    assert r.exit_code == 0, r.output
    assert "4 skipped" in r.output and f"{len(IMAGES) + 1 - 4} files processed" in r.output
    assert not ck.exists()
    assert _strip(md_images(out / "results.json")) == _strip(md_images(clean_run / "results.json"))


def test_ctrl_c_writes_checkpoint(
    detect_env: dict[str, str], ct_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KeyboardInterrupt mid-run: exit 130, finished files are in the checkpoint, --resume completes."""
    calls = {"n": 0}
    real = fl.LocalEngine.detect

    def interrupted(self: Any, items: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, items)

    out = tmp_path / "out"
    base = ["detect", str(ct_folder), "-o", str(out), "--no-progress", "--chunk-size", "3", "--checkpoint-every", "50"]
    monkeypatch.setattr(fl.LocalEngine, "detect", interrupted)
    r = run_cli(base, detect_env)
    assert r.exit_code == 130, r.output
    assert "interrupted" in r.output
    done = fl.Checkpoint(out / ".sleuth-checkpoint.jsonl", fl.DetectConfig()).load()
    assert len(done) == 3 and not (out / "results.json").exists()
    monkeypatch.setattr(fl.LocalEngine, "detect", real)
    r = run_cli([*base, "--resume"], detect_env)
    assert r.exit_code == 0, r.output
    assert "3 skipped" in r.output and len(md_images(out / "results.json")) == len(IMAGES) + 1


def test_export_converts_md(detect_env: dict[str, str], clean_run: Path, tmp_path: Path) -> None:
    deps = tmp_path / "deployments.csv"
    deps.write_text(DEPLOYMENTS_CSV)
    out = tmp_path / "conv"
    r = run_cli(
        [
            "export",
            str(clean_run / "results.json"),
            "-o",
            str(out),
            "-f",
            "csv,coco,camtrap-dp",
            "--deployments",
            str(deps),
            "--timezone",
            "-07:00",
        ],
        detect_env,
    )
    assert r.exit_code == 0, r.output
    assert (out / "results.csv").read_text() == (clean_run / "results.csv").read_text()
    assert validate_camtrap_dp(out / "camtrap-dp") == []
    assert json.loads((out / "results.coco.json").read_text())["images"]
    one = tmp_path / "only.csv"
    r = run_cli(
        ["export", str(clean_run / "results.json"), "-o", str(one), "-f", "csv", "--threshold", "0.9"], detect_env
    )
    assert r.exit_code == 0 and one.is_file()
    assert len(one.read_text().splitlines()) <= len((out / "results.csv").read_text().splitlines())
    r = run_cli(["export", str(tmp_path / "nope.json"), "-f", "csv"], detect_env)
    assert r.exit_code == 1 and "not found" in r.output
    r = run_cli(["export", str(clean_run / "results.json"), "-o", str(tmp_path / "x"), "-f", "camtrap-dp"], detect_env)
    assert r.exit_code == 1 and "latitude" in r.output  # no coordinates: a clear error


def test_repeat_detections_flagged_and_suppressed(detect_env: dict[str, str], tmp_path: Path) -> None:
    """11 frames of the squirrel camera in one folder, 1 elsewhere: the sign posts recur on every frame of that
    folder and are flagged (``repeat_detection`` in the MD file, which still validates); --suppress-repeats
    drops exactly those."""
    import shutil

    man = json.loads((CT / "manifest.json").read_text())["images"]
    frames = [r["path"] for r in man if r["set"] == "pw_ft_squirrels"][:12]
    root = tmp_path / "traps"
    (root / "cam").mkdir(parents=True)
    (root / "other").mkdir()
    for p in frames[:11]:
        shutil.copyfile(CT / p, root / "cam" / p.split("/")[-1])
    shutil.copyfile(CT / frames[11], root / "other" / "single.jpg")
    base = ["detect", str(root), "-f", "md", "--no-classify", "--no-progress"]
    r = run_cli([*base, "-o", str(tmp_path / "flag.json")], detect_env)
    assert r.exit_code == 0, r.output
    assert "repeat detections in 1 camera folders flagged" in r.output
    d = json.loads((tmp_path / "flag.json").read_text())
    assert md_validate(d)["errors"] == []
    assert d["info"]["sleuth"]["suppress_repeats"] is False
    by = {im["file"]: im["detections"] for im in d["images"]}
    flagged = {f: sum(bool(x.get("repeat_detection")) for x in dets) for f, dets in by.items()}
    # the sign post recurs at one place: at least 10 boxes there are flagged (the minimum occurrences), every box
    # flagged lies at that place, and every box at that place is flagged (INT8 scores differ a little between CPUs,
    # so which frames carry the post above the threshold is not fixed)
    from sleuth.models.detection import iou_matrix

    cam = [x for f, dets in by.items() if f.startswith("cam/") for x in dets]
    marked = [x for x in cam if x.get("repeat_detection")]
    assert len(marked) >= 10

    def xyxy(b: list[float]) -> tuple[float, float, float, float]:
        return (b[0], b[1], b[0] + b[2], b[1] + b[3])

    def near(x: dict[str, object], at: float) -> bool:
        return float(iou_matrix([xyxy(x["bbox"])], [xyxy(marked[0]["bbox"])])[0, 0]) >= at  # type: ignore[arg-type]

    assert all(near(x, 0.5) for x in marked)
    assert all(x.get("repeat_detection") for x in cam if near(x, 0.7))
    assert flagged["other/single.jpg"] == 0
    r = run_cli([*base, "-o", str(tmp_path / "drop.json"), "--suppress-repeats"], detect_env)
    assert r.exit_code == 0, r.output
    d2 = json.loads((tmp_path / "drop.json").read_text())
    assert d2["info"]["sleuth"]["suppress_repeats"] is True
    for im in d2["images"]:
        assert not any(x.get("repeat_detection") for x in im["detections"])
        assert len(im["detections"]) == len(by[im["file"]]) - flagged[im["file"]]
    # the flag survives a round trip through `sleuth export`
    from sleuth.exports import read_md

    records, _ = read_md(tmp_path / "flag.json")
    assert sum(det.repeat for rec in records for det in rec.detections) == sum(flagged.values())
