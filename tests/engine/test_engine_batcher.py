"""Micro-batcher on a real (tiny) ONNX model: results, priority, batching, back-pressure, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from sleuth.engine.batcher import BatcherClosedError, MicroBatcher, QueueFullError, default_preprocess_workers

from .engine_testlib import LinearModel, build_linear_onnx, expected, make_weights, split_weights

WEIGHTS = make_weights(7)
Make = Callable[..., MicroBatcher]


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("linear")
    (d / "weights.bin").write_bytes(WEIGHTS)
    w, b = split_weights(WEIGHTS)
    return {"weights": d / "weights.bin", "onnx": build_linear_onnx(d / "model.onnx", w, b)}


@pytest.fixture
def model(onnx_files: dict[str, Path]) -> LinearModel:
    m = LinearModel()
    m.name = "linear"
    m.load(onnx_files, ["CPUExecutionProvider"])
    return m


@pytest.fixture
def make_batcher(model: LinearModel) -> Iterator[Make]:
    made: list[MicroBatcher] = []

    def make(**kw: object) -> MicroBatcher:
        kw.setdefault("max_batch_size", 4)
        kw.setdefault("max_wait_ms", 5)
        kw.setdefault("max_queue", 64)
        kw.setdefault("preprocess_workers", 2)
        b = MicroBatcher(model, **kw)  # type: ignore[arg-type]
        made.append(b)
        return b

    yield make
    if model.gate is not None:
        model.gate.set()
    for b in made:
        b.close(cancel_pending=True, timeout=10)


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.002)


def item(tag: str, seed: int = 0) -> dict[str, object]:
    rng = np.random.default_rng(abs(hash(tag)) % 2**32 + seed)
    return {"tag": tag, "x": rng.standard_normal(4).tolist()}


def test_results_match_numpy(make_batcher: Make) -> None:
    b = make_batcher()
    items = [item(f"i{k}") for k in range(37)]
    out = b.run(items, "job")
    assert [o["tag"] for o in out] == [f"i{k}" for k in range(37)]
    for it, o in zip(items, out, strict=True):
        np.testing.assert_allclose(o["y"], expected(WEIGHTS, it["x"]), rtol=1e-5, atol=1e-5)  # type: ignore[arg-type]
    s = b.stats()
    assert s["items"] == 37 and s["queued"] == 0


def test_interactive_lane_is_served_first(make_batcher: Make, model: LinearModel) -> None:
    model.gate = threading.Event()
    b = make_batcher(max_batch_size=2)
    first = b.submit(item("j0"), "job")
    wait_for(lambda: len(model.batches) == 1)  # inference thread is now held inside predict_batch
    jobs = [b.submit(item(f"j{k}"), "job") for k in range(1, 7)]
    wait_for(lambda: b.stats()["ready"]["job"] == 4)  # job prefetch = 2 * batch size
    inter = b.submit(item("i0"), "interactive")
    wait_for(lambda: b.stats()["ready"]["interactive"] == 1)
    model.gate.set()
    assert inter.result(10)["tag"] == "i0"
    assert [f.result(10)["tag"] for f in [first, *jobs]] == [f"j{k}" for k in range(7)]
    assert model.batches[0] == ["j0"]
    assert model.batches[1] == ["i0", "j1"]  # queued later, served first
    rest = [t for batch in model.batches[2:] for t in batch]
    assert rest == ["j2", "j3", "j4", "j5", "j6"]  # the job lane keeps its order


def test_batches_form_under_load(make_batcher: Make) -> None:
    b = make_batcher(max_batch_size=8, max_wait_ms=20)
    futures = [b.submit(item(f"x{k}"), "job", block=True) for k in range(64)]
    for f in futures:
        f.result(10)
    sizes = b.stats()["batch_sizes"]
    assert sum(k * v for k, v in sizes.items()) == 64
    assert max(sizes) > 1, sizes
    assert max(sizes) <= 8
    assert sum(sizes.values()) < 64  # fewer runs than items


def test_queue_bound_raises_queue_full(make_batcher: Make, model: LinearModel) -> None:
    model.gate = threading.Event()
    b = make_batcher(max_queue=8, max_batch_size=1)
    running = b.submit(item("r"), "interactive")
    wait_for(lambda: len(model.batches) == 1)  # taken off the queue, held in predict_batch
    assert b.job_queue_limit == 6  # a quarter of the queue is kept for interactive requests
    jobs = [b.submit(item(f"j{k}"), "job") for k in range(6)]
    with pytest.raises(QueueFullError):
        b.submit(item("j6"), "job")
    with pytest.raises(QueueFullError, match="no room after"):
        b.submit(item("j6"), "job", block=True, timeout=0.05)
    inter = [b.submit(item(f"i{k}"), "interactive") for k in range(2)]
    with pytest.raises(QueueFullError, match="queue full"):
        b.submit(item("i2"), "interactive")
    model.gate.set()
    for f in [running, *jobs, *inter]:
        f.result(10)
    assert b.submit(item("after"), "interactive").result(10)["tag"] == "after"


def test_blocking_submit_waits_for_room(make_batcher: Make) -> None:
    b = make_batcher(max_queue=4, max_batch_size=2)
    out = b.run([item(f"k{k}") for k in range(40)], "job")  # 10x the queue bound, no QueueFullError
    assert [o["tag"] for o in out] == [f"k{k}" for k in range(40)]


def test_failing_preprocess_fails_only_its_item(make_batcher: Make) -> None:
    b = make_batcher()
    good1, bad, good2 = (
        b.submit(item("a")),
        b.submit({"tag": "bad", "x": [1.0, "not a number"]}),
        b.submit(item("b")),
    )
    wrong_shape = b.submit({"tag": "bad2", "x": [1.0, 2.0]})
    assert good1.result(10)["tag"] == "a" and good2.result(10)["tag"] == "b"
    with pytest.raises(ValueError, match="input must be 4"):
        bad.result(10)
    with pytest.raises(ValueError, match="shape"):
        wrong_shape.result(10)
    res = b.run([item("c"), {"tag": "bad", "x": None}], "job", return_exceptions=True)
    assert res[0]["tag"] == "c" and isinstance(res[1], ValueError)
    assert b.stats()["queued"] == 0


def test_failing_predict_fails_its_batch_only(make_batcher: Make, model: LinearModel) -> None:
    model.gate = threading.Event()
    b = make_batcher(max_batch_size=2)
    first = b.submit(item("hold"))
    wait_for(lambda: len(model.batches) == 1)
    boom, mate = b.submit(item("boom")), b.submit(item("mate"))
    wait_for(lambda: b.stats()["ready"]["interactive"] == 2)
    later = b.submit(item("later"), "job")
    wait_for(lambda: b.stats()["ready"]["job"] == 1)
    model.gate.set()
    assert first.result(10)["tag"] == "hold"
    for f in (boom, mate):
        with pytest.raises(RuntimeError, match="failed on purpose"):
            f.result(10)
    assert later.result(10)["tag"] == "later"  # the batcher keeps running
    assert model.batches[1] == ["boom", "mate"]


def test_close_drains_then_refuses(make_batcher: Make) -> None:
    b = make_batcher()
    futures = [b.submit(item(f"c{k}"), "job") for k in range(20)]
    b.close()
    assert all(f.done() for f in futures)
    assert [f.result()["tag"] for f in futures] == [f"c{k}" for k in range(20)]
    assert not b._thread.is_alive()
    with pytest.raises(BatcherClosedError):
        b.submit(item("late"))
    b.close()  # idempotent


def test_close_cancel_pending(make_batcher: Make, model: LinearModel) -> None:
    model.gate = threading.Event()
    b = make_batcher(max_batch_size=1)
    held = b.submit(item("held"))
    wait_for(lambda: len(model.batches) == 1)
    waiting = [b.submit(item(f"w{k}"), "job") for k in range(5)]
    wait_for(lambda: b.stats()["ready"]["job"] == 2)  # prefetch 2, the rest still pending
    closer = threading.Thread(target=b.close, kwargs={"cancel_pending": True})
    closer.start()
    wait_for(lambda: b.closed)
    model.gate.set()
    closer.join(10)
    assert not closer.is_alive()
    assert held.result(10)["tag"] == "held"  # the running batch finishes
    for f in waiting:
        with pytest.raises(BatcherClosedError):
            f.result(10)


def test_cancelled_future_is_skipped(make_batcher: Make, model: LinearModel) -> None:
    model.gate = threading.Event()
    b = make_batcher(max_batch_size=1)
    held = b.submit(item("held"))
    wait_for(lambda: len(model.batches) == 1)
    queued = [b.submit(item(f"q{k}"), "job") for k in range(4)]
    wait_for(lambda: b.stats()["pending"]["job"] == 2)
    assert queued[3].cancel()  # still pending: never preprocessed or run
    model.gate.set()
    assert [f.result(10)["tag"] for f in [held, *queued[:3]]] == ["held", "q0", "q1", "q2"]
    wait_for(lambda: b.stats()["queued"] == 0)
    assert "q3" not in [t for batch in model.batches for t in batch]


def test_default_preprocess_workers() -> None:
    assert default_preprocess_workers(0, cores=2) == 1
    assert default_preprocess_workers(0, cores=16) == 4
    assert default_preprocess_workers(6, cores=8) == 2
    assert default_preprocess_workers(8, cores=8) == 4


def test_model_batch_limit_wins(model: LinearModel) -> None:
    model.max_batch_size = 3
    b = MicroBatcher(model, max_batch_size=16, max_wait_ms=1, max_queue=8)
    try:
        assert b.max_batch_size == 3
        with pytest.raises(ValueError, match="lane"):
            b.submit(item("x"), "bulk")  # type: ignore[arg-type]
    finally:
        b.close()


def test_sessions_follow_the_intra_op_threads_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sleuth.engine.runtime import cpu_count, create_session
    from sleuth.settings import get_settings

    w, b = split_weights(make_weights(3))
    path = build_linear_onnx(tmp_path / "m.onnx", w, b)
    monkeypatch.setenv("SLEUTH_INTRA_OP_THREADS", "1")
    get_settings.cache_clear()
    try:
        assert create_session(path).get_session_options().intra_op_num_threads == 1
        assert create_session(path, intra_op_threads=2).get_session_options().intra_op_num_threads == 2
        monkeypatch.setenv("SLEUTH_INTRA_OP_THREADS", "0")
        get_settings.cache_clear()
        assert create_session(path).get_session_options().intra_op_num_threads == cpu_count()
    finally:
        get_settings.cache_clear()
