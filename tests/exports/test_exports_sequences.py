"""Event grouping by camera folder and time gap."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from sleuth.exports.records import ImageRecord
from sleuth.exports.sequences import event_index, group_events

T0 = datetime(2021, 7, 24, 23, 0, 0)


def rec(file: str, seconds: float | None, camera: str | None = None, **kw) -> ImageRecord:
    dt = T0 + timedelta(seconds=seconds) if seconds is not None else None
    return ImageRecord(file=file, datetime=dt, camera=camera, **kw)


def groups(records, gap=60.0):
    return [list(ev.files) for ev in group_events(records, gap)]


def test_gap_boundary_is_inclusive():
    rs = [rec("c/a.jpg", 0), rec("c/b.jpg", 60), rec("c/c.jpg", 120.5), rec("c/d.jpg", 200)]
    assert groups(rs) == [["c/a.jpg", "c/b.jpg"], ["c/c.jpg"], ["c/d.jpg"]]
    assert groups(rs, gap=80) == [["c/a.jpg", "c/b.jpg", "c/c.jpg", "c/d.jpg"]]
    assert groups(rs, gap=0) == [["c/a.jpg"], ["c/b.jpg"], ["c/c.jpg"], ["c/d.jpg"]]


def test_cameras_are_separate_and_untimed_are_singletons():
    rs = [
        rec("cam1/a.jpg", 0),
        rec("cam2/b.jpg", 1),
        rec("cam1/c.jpg", 2),
        rec("cam1/x.jpg", None),
        rec("cam1/y.jpg", None),
        rec("cam1/f.jpg", 3, failure="Failure image access"),
    ]
    out = groups(rs)
    assert ["cam1/a.jpg", "cam1/c.jpg"] in out and ["cam2/b.jpg"] in out
    assert ["cam1/x.jpg"] in out and ["cam1/y.jpg"] in out and ["cam1/f.jpg"] in out
    assert len(out) == 5


def test_explicit_camera_overrides_folder():
    rs = [rec("a/1.jpg", 0, camera="site"), rec("b/2.jpg", 5, camera="site")]
    assert groups(rs) == [["a/1.jpg", "b/2.jpg"]]


def test_order_independent_deterministic_ids():
    rs = [rec(f"c/{i:03d}.jpg", i * 20 + (100 if i > 4 else 0)) for i in range(10)]
    ids = [(e.event_id, e.files) for e in group_events(rs)]
    shuffled = rs[:]
    random.Random(1).shuffle(shuffled)
    assert [(e.event_id, e.files) for e in group_events(shuffled)] == ids
    assert len({i for i, _ in ids}) == len(ids) == 2
    # other cameras do not change the ids
    assert [(e.event_id, e.files) for e in group_events(rs + [rec("z/1.jpg", 0)])][:2] == ids


def test_same_timestamp_ties_sorted_by_file():
    rs = [rec("c/b.jpg", 0), rec("c/a.jpg", 0)]
    ev = group_events(rs)[0]
    assert ev.files == ("c/a.jpg", "c/b.jpg") and ev.start == ev.end == T0
    idx = event_index([ev])
    assert idx["c/b.jpg"][1] == 1


def test_aware_datetimes_compare_as_instants():
    utc, plus2 = UTC, timezone(timedelta(hours=2))
    rs = [
        ImageRecord(file="c/a.jpg", datetime=datetime(2021, 1, 1, 10, 0, 0, tzinfo=utc)),
        ImageRecord(file="c/b.jpg", datetime=datetime(2021, 1, 1, 12, 0, 30, tzinfo=plus2)),
    ]
    assert groups(rs) == [["c/a.jpg", "c/b.jpg"]]


def test_mixed_naive_and_aware_use_wall_clock():
    rs = [
        ImageRecord(file="c/a.jpg", datetime=datetime(2021, 1, 1, 10, 0, 0)),
        ImageRecord(file="c/b.jpg", datetime=datetime(2021, 1, 1, 10, 0, 30, tzinfo=UTC)),
    ]
    assert groups(rs) == [["c/a.jpg", "c/b.jpg"]]


def test_negative_gap_rejected():
    with pytest.raises(ValueError):
        group_events([], -1)


def test_manifest_sequences(run_records):
    records, _ = run_records
    events = group_events(records)
    idx = event_index(events)
    assert set(idx) == {r.file for r in records}
    # the three elephant variants with the same EXIF time form one event
    ele = idx["speciesnet/african_elephants.jpg"][0]
    assert set(ele.files) == {
        "speciesnet/african_elephants.jpg",
        "speciesnet/african_elephants_truncated_file.jpg",
        "speciesnet/african_elephants_with_exif_orientation.jpg",
    }
