"""Per-key, per-bucket rate limits in fixed one-minute windows.

Buckets follow Animal Detect: ``inference`` (detect endpoints), ``reference`` (species,
models, result retrieval) and ``usage``. Counters live in process memory; with several
API processes each enforces its own share (documented in docs/deploy.md).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

BUCKETS = ("inference", "reference", "usage")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # unix seconds when the window resets

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_at - time.time()))

    def headers(self) -> dict[str, str]:
        h = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(int(self.reset_at)),
        }
        if not self.allowed:
            h["Retry-After"] = str(self.retry_after)
        return h


class RateLimiter:
    def __init__(self, limits: dict[str, int], window_s: float = 60.0) -> None:
        self.limits = dict(limits)
        self.window_s = window_s
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], tuple[float, int]] = {}

    def _window(self, now: float) -> float:
        return math.floor(now / self.window_s) * self.window_s

    def hit(self, key: str, bucket: str, now: float | None = None) -> Decision:
        now = time.time() if now is None else now
        limit = self.limits[bucket]
        start = self._window(now)
        with self._lock:
            w_start, count = self._counts.get((key, bucket), (start, 0))
            if w_start != start:
                w_start, count = start, 0
            allowed = count < limit
            if allowed:
                count += 1
            self._counts[(key, bucket)] = (w_start, count)
            if len(self._counts) > 100_000:  # drop stale windows
                self._counts = {k: v for k, v in self._counts.items() if v[0] == start}
        return Decision(allowed, limit, max(0, limit - count), start + self.window_s)

    def peek(self, key: str, bucket: str, now: float | None = None) -> Decision:
        now = time.time() if now is None else now
        limit = self.limits[bucket]
        start = self._window(now)
        with self._lock:
            w_start, count = self._counts.get((key, bucket), (start, 0))
        if w_start != start:
            count = 0
        return Decision(count < limit, limit, max(0, limit - count), start + self.window_s)
