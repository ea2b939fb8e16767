"""Micro-batcher: one per loaded model, two priority lanes, preprocessing overlapped with inference.

Flow of one item::

    submit(item, lane) --> pending[lane] --(pool)--> model.preprocess --> ready[lane]
        --(inference thread)--> model.predict_batch(batch) --> model.postprocess --> Future

* **Lanes.** ``"interactive"`` (API requests) always goes first, both when choosing what
  to preprocess next and when filling a batch; ``"job"`` (background batch jobs) fills the
  rest. Within a lane items keep submission order.
* **Batching.** A single inference thread takes up to ``max_batch_size`` ready items
  (``min`` of the setting and the model's own ``max_batch_size``). When fewer are ready but
  more are already being preprocessed, it waits at most ``max_wait_ms`` for them; a lone
  request on an idle batcher runs at once. Under load batches form by themselves because
  items are prepared while the previous batch runs.
* **Overlap.** Preprocessing (decode, resize) runs on a small thread pool, so the next
  batch is decoded while the current one is in ONNX Runtime. Job items are prepared at
  most ``2 * max_batch_size`` ahead (bounded memory for decoded tensors); interactive
  items are prepared as soon as a worker is free.
* **Thread count.** ORT runs ``intra_op_threads`` (default: all cores) threads without
  spinning (see ``sleuth.engine.runtime``). The preprocessing pool defaults to
  ``cores - intra_op_threads`` when the ORT pool was made smaller than the machine, else to
  ``max(1, min(4, cores // 2))``: decode threads mostly run while ORT is between batches or
  waiting, and at peak the machine is oversubscribed by at most half its cores instead of
  2x. Override with ``preprocess_workers=`` (or a ``preprocess_workers`` setting).
* **Back-pressure.** At most ``max_queue`` items wait (pending + preprocessing + ready).
  ``submit`` raises :class:`QueueFullError` when full (the API answers 503). The job lane
  may only use ``max_queue - reserve`` places (``reserve = max(1, max_queue // 4)``), so a
  saturating batch job never locks interactive requests out. ``submit(block=True)`` waits
  for room instead (what job workers use).
* **Compute gate.** The inference thread asks the process-wide compute gate
  (``sleuth.engine.compute``) before it picks a batch, with interactive priority when an
  interactive item is ready (it starts at once) and job priority otherwise (it waits while
  sync work runs, behind the job runs queued before it).
* **Errors.** An exception in ``preprocess`` or ``postprocess`` fails only that item's
  future; one in ``predict_batch`` fails every future of that batch. The batcher keeps
  running either way.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Any, Generic, Literal

from sleuth.engine.base import InT, Model, OutT, PrepT, RawT
from sleuth.engine.compute import INTERACTIVE, JOB, compute_gate
from sleuth.engine.runtime import cpu_count
from sleuth.engine.threads import eager_pool
from sleuth.settings import Settings, get_settings

log = logging.getLogger("sleuth.engine.batcher")

Lane = Literal["interactive", "job"]
LANES: tuple[Lane, Lane] = ("interactive", "job")

__all__ = [
    "LANES",
    "BatcherClosedError",
    "Lane",
    "MicroBatcher",
    "QueueFullError",
    "default_preprocess_workers",
]


class QueueFullError(RuntimeError):
    """The batcher's queue is full; retry later (the API maps this to HTTP 503)."""


class BatcherClosedError(RuntimeError):
    """The batcher was closed; no new items are accepted."""


