"""The platform services one process shares: settings, database, storage, rate limiter."""

from __future__ import annotations

from dataclasses import dataclass, field

from sleuth.db.engine import Database
from sleuth.platform.ratelimit import RateLimiter
from sleuth.platform.storage import Storage, make_storage
from sleuth.settings import Settings


@dataclass
class Platform:
    settings: Settings
    db: Database
    storage: Storage
    limiter: RateLimiter
    extras: dict[str, object] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings) -> Platform:
        limiter = RateLimiter(
            {
                "inference": settings.rate_limit_inference,
                "reference": settings.rate_limit_reference,
                "usage": settings.rate_limit_usage,
            }
        )
        return cls(settings=settings, db=Database(settings), storage=make_storage(settings), limiter=limiter)
