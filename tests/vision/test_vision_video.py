"""Video sampling (exact, on a synthetic clip), hostile inputs, and the FF++ clips."""

from __future__ import annotations

import json
import shutil
import struct
import time
from pathlib import Path

import pytest

from .helpers import DATA, make_audio_only, make_video, needs_data, rank_auc, read_index


def _expected(fps: float, start: float, limit: float, native: int = 25, n_frames: int = 250) -> list[int]:
    """Frame indices the sampler must pick: first frame with i/native >= t_k, one frame per target."""
    out: list[int] = []
    k = 0
    while True:
        t = start + k / fps
        if t >= limit - 1e-6:
            break
        i = next((j for j in range(n_frames) if j / native >= t - 1e-6), None)
        if i is None:
            break
        if not out or i > out[-1]:
            out.append(i)
        k += 1
    return out


@pytest.mark.parametrize(
    "fps,start,end,max_secs",
    [
        (2.0, None, None, None),
        (1.0, None, None, None),
        (2.0, 3.0, 7.0, None),
        (4.0, 2.0, None, 1.5),
        (0.5, 1.0, None, None),
        (30.0, 9.5, None, None),
    ],
)
def test_sampling_exact(synth_video: Path, fps, start, end, max_secs) -> None:
    from sleuth.media.video import sample_frames

    rep = sample_frames(synth_video, fps=fps, start_region=start, end_region=end, max_video_secs=max_secs)
    s = start or 0.0
    limit = min(end if end is not None else 1e9, s + max_secs if max_secs else 1e9)
    exp = _expected(fps, s, limit)
    got = [read_index(f.rgb) for f in rep.frames]
    assert got == exp
    assert [f.timestamp for f in rep.frames] == pytest.approx([i / 25 for i in exp], abs=1e-6)
    assert not rep.truncated
    assert rep.width == 320 and rep.height == 240 and rep.fps == 25


def test_sampling_counts_and_skipping(synth_video: Path) -> None:
    from sleuth.media.video import sample_frames

    rep = sample_frames(synth_video)  # default 2 fps over 10 s
    assert len(rep.frames) == 20
    assert rep.decoded == 250
    rep = sample_frames(synth_video, start_region=8.0)
    assert len(rep.frames) == 4
    assert rep.decoded < 250  # seeked: the first 8 s were not all decoded
    rep = sample_frames(synth_video, max_video_secs=3.0)
    assert len(rep.frames) == 6 and rep.decoded <= 76  # stopped at the limit


def test_windows_on_synthetic(synth_video: Path, detector, mesonet) -> None:
    from sleuth.pipelines.video import analyze_video

    r = analyze_video(synth_video, detector, mesonet, fps=2, frame_length=2)
    vm = r["video_metrics"]
    assert r["frames_sampled"] == 20 and r["faces_analysed"] == 0
    assert vm["label"] == "unknown" and vm["score"] is None and "no face" in vm["description"]
    assert [(w["start"], w["end"]) for w in vm["children"]] == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    for w in vm["children"]:
        assert w["type"] == "VideoResult" and len(w["children"]) == 4
        assert all(c["type"] == "ImageResult" and c["conclusion"] == "NoFace" for c in w["children"])
        assert all(w["start"] <= c["timestamp"] < w["end"] for c in w["children"])
    r = analyze_video(synth_video, detector, mesonet, fps=2, frame_length=3, start_region=1.0, end_region=8.0)
    assert [len(w["children"]) for w in r["video_metrics"]["children"]] == [6, 6, 2]
    with pytest.raises(ValueError):
        analyze_video(synth_video, detector, mesonet, frame_length=5)


def test_argument_validation(synth_video: Path) -> None:
    from sleuth.media.video import sample_frames

    for kw in ({"fps": 0}, {"start_region": -1}, {"start_region": 5, "end_region": 4}, {"max_video_secs": 0}):
        with pytest.raises(ValueError):
            sample_frames(synth_video, **kw)


def test_other_containers(tmp_path: Path) -> None:
    from sleuth.media.video import has_audio, sample_frames

    cases = (
        ("a.mkv", "libx264"),
        ("a.avi", "mpeg4"),
        ("a.mov", "libx264"),
        ("a.webm", "libvpx"),
        ("a.wmv", "wmv2"),
    )
    for name, codec in cases:
        p = make_video(tmp_path / name, seconds=2, codec=codec)
        rep = sample_frames(p)
        assert [read_index(f.rgb) for f in rep.frames] == [0, 13, 25, 38], name
        assert [f.timestamp for f in rep.frames] == pytest.approx([0.0, 0.52, 1.0, 1.52]), name
        assert not has_audio(p)


# -- hostile inputs --------------------------------------------------------------------------------
def _timed(fn, *a, **kw):
    t = time.perf_counter()
    try:
        return fn(*a, **kw), time.perf_counter() - t
    except ValueError as exc:
        return exc, time.perf_counter() - t


def test_zero_length_and_garbage(tmp_path: Path) -> None:
    from sleuth.media.video import has_audio, sample_frames

    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        sample_frames(empty)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01garbage" * 1000)
    with pytest.raises(ValueError):
        sample_frames(garbage)
    with pytest.raises(ValueError):
        has_audio(empty)


def test_audio_only(tmp_path: Path) -> None:
    from sleuth.media.video import has_audio, sample_frames

    p = make_audio_only(tmp_path / "tone.m4a")
    assert has_audio(p)
    with pytest.raises(ValueError, match="no video stream"):
        sample_frames(p)


