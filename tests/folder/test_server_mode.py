"""``sleuth detect --server`` against a live ``sleuth serve`` gives the local run's detections."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sleuth.exports import read_md
from support import cli_key, live_server

from .conftest import VIDEO, run_cli


@pytest.fixture(scope="module")
def server(detect_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    env = {
        **os.environ,
        **detect_env,
        "SLEUTH_DATA_DIR": str(tmp_path_factory.mktemp("server-data")),
        "SLEUTH_WORKERS": "0",
    }
    env.pop("SLEUTH_DATABASE_URL", None)
    key = cli_key(env, "folder")
    with live_server(env) as url:
        yield url, key


def test_server_mode_matches_local_run(
    detect_env: dict[str, str], server: tuple[str, str], clean_run: Path, ct_folder: Path, tmp_path: Path
) -> None:
    url, key = server
    out = tmp_path / "remote.json"
    r = run_cli(
        [
            "detect",
            str(ct_folder),
            "-o",
            str(out),
            "--server",
            url,
            "--api-key",
            key,
            "--concurrency",
            "2",
            "--no-progress",
            "--chunk-size",
            "4",
        ],
        detect_env,
    )
    assert r.exit_code == 0, r.output
    remote, info = read_md(out)
    local, local_info = read_md(clean_run / "results.json")
    assert info.extra["sleuth"]["server"] == url
    assert info.detector == local_info.detector == "mdlite-2022.05.28-int8"  # what the server reported
    assert [x.file for x in remote] == [x.file for x in local]
    n_boxes = 0
    for a, b in zip(remote, local, strict=True):
        assert (a.failure is None) == (b.failure is None), a.file
        assert (a.width, a.height, a.datetime, a.frames_processed) == (
            b.width,
            b.height,
            b.datetime,
            b.frames_processed,
        ), a.file
        assert len(a.detections) == len(b.detections), a.file
        for da, db in zip(a.detections, b.detections, strict=True):
            n_boxes += 1
            assert da.label == db.label, a.file
            assert da.label_score == pytest.approx(db.label_score, abs=2e-3), a.file
            assert da.bbox == pytest.approx(db.bbox, abs=2e-3), a.file
            assert da.frame_number == db.frame_number
            if db.label is not None and db.label.endswith((";human", ";vehicle")):
                assert da.category == db.category
    assert n_boxes >= 4
    assert any(d.frame_number is not None for x in remote if x.file == VIDEO for d in x.detections)


def test_server_mode_bad_key_is_a_clear_error(
    detect_env: dict[str, str], server: tuple[str, str], ct_folder: Path, tmp_path: Path
) -> None:
    url, _ = server
    r = run_cli(
        [
            "detect",
            str(ct_folder / "site_b" / "cam1"),
            "-o",
            str(tmp_path / "o"),
            "--server",
            url,
            "--api-key",
            "sk_wrong",
            "--no-progress",
        ],
        detect_env,
    )
    assert r.exit_code == 1 and "401" in r.output