def default_preprocess_workers(intra_op_threads: int = 0, cores: int | None = None) -> int:
    """Preprocessing threads that complement ORT's intra-op pool without oversubscribing."""
    n = cores or cpu_count()
    if 0 < intra_op_threads < n:
        return max(1, n - intra_op_threads)
    return max(1, min(4, n // 2))


@dataclass(order=True)
class _Entry:
    seq: int
    item: Any = field(compare=False)
    future: Future[Any] = field(compare=False)
    lane: Lane = field(compare=False)
    prepared: Any = field(default=None, compare=False)


class MicroBatcher(Generic[InT, PrepT, RawT, OutT]):
    """Collects items for one model into batches on a single inference thread."""

    def __init__(
        self,
        model: Model[InT, PrepT, RawT, OutT],
        *,
        settings: Settings | None = None,
        max_batch_size: int | None = None,
        max_wait_ms: float | None = None,
        max_queue: int | None = None,
        preprocess_workers: int | None = None,
        name: str | None = None,
    ) -> None:
        s = settings if settings is not None else get_settings()
        self.model = model
        self.name = name or model.name or type(model).__name__
        limit = max_batch_size if max_batch_size is not None else s.max_batch_size
        self.max_batch_size = max(1, min(limit, model.max_batch_size or limit))
        self.max_wait_s = max(0.0, (max_wait_ms if max_wait_ms is not None else s.max_wait_ms) / 1000.0)
        self.max_queue = max(1, max_queue if max_queue is not None else s.max_queue)
        self.job_queue_limit = max(1, self.max_queue - max(1, self.max_queue // 4))
        if preprocess_workers is None:
            preprocess_workers = int(getattr(s, "preprocess_workers", 0) or 0)
        self.preprocess_workers = preprocess_workers or default_preprocess_workers(s.intra_op_threads)
        self.job_prefetch = max(2 * self.max_batch_size, self.preprocess_workers)

        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._pending: dict[Lane, deque[_Entry]] = {lane: deque() for lane in LANES}
        self._ready: dict[Lane, list[_Entry]] = {lane: [] for lane in LANES}  # heaps by seq
        self._in_prep: dict[Lane, int] = dict.fromkeys(LANES, 0)
        self._queued: dict[Lane, int] = dict.fromkeys(LANES, 0)  # pending + in_prep + ready
        self._closing = False
        self._busy = False
        self._batch_sizes: Counter[int] = Counter()
        self._items_done = 0
        self._pool = eager_pool(self.preprocess_workers, f"prep-{self.name}")  # none spawned later by a submitter
        self._thread = threading.Thread(target=self._loop, name=f"infer-{self.name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public API

    def submit(
        self, item: InT, lane: Lane = "interactive", *, block: bool = False, timeout: float | None = None
    ) -> Future[OutT]:
        """Queue one item; the future resolves to ``postprocess(...)`` or the item's error.

        Raises :class:`QueueFullError` when the lane has no room (after ``timeout`` seconds
        when ``block=True``), :class:`BatcherClosedError` after :meth:`close`.
        """
        if lane not in LANES:
            raise ValueError(f"lane must be one of {LANES}, got {lane!r}")
        fut: Future[OutT] = Future()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closing:
                    raise BatcherClosedError(f"batcher {self.name!r} is closed")
                if self._has_room(lane):
                    break
                if not block:
                    raise QueueFullError(f"model {self.name!r} is busy: queue full ({self.max_queue} items)")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise QueueFullError(f"model {self.name!r} is busy: no room after {timeout} s")
                self._cond.wait(remaining)
            entry = _Entry(next(self._seq), item, fut, lane)
            self._pending[lane].append(entry)
            self._queued[lane] += 1
            self._pump()
        return fut

    def run(
        self,
        items: Iterable[InT],
        lane: Lane = "job",
        *,
        block: bool | None = None,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Submit all items and wait; results in input order.

        ``block`` (default: True for the job lane) waits for queue room instead of raising
        :class:`QueueFullError`. With ``return_exceptions`` failed items give their exception
        instead of raising the first one.
        """
        if block is None:
            block = lane == "job"
        futures: list[Future[OutT]] = []
        try:
            for it in items:
                futures.append(self.submit(it, lane, block=block))
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        out: list[Any] = []
        for f in futures:
            try:
                out.append(f.result())
            except CancelledError:
                raise
            except Exception as e:
                if not return_exceptions:
                    for g in futures:
                        g.cancel()
                    raise
                out.append(e)
        return out

    def stats(self) -> dict[str, Any]:
        """Queue depths and the batch-size histogram so far."""
        with self._cond:
            return {
                "name": self.name,
                "max_batch_size": self.max_batch_size,
                "preprocess_workers": self.preprocess_workers,
                "queued": sum(self._queued.values()),
                "pending": {lane: len(self._pending[lane]) for lane in LANES},
                "preprocessing": dict(self._in_prep),
                "ready": {lane: len(self._ready[lane]) for lane in LANES},
                "busy": self._busy,
                "batches": sum(self._batch_sizes.values()),
                "items": self._items_done,
                "batch_sizes": dict(sorted(self._batch_sizes.items())),
                "closed": self._closing,
            }

    def close(self, *, cancel_pending: bool = False, timeout: float | None = None) -> None:
        """Stop accepting items. By default finish what was submitted; with
        ``cancel_pending`` fail every waiting item with :class:`BatcherClosedError`."""
        with self._cond:
            self._closing = True
            if cancel_pending:
                err = BatcherClosedError(f"batcher {self.name!r} closed before this item ran")
                for lane in LANES:
                    while self._pending[lane]:
                        e = self._pending[lane].popleft()
                        self._queued[lane] -= 1
                        self._fail(e.future, err)
                    while self._ready[lane]:
                        e = heapq.heappop(self._ready[lane])
                        self._queued[lane] -= 1
                        self._fail(e.future, err)
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=False)

    @property
    def closed(self) -> bool:
        return self._closing

    def __enter__(self) -> MicroBatcher[InT, PrepT, RawT, OutT]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _has_room(self, lane: Lane) -> bool:
        total = sum(self._queued.values())
        if total >= self.max_queue:
            return False
        return lane == "interactive" or self._queued["job"] < self.job_queue_limit

    def _pump(self) -> None:
        """Hand pending items to the preprocessing pool (caller holds the lock)."""
        for lane in LANES:
            pending = self._pending[lane]
            while pending:
                if lane == "job" and self._in_prep["job"] + len(self._ready["job"]) >= self.job_prefetch:
                    break
                e = pending.popleft()
                if not e.future.set_running_or_notify_cancel():  # cancelled by the caller
                    self._queued[lane] -= 1
                    self._cond.notify_all()
                    continue
                self._in_prep[lane] += 1
                try:
                    self._pool.submit(self._prepare, e)
                except RuntimeError:  # pool already shut down (close with a timeout)
                    self._in_prep[lane] -= 1
                    self._queued[lane] -= 1
                    self._fail(e.future, BatcherClosedError(f"batcher {self.name!r} is closed"))

    def _prepare(self, e: _Entry) -> None:
        try:
            e.prepared = self.model.preprocess(e.item)
        except BaseException as exc:
            with self._cond:
                self._in_prep[e.lane] -= 1
                self._queued[e.lane] -= 1
                self._pump()
                self._cond.notify_all()
            self._fail(e.future, exc)
            return
        e.item = None  # the raw input (e.g. encoded bytes) is no longer needed
        with self._cond:
            self._in_prep[e.lane] -= 1
            heapq.heappush(self._ready[e.lane], e)
            self._cond.notify_all()
        if e.lane == "interactive":
            compute_gate().nudge()  # the inference thread may be waiting for the gate with a job batch

    def _n_ready(self) -> int:
        return len(self._ready["interactive"]) + len(self._ready["job"])

    def _more_coming(self) -> bool:
        return any(self._in_prep[lane] or self._pending[lane] for lane in LANES)

    def _wait_ready(self) -> bool:
        """Wait until items are ready (and up to ``max_wait_s`` for a fuller batch); False when closed and drained."""
        with self._cond:
            while self._n_ready() == 0:
                if self._closing and not self._more_coming():
                    return False
                self._cond.wait()
            if self._n_ready() < self.max_batch_size and self.max_wait_s > 0:
                deadline = time.monotonic() + self.max_wait_s
                while self._n_ready() < self.max_batch_size and self._more_coming():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            return True

    def _priority(self) -> int:
        """The compute-gate priority of what this batcher would run next (read at each hand-over)."""
        return INTERACTIVE if self._ready["interactive"] else JOB

    def _take_batch(self) -> list[_Entry]:
        """Take the next batch, interactive items first (caller holds a compute-gate slot)."""
        with self._cond:
            batch: list[_Entry] = []
            for lane in LANES:
                heap = self._ready[lane]
                while heap and len(batch) < self.max_batch_size:
                    e = heapq.heappop(heap)
                    self._queued[lane] -= 1
                    batch.append(e)
            if batch:
                self._busy = True
            self._pump()
            self._cond.notify_all()  # room for blocked submitters
            return batch

    def _loop(self) -> None:
        """Wait for ready items, then for the compute gate (with their priority), then pick and run the batch.

        The batch is chosen only once the gate is granted, so interactive items that became ready while a
        job batch waited for the cores go first.
        """
        gate = compute_gate()
        while True:
            if not self._wait_ready():
                return
            gate.acquire(self._priority)
            batch: list[_Entry] = []
            raws: list[Any] | BaseException | None = None
            try:
                batch = self._take_batch()
                if batch:
                    raws = self._predict(batch)
            finally:
                gate.release()
            if not batch:
                continue
            try:
                self._finish_batch(batch, raws)
            except BaseException as exc:  # never let the inference thread die
                log.exception("batcher %s: unexpected error", self.name)
                for e in batch:
                    self._fail(e.future, exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._batch_sizes[len(batch)] += 1
                    self._items_done += len(batch)

    def _predict(self, batch: Sequence[_Entry]) -> list[Any] | BaseException:
        prepared = [e.prepared for e in batch]
        try:
            raws = self.model.predict_batch(prepared)
            if len(raws) != len(batch):
                raise RuntimeError(
                    f"model {self.name!r}: predict_batch returned {len(raws)} outputs for {len(batch)} inputs"
                )
            return list(raws)
        except BaseException as exc:
            return exc

    def _finish_batch(self, batch: Sequence[_Entry], raws: list[Any] | BaseException | None) -> None:
        if raws is None or isinstance(raws, BaseException):
            exc = raws if raws is not None else RuntimeError(f"model {self.name!r}: batch did not run")
            for e in batch:
                self._fail(e.future, exc)
            return
        for e, raw in zip(batch, raws, strict=True):
            try:
                result = self.model.postprocess(raw, e.prepared)
            except BaseException as exc:
                self._fail(e.future, exc)
                continue
            e.prepared = None
            if not e.future.done():
                e.future.set_result(result)

    @staticmethod
    def _fail(fut: Future[Any], exc: BaseException) -> None:
        if fut.done():
            return
        # still PENDING (e.g. cancelled on close before preprocessing): mark running first
        if not fut.running() and not fut.set_running_or_notify_cancel():
            return
        fut.set_exception(exc)