def test_truncated_mp4(synth_video: Path, tmp_path: Path) -> None:
    from sleuth.media.video import sample_frames

    data = synth_video.read_bytes()
    for frac in (0.05, 0.5, 0.9):
        p = tmp_path / f"trunc_{frac}.mp4"
        p.write_bytes(data[: int(len(data) * frac)])
        res, dt = _timed(sample_frames, p)
        assert dt < 10
        if not isinstance(res, ValueError):
            assert len(res.frames) <= 20


def _patch_durations(data: bytearray, seconds: float) -> int:
    """Rewrite mvhd/tkhd/mdhd durations in an mp4 to ``seconds``; returns how many boxes changed."""
    n = 0
    for box in (b"mvhd", b"mdhd", b"tkhd"):
        pos = 0
        while (pos := data.find(box, pos)) != -1:
            body = pos + 4
            version = data[body]
            if box == b"tkhd":
                # tkhd has no timescale; use the movie timescale (mvhd) found below
                ts = _movie_timescale(data)
                off = body + 4 + (24 if version == 1 else 16)  # after times, track_ID, reserved
            else:
                ts_off = body + 4 + (16 if version == 1 else 8)
                ts = struct.unpack(">I", data[ts_off : ts_off + 4])[0]
                off = ts_off + 4
            dur = int(seconds * ts)
            if version == 1:
                data[off : off + 8] = struct.pack(">Q", dur)
            else:
                data[off : off + 4] = struct.pack(">I", min(dur, 0xFFFFFFFF))
            n += 1
            pos = body
    return n


def _movie_timescale(data: bytearray) -> int:
    body = data.find(b"mvhd") + 4
    ts_off = body + 4 + (16 if data[body] == 1 else 8)
    return struct.unpack(">I", data[ts_off : ts_off + 4])[0]


def test_mp4_header_durations_patched(synth_video: Path, tmp_path: Path) -> None:
    """mvhd/mdhd/tkhd rewritten to 10 h (FFmpeg re-derives the stream length from stts)."""
    from sleuth.media.video import sample_frames

    data = bytearray(synth_video.read_bytes())
    assert _patch_durations(data, 36000.0) >= 3
    p = tmp_path / "ten_hours.mp4"
    p.write_bytes(bytes(data))
    res, dt = _timed(sample_frames, p)
    assert not isinstance(res, ValueError)
    assert len(res.frames) == 20 and res.decoded == 250
    assert dt < 10


def test_header_claims_ten_hours(tmp_path: Path) -> None:
    """Matroska Duration element patched to 10 h: the demuxer believes it, the sampler must not."""
    import av

    from sleuth.media.video import sample_frames

    p = make_video(tmp_path / "short.mkv", seconds=10)
    data = bytearray(p.read_bytes())
    i = data.find(b"\x44\x89")  # EBML Duration (float, in TimecodeScale units = ms)
    assert i > 0 and data[i + 2] == 0x88
    data[i + 3 : i + 11] = struct.pack(">d", 36000e3)
    p = tmp_path / "ten_hours.mkv"
    p.write_bytes(bytes(data))
    with av.open(str(p)) as c:
        assert c.duration / 1e6 > 3600  # the header really lies
    res, dt = _timed(sample_frames, p)
    assert not isinstance(res, ValueError)
    assert len(res.frames) == 20 and res.decoded == 250  # only what is really there
    assert dt < 10
    res, _ = _timed(sample_frames, p, max_video_secs=None)  # no cap at all: still bounded by the data
    assert len(res.frames) == 20


# -- real clips ------------------------------------------------------------------------------------
@needs_data
def test_ffpp_clips_auc(detector, mesonet) -> None:
    from sleuth.media.video import has_audio
    from sleuth.pipelines.video import analyze_video

    files = json.loads((DATA / "video/manifest.json").read_text())["files"]
    pos, neg = [], []
    for f in files:
        path = DATA / "video" / f["path"]
        r = analyze_video(path, detector, mesonet, fps=2, frame_length=2, max_video_secs=6)
        vm = r["video_metrics"]
        assert r["frames_sampled"] == 12 and r["faces_analysed"] >= 10, f["path"]
        assert vm["label"] in {"Fake", "Real"} and 0 <= vm["score"] <= 1
        assert vm["certainty"] == pytest.approx(abs(vm["score"] - 0.5) * 2, abs=1e-5)
        assert len(vm["children"]) == 3
        assert not has_audio(path)
        (pos if f["label"] == "fake" else neg).append(vm["score"])
        print(f"{f['path']:32s} {f['label']:5s} score={vm['score']:.3f} {vm['label']}")
    auc = rank_auc(pos, neg)
    print(f"FF++ per-video AUC (mesonet ensemble, 2 fps, first 6 s): {auc:.3f}")
    assert auc > 0.5


@needs_data
def test_copy_of_shared_clip_is_read_only_safe(tmp_path: Path) -> None:
    from sleuth.media.video import sample_frames

    src = DATA / "video/ffpp/Face2Face/750_743.mp4"
    p = tmp_path / "clip.mp4"
    shutil.copy(src, p)
    rep = sample_frames(p, fps=2, max_video_secs=2, max_side=640)
    assert len(rep.frames) == 4 and rep.frames[0].rgb.shape == (360, 640, 3)
    assert rep.fps == pytest.approx(30.0, abs=0.1)
